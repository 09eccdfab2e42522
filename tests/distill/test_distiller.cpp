// The distillation loop end to end on a tiny corpus made from real text: pre-training lowers the MLM
// loss, distillation logs every term, a run stopped and resumed ends with exactly the weights of an
// uninterrupted run, and bad jobs fail clearly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/corpus.h"
#include "retort/distiller.h"
#include "retort/error.h"
#include "retort/safetensors.h"
#include "retort/student.h"
#include "retort/tokenizer.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = test::temp_path("retort_distiller");

// A corpus of the first lines of WikiText-2 (valid) and a tiny randomly initialised MLM model.
class Distiller : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
    std::ifstream in(test::shared_path("data/corpus/wikitext-2-valid.tokens"));
    std::ofstream out(kRoot / "text.txt");
    std::string line;
    for (int i = 0; i < 400 && std::getline(in, line); ++i) out << line << "\n";
    out.close();
    const Tokenizer tok = Tokenizer::load(test::shared_path("vocab/bert-base-uncased"));
    CorpusOptions co;
    co.max_seq_len = 64;
    prepare_corpus({(kRoot / "text.txt").string()}, tok, (kRoot / "corpus").string(), co);
    test::save_tiny_model(kRoot / "init", tok, test::tiny_config(tok, 2, 64), 11);
  }

  static DistillJob job(const std::string& run, const std::string& teacher = "") {
    DistillJob j;
    j.corpus_dir = (kRoot / "corpus").string();
    j.student_dir = (kRoot / "init").string();
    j.teacher_dir = teacher;
    j.run_dir = (kRoot / run).string();
    fs::remove_all(j.run_dir);
    j.config.train.batch_size = 8;
    j.config.train.gradient_accumulation_steps = 2;
    j.config.train.max_steps = 6;
    j.config.train.log_interval = 1;
    j.config.train.checkpoint_interval = 0;
    j.config.train.learning_rate = 1e-3;
    return j;
  }
};

std::vector<nlohmann::json> metrics(const std::string& run) {
  std::ifstream in(run + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST_F(Distiller, PretrainingLowersTheMlmLoss) {
  auto j = job("pretrain");
  j.config.train.max_steps = 24;
  j.config.train.learning_rate = 2e-2;
  auto r = run_distillation(j);
  ASSERT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 24);
  auto m = metrics(j.run_dir);
  ASSERT_EQ(m.size(), 24u);
  EXPECT_FALSE(m[0].contains("loss_ce"));
  EXPECT_LT(m.back()["loss_mlm"].get<double>(), m.front()["loss_mlm"].get<double>() - 0.3);  // seeded: 10.34 -> 9.88 here
  // The final student is a loadable HF directory with its tokenizer.
  Model back = load_model(r.final_dir);
  EXPECT_EQ(back->head, HeadKind::MaskedLM);
  EXPECT_NO_THROW(Tokenizer::load(r.final_dir));
  auto e = evaluate_mlm(r.final_dir, j.corpus_dir, 5, 16, 64);
  EXPECT_GT(e.predicted, 0);
  EXPECT_NEAR(e.perplexity, std::exp(e.loss), 1e-6 * e.perplexity);
}

TEST_F(Distiller, DistillationLogsEveryTermAndResumesExactly) {
  const std::string teacher = (kRoot / "init").string();  // any MLM model serves as a teacher here
  auto full = job("full", teacher);
  full.config.train.checkpoint_interval = 2;
  auto r1 = run_distillation(full);
  auto m = metrics(full.run_dir);
  ASSERT_EQ(m.size(), 6u);
  for (const char* k : {"loss_ce", "loss_mlm", "loss_cos", "lr", "grad_norm", "tokens_per_s"}) EXPECT_TRUE(m[0].contains(k)) << k;

  auto split = job("split", teacher);
  split.config.train.checkpoint_interval = 2;
  split.stop_at_step = 3;
  auto first = run_distillation(split);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 3);
  torch::manual_seed(12345);  // the resumed run must restore every generator itself
  split.resume = true;
  split.stop_at_step = 0;
  auto second = run_distillation(split);
  EXPECT_EQ(second.steps, 6);
  SafetensorsFile a(r1.final_dir + "/model.safetensors"), b(second.final_dir + "/model.safetensors");
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) EXPECT_TRUE(torch::equal(a.tensor(n), b.tensor(n))) << n;
}

