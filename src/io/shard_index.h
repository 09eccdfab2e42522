// Sharded checkpoints: reading and writing the `*.index.json` that transformers writes beside the
// shards ({"metadata": {"total_size": N}, "weight_map": {tensor name: shard file}}), and loading all
// shards of an index through a format-specific loader, opening each shard exactly once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "retort/state_dict.h"

namespace retort::io {

struct ShardIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name (as written)
  std::vector<std::string> shard_files;           // distinct shard file names, sorted
};

// Parses an index file; throws Error naming it when it is not JSON, lacks weight_map, or a value is
// not a file name.
ShardIndex read_shard_index(const std::string& index_path);

// Writes an index (atomically) the way transformers does: json.dumps(indent=2, sort_keys=True) + "\n".
void write_shard_index(const std::string& index_path, const std::map<std::string, std::string>& weight_map,
                       std::uint64_t total_size);

// Loads every shard of `index_path` with `load_shard` (each one once, in file-name order) and checks
// that each tensor the index lists is in the shard it names.
StateDict load_sharded(const std::string& index_path,
                       const std::function<StateDict(const std::string& shard_path)>& load_shard);

}  // namespace retort::io
