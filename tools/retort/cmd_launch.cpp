// retort launch: N local processes of one command with torchrun's environment (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). When one exits with an error the others are
// stopped (SIGTERM, then SIGKILL after a grace period, as torchrun does: a rank blocked in a rendezvous
// or collective cannot act on SIGTERM) and launch fails with its status.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "commands.h"
#include "retort/error.h"

namespace retort::cli {

namespace {

// The ranks' process groups, for the signal handler: Ctrl-C or SIGTERM to launch reaches every rank
// (each rank leads its own group, so that stopping it also stops what it started).
pid_t g_ranks[1024];
volatile sig_atomic_t g_rank_count = 0;

extern "C" void forward_signal(int sig) {
  for (sig_atomic_t i = 0; i < g_rank_count; ++i) ::kill(-g_ranks[i], sig);
}

}  // namespace

void add_launch(CLI::App& app, GlobalOptions& g, Runner& run) {
  struct Args {
    int nproc = 2;
    int node_rank = 0, nnodes = 1;
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
    double grace_seconds = 30;
    std::vector<std::string> command;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("launch", "Run a training command as N data-parallel processes (like torchrun)");
  cmd->add_option("--nproc", a->nproc, "Processes on this machine")->capture_default_str();
  cmd->add_option("--nnodes", a->nnodes, "Machines taking part")->capture_default_str();
  cmd->add_option("--node-rank", a->node_rank, "This machine's index among them")->capture_default_str();
  cmd->add_option("--master-addr", a->master_addr, "Address of rank 0's machine")->capture_default_str();
  cmd->add_option("--master-port", a->master_port, "Port for the rendezvous")->capture_default_str();
  cmd->add_option("--grace-seconds", a->grace_seconds,
                  "After a rank fails: how long the others get to stop on SIGTERM before SIGKILL")
      ->capture_default_str();
  cmd->add_option("command", a->command, "The command, after --: e.g. -- build/retort distill ...")->required();
  cmd->callback([&run, &g, a] {
    run = [&g, a] {
      (void)g;
      check(a->nproc >= 1 && a->nnodes >= 1 && a->node_rank >= 0 && a->node_rank < a->nnodes,
            "launch: --nproc and --nnodes must be positive and --node-rank in [0, --nnodes)");
      check(a->nproc <= 1024, "launch: at most 1024 processes per machine");
      check(a->grace_seconds >= 0 && a->grace_seconds <= 86400, "launch: --grace-seconds must be in [0, 86400]");
      const int world = a->nproc * a->nnodes;
      struct sigaction forward {};
      forward.sa_handler = forward_signal;
      forward.sa_flags = SA_RESTART;  // waitpid goes on waiting
      sigemptyset(&forward.sa_mask);
      ::sigaction(SIGINT, &forward, nullptr);
      ::sigaction(SIGTERM, &forward, nullptr);
      std::vector<pid_t> pids;
      for (int local = 0; local < a->nproc; ++local) {
        const pid_t pid = ::fork();
        check(pid >= 0, "launch: fork failed");
        if (pid == 0) {
          ::setpgid(0, 0);
          ::signal(SIGINT, SIG_DFL);
          ::signal(SIGTERM, SIG_DFL);
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
        ::setpgid(pid, pid);  // also here: whichever of parent and child runs first
        pids.push_back(pid);
        g_ranks[g_rank_count] = pid;
        g_rank_count = g_rank_count + 1;
      }
      int failed_rank = -1, failed_status = 0, running = static_cast<int>(pids.size());
      std::vector<bool> exited(pids.size(), false);
      std::chrono::steady_clock::time_point kill_at{};  // set when a rank failed
      bool killed = false;
      while (running > 0) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, failed_rank < 0 ? 0 : WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break;
        if (pid == 0) {  // the others are stopping: past the grace period, SIGKILL them
          if (!killed && std::chrono::steady_clock::now() >= kill_at) {
            for (size_t i = 0; i < pids.size(); ++i) {
              if (!exited[i]) ::kill(-pids[i], SIGKILL);
            }
            killed = true;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        --running;
        size_t index = 0;
        while (index < pids.size() && pids[index] != pid) ++index;
        if (index < pids.size()) exited[index] = true;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failed_rank < 0) {
          failed_rank = a->node_rank * a->nproc + static_cast<int>(index);
          failed_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          for (size_t i = 0; i < pids.size(); ++i) {
            if (!exited[i]) ::kill(-pids[i], SIGTERM);
          }
          kill_at = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(a->grace_seconds * 1000));
        }
      }
      check(failed_rank < 0, "launch: rank ", failed_rank, " exited with status ", failed_status,
            "; the other ranks were stopped");
    };
  });
}

}  // namespace retort::cli
