// DistilBERT's losses (soft targets, masked LM, hidden-state cosine, logit MSE) and their weighted sum,
// following Hugging Face's distillation example term by term. Rows are selected before any softmax,
// so padding never contributes, and every softmax / reduction runs in fp32 (fp64 kept for tests). On the CPU,
// fp32/bf16 soft targets go through one fused kernel (kl_kernel.cpp: 2.5x faster at 1024 x 30522).
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N selected positions (rows).
#include <cmath>

#include <torch/torch.h>

#include "kl_kernel.h"
#include "loss_util.h"
#include "retort/error.h"
#include "retort/losses.h"

namespace retort {
namespace {

constexpr int64_t kIgnoreIndex = -100;  // HF's "nothing to predict here" label

}  // namespace

namespace detail {

// The dtype losses are computed in: fp64 stays fp64 (finite-difference tests), everything else fp32.
torch::ScalarType compute_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

void check_float(const torch::Tensor& t, const char* fn, const char* name) {
  check(t.defined(), fn, ": ", name, " is undefined");
  check(t.is_floating_point(), fn, ": ", name, " must be a floating-point tensor, got ", t.scalar_type());
}

// (B, T, X) with a (B, T) mask -> the (N, X) rows where the mask is set; (N, X) with no mask -> itself.
torch::Tensor select_rows(const torch::Tensor& x, const torch::Tensor& mask, const char* fn, const char* name) {
  if (!mask.defined()) {
    check(x.dim() == 2, fn, ": ", name, " must be (N, features) when no mask is given, got shape ", x.sizes());
    return x;
  }
  check(x.dim() == 3, fn, ": ", name, " must be (batch, seq, features) with a mask, got shape ", x.sizes());
  check(mask.dim() == 2 && mask.size(0) == x.size(0) && mask.size(1) == x.size(1), fn, ": mask has shape ",
        mask.sizes(), ", expected (", x.size(0), ", ", x.size(1), ") to match ", name, " ", x.sizes());
  const auto keep = mask.scalar_type() == torch::kBool ? mask : mask.ne(0);  // (B, T) bool
  return x.index({keep});                                                     // (N, X)
}

// A zero that keeps the graph connected, for a selection of no rows.
torch::Tensor zero_loss(const torch::Tensor& like) {
  return like.to(compute_dtype(like)).sum() * 0.0;  // ()
}

}  // namespace detail

using detail::check_float;
using detail::compute_dtype;
using detail::select_rows;
using detail::zero_loss;

torch::Tensor soft_target_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                               double temperature, const torch::Tensor& mask) {
  const char* fn = "soft_target_loss";
  check(std::isfinite(temperature) && temperature > 0, fn, ": temperature must be positive, got ", temperature);
  check_float(student_logits, fn, "student_logits");
  check_float(teacher_logits, fn, "teacher_logits");
  check(student_logits.sizes() == teacher_logits.sizes(), fn, ": student logits ", student_logits.sizes(),
        " and teacher logits ", teacher_logits.sizes(), " differ in shape");
  auto s = select_rows(student_logits, mask, fn, "student_logits");           // (N, V)
  auto t = select_rows(teacher_logits.detach(), mask, fn, "teacher_logits");  // (N, V)
  const int64_t n = s.size(0);
  if (n == 0) return zero_loss(s);
  if (detail::fused_kl_supported(s, t)) return detail::fused_soft_target_loss(s, t, temperature);
  const auto dtype = compute_dtype(student_logits);  // fp64, or a device the fused kernel does not cover
  auto log_ps = torch::log_softmax(s.to(dtype) / temperature, -1);  // (N, V)
  auto log_pt = torch::log_softmax(t.to(dtype) / temperature, -1);  // (N, V)
  // KLDivLoss(batchmean): summed over rows and vocabulary, divided by the number of rows.
  auto kl = torch::kl_div(log_ps, log_pt, at::Reduction::Sum, /*log_target=*/true) / static_cast<double>(n);
  return kl * (temperature * temperature);  // ()
}

