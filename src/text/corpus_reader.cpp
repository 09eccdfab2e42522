// CorpusReader: corpus.json parsed and checked, every shard memory-mapped and its size and offsets
// validated against it, sequences decoded from little-endian uint16/uint32 on demand; plus the RAII
// memory map and streaming atomic writer the corpus files use, and padded batch assembly.
// Dimensions: N sequences, V vocabulary, B batch rows, T longest sequence of a batch.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "retort/corpus.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/tokenizer.h"
#include "text/corpus_format.h"

namespace retort {

namespace text {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, ": cannot stat (", std::strerror(err), ")");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file open
    if (p == MAP_FAILED) fail(path, ": cannot map ", size_, " bytes (", std::strerror(err), ")");
    data_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::swap(MappedFile& o) noexcept {
  std::swap(path_, o.path_);
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
}

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) fail(path_, ": cannot write (", std::strerror(errno), ")");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t n) {
  check(file_ != nullptr, path_, ": write after commit");
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) fail(path_, ": write failed (", std::strerror(errno), ")");
}

void AtomicFileWriter::commit() {
  check(file_ != nullptr, path_, ": committed twice");
  const bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const int err = errno;
  std::fclose(file_);
  file_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail(path_, ": write failed (", std::strerror(ok ? errno : err), ")");
  }
}

}  // namespace text

namespace {

struct Shard {
  text::MappedFile tokens, offsets;
  uint64_t n_sequences = 0, n_tokens = 0;
  uint64_t offset(uint64_t j) const { return text::get_le64(offsets.data() + 8 * j); }
};

template <typename T>
T json_field(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key)) fail(file, ": missing field \"", key, "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    fail(file, ": field \"", key, "\" has the wrong type (", e.what(), ")");
  }
}

CorpusInfo parse_info(const std::string& path) {
  check(path_exists(path), path, ": missing (not a corpus directory? make one with `retort prepare-corpus`)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON (", e.what(), ")");
  }
  check(j.is_object() && j.value("format", "") == text::kCorpusFormat, path, ": not a Retort corpus (format \"",
        j.is_object() ? j.value("format", "") : "", "\")");
  CorpusInfo c;
  c.version = json_field<int>(j, "version", path);
  check(c.version == text::kCorpusVersion, path, ": corpus format version ", c.version, ", this build reads ",
        text::kCorpusVersion);
  c.dtype = json_field<std::string>(j, "dtype", path);
  c.vocab_size = json_field<size_t>(j, "vocab_size", path);
  c.vocab_fingerprint = json_field<std::string>(j, "vocab_fingerprint", path);
  c.tokenizer_source = json_field<std::string>(j, "tokenizer", path);
  const auto specials = json_field<nlohmann::json>(j, "special_ids", path);
  c.cls_id = json_field<int32_t>(specials, "cls", path);
  c.sep_id = json_field<int32_t>(specials, "sep", path);
  c.unk_id = json_field<int32_t>(specials, "unk", path);
  c.max_seq_len = json_field<size_t>(j, "max_seq_len", path);
  c.min_tokens = json_field<size_t>(j, "min_tokens", path);
  c.max_unk_fraction = json_field<double>(j, "max_unk_fraction", path);
  c.n_sequences = json_field<uint64_t>(j, "n_sequences", path);
  c.n_tokens = json_field<uint64_t>(j, "n_tokens", path);
  const auto dropped = json_field<nlohmann::json>(j, "dropped", path);
  c.dropped_short = json_field<uint64_t>(dropped, "too_short", path);
  c.dropped_unk = json_field<uint64_t>(dropped, "too_many_unk", path);
  for (const auto& s : json_field<nlohmann::json>(j, "shards", path)) {
    CorpusShardInfo si;
    si.tokens_file = json_field<std::string>(s, "tokens", path);
    si.offsets_file = json_field<std::string>(s, "offsets", path);
    si.n_sequences = json_field<uint64_t>(s, "n_sequences", path);
    si.n_tokens = json_field<uint64_t>(s, "n_tokens", path);
    c.shards.push_back(std::move(si));
  }
  return c;
}

}  // namespace

