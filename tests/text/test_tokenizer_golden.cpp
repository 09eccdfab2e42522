// Golden tests: every row of ../shared/golden/tokenizer/tokenizer_dev.jsonl (made with Hugging Face's
// tokenizers) must match id for id through both load paths (tokenizer.json, and vocab.txt with
// tokenizer_config.json), after a save/reload round trip, and in batch mode. Offsets are checked
// for consistency on every row.
#include <gtest/gtest.h>

#include <sstream>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text_test_util.h"

namespace retort {
namespace {

using test::GoldenRow;

const std::vector<GoldenRow>& golden_rows() {
  static const std::vector<GoldenRow> rows = test::load_golden_rows();
  return rows;
}

Encoding encode_row(const Tokenizer& tok, const GoldenRow& r) {
  return r.text_pair ? tok.encode_pair(r.text, *r.text_pair) : tok.encode(r.text);
}

// Counts rows that differ from the golden ids/tokens/type ids, printing the first few.
size_t count_mismatches(const Tokenizer& tok, const char* label) {
  size_t bad = 0;
  for (const GoldenRow& r : golden_rows()) {
    const Encoding e = encode_row(tok, r);
    if (e.ids == r.ids && e.tokens == r.tokens && e.type_ids == r.type_ids) continue;
    if (++bad <= 10) {
      std::ostringstream got, want;
      for (const auto& t : e.tokens) got << t << ' ';
      for (const auto& t : r.tokens) want << t << ' ';
      ADD_FAILURE() << label << " row " << r.id << "\n  got:  " << got.str() << "\n  want: " << want.str();
    }
  }
  return bad;
}

TEST(TokenizerGolden, HasAllRows) {
  ASSERT_EQ(golden_rows().size(), 352u);
  size_t pairs = 0;
  for (const auto& r : golden_rows()) pairs += r.text_pair.has_value();
  EXPECT_EQ(pairs, 30u);
}

TEST(TokenizerGolden, TokenizerJsonMatchesEveryRow) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir() + "/tokenizer.json");
  EXPECT_EQ(count_mismatches(tok, "tokenizer.json"), 0u);
}

TEST(TokenizerGolden, VocabTxtMatchesEveryRow) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir() + "/vocab.txt");
  EXPECT_EQ(count_mismatches(tok, "vocab.txt"), 0u);
}

TEST(TokenizerGolden, DirectoryPrefersTokenizerJson) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir());
  EXPECT_NE(tok.source().find("tokenizer.json"), std::string::npos);
  EXPECT_EQ(count_mismatches(tok, "directory"), 0u);
}

TEST(TokenizerGolden, BothLoadPathsAgreeOnConfiguration) {
  const Tokenizer a = Tokenizer::load(test::bert_vocab_dir() + "/tokenizer.json");
  const Tokenizer b = Tokenizer::load(test::bert_vocab_dir() + "/vocab.txt");
  ASSERT_EQ(a.vocab_size(), 30522u);
  ASSERT_EQ(b.vocab_size(), 30522u);
  for (const Tokenizer* t : {&a, &b}) {
    EXPECT_EQ(t->cls_id(), 101);
    EXPECT_EQ(t->sep_id(), 102);
    EXPECT_EQ(t->pad_id(), 0);
    EXPECT_EQ(t->mask_id(), 103);
    EXPECT_EQ(t->unk_id(), 100);
    EXPECT_TRUE(t->config().lowercase);
    EXPECT_FALSE(t->config().strip_accents.has_value());
    EXPECT_EQ(t->config().model_max_length, 0u);  // the file says 1e30: unbounded
    EXPECT_EQ(t->num_special_tokens_to_add(false), 2u);
    EXPECT_EQ(t->num_special_tokens_to_add(true), 3u);
  }
  for (int32_t id = 0; id < 30522; id += 997) EXPECT_EQ(a.id_to_token(id), b.id_to_token(id));
}

