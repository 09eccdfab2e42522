// Student initialisation from the golden 4-layer BERT: which teacher layers each strategy picks, that
// every copied tensor equals its teacher tensor, that a DistilBERT student saves and reloads under
// DistilBERT's own names, that an all-layer student reproduces the teacher exactly (BERT format) or the
// teacher without token types (DistilBERT format: they are dropped, not folded), and clear refusals.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, L teacher layers, K student layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/safetensors.h"
#include "retort/student.h"
#include "test_paths.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Layers = std::vector<int64_t>;

Model golden_teacher() {
  Model m = load_model(test::shared_path("golden/bert-tiny-random"));
  m->eval();
  return m;
}

std::string fresh_dir(const std::string& name) {
  const fs::path dir = test::temp_path("retort_student_" + name);
  fs::remove_all(dir);
  return dir.string();
}

using test::error_of;

struct Batch {
  torch::Tensor ids, mask, types;  // (B, T)
};

// Two sequences, the second padded, and a second segment in the first (type id 1).
Batch batch() {
  torch::manual_seed(11);
  Batch b;
  b.ids = torch::randint(1, 30522, {2, 12}, torch::kLong);
  b.mask = torch::ones({2, 12}, torch::kLong);
  b.mask.index_put_({1, torch::indexing::Slice(8, 12)}, 0);
  b.ids.index_put_({1, torch::indexing::Slice(8, 12)}, 0);
  b.types = torch::zeros({2, 12}, torch::kLong);
  b.types.index_put_({0, torch::indexing::Slice(6, 12)}, 1);
  return b;
}

StudentOptions with_layers(Layers layers) {
  StudentOptions o;
  o.layers = std::move(layers);
  return o;
}

StudentOptions with_strategy(LayerStrategy s, std::optional<int64_t> n = std::nullopt) {
  StudentOptions o;
  o.strategy = s;
  o.n_layers = n;
  return o;
}

TEST(StudentLayers, StrategiesPickTheDocumentedTeacherLayers) {
  EXPECT_EQ(student_layer_indices(StudentOptions{}, 12), (Layers{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::EveryOther), 4), (Layers{0, 2}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::EveryOther), 5), (Layers{0, 2, 4}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::EveryOther, 3), 12), (Layers{0, 2, 4}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::HfExample), 12), (Layers{0, 2, 4, 7, 9, 11}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::FirstK, 3), 12), (Layers{0, 1, 2}));
  EXPECT_EQ(student_layer_indices(with_strategy(LayerStrategy::LastK, 3), 12), (Layers{9, 10, 11}));
  EXPECT_EQ(student_layer_indices(with_layers({1, 3}), 4), (Layers{1, 3}));
  EXPECT_EQ(parse_layer_strategy("hf-example"), LayerStrategy::HfExample);
  EXPECT_NE(error_of([] { parse_layer_strategy("alternate"); }).find("unknown layer strategy 'alternate'"), std::string::npos);
}

TEST(StudentLayers, BadChoicesAreClearErrors) {
  auto msg = [](const StudentOptions& o, int64_t L) { return error_of([&] { student_layer_indices(o, L); }); };
  EXPECT_NE(msg(with_layers({0, 4}), 4).find("layer 4 is out of range; the teacher has 4 layers (0..3)"), std::string::npos);
  EXPECT_NE(msg(with_layers({-1, 2}), 4).find("layer -1 is out of range"), std::string::npos);
  EXPECT_NE(msg(with_layers({0, 2, 2}), 4).find("layer 2 is listed twice"), std::string::npos);
  EXPECT_NE(msg(with_layers({2, 0, 2}), 4).find("layer 2 is listed twice"), std::string::npos);
  EXPECT_NE(msg(with_layers({2, 1}), 4).find("strictly increasing (2 comes before 1)"), std::string::npos);
  EXPECT_NE(msg(with_layers({}), 4).find("list of teacher layers is empty"), std::string::npos);
  auto both = with_layers({0, 2});
  both.strategy = LayerStrategy::EveryOther;
  EXPECT_NE(msg(both, 4).find("not both"), std::string::npos);
  auto count = with_layers({0, 2});
  count.n_layers = 3;
  EXPECT_NE(msg(count, 4).find("n_layers = 3 but the list has 2 layers"), std::string::npos);
  EXPECT_NE(msg(with_strategy(LayerStrategy::HfExample), 4).find("defined for a 12-layer teacher, this one has 4"), std::string::npos);
  EXPECT_NE(msg(with_strategy(LayerStrategy::FirstK), 4).find("needs n_layers"), std::string::npos);
  EXPECT_NE(msg(with_strategy(LayerStrategy::LastK, 5), 4).find("asks for 5 layers of a 4-layer teacher"), std::string::npos);
  EXPECT_NE(msg(with_strategy(LayerStrategy::EveryOther, 3), 4).find("at most 2 layers"), std::string::npos);
  EXPECT_NE(msg(with_strategy(LayerStrategy::EveryOther, 0), 4).find("n_layers must be positive"), std::string::npos);
}

