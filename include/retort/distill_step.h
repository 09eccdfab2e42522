// One distillation (or masked-LM pre-training) step's forward pass: teacher forward without gradients,
// student forward under optional bf16 autocast, the weighted triple loss. Shared by the distiller's
// loop and `retort bench-train`, so the benchmark times exactly the maths a run does.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N rows whose vocabulary logits a loss reads.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "retort/heads.h"
#include "retort/intermediate.h"
#include "retort/losses.h"
#include "retort/masking.h"

namespace retort {

// A masked batch on the training device.
struct StepBatch {
  torch::Tensor ids;        // (B, T) int64, after masking
  torch::Tensor attention;  // (B, T) int64 {0, 1}
  torch::Tensor labels;     // (B, T) int64, -100 where nothing is predicted
  torch::Tensor predicted;  // (B, T) bool
  int64_t tokens = 0;       // real (non-padding) tokens
};
StepBatch to_step_batch(const MaskedBatch& mb, const c10::Device& device);

struct StepLoss {
  torch::Tensor total;                          // () weighted sum, with the graph to the student
  std::map<std::string, torch::Tensor> terms;   // "loss_ce", "loss_mlm", "loss_cos", "loss_mse": () detached
};

// bf16 autocast on the device's autocast key (CPU or CUDA) for the guard's lifetime; no-op when disabled.
class AutocastGuard {
 public:
  AutocastGuard(bool enabled, const c10::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, cuda_, prev_ = false;
};

// The weights must have passed DistillLossWeights::validate(). `teacher` may be null only when every
// teacher-dependent weight (alpha_ce, alpha_mse, alpha_cos, the intermediate terms) is 0. Vocabulary
// logits are computed only at the masked positions when no soft-target term needs more (or
// restrict_ce_to_mask), else at every non-padding position, as the Hugging Face example does, and not
// at all when no vocabulary term is weighted (TinyBERT's general distillation). `intermediate` (may be
// null) adds TinyBERT's attention / hidden / embedding terms ("loss_att", "loss_hidden", "loss_emb").
StepLoss distillation_step_loss(ModelImpl& student, ModelImpl* teacher, const StepBatch& batch,
                                const DistillLossWeights& w, bool bf16_autocast,
                                IntermediateDistillerImpl* intermediate = nullptr);

}  // namespace retort
