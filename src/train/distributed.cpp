// c10d data parallelism (see distributed.h): TCPStore + ProcessGroupGloo, bucketed gradient averaging.
#include "retort/distributed.h"

#include <torch/torch.h>

#include <cstdlib>

#include "retort/error.h"

#ifdef RETORT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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

#ifndef RETORT_HAVE_GLOO

bool data_parallel_available() { return false; }
struct DataParallel::Impl {};
DataParallel::DataParallel(const DistEnv& env, std::chrono::milliseconds) : env_(env) {
  fail("data-parallel training needs libtorch's Gloo backend and libgloo-dev (scripts/setup.sh installs it)");
}
DataParallel::~DataParallel() = default;
void DataParallel::broadcast(const std::vector<torch::Tensor>&) {}
void DataParallel::average_gradients(const std::vector<torch::Tensor>&, int64_t) {}
std::vector<double> DataParallel::sum(const std::vector<double>& v) { return v; }
std::vector<std::string> DataParallel::gather_strings(const std::string& mine) { return {mine}; }
void DataParallel::barrier() {}

#else

bool data_parallel_available() { return true; }

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;

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

DataParallel::DataParallel(const DistEnv& env, std::chrono::milliseconds timeout)
    : env_(env), impl_(std::make_unique<Impl>()) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world_size;
  so.waitWorkers = true;
  so.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, opts);
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

void DataParallel::average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  const double scale = 1.0 / static_cast<double>(env_.world_size);
  std::vector<torch::Tensor> bucket;  // gradients flattened together, of one dtype
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat_views;
    for (const auto& g : bucket) flat_views.push_back(g.reshape({-1}));
    std::vector<at::Tensor> flat{torch::cat(flat_views)};  // (sum of numels)
    impl_->run("gradient all-reduce", impl_->pg->allreduce(flat), env_.rank);
    flat[0].mul_(scale);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    torch::Tensor g = p.grad();
    if (!bucket.empty() && g.scalar_type() != bucket.front().scalar_type()) flush();
    bucket.push_back(g);
    bytes += g.numel() * static_cast<int64_t>(g.element_size());
    if (bytes >= bucket_bytes) flush();
  }
  flush();
}

std::vector<double> DataParallel::sum(const std::vector<double>& values) {
  if (values.empty()) return values;
  std::vector<at::Tensor> t{torch::tensor(values, torch::kDouble)};
  impl_->run("metrics all-reduce", impl_->pg->allreduce(t), env_.rank);
  return std::vector<double>(t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel());
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
  std::vector<at::Tensor> t{torch::zeros({1})};
  impl_->run("barrier", impl_->pg->allreduce(t), env_.rank);
}

#endif

}  // namespace retort
