// TinyBERT's intermediate-layer distillation: each loss against plain loops (padding excluded),
// finite-difference gradients in double precision, the layer mappings and their refusals, and the
// IntermediateDistiller on two real models of different depth and width (projections shared or per
// layer, the terms it logs, the gradient reaching the projections).
//
// Dimensions: B batch, N heads, T sequence, H hidden, C classes, R rows.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "grad_check.h"
#include "retort/error.h"
#include "retort/heads.h"
#include "retort/intermediate.h"
#include "retort/losses.h"
#include "tiny_model.h"

namespace retort {
namespace {

constexpr int64_t B = 2, N = 2, T = 4, H = 3, C = 5;

// Irregular deterministic values, double. Any shape.
torch::Tensor wave(at::IntArrayRef shape, double phase, double scale) {
  auto out = torch::arange(torch::ones(shape).numel(), torch::kDouble).reshape(shape);
  return scale * torch::sin(out * 1.37 + phase) + 0.3 * torch::cos(out * out * 0.11 + phase);
}

// The second sequence has two padded positions.
torch::Tensor pad_mask() {
  auto m = torch::ones({B, T}, torch::kLong);  // (B, T)
  m[1][T - 1] = 0;
  m[1][T - 2] = 0;
  return m;
}

TEST(HiddenMseLoss, IsTheMeanSquaredErrorOverRealTokens) {
  auto s = wave({B, T, H}, 0.1, 1.5), t = wave({B, T, H}, 0.9, 1.0), m = pad_mask();
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      if (m[b][i].item<int64_t>() == 0) continue;
      for (int64_t h = 0; h < H; ++h) {
        const double d = s[b][i][h].item<double>() - t[b][i][h].item<double>();
        sum += d * d;
        ++count;
      }
    }
  EXPECT_NEAR(hidden_mse_loss(s, t, m).item<double>(), sum / count, 1e-12);
  // Padded positions change nothing.
  auto s2 = s.clone();
  s2[1][T - 1] += 100.0;
  EXPECT_NEAR(hidden_mse_loss(s2, t, m).item<double>(), sum / count, 1e-12);
  // Without a mask every position counts.
  EXPECT_NEAR(hidden_mse_loss(s.reshape({-1, H}), t.reshape({-1, H})).item<double>(),
              (s - t).pow(2).mean().item<double>(), 1e-12);
  EXPECT_THROW(hidden_mse_loss(s, wave({B, T, H + 1}, 0, 1), m), Error);  // unprojected widths
}

TEST(AttentionMseLoss, AveragesOverHeadsAndRealQueryKeyPairs) {
  auto s = wave({B, N, T, T}, 0.2, 2.0), t = wave({B, N, T, T}, 1.1, 2.0), m = pad_mask();
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          if (m[b][i].item<int64_t>() == 0 || m[b][j].item<int64_t>() == 0) continue;
          const double d = s[b][n][i][j].item<double>() - t[b][n][i][j].item<double>();
          sum += d * d;
          ++count;
        }
  EXPECT_EQ(count, N * (T * T + 2 * 2));
  EXPECT_NEAR(attention_mse_loss(s, t, m).item<double>(), sum / count, 1e-12);
  // A padded key or query (where a masked score would be -inf after the mask) changes nothing.
  auto s2 = s.clone();
  s2[1][0][0][T - 1] = -1e4;
  s2[1][1][T - 2][1] = 1e4;
  EXPECT_NEAR(attention_mse_loss(s2, t, m).item<double>(), sum / count, 1e-12);
  EXPECT_THROW(attention_mse_loss(s, wave({B, N + 1, T, T}, 0, 1), m), Error);  // head counts differ
}

