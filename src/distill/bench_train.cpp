// retort bench-train: one distillation step timed phase by phase on synthetic batches, against the
// measured matmul peak (see bench_train.h).
//
// Dimensions: B batch, T sequence, H hidden, I intermediate, V vocabulary, L layers.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <sstream>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "retort/bench_train.h"
#include "retort/distill_step.h"
#include "retort/error.h"
#include "retort/heads.h"
#include "retort/runtime.h"
#include "retort/train.h"

namespace retort {
namespace {

using Clock = std::chrono::steady_clock;

void sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  check(!v.empty(), "median of nothing");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

ModelConfig bench_config(const BenchTrainOptions& o, int64_t layers) {
  ModelConfig c;
  c.vocab_size = o.vocab;
  c.hidden_size = o.hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = o.heads;
  c.intermediate_size = o.intermediate;
  c.max_position_embeddings = std::max<int64_t>(512, o.seq);
  c.validate("bench-train");
  return c;
}

// Matmul GFLOP of a forward pass over `tokens` positions in sequences of `seq`, with vocabulary logits on
// `rows` positions (0: no head).
double forward_gflop(const BenchTrainOptions& o, int64_t layers, double tokens, double rows) {
  const double H = static_cast<double>(o.hidden), I = static_cast<double>(o.intermediate);
  const double T = static_cast<double>(o.seq), V = static_cast<double>(o.vocab);
  const double per_layer = 2.0 * tokens * (4 * H * H + 2 * H * I)  // Q, K, V, output; FFN in and out
                           + 2.0 * 2.0 * tokens * T * H;           // scores and context
  const double head = 2.0 * rows * (H * H + H * V);                // transform + decoder
  return (static_cast<double>(layers) * per_layer + head) * 1e-9;
}

}  // namespace

MatmulPeak measure_matmul_peak(const std::string& device_name, int64_t m, int64_t k, int64_t n) {
  const c10::Device device = parse_device(device_name);
  torch::InferenceMode guard;
  MatmulPeak peak;
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    auto a = torch::randn({m, k}, torch::TensorOptions().device(device).dtype(dtype));  // (M, K)
    auto w = torch::randn({n, k}, torch::TensorOptions().device(device).dtype(dtype));  // (N, K) as nn.Linear
    double best = 0;
    for (int rep = 0; rep < 12; ++rep) {
      sync(device);
      const auto t0 = Clock::now();
      auto c = torch::nn::functional::linear(a, w);  // (M, N): the op every projection runs
      sync(device);
      const double s = ms_since(t0) * 1e-3;
      if (rep > 1) best = std::max(best, 2.0 * m * k * n / s * 1e-9);  // the first runs warm up
    }
    (dtype == torch::kFloat ? peak.fp32_gflops : peak.bf16_gflops) = best;
  }
  return peak;
}

double distillation_step_gflop(const BenchTrainOptions& o) {
  const double tokens = static_cast<double>(o.batch * o.seq);
  const bool all_rows = (o.loss.alpha_ce > 0 || o.loss.alpha_mse > 0) && !o.loss.restrict_ce_to_mask;
  const double rows = all_rows ? tokens : tokens * 0.15;
  const bool teacher = o.loss.alpha_ce > 0 || o.loss.alpha_mse > 0 || o.loss.alpha_cos > 0;
  const bool teacher_logits = o.loss.alpha_ce > 0 || o.loss.alpha_mse > 0;
  const double t = teacher ? forward_gflop(o, o.teacher_layers, tokens, teacher_logits ? rows : 0) : 0;
  return t + 3.0 * forward_gflop(o, o.student_layers, tokens, rows);
}

