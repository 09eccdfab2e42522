// The WordPiece vocabulary with allocation-free string_view lookups, and the leftmost-longest
// matcher that finds added tokens ([CLS], [MASK], ...) in text before normalization.
#include <algorithm>

#include "retort/error.h"
#include "text/tokenizer_state.h"

namespace retort::text {

void Vocab::build(std::vector<std::string> base, const std::string& prefix) {
  tokens_.clear();
  added_contents_.clear();
  all_.clear();
  pieces_.clear();
  continuations_.clear();
  for (auto& t : base) tokens_.push_back(std::move(t));
  base_size_ = tokens_.size();
  max_piece_bytes_ = 0;
  all_.reserve(base_size_ * 2);
  pieces_.reserve(base_size_ * 2);
  continuations_.reserve(base_size_);
  // Later duplicates win, as in Hugging Face's load_vocab (a dict filled in file order).
  for (size_t i = 0; i < base_size_; ++i) {
    const std::string_view t = tokens_[i];
    const auto id = static_cast<int32_t>(i);
    all_[t] = id;
    pieces_[t] = id;
    max_piece_bytes_ = std::max(max_piece_bytes_, t.size());
    if (!prefix.empty() && t.size() >= prefix.size() && t.compare(0, prefix.size(), prefix) == 0) {
      continuations_[t.substr(prefix.size())] = id;
    }
  }
}

void Vocab::add(const std::string& content, int32_t id) {
  check(id >= 0 && static_cast<size_t>(id) <= tokens_.size(), "added token '", content, "' has id ", id,
        " but the next free id is ", tokens_.size());
  if (static_cast<size_t>(id) == tokens_.size()) {
    tokens_.push_back(content);
    all_[tokens_.back()] = id;
  } else if (tokens_[static_cast<size_t>(id)] == content) {
    all_[tokens_[static_cast<size_t>(id)]] = id;
  } else {
    added_contents_.push_back(content);
    all_[added_contents_.back()] = id;
  }
}

int32_t Vocab::find(std::string_view token) const { return lookup(all_, token); }
int32_t Vocab::find_piece(std::string_view piece) const { return lookup(pieces_, piece); }
int32_t Vocab::find_continuation(std::string_view suffix) const { return lookup(continuations_, suffix); }

void AddedTokenMatcher::add(std::vector<char32_t> content, int32_t id, bool lstrip, bool rstrip,
                            bool single_word) {
  if (content.empty()) return;
  entries_.push_back({std::move(content), id, lstrip, rstrip, single_word});
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.content.size() > b.content.size(); });
  by_first_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) by_first_[entries_[i].content[0]].push_back(i);
}

namespace {

// \w as the Rust regex crate has it, near enough: letters, marks, digits, connector punctuation.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return !is_whitespace(c) && !is_punctuation(c) && !is_control(c);
}

}  // namespace

void AddedTokenMatcher::find(const char32_t* cps, size_t n, std::vector<AddedMatch>& out) const {
  if (entries_.empty()) return;
  size_t prev_end = 0;
  size_t i = 0;
  while (i < n) {
    auto it = by_first_.find(cps[i]);
    const Entry* hit = nullptr;
    if (it != by_first_.end()) {
      for (size_t k : it->second) {
        const Entry& e = entries_[k];
        const size_t len = e.content.size();
        if (i + len > n || !std::equal(e.content.begin(), e.content.end(), cps + i)) continue;
        if (e.single_word && ((i > 0 && is_word_char(cps[i - 1])) || (i + len < n && is_word_char(cps[i + len])))) {
          continue;
        }
        hit = &e;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t begin = i;
    size_t end = i + hit->content.size();
    if (hit->lstrip) {
      while (begin > prev_end && is_whitespace(cps[begin - 1])) --begin;
    }
    if (hit->rstrip) {
      while (end < n && is_whitespace(cps[end])) ++end;
    }
    out.push_back({begin, end, hit->id});
    prev_end = end;
    i = end;
  }
}

}  // namespace retort::text
