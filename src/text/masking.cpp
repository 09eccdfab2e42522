// Masker: the Hugging Face distillation example's prepare_batch_mlm on a padded batch in plain C++.
// Sampling n positions without replacement with probabilities proportional to weights (torch.multinomial
// with replacement=False) uses exponential keys: key = Exp(1) / weight, keep the n smallest, which has
// the same distribution as n successive weighted draws (Efraimidis & Spirakis) in one pass.
// Dimensions: B rows, T columns (padded length), V vocabulary.
#include "retort/masking.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text/corpus_format.h"

namespace retort {

namespace {

constexpr const char* kStateTag = "retort-masker-v1";

// Uniform in [0, 1) with 53 random bits.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Exp(1) / weight; weight > 0.
double exponential_key(std::mt19937_64& rng, double weight) { return -std::log(text::uniform_open0(rng)) / weight; }

}  // namespace

void MaskingOptions::validate() const {
  check(std::isfinite(mlm_mask_prop) && mlm_mask_prop > 0 && mlm_mask_prop <= 1, "masking: mlm_mask_prop ",
        mlm_mask_prop, " is outside (0, 1]");
  const std::pair<const char*, double> parts[] = {{"word_mask", word_mask}, {"word_keep", word_keep},
                                                  {"word_rand", word_rand}};
  for (const auto& [name, v] : parts) {
    check(std::isfinite(v) && v >= 0 && v <= 1, "masking: ", name, " ", v, " is outside [0, 1]");
  }
  const double sum = word_mask + word_keep + word_rand;
  check(std::fabs(sum - 1) <= 1e-6, "masking: word_mask + word_keep + word_rand = ", word_mask, " + ", word_keep,
        " + ", word_rand, " = ", sum, ", not 1");
  check(std::isfinite(mlm_smoothing) && mlm_smoothing >= 0, "masking: mlm_smoothing ", mlm_smoothing,
        " is negative or not finite");
}

Masker::Masker(const Tokenizer& tok, const std::vector<uint64_t>& token_counts, MaskingOptions options, uint64_t seed)
    : options_(options), rng_(seed) {
  options_.validate();
  const size_t vocab = tok.vocab_size();
  if (options_.mlm) mask_id_ = tok.mask_id();  // throws when the vocabulary has none
  check(token_counts.empty() || token_counts.size() == vocab, "masking: ", token_counts.size(),
        " token counts for a vocabulary of ", vocab, " ids (", tok.source(), ")");
  check(!token_counts.empty() || options_.mlm_smoothing == 0 || !options_.mlm,
        "masking: mlm_smoothing ", options_.mlm_smoothing, " needs the corpus token counts");
  token_probs_.resize(vocab);
  continuation_.resize(vocab);
  const std::string& prefix = tok.config().continuing_subword_prefix;
  for (size_t i = 0; i < vocab; ++i) {
    const auto id = static_cast<int32_t>(i);
    const double count = token_counts.empty() ? 1.0 : static_cast<double>(std::max<uint64_t>(token_counts[i], 1));
    token_probs_[i] = tok.is_special_id(id) ? 0.0 : std::pow(count, -options_.mlm_smoothing);
    const std::string& t = tok.id_to_token(id);
    continuation_[i] = !prefix.empty() && t.size() > prefix.size() && t.compare(0, prefix.size(), prefix) == 0;
    if (!tok.is_special_id(id)) random_ids_.push_back(id);
  }
  check(!random_ids_.empty() || options_.word_rand == 0, "masking: word_rand > 0 but tokenizer ", tok.source(),
        " has no non-special token");
}

MaskedBatch Masker::mask(const std::vector<int32_t>& ids, const std::vector<int32_t>& lengths, size_t cols) {
  MaskedBatch out;
  out.rows = lengths.size();
  out.cols = cols;
  const size_t rows = out.rows;
  check(ids.size() == rows * cols, "masking: ", ids.size(), " ids for a batch of ", rows, " x ", cols);
  const auto vocab = static_cast<int64_t>(token_probs_.size());
  out.input_ids = ids;                                          // (B, T)
  out.labels.assign(rows * cols, MaskedBatch::kIgnoreLabel);  // (B, T)
  out.pred_mask.assign(rows * cols, 0);                       // (B, T)
  out.attention_mask.assign(rows * cols, 0);                  // (B, T)
  uint64_t n_real = 0;
  for (size_t r = 0; r < rows; ++r) {
    check(lengths[r] >= 0 && static_cast<size_t>(lengths[r]) <= cols, "masking: row ", r, " has length ", lengths[r],
          ", outside [0, ", cols, "]");
    n_real += static_cast<uint64_t>(lengths[r]);
    for (size_t c = 0; c < static_cast<size_t>(lengths[r]); ++c) {
      const int32_t id = ids[r * cols + c];
      check(id >= 0 && id < vocab, "masking: id ", id, " at row ", r, ", column ", c, " is outside the vocabulary of ",
            vocab);
      out.attention_mask[r * cols + c] = 1;
    }
  }
  if (!options_.mlm) {  // prepare_batch_clm: every real token is a label, nothing is masked
    for (size_t k = 0; k < rows * cols; ++k) {
      if (out.attention_mask[k]) {
        out.labels[k] = ids[k];
        out.pred_mask[k] = 1;
      }
    }
    out.n_predicted = static_cast<size_t>(n_real);
    return out;
  }

  std::vector<double> weight(rows * cols, 0.0);  // (B, T) 0 for padding and special tokens
  size_t candidates = 0;
  for (size_t k = 0; k < rows * cols; ++k) {
    if (!out.attention_mask[k]) continue;
    weight[k] = token_probs_[static_cast<size_t>(ids[k])];
    candidates += weight[k] > 0;
  }
  // HF: n_tgt = math.ceil(self.mlm_mask_prop * lengths.sum().item()), the same double arithmetic.
  const auto n_target = static_cast<size_t>(std::ceil(options_.mlm_mask_prop * static_cast<double>(n_real)));
  const size_t n = std::min(n_target, candidates);
  if (options_.whole_word_mask) {
    select_words(ids, weight, cols, n, out.pred_mask);
  } else {
    select_tokens(weight, n, out.pred_mask);
  }

  const bool can_rand = options_.word_rand > 0;
  for (size_t k = 0; k < rows * cols; ++k) {
    if (!out.pred_mask[k]) continue;
    ++out.n_predicted;
    out.labels[k] = ids[k];
    const double u = uniform01(rng_);
    if (u < options_.word_mask) {
      out.input_ids[k] = mask_id_;
    } else if (u >= options_.word_mask + options_.word_keep && can_rand) {
      out.input_ids[k] = random_ids_[static_cast<size_t>(text::uniform_below(rng_, random_ids_.size()))];
    }  // else word_keep: unchanged
  }
  return out;
}

void Masker::select_tokens(const std::vector<double>& weight, size_t n, std::vector<uint8_t>& pred) {
  if (n == 0) return;
  std::vector<std::pair<double, size_t>> keys;  // (key, position), the position breaking ties
  for (size_t k = 0; k < weight.size(); ++k) {
    if (weight[k] > 0) keys.emplace_back(exponential_key(rng_, weight[k]), k);
  }
  std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n - 1), keys.end());
  for (size_t i = 0; i < n; ++i) pred[keys[i].second] = 1;
}

