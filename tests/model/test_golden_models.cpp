// Gate: every golden model in ../shared/golden (both weight formats) reproduces the hidden states,
// attention probabilities and MLM logits transformers recorded, to 1e-5 absolute in fp32.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/npy.h"
#include "retort/state_dict.h"
#include "test_paths.h"

namespace retort {
namespace {

using torch::indexing::Slice;

struct GoldenCase {
  std::string model;
  std::string weights;  // which file to read: hidden by moving the other one out of view
};

std::string golden(const std::string& model, const std::string& file) {
  return test::shared_path("golden/" + model + "/" + file);
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// A model directory holding config.json and only the requested weight file (symlinks), so that the
// test proves each format loads on its own.
std::string model_dir_with(const std::string& model, const std::string& weights) {
  namespace fs = std::filesystem;
  const fs::path dir = test::temp_path("retort_golden_" + model + "_" + weights);
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(golden(model, "config.json"), dir / "config.json");
  fs::create_symlink(golden(model, weights), dir / weights);
  return dir.string();
}

class GoldenModel : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenModel, ReproducesTransformersOutputs) {
  const auto& p = GetParam();
  LoadReport report;
  Model model = load_model(model_dir_with(p.model, p.weights), {}, &report);
  model->eval();
  EXPECT_TRUE(report.unexpected.empty()) << report.unexpected.front();
  EXPECT_TRUE(report.initialised.empty()) << report.initialised.front();
  ASSERT_EQ(model->head, HeadKind::MaskedLM);

  auto ids = load_npy(golden(p.model, "input_ids.npy"));        // (B, T)
  auto mask = load_npy(golden(p.model, "attention_mask.npy"));  // (B, T)
  torch::Tensor types;
  if (std::filesystem::exists(golden(p.model, "token_type_ids.npy"))) {
    types = load_npy(golden(p.model, "token_type_ids.npy"));    // (B, T)
  }
  torch::NoGradGuard no_grad;
  ForwardOptions opt;
  opt.hidden_states = opt.attentions = true;
  auto out = model->forward(ids, mask, types, opt);

  auto hidden = load_npy(golden(p.model, "hidden_states.npy"));  // (L+1, B, T, H)
  auto attn = load_npy(golden(p.model, "attentions.npy"));       // (L, B, N, T, T)
  const int64_t V = out.logits.size(-1);
  auto first = out.logits.index({Slice(0, 3), Slice(), Slice(0, 50)});
  auto last = out.logits.index({Slice(0, 3), Slice(), Slice(V - 50, V)});
  const double d_last = max_abs(out.encoder.last_hidden_state, load_npy(golden(p.model, "last_hidden_state.npy")));
  const double d_hidden = max_abs(torch::stack(out.encoder.hidden_states), hidden);
  const double d_attn = max_abs(torch::stack(out.encoder.attentions), attn);
  const double d_logits = std::max(max_abs(first, load_npy(golden(p.model, "mlm_logits_first50.npy"))),
                                   max_abs(last, load_npy(golden(p.model, "mlm_logits_last50.npy"))));
  EXPECT_LT(d_last, 1e-5);
  EXPECT_LT(d_hidden, 1e-5);
  EXPECT_LT(d_attn, 1e-5);
  EXPECT_LT(d_logits, 1e-5);
  // The measured parity, for the record (the assertions above are the gate).
  std::cout << "[ parity ] " << p.model << " " << p.weights << ": max |diff| hidden_states " << d_hidden
            << ", attentions " << d_attn << ", mlm logits " << d_logits << "\n";

  // Argmax over the full vocabulary, skipping near-ties (top-2 gap below 1e-4).
  auto argmax = load_npy(golden(p.model, "mlm_argmax.npy"));  // (B, T)
  auto top2 = load_npy(golden(p.model, "mlm_top2_values.npy"));  // (B, T, 2)
  auto ours = out.logits.argmax(-1);
  auto clear = (top2.select(-1, 0) - top2.select(-1, 1)) > 1e-4;
  EXPECT_TRUE(torch::equal(ours.masked_select(clear), argmax.masked_select(clear)));
  EXPECT_GT(clear.sum().item<int64_t>(), ours.numel() / 2);
}

TEST_P(GoldenModel, Float64MatchesTheFloat64Reference) {
  const auto& p = GetParam();
  LoadOptions lo;
  lo.dtype = torch::kDouble;
  Model model = load_model(model_dir_with(p.model, p.weights), lo);
  model->eval();
  auto ids = load_npy(golden(p.model, "input_ids.npy"));
  auto mask = load_npy(golden(p.model, "attention_mask.npy"));
  torch::Tensor types;
  if (std::filesystem::exists(golden(p.model, "token_type_ids.npy"))) types = load_npy(golden(p.model, "token_type_ids.npy"));
  torch::NoGradGuard no_grad;
  auto out = model->forward(ids, mask, types);
  EXPECT_EQ(out.encoder.last_hidden_state.scalar_type(), torch::kDouble);
  EXPECT_LT(max_abs(out.encoder.last_hidden_state, load_npy(golden(p.model, "last_hidden_state_fp64.npy"))), 1e-9);
  auto first = out.logits.index({Slice(0, 3), Slice(), Slice(0, 50)});
  EXPECT_LT(max_abs(first, load_npy(golden(p.model, "mlm_logits_first50_fp64.npy"))), 1e-9);
}

INSTANTIATE_TEST_SUITE_P(
    Golden, GoldenModel,
    ::testing::Values(GoldenCase{"bert-tiny-random", "model.safetensors"},
                      GoldenCase{"bert-tiny-random", "pytorch_model.bin"},
                      GoldenCase{"distilbert-tiny-random", "model.safetensors"},
                      GoldenCase{"distilbert-tiny-random", "pytorch_model.bin"},
                      GoldenCase{"mobilebert-tiny-random", "model.safetensors"},
                      GoldenCase{"mobilebert-tiny-random", "pytorch_model.bin"}),
    [](const auto& info) {
      std::string n = info.param.model + "_" + info.param.weights;
      for (auto& ch : n) if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

}  // namespace
}  // namespace retort
