// The inference engine against the training model: fp32 equal to Model::forward within float
// rounding for both model types and every head (padded batches, token types, [CLS]-only last layer),
// bf16 and int8 close to fp32, and bad requests as clear errors.
#include <gtest/gtest.h>

#include <functional>

#include <torch/torch.h>

#include "retort/error.h"
#include "retort/inference.h"
#include "retort/state_dict.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

using test::error_of;

Model make_model(ModelType type, HeadKind head) {
  Model m = test::random_model(type, head, 3);
  torch::NoGradGuard no_grad;  // LayerNorm weights and biases away from 1/0, so they are exercised
  for (auto& p : m->named_parameters()) {
    if (p.key().find("LayerNorm") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.1);
  }
  return m;
}

struct Batch {
  torch::Tensor ids, mask, types;  // (B, T)
};

Batch padded_batch() {
  torch::manual_seed(5);
  Batch b;
  b.ids = torch::randint(1, 60, {3, 11}, torch::kLong);
  b.mask = torch::ones({3, 11}, torch::kLong);
  b.mask.index_put_({1, torch::indexing::Slice(7, 11)}, 0);
  b.mask.index_put_({2, torch::indexing::Slice(3, 11)}, 0);
  b.types = torch::zeros({3, 11}, torch::kLong);
  b.types.index_put_({0, torch::indexing::Slice(6, 11)}, 1);
  return b;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }
double max_abs(const torch::Tensor& a) { return a.abs().max().item<double>(); }

// The head's output tensor that a test compares.
torch::Tensor head_output(const ModelOutput& o, HeadKind head) {
  if (head == HeadKind::QuestionAnswering) return torch::stack({o.start_logits, o.end_logits});
  if (head == HeadKind::None) return o.encoder.last_hidden_state;
  return o.logits;
}

class Parity : public ::testing::TestWithParam<std::tuple<ModelType, HeadKind>> {};

TEST_P(Parity, Fp32EqualsTheTrainingForwardAndBf16Int8StayClose) {
  const auto [type, head] = GetParam();
  const Batch b = padded_batch();
  const torch::Tensor types = type == ModelType::Bert ? b.types : torch::Tensor();
  Model ref_model = make_model(type, head);
  torch::Tensor ref, ref_hidden;
  {
    torch::NoGradGuard no_grad;
    const ModelOutput o = ref_model->forward(b.ids, b.mask, types);
    ref = head_output(o, head);
    ref_hidden = o.encoder.last_hidden_state;  // (B, T, H)
  }
  const double scale = max_abs(ref);
  ASSERT_GT(scale, 0.1);
  const InferenceModel fp32(make_model(type, head), Precision::Fp32);
  const ModelOutput o = fp32.forward(b.ids, b.mask, types);
  EXPECT_LT(max_diff(head_output(o, head), ref), 1e-5 * std::max(1.0, scale));
  // encode() keeps every position whatever the head; forward() keeps only [CLS] for classification.
  EXPECT_LT(max_diff(fp32.encode(b.ids, b.mask, types), ref_hidden), 1e-5);
  if (head == HeadKind::SequenceClassification) {
    EXPECT_EQ(o.encoder.last_hidden_state.size(1), 1);
    EXPECT_LT(max_diff(o.encoder.last_hidden_state.squeeze(1), ref_hidden.select(1, 0)), 1e-5);
  }
  // Reduced precisions: close to fp32 relative to the output's size (bf16 keeps 8 bits of mantissa,
  // int8 weights 7 bits per channel plus activations quantized per call).
  for (const auto& [p, tol] : {std::pair{Precision::Bf16, 0.05}, std::pair{Precision::Int8, 0.08}}) {
    const InferenceModel reduced(make_model(type, head), p);
    const torch::Tensor out = head_output(reduced.forward(b.ids, b.mask, types), head);
    EXPECT_EQ(out.scalar_type(), torch::kFloat) << precision_name(p);
    EXPECT_LT(max_diff(out, ref), tol * scale) << precision_name(p);
    EXPECT_GT(max_diff(out, ref), 0.0) << precision_name(p) << " should not be fp32 in disguise";
  }
}

