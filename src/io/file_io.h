// Private file helpers of the io layer: a read-only (copy-on-write) memory mapping of a whole file, and
// a streaming writer that writes to `path + ".tmp"` and renames it into place only on commit(), so a
// crash or an exception never leaves a half-written checkpoint under the real name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace retort::io {

// The whole file mapped MAP_PRIVATE with PROT_READ|PROT_WRITE: writes through a tensor made over the
// mapping change only this process's copy of the page, never the file (and never fault).
class MappedFile {
 public:
  // Throws Error naming the path when the file cannot be opened, is not a regular file, or mmap fails.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::string path_;
  std::uint8_t* data_ = nullptr;  // nullptr for an empty file
  std::size_t size_ = 0;
};

class AtomicWriter {
 public:
  // Creates `path + ".tmp"` (truncating a stale one); throws Error naming `path` on failure.
  explicit AtomicWriter(const std::string& path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, std::size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // Flushes to disk, closes and renames the temporary file over `path`.
  void commit();

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Reads a small whole file (JSON, .npy) into a string; throws Error naming the path.
std::string read_small_file(const std::string& path);

// `text` with control characters (newlines included) written as \xNN, so that names and snippets
// taken from a file keep an error message on one line.
std::string printable(const std::string& text);

// The directory part of a path ("" -> "."), for resolving shard names next to an index file.
std::string parent_dir(const std::string& path);

}  // namespace retort::io
