// retort bench: latency, throughput, size, per model and precision.
#include "retort/bench.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <unistd.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/finetune.h"
#include "retort/inference.h"
#include "retort/onnx_export.h"
#include "retort/runtime.h"
#include "retort/tasks.h"
#include "retort/version.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t weight_bytes(const std::string& dir) {
  int64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".safetensors" || ext == ".bin")) total += static_cast<int64_t>(e.file_size());
  }
  return total;
}

// What a deployed model computes: the encoder plus a task head through the inference engine;
// vocabulary logits (an MLM head) are not part of inference and are not timed.
void infer(const InferenceModel& m, const torch::Tensor& ids, const torch::Tensor& mask) {
  if (m.head() == HeadKind::SequenceClassification || m.head() == HeadKind::QuestionAnswering) {
    m.forward(ids, mask);
  } else {
    m.encode(ids, mask);
  }
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

const TaskSpec& task_of_file(const BenchOptions& opt) {
  if (!opt.task.empty()) return task_spec(opt.task);
  const std::string folder = fs::path(opt.task_file).parent_path().filename().string();
  try {
    return task_spec(folder);
  } catch (const Error&) {
    fail(opt.task_file, ": cannot tell the task from the folder '", folder, "'; pass --task");
  }
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A row's description of the model: what it is and how big, whatever runs it.
BenchRow describe(const std::string& dir, ModelImpl& m, const std::string& precision) {
  BenchRow row;
  row.model = dir;
  row.architecture = architecture_name(m.config.model_type, m.head);
  row.parameters = parameter_count(m);
  row.disk_bytes = weight_bytes(dir);
  row.precision = precision;
  return row;
}

// (B, T) random ordinary tokens (ids >= 1000) with [CLS] first: the inputs every row is timed on.
torch::Tensor random_ids(const ModelConfig& c, int64_t b, int64_t t, at::Generator& gen) {
  auto ids = torch::randint(1000, c.vocab_size, {b, t}, gen, torch::kLong);
  ids.index_put_({torch::indexing::Slice(), 0}, 101 % c.vocab_size);
  return ids;
}

LatencyStat latency_stat(int64_t seq, const std::vector<double>& ms) {
  LatencyStat s;
  s.seq = seq;
  s.p50_ms = percentile(ms, 50);
  s.p90_ms = percentile(ms, 90);
  for (double m : ms) s.mean_ms += m / static_cast<double>(ms.size());
  return s;
}

// The same model exported to ONNX and timed inside ONNX Runtime (Node.js, onnxruntime-node) with the
// same threads, random tokens, lengths and repetitions; the task pass is not run there.
BenchRow bench_onnxruntime(const std::string& dir, const BenchOptions& opt, const OrtRunner& ort, size_t index) {
  Model model = load_model(dir);
  BenchRow row = describe(dir, *model, "onnxruntime fp32");
  const fs::path path = fs::temp_directory_path() / ("retort_bench_" + std::to_string(::getpid()) + "_" +
                                                     std::to_string(index) + ".onnx");
  export_onnx(*model, path.string());
  const ModelConfig& c = model->config;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  auto inputs = [&](int64_t b, int64_t t) {
    std::map<std::string, torch::Tensor> in;
    in["input_ids"] = random_ids(c, b, t, gen);
    in["attention_mask"] = torch::ones({b, t}, torch::kLong);
    if (c.type_vocab_size > 0) in["token_type_ids"] = torch::zeros({b, t}, torch::kLong);
    return in;
  };
  const int threads = at::get_num_threads();
  for (int64_t t : opt.seq_lens) {
    const OrtResult r = run_onnxruntime(ort, path.string(), inputs(1, t), static_cast<int>(opt.repetitions), threads);
    row.latency.push_back(latency_stat(t, r.latency_ms));
  }
  if (opt.throughput_batch > 0) {
    const int reps = static_cast<int>(std::max<int64_t>(2, opt.repetitions / 5));
    const OrtResult r = run_onnxruntime(ort, path.string(), inputs(opt.throughput_batch, opt.throughput_seq), reps, threads);
    double total_ms = 0;
    for (double m : r.latency_ms) total_ms += m;
    row.throughput = static_cast<double>(reps * opt.throughput_batch) / (total_ms / 1000.0);
  }
  fs::remove(path);
  return row;
}

}  // namespace

double percentile(std::vector<double> v, double p) {
  check(!v.empty(), "percentile of no values");
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

std::vector<BenchRow> bench_models(const std::vector<std::string>& dirs, const BenchOptions& opt) {
  check(!dirs.empty(), "bench: no models");
  check(opt.repetitions > 0 && opt.warmup >= 0, "bench: repetitions must be positive");
  const torch::Device device = parse_device(opt.device);
  std::vector<TaskExample> examples;
  const TaskSpec* spec = nullptr;
  if (!opt.task_file.empty()) {
    spec = &task_of_file(opt);
    examples = read_glue_tsv(*spec, opt.task_file, /*labelled=*/false);
  }
  OrtRunner ort;
  ort.missing = "not asked for";
  if (opt.onnxruntime) ort = find_onnxruntime();
  std::vector<BenchRow> rows;
  for (const auto& dir : dirs) {
    const bool mobile = ModelConfig::load(dir).model_type == ModelType::MobileBert;
    for (const auto& precision : opt.precisions) {
      const Precision p = parse_precision(precision);
      if (p == Precision::Int8 && !device.is_cpu()) {  // dynamic quantization has CPU kernels only
        std::cerr << "bench: int8 skipped on " << device.str() << " (CPU only)\n";
        continue;
      }
      if (p == Precision::Int8 && mobile) {
        std::cerr << "bench: int8 skipped for " << dir << " (not implemented for MobileBERT)\n";
        continue;
      }
      LoadOptions lo;
      lo.device = device;
      Model loaded = load_model(dir, lo);
      BenchRow row = describe(dir, *loaded, precision_name(p));
      const InferenceModel model(loaded, p);
      const ModelConfig& config = model.config();
      auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
      auto device_ids = [&](int64_t b, int64_t t) { return random_ids(config, b, t, gen).to(device); };
      for (int64_t t : opt.seq_lens) {
        check(t <= config.max_position_embeddings, dir, ": sequence length ", t, " exceeds the model's ",
              config.max_position_embeddings, " positions");
        const auto ids = device_ids(1, t), mask = torch::ones_like(ids);
        for (int64_t i = 0; i < opt.warmup; ++i) infer(model, ids, mask);
        std::vector<double> ms;
        for (int64_t i = 0; i < opt.repetitions; ++i) {
          const auto t0 = Clock::now();
          infer(model, ids, mask);
          ms.push_back(ms_since(t0));
        }
        row.latency.push_back(latency_stat(t, ms));
      }
      if (opt.throughput_batch > 0) {
        const auto ids = device_ids(opt.throughput_batch, opt.throughput_seq), mask = torch::ones_like(ids);
        infer(model, ids, mask);
        const int64_t reps = std::max<int64_t>(2, opt.repetitions / 5);
        const auto t0 = Clock::now();
        for (int64_t i = 0; i < reps; ++i) infer(model, ids, mask);
        row.throughput = static_cast<double>(reps * opt.throughput_batch) / (ms_since(t0) / 1000.0);
      }
      if (spec) {
        const Tokenizer tok = Tokenizer::load(dir);
        FeatureOptions fo;
        fo.max_seq_length = std::min<int64_t>(512, config.max_position_embeddings);
        const auto t0 = Clock::now();
        for (const auto& e : examples) {  // batch 1, tokenization included, as the paper timed STS-B
          const TaskFeatures f = make_features(tok, {e}, fo, spec->is_pair());
          const auto ids = torch::tensor(std::vector<int64_t>(f.ids[0].begin(), f.ids[0].end())).unsqueeze(0).to(device);
          infer(model, ids, torch::ones_like(ids));
        }
        row.task_pass_s = ms_since(t0) / 1000.0;
        row.task_examples = static_cast<int64_t>(examples.size());
      }
      rows.push_back(std::move(row));
    }
    if (ort.available() && !mobile) rows.push_back(bench_onnxruntime(dir, opt, ort, rows.size()));
  }
  return rows;
}

std::string bench_markdown(const std::vector<BenchRow>& rows, const BenchOptions& opt) {
  std::string s = "| model | precision | params | weights on disk |";
  std::string rule = "|---|---|---:|---:|";
  for (int64_t t : opt.seq_lens) {
    s += " batch 1, " + std::to_string(t) + " tokens: p50 / p90 ms |";
    rule += "---:|";
  }
  s += " batch " + std::to_string(opt.throughput_batch) + " x " + std::to_string(opt.throughput_seq) + ": seq/s |";
  rule += "---:|";
  const bool task = !rows.empty() && rows.front().task_examples > 0;
  if (task) {
    s += " task pass (" + std::to_string(rows.front().task_examples) + " ex., batch 1): s |";
    rule += "---:|";
  }
  s += " speedup (p50 " + std::to_string(opt.seq_lens.empty() ? 0 : opt.seq_lens.back()) + ") |\n" + rule + "---:|\n";
  for (const auto& r : rows) {
    const BenchRow* ref = nullptr;
    for (const auto& c : rows) {
      if (c.precision == r.precision) {
        ref = &c;
        break;
      }
    }
    s += "| " + r.model + " | " + r.precision + " | " + fmt("%.1fM", static_cast<double>(r.parameters) / 1e6) + " | " +
         fmt("%.1f MB", static_cast<double>(r.disk_bytes) / 1e6) + " |";
    for (const auto& l : r.latency) s += " " + fmt("%.2f", l.p50_ms) + " / " + fmt("%.2f", l.p90_ms) + " |";
    s += " " + fmt("%.1f", r.throughput) + " |";
    if (task) s += r.task_examples > 0 ? " " + fmt("%.2f", r.task_pass_s) + " |" : " - |";
    const double speed = (!r.latency.empty() && ref && !ref->latency.empty())
                             ? ref->latency.back().p50_ms / r.latency.back().p50_ms : 0.0;
    s += " " + fmt("%.2fx", speed) + " |\n";
  }
  return s;
}

nlohmann::json bench_json(const std::vector<BenchRow>& rows, const BenchOptions& opt) {
  nlohmann::json j;
  j["build"] = {{"retort", version_string()}, {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)}, {"threads", at::get_num_threads()},
                {"device", opt.device}};
  j["options"] = {{"seq_lens", opt.seq_lens}, {"throughput_batch", opt.throughput_batch},
                  {"throughput_seq", opt.throughput_seq}, {"warmup", opt.warmup}, {"repetitions", opt.repetitions},
                  {"task_file", opt.task_file}};
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json lat = nlohmann::json::array();
    for (const auto& l : r.latency) lat.push_back({{"seq", l.seq}, {"p50_ms", l.p50_ms}, {"p90_ms", l.p90_ms}, {"mean_ms", l.mean_ms}});
    j["rows"].push_back({{"model", r.model}, {"architecture", r.architecture}, {"parameters", r.parameters},
                         {"disk_bytes", r.disk_bytes}, {"precision", r.precision}, {"latency", lat},
                         {"throughput_seq_per_s", r.throughput}, {"task_pass_s", r.task_pass_s},
                         {"task_examples", r.task_examples}});
  }
  return j;
}

}  // namespace retort
