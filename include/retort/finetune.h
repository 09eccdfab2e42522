// Fine-tuning and evaluation on classification/regression tasks (GLUE, IMDb), and task-specific
// distillation (the paper's "DistilBERT (D)"): the task loss plus alpha_ce * KL(teacher/T || student/T)
// * T^2 on the task logits of a fine-tuned teacher (regression: the squared error to the teacher's
// prediction instead), or TinyBERT's two stages (intermediate terms, then soft cross-entropy). Built on the shared Trainer (AdamW, warm-up, clipping, metrics log).
//
// Dimensions: B batch, T sequence, C classes (1 for regression).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "retort/heads.h"
#include "retort/intermediate.h"
#include "retort/tasks.h"
#include "retort/tokenizer.h"
#include "retort/train.h"

namespace retort {

class InferenceModel;

// ---- features -------------------------------------------------------------------------------------

struct FeatureOptions {
  int64_t max_seq_length = 128;
  // "longest_first" (the tokenizer's, for pairs and single texts) or "head+tail" (single texts: the
  // first head_tokens tokens and the last max_seq_length - 2 - head_tokens, Sun et al. 2019 for IMDb).
  std::string truncation = "longest_first";
  int64_t head_tokens = 128;
};

// Token ids and segment ids of every example, unpadded, [CLS] A [SEP] (B [SEP]).
struct TaskFeatures {
  std::vector<std::vector<int32_t>> ids;       // example -> (T_i)
  std::vector<std::vector<int32_t>> type_ids;  // example -> (T_i)
  size_t size() const { return ids.size(); }
};
// pair: the task is a sentence-pair task (TaskSpec::is_pair): text_b is encoded even when empty.
TaskFeatures make_features(const Tokenizer& tok, const std::vector<TaskExample>& examples, const FeatureOptions& opt,
                           bool pair);

// A padded batch on a device.
struct TaskBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor token_type_ids;  // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64
  torch::Tensor labels;          // (B) int64 (classification) or (B) float (regression); undefined unlabelled
  int64_t tokens = 0;            // real tokens in the batch
};
TaskBatch make_task_batch(const TaskFeatures& f, const std::vector<TaskExample>& examples,
                          const std::vector<size_t>& rows, TaskKind kind, int32_t pad_id, bool labelled,
                          const torch::Device& device);

// Batches of row indices grouped by length (little padding): shuffled with `generator_seed` when
// shuffle (chunks of 50 batches sorted by length, batch order shuffled), else sorted by length.
std::vector<std::vector<size_t>> length_grouped_batches(const TaskFeatures& f, int64_t batch_size, bool shuffle,
                                                        uint64_t generator_seed);

// ---- models for a task ----------------------------------------------------------------------------

// Throws unless `model` has the head the task needs, with the task's labels (names and order).
void check_head_fits(const ModelImpl& model, const TaskSpec& spec, const std::string& source);

// Loads a model for a task. A directory with the task's head is loaded as it is (its head must fit);
// a directory without a task head (an MLM or bare encoder) gets a new head for the task, initialised
// from `seed`, with the task's labels in its config; a head for another task is an error.
Model load_task_model(const std::string& dir, const TaskSpec& spec, const torch::Device& device, uint64_t seed,
                      std::vector<std::string>* initialised = nullptr);

// Writes the model (HF directory) and its tokenizer to dir, replacing it only once complete.
void save_task_model(ModelImpl& model, const Tokenizer& tok, const std::string& dir);

// ---- evaluation -----------------------------------------------------------------------------------

struct EvalOptions {
  FeatureOptions features;
  int64_t batch_size = 64;
  bool bf16 = false;
  std::string device = "cpu";
  int64_t max_examples = 0;  // > 0: only the first N (quick looks; not the official figure)
};

struct EvalResult {
  std::string split;
  int64_t examples = 0;
  std::map<std::string, double> metrics;  // empty when unlabelled
  double score = 0;                       // mean of the task's metrics
  std::vector<int64_t> predicted_labels;  // classification
  std::vector<double> predicted_scores;   // regression
  std::vector<std::vector<float>> probabilities;  // classification: softmax per example
  double seconds = 0;
  nlohmann::json to_json(bool with_predictions = false) const;
};

// Runs `model` over the examples (inference mode, length-sorted batches, results in input order).
// labelled: metrics are computed; else only predictions.
EvalResult evaluate_examples(ModelImpl& model, const Tokenizer& tok, const TaskSpec& spec,
                             const std::vector<TaskExample>& examples, const EvalOptions& opt, bool labelled = true);
// The same through the inference engine (fp32, bf16 or int8 as `model` was prepared); opt.bf16 and
// opt.device do not apply.
EvalResult evaluate_examples(const InferenceModel& model, const Tokenizer& tok, const TaskSpec& spec,
                             const std::vector<TaskExample>& examples, const EvalOptions& opt, bool labelled = true);
// Every dev set of the task under data_dir.
std::vector<EvalResult> evaluate_task(ModelImpl& model, const Tokenizer& tok, const TaskSpec& spec,
                                      const std::string& data_dir, const EvalOptions& opt);

// ---- fine-tuning ----------------------------------------------------------------------------------

struct FinetuneConfig {
  std::string task;
  std::string model_dir;
  std::string data_dir;
  std::string out_dir;
  std::string teacher_dir;  // non-empty: task-specific distillation from this fine-tuned teacher
  TrainConfig train = defaults();
  FeatureOptions features;
  double alpha_task = 0.5;   // weight of the task loss when distilling (1 without a teacher)
  double alpha_ce = 0.5;     // weight of the soft-target term
  double temperature = 2.0;
  // "kl": KL(teacher/T || student/T) * T^2 (DistilBERT); "soft_ce": TinyBERT's soft cross-entropy.
  std::string prediction_loss = "kl";
  // TinyBERT's task-specific stage 1 (attention / hidden / embedding terms through a layer map). With
  // alpha_task = alpha_ce = 0 (intermediate terms only) the head is not trained, so out_dir/best holds
  // the last epoch's model instead of the best-scoring one: the start of stage 2 (soft_ce on logits).
  IntermediateOptions intermediate;
  int64_t max_train_examples = 0;  // > 0: a seeded random subset of the training set
  int64_t max_eval_examples = 0;
  int64_t eval_batch_size = 64;

  // Fine-tuning defaults: lr 5e-5, batch 32, 3 epochs, warm-up 10%, weight decay 0.01, AdamW betas
  // 0.9/0.999, eps 1e-8, clipping 1.0, no accumulation, seed 42.
  static TrainConfig defaults();
  static FinetuneConfig from_json(const nlohmann::json& j);  // the TrainConfig fields plus those above
  nlohmann::json to_json() const;
};

struct FinetuneResult {
  std::string best_dir;   // out_dir/best: the HF directory (task head, labels, tokenizer)
  int64_t best_epoch = 0;  // 1-based
  double best_score = 0;
  std::vector<EvalResult> best_eval;  // every dev set at the best epoch
  nlohmann::json epochs = nlohmann::json::array();  // per epoch: loss, metrics, seconds
  int64_t train_examples = 0;
  int64_t parameters = 0;
  double seconds = 0;
};

// Fine-tunes, evaluates every epoch, keeps the best epoch's model (by the task score on the first
// dev set; the last epoch's for intermediate-only distillation) in out_dir/best, and writes out_dir/{config.json, metrics.jsonl, eval_results.json}.
FinetuneResult run_finetune(const FinetuneConfig& cfg);

}  // namespace retort
