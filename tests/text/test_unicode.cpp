// Tests of the Unicode layer under the tokenizer: strict UTF-8 decoding with byte offsets, BERT's
// character classes (including the Rust CJK table and its gap), accent stripping and lowercasing.
#include <gtest/gtest.h>

#include "retort/error.h"
#include "text/unicode.h"

namespace retort::text {
namespace {

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  decode_utf8(s, out);
  return out;
}

std::string error_of(std::string_view s) {
  try {
    decode(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<AlignedChar> aligned(std::u32string_view s) {
  std::vector<AlignedChar> v;
  for (size_t i = 0; i < s.size(); ++i) v.push_back({s[i], static_cast<uint32_t>(i)});
  return v;
}

std::u32string cps(const std::vector<AlignedChar>& v) {
  std::u32string s;
  for (const auto& c : v) s += c.cp;
  return s;
}

TEST(Unicode, DecodesEveryLength) {
  EXPECT_EQ(decode("a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"), (std::vector<char32_t>{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(decode(std::string_view("\0x", 2)), (std::vector<char32_t>{0, U'x'}));
  EXPECT_TRUE(decode("").empty());
  std::string round;
  for (char32_t c : {char32_t{0x7F}, char32_t{0x80}, char32_t{0x7FF}, char32_t{0x800}, char32_t{0xFFFF},
                     char32_t{0x10000}, char32_t{0x10FFFF}}) {
    append_utf8(c, round);
  }
  EXPECT_EQ(decode(round), (std::vector<char32_t>{0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF}));
}

TEST(Unicode, InvalidUtf8NamesTheByteOffset) {
  EXPECT_NE(error_of("abc\xff").find("byte offset 3"), std::string::npos) << error_of("abc\xff");
  EXPECT_NE(error_of("ab\x80").find("byte offset 2"), std::string::npos);          // stray continuation
  EXPECT_NE(error_of("\xe4\xb8").find("byte offset 0"), std::string::npos);        // truncated
  EXPECT_NE(error_of("x\xe4\x41\x41").find("byte offset 2"), std::string::npos);   // bad continuation
  EXPECT_NE(error_of("\xc0\x80").find("byte offset 0"), std::string::npos);        // overlong NUL
  EXPECT_NE(error_of("\xe0\x80\xaf").find("overlong"), std::string::npos);         // overlong '/'
  EXPECT_NE(error_of("\xed\xa0\x80").find("surrogate"), std::string::npos);        // U+D800
  EXPECT_NE(error_of("\xf4\x90\x80\x80").find("above U+10FFFF"), std::string::npos);
  EXPECT_NE(error_of("\xf5\x80\x80\x80").find("byte offset 0"), std::string::npos);
}

TEST(Unicode, WhitespaceFollowsTheWhiteSpaceProperty) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\r', char32_t{0x0B}, char32_t{0x85}, char32_t{0xA0}, char32_t{0x1680},
                     char32_t{0x2003}, char32_t{0x2028}, char32_t{0x2029}, char32_t{0x3000}}) {
    EXPECT_TRUE(is_whitespace(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'a', char32_t{0x1F}, char32_t{0x200B}, char32_t{0x180E}, char32_t{0xFEFF}}) {
    EXPECT_FALSE(is_whitespace(c)) << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(Unicode, ControlIsCcCfCoButNotTabNewlineOrUnassigned) {
  for (char32_t c : {char32_t{0x00}, char32_t{0x07}, char32_t{0x7F}, char32_t{0x85}, char32_t{0xAD},
                     char32_t{0x200B}, char32_t{0xFEFF}, char32_t{0xE000}, char32_t{0xF0000}, char32_t{0xE0001}}) {
    EXPECT_TRUE(is_control(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'\t', U'\n', U'\r', U'a', char32_t{0x378} /* Cn */, char32_t{0x2028} /* Zl */}) {
    EXPECT_FALSE(is_control(c)) << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(Unicode, PunctuationIncludesAsciiSymbols) {
  for (char32_t c : std::u32string(U"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) EXPECT_TRUE(is_punctuation(c)) << char(c);
  for (char32_t c : {char32_t{0xBF} /* ¿ */, char32_t{0x2014} /* — */, char32_t{0x300C} /* 「 */,
                     char32_t{0xFF01} /* ！ */, char32_t{0x2024} /* ․ */}) {
    EXPECT_TRUE(is_punctuation(c)) << std::hex << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'a', U'0', U' ', char32_t{0x20AC} /* € Sc */, char32_t{0xA9} /* © So */,
                     char32_t{0x2605} /* ★ So */}) {
    EXPECT_FALSE(is_punctuation(c)) << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(Unicode, ChineseCharsFollowTheRustTable) {
  for (char32_t c : {char32_t{0x4E00}, char32_t{0x9FFF}, char32_t{0x3400}, char32_t{0x20000}, char32_t{0x2B81F},
                     char32_t{0x2B920}, char32_t{0x2CEAF}, char32_t{0xF900}, char32_t{0x2FA1F}}) {
    EXPECT_TRUE(is_chinese_char(c)) << std::hex << static_cast<uint32_t>(c);
  }
  // The gap U+2B820-U+2B91F, Ext G (U+30000), kana, hangul and radicals are not split.
  for (char32_t c : {char32_t{0x2B820}, char32_t{0x2B91F}, char32_t{0x30000}, char32_t{0x3042}, char32_t{0xAC00},
                     char32_t{0x2E80}, char32_t{0x33FF}}) {
    EXPECT_FALSE(is_chinese_char(c)) << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(Unicode, StripAccentsDecomposesAndDropsNonspacingMarks) {
  std::vector<AlignedChar> out;
  const auto in = aligned(U"Ångström");
  strip_accents(in.data(), in.size(), out);
  EXPECT_EQ(cps(out), U"Angstrom");
  // Each output char remembers its origin: 'A' from 0, 'o' from 5.
  EXPECT_EQ(out[0].orig, 0u);
  EXPECT_EQ(out[5].orig, 5u);
  // Hangul decomposes algorithmically into conjoining jamo, all from the one syllable.
  out.clear();
  const auto han = aligned(U"\uD55C");
  strip_accents(han.data(), han.size(), out);
  EXPECT_EQ(cps(out), U"\u1112\u1161\u11AB");
  EXPECT_EQ(out[2].orig, 0u);
  // Compatibility characters are untouched (NFD, not NFKD); ≠ loses its combining overlay.
  out.clear();
  const auto misc = aligned(U"\uFB01\u2460\u2260\u212B");
  strip_accents(misc.data(), misc.size(), out);
  EXPECT_EQ(cps(out), U"\uFB01\u2460=A");
}

TEST(Unicode, LowercaseIsPerCodePoint) {
  std::vector<AlignedChar> out;
  const auto in = aligned(U"ΣΑΣ ÀZ\u1E9E\u0130");
  lowercase(in.data(), in.size(), out);
  // Final sigma is σ, not ς; ẞ -> ß; İ -> i + U+0307 (both from index 7).
  EXPECT_EQ(cps(out), U"σασ àzß\u0069\u0307");
  ASSERT_EQ(out.size(), 9u);
  EXPECT_EQ(out[7].orig, 7u);
  EXPECT_EQ(out[8].orig, 7u);
}

}  // namespace
}  // namespace retort::text
