// retort prepare-corpus FILE... --tokenizer PATH --out DIR: tokenizes raw text (one paragraph a line,
// blank lines between documents) into the memory-mapped token shards that pre-training distillation
// reads. A progress bar on stderr when it is a terminal; a summary on stdout.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "retort/corpus.h"
#include "retort/error.h"
#include "retort/tokenizer.h"

namespace retort::cli {
namespace {

// Redraws one line on stderr at most ten times a second.
class ProgressBar {
 public:
  void operator()(size_t done, size_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (finished_ || (done < total && now - last_ < std::chrono::milliseconds(100))) return;
    finished_ = done >= total;
    last_ = now;
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %5.1f%%  %.1f / %.1f MB  %.1f MB/s ", bar.c_str(), 100 * frac, done / 1e6,
                 total / 1e6, secs > 0 ? done / 1e6 / secs : 0.0);
    if (finished_) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
  bool finished_ = false;
};

}  // namespace

void add_prepare_corpus(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::vector<std::string> inputs;
    std::string tokenizer, out;
    CorpusOptions options;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("prepare-corpus", "Tokenize raw text into token shards for pre-training distillation");
  cmd->add_option("inputs", a->inputs, "Text files: one paragraph a line, blank lines between documents")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "Model directory, tokenizer.json or vocab.txt")->required();
  cmd->add_option("--out", a->out, "Output directory for the shards and corpus.json")->required();
  cmd->add_option("--max-seq-len", a->options.max_seq_len, "Tokens per sequence, [CLS] and [SEP] included")
      ->capture_default_str();
  cmd->add_option("--min-tokens", a->options.min_tokens, "Drop sequences of this many tokens or fewer")
      ->capture_default_str();
  cmd->add_option("--max-unk-fraction", a->options.max_unk_fraction,
                  "Drop sequences whose share of [UNK] is at least this")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", a->options.shard_tokens, "Tokens per shard file")->capture_default_str();
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      const Tokenizer tok = Tokenizer::load(a->tokenizer);
      CorpusOptions o = a->options;
      o.threads = g.threads > 0 ? static_cast<size_t>(g.threads) : 0;
      const bool tty = ::isatty(::fileno(stderr)) != 0;
      if (tty) o.progress = ProgressBar();
      const CorpusSummary s = prepare_corpus(a->inputs, tok, a->out, o);
      const double mb = static_cast<double>(s.n_bytes) / 1e6;
      std::cout << "corpus:    " << a->out << " (" << s.n_shards << " shard" << (s.n_shards == 1 ? "" : "s") << ")\n"
                << "input:     " << a->inputs.size() << " file(s), " << mb << " MB, " << s.n_lines << " lines, "
                << s.n_documents << " documents\n"
                << "sequences: " << s.n_sequences << " (" << s.n_tokens << " tokens, "
                << (s.n_sequences ? static_cast<double>(s.n_tokens) / static_cast<double>(s.n_sequences) : 0.0)
                << " per sequence)\n"
                << "dropped:   " << s.dropped_short << " short (<= " << o.min_tokens << " tokens), " << s.dropped_unk
                << " with [UNK] >= " << o.max_unk_fraction << "\n"
                << "time:      " << s.seconds << " s, " << (s.seconds > 0 ? mb / s.seconds : 0.0) << " MB/s\n";
      if (s.n_sequences == 0) std::cerr << "warning: no sequence was kept\n";
    };
  });
}

}  // namespace retort::cli
