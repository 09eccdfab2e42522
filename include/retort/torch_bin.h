// Reading pytorch_model.bin: the zip archive torch.save writes (PyTorch >= 1.6), holding a pickled
// dict of tensor name -> tensor, as transformers' save_pretrained(safe_serialization=False) produces,
// and its sharded form with pytorch_model.bin.index.json. Tied weights come back as they were saved
// (aliases sharing storage). Any malformed file is one Error line naming the file.
// (at::Tensor is the same type as torch::Tensor; this header avoids <torch/torch.h> to stay light.)
#pragma once

#include <string>

#include "retort/state_dict.h"

namespace retort {

// Every tensor of the file, in the dict's order, on CPU.
StateDict load_torch_bin(const std::string& path);

// A sharded checkpoint: reads pytorch_model.bin.index.json and opens each shard it names once.
StateDict load_torch_bin_index(const std::string& index_path);

}  // namespace retort
