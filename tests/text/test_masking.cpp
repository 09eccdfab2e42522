// Masker against the semantics of the Hugging Face distillation example's prepare_batch_mlm: exactly
// n = ceil(mlm_mask_prop * real tokens) predictions, never on special tokens or padding, the 80/10/10
// split, selection in proportion to count^-mlm_smoothing, whole words kept together, exact resume.
// Tolerances are 5 binomial standard deviations; the seeds are fixed, so the tests are deterministic.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "corpus_test_util.h"
#include "retort/masking.h"

namespace retort::test {
namespace {

// Brown sentences packed as rows of a padded batch: ids (B, T) with [CLS] ... [SEP] and [PAD].
PaddedBatch brown_batch(size_t rows, size_t first_line = 0) {
  const Tokenizer& tok = bert_tokenizer();
  std::ifstream in(shared_path("data/corpus/brown.txt"));
  std::string line;
  for (size_t i = 0; i < first_line; ++i) std::getline(in, line);
  std::vector<std::vector<int32_t>> seqs;
  while (seqs.size() < rows && std::getline(in, line)) {
    auto ids = tok.encode_ids(line, true);
    if (ids.size() > 8 && ids.size() <= 64) seqs.push_back(std::move(ids));
  }
  PaddedBatch b;
  b.rows = seqs.size();
  for (const auto& s : seqs) b.cols = std::max(b.cols, s.size());
  b.ids.assign(b.rows * b.cols, tok.pad_id());
  for (size_t r = 0; r < b.rows; ++r) {
    std::copy(seqs[r].begin(), seqs[r].end(), b.ids.begin() + static_cast<std::ptrdiff_t>(r * b.cols));
    b.lengths.push_back(static_cast<int32_t>(seqs[r].size()));
  }
  return b;
}

// Counts that make some tokens common, others rare: 1000 for ids below 5000, 3 above.
std::vector<uint64_t> skewed_counts() {
  std::vector<uint64_t> c(bert_tokenizer().vocab_size(), 3);
  for (size_t i = 0; i < 5000; ++i) c[i] = 1000;
  return c;
}

size_t real_tokens(const PaddedBatch& b) {
  size_t n = 0;
  for (int32_t l : b.lengths) n += static_cast<size_t>(l);
  return n;
}

bool within_sd(double observed, double p, double trials, double k = 5) {
  return std::fabs(observed - p * trials) <= k * std::sqrt(trials * p * (1 - p));
}

TEST(Masking, SelectsExactlyNAndNeverSpecialOrPadding) {
  const Tokenizer& tok = bert_tokenizer();
  PaddedBatch b = brown_batch(24);
  ASSERT_EQ(b.rows, 24u);
  // An [UNK] and a [MASK] inside a row must never be chosen either.
  b.ids[3] = tok.unk_id();
  b.ids[b.cols + 4] = tok.mask_id();
  Masker m(tok, skewed_counts(), MaskingOptions{}, 42);
  const size_t n = static_cast<size_t>(std::ceil(0.15 * static_cast<double>(real_tokens(b))));
  ASSERT_GT(n, 50u);
  for (int draw = 0; draw < 50; ++draw) {
    const MaskedBatch mb = m.mask(b);
    ASSERT_EQ(mb.n_predicted, n);
    size_t predicted = 0;
    for (size_t r = 0; r < b.rows; ++r) {
      for (size_t c = 0; c < b.cols; ++c) {
        const size_t k = r * b.cols + c;
        const bool real = c < static_cast<size_t>(b.lengths[r]);
        EXPECT_EQ(mb.attention_mask[k], real ? 1 : 0);
        if (!mb.pred_mask[k]) {
          ASSERT_EQ(mb.labels[k], MaskedBatch::kIgnoreLabel);
          ASSERT_EQ(mb.input_ids[k], b.ids[k]);
          continue;
        }
        ++predicted;
        ASSERT_TRUE(real) << "padding predicted at " << r << "," << c;
        ASSERT_FALSE(tok.is_special_id(b.ids[k])) << "special token predicted at " << r << "," << c;
        ASSERT_EQ(mb.labels[k], b.ids[k]);
      }
    }
    ASSERT_EQ(predicted, n);
  }
}

TEST(Masking, HuggingFaceCeilingAndCapping) {
  const Tokenizer& tok = bert_tokenizer();
  // One row of 100 real tokens ([CLS] and [SEP] count, as in HF): ceil(0.15 * 100) = 15; the first
  // 37 of them alone: ceil(5.55) = 6.
  PaddedBatch b;
  b.rows = 1;
  b.cols = 100;
  b.lengths = {100};
  b.ids.assign(100, 2000);
  b.ids[0] = tok.cls_id();
  b.ids[99] = tok.sep_id();
  Masker m(tok, {}, MaskingOptions{0.15, 0.8, 0.1, 0.1, 0.0}, 1);
  EXPECT_EQ(m.mask(b).n_predicted, 15u);
  EXPECT_EQ(m.mask(b.ids, {37}, 100).n_predicted, 6u);
  // mlm_mask_prop 1: every candidate (the 98 non-special tokens), not 100.
  Masker all(tok, {}, MaskingOptions{1.0, 1.0, 0.0, 0.0, 0.0}, 1);
  const MaskedBatch mb = all.mask(b);
  EXPECT_EQ(mb.n_predicted, 98u);
  for (size_t c = 1; c < 99; ++c) EXPECT_EQ(mb.input_ids[c], tok.mask_id());
  EXPECT_EQ(mb.input_ids[0], tok.cls_id());
}

TEST(Masking, MaskKeepRandomSplit) {
  const Tokenizer& tok = bert_tokenizer();
  const PaddedBatch b = brown_batch(32);
  Masker m(tok, skewed_counts(), MaskingOptions{}, 7);
  size_t n_mask = 0, n_keep = 0, n_rand = 0;
  for (int draw = 0; draw < 200; ++draw) {
    const MaskedBatch mb = m.mask(b);
    for (size_t k = 0; k < b.ids.size(); ++k) {
      if (!mb.pred_mask[k]) continue;
      if (mb.input_ids[k] == tok.mask_id()) {
        ++n_mask;
      } else if (mb.input_ids[k] == b.ids[k]) {
        ++n_keep;
      } else {
        ++n_rand;
        ASSERT_FALSE(tok.is_special_id(mb.input_ids[k])) << "a random replacement is special: " << mb.input_ids[k];
        ASSERT_LT(mb.input_ids[k], static_cast<int32_t>(tok.vocab_size()));
      }
    }
  }
  const double total = static_cast<double>(n_mask + n_keep + n_rand);
  ASSERT_GT(total, 20000);
  // A random draw equal to the original (1 in ~30,000) counts as kept; far inside the tolerance.
  EXPECT_TRUE(within_sd(static_cast<double>(n_mask), 0.8, total)) << n_mask << " of " << total;
  EXPECT_TRUE(within_sd(static_cast<double>(n_keep), 0.1, total)) << n_keep << " of " << total;
  EXPECT_TRUE(within_sd(static_cast<double>(n_rand), 0.1, total)) << n_rand << " of " << total;

  // Other splits are honoured too, including the degenerate ones.
  Masker only_keep(tok, skewed_counts(), MaskingOptions{0.15, 0.0, 1.0, 0.0}, 7);
  const MaskedBatch kept = only_keep.mask(b);
  EXPECT_GT(kept.n_predicted, 0u);
  EXPECT_EQ(kept.input_ids, b.ids);
}

// One row with 9 copies each of a frequent token A and a rare token B, and a proportion that picks
// exactly one position: P(B) = 9 w_B / (9 w_A + 9 w_B) with w = count^-0.7, as a multinomial draw.
TEST(Masking, SmoothingFavoursRareTokensInThePredictedRatio) {
  const Tokenizer& tok = bert_tokenizer();
  const int32_t a = 1996, rare = 4937;  // "the", "cat"
  std::vector<uint64_t> counts(tok.vocab_size(), 50);
  counts[static_cast<size_t>(a)] = 1000;
  counts[static_cast<size_t>(rare)] = 100;
  PaddedBatch b;
  b.rows = 1;
  b.cols = 20;
  b.lengths = {20};
  b.ids = {tok.cls_id()};
  for (int i = 0; i < 9; ++i) b.ids.insert(b.ids.end(), {a, rare});
  b.ids.push_back(tok.sep_id());
  const int trials = 20000;
  for (double smoothing : {0.7, 0.0}) {
    MaskingOptions o;
    o.mlm_mask_prop = 0.04;  // ceil(0.04 * 20) = 1
    o.mlm_smoothing = smoothing;
    Masker m(tok, counts, o, 99);
    const double w_a = std::pow(1000.0, -smoothing), w_r = std::pow(100.0, -smoothing);
    EXPECT_DOUBLE_EQ(m.token_probs()[static_cast<size_t>(a)], w_a);
    EXPECT_DOUBLE_EQ(m.token_probs()[static_cast<size_t>(tok.cls_id())], 0.0);
    int picked_rare = 0;
    for (int t = 0; t < trials; ++t) {
      const MaskedBatch mb = m.mask(b);
      ASSERT_EQ(mb.n_predicted, 1u);
      for (size_t k = 0; k < 20; ++k) picked_rare += mb.pred_mask[k] && b.ids[k] == rare;
    }
    const double p = w_r / (w_a + w_r);  // 0.834 smoothed, 0.5 uniform
    EXPECT_TRUE(within_sd(picked_rare, p, trials)) << "smoothing " << smoothing << ": " << picked_rare << " of "
                                                   << trials << ", expected " << p * trials;
  }
}

TEST(Masking, SmoothingOnARealBatchMasksRareTokensMoreOften) {
  const Tokenizer& tok = bert_tokenizer();
  const PaddedBatch b = brown_batch(32);
  Masker m(tok, skewed_counts(), MaskingOptions{}, 5);
  double rare_pred = 0, rare_all = 0, common_pred = 0, common_all = 0;
  for (int draw = 0; draw < 100; ++draw) {
    const MaskedBatch mb = m.mask(b);
    for (size_t k = 0; k < b.ids.size(); ++k) {
      if (!mb.attention_mask[k] || tok.is_special_id(b.ids[k])) continue;
      (b.ids[k] >= 5000 ? rare_all : common_all) += 1;
      (b.ids[k] >= 5000 ? rare_pred : common_pred) += mb.pred_mask[k];
    }
  }
  ASSERT_GT(rare_all, 1000);
  ASSERT_GT(common_all, 1000);
  // Weights differ by (1000/3)^0.7 = 58; without replacement the rate ratio is smaller but large.
  EXPECT_GT((rare_pred / rare_all) / (common_pred / common_all), 4.0);
}

TEST(Masking, WholeWordsStayTogether) {
  const Tokenizer& tok = bert_tokenizer();
  const PaddedBatch b = brown_batch(32, 500);
  MaskingOptions o;
  o.whole_word_mask = true;
  o.mlm_mask_prop = 0.2;
  Masker m(tok, skewed_counts(), o, 3);
  const size_t n = static_cast<size_t>(std::ceil(0.2 * static_cast<double>(real_tokens(b))));
  auto is_cont = [&](size_t k) { return tok.id_to_token(b.ids[k]).rfind("##", 0) == 0; };
  size_t multi_piece_words = 0, multi_piece_masked = 0;
  for (int draw = 0; draw < 100; ++draw) {
    const MaskedBatch mb = m.mask(b);
    EXPECT_LE(mb.n_predicted, n);
    EXPECT_GE(mb.n_predicted + 3, n);  // words are added while they fit: at most a few short
    for (size_t r = 0; r < b.rows; ++r) {
      const size_t len = static_cast<size_t>(b.lengths[r]);
      for (size_t c = 1; c < len; ++c) {
        const size_t k = r * b.cols + c;
        if (is_cont(k)) {
          ASSERT_EQ(mb.pred_mask[k], mb.pred_mask[k - 1]) << "word split at row " << r << " col " << c;
        }
        if (!is_cont(k) && c + 1 < len && is_cont(k + 1)) {
          ++multi_piece_words;
          multi_piece_masked += mb.pred_mask[k];
        }
      }
    }
  }
  ASSERT_GT(multi_piece_words, 1000u) << "the batch should hold words of several pieces";
  EXPECT_GT(multi_piece_masked, 100u);
}

TEST(Masking, SameSeedSameMasksAndExactResume) {
  const Tokenizer& tok = bert_tokenizer();
  const PaddedBatch b = brown_batch(16);
  Masker a(tok, skewed_counts(), MaskingOptions{}, 2024), same(tok, skewed_counts(), MaskingOptions{}, 2024),
      other(tok, skewed_counts(), MaskingOptions{}, 2025);
  const MaskedBatch a0 = a.mask(b);
  EXPECT_EQ(a0.input_ids, same.mask(b).input_ids);
  EXPECT_NE(a0.pred_mask, other.mask(b).pred_mask);
  a.mask(b);
  const std::string saved = a.state();
  const MaskedBatch next1 = a.mask(b), next2 = a.mask(b);
  other.set_state(saved);
  const MaskedBatch r1 = other.mask(b), r2 = other.mask(b);
  EXPECT_EQ(r1.input_ids, next1.input_ids);
  EXPECT_EQ(r1.pred_mask, next1.pred_mask);
  EXPECT_EQ(r2.input_ids, next2.input_ids);
  EXPECT_EQ(r2.labels, next2.labels);
  EXPECT_NE(next1.pred_mask, next2.pred_mask);
  EXPECT_ERROR_CONTAINS(other.set_state("garbage"), "retort-masker-v1");
  EXPECT_ERROR_CONTAINS(other.set_state(saved.substr(0, saved.size() / 2)), "truncated or malformed");
}

TEST(Masking, CausalLabelsWhenMlmIsOff) {
  const Tokenizer& tok = bert_tokenizer();
  const PaddedBatch b = brown_batch(4);
  MaskingOptions o;
  o.mlm = false;
  Masker m(tok, {}, o, 1);
  const MaskedBatch mb = m.mask(b);
  EXPECT_EQ(mb.input_ids, b.ids);
  EXPECT_EQ(mb.n_predicted, real_tokens(b));
  for (size_t k = 0; k < b.ids.size(); ++k) {
    EXPECT_EQ(mb.labels[k], mb.attention_mask[k] ? b.ids[k] : MaskedBatch::kIgnoreLabel);
  }
}

TEST(Masking, BadOptionsAndInputs) {
  const Tokenizer& tok = bert_tokenizer();
  auto make = [&](MaskingOptions o) { Masker(tok, skewed_counts(), o, 0); };
  EXPECT_ERROR_CONTAINS(make({0.15, 0.8, 0.1, 0.2}), "word_mask + word_keep + word_rand", "not 1");
  EXPECT_ERROR_CONTAINS(make({0.0}), "mlm_mask_prop 0", "(0, 1]");
  EXPECT_ERROR_CONTAINS(make({1.5}), "mlm_mask_prop 1.5");
  EXPECT_ERROR_CONTAINS(make({0.15, 1.2, -0.1, -0.1}), "word_mask 1.2");
  EXPECT_ERROR_CONTAINS(make({0.15, 0.8, 0.1, 0.1, -1.0}), "mlm_smoothing -1");
  EXPECT_ERROR_CONTAINS(Masker(tok, {1, 2, 3}, MaskingOptions{}, 0), "3 token counts", "30522");
  EXPECT_ERROR_CONTAINS(Masker(tok, {}, MaskingOptions{}, 0), "needs the corpus token counts");
  Masker m(tok, skewed_counts(), MaskingOptions{}, 0);
  EXPECT_ERROR_CONTAINS(m.mask({101, 2000, 102}, {3}, 4), "3 ids for a batch of 1 x 4");
  EXPECT_ERROR_CONTAINS(m.mask({101, 2000, 102, 0}, {5}, 4), "row 0 has length 5");
  EXPECT_ERROR_CONTAINS(m.mask({101, 40000, 102, 0}, {3}, 4), "id 40000", "column 1");
}

}  // namespace
}  // namespace retort::test
