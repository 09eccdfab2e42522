// BERT/DistilBERT encoder forward passes, written to be read top to bottom (llm.c style). Post-LN
// blocks; attention keeps its probabilities and pre-softmax scores only when ForwardOptions asks.
//
// Dimensions: B batch, T sequence, H hidden, I intermediate, N heads, D head size.
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "retort/error.h"
#include "retort/model.h"

namespace retort {

torch::Tensor apply_activation(const std::string& name, const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  if (name == "gelu") return torch::gelu(x);  // exact erf form, as HF's GELUActivation
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast" ||
      name == "gelu_accurate") {
    return torch::gelu(x, "tanh");
  }
  if (name == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  if (name == "relu") return torch::relu(x);
  if (name == "relu6") return torch::clamp(x, 0.0, 6.0);
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "mish") return torch::mish(x);
  if (name == "tanh") return torch::tanh(x);
  if (name == "sigmoid") return torch::sigmoid(x);
  if (name == "leaky_relu") return F::leaky_relu(x);
  if (name == "linear") return x;
  fail("unsupported activation '", name, "'");
}

torch::Tensor extended_attention_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  // (B, T) -> (B, 1, 1, T): 0 on tokens, the dtype's lowest finite value on padding (as HF does).
  const double lowest = dtype == torch::kBFloat16 ? -3.3895313892515355e38
                        : dtype == torch::kHalf   ? -65504.0
                        : dtype == torch::kDouble ? std::numeric_limits<double>::lowest()
                                                  : static_cast<double>(std::numeric_limits<float>::lowest());
  auto m = attention_mask.to(dtype).unsqueeze(1).unsqueeze(2);  // (B, 1, 1, T)
  return (1.0 - m) * lowest;
}

torch::Tensor sinusoidal_positions(int64_t n_positions, int64_t dim) {
  // out[pos, 2i] = sin(pos / 10000^(2i/dim)), out[pos, 2i+1] = cos(...), as transformers computes it.
  auto out = torch::zeros({n_positions, dim});  // (P, H)
  auto acc = out.accessor<float, 2>();
  for (int64_t pos = 0; pos < n_positions; ++pos) {
    for (int64_t j = 0; j < dim; ++j) {
      const double angle = pos / std::pow(10000.0, 2.0 * (j / 2) / static_cast<double>(dim));
      acc[pos][j] = static_cast<float>(j % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
  return out;
}

torch::Tensor layer_norm(torch::nn::LayerNorm& ln, const torch::Tensor& x) {
  const auto dtype = ln->weight.scalar_type();
  return ln(x.scalar_type() == dtype ? x : x.to(dtype));
}

// --- embeddings ------------------------------------------------------------------------------------

EmbeddingsImpl::EmbeddingsImpl(const ModelConfig& c) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings = register_module(
      "position_embeddings", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  if (c.sinusoidal_pos_embds) {
    torch::NoGradGuard no_grad;
    position_embeddings->weight.copy_(sinusoidal_positions(c.max_position_embeddings, c.hidden_size));
    position_embeddings->weight.set_requires_grad(false);
  }
  if (c.type_vocab_size > 0) {
    token_type_embeddings = register_module(
        "token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  }
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor EmbeddingsImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids) {
  const int64_t T = input_ids.size(1);
  check(T <= position_embeddings->weight.size(0), "sequence length ", T,
        " exceeds max_position_embeddings ", position_embeddings->weight.size(0));
  auto positions = torch::arange(T, input_ids.options());            // (T)
  auto x = word_embeddings(input_ids) + position_embeddings(positions);  // (B, T, H)
  if (token_type_embeddings) {
    x = token_type_ids.defined() ? x + token_type_embeddings(token_type_ids)
                                 : x + token_type_embeddings->weight[0];
  }
  return dropout(layer_norm(LayerNorm, x));
}

// --- attention -------------------------------------------------------------------------------------

SelfAttentionImpl::SelfAttentionImpl(const ModelConfig& c) : n_head(c.num_attention_heads) {
  query = register_module("query", torch::nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", torch::nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", torch::nn::Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
}

SublayerOutputImpl::SublayerOutputImpl(int64_t in, int64_t out, double eps, double p) {
  dense = register_module("dense", torch::nn::Linear(in, out));
  LayerNorm = register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({out}).eps(eps)));
  dropout = register_module("dropout", torch::nn::Dropout(p));
}

torch::Tensor SublayerOutputImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return layer_norm(LayerNorm, dropout(dense(x)) + residual);
}

AttentionImpl::AttentionImpl(const ModelConfig& c) {
  self = register_module("self", SelfAttention(c));
  output = register_module(
      "output", SublayerOutput(c.hidden_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob));
}

IntermediateImpl::IntermediateImpl(const ModelConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", torch::nn::Linear(c.hidden_size, c.intermediate_size));
}

LayerImpl::LayerImpl(const ModelConfig& c) {
  attention = register_module("attention", Attention(c));
  intermediate = register_module("intermediate", Intermediate(c));
  output = register_module(
      "output", SublayerOutput(c.intermediate_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob));
}

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t n_head, const torch::Tensor& mask, torch::nn::Dropout& dropout,
                                   const ForwardOptions& opt, LayerOutput& out) {
  const int64_t B = q.size(0), T = q.size(1), N = n_head, D = q.size(2) / n_head;
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, N, D}).transpose(1, 2); };  // (B, N, T, D)
  auto scores = torch::matmul(heads(q), heads(k).transpose(-1, -2)) / std::sqrt(static_cast<double>(D));  // (B, N, T, T)
  if (opt.attention_scores) out.scores = scores;
  auto probs = torch::softmax(mask.defined() ? scores + mask : scores, -1);  // (B, N, T, T)
  if (opt.attentions) out.probs = probs;
  return torch::matmul(dropout(probs), heads(v)).transpose(1, 2).reshape({B, T, N * D});  // (B, T, N*D)
}

