// GradientReducer with two ranks in one process (two threads, Gloo over loopback): the averaged
// gradients equal the mean of each rank's own gradients; buckets start during backward when armed
// (and give the same bits as when they all start after it); gradient accumulation; a parameter that no
// rank used keeps an undefined gradient, one that a single rank used is averaged with zero.
#include <gtest/gtest.h>

#include <functional>
#include <mutex>
#include <thread>

#include <torch/torch.h>
#include <torch/version.h>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include "retort/distributed.h"
#include "retort/error.h"

namespace retort {
namespace {

// Four 16x16 layers; `rare` is used only by rank 1, `unused` by nobody. Both are registered first, so
// they sit in the last bucket (buckets are filled in reverse order) and every other bucket can complete
// during backward.
std::mutex rng_mutex;  // the ranks are threads sharing torch's global generator

struct Net : torch::nn::Module {
  torch::Tensor unused, rare;
  std::vector<torch::nn::Linear> layers;
  Net() {
    std::lock_guard<std::mutex> lock(rng_mutex);
    torch::manual_seed(3);
    unused = register_parameter("unused", torch::randn({8}));
    rare = register_parameter("rare", torch::randn({16}));
    for (int i = 0; i < 4; ++i) layers.push_back(register_module("l" + std::to_string(i), torch::nn::Linear(16, 16)));
  }
  torch::Tensor loss(const torch::Tensor& x, bool use_rare) {  // x (B, 16)
    torch::Tensor h = x;
    for (auto& l : layers) h = torch::tanh(l(h));
    if (use_rare) h = h * rare;
    return h.pow(2).mean();
  }
};

torch::Tensor input(int rank, int micro) {
  std::lock_guard<std::mutex> lock(rng_mutex);
  torch::manual_seed(100 + 10 * rank + micro);
  return torch::randn({6, 16});
}

// Each rank's own gradients (no communication), summed over `micros` micro-batches.
std::vector<torch::Tensor> local_grads(int rank, int micros) {
  Net net;
  for (int m = 0; m < micros; ++m) net.loss(input(rank, m), rank == 1).backward();
  std::vector<torch::Tensor> g;
  for (const auto& p : net.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return g;
}

struct RankResult {
  std::vector<torch::Tensor> grads;
  int64_t buckets = 0, started = 0;
  std::string error;
};

// Runs `body` as ranks 0 and 1 of a 2-process group on `port`, one thread each.
void two_ranks(int port, const std::function<void(DataParallel&, int, RankResult&)>& body, RankResult out[2]) {
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        DistEnv env;
        env.rank = r;
        env.world_size = 2;
        env.master_port = port;
        auto dp = std::make_shared<DataParallel>(env, std::chrono::milliseconds(30000));
        body(*dp, r, out[r]);
      } catch (const std::exception& e) {
        out[r].error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
}

// Each rank: `micros` micro-batches, the last one armed when `overlap`, then finish().
void reduce_run(int port, bool overlap, int micros, RankResult out[2], torch::ScalarType wire = torch::kFloat) {
  two_ranks(port, [&](DataParallel& dp, int r, RankResult& res) {
    Net net;
    std::vector<torch::Tensor> params = net.parameters();
    std::shared_ptr<DataParallel> shared(&dp, [](DataParallel*) {});
    // 1 KB buckets (one 16x16 weight each), so there are several to overlap.
    GradientReducer reducer(shared, params, 1024, 1024, wire);
    for (int m = 0; m < micros; ++m) {
      if (overlap && m == micros - 1) reducer.arm();
      net.loss(input(r, m), r == 1).backward();
    }
    reducer.finish();
    for (const auto& p : params) res.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    res.buckets = reducer.bucket_count();
    res.started = reducer.started_in_backward();
  }, out);
}

// `tolerance`: relative to the largest gradient of the parameter (0 for exact fp32 sums: 1e-7 absolute).
void expect_mean_of_ranks(const RankResult out[2], int micros, double tolerance = 0) {
  ASSERT_EQ(out[0].error, "");
  ASSERT_EQ(out[1].error, "");
  const auto g0 = local_grads(0, micros), g1 = local_grads(1, micros);
  ASSERT_EQ(out[0].grads.size(), g0.size());
  EXPECT_FALSE(g0[0].defined());  // `unused`: no rank has a gradient ...
  EXPECT_FALSE(out[0].grads[0].defined());  // ... and none appears
  EXPECT_FALSE(out[1].grads[0].defined());
  EXPECT_FALSE(g0[1].defined());  // `rare`: rank 1 only, averaged with rank 0's zero
  ASSERT_TRUE(g1[1].defined());
  for (size_t k = 1; k < g0.size(); ++k) {
    const torch::Tensor want = ((g0[k].defined() ? g0[k] : torch::zeros_like(g1[k])) + g1[k]) / 2;
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(out[r].grads[k].defined()) << "parameter " << k << " rank " << r;
      const double bound = tolerance > 0 ? tolerance * want.abs().max().item<double>() : 1e-7;
      EXPECT_LT((out[r].grads[k] - want).abs().max().item<double>(), bound) << "parameter " << k << " rank " << r;
    }
  }
}

TEST(GradientReducer, ArmedBucketsStartDuringBackwardAndAverageTheRanks) {
  RankResult out[2];
  reduce_run(29541, /*overlap=*/true, /*micros=*/1, out);
  expect_mean_of_ranks(out, 1);
  // 4 weight+bias buckets (1 KB cap) and the last one holding `rare` and `unused`, which cannot
  // complete on rank 0 (and `unused` on no rank): every bucket before it started during backward.
  for (int r = 0; r < 2; ++r) {
    EXPECT_GE(out[r].buckets, 5) << "rank " << r;
    EXPECT_EQ(out[r].started, out[r].buckets - 1) << "rank " << r;
  }
}

TEST(GradientReducer, AfterBackwardGivesTheSameBitsAndAccumulationSumsMicroBatches) {
  RankResult armed[2], after[2];
  reduce_run(29543, /*overlap=*/true, /*micros=*/3, armed);
  reduce_run(29545, /*overlap=*/false, /*micros=*/3, after);
  expect_mean_of_ranks(armed, 3);
  expect_mean_of_ranks(after, 3);
  EXPECT_EQ(after[0].started, 0);
  EXPECT_GT(armed[0].started, 0);
  for (size_t k = 1; k < armed[0].grads.size(); ++k) EXPECT_TRUE(armed[0].grads[k].equal(after[0].grads[k])) << k;
}

TEST(GradientReducer, Fp16OrBf16OnTheWireAverageAtTheirRounding) {
  RankResult exact[2];
  reduce_run(29551, true, 2, exact);
  int port = 29553;
  for (auto [wire, tolerance] : {std::pair{torch::kHalf, 2e-3}, std::pair{torch::kBFloat16, 1e-2}}) {
    RankResult out[2];
    reduce_run(port, true, 2, out, wire);
    port += 2;
#if TORCH_VERSION_MAJOR < 2
    if (wire == torch::kBFloat16) {  // libtorch 1.x's Gloo has no bf16 sum: refused up front, clearly
      EXPECT_NE(out[0].error.find("use fp16"), std::string::npos) << out[0].error;
      continue;
    }
#endif
    expect_mean_of_ranks(out, 2, tolerance);
    double differs = 0;
    for (size_t k = 2; k < exact[0].grads.size(); ++k) {
      differs = std::max(differs, (out[0].grads[k] - exact[0].grads[k]).abs().max().item<double>());
      EXPECT_TRUE(out[0].grads[k].equal(out[1].grads[k])) << "every rank gets the same average";
      EXPECT_EQ(out[0].grads[k].scalar_type(), torch::kFloat);
    }
    EXPECT_GT(differs, 0.0) << "the gradients did travel at " << wire << " precision";
  }
}

TEST(GradientReducer, BucketsFollowTheGradientsAfterTheFirstBackward) {
  // A parameter registered last but never used (a pooler in masked-LM distillation, an unused projection)
  // sits in the first bucket, and buckets start in order: the first backward overlaps nothing. The
  // buckets are then rebuilt in the order the gradients came, and the second backward overlaps all but
  // the bucket that waits for the unused parameter.
  struct Tail : torch::nn::Module {
    std::vector<torch::nn::Linear> layers;
    torch::nn::Linear pool{nullptr};  // registered last (parameters() lists it last), never used
    Tail() {
      std::lock_guard<std::mutex> lock(rng_mutex);
      torch::manual_seed(5);
      for (int i = 0; i < 4; ++i) layers.push_back(register_module("l" + std::to_string(i), torch::nn::Linear(16, 16)));
      pool = register_module("pool", torch::nn::Linear(4, 4));
    }
    torch::Tensor loss(const torch::Tensor& x) {
      torch::Tensor h = x;
      for (auto& l : layers) h = torch::tanh(l(h));
      return h.pow(2).mean();
    }
  };
  RankResult out[2];
  std::vector<int64_t> started[2];
  two_ranks(29557, [&](DataParallel& dp, int r, RankResult& res) {
    Tail net;
    std::shared_ptr<DataParallel> shared(&dp, [](DataParallel*) {});
    GradientReducer reducer(shared, net.parameters(), 1024, 1024);
    for (int step = 0; step < 2; ++step) {
      for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
      reducer.arm();
      net.loss(input(r, step)).backward();
      reducer.finish();
      started[r].push_back(reducer.started_in_backward());
      res.buckets = reducer.bucket_count();
    }
    for (const auto& p : net.parameters()) res.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  }, out);
  ASSERT_EQ(out[0].error, "");
  ASSERT_EQ(out[1].error, "");
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(started[r][0], 0) << "rank " << r << ": the unused parameter holds back every bucket";
    EXPECT_EQ(started[r][1], out[r].buckets - 1) << "rank " << r << ": after the rebuild, only its own";
    const size_t n = out[r].grads.size();
    EXPECT_FALSE(out[r].grads[n - 1].defined() || out[r].grads[n - 2].defined()) << "the unused layer has no gradient";
  }
  // The second step's gradients are still the mean of the ranks' own.
  std::vector<torch::Tensor> own[2];
  for (int r = 0; r < 2; ++r) {
    Tail net;
    net.loss(input(r, 1)).backward();
    for (const auto& p : net.parameters()) own[r].push_back(p.grad());
  }
  for (size_t k = 0; k + 2 < own[0].size(); ++k) {
    EXPECT_LT((out[0].grads[k] - (own[0][k] + own[1][k]) / 2).abs().max().item<double>(), 1e-7) << k;
    EXPECT_TRUE(out[0].grads[k].equal(out[1].grads[k])) << k;
  }
}

TEST(GradientReducer, HooksGoAwayWithTheReducer) {
  // A reducer destroyed before a backward must leave no hook behind (progressive MobileBERT stages build
  // a new trainer, and reducer, per stage). The loss's graph, built while the reducer was armed, keeps
  // the gradient accumulators (and any hook on them) alive; the backward must neither communicate nor
  // touch the dead reducer, so each rank keeps its own gradients.
  RankResult out[2];
  two_ranks(29547, [&](DataParallel& dp, int r, RankResult& res) {
    Net net;
    std::shared_ptr<DataParallel> shared(&dp, [](DataParallel*) {});
    torch::Tensor loss;
    {
      GradientReducer reducer(shared, net.parameters(), 1024, 1024);
      reducer.arm();
      loss = net.loss(input(r, 0), r == 1);
    }
    for (const auto& p : net.parameters()) {  // the graph keeps the accumulators: no hook may be left on them
      const auto acc = torch::autograd::impl::try_get_grad_accumulator(p);
      if (acc) res.buckets += static_cast<int64_t>(acc->post_hooks().size());
    }
    loss.backward();
    for (const auto& p : net.parameters()) res.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  }, out);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(out[r].error, "");
    EXPECT_EQ(out[r].buckets, 0) << "hooks left behind on rank " << r;
    const auto own = local_grads(r, 1);
    for (size_t k = 2; k < own.size(); ++k) EXPECT_TRUE(out[r].grads[k].equal(own[k])) << "rank " << r << " " << k;
  }
}