INSTANTIATE_TEST_SUITE_P(
    TypesAndHeads, Parity,
    ::testing::Combine(::testing::Values(ModelType::Bert, ModelType::DistilBert),
                       ::testing::Values(HeadKind::None, HeadKind::MaskedLM, HeadKind::SequenceClassification,
                                         HeadKind::QuestionAnswering)));

// MobileBERT runs its training modules in the engine (fp32 exact, bf16 close, int8 refused), and a
// MobileBERT classifier saves under Hugging Face's names and reloads to the same logits.
TEST(Inference, MobileBertClassifierInTheEngineAndThroughACheckpoint) {
  ModelConfig c = ModelConfig::load(test::shared_path("golden/mobilebert-tiny-random"));
  c.vocab_size = 60;
  c.initializer_range = 0.2;
  c.id2label = {"a", "b", "c"};
  auto make = [&] {
    torch::manual_seed(3);
    Model m(c, HeadKind::SequenceClassification);
    init_weights(*m);
    torch::NoGradGuard no_grad;
    for (auto& p : m->named_parameters()) {
      if (p.key().find("LayerNorm") != std::string::npos) p.value().add_(torch::randn_like(p.value()) * 0.1);
    }
    m->eval();
    return m;
  };
  const Batch b = padded_batch();
  Model ref_model = make();
  torch::Tensor ref;
  {
    torch::NoGradGuard no_grad;
    ref = ref_model->forward(b.ids, b.mask, b.types).logits;  // (B, C)
  }
  ASSERT_GT(max_abs(ref), 0.1);
  const InferenceModel fp32(make(), Precision::Fp32);
  EXPECT_LT(max_diff(fp32.forward(b.ids, b.mask, b.types).logits, ref), 1e-5);
  const InferenceModel bf16(make(), Precision::Bf16);
  const auto lb = bf16.forward(b.ids, b.mask, b.types).logits;
  EXPECT_LT(max_diff(lb, ref), 0.05 * max_abs(ref));
  EXPECT_GT(max_diff(lb, ref), 0.0);
  EXPECT_NE(error_of([&] { InferenceModel(make(), Precision::Int8); }).find("MobileBERT"), std::string::npos);

  const std::string dir = test::temp_path("mobile_classifier").string();
  save_model(*ref_model, dir);
  const ModelConfig saved = ModelConfig::load(dir);
  EXPECT_EQ(saved.architectures.at(0), "MobileBertForSequenceClassification");
  LoadReport report;
  Model back = load_model(dir, {}, &report);
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_TRUE(report.initialised.empty());
  back->eval();
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_diff(back->forward(b.ids, b.mask, b.types).logits, ref), 1e-6);
  const auto sd = load_state_dict(dir);
  EXPECT_TRUE(sd.contains("mobilebert.pooler.dense.weight"));
  EXPECT_TRUE(sd.contains("mobilebert.encoder.layer.2.ffn.0.output.LayerNorm.weight"));
  EXPECT_TRUE(sd.contains("classifier.weight"));
}

