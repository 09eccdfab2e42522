// Data-parallel training through `retort launch` (c10d, Gloo, loopback): 2 processes x batch 4 end with
// the same weights as 1 process x batch 8 (within 1e-5), only rank 0 writes, and a rank that dies makes
// the survivor fail with a clear error within the timeout instead of hanging.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "retort/checkpoint.h"
#include "retort/distributed.h"
#include "retort/safetensors.h"
#include "retort/squad.h"
#include "retort/train.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

void head_rows(const std::string& from, const fs::path& to, int rows) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i <= rows && std::getline(in, line); ++i) out << line << "\n";
}

class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_parallel_available()) GTEST_SKIP() << "built without Gloo (libgloo-dev)";
    root_ = test::temp_path("launch");
    fs::remove_all(root_);
    fs::create_directories(root_ / "glue/SST-2");
    head_rows(test::shared_path("data/glue/SST-2/train.tsv"), root_ / "glue/SST-2/train.tsv", 64);
    head_rows(test::shared_path("data/glue/SST-2/dev.tsv"), root_ / "glue/SST-2/dev.tsv", 16);
    const Tokenizer tok = test::bert_vocab();
    ModelConfig c = test::tiny_config(tok, 2, 64);
    c.hidden_dropout_prob = 0;  // dropout masks would differ between ranks and a single process
    c.attention_probs_dropout_prob = 0;
    test::save_tiny_model(root_ / "model", tok, c, 5);
  }
  std::string finetune(const std::string& out, int batch, int epochs = 2) const {
    return "finetune --task sst2 --model " + q((root_ / "model").string()) + " --data " + q((root_ / "glue").string()) +
           " --out " + q((root_ / out).string()) + " --batch-size " + std::to_string(batch) +
           " --n-epoch " + std::to_string(epochs) + " --learning-rate 1e-3 --max-seq-length 32 --threads 1";
  }
  // A corpus of 300 WikiText lines and tiny teacher / student MLM models (dropout on), for distill runs.
  void prepare_distillation() const {
    std::ifstream in(test::shared_path("data/corpus/wikitext-2-valid.tokens"));
    {
      std::ofstream out(root_ / "text.txt");
      std::string line;
      for (int i = 0; i < 300 && std::getline(in, line); ++i) out << line << "\n";
    }
    const Tokenizer tok = test::bert_vocab();
    test::save_tiny_model(root_ / "teacher", tok, test::tiny_config(tok, 2, 64), 8);
    test::save_tiny_model(root_ / "student", tok, test::tiny_config(tok, 1, 64), 9);
    const Result prep = run_cli("prepare-corpus " + q((root_ / "text.txt").string()) + " --tokenizer " +
                                q(test::shared_path("vocab/bert-base-uncased")) + " --out " +
                                q((root_ / "corpus").string()) + " --max-seq-len 64");
    ASSERT_EQ(prep.code, 0) << prep.err;
  }
  std::string distill(const std::string& out, int64_t steps, const std::string& extra = "",
                      const std::string& student = "student") const {
    return "distill --corpus " + q((root_ / "corpus").string()) + " --teacher " + q((root_ / "teacher").string()) +
           " --student " + q((root_ / student).string()) + " --out " + q((root_ / out).string()) +
           " --batch-size 4 --gradient-accumulation-steps 2 --max-steps " + std::to_string(steps) +
           " --checkpoint-interval 0 --log-interval 1 --learning-rate 1e-3 --threads 1 " + extra;
  }
  fs::path root_;
};

TEST_F(Launch, TwoProcessesMatchOneWithTheirCombinedBatch) {
  const Result one = run_cli(finetune("one", 8));
  ASSERT_EQ(one.code, 0) << one.err;
  const Result two = run_cli("launch --nproc 2 --master-port 29517 -- " + std::string(RETORT_CLI_PATH) + " " +
                             finetune("two", 4));
  ASSERT_EQ(two.code, 0) << two.err;
  Model a = load_model((root_ / "one/best").string()), b = load_model((root_ / "two/best").string());
  Model start = load_model((root_ / "model").string(), [] {
    LoadOptions o;
    o.head_from_config = false;
    o.head = HeadKind::None;
    return o;
  }());
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  double worst = 0, moved = 0;
  for (const auto& item : pa) {
    worst = std::max(worst, (item.value() - pb[item.key()]).abs().max().item<double>());
  }
  moved = (a->bert->encoder->layers[0]->attention->self->query->weight -
           start->bert->encoder->layers[0]->attention->self->query->weight)
              .abs()
              .max()
              .item<double>();
  EXPECT_LT(worst, 1e-5) << "2 x 4 and 1 x 8 must take the same steps";
  EXPECT_GT(moved, 1e-3) << "training must have changed the weights";
  // Rank 0 alone logs: the metrics have one line per logged step, as the single process has.
  const std::string metrics_two = read_file((root_ / "two/metrics.jsonl").string());
  EXPECT_NE(metrics_two.find("\"allreduce_ms\""), std::string::npos) << "the all-reduce wait is logged";
  const auto steps_one = std::count(std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(root_ / "one/metrics.jsonl")),
                                    std::istreambuf_iterator<char>(), '\n');
  const auto steps_two = std::count(std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(root_ / "two/metrics.jsonl")),
                                    std::istreambuf_iterator<char>(), '\n');
  EXPECT_EQ(steps_one, steps_two);
}

