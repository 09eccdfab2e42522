// BatchSampler: every epoch is a partition of the corpus, deterministic in (seed, epoch), grouped by
// length so that little padding is wasted, split over ranks without overlap or loss, and resumable
// from a saved (epoch, batch) position.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "corpus_test_util.h"
#include "retort/corpus.h"

namespace retort::test {
namespace {

// Lengths spread over 3..512, as a corpus of short and long documents has.
std::vector<uint32_t> spread_lengths(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> v(n);
  for (auto& x : v) x = 3 + static_cast<uint32_t>(rng() % 510);
  return v;
}

double padding_fraction(const std::vector<std::vector<uint64_t>>& batches, const std::vector<uint32_t>& lengths) {
  uint64_t real = 0, padded = 0;
  for (const auto& b : batches) {
    uint32_t longest = 0;
    for (uint64_t i : b) {
      real += lengths[i];
      longest = std::max(longest, lengths[i]);
    }
    padded += uint64_t{longest} * b.size();
  }
  return 1.0 - static_cast<double>(real) / static_cast<double>(padded);
}

void expect_partition(const std::vector<std::vector<uint64_t>>& batches, size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& b : batches) {
    for (uint64_t i : b) {
      ASSERT_LT(i, n);
      ++seen[i];
    }
  }
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], 1) << "sequence " << i;
}

TEST(BatchSampler, EpochIsAPartitionWithLittlePadding) {
  const auto lengths = spread_lengths(5000, 1);
  BatchSamplerOptions o;
  o.batch_size = 32;
  o.seed = 7;
  const BatchSampler s(lengths, o);
  const auto batches = s.global_batches(0);
  expect_partition(batches, lengths.size());
  size_t full = 0;
  for (const auto& b : batches) {
    ASSERT_LE(b.size(), 32u);
    full += b.size() == 32;
  }
  EXPECT_GE(full, batches.size() - 1) << "only the last batch of the sorted order may be short";
  EXPECT_EQ(batches.size(), (lengths.size() + 31) / 32);

  // Batches of random sequences waste about a third of their tokens on these lengths; grouped by
  // buckets of 4 they waste a few percent at most.
  std::vector<uint64_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(3));
  std::vector<std::vector<uint64_t>> random_batches;
  for (size_t i = 0; i < order.size(); i += 32) {
    random_batches.emplace_back(order.begin() + i, order.begin() + std::min(order.size(), i + 32));
  }
  const double grouped = padding_fraction(batches, lengths), random = padding_fraction(random_batches, lengths);
  EXPECT_GT(random, 0.25);
  EXPECT_LT(grouped, 0.02);

  // Batches come out shuffled, not in length order.
  size_t ascending = 0;
  for (size_t k = 1; k < batches.size(); ++k) ascending += lengths[batches[k][0]] >= lengths[batches[k - 1][0]];
  EXPECT_LT(ascending, batches.size() * 3 / 4);
}

TEST(BatchSampler, DeterministicInSeedAndEpoch) {
  const auto lengths = spread_lengths(2000, 2);
  BatchSamplerOptions o;
  o.batch_size = 16;
  o.seed = 11;
  const BatchSampler a(lengths, o), b(lengths, o);
  EXPECT_EQ(a.global_batches(3), b.global_batches(3));
  EXPECT_NE(a.global_batches(3), a.global_batches(4));
  o.seed = 12;
  const BatchSampler c(lengths, o);
  EXPECT_NE(a.global_batches(3), c.global_batches(3));
  // Different epochs regroup the sequences, not only reorder the batches.
  std::set<std::vector<uint64_t>> e0, e1;
  for (auto bt : a.global_batches(0)) {
    std::sort(bt.begin(), bt.end());
    e0.insert(bt);
  }
  for (auto bt : a.global_batches(1)) {
    std::sort(bt.begin(), bt.end());
    e1.insert(bt);
  }
  size_t common = 0;
  for (const auto& bt : e1) common += e0.count(bt);
  EXPECT_LT(common, e1.size() / 10);
}

TEST(BatchSampler, TokenBudget) {
  const auto lengths = spread_lengths(3000, 3);
  BatchSamplerOptions o;
  o.batch_size = 0;
  o.max_tokens = 4096;
  const BatchSampler s(lengths, o);
  const auto batches = s.global_batches(0);
  expect_partition(batches, lengths.size());
  uint64_t padded = 0;
  for (const auto& b : batches) {
    uint32_t longest = 0;
    for (uint64_t i : b) longest = std::max(longest, lengths[i]);
    ASSERT_LE(b.size() * longest, 4096u);
    padded += b.size() * longest;
  }
  // Batches are filled: on average within one longest sequence (<= 512) of the budget.
  EXPECT_GT(static_cast<double>(padded) / static_cast<double>(batches.size()), 4096.0 - 512);
  o.batch_size = 4;  // both limits: the tighter one wins
  for (const auto& b : BatchSampler(lengths, o).global_batches(0)) ASSERT_LE(b.size(), 4u);
}

