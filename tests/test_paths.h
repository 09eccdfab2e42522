// Where tests find ../shared (golden data, vocabularies, datasets). The path is fixed at configure time
// (RETORT_SHARED_DIR) and can be overridden at run time with the RETORT_SHARED environment variable.
#pragma once

#include <cstdlib>
#include <string>

namespace retort::test {

inline std::string shared_dir() {
  if (const char* env = std::getenv("RETORT_SHARED")) return env;
  return RETORT_SHARED_DIR;
}

inline std::string shared_path(const std::string& rel) { return shared_dir() + "/" + rel; }

}  // namespace retort::test
