// ONNX export: every model type and head passes ONNX's checker and strict shape inference, names its
// inputs and outputs as Hugging Face's exports do, and ONNX Runtime computes Retort's outputs within
// 1e-4 on a padded batch with segments; bad files and unsupported models are clear errors.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "retort/error.h"
#include "retort/fs.h"
#include "retort/onnx_export.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

Model small_model(ModelType type, HeadKind head, const std::string& act = "gelu") {
  return test::random_model(type, head, 2, act, 21);
}

std::map<std::string, torch::Tensor> padded_inputs(bool types) {
  torch::manual_seed(3);
  std::map<std::string, torch::Tensor> in;
  in["input_ids"] = torch::randint(1, 60, {3, 10}, torch::kLong);
  torch::Tensor mask = torch::ones({3, 10}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6, 10)}, 0);
  in["attention_mask"] = mask;
  if (types) {
    torch::Tensor t = torch::zeros({3, 10}, torch::kLong);
    t.index_put_({0, torch::indexing::Slice(5, 10)}, 1);
    in["token_type_ids"] = t;
  }
  return in;
}

class OnnxExport : public ::testing::TestWithParam<std::tuple<ModelType, HeadKind, std::string>> {};

TEST_P(OnnxExport, CheckedAndOnnxRuntimeAgreesWithRetort) {
  if (!onnx_export_available()) GTEST_SKIP() << "built without libonnx-dev";
  const auto [type, head, act] = GetParam();
  Model m = small_model(type, head, act);
  const fs::path path = test::temp_path("export_" + std::to_string(static_cast<int>(type)) + "_" +
                                        std::to_string(static_cast<int>(head)) + act + ".onnx");
  export_onnx(*m, path.string());
  EXPECT_NO_THROW(check_onnx(path.string()));
  const bool types = type == ModelType::Bert;
  const OnnxSignature sig = onnx_signature(path.string());
  std::vector<std::string> want_in = {"input_ids", "attention_mask"};
  if (types) want_in.push_back("token_type_ids");
  EXPECT_EQ(sig.inputs, want_in);
  std::map<HeadKind, std::vector<std::string>> want_out = {
      {HeadKind::None, {"last_hidden_state"}},
      {HeadKind::MaskedLM, {"logits"}},
      {HeadKind::SequenceClassification, {"logits"}},
      {HeadKind::QuestionAnswering, {"start_logits", "end_logits"}}};
  EXPECT_EQ(sig.outputs, want_out.at(head));

  const OrtRunner ort = find_onnxruntime();
  if (!ort.available()) GTEST_SKIP() << "ONNX Runtime not available: " << ort.missing;
  const auto in = padded_inputs(types);
  ModelOutput ref;
  {
    torch::NoGradGuard no_grad;
    ref = m->forward(in.at("input_ids"), in.at("attention_mask"), types ? in.at("token_type_ids") : torch::Tensor());
  }
  const OrtResult got = run_onnxruntime(ort, path.string(), in);
  auto expect_close = [&](const std::string& name, const torch::Tensor& want) {
    ASSERT_TRUE(got.outputs.count(name)) << name;
    const torch::Tensor& t = got.outputs.at(name);
    ASSERT_EQ(t.sizes(), want.sizes()) << name;
    const double diff = (t - want).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << name;
    EXPECT_GT(want.abs().max().item<double>(), 0.1) << name << ": a trivial output proves nothing";
  };
  switch (head) {
    case HeadKind::None: expect_close("last_hidden_state", ref.encoder.last_hidden_state); break;
    case HeadKind::MaskedLM:
    case HeadKind::SequenceClassification: expect_close("logits", ref.logits); break;
    case HeadKind::QuestionAnswering:
      expect_close("start_logits", ref.start_logits);
      expect_close("end_logits", ref.end_logits);
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(
    TypesHeadsActivations, OnnxExport,
    ::testing::Values(std::make_tuple(ModelType::Bert, HeadKind::SequenceClassification, std::string("gelu")),
                      std::make_tuple(ModelType::Bert, HeadKind::None, std::string("gelu_new")),
                      std::make_tuple(ModelType::Bert, HeadKind::QuestionAnswering, std::string("relu")),
                      std::make_tuple(ModelType::DistilBert, HeadKind::SequenceClassification, std::string("gelu")),
                      std::make_tuple(ModelType::DistilBert, HeadKind::MaskedLM, std::string("gelu")),
                      std::make_tuple(ModelType::DistilBert, HeadKind::QuestionAnswering, std::string("gelu"))));

TEST(OnnxExportErrors, BadFilesAndUnsupportedModels) {
  if (!onnx_export_available()) GTEST_SKIP() << "built without libonnx-dev";
  const fs::path bad = test::temp_path("not_a_model.onnx");
  write_file_atomic(bad.string(), "this is not protobuf");
  EXPECT_NE(error_of([&] { check_onnx(bad.string()); }).find("not_a_model.onnx"), std::string::npos);
  Model m = small_model(ModelType::Bert, HeadKind::None, "mish");
  EXPECT_NE(error_of([&] { export_onnx(*m, test::temp_path("mish.onnx").string()); })
                .find("activation 'mish' is not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace retort
