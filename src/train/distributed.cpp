// c10d data parallelism (see distributed.h): TCPStore + ProcessGroupGloo or ProcessGroupNCCL, and
// gradient averaging in buckets started from hooks on the gradient accumulators, during backward.
#include "retort/distributed.h"

#include <torch/torch.h>

#include <cstdlib>
#include <mutex>

#include "retort/error.h"

#if defined(RETORT_HAVE_GLOO) || defined(RETORT_HAVE_NCCL)
#define RETORT_HAVE_C10D 1
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#endif
#ifdef RETORT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RETORT_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace retort {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  check(end && *end == '\0', "environment variable ", name, "='", v, "' is not an integer");
  return static_cast<int>(x);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1);
  check(e.world_size >= 1, "WORLD_SIZE must be at least 1, got ", e.world_size);
  e.rank = env_int("RANK", 0);
  check(e.rank >= 0 && e.rank < e.world_size, "RANK=", e.rank, " is outside [0, WORLD_SIZE=", e.world_size, ")");
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500);
  check(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT=", e.master_port, " is not a TCP port");
  return e;
}

std::chrono::milliseconds dist_timeout_from_environment() {
  const int seconds = env_int("RETORT_DIST_TIMEOUT", 1800);
  check(seconds > 0, "RETORT_DIST_TIMEOUT must be a positive number of seconds, got ", seconds);
  return std::chrono::milliseconds(static_cast<int64_t>(seconds) * 1000);
}

bool data_parallel_available(torch::DeviceType type) {
#ifdef RETORT_HAVE_GLOO
  if (type == torch::kCPU) return true;
#endif
#ifdef RETORT_HAVE_NCCL
  if (type == torch::kCUDA) return true;
#endif
  (void)type;
  return false;
}

torch::Device rank_device(const torch::Device& requested, const DistEnv& env) {
  if (!requested.is_cuda() || !env.distributed()) return requested;
  check(!requested.has_index() || env.local_world_size == 1 || requested.index() == env.local_rank,
        "data parallel with ", env.local_world_size, " processes on this machine: give --device cuda (each process ",
        "takes cuda:LOCAL_RANK), not ", requested.str(), " for all of them");
  if (requested.has_index()) return requested;
  if (torch::cuda::is_available()) {
    const auto count = static_cast<int64_t>(torch::cuda::device_count());
    check(env.local_rank < count, "data parallel on cuda: LOCAL_RANK=", env.local_rank, " but only ", count,
          " CUDA device(s) are visible (one process per GPU)");
  }
  return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(env.local_rank));
}

std::vector<size_t> rank_rows(const std::vector<size_t>& global, const DistEnv& env, int64_t batch) {
  if (!env.distributed()) return global;
  if (static_cast<int64_t>(global.size()) < batch * env.world_size) return {};
  const auto first = global.begin() + env.rank * batch;
  return std::vector<size_t>(first, first + batch);
}

int64_t global_batches(int64_t n, int64_t batch, const DistEnv& env) {
  const int64_t global = batch * env.world_size;
  return env.distributed() ? n / global : (n + global - 1) / global;
}

std::shared_ptr<DataParallel> data_parallel_from_environment(const torch::Device& device) {
  const DistEnv env = dist_env_from_environment();
  if (!env.distributed()) return nullptr;
  return std::make_shared<DataParallel>(env, dist_timeout_from_environment(), device);
}

namespace {

void check_backend(const torch::Device& device) {
  if (data_parallel_available(device.type())) return;
  if (device.is_cuda()) {
    fail("data-parallel training on ", device.str(), " needs NCCL: a CUDA libtorch built with it, and nccl.h when ",
         "Retort is built (NCCL_INCLUDE_DIR); this build has none");
  }
  check(device.is_cpu(), "data-parallel training runs on CPU (Gloo) or CUDA (NCCL), not ", device.str());
  fail("data-parallel training on CPU needs libtorch's Gloo backend and libgloo-dev (scripts/setup.sh installs it)");
}

}  // namespace

#ifndef RETORT_HAVE_C10D

