// Unit tests of retort::Tokenizer with hand-computed expectations: cased and uncased tiny
// vocabularies written to temporary files, never_split, max_input_chars_per_word, added tokens,
// truncation strategies, padding, decoding, offsets into the original text, and encoding errors.
// The golden comparison against Hugging Face is in test_tokenizer_golden.cpp.
#include <gtest/gtest.h>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text/unicode.h"
#include "text_test_util.h"

namespace retort {
namespace {

using Offsets = std::vector<std::pair<size_t, size_t>>;
using Strings = std::vector<std::string>;

// Ids are the positions in this list.
Strings tiny_vocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a",    "b",   "c",    "d",     "e",      "f",
          "g",     "h",     "hello", "Hello", "world",  "café", "Café", "Cafe", "cafe", "i",     "##\u0307", ",",
          "!",     ".",     "un",    "##able", "##ing", "C++",  "+",    "ж",    "##ж",  "abc",   "##de",   "##f",
          "##e",   "'",     "t",     "s",     "can",   "run",  "##n"};
}

std::string join_lines(const Strings& v) {
  std::string s;
  for (const auto& t : v) s += t + "\n";
  return s;
}

// Writes vocab.txt (and tokenizer_config.json when given) to dir and loads vocab.txt.
Tokenizer tiny_from_files(const test::TempDir& dir, const std::string& config_json = "") {
  test::write_file(dir.file("vocab.txt"), join_lines(tiny_vocab()));
  if (!config_json.empty()) test::write_file(dir.file("tokenizer_config.json"), config_json);
  return Tokenizer::load(dir.file("vocab.txt"));
}

Tokenizer tiny(TokenizerConfig c = {}) { return Tokenizer(tiny_vocab(), std::move(c), "tiny"); }

const Tokenizer& bert() {
  static const Tokenizer tok = Tokenizer::load(test::bert_vocab_dir());
  return tok;
}

// The original text's code points [begin, end), re-encoded.
std::string slice(const std::string& text, std::pair<size_t, size_t> range) {
  std::vector<char32_t> cps;
  text::decode_utf8(text, cps);
  return text::to_utf8(cps.data() + range.first, range.second - range.first);
}

// ---- normalization options --------------------------------------------------------------------

TEST(Tokenizer, CasedVocabularyKeepsCaseAndAccents) {
  test::TempDir dir;
  const Tokenizer tok = tiny_from_files(dir, R"({"do_lower_case": false})");
  EXPECT_FALSE(tok.config().lowercase);
  EXPECT_FALSE(tok.config().strip_accents_enabled());  // strip_accents unset follows lowercase
  EXPECT_EQ(tok.tokenize("Hello Café hello"), (Strings{"Hello", "Café", "hello"}));
  EXPECT_EQ(tok.tokenize("HELLO Cafe"), (Strings{"[UNK]", "Cafe"}));
}

TEST(Tokenizer, CasedVocabularyWithStripAccents) {
  test::TempDir dir;
  const Tokenizer tok = tiny_from_files(dir, R"({"do_lower_case": false, "strip_accents": true})");
  EXPECT_EQ(tok.tokenize("Café café"), (Strings{"Cafe", "cafe"}));
}

TEST(Tokenizer, LowercaseWithoutStripAccentsKeepsAccents) {
  TokenizerConfig c;
  c.strip_accents = false;
  const Tokenizer tok = tiny(c);
  EXPECT_EQ(tok.tokenize("CAFÉ Café"), (Strings{"café", "café"}));
  // İ lowercases to i + U+0307 (the combining dot survives without accent stripping).
  EXPECT_EQ(tok.tokenize("\u0130"), (Strings{"i", "##\u0307"}));
  // With stripping (the default for lowercase), both reduce to plain letters.
  EXPECT_EQ(tiny().tokenize("CAFÉ \u0130"), (Strings{"cafe", "i"}));
}

TEST(Tokenizer, NeverSplitKeepsWholeWordsUnnormalized) {
  test::TempDir dir;
  const Tokenizer tok = tiny_from_files(dir, R"({"never_split": ["C++", "Hello!"]})");
  EXPECT_EQ(tok.tokenize("a C++ b"), (Strings{"a", "C++", "b"}));
  EXPECT_EQ(tok.encode_ids("a C++ b"), (std::vector<int32_t>{5, 28, 6}));
  EXPECT_EQ(tok.tokenize("a Hello! b"), (Strings{"a", "[UNK]", "b"}));  // kept whole, not in vocab
  EXPECT_EQ(tok.tokenize("C++."), (Strings{"c", "+", "+", "."}));       // only whole words
  EXPECT_EQ(tiny().tokenize("a C++ b"), (Strings{"a", "c", "+", "+", "b"}));
}

