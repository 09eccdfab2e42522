// Row selection and argument checks shared by the loss files (losses.cpp, intermediate.cpp).
//
// Dimensions: B batch, T sequence, X features, N selected rows.
#pragma once

#include <torch/torch.h>

namespace retort::detail {

// The dtype losses are computed in: fp64 stays fp64 (finite-difference tests), everything else fp32.
torch::ScalarType compute_dtype(const torch::Tensor& t);

// Throws unless t is a defined floating-point tensor; fn and name go into the message.
void check_float(const torch::Tensor& t, const char* fn, const char* name);

// (B, T, X) with a (B, T) mask -> the (N, X) rows where the mask is set; (N, X) with no mask -> itself.
torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& mask, const char* fn, const char* name);

// A zero that keeps the graph connected, for a selection of no rows. ()
torch::Tensor zero_loss(const torch::Tensor& like);

}  // namespace retort::detail