// SQuAD fine-tuning, data parallel: 2 processes x 4 features per batch take the steps of 1 x 8.
TEST_F(Launch, SquadTwoProcessesMatchOneWithTheirCombinedBatch) {
  fs::create_directories(root_ / "squad");
  fs::copy_file(test::shared_path("data/squad/train-v1.1-excerpt.json"), root_ / "squad/train-v1.1-excerpt.json");
  fs::copy_file(test::shared_path("data/squad/dev-v1.1-excerpt.json"), root_ / "squad/dev-v1.1-excerpt.json");
  // As many questions as make a whole number of 8-feature batches: one process would otherwise also
  // train on the last partial batch, which data parallel drops.
  SquadOptions so;
  so.max_seq_length = 64;
  so.doc_stride = 32;
  so.max_query_length = 24;
  const auto questions = read_squad((root_ / "squad/train-v1.1-excerpt.json").string());
  size_t n = 16;
  while (n < questions.size() &&
         make_squad_features(test::bert_vocab(), {questions.begin(), questions.begin() + n}, so).size() % 8 != 0) {
    ++n;
  }
  ASSERT_LT(n, questions.size());
  // Parameters that shift every position's span logit alike (the span bias, the last LayerNorm's bias)
  // get a zero gradient from the softmax losses: only rounding noise, which Adam's normalisation with a
  // 1e-6 epsilon turns into steps of about the learning rate, different for any summation order. A
  // larger epsilon leaves them still.
  {
    std::ofstream cfg(root_ / "squad.json");
    cfg << R"({"adam_epsilon": 1e-3})";
  }
  auto squad = [&](const std::string& out, int batch) {
    return "finetune --task squad --model " + q((root_ / "model").string()) + " --data " + q((root_ / "squad").string()) +
           " --out " + q((root_ / out).string()) + " --batch-size " + std::to_string(batch) +
           " --n-epoch 1 --learning-rate 3e-2 --max-seq-length 64 --doc-stride 32 --max-query-length 24 "
           "--max-train-examples " + std::to_string(n) + " --max-eval-examples 8 --max-steps 6 --threads 1 --config " +
           q((root_ / "squad.json").string());
  };
  const Result one = run_cli(squad("squad-one", 8));
  ASSERT_EQ(one.code, 0) << one.err;
  const Result two = run_cli("launch --nproc 2 --master-port 29539 -- " + std::string(RETORT_CLI_PATH) + " " +
                             squad("squad-two", 4));
  ASSERT_EQ(two.code, 0) << two.err;
  SafetensorsFile a((root_ / "squad-one/best/model.safetensors").string()),
      b((root_ / "squad-two/best/model.safetensors").string()), start((root_ / "model/model.safetensors").string());
  double worst = 0;
  std::string worst_name;
  for (const auto& name : a.names()) {
    const double d = (a.tensor(name) - b.tensor(name)).abs().max().item<double>();
    if (d > worst) worst = d, worst_name = name;
  }
  EXPECT_LT(worst, 1e-5) << "2 x 4 and 1 x 8 must take the same steps (" << worst_name << ")";
  const std::string q0 = "bert.encoder.layer.0.attention.self.query.weight";
  EXPECT_GT((a.tensor(q0) - start.tensor(q0)).abs().max().item<double>(), 1e-4) << "training changed the weights";
  EXPECT_TRUE(fs::exists(root_ / "squad-two/predictions.json"));
}

// Data-parallel distillation stopped at step 3 and resumed (same world size) ends with the weights of an
// uninterrupted 2-process run: the data position at the step's end, every rank's masker and dropout
// generator come back from the checkpoint (dropout is on here).
TEST_F(Launch, TwoProcessDistillationResumesExactly) {
  prepare_distillation();
  auto distill = [&](const std::string& out, int port, const std::string& extra) {
    return run_cli("launch --nproc 2 --master-port " + std::to_string(port) + " -- " + std::string(RETORT_CLI_PATH) +
                   " " + this->distill(out, 6, extra));
  };
  const Result full = distill("dp-full", 29523, "");
  ASSERT_EQ(full.code, 0) << full.err;
  const Result first = distill("dp-split", 29525, "--stop-at-step 3");
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_TRUE(fs::exists(root_ / "dp-split/checkpoint-3/rng_state.rank1.bin"));
  const Result second = distill("dp-split", 29527, "--resume");
  ASSERT_EQ(second.code, 0) << second.err;
  Model a = load_model((root_ / "dp-full/final").string()), b = load_model((root_ / "dp-split/final").string());
  const auto pb = b->named_parameters();
  double worst = 0;
  for (const auto& item : a->named_parameters()) {
    worst = std::max(worst, (item.value() - pb[item.key()]).abs().max().item<double>());
  }
  EXPECT_EQ(worst, 0.0) << "stop + resume must end where the uninterrupted run ends";
}

