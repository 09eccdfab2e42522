// GLUE task table, the TSV reader, and the IMDb folder reader.
#include "retort/tasks.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "retort/error.h"
#include "retort/fs.h"
#include "text/unicode.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::vector<TaskSpec> make_glue() {
  std::vector<TaskSpec> v;
  auto pair_task = [](std::string name, std::string display, std::vector<std::string> labels, std::string a,
                      std::string b, std::string label, std::vector<std::string> metrics) {
    TaskSpec t;
    t.name = std::move(name);
    t.display = std::move(display);
    t.labels = std::move(labels);
    t.kind = t.labels.empty() ? TaskKind::Regression : TaskKind::Classification;
    t.col_a = std::move(a);
    t.col_b = std::move(b);
    t.col_label = std::move(label);
    t.dev_sets = {{"dev", "dev.tsv"}};
    t.metrics = std::move(metrics);
    return t;
  };
  // CoLA: no header; columns source, label, original mark, sentence.
  TaskSpec cola = pair_task("cola", "CoLA", {"0", "1"}, "", "", "", {"mcc"});
  cola.header = false;
  cola.idx_a = 3;
  cola.idx_label = 1;
  v.push_back(cola);
  TaskSpec mnli = pair_task("mnli", "MNLI", {"contradiction", "entailment", "neutral"}, "sentence1", "sentence2",
                            "gold_label", {"accuracy"});
  mnli.dev_sets = {{"dev_matched", "dev_matched.tsv"}, {"dev_mismatched", "dev_mismatched.tsv"}};
  v.push_back(mnli);
  v.push_back(pair_task("mrpc", "MRPC", {"0", "1"}, "#1 String", "#2 String", "Quality", {"f1", "accuracy"}));
  v.push_back(pair_task("qnli", "QNLI", {"entailment", "not_entailment"}, "question", "sentence", "label",
                        {"accuracy"}));
  v.push_back(pair_task("qqp", "QQP", {"0", "1"}, "question1", "question2", "is_duplicate", {"accuracy", "f1"}));
  v.push_back(pair_task("rte", "RTE", {"entailment", "not_entailment"}, "sentence1", "sentence2", "label",
                        {"accuracy"}));
  v.push_back(pair_task("sst2", "SST-2", {"0", "1"}, "sentence", "", "label", {"accuracy"}));
  v.push_back(pair_task("stsb", "STS-B", {}, "sentence1", "sentence2", "score", {"pearson", "spearman"}));
  v.push_back(pair_task("wnli", "WNLI", {"0", "1"}, "sentence1", "sentence2", "label", {"accuracy"}));
  return v;
}

std::vector<TaskSpec> make_others() {
  TaskSpec imdb;
  imdb.name = "imdb";
  imdb.display = "IMDb";
  imdb.labels = {"neg", "pos"};
  imdb.train_file = "train";
  imdb.dev_sets = {{"test", "test"}};
  imdb.metrics = {"accuracy"};
  TaskSpec squad;
  squad.name = "squad";
  squad.display = "SQuAD";
  squad.kind = TaskKind::SpanExtraction;
  squad.train_file = "train-v1.1.json";
  squad.dev_sets = {{"dev", "dev-v1.1.json"}};
  squad.metrics = {"exact_match", "f1"};
  return {imdb, squad};
}

const std::vector<TaskSpec>& all_tasks() {
  static const std::vector<TaskSpec> all = [] {
    auto v = make_glue();
    for (auto& t : make_others()) v.push_back(std::move(t));
    return v;
  }();
  return all;
}

std::string squash(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '-' || c == '_') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace

std::vector<std::string> split_tsv_fields(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    if (tab == std::string::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// Lines of a text file without BOM and line ends; line numbers are 1-based.
std::vector<std::string> read_lines(const std::string& path) {
  check(fs::is_regular_file(path), path, ": no such file");
  std::string data = read_file(path);
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) data.erase(0, 3);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    if (nl == std::string::npos) nl = data.size();
    std::string line = data.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
  return lines;
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

}  // namespace

const std::vector<TaskSpec>& glue_tasks() {
  static const std::vector<TaskSpec> glue = make_glue();
  return glue;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : all_tasks()) names.push_back(t.name);
  return names;
}

const TaskSpec& task_spec(const std::string& name) {
  const std::string key = squash(name);
  for (const auto& t : all_tasks()) {
    if (squash(t.name) == key || squash(t.display) == key) return t;
  }
  fail("unknown task '", name, "' (known: ", join(task_names()), ")");
}

TsvTable read_glue_table(const TaskSpec& spec, const std::string& path, bool labelled) {
  check(spec.kind != TaskKind::SpanExtraction && spec.name != "imdb", "task ", spec.name,
        " is not in GLUE's TSV format");
  TsvTable t;
  t.lines = read_lines(path);
  const auto& lines = t.lines;
  size_t first = 0;
  while (first < lines.size() && blank(lines[first])) ++first;
  check(first < lines.size(), path, ": empty file (expected ", spec.display, " rows",
        spec.header ? " after a header" : "", ")");

  int ia = spec.idx_a, ib = spec.idx_b, il = labelled ? spec.idx_label : -1;
  bool label_last = false;
  if (spec.header) {
    const auto header = split_tsv_fields(lines[first]);
    auto column = [&](const std::string& name, bool required) -> int {
      if (name.empty()) return -1;
      // GLUE's labels are the last column of MNLI's header ("gold_label"); find the last match.
      for (size_t i = header.size(); i-- > 0;) {
        if (header[i] == name) return static_cast<int>(i);
      }
      check(!required, path, ":", first + 1, ": missing column '", name, "' for task ", spec.name,
            " (the header has: ", join(header), ")");
      return -1;
    };
    ia = column(spec.col_a, true);
    ib = column(spec.col_b, true);
    il = labelled ? column(spec.col_label, true) : -1;
    label_last = il >= 0 && il + 1 == static_cast<int>(header.size());
    ++first;
  }
  t.first_row = first;
  t.col_a = ia;
  t.col_b = ib;
  t.col_label = il;
  t.label_last = label_last;
  return t;
}

