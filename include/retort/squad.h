// SQuAD v1.1 / v2.0: the official JSON, sliding-window features, n-best span decoding, the official
// exact-match / F1, and fine-tuning (with optional distillation on start/end logits).
//
// Windows follow the original BERT run_squad: the question (at most max_query_length tokens) then a
// window of the context; windows start doc_stride tokens apart until one reaches the context's end.
// Character positions are code points, as Python indexes SQuAD's answer_start.
//
// Dimensions: B batch (features), T sequence.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "retort/finetune.h"

namespace retort {

class InferenceModel;

struct SquadQuestion {
  std::string id, question, context;
  std::vector<std::string> answers;          // texts; empty when impossible
  std::vector<int64_t> answer_starts;        // code-point offsets into context
  bool impossible = false;                   // v2.0 is_impossible
};

// Reads a SQuAD JSON file (v1.1 or v2.0). Errors name the file and the question id (or paragraph)
// that is malformed: a missing field, an answer_start outside the context.
std::vector<SquadQuestion> read_squad(const std::string& path);

// True when any question is unanswerable (a SQuAD v2.0 file): decoding may then answer "".
bool squad_has_unanswerable(const std::vector<SquadQuestion>& questions);
// DIR/FILE when `file` is given (or a path), else the only DIR/<prefix>*.json ("train", "dev").
std::string find_squad_file(const std::string& dir, const std::string& file, const std::string& prefix);

struct SquadOptions {
  int64_t max_seq_length = 384;
  int64_t doc_stride = 128;
  int64_t max_query_length = 64;
  int64_t max_answer_length = 30;
  int64_t n_best = 20;
  bool version_2 = false;                  // allow "no answer" (the null span at [CLS])
  double null_score_diff_threshold = 0.0;  // v2: predict "" when null - best span > threshold
  int64_t batch_size = 32;
  bool bf16 = false;
  std::string device = "cpu";
  int64_t max_questions = 0;  // > 0: only the first N questions
};

struct SquadFeature {
  size_t question = 0;  // index into the questions
  std::vector<int32_t> ids, type_ids;                 // (T)
  std::vector<std::pair<int64_t, int64_t>> offsets;   // (T) code-point span in the context; (-1, -1) outside it
  int64_t start_position = 0, end_position = 0;       // training target (0 = [CLS]: no answer in this window)
};

std::vector<SquadFeature> make_squad_features(const Tokenizer& tok, const std::vector<SquadQuestion>& questions,
                                              const SquadOptions& opt);

// The best answer text per question from per-feature start/end logits (each (T_f) for feature f).
std::map<std::string, std::string> decode_squad(const std::vector<SquadQuestion>& questions,
                                                const std::vector<SquadFeature>& features,
                                                const std::vector<std::vector<float>>& start_logits,
                                                const std::vector<std::vector<float>>& end_logits,
                                                const SquadOptions& opt);

struct SquadEval {
  double exact_match = 0, f1 = 0;  // fractions, averaged over questions
  int64_t questions = 0, features = 0;
  std::map<std::string, std::string> predictions;  // id -> answer text
  double seconds = 0;
  nlohmann::json to_json() const;
};
// Official scores of predictions against the questions' answers.
SquadEval score_squad(const std::vector<SquadQuestion>& questions, const std::map<std::string, std::string>& predictions,
                      bool version_2);

// Loads a QA model: a directory with a QA head as it is, else a new QA head initialised from seed.
Model load_qa_model(const std::string& dir, const torch::Device& device, uint64_t seed);
// The best answer per question id (inference mode, length-sorted batches); n_features: windows used.
std::map<std::string, std::string> answer_squad(ModelImpl& model, const Tokenizer& tok,
                                                const std::vector<SquadQuestion>& questions, const SquadOptions& opt,
                                                int64_t* n_features = nullptr);
SquadEval evaluate_squad(ModelImpl& model, const Tokenizer& tok, const std::vector<SquadQuestion>& questions,
                         const SquadOptions& opt);
// The same through the inference engine (fp32, bf16 or int8 as `model` was prepared; opt.bf16 does not apply).
std::map<std::string, std::string> answer_squad(const InferenceModel& model, const Tokenizer& tok,
                                                const std::vector<SquadQuestion>& questions, const SquadOptions& opt,
                                                int64_t* n_features = nullptr);
SquadEval evaluate_squad(const InferenceModel& model, const Tokenizer& tok, const std::vector<SquadQuestion>& questions,
                         const SquadOptions& opt);

struct SquadFinetuneConfig {
  FinetuneConfig base;  // model, data, out, teacher, training settings (task "squad")
  SquadOptions squad;
  std::string train_file, dev_file;  // default: DATA/train*.json and DATA/dev*.json
  // FinetuneConfig's fields plus max_seq_length (384 here), doc_stride, max_query_length,
  // max_answer_length, version_2, train_file, dev_file.
  static SquadFinetuneConfig from_json(const nlohmann::json& j);
};

struct SquadFinetuneResult {
  std::string best_dir;
  int64_t best_epoch = 0;
  SquadEval best;
  nlohmann::json epochs = nlohmann::json::array();
  nlohmann::json to_json() const;
};
SquadFinetuneResult run_squad_finetune(const SquadFinetuneConfig& cfg);

}  // namespace retort
