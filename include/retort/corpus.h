// Pre-training corpus: raw text tokenized once into memory-mapped shards of word-piece ids
// (prepare_corpus), read back by CorpusReader, and cut into length-grouped, shuffled, resumable
// batches by BatchSampler (the Hugging Face distillation example's binarized data + group_by_size).
// Dimensions: B sequences in a batch, T tokens of the longest sequence of a batch, V vocabulary,
// N sequences in the corpus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace retort {

class Tokenizer;

struct CorpusOptions {
  size_t max_seq_len = 512;        // tokens of a sequence, [CLS] and [SEP] included (>= 3)
  size_t min_tokens = 11;          // a sequence of <= min_tokens tokens is dropped (HF's remove_short)
  double max_unk_fraction = 0.5;   // dropped when n_unk / length >= this (HF's remove_unknown_sequences)
  uint64_t shard_tokens = 64ull << 20;  // tokens per shard file; a sequence never straddles two shards
  size_t threads = 0;              // tokenizer threads; 0: one per core
  size_t block_bytes = 8u << 20;   // input read and tokenized per step (memory bound; output unaffected)
  // Called on the calling thread after each block, and once at the end with done == total.
  std::function<void(size_t bytes_done, size_t bytes_total)> progress;
};

struct CorpusSummary {
  uint64_t n_sequences = 0, n_tokens = 0;  // kept
  uint64_t dropped_short = 0, dropped_unk = 0;
  uint64_t n_lines = 0, n_documents = 0;   // non-blank lines; documents with at least one line
  uint64_t n_bytes = 0;                    // input bytes read
  size_t n_shards = 0;
  double seconds = 0;
};

// Tokenizes `input_files` (UTF-8, one paragraph a line, blank or whitespace-only lines between
// documents; each file also ends a document) into out_dir (created if needed):
//   tokens-NNNNN.bin   ids, little-endian uint16 when V <= 65535, else uint32
//   offsets-NNNNN.bin  little-endian uint64 start of each sequence in its shard's ids, n+1 entries
//   token_counts.bin   little-endian uint64 count of every id (V entries) over the kept sequences
//   corpus.json        format, dtype, vocabulary, options, shard sizes, dropped counts (written last)
// Lines of a document are packed greedily into [CLS] line1 line2 ... [SEP] of up to max_seq_len
// tokens; a line of more than max_seq_len - 2 pieces becomes its own sequences of max_seq_len - 2
// pieces each. Output is identical for every thread count. Every file is written under a temporary
// name and renamed; corpus.json is removed first and written last, so a crash leaves no corpus.json.
CorpusSummary prepare_corpus(const std::vector<std::string>& input_files, const Tokenizer& tokenizer,
                             const std::string& out_dir, const CorpusOptions& options = {});

// What corpus.json says.
struct CorpusShardInfo {
  std::string tokens_file, offsets_file;  // names relative to the corpus directory
  uint64_t n_sequences = 0, n_tokens = 0;
};

struct CorpusInfo {
  int version = 0;
  std::string dtype;  // "uint16" or "uint32"
  size_t vocab_size = 0;
  std::string vocab_fingerprint;  // "fnv1a64:<hex>" over the vocabulary's tokens, each + '\n'
  std::string tokenizer_source;
  int32_t cls_id = -1, sep_id = -1, unk_id = -1;
  size_t max_seq_len = 0, min_tokens = 0;
  double max_unk_fraction = 0;
  uint64_t n_sequences = 0, n_tokens = 0;
  uint64_t dropped_short = 0, dropped_unk = 0;
  std::vector<CorpusShardInfo> shards;
};

// "fnv1a64:<16 hex digits>" of the tokenizer's vocabulary, as corpus.json records it.
std::string vocab_fingerprint(const Tokenizer& tokenizer);

