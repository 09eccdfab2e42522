// The training loop's machinery, shared by pretrain, distill and fine-tuning: AdamW with the Hugging
// Face distillation example's settings, linear warm-up then linear decay, gradient accumulation,
// clipping, NaN/inf detection naming the loss term, a JSON-lines metrics log, a progress line,
// Ctrl-C handling, and checkpoints (model + optimizer + schedule + RNG + caller state) that resume
// exactly. What a step computes is the caller's business: it hands the Trainer a loss.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include "retort/heads.h"

namespace retort {

// Optimisation and loop settings, spelled as in the Hugging Face distillation example's train.py.
struct TrainConfig {
  double learning_rate = 5e-4;
  double adam_epsilon = 1e-6;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.98;
  double weight_decay = 0.0;        // not applied to biases and LayerNorm weights
  double warmup_prop = 0.05;        // fraction of the optimizer steps spent warming up
  double max_grad_norm = 5.0;       // <= 0: no clipping
  int64_t gradient_accumulation_steps = 50;
  int64_t batch_size = 5;           // sequences per micro-batch
  int64_t n_epoch = 3;
  int64_t max_steps = 0;            // optimizer steps; > 0 overrides n_epoch
  int64_t log_interval = 500;       // optimizer steps between metrics lines
  int64_t checkpoint_interval = 4000;  // optimizer steps between checkpoints (0: only at the end)
  uint64_t seed = 56;
  bool bf16 = false;                // bf16 autocast for the student's forward/backward
  std::string device = "cpu";
  // Data parallel: gradient all-reduce buckets (MB; the first, the last layers', is 1 MB) and whether
  // they start during backward, as each bucket's gradients are complete, or only after it.
  int64_t allreduce_bucket_mb = 25;
  bool allreduce_overlap = true;
  // The dtype gradients travel in: fp32 (exact), or bf16 / fp16 (half the bytes, at their rounding).
  std::string allreduce_dtype = "fp32";

  static TrainConfig from_json(const nlohmann::json& j);  // unknown keys ignored (they belong to others)
  nlohmann::json to_json() const;
};

// AdamW with the config's learning rate, betas, epsilon and weight decay.
torch::optim::AdamWOptions adamw_options(const TrainConfig& config);

// Linear warm-up from 0 to the peak over `warmup` steps, then linear decay to 0 at `total` steps
// (transformers' get_linear_schedule_with_warmup).
double linear_warmup_lr(double peak, int64_t step, int64_t warmup, int64_t total);

// Set by SIGINT/SIGTERM once install_interrupt_handler() ran; the loop saves a checkpoint and stops.
// (The one piece of global state besides the thread count: a signal handler can reach nothing else.)
void install_interrupt_handler();
bool interrupt_requested();
void clear_interrupt();

struct StepMetrics {
  int64_t step = 0;                       // optimizer steps done
  double loss = 0;                        // mean over the accumulated micro-batches
  std::map<std::string, double> terms;    // each loss term, same averaging
  double lr = 0, grad_norm = 0, tokens_per_s = 0;
  double allreduce_ms = 0;                // data parallel: time this rank waited for the gradient all-reduce
                                          // after backward (what overlapping it with backward did not hide)
};

class DataParallel;
class GradientReducer;

class Trainer {
 public:
  // total_steps: optimizer steps for the schedule. run_dir: metrics.jsonl and checkpoints go there.
  // `extra`: more trainable parameters optimised with the model's (e.g. intermediate-distillation
  // projections); checkpoints keep them in extra.pt, and they are not part of the saved model.
  // `lr_scale` (model parameter name -> factor of the learning rate; 0 freezes it): MobileBERT's
  // progressive transfer trains one layer at a time. Unset: every parameter at the full rate.
  Trainer(Model model, const TrainConfig& config, int64_t total_steps, std::string run_dir,
          std::shared_ptr<torch::nn::Module> extra = nullptr,
          const std::function<double(const std::string&)>& lr_scale = {});
  ~Trainer();

  // Adds one micro-batch: backward of loss / accumulation steps; every gradient_accumulation_steps
  // micro-batches clips, steps the optimizer and the schedule, and logs. `terms` are the loss terms
  // (already weighted or not: logged as given) and are checked for NaN/inf, as is `loss`.
  // Returns true when an optimizer step happened.
  bool accumulate(const torch::Tensor& loss, const std::map<std::string, torch::Tensor>& terms, int64_t tokens);

  // Data-parallel training (distributed.h): copies rank 0's weights to every rank, then averages the
  // gradients over the ranks before each clip and step; losses and tokens/s are logged over all ranks,
  // and only rank 0 writes metrics.jsonl and checkpoints.
  void set_data_parallel(std::shared_ptr<DataParallel> dp);
  bool is_main() const;
  // Ctrl-C / SIGTERM seen. Data parallel: the ranks agree at every optimizer step (the flag travels with
  // the metrics all-reduce), so all of them stop after the same step even when the signal reached only
  // one; single process: interrupt_requested().
  bool stop_requested() const;

  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  bool done() const { return step_ >= total_steps_; }
  bool checkpoint_due() const;  // true right after a step that hits checkpoint_interval
  const StepMetrics& last() const { return last_; }
  Model& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }

  // Writes run_dir/checkpoint-<step>/ (model HF directory, optimizer.pt, trainer_state.json with
  // `caller_state` inside) atomically (written under a temporary name, then renamed), and points
  // run_dir/checkpoint-last at it. Only between optimizer steps (no half-accumulated gradients).
  std::string save_checkpoint(const nlohmann::json& caller_state) const;
  // Restores optimizer, step, RNG from a checkpoint directory written by save_checkpoint; the model
  // weights must already be loaded from it (load_model). Returns the caller state.
  nlohmann::json restore(const std::string& checkpoint_dir);

 private:
  void log_step();
  void make_reducer();  // data parallel: the GradientReducer over the trainable parameters

  Model model_;
  std::shared_ptr<torch::nn::Module> extra_;
  std::vector<torch::Tensor> params_;  // the model's parameters, then extra_'s
  std::vector<double> group_scale_;    // learning-rate factor of each optimizer parameter group
  TrainConfig config_;
  int64_t total_steps_;
  int64_t warmup_steps_;
  std::string run_dir_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::shared_ptr<DataParallel> dp_;
  std::unique_ptr<GradientReducer> reducer_;  // data parallel: averages the gradients
  int64_t step_ = 0;
  int64_t micro_ = 0;  // micro-batches accumulated toward the next step
  std::map<std::string, double> term_sums_;
  double loss_sum_ = 0;
  int64_t tokens_ = 0;
  std::chrono::steady_clock::time_point window_start_, started_;
  int64_t start_step_ = 0;  // step at construction or restore, for the ETA
  bool agreed_stop_ = false;  // data parallel: some rank was interrupted by the last step
  StepMetrics last_;
  std::unique_ptr<std::ofstream> metrics_;
  bool tty_ = false;
};

// Latest checkpoint in a run directory ("" when none).
std::string latest_checkpoint(const std::string& run_dir);

}  // namespace retort