std::vector<TaskExample> read_glue_tsv(const TaskSpec& spec, const std::string& path, bool labelled) {
  const TsvTable table = read_glue_table(spec, path, labelled);
  const auto& lines = table.lines;
  const size_t first = table.first_row;
  const int ia = table.col_a, ib = table.col_b, il = table.col_label;
  const bool label_last = table.label_last;
  const int needed = std::max({ia, ib, il}) + 1;

  std::vector<TaskExample> out;
  for (size_t n = first; n < lines.size(); ++n) {
    if (blank(lines[n])) continue;
    const auto f = split_tsv_fields(lines[n]);
    const size_t line_no = n + 1;
    check(static_cast<int>(f.size()) >= needed, path, ":", line_no, ": expected at least ", needed,
          " tab-separated fields for task ", spec.name, ", found ", f.size());
    TaskExample ex;
    ex.guid = fs::path(path).filename().string() + ":" + std::to_string(line_no);
    ex.text_a = f[ia];
    if (ib >= 0) ex.text_b = f[ib];
    if (il >= 0) {
      // The label in the header's last column is read as the row's last field, as GLUE's processors do
      // (MNLI's gold_label, STS-B's score), so a stray tab inside a row cannot shift it.
      const std::string& raw = label_last ? f.back() : f[il];
      if (spec.kind == TaskKind::Regression) {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(raw.c_str(), &end);
        check(!raw.empty() && end == raw.c_str() + raw.size() && errno == 0 && std::isfinite(v), path, ":",
              line_no, ": score '", raw, "' is not a number");
        ex.score = v;
      } else {
        auto it = std::find(spec.labels.begin(), spec.labels.end(), raw);
        check(it != spec.labels.end(), path, ":", line_no, ": label '", raw, "' is not one of ", join(spec.labels),
              " (task ", spec.name, ")");
        ex.label = it - spec.labels.begin();
      }
    }
    out.push_back(std::move(ex));
  }
  check(!out.empty(), path, ": no ", spec.display, " rows", spec.header ? " after the header" : "");
  return out;
}

std::string task_file(const TaskSpec& spec, const std::string& data_dir, const std::string& file) {
  const fs::path direct = fs::path(data_dir) / file;
  if (fs::exists(direct)) return direct.string();
  const fs::path nested = fs::path(data_dir) / spec.display / file;
  if (fs::exists(nested)) return nested.string();
  if (spec.name == "imdb") {  // aclImdb/ inside the given folder
    const fs::path acl = fs::path(data_dir) / "aclImdb" / file;
    if (fs::exists(acl)) return acl.string();
  }
  fail("task ", spec.name, ": found neither ", direct.string(), " nor ", nested.string());
}

std::vector<TaskExample> read_imdb(const std::string& dir, const std::string& split) {
  const fs::path root = fs::path(dir) / split;
  check(fs::is_directory(root), root.string(), ": not a directory (expected IMDb's ", split, "/{neg,pos}/*.txt)");
  std::vector<TaskExample> out;
  const char* names[] = {"neg", "pos"};
  for (int label = 0; label < 2; ++label) {
    const fs::path folder = root / names[label];
    check(fs::is_directory(folder), folder.string(), ": missing (IMDb keeps reviews under neg/ and pos/)");
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder)) {
      if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      TaskExample ex;
      ex.guid = split + "/" + names[label] + "/" + p.filename().string();
      std::string text = read_file(p.string());
      std::vector<char32_t> cps;
      text::decode_utf8(text, cps, p.string());  // throws naming the file and byte offset
      for (size_t at = text.find("<br />"); at != std::string::npos; at = text.find("<br />", at)) {
        text.replace(at, 6, " ");
      }
      ex.text_a = std::move(text);
      ex.label = label;
      out.push_back(std::move(ex));
    }
  }
  check(!out.empty(), root.string(), ": no reviews (*.txt) under neg/ or pos/");
  return out;
}

std::vector<TaskExample> read_task_split(const TaskSpec& spec, const std::string& data_dir, const std::string& split,
                                         bool labelled) {
  check(spec.kind != TaskKind::SpanExtraction, "task ", spec.name, ": read it with read_squad (squad.h)");
  std::string file;
  if (split == "train") {
    file = spec.train_file;
  } else {
    for (const auto& d : spec.dev_sets) {
      if (d.name == split) file = d.file;
    }
    if (file.empty() && split == "dev") file = spec.dev_sets.front().file;
  }
  if (file.empty()) {
    std::vector<std::string> known = {"train"};
    for (const auto& d : spec.dev_sets) known.push_back(d.name);
    fail("task ", spec.name, " has no split '", split, "' (known: ", join(known), ")");
  }
  if (spec.name == "imdb") {
    const std::string split_dir = task_file(spec, data_dir, file);
    return read_imdb(fs::path(split_dir).parent_path().string(), file);
  }
  return read_glue_tsv(spec, task_file(spec, data_dir, file), labelled);
}

}  // namespace retort
