// TinyBERT's data augmentation: word spans (UTF-8 included), masked-LM candidates that are whole
// words and never the word itself, GloVe neighbours for multi-piece words, the replacement probability
// at its extremes, seeding, and whole GLUE files (single sentences and pairs) that read back with
// the task's reader, labels kept.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "retort/augment.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/tasks.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = test::temp_path("augment");

class Augment : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
    const Tokenizer tok = test::bert_vocab();
    test::save_tiny_model(kRoot / "mlm", tok, test::tiny_config(tok, 1, 64), 17);
    // "xylophonist" is several WordPieces in bert-base-uncased; its neighbours by cosine are
    // drummer (0.99), pianist (0.8), then violinist; "table" points elsewhere.
    std::ofstream g(kRoot / "glove.txt");
    g << "xylophonist 1 0 0\npianist 0.8 0.6 0\ndrummer 0.99 0.1 0\nviolinist 0.5 0.5 0.7\ntable 0 0 -1\n";
  }
  static AugmentOptions options() {
    AugmentOptions o;
    o.top_k = 5;
    o.max_seq_length = 64;
    return o;
  }
};

TEST_F(Augment, WordsHaveByteSpansAndWholeWordCandidates) {
  AugmentOptions o = options();
  o.word_vectors = (kRoot / "glove.txt").string();
  Augmenter aug((kRoot / "mlm").string(), o);
  const std::string text = "The café, said the xylophonist!";
  const auto ws = aug.words(text);
  std::vector<std::string> texts;
  for (const auto& w : ws) {
    texts.push_back(w.text);
    EXPECT_EQ(text.substr(w.begin, w.end - w.begin), w.text);
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"The", "café", ",", "said", "the", "xylophonist", "!"}));
  ASSERT_EQ(aug.tokenizer().tokenize("xylophonist").size() > 1, true);
  for (const auto& w : ws) {
    if (w.text == "," || w.text == "!") {
      EXPECT_TRUE(w.candidates.empty()) << w.text;
      continue;
    }
    if (w.text == "xylophonist") {
      EXPECT_EQ(w.candidates, (std::vector<std::string>{"drummer", "pianist", "violinist", "table"}));
      continue;
    }
    if (aug.tokenizer().tokenize(w.text).size() != 1) continue;
    ASSERT_EQ(w.candidates.size(), 5u) << w.text;
    std::string lower = w.text;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& c : w.candidates) {
      EXPECT_NE(c, lower);
      EXPECT_NE(c.rfind("##", 0), 0u) << c;
      EXPECT_FALSE(c.front() == '[' && c.back() == ']') << c;
    }
  }
  // Without word vectors a multi-piece word is kept.
  Augmenter plain((kRoot / "mlm").string(), options());
  for (const auto& w : plain.words(text)) {
    if (w.text == "xylophonist") {
      EXPECT_TRUE(w.candidates.empty());
    }
  }
}

TEST_F(Augment, ReplacementProbabilityAndSeed) {
  AugmentOptions o = options();
  o.replace_prob = 0.0;
  Augmenter never((kRoot / "mlm").string(), o);
  std::mt19937_64 rng(1);
  const std::string text = "a gripping story told with great warmth and humour";
  EXPECT_TRUE(never.augment(text, 10, rng).empty());  // every copy is the original: dropped

  o.replace_prob = 1.0;
  Augmenter always((kRoot / "mlm").string(), o);
  const auto ws = always.words(text);
  for (const auto& copy : always.augment(text, 5, rng)) {
    // Every word with candidates was replaced by one of them: rebuild the copy word by word.
    std::string expect_prefix;
    size_t pos = 0, cursor = 0;
    for (const auto& w : ws) {
      ASSERT_FALSE(w.candidates.empty()) << w.text;
      const std::string gap = text.substr(cursor, w.begin - cursor);
      ASSERT_EQ(copy.compare(pos, gap.size(), gap), 0);
      pos += gap.size();
      bool matched = false;
      for (const auto& c : w.candidates) {
        if (copy.compare(pos, c.size(), c) == 0 && (pos + c.size() == copy.size() || copy[pos + c.size()] == ' ')) {
          pos += c.size();
          matched = true;
          break;
        }
      }
      ASSERT_TRUE(matched) << copy << " at " << pos;
      cursor = w.end;
    }
    EXPECT_EQ(pos, copy.size());
  }

  o.replace_prob = 0.4;
  Augmenter some((kRoot / "mlm").string(), o);
  std::mt19937_64 a(7), b(7), c(8);
  const auto first = some.augment(text, 8, a);
  EXPECT_EQ(first, some.augment(text, 8, b));  // seeded
  EXPECT_NE(first, some.augment(text, 8, c));
  EXPECT_GE(first.size(), 6u);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), first.size());  // distinct
}

