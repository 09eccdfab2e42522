// Fine-tuning end to end on tiny models and real GLUE rows: a classifier that must fit its training
// rows, the saved best model reloading to the same predictions, task-specific distillation making a
// student agree with its teacher, regression on STS-B rows, batching and truncation, and heads that
// do not fit a task.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/finetune.h"
#include "retort/fs.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

const fs::path kRoot = test::temp_path("finetune");

// The first `n` data rows of a real GLUE file, header kept.
void head_rows(const std::string& from, const fs::path& to, int n, bool header = true) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i < n + (header ? 1 : 0) && std::getline(in, line); ++i) out << line << "\n";
}

void save_tiny(const fs::path& dir, int64_t layers, uint64_t seed, ModelType type = ModelType::Bert) {
  const Tokenizer tok = test::bert_vocab();
  test::save_tiny_model(dir, tok, test::tiny_config(tok, layers, 128, type), seed);
}

class Finetune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kRoot);
    for (const char* t : {"SST-2", "STS-B"}) fs::create_directories(kRoot / "glue" / t);
    // Train and dev are the same 48 rows: a model that learns must fit them.
    head_rows(test::shared_path("data/glue/SST-2/train.tsv"), kRoot / "glue/SST-2/train.tsv", 48);
    head_rows(test::shared_path("data/glue/SST-2/train.tsv"), kRoot / "glue/SST-2/dev.tsv", 48);
    head_rows(test::shared_path("data/glue/STS-B/train.tsv"), kRoot / "glue/STS-B/train.tsv", 16);
    head_rows(test::shared_path("data/glue/STS-B/train.tsv"), kRoot / "glue/STS-B/dev.tsv", 16);
    save_tiny(kRoot / "bert", 2, 3);
    save_tiny(kRoot / "distil", 1, 4, ModelType::DistilBert);
  }

  static FinetuneConfig config(const std::string& task, const std::string& model, const std::string& out) {
    FinetuneConfig c;
    c.task = task;
    c.model_dir = (kRoot / model).string();
    c.data_dir = (kRoot / "glue").string();
    c.out_dir = (kRoot / out).string();
    c.train.batch_size = 16;
    c.train.n_epoch = 12;
    c.train.learning_rate = 3e-3;
    c.train.log_interval = 100;
    c.features.max_seq_length = 64;
    fs::remove_all(c.out_dir);
    return c;
  }
};

