// Reading (mmap, validated header, zero-copy tensors) and writing (byte-compatible with the
// safetensors library) of .safetensors files, and their sharded form with model.safetensors.index.json.
// Layout: [u64 LE N][N bytes JSON header, space-padded][data section: tensors back to back].
// Tensors keep the shapes recorded in the header; there are no model dimensions here.
#include "retort/safetensors.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>
#include <tuple>
#include <unordered_set>

#include "io/file_io.h"
#include "io/shard_index.h"
#include "retort/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace retort {
namespace {

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the safetensors library's limit

// The safetensors dtypes. `rank` is the position in the library's Dtype enum, which is declared in
// increasing alignment order; the writer sorts by it, descending. Undefined = valid in the format but
// absent from libtorch 1.13 (such tensors open, but tensor() refuses them).
struct DtypeSpec {
  const char* name;
  int rank;
  uint64_t itemsize;
  c10::ScalarType scalar_type;
};

constexpr DtypeSpec kDtypes[] = {
    {"BOOL", 0, 1, c10::ScalarType::Bool},         {"U8", 1, 1, c10::ScalarType::Byte},
    {"I8", 2, 1, c10::ScalarType::Char},           {"F8_E5M2", 3, 1, c10::ScalarType::Undefined},
    {"F8_E4M3", 4, 1, c10::ScalarType::Undefined}, {"I16", 5, 2, c10::ScalarType::Short},
    {"U16", 6, 2, c10::ScalarType::Undefined},     {"F16", 7, 2, c10::ScalarType::Half},
    {"BF16", 8, 2, c10::ScalarType::BFloat16},     {"I32", 9, 4, c10::ScalarType::Int},
    {"U32", 10, 4, c10::ScalarType::Undefined},    {"F32", 11, 4, c10::ScalarType::Float},
    {"F64", 12, 8, c10::ScalarType::Double},       {"I64", 13, 8, c10::ScalarType::Long},
    {"U64", 14, 8, c10::ScalarType::Undefined},
};

const DtypeSpec* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeSpec* dtype_by_scalar_type(c10::ScalarType st) {
  for (const auto& d : kDtypes)
    if (d.scalar_type == st && st != c10::ScalarType::Undefined) return &d;
  return nullptr;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer; false for negative numbers, fractions, and anything else.
bool as_u64(const nlohmann::ordered_json& v, uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// JSON string literal for `s`, as serde_json writes it (UTF-8 kept, control characters escaped).
std::string json_string(const std::string& s, const std::string& path, const char* what) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception&) {
    fail(path, ": ", what, " is not valid UTF-8: '", io::printable(s), "'");
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : path_(path), mapping_(std::make_shared<io::MappedFile>(path)) {
  const uint8_t* base = mapping_->data();
  const uint64_t size = mapping_->size();
  check(size >= 8, path, ": not a safetensors file: ", size,
        " bytes, shorter than the 8-byte header length field");
  const uint64_t n = read_le64(base);
  check(n <= kMaxHeaderSize, path, ": header length ", n,
        " is absurd (over 100 MB): not a safetensors file?");
  check(n <= size - 8, path, ": header length ", n, " is larger than the ", size - 8,
        " bytes that follow it: truncated or not a safetensors file");
  header_size_ = n;
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;

  // Top-level keys are collected as they are parsed: JSON objects silently keep one of two equal keys.
  std::unordered_set<std::string> keys;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::ordered_json::parse_event_t event, nlohmann::ordered_json& v) {
    if (depth == 1 && event == nlohmann::ordered_json::parse_event_t::key) {
      const auto& key = v.get_ref<const std::string&>();
      if (!keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::ordered_json header;
  try {
    const char* text = reinterpret_cast<const char*>(base + 8);
    header = nlohmann::ordered_json::parse(text, text + n, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": safetensors header is not valid JSON (", io::printable(e.what()), ")");
  }
  check(header.is_object(), path, ": safetensors header is not a JSON object");
  check(duplicate.empty(), path, ": safetensors header lists '", io::printable(duplicate), "' twice");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      check(entry.is_object(), path, ": __metadata__ is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        check(value.is_string(), path, ": __metadata__ value for '", io::printable(key), "' is not a string");
        metadata_.emplace(key, value.get<std::string>());
      }
      continue;
    }
    const std::string where = path + ": tensor '" + io::printable(name) + "'";
    check(entry.is_object(), where, ": header entry is not a JSON object");
    const auto dtype = entry.find("dtype");
    const auto shape = entry.find("shape");
    const auto offsets = entry.find("data_offsets");
    check(dtype != entry.end(), where, ": header entry has no dtype");
    check(shape != entry.end(), where, ": header entry has no shape");
    check(offsets != entry.end(), where, ": header entry has no data_offsets");
    check(dtype->is_string(), where, ": dtype is not a string");

    SafetensorsTensorInfo info;
    info.dtype = dtype->get<std::string>();
    const DtypeSpec* spec = dtype_by_name(info.dtype);
    check(spec != nullptr, where, ": unknown dtype '", io::printable(info.dtype), "'");
    info.scalar_type = spec->scalar_type;

    check(shape->is_array(), where, ": shape is not an array");
    uint64_t numel = 1;
    for (const auto& dim : *shape) {
      uint64_t d = 0;
      check(as_u64(dim, d) && d <= static_cast<uint64_t>(INT64_MAX), where, ": shape ", shape->dump(),
            " is not a list of non-negative integers");
      check(!__builtin_mul_overflow(numel, d, &numel), where, ": shape ", shape->dump(), " overflows");
      info.shape.push_back(static_cast<int64_t>(d));
    }
    uint64_t nbytes = 0;
    check(!__builtin_mul_overflow(numel, spec->itemsize, &nbytes), where, ": shape ", shape->dump(),
          " overflows");

    check(offsets->is_array() && offsets->size() == 2 && as_u64((*offsets)[0], info.begin) &&
              as_u64((*offsets)[1], info.end),
          where, ": data_offsets ", offsets->dump(), " is not a pair of non-negative integers");
    check(info.end >= info.begin, where, ": data_offsets ", offsets->dump(), " end before begin");
    check(info.end - info.begin == nbytes, where, ": data_offsets ", offsets->dump(), " span ",
          info.end - info.begin, " bytes but ", info.dtype, " ", shape_str(info.shape), " needs ", nbytes);
    info.file_offset = data_start + info.begin;

    index_.emplace(name, names_.size());
    names_.push_back(name);
    infos_.push_back(std::move(info));
  }

  // Ranges: within the data section, and disjoint (so no two tensors alias each other's bytes).
  std::vector<std::size_t> order(infos_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(infos_[a].begin, infos_[a].end) < std::tie(infos_[b].begin, infos_[b].end);
  });
  std::size_t last = order.size();  // the non-empty range ending last so far
  for (std::size_t i : order) {
    const auto& info = infos_[i];
    if (info.nbytes() == 0) continue;
    if (last != order.size() && info.begin < infos_[last].end) {
      fail(path, ": tensors '", io::printable(names_[last]), "' [", infos_[last].begin, ", ",
           infos_[last].end, ") and '", io::printable(names_[i]), "' [", info.begin, ", ", info.end,
           ") overlap");
    }
    last = i;
  }
  if (last != order.size() && infos_[last].end > data_size) {
    fail(path, ": truncated: tensor '", io::printable(names_[last]), "' ends at byte ", infos_[last].end,
         " of the data section, which has only ", data_size, " bytes");
  }
  for (std::size_t i = 0; i < infos_.size(); ++i) {  // empty tensors still need in-range offsets
    check(infos_[i].end <= data_size, path, ": tensor '", io::printable(names_[i]), "': data_offsets [",
          infos_[i].begin, ", ", infos_[i].end, "] lie outside the data section of ", data_size, " bytes");
  }
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail(path_, ": no tensor named '", io::printable(name), "'");
  return infos_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsTensorInfo& info = this->info(name);
  check(info.scalar_type != c10::ScalarType::Undefined, path_, ": tensor '", io::printable(name), "': dtype ",
        info.dtype, " has no libtorch equivalent here");
  const auto options = torch::TensorOptions().dtype(info.scalar_type);
  if (info.nbytes() == 0) return torch::empty(info.shape, options);  // (info.shape), which has a 0
  uint8_t* p = mapping_->data() + info.file_offset;
  if (info.scalar_type == c10::ScalarType::Bool) {  // any byte but 0/1 is undefined behaviour as bool
    for (uint64_t i = 0; i < info.nbytes(); ++i) {
      check(p[i] <= 1, path_, ": tensor '", io::printable(name), "': BOOL byte ", i, " has value ", int(p[i]),
            ", not 0 or 1");
    }
  }
  const auto itemsize = static_cast<uintptr_t>(c10::elementSize(info.scalar_type));
  if (reinterpret_cast<uintptr_t>(p) % itemsize == 0) {
    std::shared_ptr<io::MappedFile> keep = mapping_;
    const auto release = [keep](void*) {};  // the view owns a reference to the mapping, nothing else
    return torch::from_blob(p, info.shape, release, options);
  }
  torch::Tensor copy = torch::empty(info.shape, options);  // (info.shape)
  std::memcpy(copy.data_ptr(), p, info.nbytes());
  return copy;
}

StateDict load_safetensors(const std::string& path) {
  const SafetensorsFile file(path);
  StateDict sd;
  for (const auto& name : file.names()) sd.add(name, file.tensor(name), path);
  return sd;
}

StateDict load_safetensors_index(const std::string& index_path) {
  return io::load_sharded(index_path, [](const std::string& shard) { return load_safetensors(shard); });
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    torch::Tensor data;  // CPU, contiguous
    const DtypeSpec* spec;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::unordered_set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = path + ": tensor '" + io::printable(name) + "'";
    check(name != "__metadata__", where, ": the name is reserved for the metadata");
    check(seen.insert(name).second, where, ": given twice");
    check(tensor.defined(), where, ": undefined tensor");
    check(tensor.layout() == torch::kStrided, where, ": only dense tensors can be saved");
    const DtypeSpec* spec = dtype_by_scalar_type(tensor.scalar_type());
    check(spec != nullptr, where, ": dtype ", tensor.scalar_type(), " has no safetensors equivalent");
    items.push_back({&name, tensor.detach().to(torch::kCPU).contiguous(), spec});
  }
  // The safetensors library's order: descending dtype alignment, then name (bytewise).
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.spec->rank != b.spec->rank) return a.spec->rank > b.spec->rank;
    return *a.name < *b.name;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      header += (first ? "" : ",") + json_string(key, path, "metadata key") + ":" +
                json_string(value, path, "metadata value");
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& item : items) {
    if (header.size() > 1) header += ",";
    header +=
        json_string(*item.name, path, "tensor name") + ":{\"dtype\":\"" + item.spec->name + "\",\"shape\":[";
    for (int64_t i = 0; i < item.data.dim(); ++i)
      header += (i ? "," : "") + std::to_string(item.data.size(i));
    const uint64_t nbytes = item.data.nbytes();
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // so the data section starts 8-aligned

  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  io::AtomicWriter out(path);
  out.write(length, sizeof length);
  out.write(header);
  for (const auto& item : items) {
    if (item.data.nbytes() > 0) out.write(item.data.data_ptr(), item.data.nbytes());
  }
  out.commit();
}

std::vector<std::string> save_safetensors_sharded(
    const std::string& dir, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  // transformers' shard_checkpoint: fill shards in order; a tensor that would tip the current shard
  // over the limit starts a new one, unless the current shard is empty.
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  uint64_t shard_bytes = 0;
  uint64_t total_bytes = 0;
  std::unordered_set<std::string> seen;
  for (const auto& item : tensors) {
    check(seen.insert(item.first).second, dir, ": tensor '", io::printable(item.first), "' given twice");
    const uint64_t nbytes = item.second.defined() ? item.second.nbytes() : 0;
    if (!shards.back().empty() && shard_bytes + nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(item);
    shard_bytes += nbytes;
    total_bytes += nbytes;
  }
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  if (shards.size() == 1) {
    save_safetensors(prefix + "model.safetensors", tensors, metadata);
    return {"model.safetensors"};
  }
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    save_safetensors(prefix + file, shards[i], metadata);
    for (const auto& item : shards[i]) weight_map[item.first] = file;
    files.emplace_back(file);
  }
  io::write_shard_index(prefix + "model.safetensors.index.json", weight_map, total_bytes);
  files.emplace_back("model.safetensors.index.json");
  return files;
}

}  // namespace retort
