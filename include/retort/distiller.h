// The distiller: masked-LM pre-training (no teacher), DistilBERT distillation (teacher + triple loss)
// and TinyBERT's general distillation (attention / hidden-state / embedding terms through a layer map
// and projections, intermediate.h) over a prepared corpus, through one loop. Configuration is a JSON object with the Hugging Face
// distillation example's field names (train.py); the run directory keeps the resolved config, the
// metrics log, checkpoints, and the final student as a Hugging Face directory (run_dir/final).
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "retort/intermediate.h"
#include "retort/losses.h"
#include "retort/masking.h"
#include "retort/train.h"

namespace retort {

// MobileBERT's progressive knowledge transfer (Sun et al. 2020): before the joint distillation, stage l
// (one per student layer) trains layer l alone on its intermediate terms (feature map and attention
// transfer; layer 0's stage also the embeddings); layers already transferred are frozen or train at a
// reduced rate. Each stage is a run of its own in run_dir/stage-<l>; the joint stage is the run itself,
// with the intermediate terms off.
struct ProgressiveOptions {
  int64_t steps_per_layer = 0;  // > 0: progressive transfer first (JSON "progressive_steps_per_layer")
  double earlier_lr_scale = 0;  // rate of earlier layers relative to the current one; 0 freezes them
                                // (JSON "progressive_earlier_lr_scale")
};

struct DistillConfig {
  TrainConfig train;
  MaskingOptions masking;
  DistillLossWeights loss;
  IntermediateOptions intermediate;  // TinyBERT's attention / hidden / embedding terms (all 0: DistilBERT)
  ProgressiveOptions progressive;
  bool group_by_size = true;   // length-grouped batches (HF's group_by_size)
  size_t max_tokens = 0;       // cap on padded tokens per micro-batch (0: none)
  bool teacher_bf16 = false;   // keep the teacher entirely in bf16 (~5x faster forward on AVX512_BF16)

  static DistillConfig from_json(const nlohmann::json& j);  // missing fields keep the defaults
  nlohmann::json to_json() const;                           // every field, flat, HF names
};

struct DistillJob {
  std::string corpus_dir;    // made by prepare_corpus
  std::string student_dir;   // HF directory: initial student (init-student, or a fresh model to pre-train)
  std::string teacher_dir;   // HF directory with a masked-LM head; empty: pre-training (MLM loss only)
  std::string run_dir;
  bool resume = false;       // continue from run_dir's latest checkpoint
  int64_t stop_at_step = 0;  // > 0: save a checkpoint and stop after this optimizer step (time-boxed runs)
  DistillConfig config;
  // Learning-rate factor per student parameter name (0 freezes); unset: all train. Set by the
  // progressive stages.
  std::function<double(const std::string&)> lr_scale;
};

struct DistillResult {
  std::string final_dir;  // run_dir/final: the trained student with its tokenizer
  int64_t steps = 0;
  bool interrupted = false;  // stopped early (Ctrl-C or stop_at_step) after saving a checkpoint
  StepMetrics last;
};

// Runs the job to the end (or to Ctrl-C, which saves a checkpoint first). The tokenizer is read from
// the student directory; the corpus must have been made with the same vocabulary.
DistillResult run_distillation(const DistillJob& job);

// Masked-LM accuracy and perplexity of `model_dir` on a prepared corpus, with masks drawn from `seed`
// (the same seed gives every model the same masks): the held-out comparison of teacher and students.
struct MlmEvaluation {
  double accuracy = 0, perplexity = 0, loss = 0;
  int64_t predicted = 0;
};
MlmEvaluation evaluate_mlm(const std::string& model_dir, const std::string& corpus_dir, uint64_t seed = 1234,
                           size_t batch_size = 32, size_t max_sequences = 0, const std::string& device = "cpu");

}  // namespace retort