TEST(Tokenizer, WordPieceIsGreedyLongestMatchFirst) {
  const Tokenizer tok = tiny();
  EXPECT_EQ(tok.tokenize("unable running abcdef"), (Strings{"un", "##able", "run", "##n", "##ing", "abc", "##de", "##f"}));
  EXPECT_EQ(tok.tokenize("abx"), (Strings{"[UNK]"}));  // "a" matches, "##bx" cannot: whole word unknown
  EXPECT_EQ(tok.tokenize("abx, a"), (Strings{"[UNK]", ",", "a"}));
}

TEST(Tokenizer, MaxInputCharsPerWordCountsNormalizedCodePoints) {
  TokenizerConfig c;
  c.max_input_chars_per_word = 5;
  const Tokenizer tok = tiny(c);
  EXPECT_EQ(tok.tokenize("abcde"), (Strings{"abc", "##de"}));
  EXPECT_EQ(tok.tokenize("abcdef"), (Strings{"[UNK]"}));
  EXPECT_EQ(tok.tokenize("жжжжж"), (Strings{"ж", "##ж", "##ж", "##ж", "##ж"}));  // 10 bytes, 5 chars
  EXPECT_EQ(tok.tokenize("жжжжжж"), (Strings{"[UNK]"}));
  // 10 code points in, 5 after accent stripping.
  EXPECT_EQ(tok.tokenize("e\u0301e\u0301e\u0301e\u0301e\u0301"), (Strings{"e", "##e", "##e", "##e", "##e"}));
}

// ---- added tokens -----------------------------------------------------------------------------

TEST(Tokenizer, NormalizedAddedTokenExtendsTheVocabulary) {
  TokenizerConfig c;
  c.added_tokens.push_back({"[E1]", 42, /*special=*/false, /*normalized=*/true});
  const Tokenizer tok = tiny(c);
  EXPECT_EQ(tok.vocab_size(), 43u);
  EXPECT_EQ(tok.token_to_id("[E1]"), 42);
  EXPECT_EQ(tok.tokenize("a [E1] b a[e1]b"), (Strings{"a", "[E1]", "b", "a", "[E1]", "b"}));
  const Encoding e = tok.encode("a [E1] b");
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 1}, {2, 6}, {7, 8}, {0, 0}}));
  EXPECT_EQ(tok.decode(e.ids), "a [E1] b");  // not special: kept by decode
}

TEST(Tokenizer, VocabularySpecialTokensAreAlwaysAddedTokens) {
  // Built in memory with no added tokens listed: the five special tokens still match whole.
  const Tokenizer tok = tiny();
  EXPECT_EQ(tok.tokenize("a [MASK]b [SEP] [mask]"), (Strings{"a", "[MASK]", "b", "[SEP]", "[UNK]", "[UNK]", "[UNK]"}));
  ASSERT_EQ(tok.config().added_tokens.size(), 5u);
  EXPECT_EQ(tok.config().added_tokens[0].content, "[PAD]");
  EXPECT_TRUE(tok.config().added_tokens[4].special);
  EXPECT_FALSE(tok.config().added_tokens[4].normalized);
}

TEST(Tokenizer, SpecialTokensMatchInRawTextWithStripOptions) {
  TokenizerConfig c;
  c.added_tokens.push_back({"[MASK]", 4, true, false, /*lstrip=*/true});
  const Tokenizer tok = tiny(c);
  const Encoding e = tok.encode("a [MASK] b");
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "[MASK]", "b", "[SEP]"}));
  EXPECT_EQ(e.offsets[2], std::make_pair(size_t{1}, size_t{8}));  // the stripped space is included
  EXPECT_EQ(e.special_tokens_mask, (std::vector<int32_t>{1, 0, 0, 0, 1}));
}

// ---- truncation -------------------------------------------------------------------------------

EncodeOptions truncate_to(size_t n, Truncation t = Truncation::LongestFirst) {
  EncodeOptions o;
  o.max_length = n;
  o.truncation = t;
  return o;
}

