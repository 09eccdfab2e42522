// ModelConfig: one struct for every encoder Retort builds (BERT, DistilBERT, MobileBERT), parsed from and
// written back to a Hugging Face config.json. Field names follow the BERT spelling; DistilBERT's own spelling
// (dim, n_layers, hidden_dim, ...) is translated on the way in and out. Fields Retort does not use are
// kept verbatim in `extra` and written back, so a round trip loses nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retort {

enum class ModelType { Bert, DistilBert, MobileBert };

// "bert" / "distilbert" / "mobilebert" <-> ModelType; throws Error on anything else.
ModelType parse_model_type(const std::string& s);
std::string model_type_name(ModelType t);

// MobileBERT's knobs (Sun et al. 2020; transformers' MobileBertConfig names and defaults): a narrow
// embedding with the 3-gram input, bottlenecks around each block, stacked FFNs, NoNorm.
struct MobileBertOptions {
  int64_t embedding_size = 128;         // E: word-embedding width (the 3-gram input makes it 3E, projected to H)
  bool trigram_input = true;
  bool use_bottleneck = true;
  int64_t intra_bottleneck_size = 128;  // the block's inner width when use_bottleneck
  bool use_bottleneck_attention = false;  // query, key and value all from the bottlenecked input
  bool key_query_shared_bottleneck = true;  // query and key from one shared bottleneck of the input
  int64_t num_feedforward_networks = 4;     // FFNs per block (stacked)
  std::string normalization_type = "no_norm";  // "no_norm" (elementwise affine) or "layer_norm"
  bool classifier_activation = true;           // pooler: tanh(dense(h[:, 0])) instead of h[:, 0]
};

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
  MobileBertOptions mobile;             // model_type mobilebert only
  nlohmann::json extra = nlohmann::json::object();  // unknown fields, written back unchanged

  // Width the attention and FFNs run at: MobileBERT's intra-block bottleneck, else the hidden size.
  int64_t true_hidden_size() const {
    return model_type == ModelType::MobileBert && mobile.use_bottleneck ? mobile.intra_bottleneck_size : hidden_size;
  }
  int64_t head_dim() const { return true_hidden_size() / num_attention_heads; }
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
