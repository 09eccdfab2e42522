// Trainer: schedule values, gradient accumulation equivalence, NaN detection naming the term, and
// exact resume (weights after stop + resume equal an uninterrupted run, dropout included).
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>

#include "test_paths.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/train.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny_config() {
  ModelConfig c;
  c.model_type = ModelType::DistilBert;
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 32;
  c.max_position_embeddings = 16;
  c.type_vocab_size = 0;
  return c;
}

Model tiny_model(uint64_t seed) {
  torch::manual_seed(seed);
  Model m(tiny_config(), HeadKind::MaskedLM);
  init_weights(*m);
  m->train();  // dropout on: resume must restore the generator too
  return m;
}

std::string fresh_dir(const std::string& name) {
  const fs::path dir = test::temp_path("retort_train_" + name);
  fs::remove_all(dir);
  return dir.string();
}

// Micro-batch `i` of a deterministic stream: (B, T) ids and an MLM loss on all positions.
torch::Tensor micro_loss(Model& m, int64_t i, int64_t batch = 4) {
  auto g = torch::make_generator<at::CPUGeneratorImpl>(1000 + i);
  auto ids = torch::randint(1, 40, {batch, 8}, g, torch::kLong);  // (B, T)
  auto out = m->forward(ids, torch::ones_like(ids));
  return torch::nn::functional::cross_entropy(out.logits.reshape({-1, 40}), ids.reshape({-1}));
}

TrainConfig small_config() {
  TrainConfig c;
  c.learning_rate = 1e-2;
  c.gradient_accumulation_steps = 2;
  c.log_interval = 1;
  c.checkpoint_interval = 0;
  c.warmup_prop = 0.25;
  return c;
}

