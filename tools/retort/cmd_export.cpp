// retort export: a model directory as ONNX (model.onnx beside config.json and the tokenizer), checked
// with ONNX's checker and, where ONNX Runtime is installed, run against Retort's own outputs.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/onnx_export.h"

namespace retort::cli {

void add_export(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string model, out, format = "onnx";
    double tolerance = 1e-4;
    bool no_verify = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", "Export a model for other runtimes (ONNX), verified against Retort");
  cmd->add_option("model", a->model, "HF model directory")->required();
  cmd->add_option("--out", a->out, "Output directory (model.onnx, config.json, tokenizer files)")->required();
  cmd->add_option("--format", a->format, "Export format (onnx)")->capture_default_str();
  cmd->add_option("--tolerance", a->tolerance, "Largest |ONNX Runtime - Retort| accepted")->capture_default_str();
  cmd->add_flag("--no-verify", a->no_verify, "Skip running the export with ONNX Runtime");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      (void)g;
      check(a->format == "onnx", "export: unknown format '", a->format, "' (onnx)");
      Model model = load_model(a->model);
      const Tokenizer tok = load_model_tokenizer(a->model);
      std::filesystem::create_directories(a->out);
      const std::string path = (std::filesystem::path(a->out) / "model.onnx").string();
      export_onnx(*model, path);
      write_file_atomic((std::filesystem::path(a->out) / "config.json").string(),
                        read_file((std::filesystem::path(a->model) / "config.json").string()));
      tok.save(a->out);
      std::cout << "wrote " << path << " (" << std::filesystem::file_size(path) / 1000000.0 << " MB, opset 17, "
                << architecture_name(model->config.model_type, model->head) << "); ONNX checker: ok\n";
      if (a->no_verify) return;
      const OrtRunner ort = find_onnxruntime();
      if (!ort.available()) {
        std::cout << "not verified with ONNX Runtime: " << ort.missing << "\n";
        return;
      }
      const double diff = onnx_max_difference(*model, path, ort);
      check(diff <= a->tolerance, "export: ONNX Runtime differs from Retort by ", diff, " (more than --tolerance ",
            a->tolerance, ")");
      std::cout << "ONNX Runtime agrees with Retort: max |difference| " << diff << "\n";
    };
  });
}

}  // namespace retort::cli
