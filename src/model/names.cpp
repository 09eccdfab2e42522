// The explicit name map between DistilBERT's state-dict names and Retort's canonical (BERT) names,
// and prefix handling for every checkpoint ("bert.", "distilbert." or bare BertModel names).
#include <regex>

#include "retort/checkpoint.h"
#include "retort/error.h"

namespace retort {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// DistilBERT layer-relative name <-> BERT layer-relative name.
const std::vector<std::pair<std::string, std::string>> kDistilLayerMap = {
    {"attention.q_lin.", "attention.self.query."},
    {"attention.k_lin.", "attention.self.key."},
    {"attention.v_lin.", "attention.self.value."},
    {"attention.out_lin.", "attention.output.dense."},
    {"sa_layer_norm.", "attention.output.LayerNorm."},
    {"ffn.lin1.", "intermediate.dense."},
    {"ffn.lin2.", "output.dense."},
    {"output_layer_norm.", "output.LayerNorm."},
};

// DistilBERT head name <-> canonical head name.
const std::vector<std::pair<std::string, std::string>> kDistilHeadMap = {
    {"vocab_transform.", "cls.predictions.transform.dense."},
    {"vocab_layer_norm.", "cls.predictions.transform.LayerNorm."},
    {"vocab_projector.bias", "cls.predictions.bias"},
};

bool is_encoder_relative(const std::string& n) {
  return starts_with(n, "embeddings.") || starts_with(n, "encoder.") || starts_with(n, "pooler.") ||
         starts_with(n, "transformer.");
}

}  // namespace

std::string canonical_name(const std::string& name, ModelType type) {
  // Aliases and non-persistent buffers that have no parameter of their own.
  if (name == "cls.predictions.decoder.bias") return "";
  if (name == "vocab_projector.weight" || name == "cls.predictions.decoder.weight") return "";
  static const std::regex buffers(R"((^|\.)embeddings\.(position_ids|token_type_ids)$)");
  if (std::regex_search(name, buffers)) return "";

  std::string n = name;
  if (starts_with(n, "bert.")) n = n.substr(5);
  else if (starts_with(n, "distilbert.")) n = n.substr(11);
  else if (starts_with(n, "mobilebert.")) n = n.substr(11);
  else if (!is_encoder_relative(n)) {
    if (type == ModelType::DistilBert) {
      for (const auto& [from, to] : kDistilHeadMap) {
        if (starts_with(n, from)) return to + n.substr(from.size());
      }
    }
    return n;  // head tensors keep their names (cls.*, classifier.*, pre_classifier.*, qa_outputs.*)
  }
  if (starts_with(n, "transformer.layer.")) {
    // transformer.layer.<i>.<rest> -> encoder.layer.<i>.<mapped rest>
    const size_t dot = n.find('.', 18);
    if (dot == std::string::npos) return "bert." + n;
    const std::string idx = n.substr(18, dot - 18), rest = n.substr(dot + 1);
    for (const auto& [from, to] : kDistilLayerMap) {
      if (starts_with(rest, from)) return "bert.encoder.layer." + idx + "." + to + rest.substr(from.size());
    }
  }
  return "bert." + n;
}

std::string hf_name(const std::string& canonical, ModelType type, HeadKind head) {
  check(starts_with(canonical, "bert.") || head != HeadKind::None, "no Hugging Face name for '", canonical, "'");
  if (!starts_with(canonical, "bert.")) {
    if (type == ModelType::DistilBert) {
      for (const auto& [distil, canon] : kDistilHeadMap) {
        if (starts_with(canonical, canon)) return distil + canonical.substr(canon.size());
      }
    }
    return canonical;
  }
  std::string rel = canonical.substr(5);
  if (type == ModelType::DistilBert && starts_with(rel, "encoder.layer.")) {
    const size_t dot = rel.find('.', 14);
    const std::string idx = rel.substr(14, dot - 14), rest = rel.substr(dot + 1);
    for (const auto& [distil, bert] : kDistilLayerMap) {
      if (starts_with(rest, bert)) {
        rel = "transformer.layer." + idx + "." + distil + rest.substr(bert.size());
        break;
      }
    }
  }
  if (head == HeadKind::None) return rel;  // BertModel / DistilBertModel save without a prefix
  return (type == ModelType::Bert ? "bert." : type == ModelType::DistilBert ? "distilbert." : "mobilebert.") + rel;
}

}  // namespace retort
