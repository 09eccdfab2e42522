// The DistilBERT training losses, with exactly the maths of Hugging Face's distillation example
// (examples/research_projects/distillation/distiller.py, Distiller.step): the soft-target KL term
// (alpha_ce), masked-LM cross-entropy (alpha_mlm), cosine alignment of last hidden states (alpha_cos),
// and the optional logit MSE (alpha_mse). Softmax / log-softmax and every reduction run in fp32 (fp64
// stays fp64), so bf16 / fp16 logits and autocast give the same loss as their fp32 upcast. Teacher
// tensors are targets: they are detached.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N selected positions (rows).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace retort {

// Selected-row convention shared by the logit losses: logits are (B, T, V) with a (B, T) mask (bool
// or {0,1} integers) choosing the rows, or already-gathered (N, V) rows with an undefined mask.
// A selection of zero rows gives a loss of 0 that is still connected to the graph (HF would give NaN).

// Soft-target loss (Hinton et al.; DistilBERT's L_ce):
//   L = T^2 * (1/N) * sum_n sum_v p_t[n,v] * (log p_t[n,v] - log p_s[n,v]),
//   p_t = softmax(teacher/T), log p_s = log_softmax(student/T),
// i.e. KLDivLoss(reduction="batchmean")(log p_s, p_t) * T^2 over the N selected rows.
// mask: non-padding positions (attention_mask), or the masked positions when restrict_ce_to_mask.
at::Tensor soft_target_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                            double temperature, const at::Tensor& mask = {});

// Masked-LM loss: L = -(1/N) * sum_{n: label != -100} log softmax(student[n])[label[n]], i.e.
// CrossEntropyLoss(ignore_index=-100), a mean over the predicted positions.
// student_logits (..., V), labels (...) int64 with -100 where nothing is predicted.
at::Tensor mlm_loss(const at::Tensor& student_logits, const at::Tensor& labels);

// Cosine alignment of hidden states: L = (1/N) * sum_n (1 - cos(s[n], t[n])) over the non-padding
// positions, i.e. CosineEmbeddingLoss(reduction="mean") with target 1, where
// cos(a, b) = a.b / sqrt((|a|^2 + 1e-12) (|b|^2 + 1e-12)) as torch computes it.
// student_hidden, teacher_hidden: (B, T, H) with attention_mask (B, T), or (N, H) with no mask.
at::Tensor cosine_hidden_loss(const at::Tensor& student_hidden, const at::Tensor& teacher_hidden,
                              const at::Tensor& attention_mask = {});

// HF's alpha_mse term: L = (1/N) * sum_n sum_v (s[n,v] - t[n,v])^2, i.e.
// MSELoss(reduction="sum")(s, t) / N over the N selected rows ("reproducing batchmean").
at::Tensor mse_logits_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                           const at::Tensor& mask = {});

// The weights of DistilBERT's total loss, with HF's names and the example's defaults.
struct DistillLossWeights {
  double temperature = 2.0;
  double alpha_ce = 5.0;
  double alpha_mlm = 2.0;
  double alpha_cos = 1.0;
  double alpha_mse = 0.0;
  double alpha_clm = 0.0;            // causal LM: does not apply to BERT students; must stay 0
  bool restrict_ce_to_mask = false;  // soft targets (and MSE) on masked positions only

  // Throws Error on temperature <= 0, a negative alpha, alpha_clm > 0, or every alpha 0 unless
  // `other_terms` (intermediate-layer terms, intermediate.h, carry the training).
  void validate(bool other_terms = false) const;
};

// What distillation_loss needs for one batch; tensors of terms whose alpha is 0 may stay undefined.
struct DistillLossInputs {
  at::Tensor student_logits;  // (B, T, V)
  at::Tensor teacher_logits;  // (B, T, V)
  at::Tensor labels;          // (B, T) int64, -100 where nothing is predicted
  at::Tensor attention_mask;  // (B, T) 1 on tokens, 0 on padding
  at::Tensor student_hidden;  // (B, T, H) last hidden state, for alpha_cos
  at::Tensor teacher_hidden;  // (B, T, H)
};

// The total and each term, as fp32 scalars (); a term whose alpha is 0 is undefined (not computed).
struct DistillLosses {
  at::Tensor total;
  at::Tensor ce, mlm, cos, mse;
  // The computed terms with HF's log names ("loss", "loss_ce", "loss_mlm", "loss_cos", "loss_mse").
  std::vector<std::pair<std::string, at::Tensor>> terms() const;
};

// L = alpha_ce L_ce + alpha_mlm L_mlm + alpha_mse L_mse + alpha_cos L_cos, as Distiller.step sums it.
// The soft-target and MSE rows are the non-padding positions, or labels != -100 with
// restrict_ce_to_mask; the cosine rows are always the non-padding positions.
DistillLosses distillation_loss(const DistillLossInputs& in, const DistillLossWeights& w);

}  // namespace retort