struct DataParallel::Impl {};
DataParallel::DataParallel(const DistEnv& env, std::chrono::milliseconds, torch::Device device)
    : env_(env), device_(device) {
  check_backend(device);
}
DataParallel::~DataParallel() = default;
void DataParallel::broadcast(const std::vector<torch::Tensor>&) {}
std::vector<double> DataParallel::sum(const std::vector<double>& v) { return v; }
std::vector<std::string> DataParallel::gather_strings(const std::string& mine) { return {mine}; }
void DataParallel::barrier() {}
struct GradientReducer::State {};
GradientReducer::GradientReducer(std::shared_ptr<DataParallel>, std::vector<torch::Tensor>, int64_t, int64_t,
                                 torch::ScalarType) {
  check_backend(torch::kCPU);
}
GradientReducer::~GradientReducer() = default;
void GradientReducer::arm() {}
void GradientReducer::finish() {}
int64_t GradientReducer::bucket_count() const { return 0; }
int64_t GradientReducer::started_in_backward() const { return 0; }

#else

#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;  // 2.x: ProcessGroupGloo and ProcessGroupNCCL are backends
#else
using Collectives = c10d::ProcessGroup;
#endif

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Collectives> pg;

  void run(const std::string& what, c10::intrusive_ptr<c10d::Work> work, int rank) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      fail("data-parallel ", what, " failed on rank ", rank, " (another rank died, hung past the timeout or lost "
           "its connection): ", msg);
    }
  }
};

DataParallel::DataParallel(const DistEnv& env, std::chrono::milliseconds timeout, torch::Device device)
    : env_(env), device_(device), impl_(std::make_unique<Impl>()) {
  check_backend(device);
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world_size;
  so.waitWorkers = true;
  so.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    if (device.is_cuda()) {
#ifdef RETORT_HAVE_NCCL
      // Blocking waits: a collective past the timeout throws here (and fails with our message) instead of
      // NCCL's watchdog tearing the process down. Both spellings: libtorch 1.x and 2.x.
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      setenv("NCCL_BLOCKING_WAIT", "1", 0);
      // This rank's GPU becomes the current one (NCCL's communicators and stray allocations go there,
      // not to GPU 0).
      if (device.has_index()) c10::cuda::set_device(device.index());
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, opts);
#endif
    } else {
#ifdef RETORT_HAVE_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, opts);
#endif
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    fail("data-parallel rendezvous at ", env.master_addr, ":", env.master_port, " failed on rank ", env.rank, " of ",
         env.world_size, ": ", msg.substr(0, msg.find('\n')));
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t.detach().contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->run("broadcast", impl_->pg->broadcast(one, o), env_.rank);
    if (one[0].data_ptr() != t.data_ptr()) t.detach().copy_(one[0]);
  }
}

