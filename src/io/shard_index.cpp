// Sharded checkpoints: the *.index.json beside the shards (see shard_index.h).
#include "io/shard_index.h"

#include <nlohmann/json.hpp>
#include <set>

#include "io/file_io.h"
#include "retort/error.h"

namespace retort::io {

ShardIndex read_shard_index(const std::string& index_path) {
  const std::string text = read_small_file(index_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(index_path, ": not valid JSON (", printable(e.what()), ")");
  }
  check(j.is_object(), index_path, ": not a JSON object");
  const auto wm = j.find("weight_map");
  check(wm != j.end() && wm->is_object(), index_path, ": no \"weight_map\" object");
  check(!wm->empty(), index_path, ": \"weight_map\" is empty");
  ShardIndex index;
  std::set<std::string> files;
  for (const auto& [name, file] : wm->items()) {
    check(file.is_string() && !file.get_ref<const std::string&>().empty(), index_path,
          ": weight_map entry for tensor '", printable(name), "' is not a file name");
    index.weight_map.emplace(name, file.get<std::string>());
    files.insert(file.get<std::string>());
  }
  index.shard_files.assign(files.begin(), files.end());
  return index;
}

void write_shard_index(const std::string& index_path, const std::map<std::string, std::string>& weight_map,
                       std::uint64_t total_size) {
  nlohmann::json j;  // std::map-backed: keys sorted, as sort_keys=True
  j["metadata"]["total_size"] = total_size;
  j["weight_map"] = nlohmann::json::object();
  for (const auto& [name, file] : weight_map) j["weight_map"][name] = file;
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {  // a tensor name that is not UTF-8
    fail(index_path, ": cannot write index (", printable(e.what()), ")");
  }
  AtomicWriter out(index_path);
  out.write(text);
  out.commit();
}

StateDict load_sharded(const std::string& index_path,
                       const std::function<StateDict(const std::string& shard_path)>& load_shard) {
  const ShardIndex index = read_shard_index(index_path);
  const std::string dir = parent_dir(index_path);
  StateDict all;
  for (const auto& file : index.shard_files) {
    const std::string shard_path = dir + "/" + file;
    StateDict shard = load_shard(shard_path);
    for (const auto& name : shard.names()) all.add(name, shard.tensor(name), shard_path);
  }
  for (const auto& [name, file] : index.weight_map) {
    const std::string shard_path = dir + "/" + file;
    check(all.contains(name), index_path, ": tensor '", printable(name), "' is listed in shard ",
          printable(file), " but no shard contains it");
    check(all.source(name) == shard_path, index_path, ": tensor '", printable(name), "' is listed in shard ",
          printable(file), " but found in ", all.source(name));
  }
  return all;
}

}  // namespace retort::io
