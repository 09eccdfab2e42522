// retort bench-train: tokens/s of one distillation step (teacher 12L/768 + student 6L at sequence 128
// by default) in fp32 and bf16, phase by phase, against the machine's measured matmul peak. Markdown
// on stdout; --json FILE writes the figures too.
#include <iostream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "retort/bench_train.h"
#include "retort/fs.h"
#include "retort/version.h"

namespace retort::cli {

void add_bench_train(CLI::App& app, GlobalOptions& g, Runner& run) {
  auto o = std::make_shared<BenchTrainOptions>();
  auto json_out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("bench-train", "Time one distillation step (random teacher and student) against the matmul peak");
  cmd->add_option("--teacher-layers", o->teacher_layers, "Teacher layers")->capture_default_str();
  cmd->add_option("--student-layers", o->student_layers, "Student layers")->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden size")->capture_default_str();
  cmd->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
  cmd->add_option("--intermediate", o->intermediate, "FFN inner size")->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "Vocabulary size")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per step")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Sequence length (no padding)")->capture_default_str();
  cmd->add_option("--steps", o->steps, "Timed steps per mode (median reported)")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps per mode")->capture_default_str();
  cmd->add_option("--modes", o->modes, "fp32 and/or bf16 (bf16 teacher, bf16 autocast student)")->delimiter(',')->capture_default_str();
  cmd->add_flag("--restrict-ce-to-mask", o->loss.restrict_ce_to_mask, "KL on masked positions only (default: every position, as HF)");
  cmd->add_option("--json", *json_out, "Also write the figures as JSON to this file");
  cmd->callback([&run, &g, o, json_out] {
    run = [&g, o, json_out] {
      o->device = g.device;
      const MatmulPeak peak = measure_matmul_peak(o->device, o->batch * o->seq, o->hidden, o->intermediate);
      const auto rows = bench_train(*o, peak);
      std::cout << bench_train_markdown(*o, rows);
      if (!json_out->empty()) {
        nlohmann::json j = {{"version", version_string()},
                            {"teacher_layers", o->teacher_layers}, {"student_layers", o->student_layers},
                            {"hidden", o->hidden}, {"vocab", o->vocab}, {"batch", o->batch}, {"seq", o->seq},
                            {"device", o->device}, {"threads", at::get_num_threads()},
                            {"matmul_peak_gflops", {{"fp32", peak.fp32_gflops}, {"bf16", peak.bf16_gflops}}}};
        for (const auto& r : rows) {
          j["modes"][r.mode] = {{"tokens_per_s", r.tokens_per_s}, {"step_ms", r.step_ms}, {"teacher_ms", r.teacher_ms},
                                {"forward_ms", r.forward_ms}, {"backward_ms", r.backward_ms},
                                {"optimizer_ms", r.optimizer_ms}, {"gflop_per_step", r.gflop_per_step},
                                {"achieved_gflops", r.achieved_gflops}, {"peak_gflops", r.peak_gflops}};
        }
        write_file_atomic(*json_out, j.dump(2) + "\n");
      }
    };
  });
}

}  // namespace retort::cli