std::vector<double> DataParallel::sum(const std::vector<double>& values) {
  if (values.empty()) return values;
  std::vector<at::Tensor> t{torch::tensor(values, torch::kDouble).to(device_)};
  impl_->run("metrics all-reduce", impl_->pg->allreduce(t), env_.rank);
  const torch::Tensor sums = t[0].cpu();
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

std::vector<std::string> DataParallel::gather_strings(const std::string& mine) {
  const std::string prefix = "retort/gather/" + std::to_string(gathers_++) + "/";
  std::vector<std::string> out;
  try {
    impl_->store->set(prefix + std::to_string(env_.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
    for (int r = 0; r < env_.world_size; ++r) {
      const auto bytes = impl_->store->get(prefix + std::to_string(r));  // waits up to the store's timeout
      out.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    fail("data-parallel state gather failed on rank ", env_.rank, " (another rank died, hung past the timeout or ",
         "lost its connection): ", msg.substr(0, msg.find('\n')));
  }
  barrier();  // nobody leaves before every rank has read every key
  return out;
}

void DataParallel::barrier() {
  std::vector<at::Tensor> t{torch::zeros({1}, torch::TensorOptions().device(device_))};
  impl_->run("barrier", impl_->pg->allreduce(t), env_.rank);
}

struct GradientReducer::State {
  struct Bucket {
    std::vector<size_t> members;  // indices into params, in the order they are flattened
    int64_t pending = 0;          // members whose gradient this backward has not accumulated yet
    torch::Tensor flat;           // (sum of the members' numels) their gradients, being summed over the ranks
    c10::intrusive_ptr<c10d::Work> work;
  };

  std::shared_ptr<DataParallel> dp;
  std::vector<torch::Tensor> params;
  torch::ScalarType wire = torch::kFloat;  // dtype on the wire (see the constructor)
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // param index -> bucket index
  std::vector<char> seen;         // param index -> its hook fired in this backward
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they carry our hooks
  std::vector<uintptr_t> hook_keys;
  size_t next = 0;  // the next bucket to start: buckets start in order, the same collectives on every rank
  bool armed = false;
  int64_t bucket_bytes = 0, first_bucket_bytes = 0;
  bool rebuilt = false;         // buckets re-made in the order the first overlapped backward produced
  std::vector<size_t> arrival;  // param indices in the order their hooks fired (first armed backward)
  int64_t started_in_backward = 0;
  std::mutex mutex;

  // Buckets over the parameters in `order` (first bucket first), one dtype and device each, closed at
  // first_bucket_bytes for the first and bucket_bytes after.
  void assign_buckets(const std::vector<size_t>& order) {
    buckets.clear();
    int64_t bytes = 0;
    for (size_t k : order) {
      const torch::Tensor& p = params[k];
      const int64_t cap = buckets.size() <= 1 ? first_bucket_bytes : bucket_bytes;
      const bool fits = !buckets.empty() && bytes < cap &&
                        params[buckets.back().members.front()].scalar_type() == p.scalar_type() &&
                        params[buckets.back().members.front()].device() == p.device();
      if (!fits) {
        buckets.emplace_back();
        bytes = 0;
      }
      buckets.back().members.push_back(k);
      bytes += p.numel() * static_cast<int64_t>(p.element_size());
      bucket_of[k] = buckets.size() - 1;
    }
  }

  void reset() {
    for (auto& b : buckets) {
      b.pending = static_cast<int64_t>(b.members.size());
      b.flat = torch::Tensor();
      b.work.reset();
    }
    std::fill(seen.begin(), seen.end(), 0);
    next = 0;
  }

  void start(Bucket& b) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> views;
    for (size_t i : b.members) {
      const torch::Tensor& p = params[i];
      const torch::Tensor g = p.grad();
      views.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    }
    b.flat = torch::cat(views);
    if (b.flat.scalar_type() != wire) {  // compressed: each rank sends its share of the mean
      b.flat = b.flat.div(static_cast<double>(dp->world_size())).to(wire);
    }
    std::vector<at::Tensor> one{b.flat};
    b.work = dp->impl_->pg->allreduce(one);
  }

  void start_complete_buckets() {  // under mutex
    while (next < buckets.size() && buckets[next].pending == 0) start(buckets[next++]);
  }

  void on_accumulated(size_t index) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    // A second accumulation in one backward (reentrant backward, e.g. activation checkpointing) would come
    // after its bucket was sent with part of the gradient.
    check(!seen[index], "data parallel: parameter ", index, "'s gradient was accumulated twice in one backward; ",
          "train with allreduce_overlap off (--no-allreduce-overlap)");
    seen[index] = 1;
    if (!rebuilt) arrival.push_back(index);
    if (--buckets[bucket_of[index]].pending == 0) start_complete_buckets();
  }

  // Runs after a parameter's gradient accumulator has added this backward's gradient into .grad (the
  // FunctionPostHook interface, the same in libtorch 1.x and 2.x).
  struct Hook : torch::autograd::FunctionPostHook {
    Hook(State* state, size_t index) : state(state), index(index) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      state->on_accumulated(index);
      return outputs;
    }
    State* state;
    size_t index;
  };
};

GradientReducer::GradientReducer(std::shared_ptr<DataParallel> dp, std::vector<torch::Tensor> params,
                                 int64_t bucket_bytes, int64_t first_bucket_bytes, torch::ScalarType wire)
    : s_(std::make_unique<State>()) {
  check(dp != nullptr, "GradientReducer needs a process group");
  check(bucket_bytes > 0 && first_bucket_bytes > 0, "gradient bucket sizes must be positive");
  check(wire == torch::kFloat || wire == torch::kBFloat16 || wire == torch::kHalf,
        "gradient all-reduce dtype must be fp32, bf16 or fp16");
#if TORCH_VERSION_MAJOR < 2
  check(wire != torch::kBFloat16 || !dp->device().is_cpu(),
        "gradient all-reduce in bf16: this libtorch's Gloo cannot sum bf16 (libtorch 2 can); use fp16");
#endif
  s_->dp = std::move(dp);
  s_->params = std::move(params);
  s_->wire = wire;
  const size_t n = s_->params.size();
  check(n > 0, "GradientReducer: no trainable parameters");
  s_->bucket_of.assign(n, 0);
  s_->seen.assign(n, 0);
  for (size_t k = 0; k < n; ++k) {
    check(s_->params[k].requires_grad() && s_->params[k].is_leaf(), "GradientReducer: parameter ", k,
          " is not a trainable leaf tensor");
  }
  // Reverse parameter order to start with (backward produces the last layers' gradients first); after
  // the first overlapped backward, the order the gradients actually came in.
  s_->bucket_bytes = bucket_bytes;
  s_->first_bucket_bytes = first_bucket_bytes;
  std::vector<size_t> order(n);
  for (size_t k = 0; k < n; ++k) order[k] = n - 1 - k;
  s_->assign_buckets(order);
  for (size_t k = 0; k < n; ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(s_->params[k]);
    check(acc != nullptr, "GradientReducer: parameter ", k, " has no gradient accumulator");
    s_->hook_keys.push_back(acc->add_post_hook(std::make_unique<State::Hook>(s_.get(), k)));
    s_->accumulators.push_back(std::move(acc));
  }
  s_->reset();
}

GradientReducer::~GradientReducer() {
  if (!s_) return;
  for (size_t k = 0; k < s_->accumulators.size(); ++k) s_->accumulators[k]->del_post_hook(s_->hook_keys[k]);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(s_->mutex);
  s_->reset();
  s_->armed = true;
}

void GradientReducer::finish() {
  std::lock_guard<std::mutex> lock(s_->mutex);
  State& s = *s_;
  DataParallel::Impl& dp = *s.dp->impl_;
  const int rank = s.dp->rank();
  const bool was_armed = s.armed;
  s.armed = false;
  s.started_in_backward = static_cast<int64_t>(s.next);
  for (; s.next < s.buckets.size(); ++s.next) s.start(s.buckets[s.next]);
  // Which parameters have a gradient on some rank: one more (small) collective, after the buckets.
  const size_t n = s.params.size();
  std::vector<float> here(n);
  for (size_t k = 0; k < n; ++k) here[k] = s.params[k].grad().defined() ? 1.0f : 0.0f;
  std::vector<at::Tensor> used{torch::tensor(here).to(s.dp->device())};  // (n) ranks where the gradient is defined
  auto used_work = dp.pg->allreduce(used);
  for (auto& b : s.buckets) dp.run("gradient all-reduce", b.work, rank);
  dp.run("gradient all-reduce", used_work, rank);

  torch::NoGradGuard no_grad;
  const torch::Tensor used_cpu = used[0].cpu();
  const float* used_by = used_cpu.data_ptr<float>();
  const double scale = 1.0 / static_cast<double>(s.dp->world_size());
  for (auto& b : s.buckets) {
    const auto dtype = s.params[b.members.front()].scalar_type();
    if (b.flat.scalar_type() == dtype) b.flat.mul_(scale);
    else b.flat = b.flat.to(dtype);  // compressed: already the mean
    int64_t offset = 0;
    for (size_t k : b.members) {
      torch::Tensor& p = s.params[k];
      const torch::Tensor avg = b.flat.narrow(0, offset, p.numel()).view_as(p);
      offset += p.numel();
      if (p.grad().defined()) p.mutable_grad().copy_(avg);
      else if (used_by[k] > 0) p.mutable_grad() = avg.clone();
    }
  }
  if (was_armed && !s.rebuilt) {
    // Rebuild the buckets in the order this backward produced the gradients (those it did not produce
    // last), as DDP does after its first iteration: a parameter without a gradient no longer holds back
    // the buckets after it. Rank 0's order for every rank (the same collectives in the same order).
    std::vector<char> arrived(n, 0);
    std::vector<int64_t> order;
    for (size_t k : s.arrival) {
      order.push_back(static_cast<int64_t>(k));
      arrived[k] = 1;
    }
    for (size_t k = n; k-- > 0;) {
      if (!arrived[k]) order.push_back(static_cast<int64_t>(k));
    }
    const torch::Tensor sent = torch::tensor(order, torch::kLong).to(s.dp->device());  // (n) param indices
    s.dp->broadcast({sent});
    const torch::Tensor got = sent.cpu();
    const int64_t* at = got.data_ptr<int64_t>();
    std::vector<size_t> rank0_order(n);
    for (size_t i = 0; i < n; ++i) rank0_order[i] = static_cast<size_t>(at[i]);
    s.assign_buckets(rank0_order);
    s.rebuilt = true;
    s.arrival.clear();
  }
  s.reset();
}

int64_t GradientReducer::bucket_count() const { return static_cast<int64_t>(s_->buckets.size()); }
int64_t GradientReducer::started_in_backward() const { return s_->started_in_backward; }

#endif

}  // namespace retort
