// The CLI end to end: each subcommand on golden data, and bad input that must give one clear line on
// stderr and a non-zero exit code (never a crash).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "retort/fs.h"
#include "retort/npy.h"
#include "cli/cli_test_util.h"
#include "test_paths.h"

namespace retort {
namespace {

TEST(Cli, TokenizeTextAndPair) {
  auto r = run_cli("tokenize --tokenizer " + q(kVocab) + " 'Hello, world!'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"], (std::vector<int>{101, 7592, 1010, 2088, 999, 102}));
  EXPECT_EQ(j["offsets"][1], (std::vector<int>{0, 5}));
  r = run_cli("tokenize --tokenizer " + q(kVocab + "/vocab.txt") + " 'How old are you?' --pair 'I am twenty-five years old.'");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["type_ids"], (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(Cli, TokenizeJsonlKeepsOrderAndTruncates) {
  const std::string in =
      "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n"
      "{\"text\": \"How old are you?\", \"text_pair\": \"I am twenty-five years old.\"}\n"
      "\n"
      "{\"text\": \"Hello, world!\"}\n";
  auto r = run_cli("tokenize --jsonl --tokenizer " + q(kVocab + "/tokenizer.json") + " --max-length 8", in);
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string l1, l2, l3;
  std::getline(lines, l1);
  std::getline(lines, l2);
  std::getline(lines, l3);
  auto a = nlohmann::json::parse(l1), b = nlohmann::json::parse(l2), c = nlohmann::json::parse(l3);
  EXPECT_EQ(a["tokens"], (std::vector<std::string>{"[CLS]", "the", "quick", "brown", "fox", "jumps", "over", "[SEP]"}));
  EXPECT_EQ(b["ids"].size(), 8u);
  EXPECT_EQ(b["type_ids"][7], 1);
  EXPECT_EQ(c["ids"], (std::vector<int>{101, 7592, 1010, 2088, 999, 102}));
}

TEST(Cli, TokenizeBadInput) {
  expect_one_line_error(run_cli("tokenize --jsonl --tokenizer " + q(kVocab), "{\"text\": 1}\n"), "stdin line 1");
  expect_one_line_error(run_cli("tokenize --jsonl --tokenizer " + q(kVocab), "not json\n"), "stdin line 1: invalid JSON");
  expect_one_line_error(run_cli("tokenize --tokenizer /nonexistent 'x'"), "/nonexistent");
  expect_one_line_error(run_cli("tokenize --tokenizer " + q(kVocab) + " x --max-length 3 --truncation sideways"), "unknown truncation");
  expect_one_line_error(run_cli("tokenize --tokenizer " + q(kVocab) + " \"$(printf '\\377\\376')\""), "UTF-8");
}

TEST(Cli, InspectReportsBlocksAndSize) {
  auto r = run_cli("inspect --json " + q(test::shared_path("golden/distilbert-tiny-random")));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "DistilBertForMaskedLM");
  EXPECT_EQ(j["layers"], 2);
  int64_t sum = 0;
  for (auto& [k, v] : j["blocks"].items()) sum += v.get<int64_t>();
  EXPECT_EQ(sum, j["parameters"].get<int64_t>());
  // word (30522x64) + positions (512x64) + LayerNorm (2x64)
  EXPECT_EQ(j["blocks"]["embeddings"], 30522 * 64 + 512 * 64 + 128);
  EXPECT_EQ(j["size_bytes"], std::filesystem::file_size(test::shared_path("golden/distilbert-tiny-random/model.safetensors")));
  r = run_cli("inspect " + q(test::shared_path("golden/bert-tiny-random")));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| **total** | **2,130,554** |"), std::string::npos) << r.out;
}

TEST(Cli, FillMaskAgreesWithTransformersArgmax) {
  // Row 1 of the golden batch is "Paris is the [MASK] of France."; [MASK] is at position 4.
  for (const char* m : {"bert-tiny-random", "distilbert-tiny-random"}) {
    const std::string dir = test::shared_path(std::string("golden/") + m);
    auto r = run_cli("fill-mask --json --top-k 3 --tokenizer " + q(kVocab) + " " + q(dir) + " 'Paris is the [MASK] of France.'");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["position"], 4);
    auto cands = j[0]["candidates"];
    ASSERT_EQ(cands.size(), 3u);
    EXPECT_GE(cands[0]["score"].get<double>(), cands[1]["score"].get<double>());
    auto argmax = load_npy(dir + "/mlm_argmax.npy");  // (B, T)
    EXPECT_EQ(cands[0]["id"].get<int64_t>(), argmax[1][4].item<int64_t>()) << m;
  }
}

TEST(Cli, FillMaskBadInput) {
  const std::string dir = test::shared_path("golden/bert-tiny-random");
  expect_one_line_error(run_cli("fill-mask --tokenizer " + q(kVocab) + " " + q(dir) + " 'no mask here'"), "no [MASK]");
  expect_one_line_error(run_cli("fill-mask " + q(dir) + " 'a [MASK]'"), dir);  // no tokenizer files in the golden dir
  expect_one_line_error(run_cli("--device cuda fill-mask --tokenizer " + q(kVocab) + " " + q(dir) + " 'a [MASK]'"), "cuda");
  expect_one_line_error(run_cli("--device tpu fill-mask --tokenizer " + q(kVocab) + " " + q(dir) + " 'a [MASK]'"), "tpu");
}

TEST(Cli, CorruptCheckpointIsOneLine) {
  namespace fs = std::filesystem;
  const fs::path dir = test::temp_path("retort_cli_corrupt");
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(test::shared_path("golden/bert-tiny-random/config.json"), dir / "config.json");
  const std::string bytes = read_file(test::shared_path("golden/bert-tiny-random/model.safetensors"));
  write_file_atomic((dir / "model.safetensors").string(), bytes.substr(0, bytes.size() / 2));  // truncated
  expect_one_line_error(run_cli("inspect " + q(dir.string())), "model.safetensors");
}

TEST(Cli, HelpAndUsage) {
  for (const char* sub : {"tokenize", "inspect", "fill-mask"}) {
    auto r = run_cli(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find(sub), std::string::npos) << r.out;
  }
  EXPECT_NE(run_cli("").code, 0);
  EXPECT_NE(run_cli("no-such-command").code, 0);
}

}  // namespace
}  // namespace retort
