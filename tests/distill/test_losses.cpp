// DistilBERT losses against values computed here with plain loops (not the same torch expressions),
// padding that must not matter, bf16 inputs computed in fp32, the weighted total and its refusals, and
// finite-difference gradient checks in double precision for every loss w.r.t. the student's inputs.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N selected rows.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "retort/error.h"
#include "retort/losses.h"
#include "grad_check.h"
#include "test_paths.h"

namespace retort {
namespace {

constexpr int64_t B = 2, T = 3, V = 5, H = 4;

// Deterministic, irregular values so no two rows are alike. (B, T, X) double.
torch::Tensor wave(int64_t X, double phase, double scale) {
  auto out = torch::empty({B, T, X}, torch::kDouble);  // (B, T, X)
  auto a = out.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t x = 0; x < X; ++x) a[b][t][x] = scale * std::sin(phase + 1.3 * b + 0.7 * t + 2.1 * x + 0.1 * x * x);
  return out;
}

// Last position of the second sequence is padding.
torch::Tensor pad_mask() {
  auto m = torch::ones({B, T}, torch::kLong);  // (B, T)
  m[1][T - 1] = 0;
  return m;
}

torch::Tensor mlm_labels() {
  auto l = torch::full({B, T}, -100, torch::kLong);  // (B, T)
  l[0][1] = 3;
  l[1][0] = 0;
  l[1][1] = 4;
  return l;
}

double at3(const torch::Tensor& x, int64_t b, int64_t t, int64_t v) { return x.accessor<double, 3>()[b][t][v]; }

// The (b, t) positions where `mask` is non-zero, in row-major order.
std::vector<std::pair<int64_t, int64_t>> selected(const torch::Tensor& mask) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const auto as_long = mask.to(torch::kLong);  // (B, T)
  auto m = as_long.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      if (m[b][t] != 0) out.emplace_back(b, t);
  return out;
}

double expected_soft_target(const torch::Tensor& s, const torch::Tensor& t, double temp, const torch::Tensor& mask) {
  const auto rows = selected(mask);
  double total = 0;
  for (auto [b, p] : rows) {
    double zs = 0, zt = 0;
    for (int64_t v = 0; v < V; ++v) {
      zs += std::exp(at3(s, b, p, v) / temp);
      zt += std::exp(at3(t, b, p, v) / temp);
    }
    for (int64_t v = 0; v < V; ++v) {
      const double pt = std::exp(at3(t, b, p, v) / temp) / zt;
      const double log_ps = at3(s, b, p, v) / temp - std::log(zs);
      total += pt * (std::log(pt) - log_ps);
    }
  }
  return total / rows.size() * temp * temp;
}

double expected_mlm(const torch::Tensor& s, const torch::Tensor& labels) {
  auto l = labels.accessor<int64_t, 2>();
  double total = 0;
  int n = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      if (l[b][t] == -100) continue;
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(at3(s, b, t, v));
      total += -(at3(s, b, t, l[b][t]) - std::log(z));
      ++n;
    }
  return total / n;
}

double expected_cosine(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& mask) {
  const auto rows = selected(mask);
  double total = 0;
  for (auto [b, p] : rows) {
    double dot = 0, ns = 0, nt = 0;
    for (int64_t h = 0; h < H; ++h) {
      dot += at3(s, b, p, h) * at3(t, b, p, h);
      ns += at3(s, b, p, h) * at3(s, b, p, h);
      nt += at3(t, b, p, h) * at3(t, b, p, h);
    }
    total += 1.0 - dot / std::sqrt((ns + 1e-12) * (nt + 1e-12));
  }
  return total / rows.size();
}

double expected_mse(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& mask) {
  const auto rows = selected(mask);
  double total = 0;
  for (auto [b, p] : rows)
    for (int64_t v = 0; v < V; ++v) total += std::pow(at3(s, b, p, v) - at3(t, b, p, v), 2);
  return total / rows.size();
}

// Central differences against autograd, element by element, in double precision.
using test::error_of;