// Two "machines" (two launches with --nnodes 2, one process each, on loopback) train exactly as one
// launch of two processes: the ranks, the rendezvous and each rank's data come out the same.
TEST_F(Launch, TwoNodesOfOneProcessMatchOneNodeOfTwo) {
  prepare_distillation();
  // launch shares the cores by processes per node (2 BLAS threads each with --nproc 1, 1 with --nproc 2),
  // which changes float rounding; one thread everywhere makes the runs comparable bit for bit.
  ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
  ::setenv("OMP_NUM_THREADS", "1", 1);
  struct Unset {
    ~Unset() {
      ::unsetenv("OPENBLAS_NUM_THREADS");
      ::unsetenv("OMP_NUM_THREADS");
    }
  } unset;
  const std::string retort = std::string(RETORT_CLI_PATH);
  const Result local = run_cli("launch --nproc 2 --master-port 29535 -- " + retort + " " + distill("nodes-1", 3));
  ASSERT_EQ(local.code, 0) << local.err;
  const fs::path script = root_ / "nodes.sh";
  {
    std::ofstream out(script);
    for (int node : {1, 0}) {
      out << retort << " launch --nproc 1 --nnodes 2 --node-rank " << node << " --master-port 29537 -- " << retort
          << " " << distill("nodes-2", 3) << (node == 1 ? " > /dev/null 2>&1 &\nother=$!\n" : "\n");
    }
    out << "status=$?\nwait $other || exit 1\nexit $status\n";
  }
  const Result two = run_program("bash", q(script.string()));
  ASSERT_EQ(two.code, 0) << two.err;
  SafetensorsFile a((root_ / "nodes-1/final/model.safetensors").string()),
      b((root_ / "nodes-2/final/model.safetensors").string());
  double worst = 0;
  for (const auto& name : a.names()) worst = std::max(worst, (a.tensor(name) - b.tensor(name)).abs().max().item<double>());
  EXPECT_EQ(worst, 0.0);
}

// MobileBERT's progressive transfer, data parallel: the stages and the joint run share one process group
// (one rendezvous), every rank waits for rank 0's stage result before loading it, frozen layers stay
// frozen (they take no part in the gradient all-reduce), and the run ends with a MobileBERT student.
TEST_F(Launch, TwoProcessProgressiveTransferRunsEveryStage) {
  prepare_distillation();
  ::setenv("RETORT_DIST_TIMEOUT", "60", 1);  // a rank left waiting fails within a minute, not 30
  struct Unset {
    ~Unset() { ::unsetenv("RETORT_DIST_TIMEOUT"); }
  } unset;
  const Result init = run_cli("init-student " + q((root_ / "teacher").string()) + " --out " +
                              q((root_ / "mobile").string()) + " --format mobilebert --random-init --n-layers 2 " +
                              "--embedding-size 8 --bottleneck-size 16 --ffns 2");
  ASSERT_EQ(init.code, 0) << init.err;
  const Result run = run_cli("launch --nproc 2 --master-port 29531 -- " + std::string(RETORT_CLI_PATH) + " " +
                             distill("prog", 2, "--alpha-att 1 --alpha-hidden 1 --alpha-emb 1 --attention-loss kl "
                                     "--projection none --alpha-cos 0 --progressive-steps-per-layer 2", "mobile"));
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(load_model((root_ / "prog/final").string())->config.model_type, ModelType::MobileBert);
  SafetensorsFile s0((root_ / "prog/stage-0/final/model.safetensors").string()),
      s1((root_ / "prog/stage-1/final/model.safetensors").string()),
      fin((root_ / "prog/final/model.safetensors").string());
  const std::string l0 = "mobilebert.encoder.layer.0.attention.self.query.weight";
  const std::string l1 = "mobilebert.encoder.layer.1.attention.self.query.weight";
  EXPECT_TRUE(torch::equal(s0.tensor(l0), s1.tensor(l0))) << "layer 0 is frozen in stage 1";
  EXPECT_FALSE(torch::equal(s0.tensor(l1), s1.tensor(l1))) << "stage 1 trains layer 1";
  EXPECT_FALSE(torch::equal(s1.tensor(l0), fin.tensor(l0))) << "the joint stage trains everything";
  const std::string metrics = read_file((root_ / "prog/stage-1/metrics.jsonl").string());
  EXPECT_NE(metrics.find("\"allreduce_ms\""), std::string::npos);
}

