// The application API: embed or classify text with a model directory in a few lines.
//
//   retort::Classifier clf("runs/sst2/best", {.precision = "int8"});
//   retort::Prediction p = clf.classify("a gripping, funny film");   // p.label == "positive", p.score 0.93
//
//   retort::Encoder enc("runs/distilled/final");
//   std::vector<float> v = enc.embed("Paris is the capital of France.");  // enc.dim() floats, unit length
//
// Both tokenize with the model directory's tokenizer, batch texts of similar length together (sorted,
// then returned in input order) and run the inference engine (inference.h) at the precision asked for.
// Construction sets libtorch's intra-op threads (ServingOptions::threads) for the process. Call
// retort::reexec_with_recommended_environment(argc, argv) (runtime.h) first thing in main(): the
// OpenMP/OpenBLAS settings it applies only take effect at start-up (examples/ do).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace retort {

struct ServingOptions {
  std::string precision = "fp32";  // fp32, bf16 or int8
  std::string device = "cpu";      // cpu, cuda, cuda:N
  int threads = 0;                 // intra-op threads: 0 one per core, < 0 leave libtorch's setting
  int64_t max_length = 0;          // tokens per input, specials included; 0: the model's positions (at most 512)
  int64_t batch_size = 32;         // inputs per forward pass
};

struct Prediction {
  std::string label;                 // the most probable label (empty for a regression head)
  int64_t index = 0;                 // its position in labels()
  float score = 0;                   // its probability; for a regression head the predicted value
  std::vector<float> probabilities;  // one per label, in labels() order (empty for regression)
};

// A sequence-classification (or regression) model: DistilBertForSequenceClassification,
// BertForSequenceClassification, as `retort finetune` writes them or transformers saves them.
class Classifier {
 public:
  explicit Classifier(const std::string& model_dir, const ServingOptions& opt = {});
  Classifier(Classifier&&) noexcept;
  ~Classifier();

  Prediction classify(const std::string& text, const std::string& text_pair = "") const;
  // pairs: empty, or one second text per text (sentence-pair tasks such as MRPC or MNLI).
  std::vector<Prediction> classify_batch(const std::vector<std::string>& texts,
                                         const std::vector<std::string>& pairs = {}) const;
  const std::vector<std::string>& labels() const;
  bool regression() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class Pooling { Mean, Cls };  // mean over the text's tokens (sentence-transformers' default), or [CLS]

// Sentence embeddings from any BERT or DistilBERT directory (a task head, if any, is ignored).
class Encoder {
 public:
  explicit Encoder(const std::string& model_dir, const ServingOptions& opt = {}, Pooling pooling = Pooling::Mean,
                   bool normalize = true);
  Encoder(Encoder&&) noexcept;
  ~Encoder();

  std::vector<float> embed(const std::string& text) const;             // (H)
  torch::Tensor embed_batch(const std::vector<std::string>& texts) const;    // (N, H) fp32 on CPU
  int64_t dim() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retort
