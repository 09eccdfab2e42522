// Evaluation metrics with exactly the official definitions: accuracy; binary F1 of class 1 and
// Matthews correlation as scikit-learn computes them; Pearson and Spearman as scipy.stats does; SQuAD
// exact match and F1 as the official v1.1 / v2.0 evaluation scripts do; GLUE's per-task score and the
// macro average the DistilBERT paper reports. Scores are fractions in [0, 1] (or [-1, 1]); tables
// multiply by 100.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace retort {

struct TaskSpec;

// Fraction of equal entries. Empty or different lengths: Error.
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
// F1 of the positive class (label 1): 2TP / (2TP + FP + FN); 0 when there is no positive at all
// (scikit-learn's zero_division default).
double binary_f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
// Matthews correlation coefficient, multi-class (Gorodkin's R_K, scikit-learn's formula); 0 when the
// denominator is 0 (a constant prediction or constant labels).
double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
// Pearson's r; NaN when either input is constant (scipy returns nan there).
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman's rho: Pearson's r of the ranks, ties given their average rank.
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Average ranks (1-based) with ties sharing the mean of their positions (scipy.stats.rankdata).
std::vector<double> average_ranks(const std::vector<double>& x);

// SQuAD's normalize_answer: lowercase, drop ASCII punctuation, drop the words a/an/the, collapse
// whitespace.
std::string squad_normalize(const std::string& s);
// Exact match / token-level F1 of one prediction against one ground truth, on normalized text.
// v2 = true applies the v2.0 script's rule for empty answers (F1 = 1 when both are empty, else 0 when
// either is); v1.1 gives 0 when either side has no tokens.
double squad_exact(const std::string& prediction, const std::string& truth);
double squad_f1(const std::string& prediction, const std::string& truth, bool v2 = false);
// Max over the ground truths (an empty list: the unanswerable case, scored against ""). v2 first drops
// truths that normalize to "" (as the v2.0 script does).
double squad_max_over_truths(bool f1, const std::string& prediction, const std::vector<std::string>& truths,
                             bool v2 = false);

// The metrics a classification/regression task reports, by name ("accuracy", "f1", "mcc",
// "pearson", "spearman"), computed from class predictions (classification) or scores (regression).
std::map<std::string, double> task_metrics(const TaskSpec& spec, const std::vector<int64_t>& predicted_labels,
                                           const std::vector<int64_t>& labels,
                                           const std::vector<double>& predicted_scores = {},
                                           const std::vector<double>& scores = {});
// The task's single score: the mean of its metrics (GLUE's convention for MRPC, QQP and STS-B); a NaN
// correlation (constant predictions) counts as 0 here, so scores always compare and aggregate.
double task_score(const TaskSpec& spec, const std::map<std::string, double>& metrics);
// The macro score: the plain mean of per-task scores (the paper's "Score" column).
double macro_score(const std::vector<double>& task_scores);

}  // namespace retort
