// NumPy .npy files (format versions 1.0-3.0), for golden data and test fixtures: little-endian,
// C-order arrays of bool, uint8, int8, int16, int32, int64, float16, float32, float64.
// Fortran order, big-endian data, other dtypes and truncated files are Errors naming the file.
// (at::Tensor is the same type as torch::Tensor; this header avoids <torch/torch.h> to stay light.)
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace retort {

// The array as a CPU tensor of the matching dtype (a 0-d tensor for shape ()).
at::Tensor load_npy(const std::string& path);

// Writes `tensor` (any device, any strides) as numpy.save would, byte for byte; written to
// `path + ".tmp"` then renamed. Throws Error for dtypes NumPy has no type for (bfloat16, ...).
void save_npy(const std::string& path, const at::Tensor& tensor);

}  // namespace retort