// Read-only view of a prepared corpus: the shards are memory-mapped (the corpus may be larger than
// memory), and every file is checked against corpus.json on opening. Const methods are thread-safe.
class CorpusReader {
 public:
  explicit CorpusReader(const std::string& dir);
  ~CorpusReader();
  CorpusReader(CorpusReader&&) noexcept;
  CorpusReader& operator=(CorpusReader&&) noexcept;
  CorpusReader(const CorpusReader&) = delete;
  CorpusReader& operator=(const CorpusReader&) = delete;

  size_t size() const;       // N
  uint64_t n_tokens() const;
  size_t length(size_t i) const;                // tokens of sequence i, [CLS] and [SEP] included
  std::vector<int32_t> sequence(size_t i) const;  // (length(i),)
  // Writes length(i) ids to out; throws when an id is >= V (a corrupt shard).
  void read_sequence(size_t i, int32_t* out) const;
  std::vector<uint32_t> lengths() const;  // (N,)
  const std::vector<uint64_t>& token_counts() const;  // (V,)
  const CorpusInfo& info() const;
  const std::string& dir() const;
  // Throws when the corpus was made with another vocabulary (size or fingerprint differ).
  void check_tokenizer(const Tokenizer& tokenizer) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sequences padded on the right to the longest of the batch.
struct PaddedBatch {
  size_t rows = 0, cols = 0;     // B, T
  std::vector<int32_t> ids;      // (B, T), row-major
  std::vector<int32_t> lengths;  // (B,)
};

PaddedBatch make_padded_batch(const CorpusReader& reader, const std::vector<uint64_t>& indices, int32_t pad_id);

struct BatchSamplerOptions {
  size_t batch_size = 32;   // most sequences in a batch
  size_t max_tokens = 0;    // most padded tokens (B * T) in a batch; 0: no budget
  size_t bucket_width = 4;  // lengths are grouped in buckets this wide (HF's bins: 4)
  uint64_t seed = 0;
  size_t rank = 0, world_size = 1;
  // false: global batch j goes to rank j % world_size, so ranks may differ by one batch. true: a rank
  // with one batch fewer repeats its first batch, so every rank takes the same number of steps (as
  // torch's DistributedSampler pads). Either way no batch is skipped.
  bool even_shares = false;
};

// Where a BatchSampler is: the epoch, and the index of the next batch among this rank's batches.
struct SamplerPosition {
  uint64_t epoch = 0;
  uint64_t batch = 0;
  bool operator==(const SamplerPosition& o) const { return epoch == o.epoch && batch == o.batch; }
};

// Length-grouped batches: each epoch shuffles the sequences (seeded by seed and epoch), orders them by
// length bucket (ties keep the shuffled order), cuts consecutive runs into batches, then shuffles the
// batches. Deterministic in (lengths, options, epoch) alone.
class BatchSampler {
 public:
  BatchSampler(std::vector<uint32_t> lengths, BatchSamplerOptions options);
  BatchSampler(const CorpusReader& reader, BatchSamplerOptions options);

  // Every rank's batches of an epoch, in global order (sequence indices).
  std::vector<std::vector<uint64_t>> global_batches(uint64_t epoch) const;
  // This rank's share of global_batches(epoch).
  std::vector<std::vector<uint64_t>> rank_batches(uint64_t epoch) const;

  // This rank's next batch; after the epoch's last batch it moves on to the next epoch.
  // Pass `position` to learn which (epoch, batch) it was.
  std::vector<uint64_t> next(SamplerPosition* position = nullptr);
  size_t batches_in_epoch(uint64_t epoch);  // this rank's
  SamplerPosition position() const;         // of the batch next() returns
  void seek(SamplerPosition position);      // throws when batch is past the epoch's end
  const BatchSamplerOptions& options() const { return options_; }

 private:
  const std::vector<std::vector<uint64_t>>& cached(uint64_t epoch);

  std::vector<uint32_t> lengths_;
  BatchSamplerOptions options_;
  SamplerPosition position_;
  uint64_t cached_epoch_ = 0;
  bool has_cache_ = false;
  std::vector<std::vector<uint64_t>> cache_;
};

}  // namespace retort
