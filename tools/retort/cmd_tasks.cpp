// retort finetune / evaluate / predict / glue: downstream tasks. Fine-tuning settings come from a JSON
// config (--config; TrainConfig's field names plus max_seq_length, alpha_ce, ...) overridden by flags.
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/distributed.h"
#include "retort/error.h"
#include "retort/finetune.h"
#include "retort/fs.h"
#include "retort/glue_runner.h"
#include "retort/heads.h"
#include "retort/inference.h"
#include "retort/runtime.h"
#include "retort/squad.h"

namespace retort::cli {
namespace {

// Flags shared by finetune and glue; each one given overrides the config file.
struct FinetuneFlags {
  std::string config_file, data, out;
  std::map<std::string, double> numbers;
  std::map<std::string, int64_t> integers;
  nlohmann::json intermediate = nlohmann::json::object();  // --alpha-att ... --projection
  std::string truncation;
  nlohmann::json parallel = nlohmann::json::object();      // --allreduce-*
  bool bf16 = false;
  CLI::Option* bf16_opt = nullptr;
};

void add_finetune_flags(CLI::App* cmd, FinetuneFlags& f) {
  cmd->add_option("--data", f.data, "Task data: the GLUE root or the task's folder (SQuAD: folder of the JSON files)")
      ->required();
  cmd->add_option("--out", f.out, "Run directory (config.json, metrics.jsonl, eval_results.json, best/)")->required();
  cmd->add_option("--config", f.config_file, "JSON fine-tuning config");
  for (const char* name : {"learning_rate", "warmup_prop", "weight_decay", "max_grad_norm", "alpha_ce", "alpha_task",
                           "temperature", "alpha_att", "alpha_hidden", "alpha_emb"}) {
    std::string flag = std::string("--") + name;
    std::replace(flag.begin() + 2, flag.end(), '_', '-');
    cmd->add_option_function<double>(flag, [&f, name](double v) { f.numbers[name] = v; }, std::string("Override ") + name);
  }
  for (const char* name : {"batch_size", "gradient_accumulation_steps", "max_steps", "n_epoch", "log_interval", "seed",
                           "max_seq_length", "max_train_examples", "max_eval_examples", "eval_batch_size",
                           "head_tokens", "doc_stride", "max_query_length", "max_answer_length"}) {
    std::string flag = std::string("--") + name;
    std::replace(flag.begin() + 2, flag.end(), '_', '-');
    cmd->add_option_function<int64_t>(flag, [&f, name](int64_t v) { f.integers[name] = v; }, std::string("Override ") + name);
  }
  cmd->add_option("--truncation", f.truncation, "longest_first (default) or head+tail (single texts, e.g. IMDb)");
  add_intermediate_flags(cmd, f.intermediate);
  cmd->add_option_function<std::string>(
      "--prediction-loss", [&f](const std::string& v) { f.intermediate["prediction_loss"] = v; },
      "Distillation loss on the logits: kl (KL * T^2, DistilBERT) or soft_ce (TinyBERT)");
  f.bf16_opt = cmd->add_flag("--bf16", f.bf16, "bf16 autocast for training and evaluation");
  add_data_parallel_flags(cmd, f.parallel);
}

nlohmann::json flags_json(const FinetuneFlags& f, const GlobalOptions& g) {
  nlohmann::json j = read_config_file(f.config_file);
  for (const auto& [k, v] : f.numbers) j[k] = v;
  for (const auto& [k, v] : f.integers) j[k] = v;
  j.update(f.intermediate);
  j.update(f.parallel);
  if (!f.truncation.empty()) j["truncation"] = f.truncation;
  if (f.bf16_opt && f.bf16_opt->count()) j["bf16"] = f.bf16;
  j["device"] = g.device;
  j["data"] = f.data;
  j["out"] = f.out;
  return j;
}

std::string pct(double v) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << 100 * v;
  return os.str();
}

void print_eval(const EvalResult& r) {
  std::cout << "  " << r.split << " (" << r.examples << " examples):";
  for (const auto& [k, v] : r.metrics) std::cout << " " << k << " " << pct(v);
  std::cout << "  -> score " << pct(r.score) << "\n";
}

// The task of a fine-tuned model directory: --task, else config.json's finetuning_task.
const TaskSpec& resolve_task(const std::string& flag, const std::string& model_dir) {
  if (!flag.empty()) return task_spec(flag);
  const ModelConfig c = ModelConfig::load(model_dir);
  auto it = c.extra.find("finetuning_task");
  check(it != c.extra.end() && it->is_string(), model_dir,
        ": config.json names no finetuning_task; pass --task");
  return task_spec(it->get<std::string>());
}

// evaluate / predict need a model that was fine-tuned, not a fresh random head.
void require_task_head(const std::string& dir, HeadKind want) {
  const ModelConfig c = ModelConfig::load(dir);
  const HeadKind have = head_from_architectures(c.architectures);
  check(have == want, dir, ": not a fine-tuned ", want == HeadKind::QuestionAnswering ? "question-answering" : "classification",
        " model (", c.architectures.empty() ? std::string("no architectures") : c.architectures.front(),
        "); fine-tune it first (retort finetune)");
}

// evaluate / predict run the inference engine: --precision fp32|bf16|int8 (--bf16 is --precision bf16).
void add_precision_flags(CLI::App* cmd, std::string& precision, bool& bf16) {
  cmd->add_option("--precision", precision, "fp32, bf16 or int8 (dynamic quantization of the linear layers)")
      ->capture_default_str();
  cmd->add_flag("--bf16", bf16, "Same as --precision bf16");
}

Precision precision_of(const std::string& precision, const EvalOptions& eo) {
  return eo.bf16 ? Precision::Bf16 : parse_precision(precision);
}

// SQuAD settings from evaluate/predict's flags: SQuAD's 384-token windows unless --max-seq-length is given.
SquadOptions squad_options(const EvalOptions& eo, const CLI::Option* seq_flag, const std::string& device) {
  SquadOptions so;
  if (seq_flag->count()) so.max_seq_length = eo.features.max_seq_length;
  so.batch_size = eo.batch_size;
  so.bf16 = eo.bf16;
  so.device = device;
  return so;
}

}  // namespace

