// retort fill-mask DIR "text with [MASK]": the best tokens for each [MASK], best first, with
// probabilities. Prints a table, or JSON with --json.
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fill_mask.h"
#include "retort/runtime.h"
#include "retort/tokenizer.h"

namespace retort::cli {

void add_fill_mask(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string dir, text, tokenizer;
    int top_k = 5;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("fill-mask", "Predict the tokens hidden behind [MASK] with a masked-LM model");
  cmd->add_option("dir", a->dir, "Hugging Face model directory with a masked-LM head")->required();
  cmd->add_option("text", a->text, "Text with one or more [MASK] tokens")->required();
  cmd->add_option("--top-k", a->top_k, "Candidates per mask")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer (directory, tokenizer.json or vocab.txt); default: DIR");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      LoadOptions lo;
      lo.strict = g.strict;
      lo.device = parse_device(g.device);
      LoadReport report;
      Model model = load_model(a->dir, lo, &report);
      model->eval();
      for (const auto& u : report.unexpected) std::cerr << "warning: unexpected tensor " << u << " (ignored)\n";
      check(report.initialised.empty(), a->dir, ": the checkpoint has no masked-LM head weights (",
            report.initialised.front(), " missing)");
      const Tokenizer tok = Tokenizer::load(a->tokenizer.empty() ? a->dir : a->tokenizer);
      const auto preds = fill_mask(*model, tok, a->text, a->top_k);
      if (a->json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& p : preds) {
          nlohmann::json c = nlohmann::json::array();
          for (size_t i = 0; i < p.candidates.size(); ++i) {
            c.push_back({{"token", p.candidates[i].first}, {"id", p.ids[i]}, {"score", p.candidates[i].second}});
          }
          j.push_back({{"position", p.position}, {"candidates", c}});
        }
        std::cout << j.dump() << "\n";
        return;
      }
      for (size_t m = 0; m < preds.size(); ++m) {
        std::cout << "[MASK] #" << m + 1 << " (position " << preds[m].position << ")\n";
        for (const auto& [token, prob] : preds[m].candidates) {
          std::cout << "  " << std::left << std::setw(20) << token << std::fixed << std::setprecision(6) << prob << "\n";
        }
      }
    };
  });
}

}  // namespace retort::cli
