// MobileBERT's embeddings and blocks (see mobilebert.h), read top to bottom.
//
// Dimensions: B batch, T sequence, H hidden, Hb bottleneck, E embedding, I intermediate, N heads, D head size.
#include <torch/torch.h>

#include "retort/error.h"
#include "retort/mobilebert.h"
#include "retort/model.h"

namespace retort {

MobileNormImpl::MobileNormImpl(int64_t size, const ModelConfig& c)
    : no_norm(c.mobile.normalization_type == "no_norm"), eps(c.layer_norm_eps) {
  weight = register_parameter("weight", torch::ones({size}));  // (X)
  bias = register_parameter("bias", torch::zeros({size}));     // (X)
}

torch::Tensor MobileNormImpl::forward(const torch::Tensor& x) {
  if (no_norm) return x * weight + bias;
  const auto xs = x.scalar_type() == weight.scalar_type() ? x : x.to(weight.scalar_type());  // see layer_norm()
  return torch::layer_norm(xs, {weight.size(0)}, weight, bias, eps);
}

DenseNormImpl::DenseNormImpl(int64_t in, int64_t out, const ModelConfig& c, double p) {
  dense = register_module("dense", torch::nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", MobileNorm(out, c));
  if (p > 0) dropout = register_module("dropout", torch::nn::Dropout(p));
}

torch::Tensor DenseNormImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  auto y = dense(x);
  if (dropout) y = dropout(y);
  return LayerNorm(residual.defined() ? y + residual : y);
}

// --- embeddings ------------------------------------------------------------------------------------

MobileEmbeddingsImpl::MobileEmbeddingsImpl(const ModelConfig& c) : trigram(c.mobile.trigram_input) {
  const int64_t E = c.mobile.embedding_size, H = c.hidden_size;
  word_embeddings = register_module(
      "word_embeddings", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, E).padding_idx(c.pad_token_id)));
  position_embeddings = register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, H));
  token_type_embeddings = register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, H));
  if (trigram || E != H) {
    embedding_transformation = register_module("embedding_transformation", torch::nn::Linear(trigram ? 3 * E : E, H));
  }
  LayerNorm = register_module("LayerNorm", MobileNorm(H, c));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor MobileEmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids) {
  using torch::indexing::Slice;
  const int64_t T = input_ids.size(1);
  check(T <= position_embeddings->weight.size(0), "sequence length ", T, " exceeds max_position_embeddings ",
        position_embeddings->weight.size(0));
  auto x = word_embeddings(input_ids);  // (B, T, E)
  if (trigram) {
    // [next token, this token, previous token], zeros past either end: (B, T, 3E)
    auto next = torch::constant_pad_nd(x.index({Slice(), Slice(1)}), {0, 0, 0, 1});
    auto prev = torch::constant_pad_nd(x.index({Slice(), Slice(0, T - 1)}), {0, 0, 1, 0});
    x = torch::cat({next, x, prev}, 2);
  }
  if (embedding_transformation) x = embedding_transformation(x);  // (B, T, H)
  auto positions = torch::arange(T, input_ids.options());         // (T)
  x = x + position_embeddings(positions);
  x = token_type_ids.defined() ? x + token_type_embeddings(token_type_ids) : x + token_type_embeddings->weight[0];
  return dropout(LayerNorm(x));
}

// --- the block -------------------------------------------------------------------------------------

MobileSelfAttentionImpl::MobileSelfAttentionImpl(const ModelConfig& c)
    : n_head(c.num_attention_heads) {
  const int64_t Hb = c.true_hidden_size();
  query = register_module("query", torch::nn::Linear(Hb, Hb));
  key = register_module("key", torch::nn::Linear(Hb, Hb));
  value = register_module("value", torch::nn::Linear(c.mobile.use_bottleneck_attention ? Hb : c.hidden_size, Hb));
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
}

MobileAttentionImpl::MobileAttentionImpl(const ModelConfig& c) {
  self = register_module("self", MobileSelfAttention(c));
  const int64_t Hb = c.true_hidden_size();
  output = register_module("output", DenseNorm(Hb, Hb, c, c.mobile.use_bottleneck ? 0.0 : c.hidden_dropout_prob));
}

