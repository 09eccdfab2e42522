// Saving and loading Hugging Face directories: round trips for every head and both model types,
// bad checkpoints (missing / unexpected / wrong-shape / wrong-dtype tensors) as clear errors, and
// optional outputs (hidden states, attentions, pre-softmax scores) that are consistent with each other.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/safetensors.h"
#include "retort/state_dict.h"
#include "test_paths.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny_config(ModelType type) {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 32;
  c.max_position_embeddings = 24;
  c.type_vocab_size = type == ModelType::Bert ? 2 : 0;
  c.id2label = {"neg", "pos", "neutral"};
  return c;
}

std::string fresh_dir(const std::string& name) {
  const fs::path dir = test::temp_path("retort_ckpt_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

using test::error_of;

struct Batch {
  torch::Tensor ids, mask, types;  // (B, T)
};

Batch tiny_batch() {
  torch::manual_seed(7);
  Batch b;
  b.ids = torch::randint(1, 50, {3, 9}, torch::kLong);
  b.mask = torch::ones({3, 9}, torch::kLong);
  b.mask.index_put_({1, torch::indexing::Slice(6, 9)}, 0);
  b.types = torch::zeros({3, 9}, torch::kLong);
  b.types.index_put_({2, torch::indexing::Slice(5, 9)}, 1);
  return b;
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<ModelType, HeadKind>> {};

TEST_P(RoundTrip, SavedDirectoryLoadsToTheSameOutputs) {
  const auto [type, head] = GetParam();
  torch::manual_seed(1);
  Model model(tiny_config(type), head);
  init_weights(*model);
  model->eval();
  const std::string dir = fresh_dir(model_type_name(type) + "_" + head_name(head));
  save_model(*model, dir);

  auto config = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], model_type_name(type));
  EXPECT_EQ(config["architectures"][0], architecture_name(type, head));

  LoadReport report;
  LoadOptions lo;
  lo.strict = true;
  Model back = load_model(dir, lo, &report);
  back->eval();
  EXPECT_EQ(back->head, head);
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_TRUE(report.initialised.empty());

  auto b = tiny_batch();
  torch::NoGradGuard no_grad;
  auto o1 = model->forward(b.ids, b.mask, b.types);
  auto o2 = back->forward(b.ids, b.mask, b.types);
  EXPECT_TRUE(torch::equal(o1.encoder.last_hidden_state, o2.encoder.last_hidden_state));
  if (o1.logits.defined()) {
    EXPECT_TRUE(torch::equal(o1.logits, o2.logits));
  }
  if (o1.start_logits.defined()) {
    EXPECT_TRUE(torch::equal(o1.start_logits, o2.start_logits));
    EXPECT_EQ(o1.start_logits.sizes(), (std::vector<int64_t>{3, 9}));
  }
  if (head == HeadKind::SequenceClassification) {
    EXPECT_EQ(o1.logits.sizes(), (std::vector<int64_t>{3, 3}));
  }
  if (head == HeadKind::MaskedLM) {
    EXPECT_EQ(o1.logits.sizes(), (std::vector<int64_t>{3, 9, 50}));
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllHeads, RoundTrip,
    ::testing::Combine(::testing::Values(ModelType::Bert, ModelType::DistilBert),
                       ::testing::Values(HeadKind::None, HeadKind::MaskedLM, HeadKind::SequenceClassification,
                                         HeadKind::QuestionAnswering)));

TEST(Checkpoint, SavedMlmModelOmitsTiedAliasesLikeTransformers) {
  for (auto type : {ModelType::Bert, ModelType::DistilBert}) {
    Model model(tiny_config(type), HeadKind::MaskedLM);
    const std::string dir = fresh_dir("aliases_" + model_type_name(type));
    save_model(*model, dir);
    SafetensorsFile f(dir + "/model.safetensors");
    const auto names = f.names();
    auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    if (type == ModelType::Bert) {
      EXPECT_TRUE(has("cls.predictions.bias"));
      EXPECT_TRUE(has("bert.encoder.layer.1.attention.self.query.weight"));
      EXPECT_FALSE(has("cls.predictions.decoder.weight"));
      EXPECT_FALSE(has("bert.embeddings.position_ids"));
    } else {
      EXPECT_TRUE(has("vocab_projector.bias"));
      EXPECT_TRUE(has("distilbert.transformer.layer.1.ffn.lin2.weight"));
      EXPECT_FALSE(has("vocab_projector.weight"));
      EXPECT_FALSE(has("distilbert.embeddings.token_type_embeddings.weight"));
    }
  }
}

TEST(Checkpoint, GoldenKeysAreExactlyWhatWeWrite) {
  // Loading a golden model and saving it gives the key set transformers wrote in model.safetensors.
  for (const char* m : {"bert-tiny-random", "distilbert-tiny-random", "mobilebert-tiny-random"}) {
    Model model = load_model(test::shared_path(std::string("golden/") + m));
    const std::string dir = fresh_dir(std::string("rewrite_") + m);
    save_model(*model, dir);
    SafetensorsFile ours(dir + "/model.safetensors");
    SafetensorsFile theirs(test::shared_path(std::string("golden/") + m + "/model.safetensors"));
    auto a = ours.names(), b = theirs.names();
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << m;
    for (const auto& n : b) EXPECT_TRUE(torch::equal(ours.tensor(n), theirs.tensor(n))) << n;
  }
}

// Writes a copy of a tiny BERT MLM checkpoint after `edit` changes its tensors.
std::string edited_checkpoint(const std::string& name,
                              const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>& edit) {
  Model model(tiny_config(ModelType::Bert), HeadKind::MaskedLM);
  const std::string dir = fresh_dir(name);
  save_model(*model, dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  {
    SafetensorsFile f(dir + "/model.safetensors");
    for (const auto& n : f.names()) tensors.emplace_back(n, f.tensor(n).clone());
  }
  edit(tensors);
  save_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

TEST(Checkpoint, MissingTensorIsAnErrorNamingFileAndTensor) {
  auto dir = edited_checkpoint("missing", [](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& p) { return p.first == "bert.encoder.layer.1.output.dense.weight"; }), t.end());
  });
  const auto msg = error_of([&] { load_model(dir); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing tensor bert.encoder.layer.1.output.dense.weight"), std::string::npos) << msg;
}

TEST(Checkpoint, WrongShapeIsAnErrorWithExpectedAndActual) {
  auto dir = edited_checkpoint("shape", [](auto& t) {
    for (auto& [n, v] : t) if (n == "bert.encoder.layer.0.attention.self.key.weight") v = torch::zeros({16, 8});
  });
  const auto msg = error_of([&] { load_model(dir); });
  EXPECT_NE(msg.find("tensor 'bert.encoder.layer.0.attention.self.key.weight' has shape [16, 8], expected [16, 16]"), std::string::npos) << msg;
}

TEST(Checkpoint, IntegerWeightsAreAnError) {
  auto dir = edited_checkpoint("dtype", [](auto& t) {
    for (auto& [n, v] : t) if (n == "bert.embeddings.LayerNorm.weight") v = torch::ones({16}, torch::kInt);
  });
  const auto msg = error_of([&] { load_model(dir); });
  EXPECT_NE(msg.find("tensor 'bert.embeddings.LayerNorm.weight' has dtype"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected a floating-point tensor"), std::string::npos) << msg;
}

TEST(Checkpoint, HalfPrecisionWeightsAreConverted) {
  auto dir = edited_checkpoint("half", [](auto& t) {
    for (auto& [n, v] : t) v = v.to(torch::kBFloat16);
  });
  Model m = load_model(dir);
  EXPECT_EQ(m->bert->embeddings->word_embeddings->weight.scalar_type(), torch::kFloat);
}

TEST(Checkpoint, UnexpectedTensorsWarnOrFailInStrictMode) {
  auto dir = edited_checkpoint("unexpected", [](auto& t) { t.emplace_back("cls.seq_relationship.weight", torch::zeros({2, 16})); });
  LoadReport report;
  load_model(dir, {}, &report);
  ASSERT_EQ(report.unexpected, std::vector<std::string>{"cls.seq_relationship.weight"});
  LoadOptions strict;
  strict.strict = true;
  const auto msg = error_of([&] { load_model(dir, strict); });
  EXPECT_NE(msg.find("unexpected tensor cls.seq_relationship.weight"), std::string::npos) << msg;
}

TEST(Checkpoint, NewHeadIsReportedAsInitialised) {
  LoadOptions lo;
  lo.head_from_config = false;
  lo.head = HeadKind::QuestionAnswering;
  LoadReport report;
  Model m = load_model(test::shared_path("golden/bert-tiny-random"), lo, &report);
  EXPECT_EQ(report.initialised, (std::vector<std::string>{"qa_outputs.weight", "qa_outputs.bias"}));
  EXPECT_EQ(report.unexpected.size(), 5u);  // the five cls.predictions tensors
}

TEST(Checkpoint, NoWeightsIsAnError) {
  const std::string dir = fresh_dir("noweights");
  ModelConfig c = tiny_config(ModelType::Bert);
  c.save(dir + "/config.json");
  EXPECT_NE(error_of([&] { load_model(dir); }), "");
  EXPECT_NE(error_of([&] { load_model("/nonexistent/model"); }).find("/nonexistent/model"), std::string::npos);
}

TEST(Forward, OptionalOutputsAreConsistent) {
  torch::manual_seed(3);
  Model model(tiny_config(ModelType::Bert), HeadKind::None);
  init_weights(*model);
  model->eval();
  auto b = tiny_batch();
  torch::NoGradGuard no_grad;
  auto plain = model->forward(b.ids, b.mask, b.types);
  EXPECT_TRUE(plain.encoder.hidden_states.empty());
  EXPECT_TRUE(plain.encoder.attentions.empty());
  ForwardOptions opt;
  opt.hidden_states = opt.attentions = opt.attention_scores = true;
  auto full = model->forward(b.ids, b.mask, b.types, opt);
  ASSERT_EQ(full.encoder.hidden_states.size(), 3u);
  ASSERT_EQ(full.encoder.attentions.size(), 2u);
  ASSERT_EQ(full.encoder.attention_scores.size(), 2u);
  EXPECT_TRUE(torch::equal(full.encoder.hidden_states.back(), plain.encoder.last_hidden_state));
  // softmax(scores + mask) == probabilities; padded keys get probability 0.
  auto ext = extended_attention_mask(b.mask, torch::kFloat);
  auto probs = torch::softmax(full.encoder.attention_scores[1] + ext, -1);
  EXPECT_LT((probs - full.encoder.attentions[1]).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(full.encoder.attentions[0].index({1, torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(6, 9)}).abs().max().item<double>(), 0.0);
  // Padding does not change the outputs of real tokens.
  auto short_ids = b.ids.index({torch::indexing::Slice(1, 2), torch::indexing::Slice(0, 6)});
  auto alone = model->forward(short_ids, torch::ones_like(short_ids), torch::zeros_like(short_ids));
  auto padded = plain.encoder.last_hidden_state.index({torch::indexing::Slice(1, 2), torch::indexing::Slice(0, 6)});
  EXPECT_LT((alone.encoder.last_hidden_state - padded).abs().max().item<double>(), 1e-5);
}

TEST(Forward, GradientsReachEveryTrainableParameter) {
  Model model(tiny_config(ModelType::DistilBert), HeadKind::MaskedLM);
  init_weights(*model);
  auto b = tiny_batch();
  auto out = model->forward(b.ids, b.mask);
  out.logits.logsumexp(-1).mean().backward();
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
}

TEST(Forward, SinusoidalPositionsMatchTheFormulaAndStayFrozen) {
  ModelConfig c = tiny_config(ModelType::DistilBert);
  c.sinusoidal_pos_embds = true;
  Model model(c, HeadKind::None);
  init_weights(*model);
  auto w = model->bert->embeddings->position_embeddings->weight;  // (P, H)
  EXPECT_FALSE(w.requires_grad());
  EXPECT_NEAR(w[3][4].item<double>(), std::sin(3 / std::pow(10000.0, 4.0 / 16)), 1e-6);
  EXPECT_NEAR(w[5][7].item<double>(), std::cos(5 / std::pow(10000.0, 6.0 / 16)), 1e-6);
}

TEST(Forward, ActivationsFollowTheirDefinitions) {
  auto x = torch::linspace(-3, 3, 13, torch::kDouble);
  EXPECT_TRUE(torch::allclose(apply_activation("gelu", x), 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0)))));
  EXPECT_TRUE(torch::allclose(apply_activation("gelu_new", x),
                              0.5 * x * (1 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))))));
  EXPECT_TRUE(torch::allclose(apply_activation("relu", x), x.clamp_min(0)));
  EXPECT_TRUE(torch::allclose(apply_activation("silu", x), x * torch::sigmoid(x)));
  EXPECT_THROW(apply_activation("nope", x), Error);
}

}  // namespace
}  // namespace retort
