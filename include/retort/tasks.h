// Downstream tasks as their benchmarks distribute them: the nine GLUE tasks in GLUE's TSV layouts,
// IMDb in the original aclImdb/{train,test}/{pos,neg}/*.txt layout (SQuAD lives in squad.h). A task
// is a TaskSpec (where its columns are, its label set, its metrics); readers turn files into
// TaskExamples and fail with the file and line of the first row they cannot read.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace retort {

enum class TaskKind { Classification, Regression, SpanExtraction };

// One evaluation set of a task: MNLI has two (matched and mismatched), the others one.
struct DevSet {
  std::string name;  // "dev", "dev_matched", "dev_mismatched", "test" (IMDb)
  std::string file;  // relative to the task directory ("dev.tsv"; IMDb: "test")
};

struct TaskSpec {
  std::string name;     // "sst2", "mnli", ..., "imdb", "squad"
  std::string display;  // "SST-2": GLUE's directory name and the table's column
  TaskKind kind = TaskKind::Classification;
  std::vector<std::string> labels;  // class names by id as the files spell them; empty: regression
  // Columns: by header name when the file has a header, else by position (CoLA). b empty/-1: single
  // sentence task.
  bool header = true;
  std::string col_a, col_b, col_label;
  int idx_a = -1, idx_b = -1, idx_label = -1;
  std::string train_file = "train.tsv";
  std::vector<DevSet> dev_sets;
  // Metric names computed on each dev set (see metrics.h); the task's score is their mean, on the
  // first dev set (GLUE's convention: MRPC/QQP (F1 + accuracy)/2, STS-B (Pearson + Spearman)/2).
  std::vector<std::string> metrics;

  bool is_pair() const { return !col_b.empty() || idx_b >= 0; }
  int64_t num_labels() const { return kind == TaskKind::Regression ? 1 : static_cast<int64_t>(labels.size()); }
};

// The nine GLUE tasks, in the order of the paper's Table 1 (CoLA MNLI MRPC QNLI QQP RTE SST-2 STS-B WNLI).
const std::vector<TaskSpec>& glue_tasks();
// A task by name: "sst2", "SST-2", "sst-2", "STS-B", "stsb", "mnli", "imdb", "squad", ...
// (case-insensitive, '-' and '_' ignored). Unknown names: an Error listing the known ones.
const TaskSpec& task_spec(const std::string& name);
std::vector<std::string> task_names();

// One example. Classification: label is the class id (-1 when the file has no labels); regression:
// score (NaN when unlabelled).
struct TaskExample {
  std::string guid;  // "<file>:<line>" or the IMDb file name
  std::string text_a, text_b;
  int64_t label = -1;
  double score = std::numeric_limits<double>::quiet_NaN();
};

// A GLUE TSV file's lines and where the task's columns are (what read_glue_tsv parses), for tools that
// rewrite a file in its own format (`retort augment`). Columns are 0-based field indices, -1 if absent.
struct TsvTable {
  std::vector<std::string> lines;  // without BOM and line ends
  size_t first_row = 0;            // index in `lines` of the first data line (after the header)
  int col_a = -1, col_b = -1, col_label = -1;
  bool label_last = false;         // the label is read as the row's last field
};
TsvTable read_glue_table(const TaskSpec& spec, const std::string& path, bool labelled = true);
// "a\tb\t" -> {"a", "b", ""}.
std::vector<std::string> split_tsv_fields(const std::string& line);

// Reads a GLUE TSV file (UTF-8, BOM and CRLF tolerated, no quoting, blank lines skipped).
// labelled=false accepts files without the label column (GLUE test files). Errors name the file and
// line: a missing column, too few fields, a label outside the task's set, an unparsable score, an
// empty file.
std::vector<TaskExample> read_glue_tsv(const TaskSpec& spec, const std::string& path, bool labelled = true);

// The file of a task under a data directory: DIR/FILE when DIR is the task's own folder, else
// DIR/<display>/FILE (DIR is the GLUE root). An Error naming both candidates when neither exists.
std::string task_file(const TaskSpec& spec, const std::string& data_dir, const std::string& file);

// IMDb: DIR/{split}/{neg,pos}/*.txt (label 0 neg, 1 pos), files in name order, "<br />" turned into
// spaces. DIR may also be the split folder's parent's parent (aclImdb/). Errors: a missing folder,
// a split with no reviews, a file that is not valid UTF-8.
std::vector<TaskExample> read_imdb(const std::string& dir, const std::string& split);

// Reads one split of a classification/regression task: "train" or a dev set's name ("dev",
// "dev_matched", ...; "dev" also names the first dev set). An unknown split: an Error listing them.
std::vector<TaskExample> read_task_split(const TaskSpec& spec, const std::string& data_dir, const std::string& split,
                                         bool labelled = true);

}  // namespace retort
