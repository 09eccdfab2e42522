// config.json <-> ModelConfig. BERT and DistilBERT spell the same knobs differently; both are read into
// one struct and written back in the model type's own spelling. Unknown keys survive the round trip
// in ModelConfig::extra. Keys are written sorted with 2-space indent, as transformers' to_json_string.
#include <set>

#include "retort/config.h"
#include "retort/error.h"
#include "retort/fs.h"

namespace retort {
namespace {

using nlohmann::json;

// Activations transformers' ACT2FN knows and Retort implements (src/model/activation.cpp).
const std::set<std::string> kActivations = {
    "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_accurate", "quick_gelu", "relu",
    "relu6", "silu", "swish", "mish", "tanh", "sigmoid", "linear", "leaky_relu"};

// Reads j[key] as T into `out` when present and not null; errors name the file and the key.
template <typename T>
bool take(json& j, const char* key, T& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (!it->is_null()) {
    try {
      out = it->get<T>();
    } catch (const json::exception&) {
      fail(source, ": field '", key, "' has the wrong type (", it->type_name(), ")");
    }
  }
  j.erase(it);
  return true;
}

template <typename T>
bool take_opt(json& j, const char* key, std::optional<T>& out, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_null()) {
    out.reset();
  } else {
    T v{};
    take(j, key, v, source);
    out = v;
    return true;
  }
  j.erase(it);
  return true;
}

void read_labels(json& j, ModelConfig& c, const std::string& source) {
  auto it = j.find("id2label");
  if (it != j.end() && it->is_object()) {
    c.id2label.assign(it->size(), "");
    for (auto& [k, v] : it->items()) {
      size_t idx = 0;
      try {
        idx = std::stoul(k);
      } catch (const std::exception&) {
        fail(source, ": id2label key '", k, "' is not an integer");
      }
      check(idx < c.id2label.size(), source, ": id2label ids must be 0..", c.id2label.size() - 1,
            ", got ", idx);
      check(v.is_string(), source, ": id2label[", k, "] must be a string");
      c.id2label[idx] = v.get<std::string>();
    }
    j.erase(it);
    j.erase("label2id");  // derived from id2label on write
    j.erase("num_labels");
  } else {
    int64_t n = 0;
    if (take(j, "num_labels", n, source)) {
      for (int64_t i = 0; i < n; ++i) c.id2label.push_back("LABEL_" + std::to_string(i));
    }
  }
}

}  // namespace

ModelType parse_model_type(const std::string& s) {
  if (s == "bert") return ModelType::Bert;
  if (s == "distilbert") return ModelType::DistilBert;
  if (s == "mobilebert") return ModelType::MobileBert;
  fail("unsupported model_type '", s, "' (Retort supports bert, distilbert, mobilebert)");
}

std::string model_type_name(ModelType t) {
  switch (t) {
    case ModelType::Bert: return "bert";
    case ModelType::DistilBert: return "distilbert";
    case ModelType::MobileBert: return "mobilebert";
  }
  return "bert";
}

void ModelConfig::validate(const std::string& source) const {
  check(vocab_size > 0, source, ": vocab_size must be positive, got ", vocab_size);
  check(hidden_size > 0, source, ": hidden size must be positive, got ", hidden_size);
  check(num_hidden_layers > 0, source, ": number of layers must be positive, got ", num_hidden_layers);
  check(num_attention_heads > 0 && true_hidden_size() % num_attention_heads == 0, source,
        ": hidden size ", true_hidden_size(), " is not a multiple of the number of attention heads ",
        num_attention_heads);
  if (model_type == ModelType::MobileBert) {
    check(mobile.embedding_size > 0 && mobile.embedding_size <= hidden_size, source, ": embedding_size ",
          mobile.embedding_size, " must be in 1..hidden_size (", hidden_size, ")");
    check(mobile.intra_bottleneck_size > 0, source, ": intra_bottleneck_size must be positive");
    check(mobile.num_feedforward_networks > 0, source, ": num_feedforward_networks must be positive");
    check(mobile.normalization_type == "no_norm" || mobile.normalization_type == "layer_norm", source,
          ": normalization_type '", mobile.normalization_type, "' is not supported (no_norm, layer_norm)");
  }
  check(intermediate_size > 0, source, ": intermediate size must be positive, got ", intermediate_size);
  check(max_position_embeddings > 0, source, ": max_position_embeddings must be positive");
  check(kActivations.count(hidden_act) == 1, source, ": unsupported activation '", hidden_act, "'");
  check(position_embedding_type == "absolute", source, ": position_embedding_type '",
        position_embedding_type, "' is not supported (only 'absolute')");
  check(pad_token_id >= 0 && pad_token_id < vocab_size, source, ": pad_token_id ", pad_token_id,
        " is outside the vocabulary");
  check(layer_norm_eps > 0, source, ": layer_norm_eps must be positive");
}