// MobileBERT's other knobs (the golden model covers the default ones): the inverted-bottleneck teacher
// (IB-BERT: intra-block wider than between blocks, LayerNorm, GELU, one FFN), no bottleneck with a plain
// embedding narrower than the hidden size, and query/key/value all from the bottleneck. Each builds,
// runs to (B, T, H), and comes back from a checkpoint with the same outputs.
TEST(Inference, MobileBertVariantsRunAndRoundTrip) {
  const ModelConfig base = ModelConfig::load(test::shared_path("golden/mobilebert-tiny-random"));
  std::vector<std::pair<std::string, std::function<void(ModelConfig&)>>> variants = {
      {"ib-bert", [](ModelConfig& c) {
         c.mobile.intra_bottleneck_size = 128;
         c.mobile.normalization_type = "layer_norm";
         c.hidden_act = "gelu";
         c.mobile.num_feedforward_networks = 1;
         c.intermediate_size = 256;
       }},
      {"no-bottleneck", [](ModelConfig& c) {
         c.mobile.use_bottleneck = false;
         c.mobile.trigram_input = false;
       }},
      {"bottleneck-attention", [](ModelConfig& c) {
         c.mobile.use_bottleneck_attention = true;
         c.mobile.key_query_shared_bottleneck = false;
       }},
  };
  const Batch b = padded_batch();
  for (auto& [name, edit] : variants) {
    ModelConfig c = base;
    c.vocab_size = 60;
    c.initializer_range = 0.2;
    edit(c);
    torch::manual_seed(4);
    Model m(c, HeadKind::MaskedLM);
    init_weights(*m);
    m->eval();
    torch::NoGradGuard no_grad;
    const auto out = m->forward(b.ids, b.mask, b.types);
    EXPECT_EQ(out.encoder.last_hidden_state.sizes(), (std::vector<int64_t>{3, 11, 64})) << name;
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>()) << name;
    const std::string dir = test::temp_path("mobile_" + name).string();
    save_model(*m, dir);
    LoadReport report;
    Model back = load_model(dir, {}, &report);
    EXPECT_TRUE(report.unexpected.empty() && report.initialised.empty()) << name;
    back->eval();
    EXPECT_LT(max_diff(back->forward(b.ids, b.mask, b.types).logits, out.logits), 1e-6) << name;
    EXPECT_EQ(ModelConfig::load(dir).true_hidden_size(), c.true_hidden_size()) << name;
  }
}

TEST(Inference, AnAllOnesMaskIsTheSameAsNoMask) {
  const InferenceModel m(make_model(ModelType::Bert, HeadKind::None), Precision::Fp32);
  const Batch b = padded_batch();
  const torch::Tensor ones = torch::ones_like(b.ids);
  EXPECT_EQ(max_diff(m.encode(b.ids, ones), m.encode(b.ids, torch::Tensor())), 0.0);
}

TEST(Inference, PaddingDoesNotChangeTheRealTokens) {
  // Row 2 alone, unpadded, gives the same hidden states as inside the padded batch.
  const InferenceModel m(make_model(ModelType::DistilBert, HeadKind::None), Precision::Fp32);
  const Batch b = padded_batch();
  const torch::Tensor alone = m.encode(b.ids.slice(0, 2, 3).slice(1, 0, 3), torch::Tensor());  // (1, 3, H)
  const torch::Tensor in_batch = m.encode(b.ids, b.mask).slice(0, 2, 3).slice(1, 0, 3);
  EXPECT_LT(max_diff(alone, in_batch), 1e-5);
}

TEST(Inference, Int8PacksTheWeightsAndShrinksNothingItShouldNot) {
  EXPECT_FALSE(int8_engines().empty());
  const InferenceModel m(make_model(ModelType::Bert, HeadKind::SequenceClassification), Precision::Int8);
  EXPECT_EQ(m.precision(), Precision::Int8);
  EXPECT_EQ(m.model().classifier->weight.scalar_type(), torch::kFloat);  // heads stay fp32
}

TEST(Inference, BadRequestsAreClearErrors) {
  EXPECT_NE(error_of([] { parse_precision("int4"); }).find("unknown precision 'int4' (fp32, bf16, int8)"),
            std::string::npos);
  EXPECT_EQ(parse_precision("bfloat16"), Precision::Bf16);
  const InferenceModel m(make_model(ModelType::Bert, HeadKind::None), Precision::Fp32);
  const torch::Tensor ids = torch::ones({1, 30}, torch::kLong);
  EXPECT_NE(error_of([&] { m.encode(ids, torch::Tensor()); }).find("exceeds max_position_embeddings 24"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.encode(torch::ones({4}, torch::kLong), torch::Tensor()); }).find("(batch, seq)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.encode(ids.slice(1, 0, 5), torch::ones({1, 4}, torch::kLong)); })
                .find("does not match input_ids"),
            std::string::npos);
}

}  // namespace
}  // namespace retort
