// One sequence through the BERT pipeline, tracking where each token came from in the original text:
// added tokens are matched in the raw code points; the rest is cleaned (controls dropped, whitespace
// to space, CJK ideographs padded with spaces), split on whitespace, normalized per word (strip
// accents, lowercase), split on punctuation, and cut into WordPiece pieces. Each pre-tokenized
// piece or added token is one "word" (HF's word ids). Buffers are thread-local and reused, so the
// hot loop allocates only when a buffer grows.
#include "retort/error.h"
#include "text/tokenizer_state.h"

namespace retort::text {

namespace {

struct Workspace {
  std::vector<char32_t> raw;
  std::vector<AddedMatch> matches, word_matches;
  std::vector<AlignedChar> cleaned, tmp, normalized;
  std::vector<char32_t> norm_cps;
  std::string utf8;
  std::vector<size_t> bounds;  // byte offset of each code point of utf8, then its size
  struct Piece {
    int32_t id;
    size_t begin, end;  // code points of the word
  };
  std::vector<Piece> pieces;
};

class SequenceRun {
 public:
  SequenceRun(const TokenizerState& st, Workspace& ws, SequenceTokens& out, bool with_offsets)
      : st_(st), ws_(ws), out_(out), with_offsets_(with_offsets) {}

  void run(std::string_view text) {
    ws_.raw.clear();
    decode_utf8(text, ws_.raw, "text");
    ws_.matches.clear();
    st_.raw_added.find(ws_.raw.data(), ws_.raw.size(), ws_.matches);
    size_t pos = 0;
    for (const AddedMatch& m : ws_.matches) {
      segment(pos, m.begin);
      emit(m.id, m.begin, m.end);
      ++word_;
      pos = m.end;
    }
    segment(pos, ws_.raw.size());
  }

 private:
  void emit(int32_t id, size_t begin, size_t end) {
    out_.ids.push_back(id);
    if (with_offsets_) {
      out_.offsets.emplace_back(begin, end);
      out_.words.push_back(word_);
    }
  }

  // Raw code points [b, e) that contain no added token.
  void segment(size_t b, size_t e) {
    if (b >= e) return;
    auto& cleaned = ws_.cleaned;
    cleaned.clear();
    const bool clean = st_.config.clean_text;
    const bool cjk = st_.config.handle_chinese_chars;
    for (size_t i = b; i < e; ++i) {
      char32_t c = ws_.raw[i];
      const auto orig = static_cast<uint32_t>(i);
      if (clean) {
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_whitespace(c)) c = ' ';
      }
      if (cjk && c >= 0x3400 && is_chinese_char(c)) {
        cleaned.push_back({' ', orig});
        cleaned.push_back({c, orig});
        cleaned.push_back({' ', orig});
      } else {
        cleaned.push_back({c, orig});
      }
    }
    const size_t n = cleaned.size();
    size_t i = 0;
    while (i < n) {
      while (i < n && is_whitespace(cleaned[i].cp)) ++i;
      size_t j = i;
      while (j < n && !is_whitespace(cleaned[j].cp)) ++j;
      if (j > i) word(i, j);
      i = j;
    }
  }

  // cleaned[b, e): a whitespace-delimited word.
  void word(size_t b, size_t e) {
    const AlignedChar* chars = ws_.cleaned.data() + b;
    const size_t n = e - b;
    if (!st_.never_split.empty()) {
      ws_.utf8.clear();
      for (size_t k = 0; k < n; ++k) append_utf8(chars[k].cp, ws_.utf8);
      if (st_.never_split.count(ws_.utf8)) {
        const int32_t id = st_.vocab.find(ws_.utf8);
        emit(id >= 0 ? id : st_.unk, chars[0].orig, chars[n - 1].orig + 1);
        ++word_;
        return;
      }
    }
    normalize_word(st_, chars, n, ws_.tmp, ws_.normalized);
    const auto& norm = ws_.normalized;
    if (st_.normalized_added.empty()) {
      split_punctuation(norm.data(), norm.size());
      return;
    }
    ws_.norm_cps.clear();
    for (const auto& c : norm) ws_.norm_cps.push_back(c.cp);
    ws_.word_matches.clear();
    st_.normalized_added.find(ws_.norm_cps.data(), ws_.norm_cps.size(), ws_.word_matches);
    size_t pos = 0;
    for (const AddedMatch& m : ws_.word_matches) {
      split_punctuation(norm.data() + pos, m.begin - pos);
      emit(m.id, norm[m.begin].orig, norm[m.end - 1].orig + 1);
      ++word_;
      pos = m.end;
    }
    split_punctuation(norm.data() + pos, norm.size() - pos);
  }