// TinyBERT's general distillation: a narrower, shallower student learns the teacher's attention scores,
// hidden states and embeddings through per-layer projections; no vocabulary term at all. The terms fall,
// and a stopped run resumes to the same weights (the projections come back from extra.pt).
TEST_F(Distiller, TinyBertGeneralDistillationLearnsTheIntermediateLayersAndResumes) {
  const Tokenizer tok = Tokenizer::load(test::shared_path("vocab/bert-base-uncased"));
  const fs::path teacher = kRoot / "teacher4", student = kRoot / "student-narrow";
  if (!fs::exists(student)) {
    ModelConfig tc = test::tiny_config(tok, 4, 64);
    tc.initializer_range = 0.2;  // attention scores well away from 0, so there is something to learn
    test::save_tiny_model(teacher, tok, tc, 21);
    Model t = load_model(teacher.string());
    StudentOptions so;
    so.random_init = true;
    so.n_layers = 2;
    so.hidden_size = 16;
    so.intermediate_size = 32;
    so.format = StudentFormat::Bert;
    Model s = init_student_from_teacher(*t, so);
    save_model(*s, student.string());
    tok.save(student.string());
  }
  auto make = [&](const std::string& run) {
    auto j = job(run, teacher.string());
    j.student_dir = student.string();
    j.config = DistillConfig::from_json({{"alpha_ce", 0.0}, {"alpha_mlm", 0.0}, {"alpha_cos", 0.0},
                                         {"alpha_att", 1.0}, {"alpha_hidden", 1.0}, {"alpha_emb", 1.0},
                                         {"projection", "per_layer"}, {"batch_size", 8},
                                         {"gradient_accumulation_steps", 1}, {"max_steps", 16}, {"log_interval", 1},
                                         {"checkpoint_interval", 0}, {"learning_rate", 1e-2}, {"warmup_prop", 0.0}});
    return j;
  };
  auto full = make("tiny-full");
  auto r = run_distillation(full);
  auto m = metrics(full.run_dir);
  ASSERT_EQ(m.size(), 16u);
  EXPECT_FALSE(m[0].contains("loss_ce"));
  EXPECT_FALSE(m[0].contains("loss_mlm"));
  for (const char* k : {"loss_att", "loss_hidden", "loss_emb"}) {
    ASSERT_TRUE(m[0].contains(k)) << k;
    EXPECT_LT(m.back()[k].get<double>(), 0.7 * m.front()[k].get<double>()) << k << " " << m.front()[k] << " -> " << m.back()[k];
  }
  Model back = load_model(r.final_dir);  // the student alone: no projection in the saved model
  EXPECT_EQ(back->config.hidden_size, 16);
  SafetensorsFile fin(r.final_dir + "/model.safetensors");
  for (const auto& n : fin.names()) EXPECT_EQ(n.find("fit_dense"), std::string::npos) << n;

  auto split = make("tiny-split");
  split.stop_at_step = 5;
  EXPECT_TRUE(run_distillation(split).interrupted);
  EXPECT_TRUE(fs::exists(fs::path(split.run_dir) / "checkpoint-5" / "extra.pt"));
  torch::manual_seed(999);
  split.resume = true;
  split.stop_at_step = 0;
  auto second = run_distillation(split);
  SafetensorsFile a(r.final_dir + "/model.safetensors"), b(second.final_dir + "/model.safetensors");
  for (const auto& n : a.names()) EXPECT_TRUE(torch::equal(a.tensor(n), b.tensor(n))) << n;
  // Every weight 0 (intermediate included) is refused; a mapping that does not fit fails before training.
  EXPECT_THROW(DistillConfig::from_json({{"alpha_ce", 0.0}, {"alpha_mlm", 0.0}, {"alpha_cos", 0.0}}), Error);
  auto bad = make("tiny-bad");
  bad.config.intermediate.layer_map = {1, 2, 3};
  EXPECT_THROW(run_distillation(bad), Error);
}