// Offsets are monotonic, inside the text, non-empty for text tokens and (0,0) for special ones.
TEST(TokenizerGolden, OffsetsAreConsistentOnEveryRow) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir());
  for (const GoldenRow& r : golden_rows()) {
    const Encoding e = encode_row(tok, r);
    ASSERT_EQ(e.offsets.size(), e.size());
    size_t prev_begin[2] = {0, 0};
    for (size_t i = 0; i < e.size(); ++i) {
      const int seq = e.sequence_ids[i];
      if (seq < 0) {
        EXPECT_EQ(e.offsets[i], std::make_pair(size_t{0}, size_t{0})) << "row " << r.id;
        EXPECT_EQ(e.special_tokens_mask[i], 1);
        continue;
      }
      const std::string& src = seq == 0 ? r.text : *r.text_pair;
      size_t n_cp = 0;
      for (unsigned char ch : src) n_cp += (ch & 0xC0) != 0x80;
      EXPECT_LT(e.offsets[i].first, e.offsets[i].second) << "row " << r.id << " token " << i;
      EXPECT_LE(e.offsets[i].second, n_cp) << "row " << r.id << " token " << i;
      EXPECT_GE(e.offsets[i].first, prev_begin[seq]) << "row " << r.id << " token " << i;
      prev_begin[seq] = e.offsets[i].first;
    }
  }
}

TEST(TokenizerGolden, SaveAndReloadGivesAnIdenticalTokenizer) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir());
  test::TempDir dir1, dir2;
  tok.save(dir1.path().string());
  for (const char* f : {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir1.path() / f)) << f;
  }
  // vocab.txt is written byte for byte as Hugging Face has it.
  EXPECT_EQ(test::read_file(dir1.file("vocab.txt")), test::read_file(test::bert_vocab_dir() + "/vocab.txt"));
  const Tokenizer from_json = Tokenizer::load(dir1.path().string());
  const Tokenizer from_vocab = Tokenizer::load(dir1.file("vocab.txt"));
  EXPECT_EQ(count_mismatches(from_json, "reloaded tokenizer.json"), 0u);
  EXPECT_EQ(count_mismatches(from_vocab, "reloaded vocab.txt"), 0u);
  from_json.save(dir2.path().string());
  for (const char* f : {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_EQ(test::read_file(dir1.file(f)), test::read_file(dir2.file(f))) << f;
  }
  // Nothing but the four files: the temporary names were renamed away.
  size_t n_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir1.path())) n_files += entry.is_regular_file();
  EXPECT_EQ(n_files, 4u);
}

TEST(TokenizerGolden, BatchEncodingEqualsOneByOne) {
  const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir());
  std::vector<std::string> singles;
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const GoldenRow& r : golden_rows()) {
    if (r.text_pair) {
      pairs.emplace_back(r.text, *r.text_pair);
    } else {
      singles.push_back(r.text);
    }
  }
  for (size_t threads : {size_t{0}, size_t{1}, size_t{3}}) {
    const auto batch = tok.encode_batch(singles, {}, threads);
    ASSERT_EQ(batch.size(), singles.size());
    for (size_t i = 0; i < singles.size(); ++i) {
      const Encoding one = tok.encode(singles[i]);
      EXPECT_EQ(batch[i].ids, one.ids) << i;
      EXPECT_EQ(batch[i].offsets, one.offsets) << i;
      EXPECT_EQ(batch[i].word_ids, one.word_ids) << i;
    }
    const auto pbatch = tok.encode_pair_batch(pairs, {}, threads);
    ASSERT_EQ(pbatch.size(), pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      const Encoding one = tok.encode_pair(pairs[i].first, pairs[i].second);
      EXPECT_EQ(pbatch[i].ids, one.ids) << i;
      EXPECT_EQ(pbatch[i].type_ids, one.type_ids) << i;
    }
  }
  // encode_ids (the corpus fast path) agrees with encode.
  for (const auto& s : singles) EXPECT_EQ(tok.encode_ids(s, true), tok.encode(s).ids) << s;
}

}  // namespace
}  // namespace retort
