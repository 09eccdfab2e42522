// Reading optional fields of a JSON configuration with errors that name the setting and the file.
#pragma once

#include <nlohmann/json.hpp>

#include "retort/error.h"

namespace retort {

// Sets `out` from j[key] when the key is present and not null; a value of the wrong type is an Error
// "<context>: field '<key>' has the wrong type (<json type>)". Returns whether the key was present.
template <typename T>
bool read_field(const nlohmann::json& j, const char* key, T& out, const char* context) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_null()) return true;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(context, ": field '", key, "' has the wrong type (", it->type_name(), ")");
  }
  return true;
}

}  // namespace retort
