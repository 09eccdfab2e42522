// retort download: a model directory from the Hugging Face hub into huggingface_hub's cache layout.
#include <iostream>

#include "commands.h"
#include "retort/hub.h"

namespace retort::cli {

void add_download(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    std::string repo;
    DownloadOptions opt;
    bool quiet = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("download", "Fetch a model from the Hugging Face hub (resumable, checksummed, cached "
                                             "as huggingface_hub caches) and print its directory");
  cmd->add_option("name", a->repo, "Model name on the hub: NAME or ORG/NAME (e.g. distilbert-base-uncased)")->required();
  cmd->add_option("--revision", a->opt.revision, "Branch, tag or commit")->capture_default_str();
  cmd->add_option("--cache-dir", a->opt.cache_dir, "Cache directory (default: $HF_HUB_CACHE, $HF_HOME/hub or "
                                                   "~/.cache/huggingface/hub)");
  cmd->add_option("--endpoint", a->opt.endpoint, "Hub address (default: $HF_ENDPOINT or https://huggingface.co)");
  cmd->add_option("--retries", a->opt.retries, "Resumed attempts per file after a dropped connection")->capture_default_str();
  cmd->add_flag("--quiet", a->quiet, "Print only the directory");
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      (void)g;
      a->opt.progress = !a->quiet;
      const DownloadResult r = download_model(a->repo, a->opt);
      if (!a->quiet) {
        std::cerr << "download: " << a->repo << " at " << r.commit << ": " << r.files.size() << " files, "
                  << r.bytes_downloaded << " bytes downloaded, " << r.bytes_cached << " bytes from the cache\n";
      }
      std::cout << r.snapshot_dir << "\n";
    };
  });
}

}  // namespace retort::cli