TEST(Schedule, LinearWarmupThenLinearDecay) {
  EXPECT_DOUBLE_EQ(linear_warmup_lr(1.0, 0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(linear_warmup_lr(1.0, 5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(linear_warmup_lr(1.0, 10, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(linear_warmup_lr(1.0, 60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(linear_warmup_lr(1.0, 110, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(linear_warmup_lr(2.0, 3, 0, 4), 0.5);
}

TEST(Trainer, LossGoesDownAndMetricsAreLogged) {
  const std::string dir = fresh_dir("down");
  TrainConfig c = small_config();
  Trainer t(tiny_model(1), c, 30, dir);
  double first = 0;
  for (int64_t i = 0; !t.done(); ++i) {
    auto loss = micro_loss(t.model(), i % 2);
    if (t.accumulate(loss, {{"loss_mlm", loss}}, 32) && t.step() == 1) first = t.last().loss;
  }
  EXPECT_LT(t.last().loss, first * 0.8);
  EXPECT_DOUBLE_EQ(t.last().lr, 0.0);  // decayed to zero at the last step
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  int64_t lines = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("loss_mlm") && j.contains("lr") && j.contains("grad_norm") && j.contains("tokens_per_s"));
    ++lines;
  }
  EXPECT_EQ(lines, 30);
}

TEST(Trainer, AccumulationEqualsOneLargeBatch) {
  // Two micro-batches of 4 with accumulation 2 == one batch of 8 (the mean loss is the same).
  TrainConfig c = small_config();
  c.max_grad_norm = 0;
  Model a = tiny_model(2), b = tiny_model(2);
  a->eval();
  b->eval();
  Trainer ta(a, c, 5, fresh_dir("acc_a"));
  TrainConfig c1 = c;
  c1.gradient_accumulation_steps = 1;
  Trainer tb(b, c1, 5, fresh_dir("acc_b"));
  auto both = [](Model& m) {
    auto g1 = torch::make_generator<at::CPUGeneratorImpl>(1000);
    auto g2 = torch::make_generator<at::CPUGeneratorImpl>(1001);
    auto ids = torch::cat({torch::randint(1, 40, {4, 8}, g1, torch::kLong), torch::randint(1, 40, {4, 8}, g2, torch::kLong)});
    auto out = m->forward(ids, torch::ones_like(ids));
    return torch::nn::functional::cross_entropy(out.logits.reshape({-1, 40}), ids.reshape({-1}));
  };
  ta.accumulate(micro_loss(ta.model(), 0), {}, 32);
  ta.accumulate(micro_loss(ta.model(), 1), {}, 32);
  tb.accumulate(both(tb.model()), {}, 64);
  for (const auto& item : a->named_parameters()) {
    auto other = b->named_parameters()[item.key()];
    EXPECT_LT((item.value() - other).abs().max().item<double>(), 1e-6) << item.key();
  }
}

TEST(Trainer, NonFiniteLossNamesStepAndTerm) {
  Trainer t(tiny_model(3), small_config(), 4, fresh_dir("nan"));
  auto loss = micro_loss(t.model(), 0);
  auto bad = torch::tensor(std::numeric_limits<double>::quiet_NaN());
  try {
    t.accumulate(loss, {{"loss_ce", bad}}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loss term 'loss_ce' is nan at step 1"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeEndsWithTheSameWeights) {
  TrainConfig c = small_config();
  c.checkpoint_interval = 3;
  const int64_t total = 7;
  auto run = [&](Trainer& t, int64_t start_micro, int64_t stop_at_step) {
    int64_t i = start_micro;
    while (!t.done() && t.step() < stop_at_step) {
      auto loss = micro_loss(t.model(), i++);
      t.accumulate(loss, {{"loss_mlm", loss}}, 32);
      if (t.checkpoint_due()) t.save_checkpoint({{"micro", i}});
    }
    return i;
  };
  // Uninterrupted.
  const std::string d1 = fresh_dir("resume_full");
  Trainer full(tiny_model(4), c, total, d1);
  run(full, 0, total);
  // Stopped after step 4 (last checkpoint: step 3), then resumed from that checkpoint in a new trainer.
  const std::string d2 = fresh_dir("resume_split");
  {
    Trainer first(tiny_model(4), c, total, d2);
    run(first, 0, 4);
  }
  const std::string ckpt = latest_checkpoint(d2);
  ASSERT_EQ(fs::path(ckpt).filename(), "checkpoint-3");
  torch::manual_seed(999);  // scramble the generator: restore must put it back
  Model resumed = load_model(ckpt);
  resumed->train();
  Trainer second(resumed, c, total, d2);
  auto state = second.restore(ckpt);
  EXPECT_EQ(second.step(), 3);
  run(second, state.at("micro").get<int64_t>(), total);
  for (const auto& item : full.model()->named_parameters()) {
    auto other = resumed->named_parameters()[item.key()];
    EXPECT_TRUE(torch::equal(item.value(), other)) << item.key() << " differs by "
                                                   << (item.value() - other).abs().max().item<double>();
  }
}

// Per-parameter learning-rate factors (MobileBERT's progressive stages): Adam's first step moves each
// weight by lr * g / (|g| + eps), so a factor of 0.5 moves a weight exactly half as far as the full rate
// does, and a factor of 0 freezes it (no gradient, no step).
TEST(Trainer, LearningRateFactorsScaleAndFreeze) {
  TrainConfig c = small_config();
  c.gradient_accumulation_steps = 1;
  c.warmup_prop = 0.0;
  c.weight_decay = 0.0;
  c.max_grad_norm = 0.0;  // clipping over fewer trainable tensors would change the gradients
  const std::string w0 = "bert.encoder.layer.0.attention.self.query.weight";
  const std::string w1 = "bert.encoder.layer.1.attention.self.query.weight";
  const std::string emb = "bert.embeddings.position_embeddings.weight";
  auto step_delta = [&](const std::function<double(const std::string&)>& scale, const std::string& run) {
    Model m = tiny_model(3);
    m->eval();  // no dropout: both runs see the same gradients
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m->named_parameters()) before[p.key()] = p.value().detach().clone();
    Trainer t(m, c, 4, fresh_dir(run), nullptr, scale);
    t.accumulate(micro_loss(m, 0), {}, 1);
    std::map<std::string, torch::Tensor> delta;
    for (const auto& p : m->named_parameters()) delta[p.key()] = p.value().detach() - before[p.key()];
    return delta;
  };
  const auto full = step_delta({}, "lr_full");
  const auto scaled = step_delta(
      [&](const std::string& n) {
        if (n.rfind("bert.encoder.layer.0.", 0) == 0) return 0.5;
        if (n.rfind("bert.embeddings.", 0) == 0) return 0.0;
        return 1.0;
      },
      "lr_scaled");
  ASSERT_GT(full.at(w0).abs().max().item<double>(), 0.0);
  // Deltas of weights near 0.02 carry fp32 rounding of the weights themselves (~2e-9).
  EXPECT_TRUE(torch::allclose(scaled.at(w0), 0.5 * full.at(w0), 1e-4, 1e-7));
  EXPECT_TRUE(torch::allclose(scaled.at(w1), full.at(w1), 1e-4, 1e-7));
  EXPECT_EQ(scaled.at(emb).abs().max().item<double>(), 0.0);
  EXPECT_GT(full.at(emb).abs().max().item<double>(), 0.0);
  EXPECT_THROW(Trainer(tiny_model(3), c, 4, fresh_dir("lr_bad"), nullptr, [](const std::string&) { return -1.0; }),
               Error);
  EXPECT_THROW(Trainer(tiny_model(3), c, 4, fresh_dir("lr_none"), nullptr, [](const std::string&) { return 0.0; }),
               Error);
}

TEST(Trainer, BadConfigAndBadCheckpoint) {
  EXPECT_THROW(TrainConfig::from_json({{"learning_rate", -1}}), Error);
  EXPECT_THROW(TrainConfig::from_json({{"batch_size", "x"}}), Error);
  EXPECT_THROW(TrainConfig::from_json({{"allreduce_dtype", "int8"}}), Error);
  EXPECT_THROW(TrainConfig::from_json({{"allreduce_bucket_mb", 0}}), Error);
  EXPECT_EQ(TrainConfig::from_json(TrainConfig::from_json({{"allreduce_dtype", "fp16"}}).to_json()).allreduce_dtype,
            "fp16");
  EXPECT_THROW(Trainer(tiny_model(5), small_config(), 0, fresh_dir("zero")), Error);
  Trainer t(tiny_model(5), small_config(), 4, fresh_dir("badckpt"));
  EXPECT_THROW(t.restore("/nonexistent/checkpoint-1"), Error);
}

}  // namespace
}  // namespace retort
