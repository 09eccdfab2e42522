// retort launch: N local processes of one command with torchrun's environment (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). When one exits with an error the others are
// stopped and launch fails with its status; for several machines, set the variables on each yourself.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "commands.h"
#include "retort/error.h"

namespace retort::cli {

void add_launch(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    int nproc = 2;
    int node_rank = 0, nnodes = 1;
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
    std::vector<std::string> command;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("launch", "Run a training command as N data-parallel processes (like torchrun)");
  cmd->add_option("--nproc", a->nproc, "Processes on this machine")->capture_default_str();
  cmd->add_option("--nnodes", a->nnodes, "Machines taking part")->capture_default_str();
  cmd->add_option("--node-rank", a->node_rank, "This machine's index among them")->capture_default_str();
  cmd->add_option("--master-addr", a->master_addr, "Address of rank 0's machine")->capture_default_str();
  cmd->add_option("--master-port", a->master_port, "Port for the rendezvous")->capture_default_str();
  cmd->add_option("command", a->command, "The command, after --: e.g. -- build/retort distill ...")->required();
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      (void)g;
      check(a->nproc >= 1 && a->nnodes >= 1 && a->node_rank >= 0 && a->node_rank < a->nnodes,
            "launch: --nproc and --nnodes must be positive and --node-rank in [0, --nnodes)");
      const int world = a->nproc * a->nnodes;
      std::vector<pid_t> pids;
      for (int local = 0; local < a->nproc; ++local) {
        const pid_t pid = ::fork();
        check(pid >= 0, "launch: fork failed");
        if (pid == 0) {
          const int rank = a->node_rank * a->nproc + local;
          ::setenv("RANK", std::to_string(rank).c_str(), 1);
          ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
          ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
          ::setenv("LOCAL_WORLD_SIZE", std::to_string(a->nproc).c_str(), 1);
          ::setenv("MASTER_ADDR", a->master_addr.c_str(), 1);
          ::setenv("MASTER_PORT", std::to_string(a->master_port).c_str(), 1);
          // The cores shared out: OpenMP and OpenBLAS's own thread pool (unless set already).
          const std::string share = std::to_string(std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(a->nproc)));
          ::setenv("OMP_NUM_THREADS", share.c_str(), 0);
          ::setenv("OPENBLAS_NUM_THREADS", share.c_str(), 0);
          std::vector<char*> argv;
          for (auto& s : a->command) argv.push_back(s.data());
          argv.push_back(nullptr);
          ::execvp(argv[0], argv.data());
          std::fprintf(stderr, "retort: error: launch: cannot run %s\n", argv[0]);
          ::_exit(127);
        }
        pids.push_back(pid);
      }
      int failed_rank = -1, failed_status = 0, running = static_cast<int>(pids.size());
      while (running > 0) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) break;
        --running;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failed_rank < 0) {
          for (size_t i = 0; i < pids.size(); ++i) {
            if (pids[i] == pid) failed_rank = a->node_rank * a->nproc + static_cast<int>(i);
          }
          failed_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          for (pid_t other : pids) {
            if (other != pid) ::kill(other, SIGTERM);
          }
        }
      }
      check(failed_rank < 0, "launch: rank ", failed_rank, " exited with status ", failed_status,
            "; the other ranks were stopped");
    };
  });
}

}  // namespace retort::cli
