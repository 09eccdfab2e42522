// TinyBERT's intermediate-layer losses, layer mapping and projections (see intermediate.h).
//
// Dimensions: B batch, T sequence, Hs / Ht student / teacher hidden, N heads, M student layers,
// L teacher layers, C classes, R selected rows.
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "loss_util.h"
#include "retort/error.h"
#include "retort/intermediate.h"
#include "retort/json_field.h"

namespace retort {

using detail::check_float;
using detail::compute_dtype;
using detail::select_rows;
using detail::zero_loss;

// ---- losses -----------------------------------------------------------------------------------------

namespace {

// Both (B, N, T, T) floating-point score tensors of one shape.
void check_scores(const char* fn, const torch::Tensor& s, const torch::Tensor& t) {
  check_float(s, fn, "student_scores");
  check_float(t, fn, "teacher_scores");
  check(s.dim() == 4, fn, ": scores must be (batch, heads, seq, seq), got ", s.sizes());
  check(s.sizes() == t.sizes(), fn, ": student scores ", s.sizes(), " and teacher scores ", t.sizes(),
        " differ in shape (attention transfer needs the same number of heads)");
}

}  // namespace

torch::Tensor hidden_mse_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                              const torch::Tensor& attention_mask) {
  const char* fn = "hidden_mse_loss";
  check_float(student, fn, "student");
  check_float(teacher, fn, "teacher");
  check(student.sizes() == teacher.sizes(), fn, ": student ", student.sizes(), " and teacher ", teacher.sizes(),
        " differ in shape (project the student to the teacher's width first)");
  auto s = select_rows(student, attention_mask, fn, "student");           // (R, H)
  auto t = select_rows(teacher.detach(), attention_mask, fn, "teacher");  // (R, H)
  if (s.numel() == 0) return zero_loss(s);
  const auto dtype = compute_dtype(student);
  return torch::mse_loss(s.to(dtype), t.to(dtype));  // () mean over R * H
}

torch::Tensor attention_mse_loss(const torch::Tensor& student_scores, const torch::Tensor& teacher_scores,
                                 const torch::Tensor& attention_mask) {
  const char* fn = "attention_mse_loss";
  check_scores(fn, student_scores, teacher_scores);
  const auto dtype = compute_dtype(student_scores);
  auto diff = student_scores.to(dtype) - teacher_scores.detach().to(dtype);  // (B, N, T, T)
  if (!attention_mask.defined()) return diff.numel() == 0 ? zero_loss(diff) : diff.pow(2).mean();
  const int64_t B = student_scores.size(0), T = student_scores.size(2);
  check(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == T, fn,
        ": attention mask has shape ", attention_mask.sizes(), ", expected (", B, ", ", T, ")");
  auto m = attention_mask.ne(0).to(dtype);                        // (B, T)
  auto pairs = m.unsqueeze(1).unsqueeze(3) * m.unsqueeze(1).unsqueeze(2);  // (B, 1, T, T): query and key real
  const double count = pairs.sum().item<double>() * static_cast<double>(student_scores.size(1));
  if (count == 0) return zero_loss(diff);
  return (diff.pow(2) * pairs).sum() / count;  // ()
}

torch::Tensor attention_kl_loss(const torch::Tensor& student_scores, const torch::Tensor& teacher_scores,
                                const torch::Tensor& attention_mask) {
  const char* fn = "attention_kl_loss";
  check_scores(fn, student_scores, teacher_scores);
  const auto dtype = compute_dtype(student_scores);
  const int64_t B = student_scores.size(0), N = student_scores.size(1), T = student_scores.size(2);
  auto s = student_scores.to(dtype), t = teacher_scores.detach().to(dtype);  // (B, N, T, T)
  torch::Tensor rows;  // (B, 1, T) 1 on real queries
  if (attention_mask.defined()) {
    check(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == T, fn,
          ": attention mask has shape ", attention_mask.sizes(), ", expected (", B, ", ", T, ")");
    auto m = attention_mask.ne(0).to(dtype);  // (B, T)
    // A large finite negative (not -inf) on padded keys, so 0 * (log p_t - log p_s) stays 0, not NaN.
    auto additive = (1.0 - m).unsqueeze(1).unsqueeze(2) * -1e9;  // (B, 1, 1, T)
    s = s + additive;
    t = t + additive;
    rows = m.unsqueeze(1);
  } else {
    rows = torch::ones({B, 1, T}, s.options());
  }
  auto log_ps = torch::log_softmax(s, -1), log_pt = torch::log_softmax(t, -1);  // (B, N, T, T)
  auto kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1);                          // (B, N, T)
  const double count = rows.sum().item<double>() * static_cast<double>(N);
  if (count == 0) return zero_loss(s);
  return (kl * rows).sum() / count;  // ()
}