LayerOutput LayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const ForwardOptions& opt) {
  auto& sa = attention->self;
  LayerOutput out;
  auto ctx = multi_head_attention(sa->query(x), sa->key(x), sa->value(x), sa->n_head, mask, sa->dropout, opt, out);
  auto h = attention->output(ctx, x);                                        // (B, T, H)
  auto inner = apply_activation(intermediate->act, intermediate->dense(h));  // (B, T, I)
  out.hidden = output(inner, h);                                             // (B, T, H)
  return out;
}

LayerStackImpl::LayerStackImpl(const ModelConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(Layer(c));
    layer->push_back(layers.back());
  }
}

PoolerImpl::PoolerImpl(const ModelConfig& c) {
  if (c.model_type == ModelType::MobileBert && !c.mobile.classifier_activation) return;
  dense = register_module("dense", torch::nn::Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor PoolerImpl::forward(const torch::Tensor& hidden) {
  using torch::indexing::Slice;
  auto first = hidden.index({Slice(), 0});  // (B, H)
  return dense ? torch::tanh(dense(first)) : first;
}

// --- the model -------------------------------------------------------------------------------------

BertModelImpl::BertModelImpl(const ModelConfig& c, bool add_pooler) : config(c) {
  c.validate();
  if (c.model_type == ModelType::MobileBert) {
    mobile_embeddings = register_module("embeddings", MobileEmbeddings(c));
    mobile_encoder = register_module("encoder", MobileLayerStack(c));
  } else {
    embeddings = register_module("embeddings", Embeddings(c));
    encoder = register_module("encoder", LayerStack(c));
  }
  if (add_pooler) pooler = register_module("pooler", Pooler(c));
}

torch::nn::Embedding& BertModelImpl::word_embeddings() {
  return mobile_embeddings ? mobile_embeddings->word_embeddings : embeddings->word_embeddings;
}

EncoderOutput BertModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                     const torch::Tensor& token_type_ids, const ForwardOptions& opt) {
  check(input_ids.dim() == 2, "input_ids must be (batch, seq), got ", input_ids.sizes());
  auto x = mobile_embeddings ? mobile_embeddings(input_ids, token_type_ids)
                             : embeddings(input_ids, token_type_ids);  // (B, T, H)
  torch::Tensor mask;                              // (B, 1, 1, T) additive, or undefined
  if (attention_mask.defined()) mask = extended_attention_mask(attention_mask, x.scalar_type());
  EncoderOutput out;
  if (opt.hidden_states) out.hidden_states.push_back(x);
  auto keep = [&](LayerOutput&& lo) {
    x = lo.hidden;
    if (opt.hidden_states) out.hidden_states.push_back(x);
    if (opt.attentions) out.attentions.push_back(lo.probs);
    if (opt.attention_scores) out.attention_scores.push_back(lo.scores);
  };
  if (mobile_encoder) {
    for (auto& layer : mobile_encoder->layers) keep(layer(x, mask, opt));
  } else {
    for (auto& layer : encoder->layers) keep(layer(x, mask, opt));
  }
  out.last_hidden_state = x;
  if (pooler) out.pooled = pooler(x);
  return out;
}

}  // namespace retort
