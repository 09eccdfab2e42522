// config.json round trips (unknown fields kept, DistilBERT spelling preserved), validation errors,
// and the DistilBERT <-> canonical name map.
#include <gtest/gtest.h>

#include <filesystem>

#include "retort/checkpoint.h"
#include "retort/config.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "test_paths.h"

namespace retort {
namespace {

using test::error_of;

TEST(ModelConfig, ReadsGoldenBertConfig) {
  auto c = ModelConfig::load(test::shared_path("golden/bert-tiny-random"));
  EXPECT_EQ(c.model_type, ModelType::Bert);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 4);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_EQ(c.hidden_act, "gelu");
  EXPECT_FALSE(c.classifier_dropout.has_value());
  EXPECT_EQ(c.architectures, std::vector<std::string>{"BertForMaskedLM"});
  EXPECT_TRUE(c.extra.contains("use_cache"));  // not a field Retort uses, kept for the round trip
}

TEST(ModelConfig, ReadsGoldenDistilBertConfigInItsOwnSpelling) {
  auto c = ModelConfig::load(test::shared_path("golden/distilbert-tiny-random/config.json"));
  EXPECT_EQ(c.model_type, ModelType::DistilBert);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.type_vocab_size, 0);
  EXPECT_DOUBLE_EQ(c.seq_classif_dropout, 0.2);
  auto j = c.to_json();
  EXPECT_EQ(j["dim"], 64);
  EXPECT_EQ(j["n_layers"], 2);
  EXPECT_EQ(j["hidden_dim"], 128);
  EXPECT_FALSE(j.contains("hidden_size"));
  EXPECT_FALSE(j.contains("type_vocab_size"));
}

TEST(ModelConfig, RoundTripEqualsTheFileTransformersWrote) {
  for (const char* m : {"bert-tiny-random", "distilbert-tiny-random", "mobilebert-tiny-random"}) {
    const std::string path = test::shared_path(std::string("golden/") + m + "/config.json");
    auto original = nlohmann::json::parse(read_file(path));
    auto c = ModelConfig::load(path);
    EXPECT_EQ(c.to_json(), original) << m;
  }
}

TEST(ModelConfig, ReadsGoldenMobileBertConfig) {
  auto c = ModelConfig::load(test::shared_path("golden/mobilebert-tiny-random"));
  EXPECT_EQ(c.model_type, ModelType::MobileBert);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.mobile.embedding_size, 32);
  EXPECT_EQ(c.mobile.intra_bottleneck_size, 32);
  EXPECT_EQ(c.true_hidden_size(), 32);
  EXPECT_EQ(c.head_dim(), 8);
  EXPECT_EQ(c.mobile.num_feedforward_networks, 2);
  EXPECT_EQ(c.mobile.normalization_type, "no_norm");
  EXPECT_TRUE(c.mobile.trigram_input && c.mobile.key_query_shared_bottleneck && c.mobile.classifier_activation);
  EXPECT_FALSE(c.extra.contains("true_hidden_size"));  // derived, written back on save
  nlohmann::json bad = c.to_json();
  bad["normalization_type"] = "batch_norm";
  EXPECT_THROW(ModelConfig::from_json(bad), Error);
  bad = c.to_json();
  bad["embedding_size"] = 128;  // wider than the hidden size
  EXPECT_THROW(ModelConfig::from_json(bad), Error);
  bad = c.to_json();
  bad["intra_bottleneck_size"] = 30;  // not a multiple of 4 heads
  EXPECT_THROW(ModelConfig::from_json(bad), Error);
}

// The shipped MobileBERT configurations: the student (as google/mobilebert-uncased) and the
// inverted-bottleneck teacher (IB-BERT_LARGE of the MobileBERT paper), for `pretrain --model-config`.
TEST(ModelConfig, ShippedMobileBertAndIbBertConfigsAreValid) {
  const auto student = ModelConfig::load(test::source_path("docs/students/mobilebert-uncased.json"));
  EXPECT_EQ(student.true_hidden_size(), 128);
  EXPECT_EQ(student.mobile.num_feedforward_networks, 4);
  const auto teacher = ModelConfig::load(test::source_path("docs/students/ib-bert-large.json"));
  EXPECT_EQ(teacher.true_hidden_size(), 1024);  // inverted: wider inside the block than between blocks
  EXPECT_EQ(teacher.hidden_size, student.hidden_size);  // feature maps line up for the layer-wise transfer
  EXPECT_EQ(teacher.num_hidden_layers, student.num_hidden_layers);
  EXPECT_EQ(teacher.num_attention_heads, student.num_attention_heads);  // attention transfer per head
}