TEST(AttentionKlLoss, IsTheKlOfTheMaskedDistributionsOverHeadsAndRealQueries) {
  auto s = wave({B, N, T, T}, 0.2, 2.0), t = wave({B, N, T, T}, 1.1, 2.0), m = pad_mask();
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < T; ++i) {
        if (m[b][i].item<int64_t>() == 0) continue;
        double zs = 0, zt = 0;
        for (int64_t j = 0; j < T; ++j) {
          if (m[b][j].item<int64_t>() == 0) continue;
          zs += std::exp(s[b][n][i][j].item<double>());
          zt += std::exp(t[b][n][i][j].item<double>());
        }
        for (int64_t j = 0; j < T; ++j) {
          if (m[b][j].item<int64_t>() == 0) continue;
          const double pt = std::exp(t[b][n][i][j].item<double>()) / zt;
          const double ps = std::exp(s[b][n][i][j].item<double>()) / zs;
          sum += pt * std::log(pt / ps);
        }
        ++rows;
      }
  EXPECT_EQ(rows, N * (T + 2));
  EXPECT_NEAR(attention_kl_loss(s, t, m).item<double>(), sum / rows, 1e-12);
  auto s2 = s.clone();  // padded keys and queries change nothing
  s2[1][0][0][T - 1] = 50.0;
  s2[1][1][T - 2][0] = -50.0;
  EXPECT_NEAR(attention_kl_loss(s2, t, m).item<double>(), sum / rows, 1e-12);
  EXPECT_NEAR(attention_kl_loss(t, t, m).item<double>(), 0.0, 1e-12);
  EXPECT_TRUE(std::isfinite(attention_kl_loss(s, t, torch::zeros({B, T}, torch::kLong)).item<double>()));
}

TEST(SoftCrossEntropyLoss, IsTheKlDivergencePlusTheTeachersEntropy) {
  auto s = wave({3, C}, 0.4, 2.0), t = wave({3, C}, 1.7, 3.0);
  for (double temp : {1.0, 2.5}) {
    double expected = 0, entropy = 0;
    for (int64_t r = 0; r < 3; ++r) {
      double zs = 0, zt = 0;
      for (int64_t c = 0; c < C; ++c) {
        zs += std::exp(s[r][c].item<double>() / temp);
        zt += std::exp(t[r][c].item<double>() / temp);
      }
      for (int64_t c = 0; c < C; ++c) {
        const double pt = std::exp(t[r][c].item<double>() / temp) / zt;
        expected -= pt * (s[r][c].item<double>() / temp - std::log(zs));
        entropy -= pt * std::log(pt);
      }
    }
    expected /= 3;
    entropy /= 3;
    const double ce = soft_cross_entropy_loss(s, t, temp).item<double>();
    EXPECT_NEAR(ce, expected, 1e-12) << temp;
    // KL * T^2 (soft_target_loss) = T^2 (CE - H(p_t)): the two prediction losses differ by a constant.
    EXPECT_NEAR(soft_target_loss(s, t, temp).item<double>(), temp * temp * (ce - entropy), 1e-10) << temp;
  }
  EXPECT_THROW(soft_cross_entropy_loss(s, t, 0.0), Error);
  EXPECT_THROW(soft_cross_entropy_loss(s, wave({3, C + 1}, 0, 1), 1.0), Error);
}

TEST(IntermediateLossGradients, MatchFiniteDifferences) {
  const auto m = pad_mask();
  const auto th = wave({B, T, H}, 0.7, 1.0), ta = wave({B, N, T, T}, 0.5, 2.0), tl = wave({3, C}, 2.2, 2.0);
  {
    SCOPED_TRACE("hidden_mse_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return hidden_mse_loss(s, th, m); },
                                 wave({B, T, H}, 0.1, 1.5));
  }
  {
    SCOPED_TRACE("attention_mse_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return attention_mse_loss(s, ta, m); },
                                 wave({B, N, T, T}, 0.3, 2.0));
  }
  {
    SCOPED_TRACE("attention_kl_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return attention_kl_loss(s, ta, m); },
                                 wave({B, N, T, T}, 0.3, 2.0));
  }
  {
    SCOPED_TRACE("soft_cross_entropy_loss");
    test::expect_gradients_match([&](const torch::Tensor& s) { return soft_cross_entropy_loss(s, tl, 1.7); },
                                 wave({3, C}, 0.9, 2.0));
  }
}

TEST(IntermediateLossGradients, PaddedPositionsGetNone) {
  const auto m = pad_mask();
  auto sh = wave({B, T, H}, 0.1, 1.5).set_requires_grad(true);
  hidden_mse_loss(sh, wave({B, T, H}, 0.7, 1.0), m).backward();
  EXPECT_EQ(sh.grad()[1][T - 1].abs().sum().item<double>(), 0.0);
  auto sa = wave({B, N, T, T}, 0.3, 2.0).set_requires_grad(true);
  attention_mse_loss(sa, wave({B, N, T, T}, 0.5, 2.0), m).backward();
  using torch::indexing::Slice;
  EXPECT_EQ(sa.grad().index({1, Slice(), Slice(), T - 1}).abs().sum().item<double>(), 0.0);  // padded keys
  EXPECT_EQ(sa.grad().index({1, Slice(), T - 2}).abs().sum().item<double>(), 0.0);           // padded queries
  EXPECT_GT(sa.grad().index({1, Slice(), 0, 0}).abs().sum().item<double>(), 0.0);
}

