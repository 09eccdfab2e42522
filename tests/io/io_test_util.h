// Helpers for the io tests: a temporary directory removed at the end of the test, whole-file byte
// reads and writes, and EXPECT_ERROR, which checks that a statement throws retort::Error whose
// one-line message contains every given substring.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>

#include "retort/error.h"

namespace retort::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "retort_io_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// The message of the retort::Error `f` throws, or "" after recording a failure when it throws nothing.
template <typename F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const retort::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected retort::Error, nothing was thrown";
  return "";
}

inline void expect_message_has(const std::string& message, std::initializer_list<std::string> needles) {
  EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
  for (const auto& needle : needles) {
    EXPECT_NE(message.find(needle), std::string::npos) << "'" << needle << "' not in: " << message;
  }
}

}  // namespace retort::test

// EXPECT_ERROR(statement, "substring", ...): statement throws retort::Error naming each substring.
#define EXPECT_ERROR(stmt, ...)                                                                      \
  do {                                                                                               \
    EXPECT_THROW(stmt, retort::Error);                                                               \
    ::retort::test::expect_message_has(::retort::test::error_message([&] { stmt; }), {__VA_ARGS__}); \
  } while (0)
