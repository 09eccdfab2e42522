// Dynamic masking for masked language modelling, as the Hugging Face distillation example's
// Distiller.prepare_batch_mlm does it: exactly ceil(mlm_mask_prop * real tokens) positions of a batch
// drawn without replacement, with probability ~ max(count, 1)^-mlm_smoothing of their token; of those
// word_mask become [MASK], word_keep stay, word_rand become a random token. Re-drawn on every call.
// Dimensions: B rows of a batch, T columns (padded length), V vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "retort/corpus.h"

namespace retort {

class Tokenizer;

// Field names and defaults of the Hugging Face distillation example's training config.
struct MaskingOptions {
  double mlm_mask_prop = 0.15;  // in (0, 1]
  double word_mask = 0.8;       // word_mask + word_keep + word_rand == 1 (to 1e-6)
  double word_keep = 0.1;
  double word_rand = 0.1;
  double mlm_smoothing = 0.7;  // >= 0; 0: every non-special token equally likely
  bool mlm = true;             // false: causal LM labels (every real token), no masking
  bool whole_word_mask = false;

  void validate() const;  // throws Error naming the bad field
};

struct MaskedBatch {
  size_t rows = 0, cols = 0;           // B, T
  std::vector<int32_t> input_ids;      // (B, T) ids after masking; padding unchanged
  std::vector<int32_t> labels;         // (B, T) original id where predicted, else kIgnoreLabel
  std::vector<uint8_t> pred_mask;      // (B, T) 1 where predicted
  std::vector<uint8_t> attention_mask; // (B, T) 1 for the first lengths[r] columns of row r
  size_t n_predicted = 0;
  static constexpr int32_t kIgnoreLabel = -100;  // CrossEntropyLoss's ignore_index
};

// Owns its generator: the same seed and the same calls give the same masks, and state() /
// set_state() resume a run exactly. Not thread-safe (one Masker per data-loading thread).
class Masker {
 public:
  // token_counts: (V,) counts over the corpus (CorpusReader::token_counts()); may be empty when
  // mlm_smoothing is 0 or mlm is false. Special ids (Tokenizer::is_special_id: [CLS], [SEP], [PAD],
  // [MASK], [UNK], ...) get probability 0, as the HF example zeroes its special_tok_ids.
  Masker(const Tokenizer& tokenizer, const std::vector<uint64_t>& token_counts, MaskingOptions options,
         uint64_t seed);

  // ids: (B, T) row-major, B = lengths.size(); positions c >= lengths[r] are padding.
  // The number predicted is min(n, candidates) with n = ceil(mlm_mask_prop * sum(lengths)) in double
  // precision as the HF example computes it ([CLS] and [SEP] count as real tokens there too); with
  // whole_word_mask whole words are added while they fit, so it can fall short of n when the words
  // left are longer than the room left. word_rand draws uniformly over the non-special ids (the HF
  // example draws over all V ids, special ones included; we never insert a special token).
  MaskedBatch mask(const std::vector<int32_t>& ids, const std::vector<int32_t>& lengths, size_t cols);
  MaskedBatch mask(const PaddedBatch& batch) { return mask(batch.ids, batch.lengths, batch.cols); }

  // Selection weight of each id: max(count, 1)^-mlm_smoothing, 0 for special ids. (V,)
  const std::vector<double>& token_probs() const { return token_probs_; }
  const MaskingOptions& options() const { return options_; }

  std::string state() const;               // the generator, as text
  void set_state(const std::string& s);    // throws Error on text state() did not make

 private:
  void select_tokens(const std::vector<double>& weight, size_t n, std::vector<uint8_t>& pred);
  void select_words(const std::vector<int32_t>& ids, const std::vector<double>& weight, size_t cols, size_t n,
                    std::vector<uint8_t>& pred);

  MaskingOptions options_;
  int32_t mask_id_ = -1;
  std::vector<double> token_probs_;       // (V,)
  std::vector<uint8_t> continuation_;     // (V,) 1 for "##" pieces
  std::vector<int32_t> random_ids_;       // non-special ids, for word_rand
  std::mt19937_64 rng_;
};

}  // namespace retort