MobileIntermediateImpl::MobileIntermediateImpl(const ModelConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", torch::nn::Linear(c.true_hidden_size(), c.intermediate_size));
}

MobileOutputImpl::MobileOutputImpl(const ModelConfig& c) {
  const int64_t Hb = c.true_hidden_size();
  dense = register_module("dense", torch::nn::Linear(c.intermediate_size, Hb));
  LayerNorm = register_module("LayerNorm", MobileNorm(Hb, c));
  if (c.mobile.use_bottleneck) {
    bottleneck = register_module("bottleneck", DenseNorm(Hb, c.hidden_size, c, c.hidden_dropout_prob));
  } else {
    dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
  }
}

MobileBottleneckImpl::MobileBottleneckImpl(const ModelConfig& c) {
  const int64_t Hb = c.true_hidden_size();
  input = register_module("input", DenseNorm(c.hidden_size, Hb, c));
  if (c.mobile.key_query_shared_bottleneck) attention = register_module("attention", DenseNorm(c.hidden_size, Hb, c));
}

MobileFfnImpl::MobileFfnImpl(const ModelConfig& c) {
  intermediate = register_module("intermediate", MobileIntermediate(c));
  output = register_module("output", DenseNorm(c.intermediate_size, c.true_hidden_size(), c));
}

torch::Tensor MobileFfnImpl::forward(const torch::Tensor& x) {
  return output(apply_activation(intermediate->act, intermediate->dense(x)), x);  // (B, T, Hb)
}

MobileLayerImpl::MobileLayerImpl(const ModelConfig& c)
    : use_bottleneck(c.mobile.use_bottleneck),
      bottleneck_attention(c.mobile.use_bottleneck_attention),
      shared_qk(c.mobile.key_query_shared_bottleneck) {
  attention = register_module("attention", MobileAttention(c));
  intermediate = register_module("intermediate", MobileIntermediate(c));
  output = register_module("output", MobileOutput(c));
  if (use_bottleneck) bottleneck = register_module("bottleneck", MobileBottleneck(c));
  if (c.mobile.num_feedforward_networks > 1) {
    ffn = register_module("ffn", torch::nn::ModuleList());
    for (int64_t i = 1; i < c.mobile.num_feedforward_networks; ++i) {
      ffns.push_back(MobileFfn(c));
      ffn->push_back(ffns.back());
    }
  }
}

LayerOutput MobileLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const ForwardOptions& opt) {
  // The four inputs of the attention block (HF's Bottleneck.forward).
  torch::Tensor q_in = x, k_in = x, v_in = x, layer_in = x;  // (B, T, H) or (B, T, Hb)
  if (use_bottleneck) {
    layer_in = bottleneck->input(x);  // (B, T, Hb)
    if (bottleneck_attention) {
      q_in = k_in = v_in = layer_in;
    } else if (shared_qk) {
      q_in = k_in = bottleneck->attention(x);  // (B, T, Hb)
    }
  }
  auto& sa = attention->self;
  LayerOutput out;
  auto ctx = multi_head_attention(sa->query(q_in), sa->key(k_in), sa->value(v_in), sa->n_head, mask, sa->dropout, opt,
                                  out);  // (B, T, Hb)
  auto h = attention->output(ctx, layer_in);                                               // (B, T, Hb)
  for (auto& f : ffns) h = f(h);                                                          // (B, T, Hb)
  auto inner = apply_activation(intermediate->act, intermediate->dense(h));               // (B, T, I)
  auto y = output->dense(inner);                                                          // (B, T, Hb)
  if (output->dropout) y = output->dropout(y);
  y = output->LayerNorm(y + h);
  out.hidden = output->bottleneck ? output->bottleneck(y, x) : y;  // (B, T, H)
  return out;
}

MobileLayerStackImpl::MobileLayerStackImpl(const ModelConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(MobileLayer(c));
    layer->push_back(layers.back());
  }
}

}  // namespace retort
