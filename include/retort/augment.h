// TinyBERT's data augmentation (Jiao et al. 2019, Algorithm 1) for task-specific distillation: each word
// of a sentence is replaced, with probability p, by one of its candidates. A word that is a single
// WordPiece gets the top-M predictions of the teacher's own masked-LM head with the word masked; a
// word of several pieces gets its M nearest neighbours in a word-vector file in GloVe's text format
// when one is given (as the paper did), else it is kept. N augmented copies per example, duplicates
// dropped, seeded; the output is the task's own file format.
//
// Dimensions: W candidate words of a sentence, T tokens, V vocabulary, D word-vector size.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/types.h>

#include "retort/heads.h"
#include "retort/tokenizer.h"

namespace retort {

struct AugmentOptions {
  int64_t copies = 0;          // N augmented copies per example; 0: TinyBERT's default for the task
  double replace_prob = 0.4;   // p: probability that a word with candidates is replaced
  int64_t top_k = 15;          // M: candidates per word
  std::string word_vectors;    // GloVe text file ("word v1 ... vD" per line); empty: multi-piece words kept
  int64_t word_vectors_limit = 0;  // > 0: only the first N words of that file (GloVe is sorted by frequency)
  uint64_t seed = 42;
  int64_t max_examples = 0;    // > 0: only the first N rows of the training file (the rest are dropped)
  int64_t max_seq_length = 128;
  std::string device = "cpu";
};

// TinyBERT's N per task: 30 for CoLA, MRPC, STS-B and RTE; 10 for MNLI and QQP; 20 otherwise.
int64_t default_augment_copies(const std::string& task);

// Word vectors in GloVe's text format, L2-normalised, for nearest-neighbour lookups by cosine.
class WordVectors {
 public:
  // Throws Error naming the file and line on a malformed row or rows of different sizes.
  static WordVectors load(const std::string& path, int64_t limit = 0);
  // The k words nearest to `word` (excluding itself), best first; empty when `word` has no vector.
  std::vector<std::string> nearest(const std::string& word, int64_t k) const;
  size_t size() const { return words_.size(); }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> index_;
  torch::Tensor vectors_;  // (words, D) unit rows
};

// One word of a sentence: its byte span in the text and its replacement candidates.
struct AugmentWord {
  size_t begin = 0, end = 0;  // bytes [begin, end) in the original text
  std::string text;
  std::vector<std::string> candidates;  // empty: the word is always kept
};

class Augmenter {
 public:
  // model_dir: a masked-LM model with its tokenizer (the teacher). Loads the word vectors when given.
  Augmenter(const std::string& model_dir, const AugmentOptions& opt);

  // Every word of `text` (BERT's pre-tokenization: whitespace and punctuation) with its candidates:
  // words without a letter, and words cut off by max_seq_length, get none.
  std::vector<AugmentWord> words(const std::string& text);
  // Up to `copies` distinct rewrites of `text` (never `text` itself), drawing from `rng`: per copy, each
  // word with candidates is replaced with probability p by a uniformly chosen candidate.
  std::vector<std::string> augment(const std::string& text, int64_t copies, std::mt19937_64& rng);

  const Tokenizer& tokenizer() const { return tok_; }

 private:
  AugmentOptions opt_;
  Tokenizer tok_;
  Model model_{nullptr};
  WordVectors vectors_;
  bool have_vectors_ = false;
  torch::Tensor not_proposable_;  // (1, V): 0 where a token may be proposed (a whole word with a letter), -1e30 elsewhere
  c10::Device device_ = c10::Device(c10::kCPU);
};

struct AugmentReport {
  int64_t examples = 0;  // rows read
  int64_t written = 0;   // rows written, originals included
  double seconds = 0;
};

// Augments the task's training file under data_dir (a GLUE task) and writes out_path in the same
// layout: the header, then each original row followed by its augmented rows. Sentence-pair tasks get
// each sentence augmented in turn with the other kept (N copies each).
AugmentReport augment_task(const std::string& task, const std::string& data_dir, const std::string& model_dir,
                           const std::string& out_path, const AugmentOptions& opt);

}  // namespace retort
