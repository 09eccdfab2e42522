// Tests of loading tokenizers from files: every malformed or unsupported input raises retort::Error
// naming the file and the problem, and the tokenizer.json variants BERT checkpoints use
// (TemplateProcessing, BertProcessing, no post-processor) load and behave as their files say.
#include <gtest/gtest.h>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text_test_util.h"

namespace retort {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

const Strings kVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##b", "hello"};

std::string lines(const Strings& v) {
  std::string s;
  for (const auto& t : v) s += t + "\n";
  return s;
}

// A valid tokenizer.json for kVocab, as Retort saves it, for the tests to break.
json tiny_tokenizer_json(const test::TempDir& dir) {
  Tokenizer(kVocab, {}, "tiny").save(dir.file("orig"));
  return json::parse(test::read_file(dir.file("orig/tokenizer.json")));
}

std::string write_json(const test::TempDir& dir, const json& j) {
  const std::string path = dir.file("tokenizer.json");
  test::write_file(path, j.dump(2));
  return path;
}

TEST(TokenizerFiles, MissingPaths) {
  test::TempDir dir;
  EXPECT_ERROR_CONTAINS(Tokenizer::load(dir.file("nope/vocab.txt")), dir.file("nope/vocab.txt"), "does not exist");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(dir.path().string()), dir.path().string(), "neither tokenizer.json nor vocab.txt");
  EXPECT_ERROR_CONTAINS(Tokenizer::from_vocab_file(dir.file("v.txt")), dir.file("v.txt"), "does not exist");
  EXPECT_ERROR_CONTAINS(Tokenizer::from_tokenizer_json(dir.file("t.json")), dir.file("t.json"), "does not exist");
  test::write_file(dir.file("vocab.txt"), lines(kVocab));
  EXPECT_ERROR_CONTAINS(Tokenizer::from_vocab_file(dir.file("vocab.txt"), dir.file("missing_config.json")),
                        "missing_config.json", "does not exist");
}

TEST(TokenizerFiles, BadVocabularies) {
  test::TempDir dir;
  const std::string path = dir.file("vocab.txt");
  test::write_file(path, "");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "vocabulary is empty");
  test::write_file(path, lines({"[PAD]", "[CLS]", "[SEP]", "a"}));
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "no unk token '[UNK]'");
  test::write_file(path, lines({"[PAD]", "[UNK]", "[SEP]", "a"}));
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "no cls token '[CLS]'");
  test::write_file(path, lines({"[PAD]", "[UNK]", "[CLS]", "a"}));
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "no sep token '[SEP]'");
  test::write_file(path, "[UNK]\n[CLS]\n[SEP]\nab\xff\n");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "invalid UTF-8", "byte offset 20");
  EXPECT_ERROR_CONTAINS(Tokenizer(Strings{}, {}, "in-memory"), "in-memory", "vocabulary is empty");
}

TEST(TokenizerFiles, VocabTxtDetails) {
  test::TempDir dir;
  const std::string path = dir.file("vocab.txt");
  // CRLF line ends and a missing final newline still give one token per line.
  test::write_file(path, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello");
  Tokenizer tok = Tokenizer::load(path);
  EXPECT_EQ(tok.vocab_size(), 5u);
  EXPECT_EQ(tok.token_to_id("hello"), 4);
  EXPECT_THROW(tok.mask_id(), Error);  // no [MASK] in this vocabulary
  // Special token strings come from tokenizer_config.json, in either of HF's spellings.
  test::write_file(path, lines({"<pad>", "<unk>", "<s>", "</s>", "<mask>", "hello"}));
  test::write_file(dir.file("tokenizer_config.json"),
                   R"({"unk_token": "<unk>", "cls_token": {"content": "<s>"}, "sep_token": "</s>",
                       "pad_token": "<pad>", "mask_token": "<mask>", "model_max_length": 512})");
  tok = Tokenizer::load(path);
  EXPECT_EQ(tok.cls_id(), 2);
  EXPECT_EQ(tok.sep_id(), 3);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.mask_id(), 4);
  EXPECT_EQ(tok.unk_id(), 1);
  EXPECT_EQ(tok.config().model_max_length, 512u);
  EXPECT_EQ(tok.encode("hello <mask> x").tokens, (Strings{"<s>", "hello", "<mask>", "<unk>", "</s>"}));
}

TEST(TokenizerFiles, MalformedJson) {
  test::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  test::write_file(path, "{\"model\": {");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), "malformed JSON in", path);
  test::write_file(path, "[1, 2]");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(path), path, "top level must be an object");
  test::write_file(dir.file("vocab.txt"), lines(kVocab));
  test::write_file(dir.file("tokenizer_config.json"), "{oops");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(dir.file("vocab.txt")), "malformed JSON in", "tokenizer_config.json");
  test::write_file(dir.file("tokenizer_config.json"), R"({"do_basic_tokenize": false})");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(dir.file("vocab.txt")), "unsupported do_basic_tokenize=false",
                        "tokenizer_config.json");
  test::write_file(dir.file("tokenizer_config.json"), R"({"do_lower_case": "yes"})");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(dir.file("vocab.txt")), "tokenizer_config.json", "do_lower_case",
                        "wrong type");
}