TEST(ModelConfig, KeepsUnknownFieldsAndLabels) {
  nlohmann::json j = {{"model_type", "bert"}, {"hidden_size", 32}, {"num_attention_heads", 4},
                      {"my_custom_field", {{"a", 1}}}, {"id2label", {{"0", "neg"}, {"1", "pos"}}},
                      {"label2id", {{"neg", 0}, {"pos", 1}}}};
  auto c = ModelConfig::from_json(j);
  ASSERT_EQ(c.num_labels(), 2);
  EXPECT_EQ(c.id2label[1], "pos");
  const std::string dir = (test::temp_path("retort_cfg_roundtrip")).string();
  std::filesystem::create_directories(dir);
  c.save(dir);
  auto back = ModelConfig::load(dir);
  EXPECT_EQ(back.extra["my_custom_field"]["a"], 1);
  EXPECT_EQ(back.id2label, c.id2label);
  EXPECT_EQ(back.to_json()["label2id"]["pos"], 1);
}

TEST(ModelConfig, BadConfigsGiveClearErrors) {
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"hidden_size", 64}}, "x/config.json"); }).find("x/config.json: missing 'model_type'"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"model_type", "gpt2"}}); }).find("unsupported model_type 'gpt2'"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"model_type", "bert"}, {"hidden_size", 30}, {"num_attention_heads", 4}}); })
                .find("not a multiple of the number of attention heads"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"model_type", "bert"}, {"hidden_act", "swoosh"}}); }).find("unsupported activation 'swoosh'"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"model_type", "bert"}, {"hidden_size", "big"}}); }).find("field 'hidden_size' has the wrong type"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json({{"model_type", "bert"}, {"position_embedding_type", "relative_key"}}); }).find("relative_key"), std::string::npos);
  const std::string bad = (test::temp_path("retort_bad_config.json")).string();
  write_file_atomic(bad, "{\"model_type\": \"bert\",");
  EXPECT_NE(error_of([&] { ModelConfig::load(bad); }).find(bad + ": invalid JSON"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::load("/nonexistent/config.json"); }).find("/nonexistent/config.json: cannot open"), std::string::npos);
}

TEST(NameMap, DistilBertNamesMapBothWays) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"distilbert.embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"},
      {"distilbert.transformer.layer.1.attention.q_lin.weight", "bert.encoder.layer.1.attention.self.query.weight"},
      {"distilbert.transformer.layer.0.attention.out_lin.bias", "bert.encoder.layer.0.attention.output.dense.bias"},
      {"distilbert.transformer.layer.10.sa_layer_norm.weight", "bert.encoder.layer.10.attention.output.LayerNorm.weight"},
      {"distilbert.transformer.layer.0.ffn.lin1.weight", "bert.encoder.layer.0.intermediate.dense.weight"},
      {"distilbert.transformer.layer.0.ffn.lin2.bias", "bert.encoder.layer.0.output.dense.bias"},
      {"distilbert.transformer.layer.0.output_layer_norm.bias", "bert.encoder.layer.0.output.LayerNorm.bias"},
      {"vocab_transform.weight", "cls.predictions.transform.dense.weight"},
      {"vocab_layer_norm.bias", "cls.predictions.transform.LayerNorm.bias"},
      {"vocab_projector.bias", "cls.predictions.bias"},
      {"pre_classifier.weight", "pre_classifier.weight"},
  };
  for (const auto& [hf, canon] : cases) {
    EXPECT_EQ(canonical_name(hf, ModelType::DistilBert), canon) << hf;
    const HeadKind head = hf.rfind("pre_", 0) == 0 ? HeadKind::SequenceClassification : HeadKind::MaskedLM;
    EXPECT_EQ(hf_name(canon, ModelType::DistilBert, head), hf) << canon;
  }
  EXPECT_EQ(canonical_name("vocab_projector.weight", ModelType::DistilBert), "");  // tied alias
  EXPECT_EQ(canonical_name("distilbert.embeddings.position_ids", ModelType::DistilBert), "");
}

TEST(NameMap, BertPrefixesAreAccepted) {
  EXPECT_EQ(canonical_name("bert.encoder.layer.3.output.dense.weight", ModelType::Bert), "bert.encoder.layer.3.output.dense.weight");
  EXPECT_EQ(canonical_name("encoder.layer.3.output.dense.weight", ModelType::Bert), "bert.encoder.layer.3.output.dense.weight");
  EXPECT_EQ(canonical_name("pooler.dense.bias", ModelType::Bert), "bert.pooler.dense.bias");
  EXPECT_EQ(canonical_name("cls.predictions.decoder.weight", ModelType::Bert), "");
  EXPECT_EQ(canonical_name("cls.predictions.decoder.bias", ModelType::Bert), "");
  EXPECT_EQ(canonical_name("classifier.weight", ModelType::Bert), "classifier.weight");
  EXPECT_EQ(hf_name("bert.embeddings.LayerNorm.weight", ModelType::Bert, HeadKind::None), "embeddings.LayerNorm.weight");
  EXPECT_EQ(hf_name("bert.embeddings.LayerNorm.weight", ModelType::Bert, HeadKind::MaskedLM), "bert.embeddings.LayerNorm.weight");
}

}  // namespace
}  // namespace retort