TEST(SoftTargetLoss, MatchesKlDivergenceComputedByHand) {
  const auto s = wave(V, 0.0, 3.0), t = wave(V, 0.5, 2.0);  // (B, T, V)
  const auto mask = pad_mask();
  for (double temp : {1.0, 2.0, 0.5}) {
    const double want = expected_soft_target(s, t, temp, mask);
    EXPECT_NEAR(soft_target_loss(s, t, temp, mask).item<double>(), want, 1e-12) << temp;
    EXPECT_NEAR(soft_target_loss(s.to(torch::kFloat), t.to(torch::kFloat), temp, mask).item<double>(), want, 1e-5);
    EXPECT_NEAR(soft_target_loss(s, t, temp, mask.to(torch::kBool)).item<double>(), want, 1e-12);
  }
  // Already-gathered (N, V) rows: the five real positions.
  auto keep = pad_mask().to(torch::kBool);  // (B, T)
  EXPECT_NEAR(soft_target_loss(s.index({keep}), t.index({keep}), 2.0).item<double>(),
              expected_soft_target(s, t, 2.0, mask), 1e-12);
  // Identical distributions: zero.
  EXPECT_NEAR(soft_target_loss(s, s, 2.0, mask).item<double>(), 0.0, 1e-12);
}

// fp32 and bf16 logits go through the fused CPU kernel; fp64 through the operator-by-operator path the
// finite-difference test checks. Both must agree, gradient included, with padding lanes (V not a multiple
// of 16), wide logit ranges (exp underflow) and several temperatures.
TEST(SoftTargetLoss, FusedKernelMatchesTheReferencePath) {
  torch::manual_seed(3);
  for (int64_t v : {1, 17, 1037}) {
    for (double spread : {1.0, 30.0}) {
      for (double temp : {1.0, 2.0, 4.0}) {
        auto s64 = (torch::randn({9, v}, torch::kDouble) * spread).set_requires_grad(true);  // (N, V)
        auto t64 = torch::randn({9, v}, torch::kDouble) * spread;                            // (N, V)
        auto ref = soft_target_loss(s64, t64, temp);
        ref.backward();
        auto s32 = s64.detach().to(torch::kFloat).set_requires_grad(true);
        auto got = soft_target_loss(s32, t64.to(torch::kFloat), temp);
        (got * 3.0).backward();  // the upstream gradient is applied
        const std::string at = "v " + std::to_string(v) + " spread " + std::to_string(spread) + " T " + std::to_string(temp);
        EXPECT_EQ(got.scalar_type(), torch::kFloat) << at;
        EXPECT_NEAR(got.item<double>(), ref.item<double>(), 2e-5 * std::max(1.0, ref.item<double>())) << at;
        EXPECT_LT((s32.grad().to(torch::kDouble) - 3.0 * s64.grad()).abs().max().item<double>(), 1e-6) << at;
      }
    }
  }
}

TEST(SoftTargetLoss, FusedKernelTakesBf16LogitsAndGivesABf16Gradient) {
  torch::manual_seed(4);
  auto s = (torch::randn({5, 301}) * 4).to(torch::kBFloat16).set_requires_grad(true);  // (N, V)
  auto t = (torch::randn({5, 301}) * 4).to(torch::kBFloat16);                          // (N, V)
  auto s64 = s.detach().to(torch::kDouble).set_requires_grad(true);  // the same (rounded) values in fp64
  auto ref = soft_target_loss(s64, t.to(torch::kDouble), 2.0);
  ref.backward();
  auto got = soft_target_loss(s, t, 2.0);
  got.backward();
  EXPECT_NEAR(got.item<double>(), ref.item<double>(), 1e-5 * std::max(1.0, ref.item<double>()));
  ASSERT_EQ(s.grad().scalar_type(), torch::kBFloat16);
  // bf16 keeps 8 bits of mantissa: the gradient within 2^-8 of its magnitude.
  const auto g = s64.grad();
  EXPECT_LT((s.grad().to(torch::kDouble) - g).abs().max().item<double>(), g.abs().max().item<double>() / 256);
  // Mixed: a bf16 teacher with an fp32 student.
  auto s32 = s.detach().to(torch::kFloat).set_requires_grad(true);
  EXPECT_NEAR(soft_target_loss(s32, t, 2.0).item<double>(), ref.item<double>(), 1e-5 * std::max(1.0, ref.item<double>()));
}

TEST(SoftTargetLoss, PaddedRowsChangeNothing) {
  auto s = wave(V, 0.0, 3.0), t = wave(V, 0.5, 2.0);  // (B, T, V)
  const double before = soft_target_loss(s, t, 2.0, pad_mask()).item<double>();
  s[1][T - 1].fill_(1e4);
  t[1][T - 1].fill_(-7.0);
  EXPECT_EQ(soft_target_loss(s, t, 2.0, pad_mask()).item<double>(), before);
  // ... while the padded row does count when the mask says it is real.
  EXPECT_NE(soft_target_loss(s, t, 2.0, torch::ones({B, T}, torch::kLong)).item<double>(), before);
}

