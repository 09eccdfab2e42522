// `retort bench-train`: tokens/s of one distillation step (teacher forward, student forward, triple
// loss, backward, clipping, AdamW) on synthetic batches, next to the machine's measured matmul peak,
// so the figure says how close to the hardware the step runs. Teacher and student are built in memory
// with random weights: the arithmetic is the same as with trained ones.
#pragma once

#include <string>
#include <vector>

#include "retort/losses.h"

namespace retort {

struct BenchTrainOptions {
  int64_t teacher_layers = 12, student_layers = 6;
  int64_t hidden = 768, heads = 12, intermediate = 3072, vocab = 30522;
  int64_t batch = 8, seq = 128;        // every position real (no padding): KL on B*T rows
  int64_t warmup = 1, steps = 3;       // untimed and timed optimizer steps per mode
  std::vector<std::string> modes = {"fp32", "bf16"};  // bf16: bf16 teacher + student under bf16 autocast
  DistillLossWeights loss;             // the HF example's defaults
  std::string device = "cpu";
  uint64_t seed = 7;
};

struct BenchTrainRow {
  std::string mode;
  double tokens_per_s = 0;
  double step_ms = 0;                  // median over the timed steps
  double teacher_ms = 0;               // teacher forward alone (median of the same number of runs)
  double forward_ms = 0;               // teacher + student forward + losses
  double backward_ms = 0;              // student backward
  double optimizer_ms = 0;             // clipping + AdamW + zero_grad
  double gflop_per_step = 0;           // matmul arithmetic: teacher fwd + student fwd/bwd (x3)
  double achieved_gflops = 0;
  double peak_gflops = 0;              // measured matmul peak for the mode's dtype
};

struct MatmulPeak {
  double fp32_gflops = 0, bf16_gflops = 0;
};

// Best of a few timed (M x K) @ (K x N) products in each dtype, at a transformer-like shape.
MatmulPeak measure_matmul_peak(const std::string& device = "cpu", int64_t m = 1024, int64_t k = 768,
                               int64_t n = 3072);

// Matmul FLOPs of one step as bench_train runs it (counted from the shapes; embeddings, softmax and
// elementwise work not included).
double distillation_step_gflop(const BenchTrainOptions& o);

std::vector<BenchTrainRow> bench_train(const BenchTrainOptions& o, const MatmulPeak& peak);

// The rows as a markdown table (mode, tokens/s, step and phase times, GFLOP/s, fraction of peak).
std::string bench_train_markdown(const BenchTrainOptions& o, const std::vector<BenchTrainRow>& rows);

}  // namespace retort