void add_finetune(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    FinetuneFlags f;
    std::string task, model, teacher;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("finetune", "Fine-tune a model on a task (GLUE, IMDb, SQuAD), optionally distilling "
                                             "from a fine-tuned teacher");
  cmd->add_option("--task", a->task, "cola mnli mrpc qnli qqp rte sst2 stsb wnli imdb squad")->required();
  cmd->add_option("--model", a->model, "Pre-trained or distilled HF model directory (with its tokenizer)")->required();
  cmd->add_option("--teacher", a->teacher, "A teacher fine-tuned on the same task: task-specific distillation");
  add_finetune_flags(cmd, a->f);
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      nlohmann::json j = flags_json(a->f, g);
      j["task"] = a->task;
      j["model"] = a->model;
      if (!a->teacher.empty()) j["teacher"] = a->teacher;
      install_interrupt_handler();
      if (task_spec(a->task).kind == TaskKind::SpanExtraction) {
        const SquadFinetuneResult r = run_squad_finetune(SquadFinetuneConfig::from_json(j));
        if (a->json) {
          std::cout << r.to_json().dump(2) << "\n";
        } else {
          std::cout << "best epoch " << r.best_epoch << ": exact match " << pct(r.best.exact_match) << ", F1 "
                    << pct(r.best.f1) << " (" << r.best.questions << " questions); model in " << r.best_dir << "\n";
        }
        return;
      }
      const FinetuneResult r = run_finetune(FinetuneConfig::from_json(j));
      if (dist_env_from_environment().rank != 0) return;  // data parallel: rank 0 evaluated and reports
      if (a->json) {
        nlohmann::json out = {{"best_dir", r.best_dir}, {"best_epoch", r.best_epoch}, {"best_score", r.best_score},
                              {"epochs", r.epochs}, {"seconds", r.seconds}};
        for (const auto& e : r.best_eval) out["best"][e.split] = e.to_json();
        std::cout << out.dump(2) << "\n";
        return;
      }
      std::cout << "best epoch " << r.best_epoch << " of " << r.epochs.size() << " (" << r.train_examples
                << " training examples, " << static_cast<int64_t>(r.seconds) << " s); model in " << r.best_dir << "\n";
      for (const auto& e : r.best_eval) print_eval(e);
    };
  });
}