TEST(InitStudent, EveryOtherCopiesTeacherLayersZeroAndTwo) {
  Model teacher = golden_teacher();
  Model student = init_student_from_teacher(*teacher, StudentOptions{});
  const auto& c = student->config;
  EXPECT_EQ(c.model_type, ModelType::DistilBert);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.type_vocab_size, 0);
  EXPECT_FALSE(c.sinusoidal_pos_embds);
  EXPECT_EQ(student->head, HeadKind::MaskedLM);
  EXPECT_FALSE(student->bert->pooler);
  EXPECT_FALSE(student->bert->embeddings->token_type_embeddings);

  auto tp = teacher->named_parameters();
  const std::vector<std::pair<int64_t, int64_t>> layer_of = {{0, 0}, {1, 2}};  // student -> teacher
  size_t compared = 0;
  for (const auto& item : student->named_parameters()) {
    std::string src = item.key();
    for (auto [k, l] : layer_of) {
      const std::string from = "bert.encoder.layer." + std::to_string(k) + ".";
      if (src.rfind(from, 0) == 0) src = "bert.encoder.layer." + std::to_string(l) + "." + src.substr(from.size());
    }
    ASSERT_NE(tp.find(src), nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), tp[src])) << item.key() << " vs teacher " << src;
    ++compared;
  }
  // 4 embedding tensors + 2 layers x 16 + head (dense w, b, LayerNorm w, b, bias).
  EXPECT_EQ(compared, 4u + 2 * 16 + 5);
  // Spot checks that the layer mapping is the intended one, not an identity.
  EXPECT_TRUE(torch::equal(student->bert->encoder->layers[1]->attention->self->query->weight,
                           teacher->bert->encoder->layers[2]->attention->self->query->weight));
  EXPECT_FALSE(torch::equal(student->bert->encoder->layers[1]->attention->self->query->weight,
                            teacher->bert->encoder->layers[1]->attention->self->query->weight));
  // The decoder stays tied to the (copied) word embeddings.
  EXPECT_TRUE(student->decoder_weight().is_same(student->bert->embeddings->word_embeddings->weight));
  EXPECT_TRUE(student->is_training());
}

TEST(InitStudent, DistilBertStudentSavesUnderDistilBertNamesAndReloads) {
  Model teacher = golden_teacher();
  Model student = init_student_from_teacher(*teacher, with_layers({1, 3}));
  student->eval();
  const std::string dir = fresh_dir("distilbert");
  save_model(*student, dir);

  auto config = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], "distilbert");
  EXPECT_EQ(config["architectures"][0], "DistilBertForMaskedLM");
  EXPECT_EQ(config["n_layers"], 2);
  EXPECT_EQ(config["dim"], 64);
  EXPECT_EQ(config["hidden_dim"], 128);
  EXPECT_EQ(config["n_heads"], 4);
  EXPECT_EQ(config["activation"], "gelu");
  EXPECT_EQ(config["max_position_embeddings"], 128);
  EXPECT_EQ(config["sinusoidal_pos_embds"], false);
  EXPECT_FALSE(config.contains("type_vocab_size"));
  EXPECT_FALSE(config.contains("use_cache"));  // a BERT-only key of the teacher's config

  // Exactly the tensor names transformers writes for a 2-layer DistilBertForMaskedLM.
  SafetensorsFile ours(dir + "/model.safetensors");
  SafetensorsFile golden(test::shared_path("golden/distilbert-tiny-random/model.safetensors"));
  auto a = ours.names(), b = golden.names();
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  EXPECT_TRUE(torch::equal(ours.tensor("distilbert.transformer.layer.1.ffn.lin1.weight"),
                           teacher->bert->encoder->layers[3]->intermediate->dense->weight));

  LoadOptions lo;
  lo.strict = true;
  LoadReport report;
  Model back = load_model(dir, lo, &report);
  back->eval();
  EXPECT_EQ(back->config.model_type, ModelType::DistilBert);
  EXPECT_EQ(back->head, HeadKind::MaskedLM);
  EXPECT_TRUE(report.initialised.empty());
  auto x = batch();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(back->forward(x.ids, x.mask).logits, student->forward(x.ids, x.mask).logits));
}

TEST(InitStudent, AllLayersInBertFormatReproduceTheTeacherExactly) {
  Model teacher = golden_teacher();
  StudentOptions o = with_layers({0, 1, 2, 3});
  o.format = StudentFormat::Bert;
  Model student = init_student_from_teacher(*teacher, o);
  student->eval();
  EXPECT_EQ(student->config.model_type, ModelType::Bert);
  ASSERT_TRUE(student->bert->embeddings->token_type_embeddings);
  auto x = batch();
  torch::NoGradGuard no_grad;
  auto want = teacher->forward(x.ids, x.mask, x.types).logits;  // (B, T, V)
  auto got = student->forward(x.ids, x.mask, x.types).logits;   // (B, T, V)
  EXPECT_TRUE(torch::equal(got, want));

  // A 2-layer BERT student is a different function (the check above can fail).
  Model shallow = init_student_from_teacher(*teacher, [] { auto s = with_layers({0, 1}); s.format = StudentFormat::Bert; return s; }());
  shallow->eval();
  EXPECT_GT((shallow->forward(x.ids, x.mask, x.types).logits - want).abs().max().item<double>(), 1e-3);
}