  // BertPreTokenizer's second step: each punctuation character is a word of its own.
  void split_punctuation(const AlignedChar* chars, size_t n) {
    size_t s = 0;
    for (size_t k = 0; k < n; ++k) {
      if (is_punctuation(chars[k].cp)) {
        wordpiece(chars + s, k - s);
        wordpiece(chars + k, 1);
        s = k + 1;
      }
    }
    wordpiece(chars + s, n - s);
  }

  // Greedy longest-match-first; a word too long or with an unmatchable rest is one unk token.
  void wordpiece(const AlignedChar* chars, size_t n) {
    if (n == 0) return;
    const uint32_t word_begin = chars[0].orig, word_end = chars[n - 1].orig + 1;
    if (n > st_.config.max_input_chars_per_word) {
      emit(st_.unk, word_begin, word_end);
      ++word_;
      return;
    }
    auto& utf8 = ws_.utf8;
    auto& bounds = ws_.bounds;
    utf8.clear();
    bounds.clear();
    for (size_t k = 0; k < n; ++k) {
      bounds.push_back(utf8.size());
      append_utf8(chars[k].cp, utf8);
    }
    bounds.push_back(utf8.size());
    const std::string_view sv(utf8);
    const size_t max_bytes = st_.vocab.max_piece_bytes();
    const bool plain_continuation = st_.config.continuing_subword_prefix.empty();
    auto& pieces = ws_.pieces;
    pieces.clear();
    size_t start = 0;
    while (start < n) {
      size_t end = n;
      while (end > start && bounds[end] - bounds[start] > max_bytes) --end;
      int32_t found = -1;
      for (; end > start; --end) {
        const std::string_view sub = sv.substr(bounds[start], bounds[end] - bounds[start]);
        found = (start == 0 || plain_continuation) ? st_.vocab.find_piece(sub) : st_.vocab.find_continuation(sub);
        if (found >= 0) break;
      }
      if (found < 0) {
        emit(st_.unk, word_begin, word_end);
        ++word_;
        return;
      }
      pieces.push_back({found, start, end});
      start = end;
    }
    for (const auto& p : pieces) emit(p.id, chars[p.begin].orig, chars[p.end - 1].orig + 1);
    ++word_;
  }

  const TokenizerState& st_;
  Workspace& ws_;
  SequenceTokens& out_;
  bool with_offsets_;
  int32_t word_ = 0;
};

}  // namespace

void normalize_word(const TokenizerState& st, const AlignedChar* in, size_t n, std::vector<AlignedChar>& tmp,
                    std::vector<AlignedChar>& out) {
  out.clear();
  if (st.strip && st.lower) {
    tmp.clear();
    strip_accents(in, n, tmp);
    lowercase(tmp.data(), tmp.size(), out);
  } else if (st.strip) {
    strip_accents(in, n, out);
  } else if (st.lower) {
    lowercase(in, n, out);
  } else {
    out.assign(in, in + n);
  }
}

void tokenize_sequence(const TokenizerState& st, std::string_view text, SequenceTokens& out, bool with_offsets) {
  thread_local Workspace ws;
  out.ids.clear();
  out.offsets.clear();
  out.words.clear();
  SequenceRun(st, ws, out, with_offsets).run(text);
}

}  // namespace retort::text