void add_evaluate(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string task, model, data, split, out, predictions, precision = "fp32";
    EvalOptions eo;
    CLI::Option* seq_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("evaluate", "Evaluate a fine-tuned model on a task's dev set(s): metrics JSON and predictions");
  cmd->add_option("--model", a->model, "Fine-tuned HF model directory")->required();
  cmd->add_option("--task", a->task, "Task name (default: config.json's finetuning_task)");
  cmd->add_option("--data", a->data, "Task data: the GLUE root, the task's folder, or SQuAD's folder")->required();
  cmd->add_option("--split", a->split, "One split (dev, dev_matched, dev_mismatched, train, test); default: every dev set");
  cmd->add_option("--out", a->out, "Write the metrics JSON here (also printed)");
  cmd->add_option("--predictions", a->predictions, "Write predictions here, one JSON object per line");
  cmd->add_option("--batch-size", a->eo.batch_size, "Examples per batch")->capture_default_str();
  a->seq_opt = cmd->add_option("--max-seq-length", a->eo.features.max_seq_length,
                               "Tokens per example (SQuAD: per window, default 384)")->capture_default_str();
  cmd->add_option("--truncation", a->eo.features.truncation, "longest_first or head+tail")->capture_default_str();
  cmd->add_option("--max-examples", a->eo.max_examples, "Only the first N examples (0: all)");
  add_precision_flags(cmd, a->precision, a->eo.bf16);
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      const TaskSpec& spec = resolve_task(a->task, a->model);
      a->eo.device = g.device;
      nlohmann::json out;
      std::ofstream pred;
      if (!a->predictions.empty()) {
        pred.open(a->predictions);
        check(static_cast<bool>(pred), a->predictions, ": cannot open for writing");
      }
      if (spec.kind == TaskKind::SpanExtraction) {
        SquadOptions so = squad_options(a->eo, a->seq_opt, g.device);
        check(a->split.empty() || a->split == "dev" || a->split == "train", "SQuAD splits are dev and train, not ",
              a->split);
        const std::string file = find_squad_file(a->data, "", a->split == "train" ? "train" : "dev");
        require_task_head(a->model, HeadKind::QuestionAnswering);
        const InferenceModel model(load_qa_model(a->model, parse_device(g.device), 0), precision_of(a->precision, a->eo));
        const auto questions = read_squad(file);
        so.version_2 = squad_has_unanswerable(questions);
        const SquadEval e = evaluate_squad(model, Tokenizer::load(a->model), questions, so);
        out = e.to_json();
        if (pred) {
          for (const auto& [id, text] : e.predictions) pred << nlohmann::json{{"id", id}, {"answer", text}}.dump() << "\n";
        }
      } else {
        require_task_head(a->model, HeadKind::SequenceClassification);
        const InferenceModel model(load_task_model(a->model, spec, parse_device(g.device), 0),
                                   precision_of(a->precision, a->eo));
        const Tokenizer tok = Tokenizer::load(a->model);
        std::vector<std::string> splits;
        if (!a->split.empty()) {
          splits.push_back(a->split);
        } else {
          for (const auto& d : spec.dev_sets) splits.push_back(d.name);
        }
        for (const auto& split : splits) {
          const auto examples = read_task_split(spec, a->data, split);
          EvalResult r = evaluate_examples(model, tok, spec, examples, a->eo);
          r.split = split;
          out[split] = r.to_json();
          for (size_t i = 0; pred && i < static_cast<size_t>(r.examples); ++i) {
            nlohmann::json p = {{"split", split}, {"guid", examples[i].guid}};
            if (spec.kind == TaskKind::Regression) {
              p["score"] = r.predicted_scores[i];
            } else {
              p["label"] = spec.labels[static_cast<size_t>(r.predicted_labels[i])];
              p["probabilities"] = r.probabilities[i];
            }
            pred << p.dump() << "\n";
          }
        }
      }
      out["task"] = spec.name;
      out["model"] = a->model;
      if (!a->out.empty()) write_file_atomic(a->out, out.dump(2) + "\n");
      std::cout << out.dump(2) << "\n";
    };
  });
}