TEST(InitStudent, AllLayersDistilBertEqualsTheTeacherWithoutTokenTypes) {
  Model teacher = golden_teacher();
  Model student = init_student_from_teacher(*teacher, with_layers({0, 1, 2, 3}));
  student->eval();
  auto x = batch();
  torch::NoGradGuard no_grad;
  auto got = student->forward(x.ids, x.mask).logits;                  // (B, T, V)
  auto with_types = teacher->forward(x.ids, x.mask).logits;           // (B, T, V) type 0 everywhere
  // Nothing is folded: the student is the teacher with token_type_embeddings set to zero.
  teacher->bert->embeddings->token_type_embeddings->weight.zero_();
  auto without_types = teacher->forward(x.ids, x.mask, x.types).logits;  // (B, T, V)
  EXPECT_TRUE(torch::equal(got, without_types));
  EXPECT_GT((got - with_types).abs().max().item<double>(), 1e-3);  // the golden type-0 row is not zero
}

TEST(InitStudent, RandomInitBuildsAnyWidthFromASeed) {
  Model teacher = golden_teacher();
  StudentOptions o;
  o.random_init = true;
  o.hidden_size = 32;
  o.n_layers = 3;
  o.seed = 5;
  Model a = init_student_from_teacher(*teacher, o);
  Model b = init_student_from_teacher(*teacher, o);
  const auto& c = a->config;
  EXPECT_EQ(c.model_type, ModelType::DistilBert);
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 64);  // the teacher's I/H = 2
  auto wa = a->bert->embeddings->word_embeddings->weight;  // (V, 32)
  EXPECT_TRUE(torch::equal(wa, b->bert->embeddings->word_embeddings->weight));
  EXPECT_NEAR(wa.std().item<double>(), 0.02, 0.001);  // init_weights' normal(0, initializer_range)
  EXPECT_EQ(wa[0].abs().sum().item<double>(), 0.0);    // padding row
  o.seed = 6;
  Model d = init_student_from_teacher(*teacher, o);
  EXPECT_FALSE(torch::equal(wa, d->bert->embeddings->word_embeddings->weight));

  // Same width, random: nothing is copied from the teacher; default depth ceil(L/2).
  StudentOptions same;
  same.random_init = true;
  Model r = init_student_from_teacher(*teacher, same);
  EXPECT_EQ(r->config.num_hidden_layers, 2);
  EXPECT_FALSE(torch::equal(r->bert->embeddings->word_embeddings->weight, teacher->bert->embeddings->word_embeddings->weight));
  EXPECT_EQ(r->bert->encoder->layers[0]->output->LayerNorm->weight.sum().item<double>(), 64.0);
}

TEST(InitStudent, RefusalsNameTheProblem) {
  Model teacher = golden_teacher();
  StudentOptions narrow;
  narrow.hidden_size = 32;
  auto msg = error_of([&] { init_student_from_teacher(*teacher, narrow); });
  EXPECT_NE(msg.find("student hidden size 32 differs from the teacher's 64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot be initialised from teacher layers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--random-init"), std::string::npos) << msg;

  StudentOptions odd;
  odd.random_init = true;
  odd.hidden_size = 30;
  EXPECT_NE(error_of([&] { init_student_from_teacher(*teacher, odd); }).find("not a multiple of the teacher's 4 attention heads"), std::string::npos);

  StudentOptions random_with_layers = with_layers({0, 2});
  random_with_layers.random_init = true;
  EXPECT_NE(error_of([&] { init_student_from_teacher(*teacher, random_with_layers); }).find("copies no teacher layers"), std::string::npos);

  EXPECT_NE(error_of([&] { init_student_from_teacher(*teacher, with_layers({0, 5})); }).find("layer 5 is out of range"), std::string::npos);

  LoadOptions bare;
  bare.head_from_config = false;
  bare.head = HeadKind::None;
  Model headless = load_model(test::shared_path("golden/bert-tiny-random"), bare);
  EXPECT_NE(error_of([&] { init_student_from_teacher(*headless, StudentOptions{}); }).find("the teacher has no masked-LM head"), std::string::npos);
}

TEST(InitStudent, DistilBertTeacherToBertStudentGetsZeroTokenTypes) {
  Model teacher = load_model(test::shared_path("golden/distilbert-tiny-random"));
  teacher->eval();
  StudentOptions o = with_layers({0, 1});
  o.format = StudentFormat::Bert;
  Model student = init_student_from_teacher(*teacher, o);
  student->eval();
  ASSERT_TRUE(student->bert->embeddings->token_type_embeddings);
  EXPECT_EQ(student->config.type_vocab_size, 2);
  EXPECT_EQ(student->bert->embeddings->token_type_embeddings->weight.abs().sum().item<double>(), 0.0);
  auto x = batch();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(student->forward(x.ids, x.mask).logits, teacher->forward(x.ids, x.mask).logits));
}

}  // namespace
}  // namespace retort