TEST(LayerMap, UniformMapsEveryKthLayer) {
  const auto m = uniform_layer_map(4, 12);
  EXPECT_EQ(m.hidden, (std::vector<int64_t>{0, 3, 6, 9, 12}));
  EXPECT_EQ(m.attention, (std::vector<int64_t>{2, 5, 8, 11}));
  const auto same = uniform_layer_map(3, 3);
  EXPECT_EQ(same.hidden, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(same.attention, (std::vector<int64_t>{0, 1, 2}));
  try {
    uniform_layer_map(5, 12);
    ADD_FAILURE() << "5 of 12 layers mapped uniformly";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layer_map"), std::string::npos) << e.what();
  }
  EXPECT_THROW(uniform_layer_map(13, 12), Error);
}

TEST(LayerMap, ExplicitListsAreOneBasedAndChecked) {
  const auto m = explicit_layer_map({2, 5, 11}, 3, 12);
  EXPECT_EQ(m.hidden, (std::vector<int64_t>{0, 2, 5, 11}));
  EXPECT_EQ(m.attention, (std::vector<int64_t>{1, 4, 10}));
  EXPECT_THROW(explicit_layer_map({2, 5}, 3, 12), Error);       // one per student layer
  EXPECT_THROW(explicit_layer_map({0, 5, 11}, 3, 12), Error);   // 0 is the embedding layer
  EXPECT_THROW(explicit_layer_map({2, 5, 13}, 3, 12), Error);   // beyond the teacher
  EXPECT_THROW(explicit_layer_map({5, 5, 11}, 3, 12), Error);   // not increasing
  IntermediateOptions o;
  o.read({{"layer_map", {4, 8}}, {"alpha_att", 1.0}, {"projection", "per_layer"}}, "test");
  EXPECT_EQ(o.map(2, 8).hidden, (std::vector<int64_t>{0, 4, 8}));
  nlohmann::json j;
  o.write(j);
  IntermediateOptions back;
  back.read(j, "test");
  EXPECT_EQ(back.layer_map, o.layer_map);
  EXPECT_EQ(back.projection, ProjectionKind::PerLayer);
  EXPECT_THROW(o.read({{"layer_map", "every-other"}}, "test"), Error);
  EXPECT_THROW(o.read({{"projection", "diagonal"}}, "test"), Error);
  EXPECT_THROW(o.read({{"alpha_hidden", -1.0}}, "test"), Error);
}

// A 4-layer teacher of width 32 and a 2-layer student of width 16 (both 4 heads).
struct Pair {
  Model teacher = test::random_model(ModelType::Bert, HeadKind::MaskedLM, 4, "gelu", 3);
  Model student = [] {
    ModelConfig c = test::random_model(ModelType::Bert, HeadKind::None, 1)->config;
    c.hidden_size = 16;
    c.intermediate_size = 32;
    c.num_hidden_layers = 2;
    torch::manual_seed(5);
    Model m(c, HeadKind::MaskedLM);
    init_weights(*m);
    return m;
  }();
  torch::Tensor ids = torch::randint(5, 60, {2, 6}, torch::kLong);  // (B, T)
  torch::Tensor mask = torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, torch::kLong).view({2, 6});
};

