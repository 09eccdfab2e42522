// `retort bench`: the speed/size table of the DistilBERT paper's Table 3 for one or more models in the
// same run: parameters, size on disk, inference latency at batch 1 (p50/p90 per sequence length),
// throughput at a larger batch, per precision (fp32, bf16, int8), and optionally the paper's own
// timing: a full pass over a task's dev file at batch 1 (tokenization included). Models run through
// the inference engine (inference.h) at each precision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace retort {

struct BenchOptions {
  std::vector<int64_t> seq_lens{32, 128, 512};  // latency at batch 1
  int64_t throughput_batch = 32;
  int64_t throughput_seq = 128;
  std::vector<std::string> precisions{"fp32", "bf16", "int8"};
  int64_t warmup = 3;
  int64_t repetitions = 20;
  std::string task_file;  // GLUE TSV dev file for the full-pass timing ("" skips it)
  std::string task;       // its task name (default: guessed from the folder, e.g. STS-B)
  std::string device = "cpu";
  uint64_t seed = 1;
  // Also time each model exported to ONNX in ONNX Runtime (a row "onnxruntime fp32") when it is
  // installed (onnx_export.h: find_onnxruntime); skipped silently when it is not.
  bool onnxruntime = true;
};

struct LatencyStat {
  int64_t seq = 0;
  double p50_ms = 0, p90_ms = 0, mean_ms = 0;
};

struct BenchRow {
  std::string model;        // the directory as given
  std::string architecture;
  int64_t parameters = 0;
  int64_t disk_bytes = 0;   // weight files
  std::string precision;
  std::vector<LatencyStat> latency;    // one per seq_lens entry
  double throughput = 0;               // sequences/s at throughput_batch x throughput_seq
  double task_pass_s = 0;              // full pass over task_file at batch 1 (0: not run)
  int64_t task_examples = 0;
};

// p-th percentile (0..100) with linear interpolation between order statistics (numpy's default).
double percentile(std::vector<double> v, double p);

std::vector<BenchRow> bench_models(const std::vector<std::string>& model_dirs, const BenchOptions& opt);

// Markdown: one row per model and precision; the speedup columns compare each row with the first
// model at the same precision (p50 at each length, throughput, task pass).
std::string bench_markdown(const std::vector<BenchRow>& rows, const BenchOptions& opt);
// JSON with the rows, the options and the build: version and commit, libtorch version, threads, device.
nlohmann::json bench_json(const std::vector<BenchRow>& rows, const BenchOptions& opt);

}  // namespace retort
