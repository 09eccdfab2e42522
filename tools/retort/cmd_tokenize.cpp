// retort tokenize --tokenizer PATH [TEXT]: WordPiece ids, tokens, type ids and offsets as JSON lines.
// With --jsonl, reads {"text": ..., "text_pair": ...} objects (one a line) on stdin, encodes them in
// batches on all cores, and writes one line per input in the same order.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "retort/error.h"
#include "retort/tokenizer.h"

namespace retort::cli {
namespace {

Truncation parse_truncation(const std::string& s) {
  if (s == "longest_first") return Truncation::LongestFirst;
  if (s == "only_first") return Truncation::OnlyFirst;
  if (s == "only_second") return Truncation::OnlySecond;
  if (s == "none" || s == "do_not_truncate") return Truncation::None;
  fail("unknown truncation '", s, "' (longest_first, only_first, only_second, none)");
}

nlohmann::json to_json(const Encoding& e) {
  nlohmann::json offsets = nlohmann::json::array();
  for (const auto& [b, en] : e.offsets) offsets.push_back({b, en});
  return {{"ids", e.ids}, {"tokens", e.tokens}, {"type_ids", e.type_ids}, {"offsets", offsets},
          {"attention_mask", e.attention_mask}};
}

}  // namespace

void add_tokenize(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string tokenizer, text, pair, truncation = "longest_first";
    bool jsonl = false, no_special = false, has_pair = false;
    size_t max_length = 0;
    size_t batch = 1024;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Tokenize text with a BERT WordPiece tokenizer (JSON lines out)");
  cmd->add_option("--tokenizer", a->tokenizer, "Model directory, tokenizer.json or vocab.txt")->required();
  cmd->add_option("text", a->text, "Text to tokenize (omit with --jsonl)");
  auto* pair_opt = cmd->add_option("--pair", a->pair, "Second text of a pair");
  cmd->add_flag("--jsonl", a->jsonl, "Read {\"text\": ..., \"text_pair\": ...} lines from stdin");
  cmd->add_option("--max-length", a->max_length, "Truncate to this many tokens, special tokens included (0: none)");
  cmd->add_option("--truncation", a->truncation, "longest_first, only_first, only_second")->capture_default_str();
  cmd->add_flag("--no-special-tokens", a->no_special, "Do not add [CLS]/[SEP]");
  cmd->callback([&run, &g, a, pair_opt] {
    a->has_pair = pair_opt->count() > 0;
    run = [&g, a] {
      const Tokenizer tok = Tokenizer::load(a->tokenizer);
      EncodeOptions eo;
      eo.add_special_tokens = !a->no_special;
      eo.max_length = a->max_length;
      eo.truncation = a->max_length ? parse_truncation(a->truncation) : Truncation::None;
      const size_t threads = g.threads > 0 ? static_cast<size_t>(g.threads) : 0;
      if (!a->jsonl) {
        check(!a->text.empty() || a->has_pair, "give a text argument, or --jsonl to read stdin");
        const Encoding e = a->has_pair ? tok.encode_pair(a->text, a->pair, eo) : tok.encode(a->text, eo);
        std::cout << to_json(e).dump() << "\n";
        return;
      }
      // Batches keep memory bounded on large inputs; pairs and singles are encoded separately.
      std::vector<nlohmann::json> rows;
      size_t line_no = 0;
      auto flush = [&] {
        std::vector<std::string> singles;
        std::vector<std::pair<std::string, std::string>> pairs;
        for (const auto& r : rows) {
          if (r.contains("text_pair") && !r["text_pair"].is_null()) {
            pairs.emplace_back(r["text"].get<std::string>(), r["text_pair"].get<std::string>());
          } else {
            singles.push_back(r["text"].get<std::string>());
          }
        }
        auto es = tok.encode_batch(singles, eo, threads);
        auto ep = tok.encode_pair_batch(pairs, eo, threads);
        size_t is = 0, ip = 0;
        for (const auto& r : rows) {
          const bool is_pair = r.contains("text_pair") && !r["text_pair"].is_null();
          std::cout << to_json(is_pair ? ep[ip++] : es[is++]).dump() << "\n";
        }
        rows.clear();
      };
      std::string line;
      while (std::getline(std::cin, line)) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json r;
        try {
          r = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          fail("stdin line ", line_no, ": invalid JSON (", e.what(), ")");
        }
        check(r.is_object() && r.contains("text") && r["text"].is_string(), "stdin line ", line_no,
              ": expected an object with a string \"text\"");
        check(!r.contains("text_pair") || r["text_pair"].is_string() || r["text_pair"].is_null(), "stdin line ",
              line_no, ": \"text_pair\" must be a string");
        rows.push_back(std::move(r));
        if (rows.size() >= a->batch) flush();
      }
      flush();
    };
  });
}

}  // namespace retort::cli