// SIGTERM reaching one rank only (not `launch`): the ranks agree through the step's all-reduce and all
// stop after the same step, rank 0 saving the checkpoint, instead of the others waiting for the timeout.
TEST_F(Launch, ASignalToOneRankStopsEveryRankAtTheSameStep) {
  prepare_distillation();
  const fs::path script = root_ / "term.sh";
  const std::string cmd = std::string(RETORT_CLI_PATH) + " " + distill("term", 100000);
  {
    std::ofstream out(script);
    out << "export WORLD_SIZE=2 MASTER_PORT=29529 RETORT_DIST_TIMEOUT=60 LOCAL_WORLD_SIZE=2\n"
        << "RANK=1 " << cmd << " > /dev/null 2>&1 &\n"
        << "other=$!\n"
        // once rank 0 has logged step 1, both ranks are in the loop with the handler installed
        << "(while [ ! -s " << q((root_ / "term/metrics.jsonl").string()) << " ]; do sleep 0.2; done; sleep 1; "
        << "kill -TERM $other) &\n"
        << "RANK=0 " << cmd << "\n"
        << "main=$?\n"
        << "wait $other\n"
        << "echo \"exit codes $main $?\"\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run_program("bash", q(script.string()));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.out.find("exit codes 0 0"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("stopped at step "), std::string::npos) << r.out;
  const std::string last = latest_checkpoint((root_ / "term").string());
  ASSERT_FALSE(last.empty());
  EXPECT_TRUE(fs::exists(fs::path(last) / "rng_state.rank1.bin"));
  EXPECT_LT(secs, 50) << "no rank may wait for the 60 s timeout";
}

TEST_F(Launch, ADeadRankMakesTheOtherFailWithinTheTimeout) {
  // Two ranks started by hand; rank 1 is killed (SIGKILL) while they train. Rank 0 must stop with a
  // clear error well within RETORT_DIST_TIMEOUT instead of waiting for it forever.
  const fs::path script = root_ / "dead.sh";
  const std::string cmd = std::string(RETORT_CLI_PATH) + " " + finetune("dead", 4, 200);
  {
    std::ofstream out(script);
    out << "export WORLD_SIZE=2 MASTER_PORT=29519 RETORT_DIST_TIMEOUT=20 LOCAL_WORLD_SIZE=2\n"
        << "RANK=1 " << cmd << " 2>/dev/null &\n"
        << "victim=$!\n"
        << "(sleep 4; kill -9 $victim) &\n"
        << "RANK=0 " << cmd << "\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run_program("bash", q(script.string()));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("failed on rank 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("another rank died"), std::string::npos) << r.err;
  EXPECT_LT(secs, 40) << "rank 0 must not wait much past the kill";
}

TEST_F(Launch, AFailingRankStopsTheLaunch) {
  // Rank 1 gets a model directory that does not exist... both get the same command, so give launch a
  // command that fails for every rank: launch must report a rank's status, not hang.
  const Result r = run_cli("launch --nproc 2 --master-port 29521 -- " + std::string(RETORT_CLI_PATH) +
                           " finetune --task sst2 --model /nonexistent --data /nonexistent --out " +
                           q((root_ / "bad").string()));
  EXPECT_NE(r.code, 0);
  // Each rank prints its own error; launch's line comes last.
  EXPECT_NE(r.err.find("retort: error: launch: rank "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" exited with status 1; the other ranks were stopped\n"), std::string::npos) << r.err;
}

TEST_F(Launch, RanksThatIgnoreSigtermAreKilledAfterTheGracePeriod) {
  // Rank 1 fails after a second; rank 0 (a shell and the sleep it started, both ignoring SIGTERM, as a rank
  // blocked in a rendezvous cannot act on it) must be SIGKILLed, with what it started, once the 1 s grace
  // period is over: launch reports rank 1 and waits for nothing else.
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run_cli("launch --nproc 2 --master-port 29533 --grace-seconds 1 -- sh -c "
                           "'if [ \"$RANK\" = 1 ]; then sleep 1; exit 3; fi; trap \"\" TERM; sleep 60; true'");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("launch: rank 1 exited with status 3"), std::string::npos) << r.err;
  EXPECT_GE(secs, 2) << "rank 0 gets the grace period after rank 1's failure";
  EXPECT_LT(secs, 20) << "rank 0 and its sleep must be killed after the grace period, not waited for";
}

}  // namespace
}  // namespace retort
