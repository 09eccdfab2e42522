// MobileBERT's encoder (Sun et al. 2020) with Hugging Face's module names (modeling_mobilebert.py), so
// a MobileBERT checkpoint binds with only the "mobilebert." prefix mapped. Each block: bottlenecks take
// the H-wide input down to the intra-block width Hb, attention runs at Hb (query/key from a shared
// bottleneck), F - 1 stacked FFNs and the main FFN run at Hb, and an output bottleneck adds the block's
// input back at width H. Norms are NoNorm (x * w + b) or LayerNorm, as configured.
//
// Dimensions: B batch, T sequence, H hidden (inter-block), Hb intra-block bottleneck, E embedding,
// I intermediate, N heads, D head size (Hb / N), F feed-forward networks per block.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "retort/config.h"
#include "retort/forward.h"

namespace retort {

// NoNorm (x * weight + bias, elementwise) or LayerNorm; parameters "weight" (X) and "bias" (X) either way.
struct MobileNormImpl : torch::nn::Module {
  MobileNormImpl(int64_t size, const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // (..., X) -> (..., X)
  torch::Tensor weight, bias;
  bool no_norm;
  double eps;
};
TORCH_MODULE(MobileNorm);

// A dense layer followed by a norm over its output: HF's BottleneckLayer / FFNOutput / OutputBottleneck
// shapes (dense + "LayerNorm"), with the residual added before the norm when one is given.
struct DenseNormImpl : torch::nn::Module {
  DenseNormImpl(int64_t in, int64_t out, const ModelConfig& c, double dropout = 0.0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual = {});
  torch::nn::Linear dense{nullptr};
  MobileNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DenseNorm);

struct MobileEmbeddingsImpl : torch::nn::Module {
  explicit MobileEmbeddingsImpl(const ModelConfig& c);
  // input_ids, token_type_ids: (B, T) int64; token_type_ids may be undefined (all zeros). -> (B, T, H)
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids);
  torch::nn::Embedding word_embeddings{nullptr};        // (V, E)
  torch::nn::Embedding position_embeddings{nullptr};    // (max_positions, H)
  torch::nn::Embedding token_type_embeddings{nullptr};  // (type_vocab, H)
  torch::nn::Linear embedding_transformation{nullptr};  // (H, 3E) with the 3-gram input, (H, E) otherwise
  MobileNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  bool trigram;
};
TORCH_MODULE(MobileEmbeddings);

struct MobileSelfAttentionImpl : torch::nn::Module {
  explicit MobileSelfAttentionImpl(const ModelConfig& c);
  torch::nn::Linear query{nullptr}, key{nullptr};  // (Hb, Hb)
  torch::nn::Linear value{nullptr};                // (Hb, H), or (Hb, Hb) with use_bottleneck_attention
  torch::nn::Dropout dropout{nullptr};
  int64_t n_head;
};
TORCH_MODULE(MobileSelfAttention);

struct MobileAttentionImpl : torch::nn::Module {
  explicit MobileAttentionImpl(const ModelConfig& c);
  MobileSelfAttention self{nullptr};
  DenseNorm output{nullptr};  // (Hb, Hb) + norm, residual: the bottlenecked layer input
};
TORCH_MODULE(MobileAttention);

struct MobileIntermediateImpl : torch::nn::Module {
  explicit MobileIntermediateImpl(const ModelConfig& c);
  torch::nn::Linear dense{nullptr};  // (I, Hb)
  std::string act;
};
TORCH_MODULE(MobileIntermediate);

// HF's MobileBertOutput: dense (Hb, I) + norm with the attention output, then the output bottleneck
// (H, Hb) + norm with the block's input.
struct MobileOutputImpl : torch::nn::Module {
  explicit MobileOutputImpl(const ModelConfig& c);
  torch::nn::Linear dense{nullptr};  // (Hb, I)
  MobileNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  DenseNorm bottleneck{nullptr};  // null without use_bottleneck
};
TORCH_MODULE(MobileOutput);

struct MobileBottleneckImpl : torch::nn::Module {
  explicit MobileBottleneckImpl(const ModelConfig& c);
  DenseNorm input{nullptr};      // (Hb, H): the layer input of the block
  DenseNorm attention{nullptr};  // (Hb, H): shared query/key input; null unless key_query_shared_bottleneck
};
TORCH_MODULE(MobileBottleneck);

struct MobileFfnImpl : torch::nn::Module {
  explicit MobileFfnImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, Hb) -> (B, T, Hb)
  MobileIntermediate intermediate{nullptr};
  DenseNorm output{nullptr};  // (Hb, I) + norm with x
};
TORCH_MODULE(MobileFfn);

struct MobileLayerImpl : torch::nn::Module {
  explicit MobileLayerImpl(const ModelConfig& c);
  // x: (B, T, H); mask: (B, 1, 1, T) additive or undefined.
  LayerOutput forward(const torch::Tensor& x, const torch::Tensor& mask, const ForwardOptions& opt);
  MobileAttention attention{nullptr};
  MobileIntermediate intermediate{nullptr};
  MobileOutput output{nullptr};
  MobileBottleneck bottleneck{nullptr};  // null without use_bottleneck
  torch::nn::ModuleList ffn{nullptr};    // F - 1 stacked MobileFfn; null when F == 1
  std::vector<MobileFfn> ffns;
  bool use_bottleneck, bottleneck_attention, shared_qk;
};
TORCH_MODULE(MobileLayer);

struct MobileLayerStackImpl : torch::nn::Module {
  explicit MobileLayerStackImpl(const ModelConfig& c);
  torch::nn::ModuleList layer{nullptr};
  std::vector<MobileLayer> layers;  // typed views of `layer`
};
TORCH_MODULE(MobileLayerStack);

}  // namespace retort
