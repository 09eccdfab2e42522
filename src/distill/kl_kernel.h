// A fused CPU kernel for the soft-target loss: KL(softmax(t/T) || softmax(s/T)) * T^2 / N over N rows and
// its gradient with respect to s, in one pass over the (N, V) logits instead of the eight or so passes
// (casts, divisions, two log-softmaxes, kl_div, and their backward) the operator-by-operator version makes.
#pragma once

#include <torch/torch.h>

namespace retort::detail {

// True when the fused kernel handles these tensors: CPU, 2-D, fp32 or bf16, same shape.
bool fused_kl_supported(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits);

// student (N, V) fp32/bf16, teacher (N, V) fp32/bf16 (no gradient). Returns the loss () fp32, with an
// autograd node whose backward scales a gradient computed alongside the loss.
torch::Tensor fused_soft_target_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                     double temperature);

}  // namespace retort::detail