torch::Tensor soft_cross_entropy_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                      double temperature) {
  const char* fn = "soft_cross_entropy_loss";
  check(std::isfinite(temperature) && temperature > 0, fn, ": temperature must be positive, got ", temperature);
  check_float(student_logits, fn, "student_logits");
  check_float(teacher_logits, fn, "teacher_logits");
  check(student_logits.dim() == 2 && student_logits.sizes() == teacher_logits.sizes(), fn, ": student logits ",
        student_logits.sizes(), " and teacher logits ", teacher_logits.sizes(), " must both be (rows, classes)");
  if (student_logits.size(0) == 0) return zero_loss(student_logits);
  const auto dtype = compute_dtype(student_logits);
  auto log_ps = torch::log_softmax(student_logits.to(dtype) / temperature, -1);       // (R, C)
  auto pt = torch::softmax(teacher_logits.detach().to(dtype) / temperature, -1);      // (R, C)
  return -(pt * log_ps).sum(-1).mean();  // ()
}

// ---- layer mapping --------------------------------------------------------------------------------

LayerMap uniform_layer_map(int64_t M, int64_t L) {
  check(M > 0 && L > 0, "layer map: layer counts must be positive (student ", M, ", teacher ", L, ")");
  check(M <= L, "layer map: the student has more layers (", M, ") than the teacher (", L,
        "); give an explicit layer_map");
  check(L % M == 0, "layer map: the uniform mapping needs the teacher's ", L, " layers to be a multiple of the student's ",
        M, "; give an explicit layer_map (", M, " teacher layers, 1-based, e.g. the last of each block)");
  const int64_t k = L / M;
  LayerMap map;
  for (int64_t m = 0; m <= M; ++m) map.hidden.push_back(m * k);
  for (int64_t m = 0; m < M; ++m) map.attention.push_back((m + 1) * k - 1);
  return map;
}

LayerMap explicit_layer_map(const std::vector<int64_t>& teacher_layers, int64_t M, int64_t L) {
  check(static_cast<int64_t>(teacher_layers.size()) == M, "layer map: ", teacher_layers.size(),
        " teacher layers given for a student of ", M, " layers (one per student layer)");
  LayerMap map;
  map.hidden.push_back(0);
  for (size_t i = 0; i < teacher_layers.size(); ++i) {
    const int64_t g = teacher_layers[i];
    check(g >= 1 && g <= L, "layer map: teacher layer ", g, " (entry ", i, ") is outside 1..", L,
          " (teacher layers are 1-based; 0 is the embedding layer, mapped implicitly)");
    check(i == 0 || g > teacher_layers[i - 1], "layer map: teacher layers must be strictly increasing, got ", g,
          " after ", teacher_layers[i - 1]);
    map.hidden.push_back(g);
    map.attention.push_back(g - 1);
  }
  return map;
}

// ---- configuration --------------------------------------------------------------------------------

ProjectionKind parse_projection(const std::string& s) {
  if (s == "shared") return ProjectionKind::Shared;
  if (s == "per_layer") return ProjectionKind::PerLayer;
  if (s == "none") return ProjectionKind::None;
  fail("unknown projection '", s, "' (expected shared, per_layer or none)");
}

std::string projection_name(ProjectionKind p) {
  switch (p) {
    case ProjectionKind::Shared: return "shared";
    case ProjectionKind::PerLayer: return "per_layer";
    case ProjectionKind::None: return "none";
  }
  return "?";
}

void IntermediateOptions::validate() const {
  const std::pair<const char*, double> alphas[] = {
      {"alpha_att", alpha_att}, {"alpha_hidden", alpha_hidden}, {"alpha_emb", alpha_emb}};
  for (const auto& [name, value] : alphas) {
    check(std::isfinite(value) && value >= 0, "intermediate distillation: ", name, " must be >= 0, got ", value);
  }
}

void IntermediateOptions::read(const nlohmann::json& j, const char* context) {
  read_field(j, "alpha_att", alpha_att, context);
  read_field(j, "alpha_hidden", alpha_hidden, context);
  read_field(j, "alpha_emb", alpha_emb, context);
  auto it = j.find("layer_map");
  if (it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      check(it->get<std::string>() == "uniform", context, ": layer_map must be \"uniform\" or a list of teacher layers, got \"",
            it->get<std::string>(), "\"");
      layer_map.clear();
    } else {
      read_field(j, "layer_map", layer_map, context);
    }
  }
  std::string p;
  if (read_field(j, "projection", p, context) && !p.empty()) projection = parse_projection(p);
  std::string a;
  if (read_field(j, "attention_loss", a, context) && !a.empty()) {
    check(a == "mse" || a == "kl", context, ": attention_loss must be \"mse\" (TinyBERT) or \"kl\" (MobileBERT), got \"",
          a, "\"");
    attention_loss = a == "kl" ? AttentionLoss::Kl : AttentionLoss::Mse;
  }
  validate();
}

void IntermediateOptions::write(nlohmann::json& j) const {
  j["alpha_att"] = alpha_att;
  j["alpha_hidden"] = alpha_hidden;
  j["alpha_emb"] = alpha_emb;
  j["layer_map"] = layer_map.empty() ? nlohmann::json("uniform") : nlohmann::json(layer_map);
  j["projection"] = projection_name(projection);
  j["attention_loss"] = attention_loss == AttentionLoss::Kl ? "kl" : "mse";
}

