// Metrics against values computed by hand (the arithmetic is in the comments), and the official
// scripts' edge cases: zero denominators, ties, articles, punctuation, empty answers.
#include <gtest/gtest.h>

#include <cmath>

#include "retort/glue_runner.h"
#include "retort/metrics.h"
#include "retort/tasks.h"
#include "test_paths.h"

namespace retort {
namespace {

TEST(Metrics, AccuracyF1Matthews) {
  // predictions 1 1 0 0 1 vs labels 1 0 0 1 1: TP 2, FP 1, FN 1, TN 1.
  const std::vector<int64_t> p{1, 1, 0, 0, 1}, l{1, 0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(accuracy(p, l), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(binary_f1(p, l), 4.0 / 6.0);  // 2TP / (2TP + FP + FN)
  // (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2) = 1/6
  EXPECT_NEAR(matthews_corrcoef(p, l), 1.0 / 6.0, 1e-12);
  EXPECT_DOUBLE_EQ(matthews_corrcoef(l, l), 1.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 0, 0, 1}, {0, 1, 1, 0}), -1.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 1, 1, 1}, {1, 0, 1, 0}), 0.0) << "constant prediction: 0, not NaN";
  EXPECT_DOUBLE_EQ(binary_f1({0, 0}, {0, 0}), 0.0) << "no positives at all";
  // Three classes, confusion rows = truth: [[2,0,0],[1,1,0],[0,1,1]]; s = 6, c = 4,
  // t = (2,2,2), p = (3,2,1): (c s - p.t) / sqrt((s^2 - |p|^2)(s^2 - |t|^2)) = (24 - 12) / sqrt(22 * 24).
  EXPECT_NEAR(matthews_corrcoef({0, 0, 0, 1, 1, 2}, {0, 0, 1, 1, 2, 2}), 12.0 / std::sqrt(22.0 * 24.0), 1e-12);
  EXPECT_THROW(accuracy({1}, {1, 0}), Error);
  EXPECT_THROW(accuracy({}, {}), Error);
}

TEST(Metrics, PearsonSpearman) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-12);
  // deviations (-1.5 -.5 .5 1.5) and (-1.5 .5 -.5 1.5): sxy = 4, sxx = syy = 5 -> 0.8
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {1, 3, 2, 4}), 0.8, 1e-12);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3}))) << "scipy gives nan for a constant input";
  EXPECT_TRUE(std::isnan(pearson({0.1, 0.1, 0.1}, {1, 2, 3}))) << "constant, whatever the rounding of its mean";
  EXPECT_EQ(average_ranks({10, 20, 20, 30}), (std::vector<double>{1, 2.5, 2.5, 4}));
  EXPECT_EQ(average_ranks({3, 1, 2}), (std::vector<double>{3, 1, 2}));
  // ranks (1 2 3 4) and (1 2.5 2.5 4): sxy = 4.5, sxx = 5, syy = 4.5 -> 4.5 / sqrt(22.5)
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 20, 30}), 4.5 / std::sqrt(22.5), 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 4, 9, 16}), 1.0, 1e-12) << "monotone, not linear";
}

