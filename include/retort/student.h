// Student initialisation for DistilBERT: a shallower copy of the teacher that keeps its embeddings,
// a chosen subset of its layers and its masked-LM head (Sanh et al. 2019, "initialise the student
// from the teacher by taking one layer out of two"), or a randomly initialised student of any width.
// The layer choice is a list of teacher layer indices or a named strategy.
//
// Dimensions: H hidden, V vocabulary, L teacher layers, K student layers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "retort/heads.h"

namespace retort {

// every-other: 0, 2, 4, ... (K = ceil(L/2) unless n_layers says fewer); hf-example: the HF example's
// extract_distilbert.py choice 0,2,4,7,9,11 (a 12-layer teacher only); first-k: 0..K-1;
// last-k: L-K..L-1 (first-k and last-k need n_layers).
enum class LayerStrategy { EveryOther, HfExample, FirstK, LastK };
LayerStrategy parse_layer_strategy(const std::string& name);  // "every-other", "hf-example", ...
std::string layer_strategy_name(LayerStrategy s);

// Format of the saved student: DistilBertForMaskedLM (no token-type embeddings), BertForMaskedLM, or
// MobileBertForMaskedLM (random_init only: bottleneck blocks share nothing with a BERT teacher's).
enum class StudentFormat { DistilBert, Bert, MobileBert };
StudentFormat parse_student_format(const std::string& name);  // "distilbert", "bert" or "mobilebert"

struct StudentOptions {
  std::optional<std::vector<int64_t>> layers;  // explicit teacher layer indices, strictly increasing
  std::optional<LayerStrategy> strategy;       // when no `layers`; default every-other
  std::optional<int64_t> n_layers;             // K; default: the strategy's (or len(layers))
  StudentFormat format = StudentFormat::DistilBert;
  bool random_init = false;            // no copying: init_weights from a generator seeded with `seed`
  std::optional<int64_t> hidden_size;  // H of the student; may differ from the teacher's only with random_init
  // MobileBERT students (defaults scaled from H as MobileBERT's 512/128/128/512): embedding E = H/4,
  // bottleneck Hb = H/4, FFN size I = H, 4 stacked FFNs, NoNorm, ReLU, the teacher's head count.
  std::optional<int64_t> embedding_size, bottleneck_size, feedforward_networks;
  std::optional<int64_t> intermediate_size;  // FFN size; default the teacher's I/H ratio times H (random_init only when it differs)
  uint64_t seed = 42;
};

// The teacher layer each student layer is copied from, checked against the teacher's depth:
// an explicit list must be non-empty, in range, without duplicates and strictly increasing.
// With random_init nothing is copied: the result is empty, and a layer list or strategy is an error.
std::vector<int64_t> student_layer_indices(const StudentOptions& opt, int64_t teacher_layers);

// The student's config: the teacher's sizes with K layers (and H when random_init), in the student's
// format. A DistilBERT config takes the teacher's activation and max positions, has no token types and
// learned (not sinusoidal) positions unless the teacher's are sinusoidal.
ModelConfig student_config(const ModelConfig& teacher, const StudentOptions& opt);

// A masked-LM student built from `teacher`. Copies the word and position embeddings, the embedding
// LayerNorm, the chosen layers and the MLM head (transform dense + LayerNorm + bias; the decoder stays
// tied to the word embeddings, or is copied when untied), so the teacher needs a masked-LM head. No
// pooler. Token-type embeddings: copied for a BERT-format student, dropped (not folded) for a DistilBERT
// one, as extract_distilbert.py does. With random_init only the teacher's config is used (K defaults to
// ceil(L/2)). The student is fp32, on the teacher's device, in training mode.
Model init_student_from_teacher(ModelImpl& teacher, const StudentOptions& opt);

}  // namespace retort
