// retort::Classifier and retort::Encoder: tokenizer + length-sorted batches + the inference engine.
//
// Dimensions: B batch, T sequence, H hidden, C classes.
#include "retort/serving.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/finetune.h"
#include "retort/inference.h"
#include "retort/runtime.h"

namespace retort {
namespace {

// What both classes hold: the prepared model, its tokenizer and how inputs become batches.
struct Served {
  InferenceModel model;
  Tokenizer tok;
  FeatureOptions features;
  int64_t batch_size;

  Served(const std::string& dir, const ServingOptions& opt)
      : model(prepare(dir, opt)), tok(load_model_tokenizer(dir)), batch_size(opt.batch_size) {
    check(opt.batch_size > 0, "batch_size must be positive, got ", opt.batch_size);
    const int64_t positions = std::min<int64_t>(512, model.config().max_position_embeddings);
    check(opt.max_length >= 0 && opt.max_length <= positions, dir, ": max_length ", opt.max_length,
          " must be between 1 and the model's ", positions, " positions (0: all of them)");
    features.max_seq_length = opt.max_length > 0 ? opt.max_length : positions;
  }

  static InferenceModel prepare(const std::string& dir, const ServingOptions& opt) {
    if (opt.threads >= 0) set_threads(opt.threads);
    return InferenceModel::load(dir, parse_precision(opt.precision), parse_device(opt.device));
  }

  // Tokenizes the inputs, runs `fn` on each length-grouped padded batch with the input rows it holds.
  void run(const std::vector<std::string>& texts, const std::vector<std::string>& pairs,
           const std::function<void(const TaskBatch&, const std::vector<size_t>&)>& fn) const {
    check(pairs.empty() || pairs.size() == texts.size(), "got ", texts.size(), " texts but ", pairs.size(),
          " second texts: give one per text or none");
    std::vector<TaskExample> examples(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      examples[i].text_a = texts[i];
      if (!pairs.empty()) examples[i].text_b = pairs[i];
    }
    const TaskFeatures f = make_features(tok, examples, features, !pairs.empty());
    const bool types = model.config().type_vocab_size > 0;
    for (const auto& rows : length_grouped_batches(f, batch_size, false, 0)) {
      TaskBatch b = make_task_batch(f, examples, rows, TaskKind::Classification, tok.pad_id(), false,
                                    c10::Device(c10::kCPU));
      if (!types) b.token_type_ids = torch::Tensor();
      fn(b, rows);
    }
  }
};

}  // namespace

// ---- Classifier ------------------------------------------------------------------------------------

struct Classifier::Impl {
  Served s;
  bool regression = false;
  Impl(const std::string& dir, const ServingOptions& opt) : s(dir, opt) {
    const ModelConfig& c = s.model.config();
    check(s.model.head() == HeadKind::SequenceClassification, dir, ": not a sequence-classification model (",
          architecture_name(c.model_type, s.model.head()), "); fine-tune it first (retort finetune)");
    regression = c.problem_type == "regression" || c.num_labels() == 1;
  }
};

Classifier::Classifier(const std::string& model_dir, const ServingOptions& opt)
    : impl_(std::make_unique<Impl>(model_dir, opt)) {}
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier::~Classifier() = default;

const std::vector<std::string>& Classifier::labels() const { return impl_->s.model.config().id2label; }
bool Classifier::regression() const { return impl_->regression; }

Prediction Classifier::classify(const std::string& text, const std::string& text_pair) const {
  return classify_batch(std::vector<std::string>{text},
                  text_pair.empty() ? std::vector<std::string>{} : std::vector<std::string>{text_pair})
      .front();
}

std::vector<Prediction> Classifier::classify_batch(const std::vector<std::string>& texts,
                                             const std::vector<std::string>& pairs) const {
  std::vector<Prediction> out(texts.size());
  const auto& names = labels();
  impl_->s.run(texts, pairs, [&](const TaskBatch& b, const std::vector<size_t>& rows) {
    const torch::Tensor logits = impl_->s.model.forward(b.input_ids, b.attention_mask, b.token_type_ids).logits.cpu();
    const torch::Tensor values = (impl_->regression ? logits : torch::softmax(logits, -1)).contiguous();  // (B, C)
    const int64_t c = values.size(1);
    const float* v = values.data_ptr<float>();
    for (size_t i = 0; i < rows.size(); ++i) {
      Prediction& p = out[rows[i]];
      const float* row = v + static_cast<int64_t>(i) * c;
      if (impl_->regression) {
        p.score = row[0];
        continue;
      }
      p.probabilities.assign(row, row + c);
      p.index = std::max_element(row, row + c) - row;
      p.score = row[p.index];
      p.label = static_cast<size_t>(p.index) < names.size() ? names[static_cast<size_t>(p.index)]
                                                            : "LABEL_" + std::to_string(p.index);
    }
  });
  return out;
}

// ---- Encoder ---------------------------------------------------------------------------------------

struct Encoder::Impl {
  Served s;
  Pooling pooling;
  bool normalize;
  Impl(const std::string& dir, const ServingOptions& opt, Pooling p, bool n) : s(dir, opt), pooling(p), normalize(n) {}
};

Encoder::Encoder(const std::string& model_dir, const ServingOptions& opt, Pooling pooling, bool normalize)
    : impl_(std::make_unique<Impl>(model_dir, opt, pooling, normalize)) {}
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder::~Encoder() = default;

int64_t Encoder::dim() const { return impl_->s.model.config().hidden_size; }

torch::Tensor Encoder::embed_batch(const std::vector<std::string>& texts) const {
  torch::Tensor out = torch::zeros({static_cast<int64_t>(texts.size()), dim()});  // (N, H)
  impl_->s.run(texts, {}, [&](const TaskBatch& b, const std::vector<size_t>& rows) {
    const torch::Tensor h = impl_->s.model.encode(b.input_ids, b.attention_mask, b.token_type_ids).cpu();  // (B, T, H)
    torch::Tensor pooled;  // (B, H)
    if (impl_->pooling == Pooling::Cls) {
      pooled = h.select(1, 0);
    } else {
      const torch::Tensor m = b.attention_mask.unsqueeze(-1).to(torch::kFloat);  // (B, T, 1)
      pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0);
    }
    if (impl_->normalize) pooled = pooled / pooled.norm(2, -1, true).clamp_min(1e-12);
    const auto index = torch::tensor(std::vector<int64_t>(rows.begin(), rows.end()), torch::kLong);
    out.index_copy_(0, index, pooled);
  });
  return out;
}

std::vector<float> Encoder::embed(const std::string& text) const {
  const torch::Tensor v = embed_batch(std::vector<std::string>{text}).select(0, 0).contiguous();  // (H)
  return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
}

}  // namespace retort