TEST_F(Finetune, ClassifierFitsItsRowsAndTheBestModelReloads) {
  const FinetuneConfig cfg = config("sst2", "bert", "sst2");
  const FinetuneResult r = run_finetune(cfg);
  ASSERT_EQ(r.epochs.size(), 12u);
  const double first = r.epochs.front()["eval"]["dev"]["metrics"]["accuracy"];
  EXPECT_GE(r.best_score, 0.9) << "48 rows, 36 steps: the model must fit them (first epoch " << first << ")";
  EXPECT_GT(r.best_score, first);
  EXPECT_GT(r.epochs.front()["train_loss"].get<double>(), r.epochs.back()["train_loss"].get<double>());
  EXPECT_EQ(r.train_examples, 48);

  // The saved model: a BertForSequenceClassification directory that gives the same predictions.
  const ModelConfig saved = ModelConfig::load(r.best_dir);
  EXPECT_EQ(saved.architectures.at(0), "BertForSequenceClassification");
  EXPECT_EQ(saved.id2label, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(saved.extra.at("finetuning_task"), "sst2");
  Model back = load_task_model(r.best_dir, task_spec("sst2"), torch::kCPU, 0);
  const auto dev = read_task_split(task_spec("sst2"), cfg.data_dir, "dev");
  EvalOptions eo;
  eo.features.max_seq_length = 64;
  const EvalResult e = evaluate_examples(*back, Tokenizer::load(r.best_dir), task_spec("sst2"), dev, eo);
  EXPECT_DOUBLE_EQ(e.score, r.best_score);
  EXPECT_EQ(e.predicted_labels, r.best_eval.at(0).predicted_labels);
  for (const auto& p : e.probabilities) EXPECT_NEAR(p[0] + p[1], 1.0f, 1e-5);

  // bf16 evaluation agrees with fp32 on nearly every row.
  eo.bf16 = true;
  const EvalResult b = evaluate_examples(*back, Tokenizer::load(r.best_dir), task_spec("sst2"), dev, eo);
  EXPECT_NEAR(b.score, e.score, 0.05);

  const auto json = nlohmann::json::parse(read_file(cfg.out_dir + "/eval_results.json"));
  EXPECT_EQ(json["best_epoch"], r.best_epoch);
  EXPECT_TRUE(fs::exists(cfg.out_dir + "/metrics.jsonl"));

  // Task-specific distillation: a 1-layer DistilBERT student trained on the teacher's soft targets
  // alone (alpha_task 0) must reproduce the teacher's predictions.
  FinetuneConfig d = config("sst2", "distil", "sst2-distilled");
  d.teacher_dir = r.best_dir;
  d.alpha_task = 0.0;
  d.alpha_ce = 1.0;
  const FinetuneResult dr = run_finetune(d);
  Model student = load_task_model(dr.best_dir, task_spec("sst2"), torch::kCPU, 0);
  EXPECT_EQ(student->config.model_type, ModelType::DistilBert);
  const EvalResult s = evaluate_examples(*student, Tokenizer::load(dr.best_dir), task_spec("sst2"), dev, eo);
  size_t agree = 0;
  for (size_t i = 0; i < dev.size(); ++i) agree += s.predicted_labels[i] == b.predicted_labels[i];
  EXPECT_GE(static_cast<double>(agree) / dev.size(), 0.85) << "student/teacher agreement";
  const auto log = read_file(d.out_dir + "/metrics.jsonl");
  EXPECT_NE(log.find("loss_ce"), std::string::npos);
}

// TinyBERT's task-specific distillation in two `finetune` runs: stage 1 trains a narrower student on the
// teacher's attention scores, hidden states and embeddings alone (so best/ is the last epoch's model),
// stage 2 on the teacher's logits with the soft cross-entropy; the student then agrees with the teacher.
TEST_F(Finetune, TinyBertTwoStageTaskDistillation) {
  const FinetuneResult teacher = run_finetune(config("sst2", "bert", "tiny-teacher"));
  ASSERT_GE(teacher.best_score, 0.9);
  const Tokenizer tok = test::bert_vocab();
  ModelConfig narrow = test::tiny_config(tok, 1, 128);
  narrow.hidden_size = 16;
  narrow.intermediate_size = 32;
  test::save_tiny_model(kRoot / "narrow", tok, narrow, 8);

  FinetuneConfig s1 = config("sst2", "narrow", "tiny-stage1");
  s1.teacher_dir = teacher.best_dir;
  s1.alpha_task = s1.alpha_ce = 0.0;
  s1.intermediate.alpha_att = s1.intermediate.alpha_hidden = s1.intermediate.alpha_emb = 1.0;
  s1.intermediate.layer_map = {2};  // the student's one layer learns the teacher's last
  s1.train.n_epoch = 6;
  s1.train.log_interval = 1;
  const FinetuneResult r1 = run_finetune(s1);
  EXPECT_EQ(r1.best_epoch, 6);  // intermediate terms only: the last epoch is kept
  std::vector<nlohmann::json> lines;
  {
    std::ifstream in(s1.out_dir + "/metrics.jsonl");
    for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  }
  ASSERT_GE(lines.size(), 6u);
  // The hidden-state terms fall steadily; the attention term of these small-weight models is ~0.01 and
  // varies more from batch to batch than it falls in 18 steps (the distiller's test sees it fall).
  for (const char* k : {"loss_hidden", "loss_emb"}) {
    ASSERT_TRUE(lines.front().contains(k)) << k;
    EXPECT_LT(lines.back()[k].get<double>(), 0.95 * lines.front()[k].get<double>()) << k;
  }
  ASSERT_TRUE(lines.back().contains("loss_att"));
  EXPECT_TRUE(std::isfinite(lines.back()["loss_att"].get<double>()));

  FinetuneConfig s2 = config("sst2", "narrow", "tiny-stage2");
  s2.model_dir = r1.best_dir;
  s2.teacher_dir = teacher.best_dir;
  s2.alpha_task = 0.0;
  s2.alpha_ce = 1.0;
  s2.temperature = 1.0;
  s2.prediction_loss = "soft_ce";
  s2.train.n_epoch = 20;
  s2.train.learning_rate = 1e-2;
  const FinetuneResult r2 = run_finetune(s2);
  const auto dev = read_task_split(task_spec("sst2"), s2.data_dir, "dev");
  EvalOptions eo;
  eo.features.max_seq_length = 64;
  Model t = load_task_model(teacher.best_dir, task_spec("sst2"), torch::kCPU, 0);
  Model st = load_task_model(r2.best_dir, task_spec("sst2"), torch::kCPU, 0);
  EXPECT_EQ(st->config.hidden_size, 16);
  const EvalResult et = evaluate_examples(*t, tok, task_spec("sst2"), dev, eo);
  const EvalResult es = evaluate_examples(*st, tok, task_spec("sst2"), dev, eo);
  size_t agree = 0;
  for (size_t i = 0; i < dev.size(); ++i) agree += et.predicted_labels[i] == es.predicted_labels[i];
  EXPECT_GE(static_cast<double>(agree) / dev.size(), 0.85) << "student/teacher agreement";

  // Bad configurations are refused before training.
  FinetuneConfig bad = s1;
  bad.teacher_dir.clear();
  EXPECT_THROW(run_finetune(bad), Error);  // intermediate terms need a teacher
  EXPECT_THROW(FinetuneConfig::from_json({{"prediction_loss", "hinge"}}), Error);
  bad = s1;
  bad.intermediate.layer_map = {1, 2};
  EXPECT_THROW(run_finetune(bad), Error);  // two teacher layers for a one-layer student
}

TEST_F(Finetune, RegressionOnStsbRows) {
  FinetuneConfig cfg = config("stsb", "bert", "stsb");
  cfg.train.n_epoch = 60;  // scores of sentence pairs are harder to memorise than sentiment words
  cfg.train.batch_size = 8;
  const FinetuneResult r = run_finetune(cfg);
  EXPECT_GT(r.epochs.front()["train_loss"].get<double>(), 2 * r.epochs.back()["train_loss"].get<double>());
  EXPECT_GT(r.best_score, 0.5) << "Pearson/Spearman on the rows it trained on";
  const ModelConfig saved = ModelConfig::load(r.best_dir);
  EXPECT_EQ(saved.num_labels(), 1);
  EXPECT_EQ(saved.problem_type, "regression");
  EXPECT_EQ(r.best_eval.at(0).predicted_scores.size(), 16u);
  // A regression head cannot serve a classification task.
  const std::string e = error_of([&] { load_task_model(r.best_dir, task_spec("sst2"), torch::kCPU, 0); });
  EXPECT_NE(e.find("has 1 output, task sst2 needs 2"), std::string::npos) << e;
}

TEST_F(Finetune, HeadsThatDoNotFit) {
  // A 3-label classifier for a 2-label task; a model fine-tuned for CoLA used for RTE (both 2 labels).
  LoadOptions o;
  o.head_from_config = false;
  o.head = HeadKind::SequenceClassification;
  o.id2label = {"a", "b", "c"};
  Model three = load_model((kRoot / "bert").string(), o);
  save_model(*three, (kRoot / "three").string());
  std::string e = error_of([] { load_task_model((kRoot / "three").string(), task_spec("sst2"), torch::kCPU, 0); });
  EXPECT_NE(e.find("the model's head has 3 outputs, task sst2 needs 2"), std::string::npos) << e;
  o.id2label = {"0", "1"};
  Model cola = load_model((kRoot / "bert").string(), o);
  cola->config.extra["finetuning_task"] = "cola";
  save_model(*cola, (kRoot / "cola").string());
  e = error_of([] { load_task_model((kRoot / "cola").string(), task_spec("rte"), torch::kCPU, 0); });
  EXPECT_NE(e.find("fine-tuned for cola, not rte"), std::string::npos) << e;
  // The right number of labels with another task's names (or another order): refused.
  o.id2label = {"entailment", "not_entailment"};
  Model named = load_model((kRoot / "bert").string(), o);
  save_model(*named, (kRoot / "named").string());
  e = error_of([] { load_task_model((kRoot / "named").string(), task_spec("sst2"), torch::kCPU, 0); });
  EXPECT_NE(e.find("labels (entailment, not_entailment) are not task sst2's (0, 1)"), std::string::npos) << e;
  EXPECT_NO_THROW(load_task_model((kRoot / "named").string(), task_spec("rte"), torch::kCPU, 0));
  e = error_of([] {
    FinetuneConfig f;
    f.task = "sst5";
    run_finetune(f);
  });
  EXPECT_NE(e.find("unknown task 'sst5'"), std::string::npos) << e;
}

TEST(TaskFeatures, BatchesCoverEveryRowOnceAndTruncationKeepsHeadAndTail) {
  const Tokenizer tok = Tokenizer::load(test::shared_path("vocab/bert-base-uncased"));
  std::vector<TaskExample> ex;
  for (int i = 0; i < 37; ++i) {
    TaskExample e;
    e.text_a = std::string(static_cast<size_t>(i % 7 + 1) * 4, 'a') + " word " + std::to_string(i);
    e.label = i % 2;
    ex.push_back(e);
  }
  FeatureOptions fo;
  const TaskFeatures f = make_features(tok, ex, fo, false);
  const auto batches = length_grouped_batches(f, 8, true, 5);
  std::multiset<size_t> seen;
  for (const auto& b : batches) {
    EXPECT_LE(b.size(), 8u);
    seen.insert(b.begin(), b.end());
  }
  ASSERT_EQ(seen.size(), 37u);
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(seen.count(i), 1u);
  EXPECT_EQ(batches, length_grouped_batches(f, 8, true, 5)) << "seeded";
  EXPECT_NE(batches, length_grouped_batches(f, 8, true, 6));
  const TaskBatch b = make_task_batch(f, ex, batches[0], TaskKind::Classification, tok.pad_id(), true, torch::kCPU);
  EXPECT_EQ(b.input_ids.size(0), static_cast<int64_t>(batches[0].size()));
  EXPECT_EQ(b.attention_mask.sum().item<int64_t>(), b.tokens);
  EXPECT_EQ(b.labels.dtype(), torch::kLong);

  // head+tail: 1 + 4 head + 10 tail + 1 tokens of a 40-word text.
  std::string longtext;
  for (int i = 0; i < 40; ++i) longtext += "w" + std::to_string(i) + " ";
  TaskExample l;
  l.text_a = longtext;
  fo.max_seq_length = 16;
  fo.truncation = "head+tail";
  fo.head_tokens = 4;
  const auto full = tok.encode(longtext, [] {
    EncodeOptions o;
    o.add_special_tokens = false;
    return o;
  }()).ids;
  const auto ht = make_features(tok, {l}, fo, false).ids[0];
  ASSERT_EQ(ht.size(), 16u);
  EXPECT_EQ(ht.front(), tok.cls_id());
  EXPECT_EQ(ht.back(), tok.sep_id());
  EXPECT_TRUE(std::equal(ht.begin() + 1, ht.begin() + 5, full.begin()));
  EXPECT_TRUE(std::equal(ht.begin() + 5, ht.end() - 1, full.end() - 10));
  fo.truncation = "middle";
  EXPECT_THROW(make_features(tok, {l}, fo, false), Error);
  // A pair task encodes [CLS] A [SEP] [SEP] for an empty second text instead of dropping the pair.
  TaskExample empty_b;
  empty_b.text_a = "only a";
  fo = FeatureOptions{};
  const TaskFeatures pf = make_features(tok, {empty_b}, fo, true);
  EXPECT_EQ(pf.ids[0].size(), 5u);
  EXPECT_EQ(pf.type_ids[0].back(), 1);
}

}  // namespace
}  // namespace retort