torch::Tensor mlm_loss(const torch::Tensor& student_logits, const torch::Tensor& labels) {
  const char* fn = "mlm_loss";
  check_float(student_logits, fn, "student_logits");
  check(labels.defined(), fn, ": labels are undefined");
  check(labels.scalar_type() == torch::kLong, fn, ": labels must be int64, got ", labels.scalar_type());
  check(student_logits.dim() == labels.dim() + 1 &&
            student_logits.sizes().slice(0, static_cast<size_t>(labels.dim())) == labels.sizes(),
        fn, ": logits of shape ", student_logits.sizes(), " do not match labels of shape ", labels.sizes());
  const int64_t V = student_logits.size(-1);
  auto flat_labels = labels.reshape({-1});                             // (B*T)
  auto predicted = flat_labels.ne(kIgnoreIndex);                       // (B*T) bool
  auto rows = student_logits.reshape({-1, V}).index({predicted});      // (N, V)
  auto targets = flat_labels.index({predicted});                       // (N)
  if (targets.numel() == 0) return zero_loss(rows);
  const int64_t lo = targets.min().item<int64_t>(), hi = targets.max().item<int64_t>();
  check(lo >= 0 && hi < V, fn, ": labels must be -100 or in [0, ", V, "), got values in [", lo, ", ", hi, "]");
  auto log_p = torch::log_softmax(rows.to(compute_dtype(student_logits)), -1);  // (N, V)
  return torch::nll_loss(log_p, targets);  // () mean over the N predicted positions
}

torch::Tensor cosine_hidden_loss(const torch::Tensor& student_hidden, const torch::Tensor& teacher_hidden,
                                 const torch::Tensor& attention_mask) {
  const char* fn = "cosine_hidden_loss";
  check_float(student_hidden, fn, "student_hidden");
  check_float(teacher_hidden, fn, "teacher_hidden");
  check(student_hidden.sizes() == teacher_hidden.sizes(), fn, ": student hidden states ", student_hidden.sizes(),
        " and teacher hidden states ", teacher_hidden.sizes(), " differ in shape (a narrower student needs a projection)");
  auto s = select_rows(student_hidden, attention_mask, fn, "student_hidden");           // (N, H)
  auto t = select_rows(teacher_hidden.detach(), attention_mask, fn, "teacher_hidden");  // (N, H)
  if (s.size(0) == 0) return zero_loss(s);
  const auto dtype = compute_dtype(student_hidden);
  auto target = torch::ones({s.size(0)}, s.options().dtype(dtype));  // (N) "should be similar"
  return torch::cosine_embedding_loss(s.to(dtype), t.to(dtype), target, /*margin=*/0.0, at::Reduction::Mean);
}

torch::Tensor mse_logits_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& mask) {
  const char* fn = "mse_logits_loss";
  check_float(student_logits, fn, "student_logits");
  check_float(teacher_logits, fn, "teacher_logits");
  check(student_logits.sizes() == teacher_logits.sizes(), fn, ": student logits ", student_logits.sizes(),
        " and teacher logits ", teacher_logits.sizes(), " differ in shape");
  auto s = select_rows(student_logits, mask, fn, "student_logits");           // (N, V)
  auto t = select_rows(teacher_logits.detach(), mask, fn, "teacher_logits");  // (N, V)
  const int64_t n = s.size(0);
  if (n == 0) return zero_loss(s);
  const auto dtype = compute_dtype(student_logits);
  return torch::mse_loss(s.to(dtype), t.to(dtype), at::Reduction::Sum) / static_cast<double>(n);  // ()
}

