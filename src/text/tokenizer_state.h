// Internals of retort::Tokenizer shared by the src/text/*.cpp files: the vocabulary with its
// allocation-free lookups, the added-token matcher, the immutable tokenizer state, and the per-
// sequence tokenization (normalize, pre-tokenize, WordPiece) that encode() post-processes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "retort/tokenizer.h"
#include "text/unicode.h"

namespace retort::text {

// Token strings by id, and hash maps from string_view (into the owned strings) to id, so lookups of
// substrings allocate nothing. Not copyable: the views point into this object's strings.
class Vocab {
 public:
  Vocab() = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  // base: the WordPiece vocabulary (ids 0..n-1); prefix: the continuing-subword prefix ("##").
  void build(std::vector<std::string> base, const std::string& prefix);
  // Registers an added token: id < size() aliases an existing id, id == size() appends one.
  void add(const std::string& content, int32_t id);

  // Any token (added tokens win over the WordPiece vocabulary), -1 when absent.
  int32_t find(std::string_view token) const;
  // WordPiece vocabulary only: a word-initial piece, and a continuation given without its prefix.
  int32_t find_piece(std::string_view piece) const;
  int32_t find_continuation(std::string_view suffix) const;
  size_t max_piece_bytes() const { return max_piece_bytes_; }

  const std::string& token(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }
  size_t size() const { return tokens_.size(); }
  size_t base_size() const { return base_size_; }

 private:
  static int32_t lookup(const std::unordered_map<std::string_view, int32_t>& m, std::string_view s) {
    auto it = m.find(s);
    return it == m.end() ? -1 : it->second;
  }
  // deques: appending never moves the strings the maps' views point into (small-string buffers).
  std::deque<std::string> tokens_;
  std::deque<std::string> added_contents_;  // added tokens whose content differs from tokens_[id]
  size_t base_size_ = 0;
  size_t max_piece_bytes_ = 0;
  std::unordered_map<std::string_view, int32_t> all_, pieces_, continuations_;
};

struct AddedMatch {
  size_t begin, end;  // code points, end exclusive, stripped whitespace included
  int32_t id;
};

// Leftmost-longest matching of added tokens in a code-point sequence (HF's AddedVocabulary).
class AddedTokenMatcher {
 public:
  void add(std::vector<char32_t> content, int32_t id, bool lstrip, bool rstrip, bool single_word);
  bool empty() const { return entries_.empty(); }
  // Appends the non-overlapping matches in cps[0, n), in order.
  void find(const char32_t* cps, size_t n, std::vector<AddedMatch>& out) const;

 private:
  struct Entry {
    std::vector<char32_t> content;
    int32_t id;
    bool lstrip, rstrip, single_word;
  };
  std::vector<Entry> entries_;                                   // longest first
  std::unordered_map<char32_t, std::vector<size_t>> by_first_;  // first code point -> entries
};

// A resolved template element: special ids, or a sequence (ids empty).
struct TemplateStep {
  std::vector<int32_t> ids;
  int sequence;
  int32_t type_id;
};

struct TokenizerState {
  TokenizerConfig config;
  std::string source;
  Vocab vocab;
  int32_t unk = -1, cls = -1, sep = -1, pad = -1, mask = -1;
  bool strip = true, lower = true;
  AddedTokenMatcher raw_added, normalized_added;
  std::unordered_set<std::string> never_split;
  std::vector<char> special;  // by id: skipped by decode(skip_special_tokens)
  std::vector<TemplateStep> single, pair;
  size_t n_special_single = 0, n_special_pair = 0;
};

// One sequence, tokenized, before truncation and post-processing.
struct SequenceTokens {
  std::vector<int32_t> ids;
  std::vector<std::pair<size_t, size_t>> offsets;
  std::vector<int32_t> words;
  size_t size() const { return ids.size(); }
  void resize(size_t n) {
    ids.resize(n);
    offsets.resize(n);
    words.resize(n);
  }
};

// Normalizes and pre-tokenizes `text` and runs WordPiece. with_offsets=false fills ids only.
void tokenize_sequence(const TokenizerState& st, std::string_view text, SequenceTokens& out,
                       bool with_offsets = true);

// The normalizer applied to one whitespace-free word: strip accents, then lowercase.
void normalize_word(const TokenizerState& st, const AlignedChar* in, size_t n, std::vector<AlignedChar>& tmp,
                    std::vector<AlignedChar>& out);

}  // namespace retort::text
