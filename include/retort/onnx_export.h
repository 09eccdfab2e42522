// `retort export --format onnx`: a model as an ONNX graph (opset 17, fp32 weights as initializers)
// that ONNX Runtime runs with Retort's outputs, checked with ONNX's own checker and shape inference.
//
// Inputs, all int64 with symbolic batch and sequence dimensions: input_ids (B, T), attention_mask
// (B, T) and, for BERT, token_type_ids (B, T). Outputs by head: last_hidden_state (B, T, H) for a bare
// encoder, logits (B, C) for classification, logits (B, T, V) for masked-LM, start_logits and
// end_logits (B, T) for question answering. The names are those of Hugging Face's ONNX exports.
#pragma once

#include <string>
#include <vector>

#include "retort/heads.h"

namespace retort {

// False when Retort was built without Debian's libonnx-dev (export then fails with that reason).
bool onnx_export_available();

// Writes `model` to `path` as an ONNX model and validates it (checker and shape inference).
void export_onnx(ModelImpl& model, const std::string& path);

// Runs ONNX's checker and strict shape inference on a file; an Error with ONNX's message when invalid.
void check_onnx(const std::string& path);

// The graph's input and output names, in order.
struct OnnxSignature {
  std::vector<std::string> inputs, outputs;
};
OnnxSignature onnx_signature(const std::string& path);

}  // namespace retort

#include <map>

#include <torch/types.h>

namespace retort {

// ONNX Runtime, run through Node.js and npm's onnxruntime-node (scripts/ort_run.js): the peer users
// compare Retort with. Found through RETORT_ORT_SCRIPT / RETORT_ORT_MODULES, else the script in this
// source tree and the node_modules that scripts/setup.sh installs in the build directory.
struct OrtRunner {
  std::string node = "node";
  std::string script;   // scripts/ort_run.js
  std::string modules;  // a node_modules folder holding onnxruntime-node
  std::string missing;  // why it is not available ("" when it is)
  bool available() const { return missing.empty(); }
};
OrtRunner find_onnxruntime();

struct OrtResult {
  std::map<std::string, torch::Tensor> outputs;  // fp32, the model's output shapes
  std::vector<double> latency_ms;                // one per timed run (reps)
};
// Runs `model_path` on int64 inputs (name -> (B, T)); with reps > 0 also times that many runs.
// threads > 0 sets ONNX Runtime's intra-op threads.
OrtResult run_onnxruntime(const OrtRunner& ort, const std::string& model_path,
                          const std::map<std::string, torch::Tensor>& inputs, int reps = 0, int threads = 0);

}  // namespace retort

namespace retort {

// Runs `model` and the exported `onnx_path` on the same padded batch of random tokens (2 x 16, the
// second row half padding, segments for BERT) and returns the largest absolute difference over the
// head's outputs.
double onnx_max_difference(ModelImpl& model, const std::string& onnx_path, const OrtRunner& ort);

}  // namespace retort
