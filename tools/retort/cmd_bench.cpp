// retort bench: the speed/size table (the DistilBERT paper's Table 3) for models side by side.
#include <iostream>

#include "commands.h"
#include "retort/bench.h"
#include "retort/fs.h"

namespace retort::cli {

void add_bench(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::vector<std::string> models;
    BenchOptions opt;
    std::string json;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "Parameters, size, latency and throughput of models side by side (fp32, bf16, int8)");
  cmd->add_option("models", a->models, "HF model directories; the first is the reference for speedups")->required();
  cmd->add_option("--seq-lens", a->opt.seq_lens, "Sequence lengths timed at batch 1")->delimiter(',')->capture_default_str();
  cmd->add_option("--batch", a->opt.throughput_batch, "Batch of the throughput measurement (0: skip)")->capture_default_str();
  cmd->add_option("--batch-seq", a->opt.throughput_seq, "Sequence length of the throughput measurement")->capture_default_str();
  cmd->add_option("--precisions", a->opt.precisions, "fp32, bf16, int8")->delimiter(',')->capture_default_str();
  cmd->add_option("--warmup", a->opt.warmup, "Untimed calls first")->capture_default_str();
  cmd->add_option("--reps", a->opt.repetitions, "Timed calls per length")->capture_default_str();
  cmd->add_option("--task-file", a->opt.task_file, "A GLUE dev file timed as a full pass at batch 1 (the paper timed STS-B)");
  cmd->add_option("--task", a->opt.task, "Task of --task-file (default: from its folder name)");
  cmd->add_flag("!--no-onnxruntime", a->opt.onnxruntime, "Do not add ONNX Runtime rows (added when it is installed)");
  cmd->add_option("--json", a->json, "Also write the results (with build and thread settings) as JSON here");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      a->opt.device = g.device;
      const auto rows = bench_models(a->models, a->opt);
      std::cout << bench_markdown(rows, a->opt);
      if (!a->json.empty()) write_file_atomic(a->json, bench_json(rows, a->opt).dump(2) + "\n");
    };
  });
}

}  // namespace retort::cli
