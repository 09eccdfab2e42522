// retort export: a model directory becomes model.onnx with its config and tokenizer, checked and (where
// ONNX Runtime is installed) verified against Retort; an unknown format is a one-line error.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_test_util.h"
#include "retort/onnx_export.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

TEST(CliExport, WritesACheckedOnnxDirectory) {
  if (!onnx_export_available()) GTEST_SKIP() << "built without libonnx-dev";
  const fs::path model = test::temp_path("cli_export_model"), out = test::temp_path("cli_export_out");
  fs::remove_all(model);
  fs::remove_all(out);
  const Tokenizer tok = test::bert_vocab();
  ModelConfig c = test::tiny_config(tok, 2, 64, ModelType::DistilBert);
  c.id2label = {"neg", "pos"};
  test::save_tiny_model(model, tok, c, 5, HeadKind::SequenceClassification);
  const Result r = run_cli("export " + q(model.string()) + " --out " + q(out.string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("opset 17, DistilBertForSequenceClassification); ONNX checker: ok"), std::string::npos) << r.out;
  for (const char* f : {"model.onnx", "config.json", "vocab.txt", "tokenizer.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  if (find_onnxruntime().available()) {
    EXPECT_NE(r.out.find("ONNX Runtime agrees with Retort: max |difference| "), std::string::npos) << r.out;
  }
  EXPECT_NO_THROW(check_onnx((out / "model.onnx").string()));
  expect_one_line_error(run_cli("export " + q(model.string()) + " --out " + q(out.string()) + " --format tflite"),
                        "unknown format 'tflite' (onnx)");
}

}  // namespace
}  // namespace retort

namespace retort {
namespace {

TEST(CliDownload, BadNamesAndUnreachableHubsAreOneLineErrors) {
  expect_one_line_error(run_cli("download ../etc --cache-dir " + q(test::temp_path("dl_cache").string())),
                        "invalid model name '../etc'");
  const Result r = run_cli("download acme/tiny --endpoint http://127.0.0.1:1 --cache-dir " +
                           q(test::temp_path("dl_cache").string()));
  expect_one_line_error(r, "download: http://127.0.0.1:1/api/models/acme/tiny/revision/main?blobs=true: ");
}

}  // namespace
}  // namespace retort
