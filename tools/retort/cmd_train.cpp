// retort pretrain / distill / eval-mlm: masked-LM pre-training of a teacher from scratch, DistilBERT
// distillation of a student, and held-out masked-LM accuracy/perplexity. Settings come from a JSON
// config (--config, the Hugging Face distillation example's field names) overridden by flags.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/distiller.h"
#include "retort/distributed.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/tokenizer.h"

namespace retort::cli {
namespace {

// Flags shared by pretrain and distill; each one given overrides the config file.
struct TrainFlags {
  std::string config_file, corpus, out;
  std::map<std::string, double> numbers;
  std::map<std::string, int64_t> integers;
  nlohmann::json intermediate = nlohmann::json::object();  // --alpha-att ... --projection
  nlohmann::json parallel = nlohmann::json::object();      // --allreduce-*
  bool bf16 = false, teacher_bf16 = false, resume = false;
  int64_t stop_at_step = 0;
  CLI::Option* bf16_opt = nullptr;
  CLI::Option* teacher_bf16_opt = nullptr;
};

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  cmd->add_option("--corpus", f.corpus, "Corpus directory made by prepare-corpus")->required();
  cmd->add_option("--out", f.out, "Run directory (config, metrics.jsonl, checkpoints, final/)")->required();
  cmd->add_option("--config", f.config_file, "JSON training config (HF distillation example field names)");
  for (const char* name : {"learning_rate", "temperature", "alpha_ce", "alpha_mlm", "alpha_cos", "alpha_mse",
                           "warmup_prop", "weight_decay", "max_grad_norm", "mlm_mask_prop", "mlm_smoothing",
                           "alpha_att", "alpha_hidden", "alpha_emb", "progressive_earlier_lr_scale"}) {
    std::string flag = std::string("--") + name;
    std::replace(flag.begin() + 2, flag.end(), '_', '-');
    cmd->add_option_function<double>(flag, [&f, name](double v) { f.numbers[name] = v; }, std::string("Override ") + name);
  }
  for (const char* name : {"batch_size", "gradient_accumulation_steps", "max_steps", "n_epoch", "log_interval",
                           "checkpoint_interval", "seed", "max_tokens", "progressive_steps_per_layer"}) {
    std::string flag = std::string("--") + name;
    std::replace(flag.begin() + 2, flag.end(), '_', '-');
    cmd->add_option_function<int64_t>(flag, [&f, name](int64_t v) { f.integers[name] = v; }, std::string("Override ") + name);
  }
  add_intermediate_flags(cmd, f.intermediate);
  f.bf16_opt = cmd->add_flag("--bf16", f.bf16, "bf16 autocast for the student");
  add_data_parallel_flags(cmd, f.parallel);
  cmd->add_flag("--resume", f.resume, "Continue from the run directory's latest checkpoint");
  cmd->add_option("--stop-at-step", f.stop_at_step, "Save a checkpoint and stop after this step (resume later)");
}

DistillConfig resolve_config(const TrainFlags& f, const GlobalOptions& g) {
  nlohmann::json j = read_config_file(f.config_file);
  for (const auto& [k, v] : f.numbers) j[k] = v;
  for (const auto& [k, v] : f.integers) j[k] = v;
  j.update(f.intermediate);
  j.update(f.parallel);
  if (f.bf16_opt && f.bf16_opt->count()) j["bf16"] = f.bf16;
  if (f.teacher_bf16_opt && f.teacher_bf16_opt->count()) j["teacher_bf16"] = f.teacher_bf16;
  j["device"] = g.device;
  return DistillConfig::from_json(j);
}

void report(const DistillResult& r) {
  if (dist_env_from_environment().rank != 0) return;  // data parallel: rank 0 reports
  if (r.interrupted) {
    std::cout << "stopped at step " << r.steps << "; resume with --resume\n";
    return;
  }
  std::cout << "done: " << r.steps << " steps, final loss " << r.last.loss << "; student in " << r.final_dir << "\n";
}

}  // namespace

