// BatchSampler: length-grouped batches in the spirit of the Hugging Face distillation example's
// group_by_size (GroupedBatchSampler over length bins of width 4), made deterministic per (seed,
// epoch), shardable over ranks without skipping any batch, and resumable at any (epoch, batch).
// Dimensions: N sequences, B sequences in a batch, T longest sequence of a batch.
#include <algorithm>
#include <random>

#include "retort/corpus.h"
#include "retort/error.h"
#include "text/corpus_format.h"

namespace retort {

BatchSampler::BatchSampler(std::vector<uint32_t> lengths, BatchSamplerOptions options)
    : lengths_(std::move(lengths)), options_(options) {
  const auto& o = options_;
  check(!lengths_.empty(), "BatchSampler: the corpus has no sequences");
  check(o.batch_size > 0 || o.max_tokens > 0, "BatchSampler: batch_size and max_tokens are both 0");
  check(o.bucket_width > 0, "BatchSampler: bucket_width is 0");
  check(o.world_size > 0 && o.rank < o.world_size, "BatchSampler: rank ", o.rank, " is not in [0, world_size ",
        o.world_size, ")");
  const uint32_t longest = *std::max_element(lengths_.begin(), lengths_.end());
  check(o.max_tokens == 0 || o.max_tokens >= longest, "BatchSampler: max_tokens ", o.max_tokens,
        " is smaller than the longest sequence (", longest, " tokens)");
}

BatchSampler::BatchSampler(const CorpusReader& reader, BatchSamplerOptions options)
    : BatchSampler(reader.lengths(), options) {}

std::vector<std::vector<uint64_t>> BatchSampler::global_batches(uint64_t epoch) const {
  const auto& o = options_;
  const size_t n = lengths_.size();
  std::mt19937_64 rng(text::splitmix64(text::splitmix64(o.seed) + epoch));

  std::vector<uint64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  text::shuffle_in_place(order.data(), n, rng);

  // Stable counting sort by length bucket: equal buckets keep the shuffled order, so batches differ
  // from one epoch to the next while holding sequences of similar length.
  size_t n_buckets = 0;
  for (uint32_t len : lengths_) n_buckets = std::max<size_t>(n_buckets, len / o.bucket_width + 1);
  std::vector<size_t> start(n_buckets + 1, 0);
  for (uint32_t len : lengths_) ++start[len / o.bucket_width + 1];
  for (size_t b = 0; b < n_buckets; ++b) start[b + 1] += start[b];
  std::vector<uint64_t> sorted(n);
  for (uint64_t i : order) sorted[start[lengths_[i] / o.bucket_width]++] = i;

  std::vector<std::vector<uint64_t>> batches;
  std::vector<uint64_t> cur;
  size_t cur_max = 0;
  for (uint64_t i : sorted) {
    const size_t len = lengths_[i];
    const size_t new_max = std::max(cur_max, len);
    const bool full = (o.batch_size > 0 && cur.size() == o.batch_size) ||
                      (o.max_tokens > 0 && (cur.size() + 1) * new_max > o.max_tokens);
    if (!cur.empty() && full) {
      batches.push_back(std::move(cur));
      cur.clear();
      cur_max = 0;
    }
    cur.push_back(i);
    cur_max = std::max(cur_max, len);
  }
  if (!cur.empty()) batches.push_back(std::move(cur));
  text::shuffle_in_place(batches.data(), batches.size(), rng);
  return batches;
}

std::vector<std::vector<uint64_t>> BatchSampler::rank_batches(uint64_t epoch) const {
  const auto& o = options_;
  std::vector<std::vector<uint64_t>> all = global_batches(epoch);
  check(all.size() >= o.world_size, "BatchSampler: epoch ", epoch, " has ", all.size(), " batches, fewer than the ",
        o.world_size, " ranks");
  std::vector<std::vector<uint64_t>> mine;
  for (size_t j = o.rank; j < all.size(); j += o.world_size) mine.push_back(std::move(all[j]));
  const size_t most = (all.size() + o.world_size - 1) / o.world_size;
  if (o.even_shares && mine.size() < most) mine.push_back(mine.front());
  return mine;
}

const std::vector<std::vector<uint64_t>>& BatchSampler::cached(uint64_t epoch) {
  if (!has_cache_ || cached_epoch_ != epoch) {
    cache_ = rank_batches(epoch);
    cached_epoch_ = epoch;
    has_cache_ = true;
  }
  return cache_;
}

size_t BatchSampler::batches_in_epoch(uint64_t epoch) { return cached(epoch).size(); }

std::vector<uint64_t> BatchSampler::next(SamplerPosition* position) {
  const auto& batches = cached(position_.epoch);
  if (position) *position = position_;
  std::vector<uint64_t> out = batches[position_.batch];
  if (++position_.batch == batches.size()) position_ = {position_.epoch + 1, 0};
  return out;
}

SamplerPosition BatchSampler::position() const { return position_; }

void BatchSampler::seek(SamplerPosition position) {
  const size_t n = batches_in_epoch(position.epoch);
  check(position.batch <= n, "BatchSampler: batch ", position.batch, " is past the end of epoch ", position.epoch,
        " (", n, " batches for rank ", options_.rank, ")");
  position_ = position.batch == n ? SamplerPosition{position.epoch + 1, 0} : position;
}

}  // namespace retort