TEST(DataParallelDevice, EachRankTakesTheGpuOfItsLocalRank) {
  DistEnv env;
  env.world_size = 4;
  env.rank = 3;
  env.local_rank = 1;
  if (torch::cuda::is_available() && torch::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 GPUs or none";
  EXPECT_EQ(rank_device(torch::Device("cuda"), env), torch::Device(torch::kCUDA, 1));
  EXPECT_EQ(rank_device(torch::Device("cuda:0"), env), torch::Device(torch::kCUDA, 0));  // an explicit index is kept
  EXPECT_EQ(rank_device(torch::Device("cpu"), env), torch::Device(torch::kCPU));
  DistEnv one;  // not distributed: "cuda" stays the current GPU
  EXPECT_EQ(rank_device(torch::Device("cuda"), one), torch::Device(torch::kCUDA));
  env.local_world_size = 2;  // two processes on this machine cannot share one explicit GPU
  EXPECT_THROW(rank_device(torch::Device("cuda:0"), env), Error);
  EXPECT_EQ(rank_device(torch::Device("cuda:1"), env), torch::Device(torch::kCUDA, 1));
}

TEST(DataParallelRows, EachRankTakesItsSliceAndShortGlobalBatchesAreSkipped) {
  DistEnv two;
  two.world_size = 2;
  two.rank = 1;
  const std::vector<size_t> global = {7, 3, 9, 1, 4, 8};
  EXPECT_EQ(rank_rows(global, two, 3), (std::vector<size_t>{1, 4, 8}));
  EXPECT_TRUE(rank_rows({7, 3, 9, 1, 4}, two, 3).empty());  // short: no rank takes it
  EXPECT_EQ(global_batches(13, 3, two), 2);
  DistEnv one;
  EXPECT_EQ(rank_rows({7, 3}, one, 3), (std::vector<size_t>{7, 3}));  // one process keeps the short batch
  EXPECT_EQ(global_batches(13, 3, one), 5);
}

TEST(DataParallelDevice, NoProcessGroupInOneProcessAndAClearErrorWithoutTheBackend) {
  ASSERT_EQ(std::getenv("WORLD_SIZE"), nullptr);
  EXPECT_EQ(data_parallel_from_environment(torch::kCPU), nullptr);
  if (data_parallel_available(torch::kCUDA)) GTEST_SKIP() << "this build has NCCL";
  DistEnv env;
  env.world_size = 2;
  env.master_port = 29549;
  try {
    DataParallel dp(env, std::chrono::milliseconds(1000), torch::Device(torch::kCUDA, 0));
    FAIL() << "a process group without NCCL";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs NCCL"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace retort