TEST(BatchSampler, RanksShareDisjointlyWithoutSkipping) {
  const auto lengths = spread_lengths(1000, 4);  // 1000 / 16 -> 63 batches, not a multiple of 4
  BatchSamplerOptions o;
  o.batch_size = 16;
  o.seed = 5;
  o.world_size = 4;
  const auto global = BatchSampler(lengths, o).global_batches(2);
  ASSERT_EQ(global.size(), 63u);
  std::vector<std::vector<uint64_t>> all;
  std::vector<size_t> sizes;
  for (size_t r = 0; r < 4; ++r) {
    o.rank = r;
    const auto mine = BatchSampler(lengths, o).rank_batches(2);
    sizes.push_back(mine.size());
    all.insert(all.end(), mine.begin(), mine.end());
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{16, 16, 16, 15}));
  expect_partition(all, lengths.size());
  std::sort(all.begin(), all.end());
  auto sorted_global = global;
  std::sort(sorted_global.begin(), sorted_global.end());
  EXPECT_EQ(all, sorted_global);

  // even_shares: the short rank repeats one of its own batches; together they still cover everything.
  o.even_shares = true;
  std::vector<int> seen(lengths.size(), 0);
  for (size_t r = 0; r < 4; ++r) {
    o.rank = r;
    const auto mine = BatchSampler(lengths, o).rank_batches(2);
    EXPECT_EQ(mine.size(), 16u) << "rank " << r;
    for (const auto& b : mine) {
      for (uint64_t i : b) ++seen[i];
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 0), 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 2), 16) << "only rank 3's repeated batch is seen twice";
}

TEST(BatchSampler, ResumesExactlyFromASavedPosition) {
  const auto lengths = spread_lengths(300, 6);
  BatchSamplerOptions o;
  o.batch_size = 32;  // 10 batches an epoch
  o.seed = 9;
  o.world_size = 2;
  o.rank = 1;
  BatchSampler a(lengths, o);
  ASSERT_EQ(a.batches_in_epoch(0), 5u);
  for (int k = 0; k < 7; ++k) a.next();  // into epoch 1
  const SamplerPosition saved = a.position();
  EXPECT_EQ(saved, (SamplerPosition{1, 2}));
  std::vector<std::vector<uint64_t>> want;
  for (int k = 0; k < 6; ++k) want.push_back(a.next());

  BatchSampler b(lengths, o);
  b.seek(saved);
  std::vector<std::vector<uint64_t>> got;
  SamplerPosition p;
  for (int k = 0; k < 6; ++k) got.push_back(b.next(k == 0 ? &p : nullptr));
  EXPECT_EQ(got, want);
  EXPECT_EQ(p, saved);
  EXPECT_EQ(b.position(), (SamplerPosition{2, 3}));
  // The batches are this rank's batches of those epochs.
  EXPECT_EQ(got[0], b.rank_batches(1)[2]);
  EXPECT_EQ(got[5], b.rank_batches(2)[2]);
  // The end of an epoch is the start of the next.
  b.seek({3, 5});
  EXPECT_EQ(b.position(), (SamplerPosition{4, 0}));
  EXPECT_ERROR_CONTAINS(b.seek({3, 6}), "batch 6", "epoch 3");
}

TEST(BatchSampler, FromACorpusAndBadOptions) {
  TempDir d;
  write_brown_slice(d.file("brown.txt"), 1000);
  CorpusOptions co;
  co.max_seq_len = 64;
  prepare_corpus({d.file("brown.txt")}, bert_tokenizer(), d.file("c"), co);
  const CorpusReader r(d.file("c"));
  BatchSamplerOptions o;
  o.batch_size = 8;
  const BatchSampler s(r, o);
  const auto batches = s.global_batches(0);
  expect_partition(batches, r.size());
  const PaddedBatch pb = make_padded_batch(r, batches[0], bert_tokenizer().pad_id());
  EXPECT_EQ(pb.rows, batches[0].size());

  o.rank = 2;
  o.world_size = 2;
  EXPECT_ERROR_CONTAINS(BatchSampler(r, o), "rank 2");
  o = {};
  o.max_tokens = 10;
  EXPECT_ERROR_CONTAINS(BatchSampler(r, o), "max_tokens 10", "longest");
  o = {};
  o.batch_size = 0;
  EXPECT_ERROR_CONTAINS(BatchSampler(r, o), "batch_size and max_tokens are both 0");
  EXPECT_ERROR_CONTAINS(BatchSampler(std::vector<uint32_t>{}, BatchSamplerOptions{}), "no sequences");
  o = {};
  o.world_size = 1000;
  o.batch_size = 512;
  EXPECT_ERROR_CONTAINS(BatchSampler(r, o).rank_batches(0), "fewer than the 1000 ranks");
}

}  // namespace
}  // namespace retort::test
