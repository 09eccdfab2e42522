// Tiny randomly initialised models for tests that need a model directory: the real bert-base-uncased
// vocabulary (so real text tokenizes) and a few thousand weights besides the embeddings.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/tokenizer.h"
#include "test_paths.h"

namespace retort::test {

inline Tokenizer bert_vocab() { return Tokenizer::load(shared_path("vocab/bert-base-uncased")); }

// Hidden 32, 2 heads, FFN 64, the given depth and positions, for `tok`'s vocabulary.
inline ModelConfig tiny_config(const Tokenizer& tok, int64_t layers, int64_t positions = 128,
                               ModelType type = ModelType::Bert) {
  ModelConfig c;
  c.model_type = type;
  if (type == ModelType::DistilBert) c.type_vocab_size = 0;
  c.vocab_size = static_cast<int64_t>(tok.vocab_size());
  c.hidden_size = 32;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  c.max_position_embeddings = positions;
  return c;
}

// Initialises a model of config `c` with `head` from `seed` and writes it with the tokenizer to dir.
inline void save_tiny_model(const std::filesystem::path& dir, const Tokenizer& tok, const ModelConfig& c,
                            uint64_t seed, HeadKind head = HeadKind::MaskedLM) {
  torch::manual_seed(seed);
  Model m(c, head);
  init_weights(*m);
  save_model(*m, dir.string());
  tok.save(dir.string());
}

// A small model in memory with weights well away from identity (initializer_range 0.2), for tests that
// compare two implementations of the forward pass: vocabulary 60, hidden 32, 4 heads, FFN 64, 24
// positions, labels {"a", "b", "c"}, in eval mode.
inline Model random_model(ModelType type, HeadKind head, int64_t layers, const std::string& act = "gelu",
                          uint64_t seed = 11) {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 60;
  c.hidden_size = 32;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.intermediate_size = 64;
  c.max_position_embeddings = 24;
  c.type_vocab_size = type == ModelType::Bert ? 2 : 0;
  c.initializer_range = 0.2;
  c.hidden_act = act;
  c.id2label = {"a", "b", "c"};
  torch::manual_seed(seed);
  Model m(c, head);
  init_weights(*m);
  m->eval();
  return m;
}

}  // namespace retort::test
