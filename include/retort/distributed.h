// Data-parallel training across processes on PyTorch's own c10d: a TCPStore rendezvous and
// ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, when the libtorch has it). Processes are started as
// torchrun starts them: each reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT (`retort launch --nproc N` sets them).
// Every rank starts from rank 0's weights, computes gradients on its own share of each global batch,
// and the gradients are averaged (all-reduced in buckets, started during backward as each bucket's
// gradients are complete: GradientReducer) before clipping and the optimizer step, so N processes with
// batch b take the same steps as one process with batch N*b.
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

// Whether this build can train data-parallel on that kind of device: CPU through Gloo (libgloo-dev),
// CUDA through NCCL (a CUDA libtorch built with NCCL, and nccl.h at build time).
bool data_parallel_available(torch::DeviceType type = torch::kCPU);

// The device this rank trains on: `requested` (parse_device's), except that data parallel on "cuda"
// without an index gives each process the GPU numbered by its LOCAL_RANK (as with torchrun: one
// process per GPU).
torch::Device rank_device(const torch::Device& requested, const DistEnv& env);

// Fine-tuning's data parallelism: every rank draws the same global batches of N·b rows. This rank's
// share of one: rows r·b … (r+1)·b − 1; empty for a short (last) global batch, which data parallel skips
// so that every rank takes every step. One process: the whole batch, short or not.
std::vector<size_t> rank_rows(const std::vector<size_t>& global, const DistEnv& env, int64_t batch);
// Global batches of N·b rows that n rows give per epoch: full ones only when data parallel.
int64_t global_batches(int64_t n, int64_t batch, const DistEnv& env);

class DataParallel {
 public:
  // Rendezvous (rank 0 hosts the TCPStore) and a process group for `device`: Gloo on CPU, NCCL on CUDA.
  // `timeout` bounds every collective: a rank that dies or hangs makes the others fail with an error
  // within it instead of waiting forever (NCCL: blocking waits are turned on, unless the environment
  // already says otherwise).
  DataParallel(const DistEnv& env, std::chrono::milliseconds timeout, torch::Device device = torch::kCPU);
  ~DataParallel();

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const torch::Device& device() const { return device_; }

  // Replaces every rank's values with rank 0's (parameters at the start of training).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Sums a small fp64 vector over the ranks (metrics: losses, token counts).
  std::vector<double> sum(const std::vector<double>& values);
  // Every rank's `mine`, by rank, on every rank (through the store): per-rank state for checkpoints
  // (RNG, masker). A collective: every rank must call it at the same point.
  std::vector<std::string> gather_strings(const std::string& mine);
  void barrier();

 private:
  friend class GradientReducer;
  struct Impl;
  DistEnv env_;
  torch::Device device_;
  int64_t gathers_ = 0;  // gather_strings calls so far: each uses its own store keys
  std::unique_ptr<Impl> impl_;
};

// The process group for this process when WORLD_SIZE > 1 (from the environment, with
// dist_timeout_from_environment()), else null: training then runs in one process.
std::shared_ptr<DataParallel> data_parallel_from_environment(const torch::Device& device);

// Averages the gradients of a fixed set of parameters over the ranks, as PyTorch's DDP Reducer does:
// the parameters are split into buckets in reverse order (backward produces the last layers' gradients
// first), and a hook on each parameter's gradient accumulator starts a bucket's all-reduce as soon as
// every gradient in it is accumulated, so communication overlaps the rest of backward. Buckets are
// always started in bucket order, the same sequence of collectives on every rank whatever order the
// hooks fire in. With gradient accumulation, only the last micro-batch's backward is armed.
class GradientReducer {
 public:
  // `params`: the trainable parameters (requires_grad leaves). Buckets hold one dtype and device each and
  // close at bucket_bytes; the first (the last layers) at first_bucket_bytes, so communication starts early.
  // `wire`: the dtype gradients travel in. Narrower than a bucket's (bf16 or fp16 for fp32 gradients), each
  // rank divides by the world size, casts, and the sum is cast back: half the bytes, at that dtype's
  // rounding (PyTorch DDP's bf16/fp16 compression hooks). The same dtype: exact sums.
  GradientReducer(std::shared_ptr<DataParallel> dp, std::vector<torch::Tensor> params,
                  int64_t bucket_bytes = 25 << 20, int64_t first_bucket_bytes = 1 << 20,
                  torch::ScalarType wire = torch::kFloat);
  ~GradientReducer();  // removes its hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward starts each bucket's all-reduce once the bucket is complete. Unarmed, the hooks do
  // nothing and finish() does all the work after backward.
  void arm();
  // After backward: starts the buckets not started yet, waits for all of them and writes the averages into
  // the gradients. A gradient undefined on every rank stays undefined (the parameter took no part, as in
  // one process); undefined on some ranks only, it counts as zero there.
  void finish();

  int64_t bucket_count() const;
  // How many buckets the last backward had started before finish() (the overlap actually obtained).
  int64_t started_in_backward() const;

 private:
  struct State;  // buckets, hooks and collectives in flight (c10d types stay in the .cpp)
  std::unique_ptr<State> s_;
};

}  // namespace retort