struct CorpusReader::Impl {
  std::string dir;
  CorpusInfo info;
  size_t width = 0;
  std::vector<Shard> shards;
  std::vector<uint64_t> first;  // (shards + 1,) global index of each shard's first sequence
  std::vector<uint64_t> counts;  // (V,)

  std::pair<const Shard*, uint64_t> locate(size_t i) const {
    check(i < info.n_sequences, dir, ": sequence ", i, " is out of range (", info.n_sequences, " sequences)");
    const size_t s = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), i) - first.begin()) - 1;
    return {&shards[s], i - first[s]};
  }
};

CorpusReader::CorpusReader(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.dir = dir;
  const std::string json_path = join_path(dir, text::kCorpusJson);
  m.info = parse_info(json_path);
  const CorpusInfo& c = m.info;
  if (c.dtype == "uint16") {
    m.width = 2;
  } else if (c.dtype == "uint32") {
    m.width = 4;
  } else {
    fail(json_path, ": unknown dtype \"", c.dtype, "\" (uint16 or uint32)");
  }
  check((m.width == 2) == (c.vocab_size <= 65535), json_path, ": dtype ", c.dtype, " does not match vocab_size ",
        c.vocab_size, " (uint16 holds up to 65535 ids, uint32 is used above)");
  check(c.vocab_size > 0, json_path, ": vocab_size is 0");

  uint64_t n_seq = 0, n_tok = 0;
  m.first.push_back(0);
  for (const CorpusShardInfo& si : c.shards) {
    Shard sh;
    sh.n_sequences = si.n_sequences;
    sh.n_tokens = si.n_tokens;
    sh.tokens = text::MappedFile(join_path(dir, si.tokens_file));
    sh.offsets = text::MappedFile(join_path(dir, si.offsets_file));
    const std::string& tp = sh.tokens.path();
    const std::string& op = sh.offsets.path();
    check(sh.tokens.size() == si.n_tokens * m.width, tp, ": ", sh.tokens.size(), " bytes, corpus.json says ",
          si.n_tokens, " ", c.dtype, " tokens = ", si.n_tokens * m.width, " bytes (truncated or wrong dtype)");
    check(sh.offsets.size() == (si.n_sequences + 1) * 8, op, ": ", sh.offsets.size(), " bytes, expected ",
          (si.n_sequences + 1) * 8, " (", si.n_sequences, " sequences + 1 uint64 offsets; truncated?)");
    check(sh.offset(0) == 0, op, ": first offset is ", sh.offset(0), ", not 0");
    for (uint64_t j = 0; j < si.n_sequences; ++j) {
      const uint64_t b = sh.offset(j), e = sh.offset(j + 1);
      if (e < b || e > si.n_tokens || e - b > c.max_seq_len || e == b) {
        fail(op, ": sequence ", j, " spans [", b, ", ", e, "), outside the ", si.n_tokens, " tokens of ", tp,
             " or not 1..", c.max_seq_len, " tokens long");
      }
    }
    check(sh.offset(si.n_sequences) == si.n_tokens, op, ": last offset ", sh.offset(si.n_sequences),
          " is not the token count ", si.n_tokens);
    n_seq += si.n_sequences;
    n_tok += si.n_tokens;
    m.first.push_back(n_seq);
    m.shards.push_back(std::move(sh));
  }
  check(n_seq == c.n_sequences && n_tok == c.n_tokens, json_path, ": shards hold ", n_seq, " sequences and ", n_tok,
        " tokens, the header says ", c.n_sequences, " and ", c.n_tokens);

  const text::MappedFile counts(join_path(dir, text::kTokenCountsFile));
  check(counts.size() == c.vocab_size * 8, counts.path(), ": ", counts.size(), " bytes, expected ", c.vocab_size * 8,
        " (", c.vocab_size, " uint64 counts)");
  m.counts.resize(c.vocab_size);
  for (size_t i = 0; i < c.vocab_size; ++i) m.counts[i] = text::get_le64(counts.data() + 8 * i);
}