TEST(SoftTargetLoss, BadInputsAreErrors) {
  const auto s = wave(V, 0.0, 1.0);  // (B, T, V)
  EXPECT_NE(error_of([&] { soft_target_loss(s, s, 0.0, pad_mask()); }).find("temperature must be positive"), std::string::npos);
  EXPECT_NE(error_of([&] { soft_target_loss(s, wave(V + 1, 0, 1), 2.0, pad_mask()); }).find("differ in shape"), std::string::npos);
  EXPECT_NE(error_of([&] { soft_target_loss(s, s, 2.0, torch::ones({B, T + 1})); }).find("mask has shape"), std::string::npos);
  EXPECT_NE(error_of([&] { soft_target_loss(s, s, 2.0); }).find("(N, features)"), std::string::npos);
}

TEST(SoftTargetLoss, NoSelectedRowsGivesZeroNotNan) {
  auto s = wave(V, 0.0, 1.0).set_requires_grad(true);  // (B, T, V)
  auto loss = soft_target_loss(s, wave(V, 1.0, 1.0), 2.0, torch::zeros({B, T}, torch::kLong));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_EQ(s.grad().abs().sum().item<double>(), 0.0);
}

TEST(MlmLoss, MatchesCrossEntropyComputedByHand) {
  const auto s = wave(V, 0.3, 2.5);  // (B, T, V)
  const auto labels = mlm_labels();
  const double want = expected_mlm(s, labels);
  EXPECT_NEAR(mlm_loss(s, labels).item<double>(), want, 1e-12);
  EXPECT_NEAR(mlm_loss(s.to(torch::kFloat), labels).item<double>(), want, 1e-5);
  // Logits at ignored positions do not matter.
  auto s2 = s.clone();
  s2[0][0].fill_(50.0);
  s2[1][2].fill_(-50.0);
  EXPECT_EQ(mlm_loss(s2, labels).item<double>(), mlm_loss(s, labels).item<double>());
}

TEST(MlmLoss, BadLabelsAreErrorsAndNoLabelsGiveZero) {
  const auto s = wave(V, 0.3, 2.5);  // (B, T, V)
  auto labels = mlm_labels();
  labels[0][0] = V;
  EXPECT_NE(error_of([&] { mlm_loss(s, labels); }).find("labels must be -100 or in [0, 5)"), std::string::npos);
  EXPECT_NE(error_of([&] { mlm_loss(s, mlm_labels().to(torch::kInt)); }).find("int64"), std::string::npos);
  EXPECT_NE(error_of([&] { mlm_loss(s, torch::zeros({B, T + 1}, torch::kLong)); }).find("do not match"), std::string::npos);
  EXPECT_EQ(mlm_loss(s, torch::full({B, T}, -100, torch::kLong)).item<double>(), 0.0);
}

