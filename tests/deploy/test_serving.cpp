// The application API and reduced-precision accuracy: a small model fine-tuned on real SST-2 rows
// keeps its dev accuracy (all 872 rows) within 1 point in bf16 and int8; Classifier agrees with the
// task evaluator; Encoder embeddings do not depend on what they are batched with; bad use is an error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "retort/finetune.h"
#include "retort/inference.h"
#include "retort/serving.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

const fs::path& root() {
  static const fs::path r = test::temp_path("serving");
  return r;
}

void head_rows(const std::string& from, const fs::path& to, int rows) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i <= rows && std::getline(in, line); ++i) out << line << "\n";  // header + rows
}

class Serving : public ::testing::Test {
 protected:
  // Fine-tunes once for the suite: 4,000 SST-2 training rows, 2 epochs, a 2-layer hidden-64 BERT.
  static void SetUpTestSuite() {
    fs::remove_all(root());
    fs::create_directories(root() / "glue/SST-2");
    head_rows(test::shared_path("data/glue/SST-2/train.tsv"), root() / "glue/SST-2/train.tsv", 4000);
    fs::copy_file(test::shared_path("data/glue/SST-2/dev.tsv"), root() / "glue/SST-2/dev.tsv");
    const Tokenizer tok = test::bert_vocab();
    ModelConfig c = test::tiny_config(tok, 2, 64);
    c.hidden_size = 64;
    c.num_attention_heads = 4;
    c.intermediate_size = 128;
    test::save_tiny_model(root() / "base", tok, c, 3);
    FinetuneConfig f;
    f.task = "sst2";
    f.model_dir = (root() / "base").string();
    f.data_dir = (root() / "glue").string();
    f.out_dir = (root() / "sst2").string();
    f.train.batch_size = 32;
    f.train.n_epoch = 2;
    f.train.learning_rate = 1e-3;
    f.train.log_interval = 1000;
    f.features.max_seq_length = 64;
    best_dir() = run_finetune(f).best_dir;
  }
  static std::string& best_dir() {
    static std::string dir;
    return dir;
  }
};

EvalResult dev_eval(const std::string& dir, Precision p) {
  const TaskSpec& spec = task_spec("sst2");
  const InferenceModel m(load_task_model(dir, spec, torch::kCPU, 0), p);
  EvalOptions eo;
  eo.features.max_seq_length = 64;
  return evaluate_examples(m, load_model_tokenizer(dir), spec, read_task_split(spec, (root() / "glue").string(), "dev"),
                           eo);
}

TEST_F(Serving, Bf16AndInt8KeepSst2DevAccuracyWithinOnePoint) {
  const EvalResult fp32 = dev_eval(best_dir(), Precision::Fp32);
  ASSERT_EQ(fp32.examples, 872);
  const double acc = fp32.metrics.at("accuracy");
  EXPECT_GT(acc, 0.60) << "the model must have learned something (majority class: 50.9%)";
  for (Precision p : {Precision::Bf16, Precision::Int8}) {
    const EvalResult r = dev_eval(best_dir(), p);
    EXPECT_LE(std::abs(r.metrics.at("accuracy") - acc), 0.01)
        << precision_name(p) << " " << r.metrics.at("accuracy") << " vs fp32 " << acc;
    int64_t same = 0;
    for (size_t i = 0; i < r.predicted_labels.size(); ++i) same += r.predicted_labels[i] == fp32.predicted_labels[i];
    EXPECT_GE(same, 872 - 20) << precision_name(p) << ": predictions that changed";
    std::printf("[ sst2 dev ] %s accuracy %.2f%% (fp32 %.2f%%), %lld of 872 predictions unchanged\n",
                precision_name(p).c_str(), 100 * r.metrics.at("accuracy"), 100 * acc, static_cast<long long>(same));
  }
}

TEST_F(Serving, ClassifierAgreesWithTheEvaluatorAndKeepsInputOrder) {
  const EvalResult ref = dev_eval(best_dir(), Precision::Fp32);
  const auto dev = read_task_split(task_spec("sst2"), (root() / "glue").string(), "dev");
  ServingOptions opt;
  opt.max_length = 64;
  opt.batch_size = 7;  // batches that cut across the length sort
  const Classifier clf(best_dir(), opt);
  EXPECT_EQ(clf.labels(), (std::vector<std::string>{"0", "1"}));
  EXPECT_FALSE(clf.regression());
  std::vector<std::string> texts;
  for (size_t i = 0; i < 100; ++i) texts.push_back(dev[i].text_a);
  const auto preds = clf.classify_batch(texts);
  ASSERT_EQ(preds.size(), 100u);
  for (size_t i = 0; i < preds.size(); ++i) {
    EXPECT_EQ(preds[i].index, ref.predicted_labels[i]) << i;
    EXPECT_EQ(preds[i].label, std::to_string(ref.predicted_labels[i]));
    EXPECT_NEAR(preds[i].score, ref.probabilities[i][static_cast<size_t>(preds[i].index)], 1e-5);
    EXPECT_NEAR(preds[i].probabilities[0] + preds[i].probabilities[1], 1.0f, 1e-5);
  }
  const Prediction one = clf.classify(texts[3]);
  EXPECT_EQ(one.index, preds[3].index);
  EXPECT_NEAR(one.score, preds[3].score, 1e-5);

  EXPECT_NE(error_of([&] { clf.classify_batch({"a", "b"}, {"c"}); }).find("got 2 texts but 1 second texts"),
            std::string::npos);
  opt.max_length = 65;
  EXPECT_NE(error_of([&] { Classifier(best_dir(), opt); }).find("max_length 65 must be between 1 and the model's 64"),
            std::string::npos);
  opt.max_length = 0;
  opt.precision = "fp8";
  EXPECT_NE(error_of([&] { Classifier(best_dir(), opt); }).find("unknown precision 'fp8'"), std::string::npos);
  EXPECT_NE(error_of([&] { Classifier((root() / "base").string()); }).find("not a sequence-classification model"),
            std::string::npos);
}

TEST_F(Serving, EncoderEmbeddingsAreUnitLengthAndIndependentOfTheBatch) {
  const Encoder enc((root() / "base").string());
  EXPECT_EQ(enc.dim(), 64);
  const std::vector<std::string> texts = {"a short one", "a much longer sentence that needs a lot more tokens than that",
                                          "a short one"};
  const torch::Tensor e = enc.embed_batch(texts);  // (3, 64)
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 64}));
  EXPECT_NEAR(e.norm(2, -1).sub(1).abs().max().item<double>(), 0.0, 1e-5);
  const std::vector<float> alone = enc.embed("a short one");
  ASSERT_EQ(alone.size(), 64u);
  const torch::Tensor a = torch::tensor(alone);
  EXPECT_LT((a - e[0]).abs().max().item<double>(), 1e-5) << "padding in the batch must not change it";
  EXPECT_LT((e[0] - e[2]).abs().max().item<double>(), 1e-6);
  EXPECT_GT((e[0] - e[1]).abs().max().item<double>(), 1e-3);
  // [CLS] pooling without normalisation is the raw hidden state at position 0: a different vector.
  const Encoder cls((root() / "base").string(), {}, Pooling::Cls, false);
  const torch::Tensor c = torch::tensor(cls.embed("a short one"));
  EXPECT_GT((c / c.norm() - a).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace retort
