// Unicode helpers for the BERT tokenizer (see unicode.h): strict UTF-8 decoding, BERT's character
// classes, NFD-with-mark-removal and per-code-point lowercasing, on top of utf8proc's tables.
// ASCII takes a fast path everywhere because it dominates English corpora.
#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>

#include "retort/error.h"

namespace retort::text {

namespace {

[[noreturn]] void bad_utf8(std::string_view what, size_t offset, const char* why, unsigned char byte) {
  static const char* hex = "0123456789abcdef";
  std::string b = "0x";
  b += hex[byte >> 4];
  b += hex[byte & 15];
  fail("invalid UTF-8 in ", what, " at byte offset ", offset, ": ", why, " (byte ", b, ")");
}

utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}

}  // namespace

void decode_utf8(std::string_view s, std::vector<char32_t>& out, std::string_view what) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out.reserve(out.size() + n);
  size_t i = 0;
  while (i < n) {
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    size_t len;
    char32_t cp;
    char32_t min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    } else if (b0 >= 0x80 && b0 <= 0xBF) {
      bad_utf8(what, i, "unexpected continuation byte", b0);
    } else {
      bad_utf8(what, i, "invalid lead byte", b0);
    }
    if (i + len > n) bad_utf8(what, i, "truncated sequence", b0);
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = p[i + k];
      if ((b & 0xC0) != 0x80) bad_utf8(what, i + k, "expected a continuation byte", b);
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min) bad_utf8(what, i, "overlong encoding", b0);
    if (cp >= 0xD800 && cp <= 0xDFFF) bad_utf8(what, i, "encoded surrogate", b0);
    if (cp > 0x10FFFF) bad_utf8(what, i, "code point above U+10FFFF", b0);
    out.push_back(cp);
    i += len;
  }
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(const char32_t* cps, size_t n) {
  std::string s;
  s.reserve(n);
  for (size_t i = 0; i < n; ++i) append_utf8(cps[i], s);
  return s;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
  if (c == 0x85 || c == 0x2028 || c == 0x2029) return true;
  return category(c) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x80) return c < 0x20 || c == 0x7F;
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  }
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void strip_accents(const AlignedChar* in, size_t n, std::vector<AlignedChar>& out) {
  const size_t start = out.size();
  bool any_combining = false;
  utf8proc_int32_t buf[32];
  for (size_t i = 0; i < n; ++i) {
    const AlignedChar ch = in[i];
    if (ch.cp < 0x80) {
      out.push_back(ch);
      continue;
    }
    int boundclass = 0;
    const utf8proc_ssize_t m = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(ch.cp), buf, 32,
                                                       UTF8PROC_DECOMPOSE, &boundclass);
    if (m <= 0 || m > 32) {  // cannot happen for valid scalar values; keep the character as is
      out.push_back(ch);
      continue;
    }
    for (utf8proc_ssize_t k = 0; k < m; ++k) {
      const char32_t d = static_cast<char32_t>(buf[k]);
      out.push_back({d, ch.orig});
      if (d >= 0x300 && utf8proc_get_property(buf[k])->combining_class != 0) any_combining = true;
    }
  }
  // Canonical ordering: stable-sort each run of non-starters by combining class, so the result is
  // true NFD before the marks are dropped (it matters only for non-Mn marks with a class).
  if (any_combining) {
    auto ccc = [](const AlignedChar& a) {
      return a.cp < 0x300 ? 0 : utf8proc_get_property(static_cast<utf8proc_int32_t>(a.cp))->combining_class;
    };
    size_t i = start;
    while (i < out.size()) {
      if (ccc(out[i]) == 0) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < out.size() && ccc(out[j]) != 0) ++j;
      std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                       [&](const AlignedChar& a, const AlignedChar& b) { return ccc(a) < ccc(b); });
      i = j;
    }
  }
  // Drop nonspacing marks in place.
  size_t w = start;
  for (size_t r = start; r < out.size(); ++r) {
    const char32_t c = out[r].cp;
    if (c >= 0x300 && category(c) == UTF8PROC_CATEGORY_MN) continue;
    out[w++] = out[r];
  }
  out.resize(w);
}

void lowercase(const AlignedChar* in, size_t n, std::vector<AlignedChar>& out) {
  for (size_t i = 0; i < n; ++i) {
    const AlignedChar ch = in[i];
    if (ch.cp < 0x80) {
      out.push_back({(ch.cp >= 'A' && ch.cp <= 'Z') ? ch.cp + 32 : ch.cp, ch.orig});
    } else if (ch.cp == 0x130) {
      // The one unconditional multi-character lowercase mapping in SpecialCasing.txt.
      out.push_back({U'i', ch.orig});
      out.push_back({0x307, ch.orig});
    } else {
      out.push_back({static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(ch.cp))), ch.orig});
    }
  }
}

}  // namespace retort::text