LayerMap IntermediateOptions::map(int64_t student_layers, int64_t teacher_layers) const {
  return layer_map.empty() ? uniform_layer_map(student_layers, teacher_layers)
                           : explicit_layer_map(layer_map, student_layers, teacher_layers);
}

// ---- the distiller module -------------------------------------------------------------------------

IntermediateDistillerImpl::IntermediateDistillerImpl(const ModelConfig& s, const ModelConfig& t,
                                                     const IntermediateOptions& opt, uint64_t seed)
    : options(opt) {
  opt.validate();
  layer_map = opt.map(s.num_hidden_layers, t.num_hidden_layers);
  check(opt.alpha_att == 0 || s.num_attention_heads == t.num_attention_heads,
        "attention transfer (alpha_att) needs the same number of heads: student ", s.num_attention_heads,
        ", teacher ", t.num_attention_heads);
  const bool hidden_terms = opt.alpha_hidden > 0 || opt.alpha_emb > 0;
  check(!hidden_terms || opt.projection != ProjectionKind::None || s.hidden_size == t.hidden_size,
        "projection \"none\" needs equal hidden sizes (student ", s.hidden_size, ", teacher ", t.hidden_size,
        "); use \"shared\" or \"per_layer\"");
  fit_dense = register_module("fit_dense", torch::nn::ModuleList());
  if (!hidden_terms || opt.projection == ProjectionKind::None) return;
  const int64_t n = opt.projection == ProjectionKind::Shared ? 1 : s.num_hidden_layers + 1;
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < n; ++i) {
    torch::nn::Linear w(s.hidden_size, t.hidden_size);  // weight (Ht, Hs)
    w->weight.normal_(0.0, s.initializer_range, gen);   // BERT's initialisation, as TinyBERT's fit_dense
    w->bias.zero_();
    fit_dense->push_back(w);
  }
}

ForwardOptions IntermediateDistillerImpl::forward_options() const {
  ForwardOptions f;
  f.hidden_states = options.alpha_hidden > 0 || options.alpha_emb > 0;
  f.attention_scores = options.alpha_att > 0;
  return f;
}

torch::Tensor IntermediateDistillerImpl::project(int64_t m, const torch::Tensor& hidden) {
  if (fit_dense->size() == 0) return hidden;
  const size_t i = fit_dense->size() == 1 ? 0 : static_cast<size_t>(m);
  return fit_dense->ptr<torch::nn::LinearImpl>(i)->forward(hidden);
}

IntermediateDistillerImpl::Terms IntermediateDistillerImpl::losses(const EncoderOutput& s, const EncoderOutput& t,
                                                                   const torch::Tensor& attention_mask) {
  Terms out;
  auto add = [&](const char* name, double alpha, const torch::Tensor& term) {
    out.terms[name] = term;
    out.total = out.total.defined() ? out.total + alpha * term : alpha * term;
  };
  const int64_t M = static_cast<int64_t>(layer_map.attention.size());
  const int64_t only = options.only_layer;
  check(only < M, "intermediate distillation: only_layer ", only, " but the student has ", M, " layers");
  const int64_t first = only >= 0 ? only : 0, last = only >= 0 ? only + 1 : M;  // student layers [first, last)
  if (options.alpha_att > 0) {
    check(static_cast<int64_t>(s.attention_scores.size()) == M, "attention transfer: the student returned ",
          s.attention_scores.size(), " score tensors for ", M, " layers");
    torch::Tensor sum;
    for (int64_t m = first; m < last; ++m) {
      const auto g = static_cast<size_t>(layer_map.attention[m]);
      check(g < t.attention_scores.size(), "attention transfer: the teacher has no layer ", g);
      auto l = options.attention_loss == AttentionLoss::Kl
                   ? attention_kl_loss(s.attention_scores[m], t.attention_scores[g], attention_mask)
                   : attention_mse_loss(s.attention_scores[m], t.attention_scores[g], attention_mask);
      sum = sum.defined() ? sum + l : l;
    }
    add("loss_att", options.alpha_att, sum);
  }
  auto hidden_term = [&](int64_t m) {
    const auto g = static_cast<size_t>(layer_map.hidden[m]);
    check(g < t.hidden_states.size(), "hidden-state transfer: the teacher has no hidden state ", g);
    check(static_cast<size_t>(m) < s.hidden_states.size(), "hidden-state transfer: the student has no hidden state ", m);
    return hidden_mse_loss(project(m, s.hidden_states[m]), t.hidden_states[g], attention_mask);
  };
  if (options.alpha_emb > 0 && first == 0) add("loss_emb", options.alpha_emb, hidden_term(0));
  if (options.alpha_hidden > 0) {
    torch::Tensor sum;
    for (int64_t m = first + 1; m <= last; ++m) sum = sum.defined() ? sum + hidden_term(m) : hidden_term(m);
    add("loss_hidden", options.alpha_hidden, sum);
  }
  return out;
}

}  // namespace retort
