// `retort glue`: fine-tune several models on several tasks with several seeds and print the paper's
// Table 1 (median dev score over seeds per task, and the macro score), as markdown and JSON. A model
// may distil from another one during fine-tuning ("DistilBERT (D)"): it then uses that model's
// fine-tuned copy for the same task and seed as its teacher, so the teacher must come first.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "retort/finetune.h"

namespace retort {

struct GlueModel {
  std::string name;          // the table's row label
  std::string dir;           // the pre-trained (or distilled) model directory
  std::string distill_from;  // another GlueModel's name, or ""
};

struct GlueRunConfig {
  std::vector<GlueModel> models;
  std::vector<std::string> tasks;  // task names (GLUE tasks or imdb)
  std::vector<uint64_t> seeds;
  std::string data_dir;  // the GLUE root (a folder per task)
  std::string out_dir;   // OUT/<model>/<task>/seed-<s>/ per run; finished runs are reused
  FinetuneConfig base;   // everything else (learning rate, epochs, max_train_examples, ...)
};

// "NAME=DIR" or "NAME=DIR@TEACHER_NAME" -> GlueModel. Errors on a missing '=' or empty part.
GlueModel parse_glue_model(const std::string& spec);

// Median as Python's statistics.median (mean of the two middle values for an even count).
double median(std::vector<double> v);

struct GlueTable {
  std::vector<std::string> tasks;   // display names in column order
  std::vector<std::string> models;  // row order
  std::map<std::string, int64_t> parameters;                                     // model -> count
  std::map<std::string, std::map<std::string, std::vector<double>>> scores;     // model -> task -> per seed
  std::map<std::string, std::map<std::string, nlohmann::json>> metrics;         // model -> task -> per seed
  double cell(const std::string& model, const std::string& task) const;  // median over seeds
  double macro(const std::string& model) const;                          // mean of the cells
  std::string markdown() const;  // scores x100, one decimal; then each model's % of the first's macro
  nlohmann::json to_json() const;
};

GlueTable run_glue(const GlueRunConfig& cfg);

}  // namespace retort