TEST(Tokenizer, LongestFirstFollowsTheRustLibrary) {
  const Tokenizer tok = tiny();
  // 4 + 4 tokens into 7 (+3 special): the tie gives the extra token to the second sequence.
  Encoding e = tok.encode_pair("a b c d", "e f g h", truncate_to(10));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "c", "[SEP]", "e", "f", "g", "h", "[SEP]"}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}));
  // 8 + 2 -> 5 + 2; 2 + 8 -> 2 + 5; 8 + 8 -> 3 + 4.
  e = tok.encode_pair("a b c d e f g h", "a b", truncate_to(10));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "c", "d", "e", "[SEP]", "a", "b", "[SEP]"}));
  e = tok.encode_pair("a b", "a b c d e f g h", truncate_to(10));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "[SEP]", "a", "b", "c", "d", "e", "[SEP]"}));
  e = tok.encode_pair("a b c d e f g h", "a b c d e f g h", truncate_to(10));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "c", "[SEP]", "a", "b", "c", "d", "[SEP]"}));
  // A single text keeps max_length - 2 tokens.
  e = tok.encode("a b c d e", truncate_to(5));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "c", "[SEP]"}));
  // Short enough: untouched. Exactly the special tokens: both sequences emptied.
  EXPECT_EQ(tok.encode("a b", truncate_to(5)).size(), 4u);
  EXPECT_EQ(tok.encode_pair("a b", "c", truncate_to(3)).tokens, (Strings{"[CLS]", "[SEP]", "[SEP]"}));
  // Without special tokens the whole budget goes to the text.
  EncodeOptions raw = truncate_to(3);
  raw.add_special_tokens = false;
  EXPECT_EQ(tok.encode("a b c d e", raw).tokens, (Strings{"a", "b", "c"}));
}

TEST(Tokenizer, OnlyFirstAndOnlySecond) {
  const Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode_pair("a b c d", "e f", truncate_to(7, Truncation::OnlyFirst)).tokens,
            (Strings{"[CLS]", "a", "b", "[SEP]", "e", "f", "[SEP]"}));
  EXPECT_EQ(tok.encode_pair("a b", "e f g h", truncate_to(7, Truncation::OnlySecond)).tokens,
            (Strings{"[CLS]", "a", "b", "[SEP]", "e", "f", "[SEP]"}));
  EXPECT_ERROR_CONTAINS(tok.encode_pair("a b c d", "e f", truncate_to(7, Truncation::OnlySecond)), "only_second",
                        "cannot remove 2 tokens from a sequence of 2");
  EXPECT_ERROR_CONTAINS(tok.encode("a b c d", truncate_to(4, Truncation::OnlySecond)), "needs a text pair");
  EXPECT_EQ(tok.encode("a b", truncate_to(4, Truncation::OnlySecond)).size(), 4u);  // nothing to cut
  EXPECT_ERROR_CONTAINS(tok.encode_pair("a", "b", truncate_to(2)), "max_length 2", "3 special tokens");
  EXPECT_EQ(tok.encode("a b c d e f", truncate_to(4, Truncation::None)).size(), 8u);
}

// ---- padding ----------------------------------------------------------------------------------

TEST(Tokenizer, PaddingToMaxLength) {
  const Tokenizer tok = tiny();
  EncodeOptions o;
  o.max_length = 6;
  o.padding = Padding::MaxLength;
  const Encoding e = tok.encode("a b", o);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{2, 5, 6, 3, 0, 0}));
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "b", "[SEP]", "[PAD]", "[PAD]"}));
  EXPECT_EQ(e.attention_mask, (std::vector<int32_t>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(e.special_tokens_mask, (std::vector<int32_t>{1, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 1}, {2, 3}, {0, 0}, {0, 0}, {0, 0}}));
  EXPECT_EQ(e.sequence_ids, (std::vector<int>{-1, 0, 0, -1, -1, -1}));
  EXPECT_EQ(e.word_ids, (std::vector<int>{-1, 0, 1, -1, -1, -1}));
  o.max_length = 7;
  EXPECT_EQ(tok.encode_pair("a", "b", o).type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1, 0, 0}));
  o.max_length = 4;  // truncation comes first, then there is nothing to pad
  EXPECT_EQ(tok.encode("a b c d e f", o).tokens, (Strings{"[CLS]", "a", "b", "[SEP]"}));
  o.max_length = 0;
  EXPECT_ERROR_CONTAINS(tok.encode("a", o), "max_length");
}

