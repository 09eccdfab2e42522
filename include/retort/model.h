// The encoder family Retort trains and serves: BERT and DistilBERT as one set of libtorch modules.
// Registered names are Hugging Face's BERT state-dict names ("bert.encoder.layer.0.attention.self.query"),
// so a BERT checkpoint binds with no renaming; DistilBERT checkpoints go through the small name map in
// src/model/names.cpp. A student is the same class with another ModelConfig.
//
// Dimensions: B batch, T sequence, H hidden, I intermediate, V vocabulary, N heads, D head size (H/N),
// L layers, C classes.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "retort/config.h"
#include "retort/forward.h"
#include "retort/mobilebert.h"

namespace retort {

// Applies a Hugging Face activation by name (gelu = exact erf GELU, gelu_new = tanh approximation, ...).
torch::Tensor apply_activation(const std::string& name, const torch::Tensor& x);

// (B, T) {0,1} mask -> (B, 1, 1, T) additive mask: 0 where attended, dtype's lowest value elsewhere.
torch::Tensor extended_attention_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// LayerNorm that first casts its input to the weights' dtype: libtorch 1.13's CPU autocast leaves
// layer_norm alone, and a bf16 input with fp32 weights fails. A no-op when the dtypes agree.
torch::Tensor layer_norm(torch::nn::LayerNorm& ln, const torch::Tensor& x);

// Scaled dot-product attention over n_head heads of the projected q, k, v (B, T, N*D) -> context
// (B, T, N*D); keeps the pre-mask scores and the probabilities in `out` when `opt` asks. mask: (B, 1, 1, T)
// additive or undefined. Shared by the BERT and MobileBERT blocks.
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t n_head, const torch::Tensor& mask, torch::nn::Dropout& dropout,
                                   const ForwardOptions& opt, LayerOutput& out);

// (n_positions, H) fixed sinusoidal table as DistilBERT builds it.
torch::Tensor sinusoidal_positions(int64_t n_positions, int64_t dim);

struct EmbeddingsImpl : torch::nn::Module {
  explicit EmbeddingsImpl(const ModelConfig& c);
  // input_ids, token_type_ids: (B, T) int64; token_type_ids may be undefined (all zeros).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);

  torch::nn::Embedding word_embeddings{nullptr};        // (V, H)
  torch::nn::Embedding position_embeddings{nullptr};    // (max_positions, H)
  torch::nn::Embedding token_type_embeddings{nullptr};  // (type_vocab, H); null for DistilBERT
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Embeddings);

struct SelfAttentionImpl : torch::nn::Module {
  explicit SelfAttentionImpl(const ModelConfig& c);
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};  // (H, H)
  torch::nn::Dropout dropout{nullptr};
  int64_t n_head;
};
TORCH_MODULE(SelfAttention);

// "attention.output" in HF: dense projection, dropout, residual, LayerNorm.
struct SublayerOutputImpl : torch::nn::Module {
  SublayerOutputImpl(int64_t in, int64_t out, double eps, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(SublayerOutput);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const ModelConfig& c);
  SelfAttention self{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(Attention);

struct IntermediateImpl : torch::nn::Module {
  explicit IntermediateImpl(const ModelConfig& c);
  torch::nn::Linear dense{nullptr};  // (I, H)
  std::string act;
};
TORCH_MODULE(Intermediate);


// One post-LN transformer block: x = LN(x + Attn(x)); x = LN(x + FFN(x)).
struct LayerImpl : torch::nn::Module {
  explicit LayerImpl(const ModelConfig& c);
  // x: (B, T, H); mask: (B, 1, 1, T) additive.
  LayerOutput forward(const torch::Tensor& x, const torch::Tensor& mask, const ForwardOptions& opt);
  Attention attention{nullptr};
  Intermediate intermediate{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(Layer);

struct LayerStackImpl : torch::nn::Module {
  explicit LayerStackImpl(const ModelConfig& c);
  torch::nn::ModuleList layer{nullptr};
  std::vector<Layer> layers;  // typed views of `layer`
};
TORCH_MODULE(LayerStack);  // HF's "encoder": the list of layers

struct PoolerImpl : torch::nn::Module {
  explicit PoolerImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& hidden);  // (B, T, H) -> (B, H)
  torch::nn::Linear dense{nullptr};  // null for MobileBERT without classifier_activation: h[:, 0] as is
};
TORCH_MODULE(Pooler);

// HF BertModel (and MobileBertModel): embeddings, encoder, optional pooler.
struct BertModelImpl : torch::nn::Module {
  BertModelImpl(const ModelConfig& c, bool add_pooler);
  // input_ids, attention_mask, token_type_ids: (B, T) int64; the last two may be undefined.
  EncoderOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids, const ForwardOptions& opt = {});
  // The word-embedding table of either family: (V, H), MobileBERT (V, E).
  torch::nn::Embedding& word_embeddings();
  bool is_mobile() const { return static_cast<bool>(mobile_encoder); }
  ModelConfig config;
  Embeddings embeddings{nullptr};  // BERT / DistilBERT
  LayerStack encoder{nullptr};
  MobileEmbeddings mobile_embeddings{nullptr};  // MobileBERT, registered as "embeddings"
  MobileLayerStack mobile_encoder{nullptr};     // MobileBERT, registered as "encoder"
  Pooler pooler{nullptr};
};
TORCH_MODULE(BertModel);

}  // namespace retort
