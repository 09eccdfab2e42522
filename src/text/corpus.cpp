// prepare_corpus: raw text -> packed [CLS] ... [SEP] sequences in uint16/uint32 token shards with
// offsets, token counts and corpus.json. Files are read in blocks; the lines of a block are tokenized
// on all cores in chunks whose results are kept in input order, then packed and written on the
// calling thread, so the output does not depend on the thread count or the block size.
// Dimensions: V vocabulary; a sequence holds at most max_seq_len tokens, [CLS] and [SEP] included.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "retort/corpus.h"
#include "retort/error.h"
#include "retort/version.h"
#include "retort/fs.h"
#include "retort/tokenizer.h"
#include "text/corpus_format.h"

namespace retort {

using text::AtomicFileWriter;
using text::put_le;

namespace {

constexpr size_t kFlushBytes = 4u << 20;

bool is_blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// Writes kept sequences to shards and counts their tokens; drops the short and the unknown ones.
class ShardWriter {
 public:
  ShardWriter(const std::string& dir, const Tokenizer& tok, const CorpusOptions& o)
      : dir_(dir), options_(o), cls_(tok.cls_id()), sep_(tok.sep_id()), unk_(tok.unk_id()),
        width_(tok.vocab_size() <= 65535 ? 2 : 4), counts_(tok.vocab_size(), 0) {}

  // The word pieces of one sequence, without [CLS] and [SEP].
  void add(const int32_t* pieces, size_t n) {
    const size_t len = n + 2;
    if (len <= options_.min_tokens) {
      ++summary.dropped_short;
      return;
    }
    const size_t n_unk = static_cast<size_t>(std::count(pieces, pieces + n, unk_));
    if (static_cast<double>(n_unk) / static_cast<double>(len) >= options_.max_unk_fraction) {
      ++summary.dropped_unk;
      return;
    }
    if (tokens_ && shard_tokens_ + len > options_.shard_tokens) close_shard();
    if (!tokens_) open_shard();
    put_offset(shard_tokens_);
    put_token(cls_);
    for (size_t i = 0; i < n; ++i) put_token(pieces[i]);
    put_token(sep_);
    shard_tokens_ += len;
    ++shard_seqs_;
    ++summary.n_sequences;
    summary.n_tokens += len;
    if (token_buf_.size() >= kFlushBytes) flush();
  }

  void finish() {
    if (tokens_) close_shard();
    summary.n_shards = shards.size();
  }

  size_t width() const { return width_; }
  const std::vector<uint64_t>& counts() const { return counts_; }

  CorpusSummary summary;
  std::vector<CorpusShardInfo> shards;

 private:
  void put_token(int32_t id) {
    ++counts_[static_cast<size_t>(id)];
    const size_t at = token_buf_.size();
    token_buf_.resize(at + width_);
    put_le(token_buf_.data() + at, static_cast<uint32_t>(id), width_);
  }
  void put_offset(uint64_t v) {
    const size_t at = offset_buf_.size();
    offset_buf_.resize(at + 8);
    put_le(offset_buf_.data() + at, v, 8);
  }
  void flush() {
    tokens_->write(token_buf_.data(), token_buf_.size());
    offsets_->write(offset_buf_.data(), offset_buf_.size());
    token_buf_.clear();
    offset_buf_.clear();
  }
  void open_shard() {
    CorpusShardInfo s;
    s.tokens_file = text::shard_file_name("tokens", shards.size());
    s.offsets_file = text::shard_file_name("offsets", shards.size());
    tokens_ = std::make_unique<AtomicFileWriter>(join_path(dir_, s.tokens_file));
    offsets_ = std::make_unique<AtomicFileWriter>(join_path(dir_, s.offsets_file));
    shards.push_back(std::move(s));
    shard_tokens_ = shard_seqs_ = 0;
  }
  void close_shard() {
    put_offset(shard_tokens_);  // the n+1-th offset: the end of the last sequence
    flush();
    tokens_->commit();
    offsets_->commit();
    tokens_.reset();
    offsets_.reset();
    shards.back().n_sequences = shard_seqs_;
    shards.back().n_tokens = shard_tokens_;
  }

  std::string dir_;
  CorpusOptions options_;
  int32_t cls_, sep_, unk_;
  size_t width_;
  std::vector<uint64_t> counts_;  // (V,)
  std::unique_ptr<AtomicFileWriter> tokens_, offsets_;
  std::vector<uint8_t> token_buf_, offset_buf_;
  uint64_t shard_tokens_ = 0, shard_seqs_ = 0;
};

// Greedy packing of one document's lines; a line too long for a sequence is cut into its own ones.
class Packer {
 public:
  Packer(ShardWriter& w, size_t max_seq_len) : w_(w), cap_(max_seq_len - 2) {}

