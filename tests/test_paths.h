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

// A file of this source tree (RETORT_SOURCE_DIR, fixed at configure time).
inline std::string source_path(const std::string& rel) { return std::string(RETORT_SOURCE_DIR) + "/" + rel; }

}  // namespace retort::test

#include <unistd.h>

#include <filesystem>

namespace retort::test {

// A temporary path private to this test process: CTest runs tests in parallel processes, so fixed
// names under /tmp would collide. Nothing is created.
inline std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("retort_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace retort::test

#include <functional>

#include "retort/error.h"

namespace retort::test {

// The message of the retort::Error that f throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace retort::test