TEST(Tokenizer, PaddingToLongestInBatch) {
  const Tokenizer tok = tiny();
  EncodeOptions o;
  o.padding = Padding::Longest;
  const auto batch = tok.encode_batch({"a", "a b c", ""}, o, 2);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].ids, (std::vector<int32_t>{2, 5, 3, 0, 0}));
  EXPECT_EQ(batch[1].ids, (std::vector<int32_t>{2, 5, 6, 7, 3}));
  EXPECT_EQ(batch[2].ids, (std::vector<int32_t>{2, 3, 0, 0, 0}));
  EXPECT_EQ(batch[2].attention_mask, (std::vector<int32_t>{1, 1, 0, 0, 0}));
  EXPECT_EQ(tok.encode("a", o).size(), 3u);  // a single encoding is its own longest
}

TEST(Tokenizer, PaddingWithoutPadTokenFails) {
  Strings v = tiny_vocab();
  v[0] = "<pad>";
  const Tokenizer tok(v, {}, "nopad");
  EXPECT_ERROR_CONTAINS(tok.pad_id(), "nopad", "[PAD]");
  EncodeOptions o;
  o.max_length = 5;
  o.padding = Padding::MaxLength;
  EXPECT_ERROR_CONTAINS(tok.encode("a", o), "pad token", "[PAD]");
}

// ---- decode -----------------------------------------------------------------------------------

TEST(Tokenizer, DecodeMergesPiecesAndCleansSpaces) {
  const Tokenizer& tok = bert();
  EXPECT_EQ(tok.decode(tok.encode("Hello, world! I can't believe it's 5th.").ids),
            "hello, world! i can't believe it's 5th.");
  EXPECT_EQ(tok.decode(tok.encode("Tokenization splits text?").ids), "tokenization splits text?");
  EXPECT_EQ(tok.decode(tok.encode("hello").ids, /*skip_special_tokens=*/false), "[CLS] hello [SEP]");
  EXPECT_EQ(tok.decode(tok.encode_pair("hello", "big world").ids), "hello big world");
  const int32_t ing = *tok.token_to_id("##ing"), s = *tok.token_to_id("##s"), hello = *tok.token_to_id("hello");
  EXPECT_EQ(tok.decode({ing, s}), "##ings");  // a leading continuation keeps its prefix
  EXPECT_EQ(tok.decode({tok.unk_id(), hello}), "hello");
  EXPECT_EQ(tok.decode({tok.unk_id(), hello}, false), "[UNK] hello");
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_ERROR_CONTAINS(tok.decode({hello, 30522}), "id 30522");
  TokenizerConfig c;
  c.clean_up_tokenization_spaces = false;
  const Tokenizer raw = tiny(c);
  EXPECT_EQ(raw.decode(raw.encode("hello, world!").ids), "hello , world !");
  EXPECT_EQ(raw.decode(raw.encode("can't").ids), "can ' t");
  EXPECT_EQ(tiny().decode(tiny().encode("can't").ids), "can't");
}

// ---- offsets ----------------------------------------------------------------------------------

TEST(Tokenizer, OffsetsPointIntoTheOriginalText) {
  const Tokenizer& tok = bert();
  const std::string text = "  héllo wörld";
  Encoding e = tok.encode(text);
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {2, 7}, {8, 13}, {0, 0}}));
  EXPECT_EQ(slice(text, e.offsets[1]), "héllo");
  EXPECT_EQ(slice(text, e.offsets[2]), "wörld");

  const std::string decomposed = "he\u0301llo";  // 6 code points, the accent is removed
  e = tok.encode(decomposed);
  EXPECT_EQ(e.offsets[1], std::make_pair(size_t{0}, size_t{6}));

  e = tok.encode("hello世界world");
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "hello", "世", "[UNK]", "world", "[SEP]"}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 5}, {5, 6}, {6, 7}, {7, 12}, {0, 0}}));
  EXPECT_EQ(e.word_ids, (std::vector<int>{-1, 0, 1, 2, 3, -1}));

  e = tok.encode("unbelievably, Ångström");
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "un", "##bel", "##ie", "##va", "##bly", ",", "ang", "##strom", "[SEP]"}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 2}, {2, 5}, {5, 7}, {7, 9}, {9, 12}, {12, 13}, {14, 17}, {17, 22}, {0, 0}}));
  EXPECT_EQ(e.word_ids, (std::vector<int>{-1, 0, 0, 0, 0, 0, 1, 2, 2, -1}));
  EXPECT_EQ(slice("unbelievably, Ångström", e.offsets[7]), "Ång");

  // Removed controls and BOM leave the neighbours' offsets on the original positions.
  const std::string controls = std::string("a\0b\x01" "c\x02" "d", 7);
  e = tok.encode(controls);
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "abc", "##d", "[SEP]"}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 5}, {6, 7}, {0, 0}}));
  e = tok.encode("\ufeffBOM");
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {1, 3}, {3, 4}, {0, 0}}));

  // Hangul syllables decompose into jamo tokens that all point at their syllable.
  e = tok.encode("안녕");
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 1}, {0, 1}, {0, 1}, {1, 2}, {1, 2}, {1, 2}, {0, 0}}));
  e = tok.encode("İstanbul");
  EXPECT_EQ(e.offsets[1], std::make_pair(size_t{0}, size_t{8}));
}