void DistillLossWeights::validate(bool other_terms) const {
  check(std::isfinite(temperature) && temperature > 0, "distillation loss: temperature must be positive, got ",
        temperature);
  const std::pair<const char*, double> alphas[] = {
      {"alpha_ce", alpha_ce}, {"alpha_mlm", alpha_mlm}, {"alpha_cos", alpha_cos},
      {"alpha_mse", alpha_mse}, {"alpha_clm", alpha_clm}};
  for (const auto& [name, value] : alphas) {
    check(std::isfinite(value) && value >= 0, "distillation loss: ", name, " must be >= 0, got ", value);
  }
  check(alpha_clm == 0, "distillation loss: alpha_clm = ", alpha_clm,
        ": the causal-LM loss does not apply to BERT students (they are masked LMs); set alpha_clm to 0 "
        "and weight the masked-LM loss with alpha_mlm");
  check(other_terms || alpha_ce > 0 || alpha_mlm > 0 || alpha_cos > 0 || alpha_mse > 0,
        "distillation loss: every alpha is 0, so there is nothing to train on");
}

std::vector<std::pair<std::string, torch::Tensor>> DistillLosses::terms() const {
  std::vector<std::pair<std::string, torch::Tensor>> out = {{"loss", total}};
  if (ce.defined()) out.emplace_back("loss_ce", ce);
  if (mlm.defined()) out.emplace_back("loss_mlm", mlm);
  if (mse.defined()) out.emplace_back("loss_mse", mse);
  if (cos.defined()) out.emplace_back("loss_cos", cos);
  return out;
}

DistillLosses distillation_loss(const DistillLossInputs& in, const DistillLossWeights& w) {
  w.validate();
  const char* fn = "distillation_loss";
  DistillLosses out;
  auto add = [&out](double alpha, const torch::Tensor& term) {
    out.total = out.total.defined() ? out.total + alpha * term : alpha * term;  // ()
  };
  // The rows the soft targets and the MSE see: real tokens, or only the positions to predict.
  torch::Tensor s, t;  // (N, V)
  if (w.alpha_ce > 0 || w.alpha_mse > 0) {
    check(in.labels.defined() || !w.restrict_ce_to_mask, fn, ": restrict_ce_to_mask needs the MLM labels");
    check(in.attention_mask.defined() || w.restrict_ce_to_mask, fn, ": the attention mask is undefined");
    const torch::Tensor rows = w.restrict_ce_to_mask ? in.labels.ne(kIgnoreIndex) : in.attention_mask;  // (B, T)
    check_float(in.student_logits, fn, "student_logits");
    check_float(in.teacher_logits, fn, "teacher_logits");
    check(in.student_logits.sizes() == in.teacher_logits.sizes(), fn, ": student logits ",
          in.student_logits.sizes(), " and teacher logits ", in.teacher_logits.sizes(), " differ in shape");
    s = select_rows(in.student_logits, rows, fn, "student_logits");           // (N, V)
    t = select_rows(in.teacher_logits.detach(), rows, fn, "teacher_logits");  // (N, V)
  }
  // Summed in Distiller.step's order, so the total rounds the same way.
  if (w.alpha_ce > 0) {
    out.ce = soft_target_loss(s, t, w.temperature);
    add(w.alpha_ce, out.ce);
  }
  if (w.alpha_mlm > 0) {
    out.mlm = mlm_loss(in.student_logits, in.labels);
    add(w.alpha_mlm, out.mlm);
  }
  if (w.alpha_mse > 0) {
    out.mse = mse_logits_loss(s, t);
    add(w.alpha_mse, out.mse);
  }
  if (w.alpha_cos > 0) {
    check(in.student_hidden.defined() && in.teacher_hidden.defined(), fn,
          ": alpha_cos > 0 needs the student's and the teacher's last hidden states");
    check(in.attention_mask.defined(), fn, ": the attention mask is undefined");
    out.cos = cosine_hidden_loss(in.student_hidden, in.teacher_hidden, in.attention_mask);
    add(w.alpha_cos, out.cos);
  }
  return out;
}

}  // namespace retort