TEST_F(Augment, GlueFilesKeepTheirFormatAndLabels) {
  fs::create_directories(kRoot / "glue/SST-2");
  fs::create_directories(kRoot / "glue/MRPC");
  auto head = [](const std::string& from, const fs::path& to, int n) {
    std::ifstream in(from);
    std::ofstream out(to);
    std::string line;
    for (int i = 0; i <= n && std::getline(in, line); ++i) out << line << "\n";
  };
  head(test::shared_path("data/glue/SST-2/train.tsv"), kRoot / "glue/SST-2/train.tsv", 6);
  head(test::shared_path("data/glue/MRPC/train.tsv"), kRoot / "glue/MRPC/train.tsv", 3);
  AugmentOptions o = options();
  o.copies = 3;
  const auto r = augment_task("sst2", (kRoot / "glue").string(), (kRoot / "mlm").string(),
                              (kRoot / "out/SST-2/train.tsv").string(), o);
  EXPECT_EQ(r.examples, 6);
  const auto rows = read_glue_tsv(task_spec("sst2"), (kRoot / "out/SST-2/train.tsv").string());
  ASSERT_EQ(static_cast<int64_t>(rows.size()), r.written);
  EXPECT_GT(r.written, 6 + 6);  // most sentences give several distinct copies
  const auto orig = read_glue_tsv(task_spec("sst2"), (kRoot / "glue/SST-2/train.tsv").string());
  size_t k = 0;
  for (const auto& o_row : orig) {  // each original row, then its copies with the same label
    ASSERT_LT(k, rows.size());
    EXPECT_EQ(rows[k].text_a, o_row.text_a);
    for (++k; k < rows.size() && std::find_if(orig.begin(), orig.end(), [&](const TaskExample& e) {
                                   return e.text_a == rows[k].text_a;
                                 }) == orig.end();
         ++k) {
      EXPECT_EQ(rows[k].label, o_row.label);
    }
  }
  EXPECT_EQ(k, rows.size());

  // Sentence pairs: each copy rewrites one sentence and keeps the other.
  const auto rp = augment_task("mrpc", (kRoot / "glue").string(), (kRoot / "mlm").string(),
                               (kRoot / "out/MRPC/train.tsv").string(), o);
  const auto pairs = read_glue_tsv(task_spec("mrpc"), (kRoot / "out/MRPC/train.tsv").string());
  const auto orig_pairs = read_glue_tsv(task_spec("mrpc"), (kRoot / "glue/MRPC/train.tsv").string());
  ASSERT_EQ(static_cast<int64_t>(pairs.size()), rp.written);
  EXPECT_GT(rp.written, 3 * 4);
  for (const auto& p : pairs) {
    const bool keeps = std::any_of(orig_pairs.begin(), orig_pairs.end(), [&](const TaskExample& e) {
      return (e.text_a == p.text_a || e.text_b == p.text_b) && e.label == p.label;
    });
    EXPECT_TRUE(keeps) << p.text_a << " | " << p.text_b;
  }
  // The same seed writes the same file.
  augment_task("mrpc", (kRoot / "glue").string(), (kRoot / "mlm").string(), (kRoot / "again.tsv").string(), o);
  EXPECT_EQ(read_file((kRoot / "again.tsv").string()), read_file((kRoot / "out/MRPC/train.tsv").string()));
}

TEST_F(Augment, BadInputsAreClearErrors) {
  {
    std::ofstream g(kRoot / "bad.txt");
    g << "one 1 2 3\ntwo 1 2\n";
  }
  try {
    WordVectors::load((kRoot / "bad.txt").string());
    ADD_FAILURE() << "rows of different sizes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(WordVectors::load((kRoot / "missing.txt").string()), Error);
  EXPECT_THROW(augment_task("squad", (kRoot / "glue").string(), (kRoot / "mlm").string(), (kRoot / "x.tsv").string(),
                            options()),
               Error);
  AugmentOptions o = options();
  o.replace_prob = 1.5;
  EXPECT_THROW(Augmenter((kRoot / "mlm").string(), o), Error);
  EXPECT_EQ(default_augment_copies("rte"), 30);
  EXPECT_EQ(default_augment_copies("qqp"), 10);
  EXPECT_EQ(default_augment_copies("sst2"), 20);
}

}  // namespace
}  // namespace retort