void add_pretrain(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    TrainFlags f;
    std::string tokenizer, model_config;
    int64_t layers = 6, hidden = 256, heads = 4, intermediate = 1024, positions = 512;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("pretrain", "Pre-train a BERT teacher from scratch with masked-LM on a prepared corpus");
  add_train_flags(cmd, a->f);
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer the corpus was made with (directory, tokenizer.json, vocab.txt)")->required();
  cmd->add_option("--model-config", a->model_config, "HF config.json of the model to build (else the size flags)");
  cmd->add_option("--layers", a->layers, "Encoder layers")->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "Hidden size")->capture_default_str();
  cmd->add_option("--heads", a->heads, "Attention heads")->capture_default_str();
  cmd->add_option("--intermediate", a->intermediate, "Feed-forward size")->capture_default_str();
  cmd->add_option("--max-positions", a->positions, "Position embeddings")->capture_default_str();
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      DistillConfig cfg = resolve_config(a->f, g);
      const std::string init_dir = join_path(a->f.out, "init");
      if (!a->f.resume) {
        const Tokenizer tok = Tokenizer::load(a->tokenizer);
        ModelConfig mc;
        if (!a->model_config.empty()) {
          mc = ModelConfig::load(a->model_config);
        } else {
          mc.num_hidden_layers = a->layers;
          mc.hidden_size = a->hidden;
          mc.num_attention_heads = a->heads;
          mc.intermediate_size = a->intermediate;
          mc.max_position_embeddings = a->positions;
        }
        mc.vocab_size = static_cast<int64_t>(tok.vocab_size());
        mc.pad_token_id = tok.pad_id();
        mc.validate("model config");
        torch::manual_seed(cfg.train.seed);
        Model model(mc, HeadKind::MaskedLM);
        init_weights(*model);
        save_model(*model, init_dir);
        tok.save(init_dir);
      }
      DistillJob job;
      job.corpus_dir = a->f.corpus;
      job.student_dir = init_dir;
      job.run_dir = a->f.out;
      job.resume = a->f.resume;
      job.stop_at_step = a->f.stop_at_step;
      job.config = cfg;
      report(run_distillation(job));
    };
  });
}

void add_distill(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    TrainFlags f;
    std::string teacher, student;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("distill", "Distil a teacher into a student with DistilBERT's triple loss");
  add_train_flags(cmd, a->f);
  cmd->add_option("--teacher", a->teacher, "Teacher HF directory (masked-LM head)")->required();
  cmd->add_option("--student", a->student, "Initial student HF directory (see init-student), with its tokenizer")->required();
  a->f.teacher_bf16_opt = cmd->add_flag("--teacher-bf16", a->f.teacher_bf16, "Keep the teacher in bf16 (faster forward)");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      DistillJob job;
      job.corpus_dir = a->f.corpus;
      job.student_dir = a->student;
      job.teacher_dir = a->teacher;
      job.run_dir = a->f.out;
      job.resume = a->f.resume;
      job.stop_at_step = a->f.stop_at_step;
      job.config = resolve_config(a->f, g);
      report(run_distillation(job));
    };
  });
}

void add_eval_mlm(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::vector<std::string> models;
    std::string corpus;
    uint64_t seed = 1234;
    size_t max_sequences = 0, batch = 32;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval-mlm", "Masked-LM accuracy and perplexity of models on a held-out prepared corpus");
  cmd->add_option("models", a->models, "HF model directories (with tokenizer files)")->required();
  cmd->add_option("--corpus", a->corpus, "Held-out corpus directory made by prepare-corpus")->required();
  cmd->add_option("--seed", a->seed, "Mask seed (the same masks for every model)")->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "Evaluate on the first N sequences (0: all)");
  cmd->add_option("--batch-size", a->batch, "Sequences per batch")->capture_default_str();
  cmd->add_flag("--json", a->json, "JSON lines instead of a table");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      if (!a->json) std::cout << "| model | MLM accuracy | perplexity | predicted tokens |\n|---|---:|---:|---:|\n";
      for (const auto& m : a->models) {
        const auto e = evaluate_mlm(m, a->corpus, a->seed, a->batch, a->max_sequences, g.device);
        if (a->json) {
          std::cout << nlohmann::json{{"model", m}, {"accuracy", e.accuracy}, {"perplexity", e.perplexity},
                                      {"loss", e.loss}, {"predicted", e.predicted}}.dump() << "\n";
        } else {
          std::cout << "| " << m << " | " << e.accuracy << " | " << e.perplexity << " | " << e.predicted << " |\n";
        }
      }
    };
  });
}

}  // namespace retort::cli
