// Reading pytorch_model.bin (torch.save's zip format) through libtorch's own unpickler,
// torch::pickle_load, with every failure turned into one Error line naming the file.
#include "retort/torch_bin.h"

#include <torch/torch.h>

#include <cstring>

#include "io/file_io.h"
#include "io/shard_index.h"
#include "retort/error.h"

namespace retort {
namespace {

std::string first_line(const std::string& s) { return io::printable(s.substr(0, s.find('\n'))); }

}  // namespace

StateDict load_torch_bin(const std::string& path) {
  std::vector<char> bytes;
  {
    const io::MappedFile file(path);
    bytes.assign(file.data(), file.data() + file.size());
  }
  const bool zip = bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0;
  if (!zip && !bytes.empty() && static_cast<unsigned char>(bytes[0]) == 0x80) {
    fail(path,
         ": legacy torch.save format (PyTorch < 1.6) is not supported; re-save it with a recent "
         "PyTorch or as safetensors");
  }
  check(zip, path, ": not a zip archive, so not a torch.save checkpoint");

  c10::IValue root;
  try {
    root = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    fail(path, ": cannot read torch.save archive (", first_line(e.what_without_backtrace()), ")");
  } catch (const std::exception& e) {
    fail(path, ": cannot read torch.save archive (", first_line(e.what()), ")");
  }
  check(root.isGenericDict(), path, ": holds a ", root.tagKind(), ", not a dict of tensors");
  StateDict sd;
  for (const auto& item : root.toGenericDict()) {
    check(item.key().isString(), path, ": holds a dict whose keys are ", item.key().tagKind(),
          ", not tensor names");
    const std::string& name = item.key().toStringRef();
    check(item.value().isTensor(), path, ": entry '", io::printable(name), "' is a ", item.value().tagKind(),
          ", not a tensor");
    sd.add(name, item.value().toTensor(), path);
  }
  return sd;
}

StateDict load_torch_bin_index(const std::string& index_path) {
  return io::load_sharded(index_path, [](const std::string& shard) { return load_torch_bin(shard); });
}

}  // namespace retort