TEST(IntermediateDistiller, ComputesEachTermThroughTheMapAndProjections) {
  Pair p;
  IntermediateOptions o;
  o.alpha_att = 1.0;
  o.alpha_hidden = 2.0;
  o.alpha_emb = 0.5;
  o.projection = ProjectionKind::PerLayer;
  IntermediateDistiller d(p.student->config, p.teacher->config, o, 7);
  EXPECT_EQ(d->fit_dense->size(), 3u);  // embeddings + 2 layers
  const auto fo = d->forward_options();
  EXPECT_TRUE(fo.hidden_states && fo.attention_scores);
  EncoderOutput t;
  {
    torch::NoGradGuard ng;
    t = p.teacher->bert->forward(p.ids, p.mask, {}, fo);
  }
  const auto s = p.student->bert->forward(p.ids, p.mask, {}, fo);
  const auto r = d->losses(s, t, p.mask);
  ASSERT_EQ(r.terms.size(), 3u);
  // By hand: student layer m <-> teacher layer 2m (hidden) and 2m+1 (attention, 0-based).
  const double att = attention_mse_loss(s.attention_scores[0], t.attention_scores[1], p.mask).item<double>() +
                     attention_mse_loss(s.attention_scores[1], t.attention_scores[3], p.mask).item<double>();
  const double hid = hidden_mse_loss(d->project(1, s.hidden_states[1]), t.hidden_states[2], p.mask).item<double>() +
                     hidden_mse_loss(d->project(2, s.hidden_states[2]), t.hidden_states[4], p.mask).item<double>();
  const double emb = hidden_mse_loss(d->project(0, s.hidden_states[0]), t.hidden_states[0], p.mask).item<double>();
  EXPECT_NEAR(r.terms.at("loss_att").item<double>(), att, 1e-5 * att);
  EXPECT_NEAR(r.terms.at("loss_hidden").item<double>(), hid, 1e-5 * hid);
  EXPECT_NEAR(r.terms.at("loss_emb").item<double>(), emb, 1e-5 * emb);
  EXPECT_NEAR(r.total.item<double>(), att + 2.0 * hid + 0.5 * emb, 1e-5 * (att + hid));
  // The gradient reaches the student and every projection; the teacher gets none.
  r.total.backward();
  for (const auto& w : d->parameters()) EXPECT_GT(w.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(p.student->bert->embeddings->word_embeddings->weight.grad().abs().sum().item<double>(), 0.0);
  for (const auto& w : p.teacher->parameters()) EXPECT_FALSE(w.grad().defined());
}

TEST(IntermediateDistiller, OnlyLayerKeepsOneLayersTermsAndKlReplacesMse) {
  Pair p;
  IntermediateOptions o;
  o.alpha_att = o.alpha_hidden = o.alpha_emb = 1.0;
  o.attention_loss = AttentionLoss::Kl;
  o.only_layer = 1;
  IntermediateDistiller d(p.student->config, p.teacher->config, o, 7);
  const auto fo = d->forward_options();
  EncoderOutput t;
  {
    torch::NoGradGuard ng;
    t = p.teacher->bert->forward(p.ids, p.mask, {}, fo);
  }
  const auto s = p.student->bert->forward(p.ids, p.mask, {}, fo);
  const auto r = d->losses(s, t, p.mask);
  EXPECT_EQ(r.terms.count("loss_emb"), 0u);  // the embeddings belong to layer 0's stage
  const double att = attention_kl_loss(s.attention_scores[1], t.attention_scores[3], p.mask).item<double>();
  const double hid = hidden_mse_loss(d->project(2, s.hidden_states[2]), t.hidden_states[4], p.mask).item<double>();
  EXPECT_NEAR(r.terms.at("loss_att").item<double>(), att, 1e-6 * att);
  EXPECT_NEAR(r.terms.at("loss_hidden").item<double>(), hid, 1e-6 * hid);
  d->options.only_layer = 0;
  EXPECT_EQ(d->losses(s, t, p.mask).terms.count("loss_emb"), 1u);
  d->options.only_layer = 2;
  EXPECT_THROW(d->losses(s, t, p.mask), Error);
}

TEST(IntermediateDistiller, SharedProjectionIsOneMatrixAndNoneNeedsEqualWidths) {
  Pair p;
  IntermediateOptions o;
  o.alpha_hidden = 1.0;
  IntermediateDistiller shared(p.student->config, p.teacher->config, o, 7);
  ASSERT_EQ(shared->fit_dense->size(), 1u);
  EXPECT_EQ(shared->parameters()[0].sizes(), (std::vector<int64_t>{32, 16}));  // (Ht, Hs)
  EXPECT_FALSE(shared->forward_options().attention_scores);
  o.projection = ProjectionKind::None;
  EXPECT_THROW(IntermediateDistiller(p.student->config, p.teacher->config, o, 7), Error);
  IntermediateDistiller same(p.teacher->config, p.teacher->config, o, 7);  // equal widths: no projection
  EXPECT_EQ(same->fit_dense->size(), 0u);
  // Attention transfer needs the same head count.
  ModelConfig other = p.student->config;
  other.num_attention_heads = 2;
  IntermediateOptions att;
  att.alpha_att = 1.0;
  EXPECT_THROW(IntermediateDistiller(other, p.teacher->config, att, 7), Error);
  // A mapping that does not fit the teacher is refused when the distiller is built.
  att.layer_map = {2, 5};
  EXPECT_THROW(IntermediateDistiller(p.student->config, p.teacher->config, att, 7), Error);
}

}  // namespace
}  // namespace retort
