// retort::Model: an encoder (BertModel) plus at most one task head, with Hugging Face's names:
// masked-LM ("cls.predictions.*", decoder tied to the word embeddings), sequence classification or
// regression ("classifier", with the pooler for BERT and "pre_classifier" for DistilBERT), and
// extractive question answering ("qa_outputs", start/end logits).
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, C classes, M selected positions.
#pragma once

#include <string>

#include <ATen/core/Generator.h>

#include "retort/model.h"

namespace retort {

enum class HeadKind { None, MaskedLM, SequenceClassification, QuestionAnswering };

// From config.json's architectures[0] ("BertForMaskedLM", "DistilBertForSequenceClassification", ...).
HeadKind head_from_architectures(const std::vector<std::string>& architectures);
// The HF class name for a model type and head ("DistilBertForMaskedLM", "BertModel", ...).
std::string architecture_name(ModelType type, HeadKind head);
std::string head_name(HeadKind head);
HeadKind parse_head(const std::string& name);  // "none", "mlm", "classification", "qa"

struct MlmTransformImpl : torch::nn::Module {
  explicit MlmTransformImpl(const ModelConfig& c);
  torch::nn::Linear dense{nullptr};  // (H, H)
  torch::nn::LayerNorm LayerNorm{nullptr};
  std::string act;
};
TORCH_MODULE(MlmTransform);

struct MlmPredictionsImpl : torch::nn::Module {
  explicit MlmPredictionsImpl(const ModelConfig& c);
  MlmTransform transform{nullptr};
  torch::Tensor bias;            // (V)
  torch::nn::Linear decoder{nullptr};  // only when tie_word_embeddings is false
  torch::nn::Linear dense{nullptr};    // MobileBERT: weight (H - E, V), the decoder's other H - E inputs
};
TORCH_MODULE(MlmPredictions);

struct MlmHeadImpl : torch::nn::Module {
  explicit MlmHeadImpl(const ModelConfig& c);
  MlmPredictions predictions{nullptr};
};
TORCH_MODULE(MlmHead);

struct ModelOutput {
  EncoderOutput encoder;
  torch::Tensor logits;        // MLM: (B, T, V); classification: (B, C)
  torch::Tensor start_logits;  // QA: (B, T)
  torch::Tensor end_logits;    // QA: (B, T)
};

struct ModelImpl : torch::nn::Module {
  ModelImpl(const ModelConfig& c, HeadKind head);
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                      const torch::Tensor& token_type_ids = {}, const ForwardOptions& opt = {});
  // Fills the head's outputs from out.encoder.last_hidden_state (and .pooled, computed here when the
  // pooler has not run). A classification head reads position 0 only, so (B, 1, H) is enough.
  void apply_head(ModelOutput& out);
  // Vocabulary logits for hidden states of any leading shape (..., H) -> (..., V), so callers can
  // gather only the positions a loss needs before paying for the (H x V) projection.
  torch::Tensor mlm_logits(const torch::Tensor& hidden);
  // The matrix the MLM decoder multiplies by: the word embeddings when tied. (V, H)
  torch::Tensor decoder_weight();

  ModelConfig config;
  HeadKind head;
  BertModel bert{nullptr};
  MlmHead cls{nullptr};
  torch::nn::Linear pre_classifier{nullptr};  // DistilBERT classification (H, H)
  torch::nn::Linear classifier{nullptr};      // (C, H)
  torch::nn::Linear qa_outputs{nullptr};      // (2, H)
  torch::nn::Dropout head_dropout{nullptr};
};
TORCH_MODULE(Model);

// Hugging Face's initialisation: normal(0, initializer_range) for linear and embedding weights, zero
// biases (and the padding row), LayerNorm weight 1 and bias 0. Sinusoidal positions are kept.
// `generator` (seeded by the caller) makes the draw reproducible; none: libtorch's default generator.
void init_weights(ModelImpl& model, c10::optional<at::Generator> generator = c10::nullopt);

}  // namespace retort

namespace retort {

// Parameter count per block, in model order: "embeddings", "layer 0" ... "layer L-1", "pooler",
// "head (...)". Tied tensors are counted once (in the embeddings).
std::vector<std::pair<std::string, int64_t>> parameter_blocks(ModelImpl& model);
int64_t parameter_count(ModelImpl& model);

}  // namespace retort
