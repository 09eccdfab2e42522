// ModelConfig: one struct for every encoder Retort builds (BERT, DistilBERT), parsed from and written
// back to a Hugging Face config.json. Field names follow the BERT spelling; DistilBERT's own spelling
// (dim, n_layers, hidden_dim, ...) is translated on the way in and out. Fields Retort does not use are
// kept verbatim in `extra` and written back, so a round trip loses nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retort {

enum class ModelType { Bert, DistilBert };

// "bert" / "distilbert" <-> ModelType; throws Error on anything else.
ModelType parse_model_type(const std::string& s);
std::string model_type_name(ModelType t);

struct ModelConfig {
  ModelType model_type = ModelType::Bert;
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;            // H (DistilBERT: dim)
  int64_t num_hidden_layers = 12;       // L (DistilBERT: n_layers)
  int64_t num_attention_heads = 12;     // (DistilBERT: n_heads)
  int64_t intermediate_size = 3072;     // FFN inner size (DistilBERT: hidden_dim)
  std::string hidden_act = "gelu";      // (DistilBERT: activation)
  double hidden_dropout_prob = 0.1;     // (DistilBERT: dropout)
  double attention_probs_dropout_prob = 0.1;  // (DistilBERT: attention_dropout)
  std::optional<double> classifier_dropout;   // BERT; null -> hidden_dropout_prob
  double seq_classif_dropout = 0.2;     // DistilBERT classification head
  double qa_dropout = 0.1;              // DistilBERT QA head
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;          // 0 for DistilBERT (no token types)
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  std::string position_embedding_type = "absolute";
  bool sinusoidal_pos_embds = false;    // DistilBERT: fixed sinusoidal positions
  bool tie_word_embeddings = true;      // MLM decoder shares the word embedding matrix
  std::vector<std::string> architectures;
  std::vector<std::string> id2label;    // label names by index; size = num_labels
  std::string problem_type;             // "", "regression", "single_label_classification", ...
  std::string torch_dtype = "float32";
  nlohmann::json extra = nlohmann::json::object();  // unknown fields, written back unchanged

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }
  // Checks internal consistency (positive sizes, heads divide hidden size, known activation);
  // `source` names the file in the message.
  void validate(const std::string& source = "config") const;

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
  nlohmann::json to_json() const;
  static ModelConfig load(const std::string& path);  // a config.json path or a model directory
  void save(const std::string& path) const;          // a config.json path, written atomically
};

}  // namespace retort
