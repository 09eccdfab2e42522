// Unicode helpers for the BERT tokenizer: strict UTF-8 decoding (errors name the byte offset),
// the character classes BERT uses (whitespace, control, punctuation, CJK ideograph), canonical
// decomposition with accent stripping, and per-code-point lowercasing. Backed by utf8proc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retort::text {

// A normalized code point and the index of the code point of the original text it came from.
// Several normalized characters may share one origin (NFD, lowercase expansions); characters removed
// by normalization leave no entry, exactly as the Rust tokenizers' alignments do.
struct AlignedChar {
  char32_t cp;
  uint32_t orig;
};

// Decodes UTF-8 into code points (appended to out). Rejects truncated sequences, stray continuation
// bytes, overlong forms, surrogates and values above U+10FFFF with a retort::Error naming the byte
// offset; `what` names the input in that message (e.g. "text", or a file path).
void decode_utf8(std::string_view s, std::vector<char32_t>& out, std::string_view what = "text");

// Appends the UTF-8 encoding of cp.
void append_utf8(char32_t cp, std::string& out);
std::string to_utf8(const char32_t* cps, size_t n);

// White_Space property, as Rust's char::is_whitespace (\t \n \v \f \r, space, U+0085, Zs, U+2028/9).
bool is_whitespace(char32_t c);
// Cc, Cf and Co, except \t \n \r (which BERT treats as whitespace). Unassigned (Cn) is not control.
bool is_control(char32_t c);
// Unicode punctuation (Pc Pd Ps Pe Pi Pf Po) or ASCII symbols 33-47, 58-64, 91-96, 123-126.
bool is_punctuation(char32_t c);
// The CJK ideograph table of the Rust tokenizers library (note its gap at U+2B820-U+2B91F).
bool is_chinese_char(char32_t c);

// Appends the canonical decomposition (NFD) of `in` to out, in canonical order, dropping
// nonspacing marks (Mn): BERT's strip_accents. Each output character keeps its origin.
void strip_accents(const AlignedChar* in, size_t n, std::vector<AlignedChar>& out);

// Lowercases per code point with the full (unconditional) Unicode mapping, as Rust's
// char::to_lowercase: U+0130 becomes "i\u0307"; final sigma is not context-dependent (σ).
void lowercase(const AlignedChar* in, size_t n, std::vector<AlignedChar>& out);

}  // namespace retort::text
