// The safetensors format (Hugging Face): u64 little-endian header length N, N bytes of JSON
// ({"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}), then the
// raw little-endian, C-order tensor bytes, offsets relative to the start of that data section.
// Reading memory-maps the file and validates the whole header up front: a malformed file is one
// Error line naming the file (and the tensor), never a crash or a garbage tensor. Tensors are views
// of the mapping (zero-copy) when aligned and keep it alive on their own. Writing produces the bytes
// the safetensors library writes. Sharded checkpoints use model.safetensors.index.json.
// (at::Tensor is the same type as torch::Tensor; this header avoids <torch/torch.h> to stay light.)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "retort/state_dict.h"

namespace retort {

namespace io {
class MappedFile;
}

// One header entry. Offsets are bytes within the data section, exactly as written in the header.
struct SafetensorsTensorInfo {
  std::string dtype;                                         // "F32", "BF16", "I64", ...
  c10::ScalarType scalar_type = c10::ScalarType::Undefined;  // Undefined: no libtorch type
  std::vector<int64_t> shape;
  uint64_t begin = 0;        // data_offsets[0]
  uint64_t end = 0;          // data_offsets[1]
  uint64_t file_offset = 0;  // where `begin` lies in the file: 8 + N + begin
  uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws Error naming the file (and tensor) when it is malformed.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in header order (which is file order for every writer we know).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws Error naming the file and tensor when absent.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // The "__metadata__" object ({"format": "pt"} for transformers' files); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Size in bytes of the JSON header (N), including its padding.
  uint64_t header_size() const { return header_size_; }

  // The tensor, on CPU. A view of the mapping when its bytes are aligned for its dtype (it then keeps
  // the mapping alive after this object is gone; writing to it changes only this process's copy),
  // otherwise a copy.
  at::Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<io::MappedFile> mapping_;
  uint64_t header_size_ = 0;
  std::vector<std::string> names_;
  std::vector<SafetensorsTensorInfo> infos_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of one file, in header order, as zero-copy views where possible.
StateDict load_safetensors(const std::string& path);

// A sharded checkpoint: reads model.safetensors.index.json and opens each shard it names once.
StateDict load_safetensors_index(const std::string& index_path);

// Writes `tensors` in the safetensors format, byte for byte as the safetensors library does: entries
// sorted by dtype alignment (descending) then name, header JSON padded with spaces to a multiple of 8.
// Tensors on other devices are copied to CPU, non-contiguous ones made contiguous. An empty `metadata`
// omits "__metadata__". Written to `path + ".tmp"` then renamed. Throws Error naming the file and the
// tensor for duplicate names, undefined tensors or dtypes safetensors cannot hold.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Splits `tensors` into shards the way transformers does (in order, a new shard when the next tensor
// would take the current one over `max_shard_bytes`) and writes them into `dir` as
// model-0000i-of-0000n.safetensors plus model.safetensors.index.json; a single shard is written as
// model.safetensors without index. Returns the file names written (shards, then the index).
std::vector<std::string> save_safetensors_sharded(
    const std::string& dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace retort
