// Fast inference: a loaded Model prepared once for serving at one precision, with a forward pass
// written for inference only (what CTranslate2 does beside its training-free runtime):
//   - no autograd (InferenceMode), no dropout, no intermediate tensors kept;
//   - query/key/value as one (3H, H) projection, the 1/sqrt(D) scale folded into the query weights;
//   - the additive mask only when the batch has padding; residual adds in place;
//   - a classification head needs only [CLS]: the last layer computes attention and its FFN for the
//     first position alone (keys and values still come from every token);
//   - precisions: fp32; bf16 (weights and activations, oneDNN kernels on AVX512_BF16 CPUs); int8
//     (dynamic quantization as PyTorch's quantize_dynamic: encoder linear weights int8 per output
//     channel, activations quantized per call; embeddings, LayerNorm, attention and the task head in
//     fp32).
// Outputs are fp32 whatever the precision. Callers batch sequences of similar length together (the
// task evaluators and retort::Classifier sort by length) so padding stays small.
//
// Dimensions: B batch, T sequence, H hidden, C classes.
#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>

#include "retort/heads.h"

namespace retort {

enum class Precision { Fp32, Bf16, Int8 };

// "fp32"/"float32", "bf16"/"bfloat16", "int8"; an Error naming the choices otherwise.
Precision parse_precision(const std::string& s);
std::string precision_name(Precision p);  // "fp32", "bf16", "int8"

// The int8 kernels this libtorch has, best first ("fbgemm", "onednn", "qnnpack"); empty: none.
std::vector<std::string> int8_engines();

class InferenceModel {
 public:
  // Takes the model over: bf16 converts its weights in place, int8 packs quantized copies of the
  // encoder's linear weights. int8 runs on CPU only.
  InferenceModel(Model model, Precision precision);
  // Loads a model directory (its config's head) onto `device` and prepares it.
  static InferenceModel load(const std::string& dir, Precision precision,
                             const c10::Device& device = c10::Device(c10::kCPU));
  InferenceModel(InferenceModel&&) noexcept;
  InferenceModel& operator=(InferenceModel&&) noexcept;
  ~InferenceModel();

  // input_ids (B, T) int64; attention_mask (B, T) {0,1} or undefined (no padding); token_type_ids
  // (B, T) or undefined (all zeros). The head's outputs in fp32: classification logits (B, C), QA
  // start/end logits (B, T), MLM logits (B, T, V). encoder.last_hidden_state is (B, T, H), except for a
  // classification head, where it is (B, 1, H): [CLS] alone, the only position the head reads.
  ModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                      const torch::Tensor& token_type_ids = {}) const;
  // Every position's last hidden state, fp32 (B, T, H), whatever the head.
  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const torch::Tensor& token_type_ids = {}) const;

  const ModelConfig& config() const;
  HeadKind head() const;
  Precision precision() const;
  c10::Device device() const;
  ModelImpl& model() const;  // the underlying modules (embeddings, heads, config)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace retort