CorpusReader::~CorpusReader() = default;
CorpusReader::CorpusReader(CorpusReader&&) noexcept = default;
CorpusReader& CorpusReader::operator=(CorpusReader&&) noexcept = default;

size_t CorpusReader::size() const { return static_cast<size_t>(impl_->info.n_sequences); }
uint64_t CorpusReader::n_tokens() const { return impl_->info.n_tokens; }

size_t CorpusReader::length(size_t i) const {
  const auto [sh, j] = impl_->locate(i);
  return static_cast<size_t>(sh->offset(j + 1) - sh->offset(j));
}

void CorpusReader::read_sequence(size_t i, int32_t* out) const {
  const auto [sh, j] = impl_->locate(i);
  const uint64_t b = sh->offset(j), e = sh->offset(j + 1);
  const size_t w = impl_->width;
  const uint8_t* p = sh->tokens.data() + b * w;
  const uint64_t vocab = impl_->info.vocab_size;
  for (uint64_t k = 0; k < e - b; ++k, p += w) {
    const uint32_t id = w == 2 ? static_cast<uint32_t>(p[0] | (p[1] << 8))
                               : static_cast<uint32_t>(p[0] | (p[1] << 8) | (p[2] << 16)) | (uint32_t{p[3]} << 24);
    if (id >= vocab) fail(sh->tokens.path(), ": token ", b + k, " is id ", id, ", outside the vocabulary of ", vocab);
    out[k] = static_cast<int32_t>(id);
  }
}

std::vector<int32_t> CorpusReader::sequence(size_t i) const {
  std::vector<int32_t> ids(length(i));
  read_sequence(i, ids.data());
  return ids;
}

std::vector<uint32_t> CorpusReader::lengths() const {
  std::vector<uint32_t> out;
  out.reserve(size());
  for (const Shard& sh : impl_->shards) {
    for (uint64_t j = 0; j < sh.n_sequences; ++j) out.push_back(static_cast<uint32_t>(sh.offset(j + 1) - sh.offset(j)));
  }
  return out;
}

const std::vector<uint64_t>& CorpusReader::token_counts() const { return impl_->counts; }
const CorpusInfo& CorpusReader::info() const { return impl_->info; }
const std::string& CorpusReader::dir() const { return impl_->dir; }

void CorpusReader::check_tokenizer(const Tokenizer& tok) const {
  const CorpusInfo& c = impl_->info;
  check(tok.vocab_size() == c.vocab_size, impl_->dir, ": corpus made with a vocabulary of ", c.vocab_size,
        " ids, tokenizer ", tok.source(), " has ", tok.vocab_size());
  const std::string fp = vocab_fingerprint(tok);
  check(fp == c.vocab_fingerprint, impl_->dir, ": corpus vocabulary ", c.vocab_fingerprint, " (", c.tokenizer_source,
        ") differs from tokenizer ", tok.source(), " (", fp, ")");
}

PaddedBatch make_padded_batch(const CorpusReader& reader, const std::vector<uint64_t>& indices, int32_t pad_id) {
  PaddedBatch b;
  b.rows = indices.size();
  for (uint64_t i : indices) b.cols = std::max(b.cols, reader.length(static_cast<size_t>(i)));
  b.ids.assign(b.rows * b.cols, pad_id);  // (B, T)
  b.lengths.resize(b.rows);               // (B,)
  for (size_t r = 0; r < b.rows; ++r) {
    const size_t i = static_cast<size_t>(indices[r]);
    b.lengths[r] = static_cast<int32_t>(reader.length(i));
    reader.read_sequence(i, b.ids.data() + r * b.cols);
  }
  return b;
}

}  // namespace retort
