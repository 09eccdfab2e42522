// Binding Hugging Face checkpoints to retort::Model and writing Hugging Face directories back.
// Canonical names are what Model registers (HF's BertFor* names: "bert.encoder.layer.0..."). A
// checkpoint's names are mapped onto them: prefixes "bert." / "distilbert." / none are accepted, and
// DistilBERT's names ("transformer.layer.0.attention.q_lin", "vocab_projector", ...) go through the
// explicit map in src/model/names.cpp. Tied aliases (the MLM decoder) may be stored or omitted.
#pragma once

#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "retort/heads.h"
#include "retort/tokenizer.h"

namespace retort {

// A checkpoint name -> the canonical name, or "" when the tensor is a known alias or buffer that has
// no parameter of its own (tied decoder weight, position_ids, ...).
std::string canonical_name(const std::string& checkpoint_name, ModelType type);
// A canonical name -> the name Hugging Face writes for this model type and head.
std::string hf_name(const std::string& canonical, ModelType type, HeadKind head);

struct LoadOptions {
  HeadKind head = HeadKind::None;
  bool head_from_config = true;  // use config.json's architectures; `head` only when false
  bool strict = false;           // unexpected tensors become an error instead of a warning
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;
  // A new classification head: these label names (and problem type, e.g. "regression") replace the
  // config's. Ignored when empty. A checkpoint head of another size is then a shape error.
  std::vector<std::string> id2label;
  std::string problem_type;
};

struct LoadReport {
  std::vector<std::string> unexpected;   // in the checkpoint, not in the model (ignored)
  std::vector<std::string> initialised;  // head tensors the checkpoint lacks: freshly initialised
  std::vector<std::string> files;        // weight files read
};

// Reads config.json and the weights of a model directory into a new Model. Missing encoder tensors,
// wrong shapes and non-float tensors are errors naming the file and the tensor.
Model load_model(const std::string& dir, const LoadOptions& opt = {}, LoadReport* report = nullptr);

// Copies the tensors of a state dict (checkpoint names) into `model`; used by load_model.
// `source` names the weight file(s) for messages.
struct StateDict;
void bind_state_dict(ModelImpl& model, const StateDict& sd, bool strict, LoadReport& report);

// Writes config.json (model_type, architectures) and model.safetensors (tied aliases omitted, as
// transformers writes them) into `dir`, creating it. Weights are written in fp32 unless `dtype` says.
void save_model(ModelImpl& model, const std::string& dir);

// The tokenizer a model directory holds; an Error naming the directory when it has none.
Tokenizer load_model_tokenizer(const std::string& dir);

}  // namespace retort
