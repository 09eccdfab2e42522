// Helpers shared by the tokenizer tests: a temporary directory removed on scope exit, file writing,
// and the golden tokenizer rows from ../shared/golden/tokenizer/tokenizer_dev.jsonl.
#pragma once

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "retort/error.h"
#include "test_paths.h"

namespace retort::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("retort_text_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct GoldenRow {
  int id = 0;
  std::string text;
  std::optional<std::string> text_pair;
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;
  std::vector<int32_t> type_ids;
};

inline std::vector<GoldenRow> load_golden_rows() {
  std::ifstream in(shared_path("golden/tokenizer/tokenizer_dev.jsonl"));
  std::vector<GoldenRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    GoldenRow r;
    r.id = j.at("id").get<int>();
    r.text = j.at("text").get<std::string>();
    if (j.contains("text_pair") && !j["text_pair"].is_null()) r.text_pair = j["text_pair"].get<std::string>();
    r.ids = j.at("ids").get<std::vector<int32_t>>();
    r.tokens = j.at("tokens").get<std::vector<std::string>>();
    r.type_ids = j.at("type_ids").get<std::vector<int32_t>>();
    rows.push_back(std::move(r));
  }
  return rows;
}

inline std::string bert_vocab_dir() { return shared_path("vocab/bert-base-uncased"); }

}  // namespace retort::test

// Expects `stmt` to throw retort::Error whose message contains every one of the strings given.
#define EXPECT_ERROR_CONTAINS(stmt, ...)                                                       \
  do {                                                                                         \
    const std::string msg_ = ::retort::test::error_of([&] { stmt; });                          \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__}) {                   \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "'" << part_ << "' not in: " << msg_; \
    }                                                                                          \
  } while (0)

namespace retort::test {

}  // namespace retort::test