void add_predict(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string task, model, file;
    std::vector<std::string> texts;
    std::string precision = "fp32";
    EvalOptions eo;
    bool version_2 = false;
    CLI::Option* seq_opt = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Labels (or scores) for new text with a fine-tuned model, as JSON lines");
  cmd->add_option("--model", a->model, "Fine-tuned HF model directory")->required();
  cmd->add_option("--task", a->task, "Task name (default: config.json's finetuning_task)");
  cmd->add_option("--text", a->texts, "A text; for sentence-pair tasks 'first<TAB>second'; for SQuAD a JSON object "
                                      "{\"question\": ..., \"context\": ...} (repeatable)");
  cmd->add_option("--file", a->file, "One example per line ('-': stdin); pairs separated by a tab");
  cmd->add_flag("--version-2", a->version_2, "SQuAD v2.0 model: may answer \"\" (no answer in the context)");
  cmd->add_option("--batch-size", a->eo.batch_size, "Examples per batch")->capture_default_str();
  a->seq_opt = cmd->add_option("--max-seq-length", a->eo.features.max_seq_length,
                               "Tokens per example (SQuAD: per window, default 384)")->capture_default_str();
  add_precision_flags(cmd, a->precision, a->eo.bf16);
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      const TaskSpec& spec = resolve_task(a->task, a->model);
      a->eo.device = g.device;
      std::vector<std::string> lines = a->texts;
      if (!a->file.empty()) {
        std::istringstream file_in(a->file == "-" ? std::string() : read_file(a->file));
        std::istream& in = a->file == "-" ? std::cin : static_cast<std::istream&>(file_in);
        for (std::string line; std::getline(in, line);) {
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (!line.empty()) lines.push_back(line);
        }
      }
      check(!lines.empty(), "predict: no input (give --text or --file)");
      if (spec.kind == TaskKind::SpanExtraction) {
        // Each input: {"question": ..., "context": ...} (an "id" is optional).
        std::vector<SquadQuestion> qs;
        for (size_t i = 0; i < lines.size(); ++i) {
          nlohmann::json j;
          try {
            j = nlohmann::json::parse(lines[i]);
          } catch (const nlohmann::json::exception&) {
            fail("predict: input ", i + 1, " is not a JSON object with \"question\" and \"context\"");
          }
          check(j.is_object() && j.contains("question") && j.contains("context") && j["question"].is_string() &&
                    j["context"].is_string(),
                "predict: input ", i + 1, " needs string fields \"question\" and \"context\"");
          SquadQuestion q;
          q.id = j.value("id", std::to_string(i + 1));
          q.question = j["question"];
          q.context = j["context"];
          qs.push_back(std::move(q));
        }
        require_task_head(a->model, HeadKind::QuestionAnswering);
        const InferenceModel model(load_qa_model(a->model, parse_device(g.device), 0), precision_of(a->precision, a->eo));
        SquadOptions so = squad_options(a->eo, a->seq_opt, g.device);
        so.version_2 = a->version_2;
        const auto answers = answer_squad(model, load_model_tokenizer(a->model), qs, so);
        for (const auto& q : qs) {
          std::cout << nlohmann::json{{"id", q.id}, {"question", q.question}, {"answer", answers.at(q.id)}}.dump() << "\n";
        }
        return;
      }
      std::vector<TaskExample> examples;
      for (size_t i = 0; i < lines.size(); ++i) {
        TaskExample e;
        e.guid = std::to_string(i + 1);
        const auto tab = lines[i].find('\t');
        if (spec.is_pair()) {
          check(tab != std::string::npos, "predict: input ", i + 1, " needs two texts separated by a tab (task ",
                spec.name, " is a sentence-pair task)");
          e.text_a = lines[i].substr(0, tab);
          e.text_b = lines[i].substr(tab + 1);
        } else {
          e.text_a = lines[i];
        }
        examples.push_back(std::move(e));
      }
      require_task_head(a->model, HeadKind::SequenceClassification);
      const InferenceModel model(load_task_model(a->model, spec, parse_device(g.device), 0),
                                 precision_of(a->precision, a->eo));
      const EvalResult r = evaluate_examples(model, Tokenizer::load(a->model), spec, examples, a->eo, false);
      for (size_t i = 0; i < examples.size(); ++i) {
        nlohmann::json p = {{"text", examples[i].text_a}};
        if (spec.is_pair()) p["text_pair"] = examples[i].text_b;
        if (spec.kind == TaskKind::Regression) {
          p["score"] = r.predicted_scores[i];
        } else {
          const auto k = static_cast<size_t>(r.predicted_labels[i]);
          p["label"] = model.config().id2label.at(k);
          p["probability"] = r.probabilities[i][k];
        }
        std::cout << p.dump() << "\n";
      }
    };
  });
}

void add_glue(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    FinetuneFlags f;
    std::vector<std::string> models, tasks;
    std::vector<uint64_t> seeds{1, 2, 3};
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("glue", "Fine-tune models on GLUE tasks with several seeds; print the paper's Table 1");
  cmd->add_option("--model", a->models, "NAME=DIR, or NAME=DIR@TEACHER_NAME to distil from that model's fine-tuned copy "
                                        "(repeatable; the first is the reference)")->required();
  cmd->add_option("--tasks", a->tasks, "Tasks (default: every GLUE task found under --data)")->delimiter(',');
  cmd->add_option("--seeds", a->seeds, "Seeds; the table shows the median")->delimiter(',')->capture_default_str();
  add_finetune_flags(cmd, a->f);
  cmd->add_flag("--json", a->json, "Print the table as JSON");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      GlueRunConfig cfg;
      for (const auto& m : a->models) cfg.models.push_back(parse_glue_model(m));
      cfg.tasks = a->tasks;
      if (cfg.tasks.empty()) {
        for (const auto& t : glue_tasks()) {
          if (is_directory(join_path(a->f.data, t.display))) cfg.tasks.push_back(t.name);
        }
        check(!cfg.tasks.empty(), a->f.data, ": no GLUE task folders (CoLA, MNLI, ...) here");
      }
      cfg.seeds = a->seeds;
      cfg.data_dir = a->f.data;
      cfg.out_dir = a->f.out;
      cfg.base = FinetuneConfig::from_json(flags_json(a->f, g));
      install_interrupt_handler();
      const GlueTable t = run_glue(cfg);
      std::cout << (a->json ? t.to_json().dump(2) + "\n" : t.markdown());
    };
  });
}

}  // namespace retort::cli
