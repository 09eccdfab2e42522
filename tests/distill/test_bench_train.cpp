// bench-train: the FLOP count it divides by (checked against a count by hand) and a tiny real run.
#include <gtest/gtest.h>

#include <cmath>

#include "retort/bench_train.h"
#include "retort/error.h"

namespace retort {
namespace {

BenchTrainOptions tiny() {
  BenchTrainOptions o;
  o.teacher_layers = 2;
  o.student_layers = 1;
  o.hidden = 8;
  o.heads = 2;
  o.intermediate = 16;
  o.vocab = 50;
  o.batch = 2;
  o.seq = 4;
  o.warmup = 1;
  o.steps = 2;
  return o;
}

TEST(BenchTrain, FlopCountMatchesAHandCount) {
  // 8 tokens. A layer: 2*8*(4*8*8 + 2*8*16) projections + 2*2*8*4*8 attention = 8192 + 1024.
  // The MLM head on 8 rows: 2*8*(8*8 + 8*50) = 7424. Teacher: 2 layers + head; student: 1 layer + head,
  // three times (forward, and backward's two products per matmul).
  const double layer = 9216, head = 7424;
  EXPECT_DOUBLE_EQ(distillation_step_gflop(tiny()), (2 * layer + head + 3 * (layer + head)) * 1e-9);
  // KL on the masked rows only: the heads see 15% of the rows.
  auto o = tiny();
  o.loss.restrict_ce_to_mask = true;
  const double masked_head = 2 * 8 * 0.15 * (8 * 8 + 8 * 50);
  EXPECT_NEAR(distillation_step_gflop(o), (2 * layer + masked_head + 3 * (layer + masked_head)) * 1e-9, 1e-18);
  // No teacher term at all: the student alone.
  o = tiny();
  o.loss.alpha_ce = o.loss.alpha_cos = 0;
  EXPECT_DOUBLE_EQ(distillation_step_gflop(o), 3 * (layer + 2 * 8 * 0.15 * (8 * 8 + 8 * 50)) * 1e-9);
}

TEST(BenchTrain, RunsBothModesAndReportsConsistentFigures) {
  const auto o = tiny();
  MatmulPeak peak;
  peak.fp32_gflops = 100;
  peak.bf16_gflops = 200;
  const auto rows = bench_train(o, peak);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].mode, "fp32");
  EXPECT_EQ(rows[1].mode, "bf16");
  for (const auto& r : rows) {
    EXPECT_GT(r.step_ms, 0) << r.mode;
    EXPECT_NEAR(r.tokens_per_s, 8 / (r.step_ms * 1e-3), 1e-6 * r.tokens_per_s) << r.mode;
    EXPECT_NEAR(r.achieved_gflops, r.gflop_per_step / (r.step_ms * 1e-3), 1e-9 * r.achieved_gflops) << r.mode;
    EXPECT_GE(r.forward_ms, 0);
    EXPECT_GE(r.backward_ms, 0);
    EXPECT_TRUE(std::isfinite(r.teacher_ms));
  }
  EXPECT_EQ(rows[0].peak_gflops, 100);
  EXPECT_EQ(rows[1].peak_gflops, 200);
  const auto table = bench_train_markdown(o, rows);
  EXPECT_NE(table.find("| fp32 |"), std::string::npos);
  EXPECT_NE(table.find("| bf16 |"), std::string::npos);
}

TEST(BenchTrain, BadOptionsAreErrors) {
  auto o = tiny();
  o.modes = {"fp16"};
  try {
    bench_train(o, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown mode 'fp16'"), std::string::npos) << e.what();
  }
  o = tiny();
  o.steps = 0;
  EXPECT_THROW(bench_train(o, {}), Error);
}

TEST(BenchTrain, MatmulPeakIsMeasured) {
  const auto peak = measure_matmul_peak("cpu", 64, 64, 64);
  EXPECT_GT(peak.fp32_gflops, 0);
  EXPECT_GT(peak.bf16_gflops, 0);
}

}  // namespace
}  // namespace retort
