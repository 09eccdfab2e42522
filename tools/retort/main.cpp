// retort: the command-line front end. Parses with CLI11, dispatches to one subcommand, and turns a
// retort::Error into one line on stderr and exit code 1 (2 for usage errors, as CLI11 does).
#include <iostream>
#include <sstream>
#include <vector>

#include "commands.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/runtime.h"
#include "retort/version.h"

namespace retort::cli {

nlohmann::json read_config_file(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(path));
    check(j.is_object(), path, ": expected a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON (", e.what(), ")");
  }
}

void add_data_parallel_flags(CLI::App* cmd, nlohmann::json& out) {
  cmd->add_option_function<int64_t>(
      "--allreduce-bucket-mb", [&out](int64_t v) { out["allreduce_bucket_mb"] = v; },
      "Data parallel: gradient all-reduce bucket size in MB (default 25)");
  cmd->add_flag_function(
      "--no-allreduce-overlap", [&out](int64_t) { out["allreduce_overlap"] = false; },
      "Data parallel: all-reduce the gradients after backward instead of during it");
  cmd->add_option_function<std::string>(
      "--allreduce-dtype", [&out](const std::string& v) { out["allreduce_dtype"] = v; },
      "Data parallel: gradients travel as fp32 (exact), bf16 or fp16 (half the bytes)");
}

void add_intermediate_flags(CLI::App* cmd, nlohmann::json& out) {
  cmd->add_option_function<std::string>(
      "--layer-map",
      [&out](const std::string& v) {
        if (v == "uniform") {
          out["layer_map"] = v;
          return;
        }
        nlohmann::json layers = nlohmann::json::array();
        std::stringstream ss(v);
        for (std::string item; std::getline(ss, item, ',');) {
          try {
            layers.push_back(std::stoll(item));
          } catch (const std::exception&) {
            fail("--layer-map: '", item, "' is not a layer number (give uniform or e.g. 2,4,6)");
          }
        }
        out["layer_map"] = layers;
      },
      "Intermediate distillation: uniform, or the 1-based teacher layer of each student layer (2,4,6)");
  cmd->add_option_function<std::string>(
      "--projection", [&out](const std::string& v) { out["projection"] = v; },
      "Student-to-teacher width projections: shared, per_layer or none");
  cmd->add_option_function<std::string>(
      "--attention-loss", [&out](const std::string& v) { out["attention_loss"] = v; },
      "Attention transfer: mse on scores (TinyBERT) or kl on distributions (MobileBERT)");
}

void apply_globals(const GlobalOptions& g) {
  set_threads(g.threads);
  keep_freed_memory();
}

}  // namespace retort::cli

int main(int argc, char** argv) {
  using namespace retort::cli;
  CLI::App app{"Retort: distil BERT-like models into smaller, faster students, in C++."};
  app.set_version_flag("--version", retort::version_string());
  app.require_subcommand(1);
  GlobalOptions g;
  app.add_option("--threads", g.threads, "Intra-op threads (default: one per core)")->capture_default_str();
  app.add_option("--device", g.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_flag("--strict", g.strict, "Unexpected tensors in a checkpoint are an error, not a warning");
  app.fallthrough();

  Runner run;
  add_tokenize(app, g, run);
  add_inspect(app, g, run);
  add_fill_mask(app, g, run);
  add_init_student(app, g, run);
  add_prepare_corpus(app, g, run);
  add_pretrain(app, g, run);
  add_distill(app, g, run);
  add_eval_mlm(app, g, run);
  add_bench_train(app, g, run);
  add_finetune(app, g, run);
  add_evaluate(app, g, run);
  add_predict(app, g, run);
  add_glue(app, g, run);
  add_bench(app, g, run);
  add_export(app, g, run);
  add_download(app, g, run);
  add_launch(app, g, run);
  add_augment(app, g, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Commands that spend their time in matmuls restart once with the OpenMP / OpenBLAS settings (which
  // only apply at process start); the others are not worth the second start-up (~0.5 s of library loading).
  for (const char* heavy : {"pretrain", "distill", "eval-mlm", "bench-train", "finetune", "glue", "bench", "evaluate", "predict", "augment"}) {
    if (app.got_subcommand(heavy)) retort::reexec_with_recommended_environment(argc, argv);
  }
  try {
    apply_globals(g);
    run();
  } catch (const retort::Error& e) {
    std::cerr << "retort: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    // libtorch's messages carry a backtrace after the first line; the first line is the message.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    std::cerr << "retort: error: " << what << "\n";
    return 1;
  }
  return 0;
}