ModelConfig ModelConfig::from_json(const json& in, const std::string& source) {
  check(in.is_object(), source, ": expected a JSON object");
  json j = in;
  ModelConfig c;
  std::string type;
  check(take(j, "model_type", type, source), source, ": missing 'model_type'");
  try {
    c.model_type = parse_model_type(type);
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
  take(j, "vocab_size", c.vocab_size, source);
  take(j, "max_position_embeddings", c.max_position_embeddings, source);
  take(j, "initializer_range", c.initializer_range, source);
  take(j, "pad_token_id", c.pad_token_id, source);
  take(j, "architectures", c.architectures, source);
  take(j, "problem_type", c.problem_type, source);
  take(j, "torch_dtype", c.torch_dtype, source);
  take(j, "tie_word_embeddings", c.tie_word_embeddings, source);
  read_labels(j, c, source);
  if (c.model_type != ModelType::DistilBert) {
    take(j, "hidden_size", c.hidden_size, source);
    take(j, "num_hidden_layers", c.num_hidden_layers, source);
    take(j, "num_attention_heads", c.num_attention_heads, source);
    take(j, "intermediate_size", c.intermediate_size, source);
    take(j, "hidden_act", c.hidden_act, source);
    take(j, "hidden_dropout_prob", c.hidden_dropout_prob, source);
    take(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
    take_opt(j, "classifier_dropout", c.classifier_dropout, source);
    take(j, "type_vocab_size", c.type_vocab_size, source);
    take(j, "layer_norm_eps", c.layer_norm_eps, source);
    take(j, "position_embedding_type", c.position_embedding_type, source);
    if (c.model_type == ModelType::MobileBert) {
      auto& m = c.mobile;
      take(j, "embedding_size", m.embedding_size, source);
      take(j, "trigram_input", m.trigram_input, source);
      take(j, "use_bottleneck", m.use_bottleneck, source);
      take(j, "intra_bottleneck_size", m.intra_bottleneck_size, source);
      take(j, "use_bottleneck_attention", m.use_bottleneck_attention, source);
      take(j, "key_query_shared_bottleneck", m.key_query_shared_bottleneck, source);
      take(j, "num_feedforward_networks", m.num_feedforward_networks, source);
      take(j, "normalization_type", m.normalization_type, source);
      take(j, "classifier_activation", m.classifier_activation, source);
      j.erase("true_hidden_size");  // derived; written back on save
    }
  } else {
    take(j, "dim", c.hidden_size, source);
    take(j, "n_layers", c.num_hidden_layers, source);
    take(j, "n_heads", c.num_attention_heads, source);
    take(j, "hidden_dim", c.intermediate_size, source);
    take(j, "activation", c.hidden_act, source);
    take(j, "dropout", c.hidden_dropout_prob, source);
    take(j, "attention_dropout", c.attention_probs_dropout_prob, source);
    take(j, "seq_classif_dropout", c.seq_classif_dropout, source);
    take(j, "qa_dropout", c.qa_dropout, source);
    take(j, "sinusoidal_pos_embds", c.sinusoidal_pos_embds, source);
    c.type_vocab_size = 0;
    c.layer_norm_eps = 1e-12;  // fixed in transformers' DistilBERT
  }
  j.erase("transformers_version");  // rewritten on save
  c.extra = std::move(j);
  c.validate(source);
  return c;
}

json ModelConfig::to_json() const {
  json j = extra;
  j["model_type"] = model_type_name(model_type);
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  if (!architectures.empty()) j["architectures"] = architectures;
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  j["torch_dtype"] = torch_dtype;
  j["transformers_version"] = "4.36.2";
  if (!tie_word_embeddings) j["tie_word_embeddings"] = false;
  if (!id2label.empty()) {
    json id2 = json::object(), l2i = json::object();
    for (size_t i = 0; i < id2label.size(); ++i) {
      id2[std::to_string(i)] = id2label[i];
      l2i[id2label[i]] = i;
    }
    j["id2label"] = id2;
    j["label2id"] = l2i;
  }
  if (model_type != ModelType::DistilBert) {
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["intermediate_size"] = intermediate_size;
    j["hidden_act"] = hidden_act;
    j["hidden_dropout_prob"] = hidden_dropout_prob;
    j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
    j["classifier_dropout"] = classifier_dropout ? json(*classifier_dropout) : json(nullptr);
    j["type_vocab_size"] = type_vocab_size;
    j["layer_norm_eps"] = layer_norm_eps;
    if (model_type == ModelType::Bert) j["position_embedding_type"] = position_embedding_type;
    if (model_type == ModelType::MobileBert) {
      j["embedding_size"] = mobile.embedding_size;
      j["trigram_input"] = mobile.trigram_input;
      j["use_bottleneck"] = mobile.use_bottleneck;
      j["intra_bottleneck_size"] = mobile.intra_bottleneck_size;
      j["use_bottleneck_attention"] = mobile.use_bottleneck_attention;
      j["key_query_shared_bottleneck"] = mobile.key_query_shared_bottleneck;
      j["num_feedforward_networks"] = mobile.num_feedforward_networks;
      j["normalization_type"] = mobile.normalization_type;
      j["classifier_activation"] = mobile.classifier_activation;
      j["true_hidden_size"] = true_hidden_size();
    }
  } else {
    j["dim"] = hidden_size;
    j["n_layers"] = num_hidden_layers;
    j["n_heads"] = num_attention_heads;
    j["hidden_dim"] = intermediate_size;
    j["activation"] = hidden_act;
    j["dropout"] = hidden_dropout_prob;
    j["attention_dropout"] = attention_probs_dropout_prob;
    j["seq_classif_dropout"] = seq_classif_dropout;
    j["qa_dropout"] = qa_dropout;
    j["sinusoidal_pos_embds"] = sinusoidal_pos_embds;
  }
  return j;
}

ModelConfig ModelConfig::load(const std::string& path) {
  const std::string file = is_directory(path) ? join_path(path, "config.json") : path;
  const std::string text = read_file(file);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(file, ": invalid JSON (", e.what(), ")");
  }
  return from_json(j, file);
}

void ModelConfig::save(const std::string& path) const {
  const std::string file = is_directory(path) ? join_path(path, "config.json") : path;
  write_file_atomic(file, to_json().dump(2) + "\n");
}

}  // namespace retort
