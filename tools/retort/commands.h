// The CLI's subcommands. Each file adds one subcommand to the app and runs it through the library;
// the CLI itself only parses options, prints, and turns retort::Error into exit codes.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace retort::cli {

// Options every subcommand shares (given before or after the subcommand name).
struct GlobalOptions {
  int threads = 0;              // 0 = one per core
  std::string device = "cpu";
  bool strict = false;
};

// A subcommand registers itself and returns the function that runs it after parsing.
using Runner = std::function<void()>;

void add_tokenize(CLI::App& app, GlobalOptions& g, Runner& run);
void add_inspect(CLI::App& app, GlobalOptions& g, Runner& run);
void add_fill_mask(CLI::App& app, GlobalOptions& g, Runner& run);
void add_init_student(CLI::App& app, GlobalOptions& g, Runner& run);
void add_prepare_corpus(CLI::App& app, GlobalOptions& g, Runner& run);
void add_pretrain(CLI::App& app, GlobalOptions& g, Runner& run);
void add_distill(CLI::App& app, GlobalOptions& g, Runner& run);
void add_eval_mlm(CLI::App& app, GlobalOptions& g, Runner& run);
void add_bench_train(CLI::App& app, GlobalOptions& g, Runner& run);
void add_finetune(CLI::App& app, GlobalOptions& g, Runner& run);
void add_evaluate(CLI::App& app, GlobalOptions& g, Runner& run);
void add_predict(CLI::App& app, GlobalOptions& g, Runner& run);
void add_glue(CLI::App& app, GlobalOptions& g, Runner& run);
void add_bench(CLI::App& app, GlobalOptions& g, Runner& run);
void add_export(CLI::App& app, GlobalOptions& g, Runner& run);
void add_download(CLI::App& app, GlobalOptions& g, Runner& run);
void add_launch(CLI::App& app, GlobalOptions& g, Runner& run);
void add_augment(CLI::App& app, GlobalOptions& g, Runner& run);

// The JSON object of a --config file ({} for an empty path); invalid JSON is an Error naming the file.
nlohmann::json read_config_file(const std::string& path);

// TinyBERT's --layer-map (uniform, or 1-based teacher layers "2,4,6") and --projection (shared,
// per_layer, none), written into `out` under the config's field names.
void add_intermediate_flags(CLI::App* cmd, nlohmann::json& out);

// Data-parallel settings (--allreduce-bucket-mb, --no-allreduce-overlap, --allreduce-dtype), written into
// `out` under the training config's field names.
void add_data_parallel_flags(CLI::App* cmd, nlohmann::json& out);

// Applies --threads (and prints nothing); call at the start of every runner.
void apply_globals(const GlobalOptions& g);

}  // namespace retort::cli
