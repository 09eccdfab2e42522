// Task heads on top of the encoder, and Hugging Face's weight initialisation.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, C classes.
#include <torch/torch.h>

#include "retort/error.h"
#include "retort/heads.h"

namespace retort {

HeadKind head_from_architectures(const std::vector<std::string>& architectures) {
  if (architectures.empty()) return HeadKind::None;
  const std::string& a = architectures.front();
  auto ends_with = [&](const std::string& s) {
    return a.size() >= s.size() && a.compare(a.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("ForMaskedLM") || ends_with("ForPreTraining")) return HeadKind::MaskedLM;
  if (ends_with("ForSequenceClassification")) return HeadKind::SequenceClassification;
  if (ends_with("ForQuestionAnswering")) return HeadKind::QuestionAnswering;
  if (ends_with("Model")) return HeadKind::None;
  fail("unsupported architecture '", a, "' (supported: *Model, *ForMaskedLM, *ForPreTraining, ",
       "*ForSequenceClassification, *ForQuestionAnswering)");
}

std::string architecture_name(ModelType type, HeadKind head) {
  const std::string base = type == ModelType::Bert ? "Bert" : type == ModelType::DistilBert ? "DistilBert" : "MobileBert";
  switch (head) {
    case HeadKind::None: return base + "Model";
    case HeadKind::MaskedLM: return base + "ForMaskedLM";
    case HeadKind::SequenceClassification: return base + "ForSequenceClassification";
    case HeadKind::QuestionAnswering: return base + "ForQuestionAnswering";
  }
  return base + "Model";
}

std::string head_name(HeadKind head) {
  switch (head) {
    case HeadKind::None: return "none";
    case HeadKind::MaskedLM: return "mlm";
    case HeadKind::SequenceClassification: return "classification";
    case HeadKind::QuestionAnswering: return "qa";
  }
  return "none";
}

HeadKind parse_head(const std::string& name) {
  if (name == "none") return HeadKind::None;
  if (name == "mlm") return HeadKind::MaskedLM;
  if (name == "classification") return HeadKind::SequenceClassification;
  if (name == "qa") return HeadKind::QuestionAnswering;
  fail("unknown head '", name, "' (none, mlm, classification, qa)");
}

MlmTransformImpl::MlmTransformImpl(const ModelConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", torch::nn::Linear(c.hidden_size, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

MlmPredictionsImpl::MlmPredictionsImpl(const ModelConfig& c) {
  transform = register_module("transform", MlmTransform(c));
  bias = register_parameter("bias", torch::zeros({c.vocab_size}));  // (V)
  // MobileBERT's decoder reads E columns from the (tied) embeddings and the other H - E from `dense`.
  const int64_t E = c.model_type == ModelType::MobileBert ? c.mobile.embedding_size : c.hidden_size;
  if (!c.tie_word_embeddings) {
    decoder = register_module("decoder", torch::nn::Linear(torch::nn::LinearOptions(E, c.vocab_size).bias(false)));
  }
  if (E < c.hidden_size) {
    dense = register_module("dense", torch::nn::Linear(torch::nn::LinearOptions(c.vocab_size, c.hidden_size - E).bias(false)));
  }
}

MlmHeadImpl::MlmHeadImpl(const ModelConfig& c) {
  predictions = register_module("predictions", MlmPredictions(c));
}

ModelImpl::ModelImpl(const ModelConfig& c, HeadKind h) : config(c), head(h) {
  const bool is_bert = c.model_type != ModelType::DistilBert;  // BERT-style heads: BERT and MobileBERT
  const bool pooler = is_bert && h == HeadKind::SequenceClassification;
  bert = register_module("bert", BertModel(c, pooler));
  switch (h) {
    case HeadKind::None: break;
    case HeadKind::MaskedLM: cls = register_module("cls", MlmHead(c)); break;
    case HeadKind::SequenceClassification: {
      check(c.num_labels() > 0, "a classification head needs labels (id2label / num_labels) in the config");
      if (!is_bert) pre_classifier = register_module("pre_classifier", torch::nn::Linear(c.hidden_size, c.hidden_size));
      classifier = register_module("classifier", torch::nn::Linear(c.hidden_size, c.num_labels()));
      const double p = is_bert ? c.classifier_dropout.value_or(c.hidden_dropout_prob) : c.seq_classif_dropout;
      head_dropout = register_module("head_dropout", torch::nn::Dropout(p));
      break;
    }
    case HeadKind::QuestionAnswering:
      qa_outputs = register_module("qa_outputs", torch::nn::Linear(c.hidden_size, 2));
      head_dropout = register_module("head_dropout", torch::nn::Dropout(is_bert ? 0.0 : c.qa_dropout));
      break;
  }
}

torch::Tensor ModelImpl::decoder_weight() {
  check(static_cast<bool>(cls), "this model has no masked-LM head");
  auto& p = cls->predictions;
  return p->decoder ? p->decoder->weight : bert->word_embeddings()->weight;  // (V, H); MobileBERT (V, E)
}

torch::Tensor ModelImpl::mlm_logits(const torch::Tensor& hidden) {
  check(static_cast<bool>(cls), "this model has no masked-LM head");
  auto& t = cls->predictions->transform;
  auto x = layer_norm(t->LayerNorm, apply_activation(t->act, t->dense(hidden)));       // (..., H)
  const auto& extra = cls->predictions->dense;  // MobileBERT: (H - E, V)
  const torch::Tensor w = decoder_weight();      // (V, H); MobileBERT (V, E)
  if (!extra) return torch::nn::functional::linear(x, w, cls->predictions->bias);  // (..., V)
  using torch::indexing::Slice;
  const int64_t E = w.size(1);
  auto logits = torch::nn::functional::linear(x.index({"...", Slice(0, E)}), w, cls->predictions->bias);
  return logits + torch::matmul(x.index({"...", Slice(E)}), extra->weight.to(x.scalar_type()));  // (..., V)
}

ModelOutput ModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& token_type_ids, const ForwardOptions& opt) {
  ModelOutput out;
  out.encoder = bert(input_ids, attention_mask, token_type_ids, opt);
  apply_head(out);
  return out;
}

void ModelImpl::apply_head(ModelOutput& out) {
  using torch::indexing::Slice;
  const auto& h = out.encoder.last_hidden_state;  // (B, T, H)
  switch (head) {
    case HeadKind::None: break;
    case HeadKind::MaskedLM: out.logits = mlm_logits(h); break;  // (B, T, V)
    case HeadKind::SequenceClassification:
      if (pre_classifier) {
        auto x = torch::relu(pre_classifier(h.index({Slice(), 0})));  // (B, H)
        out.logits = classifier(head_dropout(x));                       // (B, C)
      } else {
        if (!out.encoder.pooled.defined()) out.encoder.pooled = bert->pooler(h);  // (B, H)
        out.logits = classifier(head_dropout(out.encoder.pooled));               // (B, C)
      }
      break;
    case HeadKind::QuestionAnswering: {
      auto both = qa_outputs(head_dropout(h));  // (B, T, 2)
      out.start_logits = both.select(-1, 0).contiguous();  // (B, T)
      out.end_logits = both.select(-1, 1).contiguous();    // (B, T)
      break;
    }
  }
}

void init_weights(ModelImpl& model, c10::optional<at::Generator> generator) {
  torch::NoGradGuard no_grad;
  const double std = model.config.initializer_range;
  for (auto& m : model.modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      lin->weight.normal_(0.0, std, generator);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<torch::nn::Embedding>()) {
      if (!emb->weight.requires_grad()) continue;  // fixed sinusoidal positions
      emb->weight.normal_(0.0, std, generator);
      if (emb->options.padding_idx()) emb->weight[*emb->options.padding_idx()].zero_();
    } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    } else if (auto* mn = m->as<MobileNorm>()) {
      mn->weight.fill_(1.0);
      mn->bias.zero_();
    }
  }
  if (model.cls) model.cls->predictions->bias.zero_();
}

}  // namespace retort
