// The GLUE table: runs (or reuses) every fine-tuning of models x tasks x seeds and aggregates them.
#include "retort/glue_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/metrics.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::string fixed1(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string params_str(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

}  // namespace

GlueModel parse_glue_model(const std::string& spec) {
  const auto eq = spec.find('=');
  check(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), "model '", spec,
        "': expected NAME=DIR or NAME=DIR@TEACHER_NAME");
  GlueModel m;
  m.name = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  const auto at = rest.rfind('@');
  if (at != std::string::npos) {
    m.distill_from = rest.substr(at + 1);
    rest = rest.substr(0, at);
    check(!m.distill_from.empty() && !rest.empty(), "model '", spec, "': empty directory or teacher name");
  }
  m.dir = rest;
  return m;
}

double median(std::vector<double> v) {
  check(!v.empty(), "median of no values");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double GlueTable::cell(const std::string& model, const std::string& task) const {
  auto m = scores.find(model);
  check(m != scores.end(), "GLUE table: no model ", model);
  auto t = m->second.find(task);
  check(t != m->second.end() && !t->second.empty(), "GLUE table: no ", task, " runs for ", model);
  return median(t->second);
}

double GlueTable::macro(const std::string& model) const {
  std::vector<double> cells;
  for (const auto& t : tasks) cells.push_back(cell(model, t));
  return macro_score(cells);
}

std::string GlueTable::markdown() const {
  std::string s = "| Model | Params | Score |";
  std::string rule = "|---|---:|---:|";
  for (const auto& t : tasks) {
    s += " " + t + " |";
    rule += "---:|";
  }
  s += "\n" + rule + "\n";
  for (const auto& m : models) {
    auto p = parameters.find(m);
    s += "| " + m + " | " + (p != parameters.end() ? params_str(p->second) : "") + " | " + fixed1(100 * macro(m)) + " |";
    for (const auto& t : tasks) s += " " + fixed1(100 * cell(m, t)) + " |";
    s += "\n";
  }
  if (models.size() > 1) {
    const std::string& ref = models.front();
    s += "\n";
    for (size_t i = 1; i < models.size(); ++i) {
      const auto& m = models[i];
      s += "- " + m + ": " + fixed1(100 * macro(m) / macro(ref)) + "% of " + ref + "'s macro score";
      auto pm = parameters.find(m), pr = parameters.find(ref);
      if (pm != parameters.end() && pr != parameters.end() && pr->second > 0) {
        s += " with " + fixed1(100.0 * static_cast<double>(pm->second) / static_cast<double>(pr->second)) +
             "% of its parameters";
      }
      s += "\n";
    }
  }
  return s;
}

nlohmann::json GlueTable::to_json() const {
  nlohmann::json j = {{"tasks", tasks}, {"models", nlohmann::json::array()}};
  for (const auto& m : models) {
    nlohmann::json row = {{"name", m}, {"macro", macro(m)}};
    auto p = parameters.find(m);
    if (p != parameters.end()) row["parameters"] = p->second;
    for (const auto& t : tasks) {
      row["tasks"][t] = {{"median", cell(m, t)}, {"scores", scores.at(m).at(t)}, {"metrics", metrics.at(m).at(t)}};
    }
    j["models"].push_back(row);
  }
  return j;
}

GlueTable run_glue(const GlueRunConfig& cfg) {
  check(!cfg.models.empty(), "glue: no models");
  check(!cfg.tasks.empty(), "glue: no tasks");
  check(!cfg.seeds.empty(), "glue: no seeds");
  std::set<std::string> names;
  for (const auto& m : cfg.models) {
    check(!m.distill_from.empty() ? names.count(m.distill_from) > 0 : true, "glue: model ", m.name,
          " distils from '", m.distill_from, "', which must be listed before it");
    check(names.insert(m.name).second, "glue: model name ", m.name, " given twice");
  }
  std::vector<const TaskSpec*> specs;
  for (const auto& t : cfg.tasks) {
    specs.push_back(&task_spec(t));
    check(specs.back()->kind != TaskKind::SpanExtraction, "glue: task ", t, " is not a classification or regression task");
  }

  GlueTable table;
  for (const auto* s : specs) table.tasks.push_back(s->display);
  for (const auto& m : cfg.models) table.models.push_back(m.name);
  auto run_dir = [&](const std::string& model, const TaskSpec& spec, uint64_t seed) {
    return join_path(join_path(join_path(cfg.out_dir, model), spec.name), "seed-" + std::to_string(seed));
  };
  for (const auto* spec : specs) {
    for (uint64_t seed : cfg.seeds) {
      for (const auto& m : cfg.models) {
        const std::string dir = run_dir(m.name, *spec, seed);
        const std::string results = join_path(dir, "eval_results.json");
        const std::string best = join_path(dir, "best");
        nlohmann::json summary;
        bool reuse = false;
        if (fs::exists(results) && fs::exists(join_path(best, "config.json"))) {
          summary = nlohmann::json::parse(read_file(results));
          reuse = summary.value("finished", false);
        }
        if (!reuse) {
          FinetuneConfig fc = cfg.base;
          fc.task = spec->name;
          fc.model_dir = m.dir;
          fc.data_dir = cfg.data_dir;
          fc.out_dir = dir;
          fc.train.seed = seed;
          fc.teacher_dir = m.distill_from.empty() ? "" : join_path(run_dir(m.distill_from, *spec, seed), "best");
          fs::remove_all(dir);  // an unfinished run starts over
          std::cerr << "glue: " << m.name << " on " << spec->display << ", seed " << seed
                    << (fc.teacher_dir.empty() ? "" : " (distilling from " + m.distill_from + ")") << "\n";
          run_finetune(fc);
          check(!interrupt_requested(), "glue: interrupted");
          summary = nlohmann::json::parse(read_file(results));
          summary["finished"] = true;
          write_file_atomic(results, summary.dump(2) + "\n");
        }
        table.scores[m.name][spec->display].push_back(summary.at("best_score").get<double>());
        table.metrics[m.name][spec->display].push_back(summary.at("best"));
        table.parameters[m.name] = summary.at("parameters").get<int64_t>();
      }
    }
  }
  write_file_atomic(join_path(cfg.out_dir, "glue.json"), table.to_json().dump(2) + "\n");
  write_file_atomic(join_path(cfg.out_dir, "glue.md"), table.markdown());
  return table;
}

}  // namespace retort