TEST(Metrics, SquadNormalizationAndScores) {
  EXPECT_EQ(squad_normalize("The  Cat's hat!"), "cats hat");
  EXPECT_EQ(squad_normalize("An apple, a day."), "apple day");
  EXPECT_EQ(squad_normalize("theory of anagrams"), "theory of anagrams") << "articles only as whole words";
  EXPECT_EQ(squad_normalize("Ä Café\u00a0Noir"), "ä café noir") << "Unicode lowercase and whitespace";
  EXPECT_EQ(squad_normalize("the\u2019s"), "\u2019s") << "\\b treats a non-ASCII quote as a boundary";
  EXPECT_EQ(squad_exact("An apple.", "apple"), 1.0);
  EXPECT_EQ(squad_exact("apples", "apple"), 0.0);
  // pred (cat sat), truth (cat sat down): 2 shared, P = 1, R = 2/3 -> F1 = 0.8
  EXPECT_NEAR(squad_f1("the cat sat", "a cat sat down"), 0.8, 1e-12);
  // repeated tokens count once per occurrence: pred (a? no) "cat cat" vs "cat": shared 1, P 1/2, R 1
  EXPECT_NEAR(squad_f1("cat cat", "cat"), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(squad_f1("", ""), 0.0) << "v1.1: no tokens, no overlap";
  EXPECT_EQ(squad_f1("", "", true), 1.0) << "v2.0: both empty is a match";
  EXPECT_EQ(squad_f1("x", "", true), 0.0);
  EXPECT_EQ(squad_max_over_truths(true, "Denver", {"Denver Broncos", "Denver"}), 1.0);
  EXPECT_NEAR(squad_max_over_truths(true, "Denver", {"Denver Broncos", "the Broncos"}), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(squad_max_over_truths(false, "", {}, true), 1.0) << "unanswerable, answered with nothing";
  EXPECT_EQ(squad_max_over_truths(false, "", {"the", "Denver"}, true), 0.0) << "v2 drops truths normalizing to ''";
  EXPECT_EQ(squad_max_over_truths(false, "", {"the", "Denver"}, false), 1.0) << "v1.1 keeps them";
}

TEST(Metrics, TaskScoresAndMacro) {
  const TaskSpec& mrpc = task_spec("mrpc");
  const auto m = task_metrics(mrpc, {1, 1, 0, 0, 1}, {1, 0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.at("accuracy"), 0.6);
  EXPECT_DOUBLE_EQ(task_score(mrpc, m), (0.6 + 4.0 / 6.0) / 2);
  const TaskSpec& stsb = task_spec("stsb");
  const auto s = task_metrics(stsb, {}, {}, {1, 2, 3, 4}, {1, 3, 2, 4});
  EXPECT_NEAR(task_score(stsb, s), (0.8 + 0.8) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(task_metrics(task_spec("cola"), {1, 1, 1}, {1, 0, 1}).at("mcc"), 0.0);
  const auto flat = task_metrics(stsb, {}, {}, {2, 2, 2}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(flat.at("pearson"))) << "the metric stays official";
  EXPECT_DOUBLE_EQ(task_score(stsb, flat), 0.0) << "but the score compares: a constant prediction scores 0";
  EXPECT_DOUBLE_EQ(macro_score({0.5, 0.7, 0.9}), 0.7);
  EXPECT_THROW(task_score(mrpc, {{"accuracy", 0.5}}), Error);
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
}

TEST(GlueTable, MarkdownMediansAndRatios) {
  GlueTable t;
  t.tasks = {"SST-2", "CoLA"};
  t.models = {"teacher", "student"};
  t.parameters = {{"teacher", 4000000}, {"student", 2000000}};
  t.scores["teacher"]["SST-2"] = {0.90, 0.80, 0.85};
  t.scores["teacher"]["CoLA"] = {0.30, 0.50, 0.40};
  t.scores["student"]["SST-2"] = {0.80, 0.82, 0.81};
  t.scores["student"]["CoLA"] = {0.20, 0.10, 0.30};
  EXPECT_DOUBLE_EQ(t.cell("teacher", "SST-2"), 0.85);
  EXPECT_NEAR(t.macro("teacher"), (0.85 + 0.40) / 2, 1e-12);
  EXPECT_NEAR(t.macro("student"), (0.81 + 0.20) / 2, 1e-12);
  const std::string md = t.markdown();
  EXPECT_NE(md.find("| Model | Params | Score | SST-2 | CoLA |"), std::string::npos) << md;
  EXPECT_NE(md.find("| teacher | 4.00M | 62.5 | 85.0 | 40.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| student | 2.00M | 50.5 | 81.0 | 20.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("student: 80.8% of teacher's macro score with 50.0% of its parameters"), std::string::npos) << md;
  const GlueModel g = parse_glue_model("student-D=runs/s@teacher");
  EXPECT_EQ(g.name, "student-D");
  EXPECT_EQ(g.dir, "runs/s");
  EXPECT_EQ(g.distill_from, "teacher");
  EXPECT_THROW(parse_glue_model("runs/s"), Error);
}

}  // namespace
}  // namespace retort
