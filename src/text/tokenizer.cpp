// retort::Tokenizer: construction and validation of the immutable state, post-processing of one or
// two tokenized sequences (truncation, template special tokens, type ids, padding), batch encoding
// over threads, decoding, and the vocabulary accessors. Loading and saving are in tokenizer_io.cpp;
// the per-sequence pipeline is in pipeline.cpp.
#include <algorithm>
#include <exception>
#include <thread>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text/tokenizer_state.h"

namespace retort {

using text::SequenceTokens;
using text::TokenizerState;

namespace {

std::vector<text::TemplateStep> resolve_template(const TokenizerState& st, const std::vector<TemplatePiece>& pieces,
                                                 bool pair, size_t& n_special) {
  std::vector<text::TemplateStep> steps;
  int seen[2] = {0, 0};
  n_special = 0;
  for (const TemplatePiece& p : pieces) {
    if (p.special.empty()) {
      check(p.sequence == 0 || (pair && p.sequence == 1), "tokenizer ", st.source, ": the ",
            pair ? "pair" : "single", " template names sequence ", p.sequence);
      ++seen[p.sequence];
      steps.push_back({{}, p.sequence, p.type_id});
      continue;
    }
    std::vector<int32_t> ids = p.ids;
    if (ids.empty()) {
      const int32_t id = st.vocab.find(p.special);
      check(id >= 0, "tokenizer ", st.source, ": template special token '", p.special, "' is not in the vocabulary");
      ids.push_back(id);
    }
    for (int32_t id : ids) {
      check(id >= 0 && static_cast<size_t>(id) < st.vocab.size(), "tokenizer ", st.source,
            ": template special token '", p.special, "' has id ", id, " outside the vocabulary");
    }
    n_special += ids.size();
    steps.push_back({std::move(ids), -1, p.type_id});
  }
  check(seen[0] == 1 && seen[1] == (pair ? 1 : 0), "tokenizer ", st.source, ": the ", pair ? "pair" : "single",
        " template must contain ", pair ? "sequences A and B once each" : "sequence A once");
  return steps;
}

// Rust tokenizers' truncate_encodings on sequences without special tokens; `budget` excludes them.
void truncate(const TokenizerState& st, SequenceTokens& a, SequenceTokens* b, size_t budget, Truncation strategy) {
  const size_t total = a.size() + (b ? b->size() : 0);
  if (total <= budget || strategy == Truncation::None) return;
  if (budget == 0) {
    a.resize(0);
    if (b) b->resize(0);
    return;
  }
  const size_t to_remove = total - budget;
  if (strategy == Truncation::LongestFirst) {
    if (!b) {
      a.resize(budget);
      return;
    }
    size_t n1 = a.size(), n2 = b->size();
    const bool swap = n1 > n2;
    if (swap) std::swap(n1, n2);
    n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
    if (n1 + n2 > budget) {
      n1 = budget / 2;
      n2 = n1 + budget % 2;
    }
    if (swap) std::swap(n1, n2);
    a.resize(std::min(n1, a.size()));
    b->resize(std::min(n2, b->size()));
    return;
  }
  const bool first = strategy == Truncation::OnlyFirst;
  check(first || b, "tokenizer ", st.source, ": truncation only_second needs a text pair");
  SequenceTokens& target = first ? a : *b;
  check(target.size() > to_remove, "tokenizer ", st.source, ": truncation ", first ? "only_first" : "only_second",
        " cannot remove ", to_remove, " tokens from a sequence of ", target.size(), " (max_length too small)");
  target.resize(target.size() - to_remove);
}

void append_sequence(Encoding& enc, const SequenceTokens& s, int sequence, int32_t type_id) {
  for (size_t i = 0; i < s.size(); ++i) {
    enc.ids.push_back(s.ids[i]);
    enc.type_ids.push_back(type_id);
    enc.attention_mask.push_back(1);
    enc.special_tokens_mask.push_back(0);
    enc.offsets.push_back(s.offsets[i]);
    enc.sequence_ids.push_back(sequence);
    enc.word_ids.push_back(s.words[i]);
  }
}

void append_special(Encoding& enc, int32_t id, int32_t type_id) {
  enc.ids.push_back(id);
  enc.type_ids.push_back(type_id);
  enc.attention_mask.push_back(1);
  enc.special_tokens_mask.push_back(1);
  enc.offsets.emplace_back(0, 0);
  enc.sequence_ids.push_back(-1);
  enc.word_ids.push_back(-1);
}

Encoding post_process(const TokenizerState& st, SequenceTokens& a, SequenceTokens* b, const EncodeOptions& opt) {
  const bool specials = opt.add_special_tokens && st.config.post_processor;
  const size_t n_special = specials ? (b ? st.n_special_pair : st.n_special_single) : 0;
  if (opt.max_length > 0 && opt.truncation != Truncation::None) {
    check(opt.max_length >= n_special, "tokenizer ", st.source, ": max_length ", opt.max_length,
          " is smaller than the ", n_special, " special tokens the template adds");
    truncate(st, a, b, opt.max_length - n_special, opt.truncation);
  }
  Encoding enc;
  const size_t n = a.size() + (b ? b->size() : 0) + n_special;
  enc.ids.reserve(n);
  enc.type_ids.reserve(n);
  enc.attention_mask.reserve(n);
  enc.special_tokens_mask.reserve(n);
  enc.offsets.reserve(n);
  enc.sequence_ids.reserve(n);
  enc.word_ids.reserve(n);
  if (specials) {
    for (const auto& step : b ? st.pair : st.single) {
      if (step.sequence < 0) {
        for (int32_t id : step.ids) append_special(enc, id, step.type_id);
      } else {
        append_sequence(enc, step.sequence == 0 ? a : *b, step.sequence, step.type_id);
      }
    }
  } else {
    append_sequence(enc, a, 0, 0);
    if (b) append_sequence(enc, *b, 1, 1);
  }
  enc.tokens.reserve(enc.ids.size());
  for (int32_t id : enc.ids) enc.tokens.push_back(st.vocab.token(id));
  return enc;
}

void pad_to(const TokenizerState& st, Encoding& enc, size_t length) {
  if (enc.size() >= length) return;
  check(st.pad >= 0, "tokenizer ", st.source, ": padding needs a pad token but '", st.config.pad_token,
        "' is not in the vocabulary");
  const size_t extra = length - enc.size();
  enc.ids.insert(enc.ids.end(), extra, st.pad);
  enc.type_ids.insert(enc.type_ids.end(), extra, 0);
  enc.attention_mask.insert(enc.attention_mask.end(), extra, 0);
  enc.special_tokens_mask.insert(enc.special_tokens_mask.end(), extra, 1);
  enc.tokens.insert(enc.tokens.end(), extra, st.vocab.token(st.pad));
  enc.offsets.insert(enc.offsets.end(), extra, {0, 0});
  enc.sequence_ids.insert(enc.sequence_ids.end(), extra, -1);
  enc.word_ids.insert(enc.word_ids.end(), extra, -1);
}

size_t max_length_padding(const TokenizerState& st, const EncodeOptions& opt) {
  check(opt.max_length > 0, "tokenizer ", st.source, ": padding to max_length needs EncodeOptions::max_length > 0");
  return opt.max_length;
}

// Runs fn(i) for i in [0, n) on up to n_threads threads over contiguous chunks; rethrows the error
// of the earliest failing chunk.
template <typename Fn>
void parallel_for(size_t n, size_t n_threads, Fn fn) {
  if (n_threads == 0) n_threads = std::max<size_t>(1, std::thread::hardware_concurrency());
  n_threads = std::min(n_threads, n);
  if (n_threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::exception_ptr> errors(n_threads);
  std::vector<std::thread> threads;
  threads.reserve(n_threads);
  const size_t chunk = (n + n_threads - 1) / n_threads;
  for (size_t t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (size_t i = t * chunk; i < std::min(n, (t + 1) * chunk); ++i) fn(i);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

void pad_batch(const TokenizerState& st, std::vector<Encoding>& encs, const EncodeOptions& opt) {
  size_t target = 0;
  if (opt.padding == Padding::Longest) {
    for (const auto& e : encs) target = std::max(target, e.size());
  } else if (opt.padding == Padding::MaxLength) {
    target = max_length_padding(st, opt);
  }
  for (auto& e : encs) pad_to(st, e, target);
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> vocab, TokenizerConfig config, std::string source) {
  auto st = std::make_shared<TokenizerState>();
  st->source = std::move(source);
  check(!vocab.empty(), "tokenizer ", st->source, ": the vocabulary is empty");
  check(config.max_input_chars_per_word > 0, "tokenizer ", st->source, ": max_input_chars_per_word must be > 0");
  st->vocab.build(std::move(vocab), config.continuing_subword_prefix);

  // The special tokens the vocabulary has are always matched whole in raw text, as BertTokenizer
  // does, even when the configuration does not list them as added tokens.
  for (const std::string* s : {&config.pad_token, &config.unk_token, &config.cls_token, &config.sep_token,
                               &config.mask_token}) {
    const int32_t id = st->vocab.find(*s);
    const bool listed = std::any_of(config.added_tokens.begin(), config.added_tokens.end(),
                                    [&](const AddedToken& t) { return t.content == *s; });
    if (id >= 0 && !listed) config.added_tokens.push_back(AddedToken{*s, id});
  }
  std::stable_sort(config.added_tokens.begin(), config.added_tokens.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
  const std::vector<AddedToken>& added = config.added_tokens;
  for (const AddedToken& t : added) {
    check(!t.content.empty(), "tokenizer ", st->source, ": added token with id ", t.id, " has empty content");
    try {
      st->vocab.add(t.content, t.id);
    } catch (const Error& e) {
      fail("tokenizer ", st->source, ": ", e.what());
    }
  }

  auto require = [&](const std::string& token, const char* role) {
    const int32_t id = st->vocab.find(token);
    check(id >= 0, "tokenizer ", st->source, ": the vocabulary has no ", role, " token '", token, "'");
    return id;
  };
  st->unk = require(config.unk_token, "unk");
  st->cls = require(config.cls_token, "cls");
  st->sep = require(config.sep_token, "sep");
  st->pad = st->vocab.find(config.pad_token);
  st->mask = st->vocab.find(config.mask_token);
  st->strip = config.strip_accents_enabled();
  st->lower = config.lowercase;

  for (const AddedToken& t : added) {
    std::vector<char32_t> cps;
    text::decode_utf8(t.content, cps, "added token");
    if (!t.normalized) {
      st->raw_added.add(std::move(cps), t.id, t.lstrip, t.rstrip, t.single_word);
      continue;
    }
    std::vector<text::AlignedChar> in, tmp, out;
    for (char32_t c : cps) in.push_back({c, 0});
    text::normalize_word(*st, in.data(), in.size(), tmp, out);
    std::vector<char32_t> norm;
    for (const auto& c : out) norm.push_back(c.cp);
    st->normalized_added.add(std::move(norm), t.id, t.lstrip, t.rstrip, t.single_word);
  }
  st->never_split.insert(config.never_split.begin(), config.never_split.end());

  st->special.assign(st->vocab.size(), 0);
  for (const AddedToken& t : added) {
    if (t.special) st->special[static_cast<size_t>(t.id)] = 1;
  }
  for (int32_t id : {st->unk, st->cls, st->sep, st->pad, st->mask}) {
    if (id >= 0) st->special[static_cast<size_t>(id)] = 1;
  }

  if (config.single_template.empty()) {
    config.single_template = {{config.cls_token, {}, -1, 0}, {"", {}, 0, 0}, {config.sep_token, {}, -1, 0}};
  }
  if (config.pair_template.empty()) {
    config.pair_template = {{config.cls_token, {}, -1, 0}, {"", {}, 0, 0}, {config.sep_token, {}, -1, 0},
                            {"", {}, 1, 1}, {config.sep_token, {}, -1, 1}};
  }
  st->config = std::move(config);
  st->single = resolve_template(*st, st->config.single_template, false, st->n_special_single);
  st->pair = resolve_template(*st, st->config.pair_template, true, st->n_special_pair);
  for (const auto* steps : {&st->single, &st->pair}) {
    for (const auto& step : *steps) {
      for (int32_t id : step.ids) st->special[static_cast<size_t>(id)] = 1;
    }
  }
  state_ = std::move(st);
}

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  SequenceTokens a;
  text::tokenize_sequence(*state_, text, a);
  Encoding enc = post_process(*state_, a, nullptr, options);
  if (options.padding == Padding::MaxLength) pad_to(*state_, enc, max_length_padding(*state_, options));
  return enc;
}

Encoding Tokenizer::encode_pair(std::string_view text, std::string_view text_pair, const EncodeOptions& options) const {
  SequenceTokens a, b;
  text::tokenize_sequence(*state_, text, a);
  text::tokenize_sequence(*state_, text_pair, b);
  Encoding enc = post_process(*state_, a, &b, options);
  if (options.padding == Padding::MaxLength) pad_to(*state_, enc, max_length_padding(*state_, options));
  return enc;
}

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts, const EncodeOptions& options,
                                              size_t n_threads) const {
  EncodeOptions unpadded = options;
  unpadded.padding = Padding::None;
  std::vector<Encoding> out(texts.size());
  parallel_for(texts.size(), n_threads, [&](size_t i) { out[i] = encode(texts[i], unpadded); });
  pad_batch(*state_, out, options);
  return out;
}

std::vector<Encoding> Tokenizer::encode_pair_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                                   const EncodeOptions& options, size_t n_threads) const {
  EncodeOptions unpadded = options;
  unpadded.padding = Padding::None;
  std::vector<Encoding> out(pairs.size());
  parallel_for(pairs.size(), n_threads,
               [&](size_t i) { out[i] = encode_pair(pairs[i].first, pairs[i].second, unpadded); });
  pad_batch(*state_, out, options);
  return out;
}

std::vector<int32_t> Tokenizer::encode_ids(std::string_view text, bool add_special_tokens) const {
  SequenceTokens a;
  text::tokenize_sequence(*state_, text, a, /*with_offsets=*/false);
  if (!add_special_tokens || !state_->config.post_processor) return std::move(a.ids);
  std::vector<int32_t> ids;
  ids.reserve(a.size() + state_->n_special_single);
  for (const auto& step : state_->single) {
    if (step.sequence < 0) {
      ids.insert(ids.end(), step.ids.begin(), step.ids.end());
    } else {
      ids.insert(ids.end(), a.ids.begin(), a.ids.end());
    }
  }
  return ids;
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for (int32_t id : encode_ids(text, false)) tokens.push_back(state_->vocab.token(id));
  return tokens;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const std::string& prefix = state_->config.continuing_subword_prefix;
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    const std::string& tok = id_to_token(id);
    if (skip_special_tokens && state_->special[static_cast<size_t>(id)]) continue;
    // HF's WordPiece decoder: a continuation joins the previous token, except as the first token.
    if (first) {
      out += tok;
    } else if (!prefix.empty() && tok.compare(0, prefix.size(), prefix) == 0) {
      out.append(tok, prefix.size(), std::string::npos);
    } else {
      out += ' ';
      out += tok;
    }
    first = false;
  }
  if (!state_->config.clean_up_tokenization_spaces) return out;
  // transformers' clean_up_tokenization, applied in this order to the whole string.
  static const std::pair<const char*, const char*> kCleanups[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kCleanups) {
    const std::string_view f(from), t(to);
    std::string next;
    next.reserve(out.size());
    size_t pos = 0;
    for (size_t hit; (hit = out.find(f, pos)) != std::string::npos; pos = hit + f.size()) {
      next.append(out, pos, hit - pos);
      next.append(t);
    }
    next.append(out, pos, std::string::npos);
    out.swap(next);
  }
  return out;
}

int32_t Tokenizer::cls_id() const { return state_->cls; }
int32_t Tokenizer::sep_id() const { return state_->sep; }
int32_t Tokenizer::unk_id() const { return state_->unk; }
int32_t Tokenizer::pad_id() const {
  check(state_->pad >= 0, "tokenizer ", state_->source, ": no pad token '", state_->config.pad_token, "'");
  return state_->pad;
}
int32_t Tokenizer::mask_id() const {
  check(state_->mask >= 0, "tokenizer ", state_->source, ": no mask token '", state_->config.mask_token, "'");
  return state_->mask;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const int32_t id = state_->vocab.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& Tokenizer::id_to_token(int32_t id) const {
  check(id >= 0 && static_cast<size_t>(id) < state_->vocab.size(), "tokenizer ", state_->source, ": id ", id,
        " is outside the vocabulary of ", state_->vocab.size());
  return state_->vocab.token(id);
}

size_t Tokenizer::vocab_size() const { return state_->vocab.size(); }

bool Tokenizer::is_special_id(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < state_->special.size() && state_->special[static_cast<size_t>(id)];
}

size_t Tokenizer::num_special_tokens_to_add(bool pair) const {
  if (!state_->config.post_processor) return 0;
  return pair ? state_->n_special_pair : state_->n_special_single;
}

const TokenizerConfig& Tokenizer::config() const { return state_->config; }
const std::string& Tokenizer::source() const { return state_->source; }

}  // namespace retort
