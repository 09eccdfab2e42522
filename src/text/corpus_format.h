// Internals shared by the corpus writer (corpus.cpp), reader (corpus_reader.cpp) and the samplers:
// file names and format constants, little-endian encoding, a read-only memory map (RAII), and the
// seeded integer helpers that keep shuffles identical across standard libraries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace retort::text {

constexpr const char* kCorpusFormat = "retort-corpus";
constexpr int kCorpusVersion = 1;
constexpr const char* kCorpusJson = "corpus.json";
constexpr const char* kTokenCountsFile = "token_counts.bin";

std::string shard_file_name(const char* stem, size_t shard);  // "tokens-00003.bin"

inline void put_le(uint8_t* p, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint64_t get_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// A whole file mapped read-only; an empty file maps to nothing. Throws Error naming the path.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    swap(o);
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void swap(MappedFile& o) noexcept;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Streams to `path.tmp.<pid>`; commit() flushes, fsyncs and renames it over path. Destroyed
// uncommitted (an exception on the way), it removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
};

// SplitMix64: turns (seed, stream) pairs into well-mixed engine seeds.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, n) from a 64-bit engine by rejection (std::uniform_int_distribution differs
// between standard libraries; this does not). n > 0.
template <typename Engine>
uint64_t uniform_below(Engine& engine, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // values >= limit would bias the modulo
  uint64_t x;
  do {
    x = engine();
  } while (x >= limit);
  return x % n;
}

// Uniform in (0, 1] with 53 random bits (never 0, so -log(u) is finite).
template <typename Engine>
double uniform_open0(Engine& engine) {
  return (static_cast<double>(engine() >> 11) + 1.0) * 0x1.0p-53;
}

// Fisher-Yates with uniform_below: the same permutation on every platform.
template <typename T, typename Engine>
void shuffle_in_place(T* v, size_t n, Engine& engine) {
  for (size_t i = n; i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(engine, i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace retort::text