  void line(const int32_t* ids, size_t n) {
    ++lines_in_doc_;
    if (n == 0) return;
    if (n > cap_) {
      flush();
      for (size_t at = 0; at < n; at += cap_) w_.add(ids + at, std::min(cap_, n - at));
      return;
    }
    if (buf_.size() + n > cap_) flush();
    buf_.insert(buf_.end(), ids, ids + n);
  }

  void end_document() {
    flush();
    if (lines_in_doc_ > 0) ++w_.summary.n_documents;
    w_.summary.n_lines += lines_in_doc_;
    lines_in_doc_ = 0;
  }

 private:
  void flush() {
    if (!buf_.empty()) w_.add(buf_.data(), buf_.size());
    buf_.clear();
  }
  ShardWriter& w_;
  size_t cap_;
  std::vector<int32_t> buf_;
  uint64_t lines_in_doc_ = 0;
};

// Ids of a chunk's lines back to back; counts[i] pieces of line i, -1 for a blank line.
struct ChunkTokens {
  std::vector<int32_t> ids;
  std::vector<int64_t> counts;
  std::exception_ptr error;
};

// Tokenizes lines on `threads` threads into chunks kept in input order.
std::vector<ChunkTokens> tokenize_block(const Tokenizer& tok, const std::vector<std::string_view>& lines,
                                        size_t threads, const std::string& file, uint64_t first_line) {
  const size_t per_chunk = std::clamp<size_t>(lines.size() / (threads * 8), 1, 512);
  const size_t n_chunks = (lines.size() + per_chunk - 1) / per_chunk;
  std::vector<ChunkTokens> chunks(n_chunks);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t c; (c = next.fetch_add(1)) < n_chunks;) {
      ChunkTokens& out = chunks[c];
      const size_t end = std::min(lines.size(), (c + 1) * per_chunk);
      for (size_t i = c * per_chunk; i < end; ++i) {
        if (is_blank(lines[i])) {
          out.counts.push_back(-1);
          continue;
        }
        try {
          const std::vector<int32_t> ids = tok.encode_ids(lines[i], false);
          out.ids.insert(out.ids.end(), ids.begin(), ids.end());
          out.counts.push_back(static_cast<int64_t>(ids.size()));
        } catch (const Error& e) {
          out.error = std::make_exception_ptr(Error(file + ":" + std::to_string(first_line + i) + ": " + e.what()));
          break;
        } catch (...) {
          out.error = std::current_exception();
          break;
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < std::min(threads, n_chunks); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& c : chunks) {
    if (c.error) std::rethrow_exception(c.error);
  }
  return chunks;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

void process_file(const std::string& path, const Tokenizer& tok, const CorpusOptions& o, size_t threads,
                  Packer& packer, size_t& bytes_done, size_t bytes_total) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, ": cannot open (", std::strerror(errno), ")");
  std::string buf;
  uint64_t line_no = 1;
  bool eof = false;
  std::vector<std::string_view> lines;
  while (!eof) {
    const size_t have = buf.size();
    buf.resize(have + o.block_bytes);
    const size_t got = std::fread(buf.data() + have, 1, o.block_bytes, f.get());
    if (std::ferror(f.get())) fail(path, ": read error (", std::strerror(errno), ")");
    buf.resize(have + got);
    eof = got < o.block_bytes;
    size_t end = buf.size();
    if (!eof) {
      const size_t nl = buf.rfind('\n');
      if (nl == std::string::npos) continue;  // a line longer than a block: read on
      end = nl + 1;
    }
    lines.clear();
    for (size_t pos = 0; pos < end;) {
      size_t nl = buf.find('\n', pos);
      if (nl == std::string::npos || nl >= end) nl = end;
      std::string_view line(buf.data() + pos, nl - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      pos = nl + 1;
    }
    const auto chunks = tokenize_block(tok, lines, threads, path, line_no);
    line_no += lines.size();
    for (const ChunkTokens& c : chunks) {
      const int32_t* p = c.ids.data();
      for (int64_t n : c.counts) {
        if (n < 0) {
          packer.end_document();
          continue;
        }
        packer.line(p, static_cast<size_t>(n));
        p += n;
      }
    }
    buf.erase(0, end);
    bytes_done += end;
    if (o.progress) o.progress(bytes_done, bytes_total);
  }
  packer.end_document();  // a file ends its last document
}

void validate(const std::vector<std::string>& inputs, const Tokenizer& tok, const CorpusOptions& o) {
  check(!inputs.empty(), "prepare_corpus: no input files");
  check(o.max_seq_len >= 3, "prepare_corpus: max_seq_len ", o.max_seq_len, " leaves no room beside [CLS] and [SEP]");
  check(o.max_unk_fraction > 0 && o.max_unk_fraction <= 1, "prepare_corpus: max_unk_fraction ", o.max_unk_fraction,
        " is outside (0, 1]");
  check(o.shard_tokens >= o.max_seq_len, "prepare_corpus: shard_tokens ", o.shard_tokens,
        " is smaller than max_seq_len ", o.max_seq_len);
  check(o.block_bytes > 0, "prepare_corpus: block_bytes is 0");
  check(tok.cls_id() >= 0 && tok.sep_id() >= 0, "prepare_corpus: tokenizer ", tok.source(),
        " has no [CLS] or [SEP] token");
  check(tok.vocab_size() <= (1ull << 31), "prepare_corpus: vocabulary of ", tok.vocab_size(), " ids is too large");
  for (const auto& p : inputs) check(path_exists(p) && !is_directory(p), p, ": input file not found");
}

void remove_stale_shards(const std::string& dir, size_t from) {
  for (size_t i = from;; ++i) {
    bool any = false;
    for (const char* stem : {"tokens", "offsets"}) {
      std::error_code ec;
      any |= std::filesystem::remove(join_path(dir, text::shard_file_name(stem, i)), ec);
    }
    if (!any) break;
  }
}

}  // namespace

namespace text {
std::string shard_file_name(const char* stem, size_t shard) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%05zu.bin", stem, shard);
  return name;
}
}  // namespace text

std::string vocab_fingerprint(const Tokenizer& tok) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 0x100000001b3ull; };
  for (size_t i = 0; i < tok.vocab_size(); ++i) {
    for (unsigned char c : tok.id_to_token(static_cast<int32_t>(i))) mix(c);
    mix('\n');
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("fnv1a64:") + hex;
}