TEST(TokenizerFiles, MalformedTokenizerJsonFields) {
  test::TempDir dir;
  const json good = tiny_tokenizer_json(dir);
  json j = good;
  j.erase("model");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "tokenizer.json", "no \"model\"");
  j = good;
  j["model"]["vocab"]["hello"] = 42;
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "tokenizer.json", "model.vocab ids", "'hello' has id 42");
  j = good;
  j["model"]["vocab"]["a"] = "five";
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "model.vocab['a'] is not an integer");
  j = good;
  j["model"]["max_input_chars_per_word"] = "many";
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "model.max_input_chars_per_word", "wrong type");
  j = good;
  j["model"]["unk_token"] = "<unk>";
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "tokenizer.json", "no unk token '<unk>'");
  j = good;
  j["post_processor"]["single"][0]["SpecialToken"]["id"] = "[BOS]";
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "special token '[BOS]' is missing");
  j = good;
  j["added_tokens"][0].erase("content");
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "added_tokens entry without \"content\"");
}

TEST(TokenizerFiles, UnsupportedComponents) {
  test::TempDir dir;
  const json good = tiny_tokenizer_json(dir);
  json j = good;
  j["model"]["type"] = "BPE";
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "unsupported model type 'BPE'", "tokenizer.json");
  j = good;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "unsupported normalizer type 'Sequence'", "tokenizer.json");
  j = good;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "unsupported pre_tokenizer type 'Whitespace'");
  j = good;
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_ERROR_CONTAINS(Tokenizer::load(write_json(dir, j)), "unsupported post_processor type 'RobertaProcessing'");
}

TEST(TokenizerFiles, PostProcessorVariants) {
  test::TempDir dir;
  const json good = tiny_tokenizer_json(dir);
  EXPECT_EQ(Tokenizer::load(write_json(dir, good)).encode_pair("a", "b").ids, (std::vector<int32_t>{2, 5, 3, 6, 3}));

  json j = good;
  j["post_processor"] = nullptr;
  Tokenizer tok = Tokenizer::load(write_json(dir, j));
  EXPECT_EQ(tok.encode("a b").ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(tok.num_special_tokens_to_add(true), 0u);

  j["post_processor"] = {{"type", "BertProcessing"}, {"sep", {"[SEP]", 3}}, {"cls", {"[CLS]", 2}}};
  tok = Tokenizer::load(write_json(dir, j));
  const Encoding e = tok.encode_pair("a", "b");
  EXPECT_EQ(e.ids, (std::vector<int32_t>{2, 5, 3, 6, 3}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));

  // A normalizer-less tokenizer does not lowercase; strip_accents false keeps accents.
  j = good;
  j["normalizer"]["lowercase"] = false;
  tok = Tokenizer::load(write_json(dir, j));
  EXPECT_EQ(tok.tokenize("a A"), (Strings{"a", "[UNK]"}));
  EXPECT_FALSE(tok.config().strip_accents_enabled());
}

TEST(TokenizerFiles, SaveIsAtomicAndRoundTripsAConfiguredTokenizer) {
  test::TempDir dir;
  TokenizerConfig c;
  c.lowercase = false;
  c.strip_accents = true;
  c.never_split = {"hello"};
  c.model_max_length = 128;
  c.max_input_chars_per_word = 7;
  c.added_tokens.push_back({"[E1]", 9, false, true});
  const Tokenizer tok(kVocab, c, "configured");
  tok.save(dir.file("out"));
  const Tokenizer back = Tokenizer::load(dir.file("out"));
  EXPECT_EQ(back.config().lowercase, false);
  EXPECT_EQ(back.config().strip_accents, std::optional<bool>(true));
  EXPECT_EQ(back.config().never_split, Strings{"hello"});
  EXPECT_EQ(back.config().model_max_length, 128u);
  EXPECT_EQ(back.config().max_input_chars_per_word, 7u);
  EXPECT_EQ(back.vocab_size(), 10u);
  for (const char* text : {"hello ab [E1] bbbbbbbb", "A b", "[MASK] a"}) {
    EXPECT_EQ(back.encode(text).ids, tok.encode(text).ids) << text;
  }
  // vocab.txt holds the WordPiece vocabulary only; the added token lives in the JSON files.
  EXPECT_EQ(test::read_file(dir.file("out/vocab.txt")), lines(kVocab));
  const json cfg = json::parse(test::read_file(dir.file("out/tokenizer_config.json")));
  EXPECT_EQ(cfg["added_tokens_decoder"]["9"]["content"], "[E1]");
  EXPECT_EQ(cfg["model_max_length"], 128);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/tokenizer.json.tmp")));
  // Saving over a file is an error naming the directory.
  test::write_file(dir.file("blocker"), "x");
  EXPECT_ERROR_CONTAINS(tok.save(dir.file("blocker")), "cannot create tokenizer directory", "blocker");
}

}  // namespace
}  // namespace retort
