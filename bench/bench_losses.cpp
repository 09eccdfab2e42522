// Google Benchmark: the distillation losses' forward + backward at the sizes a step sees (N rows of a
// 30,522-token vocabulary), fp32 and bf16 logits. The soft-target term reads and writes (N, V) tensors
// several times; this measures how long that takes next to the matmuls (see `retort bench-train`).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "retort/losses.h"
#include "retort/runtime.h"

namespace {

constexpr int64_t kVocab = 30522;

void BM_SoftTargetLoss(benchmark::State& state, torch::ScalarType dtype) {
  retort::set_threads(0);
  retort::keep_freed_memory();
  const int64_t rows = state.range(0);
  torch::manual_seed(0);
  auto s = (torch::randn({rows, kVocab}) * 3).to(dtype).requires_grad_(true);  // (N, V)
  auto t = (torch::randn({rows, kVocab}) * 3).to(dtype);                       // (N, V)
  for (auto _ : state) {
    auto loss = retort::soft_target_loss(s, t, 2.0);
    loss.backward();
    benchmark::DoNotOptimize(s.grad().data_ptr());
    s.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * rows);  // rows per second
  state.SetBytesProcessed(state.iterations() * rows * kVocab * static_cast<int64_t>(s.element_size()) * 3);
}

void BM_MlmLoss(benchmark::State& state) {
  retort::set_threads(0);
  const int64_t rows = state.range(0);
  torch::manual_seed(0);
  auto s = torch::randn({rows, kVocab}).requires_grad_(true);  // (N, V)
  auto labels = torch::randint(0, kVocab, {rows});             // (N)
  for (auto _ : state) {
    auto loss = retort::mlm_loss(s, labels);
    loss.backward();
    s.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

}  // namespace

BENCHMARK_CAPTURE(BM_SoftTargetLoss, fp32, torch::kFloat)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SoftTargetLoss, bf16, torch::kBFloat16)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MlmLoss)->Arg(154)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  retort::reexec_with_recommended_environment(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
