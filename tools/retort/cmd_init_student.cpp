// retort init-student TEACHER_DIR --out DIR: a DistilBERT (or shallow BERT) student made from a
// masked-LM teacher's embeddings, chosen layers and MLM head, or randomly initialised, written as a
// Hugging Face directory with the teacher's tokenizer files beside it.
#include <iostream>

#include "commands.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/runtime.h"
#include "retort/student.h"
#include "retort/tokenizer.h"

namespace retort::cli {

void add_init_student(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string teacher, out, strategy, format = "distilbert";
    std::vector<int64_t> layers;
    int64_t n_layers = 0, hidden_size = 0, intermediate_size = 0, embedding_size = 0, bottleneck_size = 0, ffns = 0;
    uint64_t seed = 42;
    bool random_init = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("init-student", "Make a student from a masked-LM teacher: its embeddings, some of its layers and its MLM head");
  cmd->add_option("teacher", a->teacher, "Hugging Face teacher directory (BERT/DistilBERT with a masked-LM head)")->required();
  cmd->add_option("--out", a->out, "Directory to write the student to")->required();
  auto* layers = cmd->add_option("--layers", a->layers, "Teacher layers to copy, e.g. 0,2,4 (strictly increasing)")->delimiter(',');
  cmd->add_option("--strategy", a->strategy, "Layer choice when --layers is not given (default every-other)")
      ->check(CLI::IsMember({"every-other", "hf-example", "first-k", "last-k"}))
      ->excludes(layers);
  cmd->add_option("--n-layers", a->n_layers, "Student layers (default: the strategy's, or ceil(L/2) with --random-init)");
  cmd->add_option("--format", a->format, "Student architecture")->check(CLI::IsMember({"distilbert", "bert", "mobilebert"}))->capture_default_str();
  cmd->add_flag("--random-init", a->random_init, "Copy nothing: initialise the student from --seed");
  cmd->add_option("--hidden-size", a->hidden_size, "Student hidden size (only with --random-init when it differs from the teacher's)");
  cmd->add_option("--intermediate-size", a->intermediate_size,
                  "Student FFN size (default: the teacher's ratio to the hidden size; only with --random-init when it differs)");
  cmd->add_option("--embedding-size", a->embedding_size, "MobileBERT: word-embedding width (default hidden/4)");
  cmd->add_option("--bottleneck-size", a->bottleneck_size, "MobileBERT: intra-block bottleneck width (default hidden/4)");
  cmd->add_option("--ffns", a->ffns, "MobileBERT: stacked feed-forward networks per block (default 4)");
  cmd->add_option("--seed", a->seed, "Seed of the random initialisation")->capture_default_str();
  cmd->callback([&run, &g, a, cmd] {
    run = [&g, a, cmd] {
      StudentOptions opt;
      if (cmd->count("--layers") > 0) opt.layers = a->layers;
      if (!a->strategy.empty()) opt.strategy = parse_layer_strategy(a->strategy);
      if (cmd->count("--n-layers") > 0) opt.n_layers = a->n_layers;
      if (cmd->count("--hidden-size") > 0) opt.hidden_size = a->hidden_size;
      if (cmd->count("--intermediate-size") > 0) opt.intermediate_size = a->intermediate_size;
      if (cmd->count("--embedding-size") > 0) opt.embedding_size = a->embedding_size;
      if (cmd->count("--bottleneck-size") > 0) opt.bottleneck_size = a->bottleneck_size;
      if (cmd->count("--ffns") > 0) opt.feedforward_networks = a->ffns;
      opt.format = parse_student_format(a->format);
      opt.random_init = a->random_init;
      opt.seed = a->seed;

      LoadOptions lo;
      lo.strict = g.strict;
      lo.device = parse_device(g.device);
      lo.head_from_config = false;
      lo.head = HeadKind::MaskedLM;
      LoadReport report;
      Model teacher = load_model(a->teacher, lo, &report);
      teacher->eval();
      for (const auto& u : report.unexpected) std::cerr << "warning: unexpected tensor " << u << " (ignored)\n";
      check(opt.random_init || report.initialised.empty(), a->teacher, ": the teacher has no masked-LM head weights (",
            report.initialised.empty() ? "" : report.initialised.front(),
            " missing); init-student copies the head of a *ForMaskedLM checkpoint (or use --random-init)");

      const auto picked = student_layer_indices(opt, teacher->config.num_hidden_layers);
      Model student = init_student_from_teacher(*teacher, opt);
      save_model(*student, a->out);

      if (path_exists(join_path(a->teacher, "tokenizer.json")) || path_exists(join_path(a->teacher, "vocab.txt"))) {
        Tokenizer::load(a->teacher).save(a->out);
      } else {
        std::cerr << "warning: " << a->teacher << " has no tokenizer files (tokenizer.json or vocab.txt); "
                  << a->out << " has none either: add them before using the student\n";
      }

      const auto& c = student->config;
      std::cout << architecture_name(c.model_type, student->head) << ": " << c.num_hidden_layers << " layers, hidden "
                << c.hidden_size << ", " << parameter_count(*student) << " parameters";
      if (opt.random_init) {
        std::cout << ", randomly initialised (seed " << opt.seed << ")";
      } else {
        std::cout << ", from teacher layers ";
        for (size_t i = 0; i < picked.size(); ++i) std::cout << (i ? "," : "") << picked[i];
        if (c.model_type == ModelType::DistilBert && teacher->bert->embeddings && teacher->bert->embeddings->token_type_embeddings) {
          std::cout << " (token-type embeddings dropped, as DistilBERT has none)";
        }
      }
      std::cout << "\nwrote " << a->out << "\n";
    };
  });
}

}  // namespace retort::cli