TEST(CosineHiddenLoss, MatchesOneMinusCosineComputedByHand) {
  const auto s = wave(H, 0.2, 1.0), t = wave(H, 1.9, 0.7);  // (B, T, H)
  const auto mask = pad_mask();
  const double want = expected_cosine(s, t, mask);
  EXPECT_NEAR(cosine_hidden_loss(s, t, mask).item<double>(), want, 1e-12);
  EXPECT_NEAR(cosine_hidden_loss(s.to(torch::kFloat), t.to(torch::kFloat), mask).item<double>(), want, 1e-6);
  // Parallel vectors of any length: zero; opposite: two.
  EXPECT_NEAR(cosine_hidden_loss(s, 3.0 * s, mask).item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(cosine_hidden_loss(s, -s, mask).item<double>(), 2.0, 1e-12);
  auto s2 = s.clone();
  s2[1][T - 1].fill_(-100.0);
  EXPECT_EQ(cosine_hidden_loss(s2, t, mask).item<double>(), cosine_hidden_loss(s, t, mask).item<double>());
  EXPECT_NE(error_of([&] { cosine_hidden_loss(s, wave(H + 1, 0, 1), mask); }).find("differ in shape"), std::string::npos);
}

TEST(MseLogitsLoss, IsSumOfSquaresOverSelectedRows) {
  const auto s = wave(V, 0.0, 3.0), t = wave(V, 0.5, 2.0);  // (B, T, V)
  const auto mask = pad_mask();
  EXPECT_NEAR(mse_logits_loss(s, t, mask).item<double>(), expected_mse(s, t, mask), 1e-12);
  auto s2 = s.clone();
  s2[1][T - 1].fill_(99.0);
  EXPECT_EQ(mse_logits_loss(s2, t, mask).item<double>(), mse_logits_loss(s, t, mask).item<double>());
}

TEST(LossGradients, MatchFiniteDifferences) {
  const auto mask = pad_mask();
  const auto t_logits = wave(V, 0.5, 2.0), t_hidden = wave(H, 1.9, 0.7);  // (B, T, V), (B, T, H)
  const auto labels = mlm_labels();
  {
    SCOPED_TRACE("soft_target_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return soft_target_loss(s, t_logits, 2.0, mask); },
                           wave(V, 0.0, 3.0));
  }
  {
    SCOPED_TRACE("soft_target_loss T=0.7");
    test::expect_gradients_match([&](const torch::Tensor& s) { return soft_target_loss(s, t_logits, 0.7, mask); },
                           wave(V, 0.0, 3.0));
  }
  {
    SCOPED_TRACE("mlm_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return mlm_loss(s, labels); }, wave(V, 0.3, 2.5));
  }
  {
    SCOPED_TRACE("cosine_hidden_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return cosine_hidden_loss(s, t_hidden, mask); },
                           wave(H, 0.2, 1.0));
  }
  {
    SCOPED_TRACE("mse_logits_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return mse_logits_loss(s, t_logits, mask); },
                           wave(V, 0.0, 3.0));
  }
  {
    SCOPED_TRACE("distillation_loss, logits");
    DistillLossWeights w;
    w.alpha_mse = 0.5;
    w.alpha_cos = 0;
    test::expect_gradients_match(
        [&](const torch::Tensor& s) {
          return distillation_loss({s, t_logits, labels, mask, {}, {}}, w).total;
        },
        wave(V, 0.0, 3.0));
  }
}

TEST(LossGradients, PaddedPositionsGetNone) {
  auto s = wave(V, 0.0, 3.0).set_requires_grad(true);  // (B, T, V)
  auto h = wave(H, 0.2, 1.0).set_requires_grad(true);  // (B, T, H)
  DistillLossWeights w;
  w.alpha_mse = 1.0;
  distillation_loss({s, wave(V, 0.5, 2.0), mlm_labels(), pad_mask(), h, wave(H, 1.9, 0.7)}, w).total.backward();
  EXPECT_EQ(s.grad()[1][T - 1].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(h.grad()[1][T - 1].abs().sum().item<double>(), 0.0);
  EXPECT_GT(s.grad()[1][T - 2].abs().sum().item<double>(), 0.0);
}

TEST(ReducedPrecision, Bf16LogitsAreComputedInFp32) {
  const auto s = wave(V, 0.0, 3.0).to(torch::kBFloat16), t = wave(V, 0.5, 2.0).to(torch::kBFloat16);  // (B, T, V)
  const auto hs = wave(H, 0.2, 1.0).to(torch::kBFloat16), ht = wave(H, 1.9, 0.7).to(torch::kBFloat16);  // (B, T, H)
  const auto sf = s.to(torch::kFloat), tf = t.to(torch::kFloat), hsf = hs.to(torch::kFloat), htf = ht.to(torch::kFloat);
  const auto mask = pad_mask();
  auto ce = soft_target_loss(s, t, 2.0, mask);
  EXPECT_EQ(ce.scalar_type(), torch::kFloat);
  EXPECT_EQ(ce.item<float>(), soft_target_loss(sf, tf, 2.0, mask).item<float>());
  EXPECT_EQ(mlm_loss(s, mlm_labels()).item<float>(), mlm_loss(sf, mlm_labels()).item<float>());
  EXPECT_EQ(mse_logits_loss(s, t, mask).item<float>(), mse_logits_loss(sf, tf, mask).item<float>());
  EXPECT_EQ(cosine_hidden_loss(hs, ht, mask).item<float>(), cosine_hidden_loss(hsf, htf, mask).item<float>());
  // Gradients flow back to bf16 student tensors.
  auto leaf = s.clone().set_requires_grad(true);  // (B, T, V) bf16
  soft_target_loss(leaf, t, 2.0, mask).backward();
  EXPECT_EQ(leaf.grad().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::isfinite(leaf.grad()).all().item<bool>());
}

TEST(ReducedPrecision, CpuAutocastLogitsGiveTheFp32Loss) {
  auto x = wave(H, 0.2, 1.0).to(torch::kFloat);                                 // (B, T, H)
  auto w = torch::linspace(-1, 1, H * V, torch::kFloat).reshape({H, V}) * 3;  // (H, V)
  torch::Tensor s, loss;
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  s = torch::mm(x.reshape({B * T, H}), w).reshape({B, T, V});  // (B, T, V) bf16 under autocast
  loss = soft_target_loss(s, wave(V, 0.5, 2.0).to(torch::kFloat), 2.0, pad_mask());
  at::autocast::set_cpu_enabled(false);
  at::autocast::clear_cache();
  ASSERT_EQ(s.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  EXPECT_EQ(loss.item<float>(),
            soft_target_loss(s.to(torch::kFloat), wave(V, 0.5, 2.0).to(torch::kFloat), 2.0, pad_mask()).item<float>());
}

TEST(DistillationLoss, TotalIsTheWeightedSumOfTheTerms) {
  const auto s = wave(V, 0.0, 3.0), t = wave(V, 0.5, 2.0);    // (B, T, V)
  const auto hs = wave(H, 0.2, 1.0), ht = wave(H, 1.9, 0.7);  // (B, T, H)
  const auto mask = pad_mask(), labels = mlm_labels();
  DistillLossWeights w;  // ce 5, mlm 2, cos 1, mse 0
  auto out = distillation_loss({s, t, labels, mask, hs, ht}, w);
  ASSERT_TRUE(out.ce.defined() && out.mlm.defined() && out.cos.defined());
  EXPECT_FALSE(out.mse.defined());
  const double ce = expected_soft_target(s, t, 2.0, mask), mlm = expected_mlm(s, labels), cos = expected_cosine(hs, ht, mask);
  EXPECT_NEAR(out.ce.item<double>(), ce, 1e-12);
  EXPECT_NEAR(out.mlm.item<double>(), mlm, 1e-12);
  EXPECT_NEAR(out.cos.item<double>(), cos, 1e-12);
  EXPECT_NEAR(out.total.item<double>(), 5 * ce + 2 * mlm + 1 * cos, 1e-11);
  const auto terms = out.terms();
  ASSERT_EQ(terms.size(), 4u);
  EXPECT_EQ(terms[0].first, "loss");
  EXPECT_EQ(terms[1].first, "loss_ce");
  EXPECT_EQ(terms[2].first, "loss_mlm");
  EXPECT_EQ(terms[3].first, "loss_cos");

  // alpha 0 skips the term (hidden states are not even needed), alpha_mse adds its term.
  w.alpha_cos = 0;
  w.alpha_mse = 0.25;
  out = distillation_loss({s, t, labels, mask, {}, {}}, w);
  EXPECT_FALSE(out.cos.defined());
  EXPECT_NEAR(out.mse.item<double>(), expected_mse(s, t, mask), 1e-12);
  EXPECT_NEAR(out.total.item<double>(), 5 * ce + 2 * mlm + 0.25 * expected_mse(s, t, mask), 1e-11);
}

TEST(DistillationLoss, RestrictCeToMaskUsesThePredictedPositions) {
  const auto s = wave(V, 0.0, 3.0), t = wave(V, 0.5, 2.0);  // (B, T, V)
  const auto labels = mlm_labels();
  DistillLossWeights w;
  w.alpha_cos = 0;
  w.alpha_mse = 1;
  w.restrict_ce_to_mask = true;
  auto out = distillation_loss({s, t, labels, pad_mask(), {}, {}}, w);
  const auto predicted = labels.ne(-100);  // (B, T)
  EXPECT_NEAR(out.ce.item<double>(), expected_soft_target(s, t, 2.0, predicted), 1e-12);
  EXPECT_NEAR(out.mse.item<double>(), expected_mse(s, t, predicted), 1e-12);
  EXPECT_GT(std::abs(out.ce.item<double>() - expected_soft_target(s, t, 2.0, pad_mask())), 1e-3);
}

TEST(DistillationLoss, RefusesCausalLmAndBadWeights) {
  const auto s = wave(V, 0.0, 3.0);  // (B, T, V)
  DistillLossInputs in{s, s, mlm_labels(), pad_mask(), {}, {}};
  DistillLossWeights w;
  w.alpha_cos = 0;
  w.alpha_clm = 1.0;
  auto msg = error_of([&] { distillation_loss(in, w); });
  EXPECT_NE(msg.find("alpha_clm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("causal-LM loss does not apply to BERT students"), std::string::npos) << msg;
  w.alpha_clm = 0;
  w.temperature = 0;
  EXPECT_NE(error_of([&] { distillation_loss(in, w); }).find("temperature must be positive, got 0"), std::string::npos);
  w.temperature = 2;
  w.alpha_mlm = -1;
  EXPECT_NE(error_of([&] { distillation_loss(in, w); }).find("alpha_mlm must be >= 0"), std::string::npos);
  w = DistillLossWeights{};
  EXPECT_NE(error_of([&] { distillation_loss(in, w); }).find("last hidden states"), std::string::npos);
  w.alpha_ce = w.alpha_mlm = w.alpha_cos = 0;
  EXPECT_NE(error_of([&] { distillation_loss(in, w); }).find("every alpha is 0"), std::string::npos);
}

}  // namespace
}  // namespace retort
