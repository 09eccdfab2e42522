// One distillation step's forward pass and loss (see distill_step.h).
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N selected rows.
#include <ATen/autocast_mode.h>

#include <torch/torch.h>

#include "retort/distill_step.h"
#include "retort/error.h"

namespace retort {

AutocastGuard::AutocastGuard(bool enabled, const c10::Device& device) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
  if (cuda_) {
    prev_ = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    prev_ = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (cuda_) at::autocast::set_enabled(prev_);
  else at::autocast::set_cpu_enabled(prev_);
  at::autocast::clear_cache();
}

StepBatch to_step_batch(const MaskedBatch& mb, const c10::Device& device) {
  const auto B = static_cast<int64_t>(mb.rows), T = static_cast<int64_t>(mb.cols);
  auto i32 = [&](const std::vector<int32_t>& v) {
    return torch::from_blob(const_cast<int32_t*>(v.data()), {B, T}, torch::kInt).to(device, torch::kLong);
  };
  auto u8 = [&](const std::vector<uint8_t>& v) {
    return torch::from_blob(const_cast<uint8_t*>(v.data()), {B, T}, torch::kUInt8).to(device, torch::kLong);
  };
  StepBatch t;
  t.ids = i32(mb.input_ids);
  t.labels = i32(mb.labels);
  t.attention = u8(mb.attention_mask);
  t.predicted = u8(mb.pred_mask).to(torch::kBool);
  for (auto a : mb.attention_mask) t.tokens += a;
  return t;
}

StepLoss distillation_step_loss(ModelImpl& student, ModelImpl* teacher, const StepBatch& bt,
                                const DistillLossWeights& w, bool bf16_autocast, IntermediateDistillerImpl* inter) {
  if (inter && !inter->options.enabled()) inter = nullptr;
  const bool needs_teacher = w.alpha_ce > 0 || w.alpha_mse > 0 || w.alpha_cos > 0 || inter;
  check(teacher || !needs_teacher,
        "distillation step: alpha_ce, alpha_mse, alpha_cos or an intermediate term is set but there is no teacher");
  const bool vocab_terms = w.alpha_ce > 0 || w.alpha_mse > 0 || w.alpha_mlm > 0;
  const bool logits_on_masked_only = (w.alpha_ce == 0 && w.alpha_mse == 0) || w.restrict_ce_to_mask;
  const auto rows = logits_on_masked_only ? bt.predicted : bt.attention.to(torch::kBool);  // (B, T)
  const ForwardOptions fo = inter ? inter->forward_options() : ForwardOptions{};

  EncoderOutput t_out;               // hidden states / scores for the intermediate terms
  torch::Tensor t_hidden, t_logits;  // (B, T, H) fp32, (N, V)
  if (needs_teacher) {
    torch::NoGradGuard no_grad;
    t_out = teacher->bert->forward(bt.ids, bt.attention, {}, fo);
    t_hidden = t_out.last_hidden_state.to(torch::kFloat);
    if (w.alpha_ce > 0 || w.alpha_mse > 0) t_logits = teacher->mlm_logits(t_out.last_hidden_state.index({rows}));
  }
  StepLoss out;
  AutocastGuard autocast(bf16_autocast, bt.ids.device());
  const auto s_out = student.bert->forward(bt.ids, bt.attention, {}, fo);
  const auto& s_hidden = s_out.last_hidden_state;  // (B, T, H)
  torch::Tensor s_logits;                          // (N, V)
  if (vocab_terms) s_logits = student.mlm_logits(s_hidden.index({rows}));
  auto add = [&](const std::string& name, double alpha, const torch::Tensor& term) {
    out.terms[name] = term.detach();
    out.total = out.total.defined() ? out.total + alpha * term : alpha * term;
  };
  if (w.alpha_mlm > 0) add("loss_mlm", w.alpha_mlm, mlm_loss(s_logits, bt.labels.index({rows})));
  if (w.alpha_ce > 0) add("loss_ce", w.alpha_ce, soft_target_loss(s_logits, t_logits, w.temperature));
  if (w.alpha_mse > 0) add("loss_mse", w.alpha_mse, mse_logits_loss(s_logits, t_logits));
  if (w.alpha_cos > 0)
    add("loss_cos", w.alpha_cos, cosine_hidden_loss(s_hidden.to(torch::kFloat), t_hidden, bt.attention));
  if (inter) {
    const auto it = inter->losses(s_out, t_out, bt.attention);
    for (const auto& [name, term] : it.terms) out.terms[name] = term.detach();
    out.total = out.total.defined() ? out.total + it.total : it.total;
  }
  return out;
}

}  // namespace retort