// A word is a piece followed by its "##" continuations within one row; special tokens and padding
// (weight 0) end a word. Words are drawn without replacement with the mean weight of their pieces and
// added while they fit in n pieces (as DataCollatorForWholeWordMask skips a word that would overflow).
void Masker::select_words(const std::vector<int32_t>& ids, const std::vector<double>& weight, size_t cols,
                          size_t n, std::vector<uint8_t>& pred) {
  if (n == 0) return;
  struct Word {
    size_t begin, end;
    double weight_sum;
  };
  std::vector<Word> words;
  for (size_t k = 0; k < weight.size(); ++k) {
    if (weight[k] <= 0) continue;
    const bool same_run = !words.empty() && words.back().end == k && k % cols != 0;
    if (same_run && continuation_[static_cast<size_t>(ids[k])]) {
      words.back().end = k + 1;
      words.back().weight_sum += weight[k];
    } else {
      words.push_back({k, k + 1, weight[k]});
    }
  }
  std::vector<std::pair<double, size_t>> keys;  // (key, word)
  keys.reserve(words.size());
  for (size_t w = 0; w < words.size(); ++w) {
    const double mean = words[w].weight_sum / static_cast<double>(words[w].end - words[w].begin);
    keys.emplace_back(exponential_key(rng_, mean), w);
  }
  std::sort(keys.begin(), keys.end());
  size_t covered = 0;
  for (const auto& [key, w] : keys) {
    const size_t len = words[w].end - words[w].begin;
    if (covered + len > n) continue;
    for (size_t k = words[w].begin; k < words[w].end; ++k) pred[k] = 1;
    covered += len;
    if (covered == n) break;
  }
}

std::string Masker::state() const {
  std::ostringstream os;
  os << kStateTag << ' ' << rng_;
  return os.str();
}

void Masker::set_state(const std::string& s) {
  std::istringstream is(s);
  std::string tag;
  is >> tag;
  check(tag == kStateTag, "masking: generator state does not start with ", kStateTag, " (got '", tag.substr(0, 40),
        "')");
  std::mt19937_64 rng;
  is >> rng;
  check(!is.fail(), "masking: generator state is truncated or malformed");
  is >> std::ws;
  check(is.eof(), "masking: unexpected text after the generator state");
  rng_ = rng;
}

}  // namespace retort