CorpusSummary prepare_corpus(const std::vector<std::string>& input_files, const Tokenizer& tokenizer,
                             const std::string& out_dir, const CorpusOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(input_files, tokenizer, options);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  check(is_directory(out_dir), out_dir, ": cannot create the corpus directory (", ec.message(), ")");
  // Without corpus.json the directory is not a corpus, so shards renamed below never pair with an
  // older corpus.json if this run dies half-way.
  std::filesystem::remove(join_path(out_dir, text::kCorpusJson), ec);

  size_t threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::max<size_t>(threads, 1);
  size_t bytes_total = 0, bytes_done = 0;
  for (const auto& p : input_files) bytes_total += std::filesystem::file_size(p);

  ShardWriter writer(out_dir, tokenizer, options);
  Packer packer(writer, options.max_seq_len);
  for (const auto& p : input_files) process_file(p, tokenizer, options, threads, packer, bytes_done, bytes_total);
  writer.finish();
  remove_stale_shards(out_dir, writer.shards.size());

  const std::vector<uint64_t>& counts = writer.counts();
  std::string count_bytes(counts.size() * 8, '\0');
  auto* count_out = reinterpret_cast<uint8_t*>(count_bytes.data());
  for (size_t i = 0; i < counts.size(); ++i) put_le(count_out + 8 * i, counts[i], 8);
  write_file_atomic(join_path(out_dir, text::kTokenCountsFile), count_bytes);

  CorpusSummary s = writer.summary;
  s.n_bytes = bytes_done;
  nlohmann::json shards = nlohmann::json::array();
  for (const auto& sh : writer.shards) {
    shards.push_back({{"tokens", sh.tokens_file}, {"offsets", sh.offsets_file}, {"n_sequences", sh.n_sequences},
                      {"n_tokens", sh.n_tokens}});
  }
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& p : input_files) inputs.push_back(p);
  const nlohmann::json j = {
      {"format", text::kCorpusFormat},
      {"version", text::kCorpusVersion},
      {"dtype", writer.width() == 2 ? "uint16" : "uint32"},
      {"byte_order", "little"},
      {"vocab_size", tokenizer.vocab_size()},
      {"vocab_fingerprint", vocab_fingerprint(tokenizer)},
      {"tokenizer", tokenizer.source()},
      {"special_ids", {{"cls", tokenizer.cls_id()}, {"sep", tokenizer.sep_id()}, {"unk", tokenizer.unk_id()}}},
      {"max_seq_len", options.max_seq_len},
      {"min_tokens", options.min_tokens},
      {"max_unk_fraction", options.max_unk_fraction},
      {"n_sequences", s.n_sequences},
      {"n_tokens", s.n_tokens},
      {"shards", shards},
      {"token_counts", {{"file", text::kTokenCountsFile}, {"dtype", "uint64"}}},
      {"dropped", {{"too_short", s.dropped_short}, {"too_many_unk", s.dropped_unk}}},
      {"inputs", inputs},
      {"n_lines", s.n_lines},
      {"n_documents", s.n_documents},
      {"n_bytes", s.n_bytes},
      {"created_by", version_string()},
  };
  write_file_atomic(join_path(out_dir, text::kCorpusJson), j.dump(2) + "\n");
  if (options.progress) options.progress(bytes_total, bytes_total);
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace retort