std::vector<BenchTrainRow> bench_train(const BenchTrainOptions& o, const MatmulPeak& peak) {
  check(o.batch > 0 && o.seq > 1 && o.steps > 0 && o.warmup >= 0, "bench-train: batch, seq and steps must be positive");
  check(o.student_layers > 0 && o.teacher_layers > 0, "bench-train: layer counts must be positive");
  check(o.vocab >= 2, "bench-train: the vocabulary needs at least 2 tokens");
  o.loss.validate();
  const c10::Device device = parse_device(o.device);
  std::vector<BenchTrainRow> rows;
  for (const auto& mode : o.modes) {
    check(mode == "fp32" || mode == "bf16", "bench-train: unknown mode '", mode, "' (fp32 or bf16)");
    const bool bf16 = mode == "bf16";
    torch::manual_seed(o.seed);
    Model teacher(bench_config(o, o.teacher_layers), HeadKind::MaskedLM);
    Model student(bench_config(o, o.student_layers), HeadKind::MaskedLM);
    init_weights(*teacher);
    init_weights(*student);
    teacher->to(device, bf16 ? torch::kBFloat16 : torch::kFloat);
    teacher->eval();
    for (auto& p : teacher->parameters()) p.set_requires_grad(false);
    student->to(device);
    student->train();
    const TrainConfig tc;  // the HF example's optimizer
    torch::optim::AdamW optimizer(student->parameters(), adamw_options(tc));

    std::vector<double> step, fwd, bwd, opt, teach;
    for (int64_t i = 0; i < o.warmup + o.steps; ++i) {
      StepBatch bt;  // synthetic: ids above BERT's special tokens (in a real-size vocabulary), 15% predicted
      bt.ids = torch::randint(o.vocab > 2000 ? 1000 : 1, o.vocab, {o.batch, o.seq}, torch::TensorOptions().dtype(torch::kLong)).to(device);
      bt.attention = torch::ones({o.batch, o.seq}, torch::kLong).to(device);
      bt.predicted = (torch::rand({o.batch, o.seq}) < 0.15).to(device);
      bt.labels = torch::where(bt.predicted, bt.ids, torch::full_like(bt.ids, -100));
      bt.tokens = o.batch * o.seq;
      sync(device);
      const auto t0 = Clock::now();
      StepLoss loss = distillation_step_loss(*student, teacher.get(), bt, o.loss, bf16);
      sync(device);
      const auto t1 = Clock::now();
      loss.total.backward();
      sync(device);
      const auto t2 = Clock::now();
      if (tc.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(student->parameters(), tc.max_grad_norm);
      optimizer.step();
      optimizer.zero_grad();
      sync(device);
      const double total = ms_since(t0);
      {  // the teacher's share, run on its own (not part of the step time)
        torch::NoGradGuard no_grad;
        const auto t3 = Clock::now();
        auto h = teacher->bert->forward(bt.ids, bt.attention, {}).last_hidden_state;  // (B, T, H)
        auto l = teacher->mlm_logits(h.reshape({-1, o.hidden}));                       // (B*T, V)
        sync(device);
        if (i >= o.warmup) teach.push_back(ms_since(t3));
      }
      if (i < o.warmup) continue;
      step.push_back(total);
      fwd.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
      opt.push_back(total - fwd.back() - bwd.back());
    }
    BenchTrainRow r;
    r.mode = mode;
    r.step_ms = median(step);
    r.forward_ms = median(fwd);
    r.backward_ms = median(bwd);
    r.optimizer_ms = median(opt);
    r.teacher_ms = median(teach);
    r.tokens_per_s = static_cast<double>(o.batch * o.seq) / (r.step_ms * 1e-3);
    r.gflop_per_step = distillation_step_gflop(o);
    r.achieved_gflops = r.gflop_per_step / (r.step_ms * 1e-3);
    r.peak_gflops = bf16 ? peak.bf16_gflops : peak.fp32_gflops;
    rows.push_back(r);
  }
  return rows;
}

std::string bench_train_markdown(const BenchTrainOptions& o, const std::vector<BenchTrainRow>& rows) {
  std::ostringstream s;
  s << "Distillation step: teacher " << o.teacher_layers << "L, student " << o.student_layers << "L, hidden "
    << o.hidden << ", vocab " << o.vocab << ", batch " << o.batch << " x " << o.seq << " tokens, "
    << at::get_num_threads() << " threads, " << o.device << "\n\n";
  s << "| mode | tokens/s | step ms | teacher fwd ms | fwd+loss ms | backward ms | optimizer ms | GFLOP/step "
       "| GFLOP/s | matmul peak GFLOP/s | of peak |\n";
  s << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  s << std::fixed;
  for (const auto& r : rows) {
    s << "| " << r.mode << " | " << std::setprecision(0) << r.tokens_per_s << " | " << r.step_ms << " | "
      << r.teacher_ms << " | " << r.forward_ms << " | " << r.backward_ms << " | " << r.optimizer_ms << " | "
      << std::setprecision(1) << r.gflop_per_step << " | " << std::setprecision(0) << r.achieved_gflops << " | "
      << r.peak_gflops << " | " << std::setprecision(0) << (r.peak_gflops > 0 ? 100.0 * r.achieved_gflops / r.peak_gflops : 0)
      << "% |\n";
  }
  return s.str();
}

}  // namespace retort