// MobileBERT's progressive transfer: a MobileBERT student of the teacher's width learns layer 0 (with the
// embeddings), then layer 1 with layer 0 frozen, then everything jointly on MLM + soft targets.
TEST_F(Distiller, MobileBertProgressiveTransferTrainsOneLayerPerStageThenJointly) {
  const Tokenizer tok = Tokenizer::load(test::shared_path("vocab/bert-base-uncased"));
  const fs::path teacher = kRoot / "teacher2", student = kRoot / "student-mobile";
  ModelConfig tc = test::tiny_config(tok, 2, 64);
  tc.initializer_range = 0.2;
  test::save_tiny_model(teacher, tok, tc, 31);
  {
    Model t = load_model(teacher.string());
    StudentOptions so;
    so.random_init = true;
    so.n_layers = 2;
    so.format = StudentFormat::MobileBert;
    so.embedding_size = 8;
    so.bottleneck_size = 16;
    so.feedforward_networks = 2;
    Model s = init_student_from_teacher(*t, so);
    EXPECT_EQ(s->config.model_type, ModelType::MobileBert);
    EXPECT_EQ(s->config.hidden_size, 32);
    save_model(*s, student.string());
    tok.save(student.string());
  }
  auto j = job("mobile", teacher.string());
  j.student_dir = student.string();
  j.config = DistillConfig::from_json({{"alpha_ce", 1.0}, {"alpha_mlm", 1.0}, {"alpha_cos", 0.0}, {"alpha_att", 1.0},
                                       {"alpha_hidden", 1.0}, {"alpha_emb", 1.0}, {"attention_loss", "kl"},
                                       {"projection", "none"}, {"progressive_steps_per_layer", 4},
                                       {"batch_size", 8}, {"gradient_accumulation_steps", 1}, {"max_steps", 3},
                                       {"log_interval", 1}, {"checkpoint_interval", 0}, {"learning_rate", 1e-2},
                                       {"warmup_prop", 0.0}});
  auto r = run_distillation(j);
  ASSERT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 3);
  const std::string s0 = j.run_dir + "/stage-0/final", s1 = j.run_dir + "/stage-1/final";
  SafetensorsFile init(student.string() + "/model.safetensors"), a(s0 + "/model.safetensors"),
      b(s1 + "/model.safetensors"), fin(r.final_dir + "/model.safetensors");
  auto changed = [](SafetensorsFile& x, SafetensorsFile& y, const std::string& n) {
    return !torch::equal(x.tensor(n), y.tensor(n));
  };
  const std::string l0 = "mobilebert.encoder.layer.0.attention.self.query.weight";
  const std::string l1 = "mobilebert.encoder.layer.1.attention.self.query.weight";
  const std::string emb = "mobilebert.embeddings.embedding_transformation.weight";
  EXPECT_TRUE(changed(init, a, l0) && changed(init, a, emb));  // stage 0: layer 0 and the embeddings
  EXPECT_FALSE(changed(init, a, l1));                          // ... and nothing else
  EXPECT_TRUE(changed(a, b, l1));                              // stage 1: layer 1
  EXPECT_FALSE(changed(a, b, l0) || changed(a, b, emb));       // earlier layers frozen (scale 0)
  EXPECT_TRUE(changed(b, fin, l0) && changed(b, fin, l1));     // joint: everything
  auto m0 = metrics(j.run_dir + "/stage-0"), m1 = metrics(j.run_dir + "/stage-1"), mj = metrics(j.run_dir);
  ASSERT_EQ(m0.size(), 4u);
  EXPECT_TRUE(m0[0].contains("loss_emb") && m0[0].contains("loss_att") && m0[0].contains("loss_hidden"));
  EXPECT_FALSE(m1[0].contains("loss_emb"));
  EXPECT_FALSE(m1[0].contains("loss_mlm"));
  EXPECT_LT(m0.back()["loss_hidden"].get<double>(), m0.front()["loss_hidden"].get<double>());
  ASSERT_EQ(mj.size(), 3u);
  EXPECT_TRUE(mj[0].contains("loss_ce") && mj[0].contains("loss_mlm"));
  EXPECT_FALSE(mj[0].contains("loss_att"));
  EXPECT_EQ(load_model(r.final_dir)->config.model_type, ModelType::MobileBert);
  // A progressive run without a joint loss is refused.
  EXPECT_THROW(DistillConfig::from_json({{"alpha_ce", 0.0}, {"alpha_mlm", 0.0}, {"alpha_cos", 0.0},
                                         {"alpha_hidden", 1.0}, {"progressive_steps_per_layer", 2}}),
               Error);
}

TEST_F(Distiller, Bf16AutocastRuns) {
  auto j = job("bf16", (kRoot / "init").string());
  j.config.train.bf16 = true;
  j.config.teacher_bf16 = true;
  j.config.train.max_steps = 2;
  auto r = run_distillation(j);
  EXPECT_EQ(r.steps, 2);
  EXPECT_TRUE(std::isfinite(r.last.loss));
}

TEST_F(Distiller, BadJobsFailClearly) {
  auto j = job("bad");
  j.resume = true;
  EXPECT_THROW(run_distillation(j), Error);  // no checkpoint to resume from
  auto k = job("bad2", "/nonexistent/teacher");
  EXPECT_THROW(run_distillation(k), Error);
  EXPECT_THROW(DistillConfig::from_json({{"alpha_clm", 1.0}}), Error);
  EXPECT_THROW(DistillConfig::from_json({{"word_mask", 0.5}}), Error);
  EXPECT_THROW(DistillConfig::from_json({{"temperature", "hot"}}), Error);
  auto c = DistillConfig::from_json({{"temperature", 3.0}, {"alpha_cos", 0.0}, {"batch_size", 7}});
  EXPECT_DOUBLE_EQ(c.loss.temperature, 3.0);
  EXPECT_EQ(c.train.batch_size, 7);
  EXPECT_EQ(DistillConfig::from_json(c.to_json()).to_json(), c.to_json());
}

}  // namespace
}  // namespace retort
