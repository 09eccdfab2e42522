// BERT WordPiece tokenizer, equal id for id to Hugging Face's BertTokenizer / the Rust `tokenizers`
// BERT pipeline: added (special) tokens matched in the raw text, BertNormalizer (clean text, CJK
// splitting, accent stripping, lowercasing), BertPreTokenizer, WordPiece, [CLS] A [SEP] B [SEP]
// templates, truncation, padding, batch encoding on all cores, decoding, and saving in HF's format.
// Dimensions: B batch (texts in a batch), T tokens of one encoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace retort {

namespace text {
struct TokenizerState;
}

// How a sequence (pair) longer than EncodeOptions::max_length is shortened. The counts include the
// special tokens the template adds. LongestFirst follows the Rust library (a tie gives the extra
// token to the second sequence); OnlyFirst / OnlySecond throw when that sequence is too short.
enum class Truncation { None, LongestFirst, OnlyFirst, OnlySecond };

// None; Longest: to the longest encoding of the batch; MaxLength: to EncodeOptions::max_length.
enum class Padding { None, Longest, MaxLength };

struct EncodeOptions {
  bool add_special_tokens = true;
  size_t max_length = 0;  // 0: no limit (no truncation; MaxLength padding then throws)
  Truncation truncation = Truncation::LongestFirst;
  Padding padding = Padding::None;
};

// One encoded text or text pair; every vector has T entries. Padding goes on the right.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;             // segment: template's type id; 0 for padding
  std::vector<int32_t> attention_mask;       // 1 real token, 0 padding
  std::vector<int32_t> special_tokens_mask;  // 1 for template special tokens and padding
  std::vector<std::string> tokens;
  // Code-point [begin, end) in the ORIGINAL text of the sequence the token came from; (0, 0) for
  // template special tokens and padding (as HF fast tokenizers return with OffsetType::Char).
  std::vector<std::pair<size_t, size_t>> offsets;
  std::vector<int> sequence_ids;  // 0 or 1; -1 for special tokens and padding
  std::vector<int> word_ids;      // pre-tokenized word index within its sequence; -1 special/pad
  size_t size() const { return ids.size(); }
};

// A token matched as a whole before WordPiece. normalized=false: matched in the raw text before
// normalization ([CLS], [MASK], ...); normalized=true: matched in the normalized words.
struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = true;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// One element of a post-processing template: a special token (`special` non-empty, with explicit
// `ids` or, when empty, the id of `special` in the vocabulary) or the sequence A (0) / B (1).
struct TemplatePiece {
  std::string special;
  std::vector<int32_t> ids;
  int sequence = 0;
  int32_t type_id = 0;
};

// Everything but the vocabulary. The defaults are bert-base-uncased's.
struct TokenizerConfig {
  // BertNormalizer
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // unset: follows lowercase
  bool lowercase = true;
  // WordPiece
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;  // in code points of the normalized word
  // Special tokens (looked up in the vocabulary; ids are never hard-coded)
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  // Whitespace-delimited words kept whole, unnormalized (BertTokenizer's never_split).
  std::vector<std::string> never_split;
  std::vector<AddedToken> added_tokens;
  // Post-processor. false: tokenizer.json had "post_processor": null, so no special tokens are added.
  bool post_processor = true;
  std::vector<TemplatePiece> single_template;  // empty: [CLS]:0 A:0 [SEP]:0
  std::vector<TemplatePiece> pair_template;    // empty: [CLS]:0 A:0 [SEP]:0 B:1 [SEP]:1
  size_t model_max_length = 0;                 // 0: unbounded (HF's 1e30)
  bool clean_up_tokenization_spaces = true;    // used by decode

  bool strip_accents_enabled() const { return strip_accents.value_or(lowercase); }
};

// Immutable after construction; copies share state; all const methods are thread-safe.
class Tokenizer {
 public:
  // A model directory (tokenizer.json preferred, else vocab.txt [+ tokenizer_config.json]), a
  // tokenizer.json file, or a vocab.txt file. A tokenizer_config.json beside it supplies
  // model_max_length, special token strings and never_split.
  static Tokenizer load(const std::string& path);
  static Tokenizer from_tokenizer_json(const std::string& path);
  // config_path empty: tokenizer_config.json beside the vocabulary when present, else defaults.
  static Tokenizer from_vocab_file(const std::string& vocab_path, const std::string& config_path = "");

  // vocab[i] is the token of id i. `source` names the origin in error messages.
  Tokenizer(std::vector<std::string> vocab, TokenizerConfig config, std::string source = "<memory>");

  Encoding encode(std::string_view text, const EncodeOptions& options = {}) const;
  Encoding encode_pair(std::string_view text, std::string_view text_pair,
                       const EncodeOptions& options = {}) const;
  // Encodes on n_threads threads (0: hardware concurrency); results in input order, equal to
  // encoding one by one except that Padding::Longest pads to the longest of the batch.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts, const EncodeOptions& options = {},
                                     size_t n_threads = 0) const;
  std::vector<Encoding> encode_pair_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                          const EncodeOptions& options = {}, size_t n_threads = 0) const;
  // Fast path for corpus tokenization: ids only, no strings or offsets.
  std::vector<int32_t> encode_ids(std::string_view text, bool add_special_tokens = false) const;
  // Token strings without special tokens.
  std::vector<std::string> tokenize(std::string_view text) const;
  // Tokens joined by spaces, "##" continuations merged, HF's clean_up_tokenization_spaces applied.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  // Writes vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json in HF's
  // format, each to a temporary name renamed into place. Creates dir if needed.
  void save(const std::string& dir) const;

  int32_t cls_id() const;
  int32_t sep_id() const;
  int32_t pad_id() const;   // throws when the vocabulary has no pad token
  int32_t mask_id() const;  // throws when the vocabulary has no mask token
  int32_t unk_id() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string& id_to_token(int32_t id) const;  // throws on an id out of range
  size_t vocab_size() const;                         // every id, added tokens included
  bool is_special_id(int32_t id) const;              // skipped by decode(skip_special_tokens)
  size_t num_special_tokens_to_add(bool pair) const;
  const TokenizerConfig& config() const;
  const std::string& source() const;

 private:
  std::shared_ptr<const text::TokenizerState> state_;
};

}  // namespace retort
