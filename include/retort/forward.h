// What a forward pass returns and keeps: shared by the BERT/DistilBERT modules (model.h) and the
// MobileBERT modules (mobilebert.h).
//
// Dimensions: B batch, T sequence, H hidden, N heads, L layers.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace retort {

// Which intermediate tensors a forward pass keeps. All off by default: inference pays nothing.
struct ForwardOptions {
  bool hidden_states = false;     // embedding output + every layer output
  bool attentions = false;        // softmax probabilities per layer
  bool attention_scores = false;  // pre-softmax scaled scores per layer, before the mask is added
};

struct EncoderOutput {
  at::Tensor last_hidden_state;           // (B, T, H)
  std::vector<at::Tensor> hidden_states;  // L+1 x (B, T, H); [0] = embeddings after LayerNorm
  std::vector<at::Tensor> attentions;     // L x (B, N, T, T)
  std::vector<at::Tensor> attention_scores;  // L x (B, N, T, T)
  at::Tensor pooled;                      // (B, H) tanh(dense(h[:, 0])); undefined without pooler
};

struct LayerOutput {
  at::Tensor hidden;  // (B, T, H)
  at::Tensor probs;   // (B, N, T, T) when asked for
  at::Tensor scores;  // (B, N, T, T) when asked for
};

}  // namespace retort
