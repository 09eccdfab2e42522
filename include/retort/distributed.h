// Data-parallel training across processes on PyTorch's own c10d: a TCPStore rendezvous and
// ProcessGroupGloo (CPU). Processes are started as torchrun starts them: each reads RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (`retort launch --nproc N` sets them).
// Every rank starts from rank 0's weights, computes gradients on its own share of each global batch,
// and the gradients are averaged (all-reduced in buckets) before clipping and the optimizer step, so
// N processes with batch b take the same steps as one process with batch N*b.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace retort {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world_size > 1; }
};

// From the environment; world size 1 (not distributed) when WORLD_SIZE is unset. Inconsistent values
// (RANK outside [0, WORLD_SIZE), a bad port) are errors naming the variable.
DistEnv dist_env_from_environment();

// RETORT_DIST_TIMEOUT (seconds) or 30 minutes: how long a collective may wait for the other ranks
// (rank 0 evaluating or checkpointing while the others wait included).
std::chrono::milliseconds dist_timeout_from_environment();

// False when this libtorch or build has no Gloo backend.
bool data_parallel_available();

class DataParallel {
 public:
  // Rendezvous (rank 0 hosts the TCPStore) and a Gloo process group. `timeout` bounds every collective:
  // a rank that dies or hangs makes the others fail with an error within it instead of waiting forever.
  DataParallel(const DistEnv& env, std::chrono::milliseconds timeout);
  ~DataParallel();

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }

  // Replaces every rank's values with rank 0's (parameters at the start of training).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Averages the gradients of `params` over the ranks, flattened into buckets of about bucket_bytes
  // (undefined gradients count as zero). fp32 or bf16 gradients, on CPU.
  void average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 25 << 20);
  // Sums a small fp64 vector over the ranks (metrics: losses, token counts).
  std::vector<double> sum(const std::vector<double>& values);
  // Every rank's `mine`, by rank, on every rank (through the store): per-rank state for checkpoints
  // (RNG, masker). A collective: every rank must call it at the same point.
  std::vector<std::string> gather_strings(const std::string& mine);
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  int64_t gathers_ = 0;  // gather_strings calls so far: each uses its own store keys
  std::unique_ptr<Impl> impl_;
};

}  // namespace retort
