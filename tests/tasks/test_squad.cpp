// SQuAD on the real excerpt: the reader, sliding windows whose targets recover the answers, an oracle
// decode that must score (nearly) 100 with the official metric, and a tiny fine-tuning run end to end.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/metrics.h"
#include "retort/squad.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

const std::string kDev = test::shared_path("data/squad/dev-v1.1-excerpt.json");
const std::string kTrain = test::shared_path("data/squad/train-v1.1-excerpt.json");

using test::bert_vocab;
Tokenizer vocab() { return bert_vocab(); }

// The context text covered by a feature's token span [s, e].
std::string span_text(const SquadQuestion& q, const SquadFeature& f, int64_t s, int64_t e) {
  std::string out;
  int64_t cp = 0;
  const int64_t b = f.offsets[static_cast<size_t>(s)].first, end = f.offsets[static_cast<size_t>(e)].second;
  for (size_t i = 0; i < q.context.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(q.context[i]);
    if ((c & 0xC0) != 0x80 && i > 0) ++cp;
    if (cp >= b && cp < end) out += q.context[i];
  }
  return out;
}

TEST(Squad, ReaderOnTheRealExcerpt) {
  const auto dev = read_squad(kDev);
  ASSERT_EQ(dev.size(), 810u);
  EXPECT_EQ(dev[0].id, "56be4db0acb8001400a502ec");
  EXPECT_EQ(dev[0].question, "Which NFL team represented the AFC at Super Bowl 50?");
  EXPECT_EQ(dev[0].answers, (std::vector<std::string>{"Denver Broncos", "Denver Broncos", "Denver Broncos"}));
  EXPECT_EQ(dev[0].answer_starts[0], 177);
  EXPECT_EQ(read_squad(kTrain).size(), 269u);
  const fs::path bad = test::temp_path("bad_squad.json");
  write_file_atomic(bad.string(), R"({"data":[{"paragraphs":[{"context":"short","qas":[{"id":"q1","question":"?",)"
                                  R"("answers":[{"text":"longer answer","answer_start":2}]}]}]}]})");
  std::string e = error_of([&] { read_squad(bad.string()); });
  EXPECT_NE(e.find("question q1: answer_start 2"), std::string::npos) << e;
  write_file_atomic(bad.string(), R"({"data":[{"paragraphs":[{"qas":[]}]}]})");
  e = error_of([&] { read_squad(bad.string()); });
  EXPECT_NE(e.find("missing field 'context'"), std::string::npos) << e;
}

TEST(Squad, WindowsRecoverTheAnswersAndAnOracleScoresFull) {
  const Tokenizer tok = vocab();
  const auto qs = read_squad(kTrain);
  SquadOptions opt;
  opt.max_seq_length = 96;  // small windows: most contexts need several
  opt.doc_stride = 32;
  const auto feats = make_squad_features(tok, qs, opt);
  EXPECT_GT(feats.size(), 2 * qs.size());
  size_t with_answer = 0, recovered = 0;
  std::vector<size_t> per_question(qs.size());
  for (const auto& f : feats) {
    ASSERT_LE(f.ids.size(), 96u);
    ASSERT_EQ(f.ids.size(), f.offsets.size());
    ASSERT_EQ(f.ids.front(), tok.cls_id());
    ++per_question[f.question];
    if (f.start_position == 0) continue;
    ++with_answer;
    const auto& q = qs[f.question];
    recovered += squad_normalize(span_text(q, f, f.start_position, f.end_position)) == squad_normalize(q.answers[0]);
  }
  for (size_t n : per_question) EXPECT_GE(n, 1u);
  EXPECT_GE(with_answer, qs.size()) << "every answer lies in at least one window";
  EXPECT_GE(static_cast<double>(recovered) / with_answer, 0.97) << "token spans give back the answer text";

  // Oracle logits at the target tokens: the decoder + official metric must give ~100.
  std::vector<std::vector<float>> s(feats.size()), e(feats.size());
  for (size_t i = 0; i < feats.size(); ++i) {
    s[i].assign(feats[i].ids.size(), 0.f);
    e[i].assign(feats[i].ids.size(), 0.f);
    if (feats[i].start_position > 0) {
      s[i][static_cast<size_t>(feats[i].start_position)] = 10.f;
      e[i][static_cast<size_t>(feats[i].end_position)] = 10.f;
    }
  }
  const SquadEval r = score_squad(qs, decode_squad(qs, feats, s, e, opt), false);
  EXPECT_GE(r.exact_match, 0.97);
  EXPECT_GE(r.f1, 0.98);
  EXPECT_EQ(r.questions, 269);
  // v2: with the [CLS] logits highest everywhere, every answer is "" (scored against real answers: 0).
  for (auto& v : s) v[0] = 100.f;
  for (auto& v : e) v[0] = 100.f;
  opt.version_2 = true;
  const auto empty = decode_squad(qs, feats, s, e, opt);
  EXPECT_EQ(empty.at(qs[0].id), "");
}

TEST(Squad, FinetunesEndToEndOnATinyModel) {
  const fs::path root = test::temp_path("squad_ft");
  fs::remove_all(root);
  fs::create_directories(root / "data");
  fs::copy_file(kTrain, root / "data" / "train-v1.1-excerpt.json");
  fs::copy_file(kDev, root / "data" / "dev-v1.1-excerpt.json");
  const Tokenizer tok = vocab();
  test::save_tiny_model(root / "model", tok, test::tiny_config(tok, 1, 256), 5);

  nlohmann::json j = {{"model", (root / "model").string()}, {"data", (root / "data").string()},
                      {"out", (root / "out").string()}, {"max_seq_length", 192}, {"doc_stride", 96},
                      {"batch_size", 16}, {"n_epoch", 1}, {"max_train_examples", 64}, {"max_eval_examples", 40},
                      {"learning_rate", 1e-3}, {"log_interval", 100}};
  const SquadFinetuneResult r = run_squad_finetune(SquadFinetuneConfig::from_json(j));
  EXPECT_EQ(r.best_epoch, 1);
  EXPECT_EQ(r.best.questions, 40);
  EXPECT_GE(r.best.f1, 0.0);
  EXPECT_LE(r.best.f1, 1.0);
  EXPECT_EQ(r.best.predictions.size(), 40u);
  EXPECT_EQ(ModelConfig::load(r.best_dir).architectures.at(0), "BertForQuestionAnswering");
  Model back = load_qa_model(r.best_dir, torch::kCPU, 0);
  SquadOptions so;
  so.max_seq_length = 192;
  so.doc_stride = 96;
  so.max_questions = 40;
  const SquadEval again = evaluate_squad(*back, Tokenizer::load(r.best_dir), read_squad(kDev), so);
  EXPECT_EQ(again.predictions, r.best.predictions) << "the saved model answers as the trained one did";
  EXPECT_TRUE(fs::exists(root / "out" / "predictions.json"));
  const std::string e = error_of([&] { run_squad_finetune(SquadFinetuneConfig::from_json({{"model", "x"}, {"out", "y"}, {"data", (root / "nowhere").string()}})); });
  EXPECT_FALSE(e.empty());
}

}  // namespace
}  // namespace retort
