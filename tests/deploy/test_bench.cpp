// retort bench on tiny models: every model x precision gets a row with real timings, the sizes are the
// model's, the task pass covers the whole file, the table has the paper's columns, bad options fail.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "retort/bench.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/onnx_export.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

TEST(Bench, PercentileInterpolatesLikeNumpy) {
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 90), 3.7);  // rank 0.9 * 3 = 2.7
  EXPECT_DOUBLE_EQ(percentile({5}, 90), 5.0);
  EXPECT_THROW(percentile({}, 50), Error);
}

TEST(Bench, RowsForEveryModelAndPrecision) {
  const fs::path root = test::temp_path("bench");
  fs::remove_all(root);
  const Tokenizer tok = test::bert_vocab();
  ModelConfig classifier = test::tiny_config(tok, 4, 64);
  classifier.id2label = {"0", "1"};
  test::save_tiny_model(root / "big", tok, classifier, 1, HeadKind::SequenceClassification);
  test::save_tiny_model(root / "small", tok, test::tiny_config(tok, 1, 64, ModelType::DistilBert), 2);
  fs::create_directories(root / "STS-B");
  {
    std::ifstream in(test::shared_path("data/glue/STS-B/dev.tsv"));
    std::ofstream out(root / "STS-B" / "dev.tsv");
    std::string line;
    for (int i = 0; i < 11 && std::getline(in, line); ++i) out << line << "\n";
  }
  BenchOptions opt;
  opt.seq_lens = {8, 32};
  opt.throughput_batch = 4;
  opt.throughput_seq = 16;
  opt.warmup = 1;
  opt.repetitions = 3;
  opt.task_file = (root / "STS-B" / "dev.tsv").string();
  opt.onnxruntime = false;  // its rows are tested below
  const auto rows = bench_models({(root / "big").string(), (root / "small").string()}, opt);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].precision, "fp32");
  EXPECT_EQ(rows[1].precision, "bf16");
  EXPECT_EQ(rows[2].precision, "int8");
  EXPECT_EQ(rows[0].architecture, "BertForSequenceClassification");
  EXPECT_EQ(rows[3].architecture, "DistilBertForMaskedLM");
  Model big = load_model((root / "big").string());
  EXPECT_EQ(rows[0].parameters, parameter_count(*big));
  Model small = load_model((root / "small").string());
  EXPECT_EQ(rows[3].parameters, parameter_count(*small));
  EXPECT_GE(rows[0].disk_bytes, 4 * rows[0].parameters) << "fp32 weights on disk";
  for (const auto& r : rows) {
    ASSERT_EQ(r.latency.size(), 2u);
    EXPECT_EQ(r.latency[1].seq, 32);
    for (const auto& l : r.latency) {
      EXPECT_GT(l.p50_ms, 0);
      EXPECT_GE(l.p90_ms, l.p50_ms);
    }
    EXPECT_GT(r.throughput, 0);
    EXPECT_EQ(r.task_examples, 10);
    EXPECT_GT(r.task_pass_s, 0);
  }
  const std::string md = bench_markdown(rows, opt);
  EXPECT_NE(md.find("| model | precision | params | weights on disk | batch 1, 8 tokens: p50 / p90 ms |"), std::string::npos) << md;
  EXPECT_NE(md.find("task pass (10 ex., batch 1): s"), std::string::npos) << md;
  EXPECT_NE(md.find("| fp32 | "), std::string::npos) << md;
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 8) << md;
  const auto j = bench_json(rows, opt);
  EXPECT_EQ(j["rows"].size(), 6u);
  EXPECT_FALSE(j["build"]["retort"].get<std::string>().empty());

  opt.task_file.clear();
  opt.seq_lens = {65};
  std::string e = error_of([&] { bench_models({(root / "small").string()}, opt); });
  EXPECT_NE(e.find("sequence length 65 exceeds the model's 64 positions"), std::string::npos) << e;
  opt.seq_lens = {8};
  opt.precisions = {"fp16"};
  e = error_of([&] { bench_models({(root / "small").string()}, opt); });
  EXPECT_NE(e.find("unknown precision 'fp16' (fp32, bf16, int8)"), std::string::npos) << e;
}

TEST(Bench, OnnxRuntimeRowsWhenItIsInstalled) {
  const OrtRunner ort = find_onnxruntime();
  if (!onnx_export_available() || !ort.available()) GTEST_SKIP() << "ONNX Runtime not available: " << ort.missing;
  const fs::path root = test::temp_path("bench_ort");
  fs::remove_all(root);
  const Tokenizer tok = test::bert_vocab();
  ModelConfig c = test::tiny_config(tok, 2, 64);
  c.id2label = {"0", "1"};
  test::save_tiny_model(root / "m", tok, c, 1, HeadKind::SequenceClassification);
  BenchOptions opt;
  opt.seq_lens = {8, 16};
  opt.throughput_batch = 2;
  opt.throughput_seq = 8;
  opt.warmup = 1;
  opt.repetitions = 5;
  opt.precisions = {"fp32"};
  const auto rows = bench_models({(root / "m").string()}, opt);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].precision, "onnxruntime fp32");
  EXPECT_EQ(rows[1].parameters, rows[0].parameters);
  ASSERT_EQ(rows[1].latency.size(), 2u);
  for (const auto& l : rows[1].latency) {
    EXPECT_GT(l.p50_ms, 0);
    EXPECT_GE(l.p90_ms, l.p50_ms);
  }
  EXPECT_GT(rows[1].throughput, 0);
  EXPECT_NE(bench_markdown(rows, opt).find("| onnxruntime fp32 |"), std::string::npos);
}

}  // namespace
}  // namespace retort
