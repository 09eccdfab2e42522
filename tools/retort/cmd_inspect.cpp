// retort inspect DIR: architecture, parameter count per block, stored dtype(s), size on disk.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/runtime.h"
#include "retort/state_dict.h"

namespace retort::cli {
namespace {

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string human_bytes(uint64_t b) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  if (b >= (1ull << 30)) os << b / double(1ull << 30) << " GiB";
  else if (b >= (1ull << 20)) os << b / double(1ull << 20) << " MiB";
  else if (b >= (1ull << 10)) os << b / double(1ull << 10) << " KiB";
  else os << b << " B";
  return os.str();
}

}  // namespace

void add_inspect(CLI::App& app, GlobalOptions& g, Runner& run) {
  auto* cmd = app.add_subcommand("inspect", "Architecture, parameters per block, dtype and size of a model directory");
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "Hugging Face model directory")->required();
  cmd->add_flag("--json", *as_json, "Print JSON instead of a table");
  cmd->callback([&run, &g, dir, as_json] {
    run = [&g, dir, as_json] {
      LoadOptions lo;
      lo.strict = g.strict;
      LoadReport report;
      Model model = load_model(*dir, lo, &report);
      const auto& c = model->config;
      StateDict sd = load_state_dict(*dir);
      std::map<std::string, int64_t> dtypes;  // stored dtype -> tensors
      for (const auto& name : sd.names()) dtypes[dtype_name(sd.tensor(name).scalar_type())] += 1;
      uint64_t bytes = 0;
      for (const auto& f : sd.files()) bytes += std::filesystem::file_size(f);
      const auto blocks = parameter_blocks(*model);
      const int64_t total = parameter_count(*model);

      nlohmann::json j;
      j["dir"] = *dir;
      j["model_type"] = model_type_name(c.model_type);
      j["architecture"] = architecture_name(c.model_type, model->head);
      j["layers"] = c.num_hidden_layers;
      j["hidden_size"] = c.hidden_size;
      j["heads"] = c.num_attention_heads;
      j["intermediate_size"] = c.intermediate_size;
      j["vocab_size"] = c.vocab_size;
      j["max_position_embeddings"] = c.max_position_embeddings;
      j["activation"] = c.hidden_act;
      j["parameters"] = total;
      j["blocks"] = nlohmann::json::object();
      for (const auto& [name, n] : blocks) j["blocks"][name] = n;
      j["dtypes"] = dtypes;
      j["files"] = sd.files();
      j["size_bytes"] = bytes;
      j["unexpected"] = report.unexpected;
      j["initialised"] = report.initialised;
      if (*as_json) {
        std::cout << j.dump(2) << "\n";
        return;
      }
      std::cout << *dir << ": " << j["architecture"].get<std::string>() << " (" << j["model_type"].get<std::string>()
                << ")\n"
                << "  layers " << c.num_hidden_layers << ", hidden " << c.hidden_size << ", heads "
                << c.num_attention_heads << ", intermediate " << c.intermediate_size << ", vocab " << c.vocab_size
                << ", positions " << c.max_position_embeddings << ", activation " << c.hidden_act << "\n"
                << "  weights: ";
      for (size_t i = 0; i < sd.files().size(); ++i) {
        std::cout << (i ? ", " : "") << std::filesystem::path(sd.files()[i]).filename().string();
      }
      std::cout << " (" << human_bytes(bytes) << "), dtype";
      for (const auto& [d, n] : dtypes) std::cout << " " << d << " x" << n;
      std::cout << "\n\n  | block | parameters |\n  |---|---:|\n";
      for (const auto& [name, n] : blocks) std::cout << "  | " << name << " | " << with_commas(n) << " |\n";
      std::cout << "  | **total** | **" << with_commas(total) << "** |\n";
      if (model->head == HeadKind::MaskedLM && c.tie_word_embeddings) {
        std::cout << "\n  The masked-LM decoder shares the word embeddings (counted once).\n";
      }
      for (const auto& u : report.unexpected) std::cerr << "warning: unexpected tensor " << u << " (ignored)\n";
      for (const auto& u : report.initialised) std::cerr << "warning: " << u << " not in the checkpoint (initialised)\n";
    };
  });
}

}  // namespace retort::cli
