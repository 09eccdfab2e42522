// retort augment: TinyBERT's data augmentation of a GLUE task's training file, written in the task's
// own format (retort finetune reads it with --data pointing at the output folder).
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "retort/augment.h"
#include "retort/error.h"
#include "retort/tasks.h"

namespace retort::cli {

void add_augment(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string task, data, model, out;
    AugmentOptions opt;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("augment", "TinyBERT's data augmentation of a GLUE training set (teacher's masked LM + GloVe)");
  cmd->add_option("--task", a->task, "GLUE task (cola mnli mrpc qnli qqp rte sst2 stsb wnli)")->required();
  cmd->add_option("--data", a->data, "Task data: the GLUE root or the task's folder")->required();
  cmd->add_option("--model", a->model, "Masked-LM model proposing replacements (the teacher, with its tokenizer)")->required();
  cmd->add_option("--out", a->out, "Output folder: <out>/<Task>/train.tsv, plus the dev files copied")->required();
  cmd->add_option("--copies", a->opt.copies, "Augmented copies per example (N; default TinyBERT's for the task)");
  cmd->add_option("--p", a->opt.replace_prob, "Probability that a word is replaced")->capture_default_str();
  cmd->add_option("--top-k", a->opt.top_k, "Candidates per word (M)")->capture_default_str();
  cmd->add_option("--glove", a->opt.word_vectors, "Word vectors in GloVe's text format, for words of several pieces");
  cmd->add_option("--glove-limit", a->opt.word_vectors_limit, "Only the first N words of the GloVe file (0: all)");
  cmd->add_option("--seed", a->opt.seed, "Random seed")->capture_default_str();
  cmd->add_option("--max-examples", a->opt.max_examples, "Only the first N training rows (0: all)");
  cmd->add_option("--max-seq-length", a->opt.max_seq_length, "Tokens the masked LM sees")->capture_default_str();
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      apply_globals(g);
      a->opt.device = g.device;
      namespace fs = std::filesystem;
      const TaskSpec& spec = task_spec(a->task);
      const fs::path dir = fs::path(a->out) / spec.display;
      const AugmentReport r =
          augment_task(a->task, a->data, a->model, (dir / spec.train_file).string(), a->opt);
      // The dev sets travel with it, so the folder is a task directory `finetune --data` accepts.
      for (const auto& d : spec.dev_sets) {
        const fs::path src = task_file(spec, a->data, d.file);
        fs::copy_file(src, dir / d.file, fs::copy_options::overwrite_existing);
      }
      std::cout << "augmented " << r.examples << " examples into " << r.written << " rows ("
                << (r.written - r.examples) << " new) in " << r.seconds << " s: " << (dir / spec.train_file).string()
                << "\n";
    };
  });
}

}  // namespace retort::cli