TEST(Tokenizer, SpecialTokensInTextAndPairs) {
  const Tokenizer& tok = bert();
  const std::string text = "Paris is the [MASK].";
  Encoding e = tok.encode(text);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{101, 3000, 2003, 1996, 103, 1012, 102}));
  EXPECT_EQ(e.offsets[4], std::make_pair(size_t{13}, size_t{19}));
  EXPECT_EQ(e.word_ids, (std::vector<int>{-1, 0, 1, 2, 3, 4, -1}));
  EXPECT_EQ(e.special_tokens_mask, (std::vector<int32_t>{1, 0, 0, 0, 0, 0, 1}));  // as HF: only the template's

  e = tok.encode_pair("hello", "big world");
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "hello", "[SEP]", "big", "world", "[SEP]"}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.sequence_ids, (std::vector<int>{-1, 0, -1, 1, 1, -1}));
  EXPECT_EQ(e.word_ids, (std::vector<int>{-1, 0, -1, 0, 1, -1}));
  EXPECT_EQ(e.offsets, (Offsets{{0, 0}, {0, 5}, {0, 0}, {0, 3}, {4, 9}, {0, 0}}));

  EncodeOptions raw;
  raw.add_special_tokens = false;
  e = tok.encode_pair("hello", "world", raw);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{7592, 2088}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 1}));
}

TEST(Tokenizer, Accessors) {
  const Tokenizer& tok = bert();
  EXPECT_EQ(tok.token_to_id("hello"), 7592);
  EXPECT_EQ(tok.token_to_id("##ing"), 2075);
  EXPECT_FALSE(tok.token_to_id("notatoken").has_value());
  EXPECT_EQ(tok.id_to_token(7592), "hello");
  EXPECT_ERROR_CONTAINS(tok.id_to_token(-1), "id -1");
  EXPECT_ERROR_CONTAINS(tok.id_to_token(30522), "id 30522");
  EXPECT_TRUE(tok.is_special_id(101));
  EXPECT_TRUE(tok.is_special_id(0));
  EXPECT_FALSE(tok.is_special_id(7592));
  const Tokenizer copy = tok;  // copies share the immutable state
  EXPECT_EQ(copy.encode("hello").ids, tok.encode("hello").ids);
}

// ---- bad input --------------------------------------------------------------------------------

TEST(Tokenizer, InvalidUtf8RaisesWithTheByteOffset) {
  const Tokenizer tok = tiny();
  EXPECT_ERROR_CONTAINS(tok.encode("abc\xff"), "invalid UTF-8", "byte offset 3");
  EXPECT_ERROR_CONTAINS(tok.encode_pair("ok", "\xe4\xb8"), "byte offset 0", "truncated");
  EXPECT_ERROR_CONTAINS(tok.encode_ids("a\xe0\x80\xaf"), "byte offset 1", "overlong");
  EXPECT_ERROR_CONTAINS(tok.encode_batch({"a", "b", "c\xed\xa0\x80", "d"}, {}, 2), "byte offset 1", "surrogate");
}

TEST(Tokenizer, EmptyAndWhitespaceTexts) {
  const Tokenizer tok = tiny();
  EXPECT_EQ(tok.encode("").tokens, (Strings{"[CLS]", "[SEP]"}));
  EXPECT_EQ(tok.encode(" \t\n").tokens, (Strings{"[CLS]", "[SEP]"}));
  const Encoding e = tok.encode_pair("a", "");
  EXPECT_EQ(e.tokens, (Strings{"[CLS]", "a", "[SEP]", "[SEP]"}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 1}));
  EXPECT_TRUE(tok.encode_ids("").empty());
}

}  // namespace
}  // namespace retort
