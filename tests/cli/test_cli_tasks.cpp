// retort finetune / evaluate / predict / glue end to end on a tiny model and real SST-2 / RTE rows,
// and their bad input: unknown tasks, missing data, a model whose head does not fit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli/cli_test_util.h"
#include "retort/checkpoint.h"
#include "retort/tokenizer.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = test::temp_path("cli_tasks");

void head_rows(const std::string& from, const fs::path& to, int n) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i < n + 1 && std::getline(in, line); ++i) out << line << "\n";
}

class CliTasks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(kRoot);
    for (const char* t : {"SST-2", "RTE"}) {
      fs::create_directories(kRoot / "glue" / t);
      head_rows(test::shared_path("data/glue/") + t + "/train.tsv", kRoot / "glue" / t / "train.tsv", 32);
      head_rows(test::shared_path("data/glue/") + t + "/dev.tsv", kRoot / "glue" / t / "dev.tsv", 24);
    }
    const Tokenizer tok = test::bert_vocab();
    test::save_tiny_model(kRoot / "model", tok, test::tiny_config(tok, 1), 8);
  }
  static std::string p(const std::string& rel) { return q((kRoot / rel).string()); }
};

TEST_F(CliTasks, FinetuneEvaluatePredict) {
  auto r = run_cli("finetune --task sst2 --model " + p("model") + " --data " + p("glue") + " --out " + p("ft") +
                   " --n-epoch 2 --batch-size 8 --max-seq-length 64 --learning-rate 1e-3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["epochs"].size(), 2u);
  const double acc = j["best"]["dev"]["metrics"]["accuracy"];
  EXPECT_GE(acc, 0.0);
  EXPECT_TRUE(fs::exists(kRoot / "ft" / "best" / "vocab.txt"));

  // evaluate: the same accuracy from the saved model (task read from config.json), predictions file.
  r = run_cli("evaluate --model " + p("ft/best") + " --data " + p("glue") + " --max-seq-length 64 --predictions " +
              p("pred.jsonl"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto e = nlohmann::json::parse(r.out);
  EXPECT_EQ(e["task"], "sst2");
  EXPECT_DOUBLE_EQ(e["dev"]["metrics"]["accuracy"].get<double>(), acc);
  const std::string pred = read_file((kRoot / "pred.jsonl").string());
  EXPECT_EQ(std::count(pred.begin(), pred.end(), '\n'), 24);
  const auto first = nlohmann::json::parse(pred.substr(0, pred.find('\n')));
  EXPECT_EQ(first["guid"], "dev.tsv:2");
  EXPECT_TRUE(first["label"] == "0" || first["label"] == "1");

  // predict: JSON lines for --text and stdin.
  r = run_cli("predict --model " + p("ft/best") + " --text 'a great movie' --file -", "dull and long\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  const auto line = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
  EXPECT_EQ(line["text"], "a great movie");
  EXPECT_GE(line["probability"].get<double>(), 0.5);

  // A sentence-pair task needs two texts; an SST-2 model does not fit RTE's evaluation... it does
  // (2 labels) but it was fine-tuned for sst2: refused.
  r = run_cli("evaluate --task rte --model " + p("ft/best") + " --data " + p("glue"));
  expect_one_line_error(r, "fine-tuned for sst2, not rte");
}

TEST_F(CliTasks, GlueTableWithTaskDistillation) {
  auto r = run_cli("glue --model teacher=" + p("model") + " --model student=" + p("model") + "@teacher --tasks sst2,rte"
                   " --seeds 1,2 --data " + p("glue") + " --out " + p("glue-run") +
                   " --n-epoch 1 --batch-size 8 --max-seq-length 64");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| Model | Params | Score | SST-2 | RTE |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| teacher |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("student: "), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(kRoot / "glue-run" / "student" / "rte" / "seed-2" / "best" / "config.json"));
  const auto j = nlohmann::json::parse(read_file((kRoot / "glue-run" / "glue.json").string()));
  EXPECT_EQ(j["models"][1]["tasks"]["RTE"]["scores"].size(), 2u);
  const auto cfg = nlohmann::json::parse(read_file((kRoot / "glue-run/student/sst2/seed-1/config.json").string()));
  EXPECT_NE(cfg["teacher"].get<std::string>().find("teacher/sst2/seed-1/best"), std::string::npos);
  // A second run reuses every finished fine-tuning and prints the same table.
  auto again = run_cli("glue --model teacher=" + p("model") + " --model student=" + p("model") + "@teacher --tasks "
                       "sst2,rte --seeds 1,2 --data " + p("glue") + " --out " + p("glue-run") + " --n-epoch 1");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  EXPECT_EQ(again.err.find("glue: "), std::string::npos) << "nothing re-trained: " << again.err;
}

TEST_F(CliTasks, PredictAnswersQuestionsWithASpanOfTheContext) {
  const Tokenizer tok = test::bert_vocab();
  test::save_tiny_model(kRoot / "qa", tok, test::tiny_config(tok, 1), 9, HeadKind::QuestionAnswering);
  const std::string context = "The Broncos defeated the Panthers 24 to 10 at Levi's Stadium in Santa Clara.";
  const std::string input = nlohmann::json{{"id", "q7"}, {"question", "Who won?"}, {"context", context}}.dump() + "\n";
  auto r = run_cli("predict --task squad --model " + p("qa") + " --file -", input);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["id"], "q7");
  const std::string answer = j["answer"];
  EXPECT_FALSE(answer.empty());
  EXPECT_NE(context.find(answer), std::string::npos) << "an answer is a span of the context: " << answer;
  expect_one_line_error(run_cli("predict --task squad --model " + p("qa") + " --text 'not json'"),
                        "input 1 is not a JSON object");
  expect_one_line_error(run_cli("predict --task squad --model " + p("model") + " --text '{\"question\":\"q\",\"context\":\"c\"}'"),
                        "not a fine-tuned question-answering model");
}

TEST_F(CliTasks, BadInput) {
  expect_one_line_error(run_cli("finetune --task sst5 --model " + p("model") + " --data " + p("glue") + " --out " + p("x")),
                        "unknown task 'sst5'");
  expect_one_line_error(run_cli("finetune --task cola --model " + p("model") + " --data " + p("glue") + " --out " + p("x")),
                        "found neither");
  expect_one_line_error(run_cli("evaluate --model " + p("model") + " --data " + p("glue")),
                        "names no finetuning_task; pass --task");
  expect_one_line_error(run_cli("glue --model teacher=" + p("model") + " --model s=" + p("model") + "@nobody --data " +
                                p("glue") + " --out " + p("x")),
                        "distils from 'nobody', which must be listed before it");
  expect_one_line_error(run_cli("predict --task rte --model " + p("model") + " --text 'only one'"),
                        "needs two texts separated by a tab");
}

}  // namespace
}  // namespace retort
