// Loads Hugging Face model directories into retort::Model and writes them back. Every problem is a
// retort::Error naming the weight file and the tensor: missing, wrong shape, non-float dtype;
// unexpected tensors are reported (or rejected with strict), head tensors absent from the checkpoint
// are freshly initialised and reported, as transformers does.
#include <filesystem>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/runtime.h"
#include "retort/safetensors.h"
#include "retort/state_dict.h"

namespace retort {
namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Tensors whose absence is an error (the encoder), as opposed to a head that may be new.
bool is_encoder_param(const std::string& canonical) {
  return starts_with(canonical, "bert.") && !starts_with(canonical, "bert.pooler.");
}

std::string join(const std::vector<std::string>& v, size_t max_items = 8) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_items) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

}  // namespace

void bind_state_dict(ModelImpl& model, const StateDict& sd, bool strict, LoadReport& report) {
  const ModelType type = model.config.model_type;
  auto params = model.named_parameters(/*recurse=*/true);
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& name : sd.names()) {
    std::string canon = canonical_name(name, type);
    if (!model.config.tie_word_embeddings &&
        (name == "vocab_projector.weight" || name == "cls.predictions.decoder.weight")) {
      canon = "cls.predictions.decoder.weight";
    }
    if (canon.empty()) continue;  // a tied alias or a non-persistent buffer
    torch::Tensor* param = params.find(canon);
    if (!param) {
      report.unexpected.push_back(name);
      continue;
    }
    const torch::Tensor& t = sd.tensor(name);
    const std::string& file = sd.source(name);
    check(t.is_floating_point(), file, ": tensor '", name, "' has dtype ", dtype_name(t.scalar_type()),
          ", expected a floating-point tensor");
    check(t.sizes() == param->sizes(), file, ": tensor '", name, "' has shape ", shape_str(t.sizes()),
          ", expected ", shape_str(param->sizes()), " from config.json");
    param->copy_(t);
    check(seen.insert(canon).second, file, ": tensor '", name, "' is given twice (under another name)");
  }
  std::vector<std::string> missing;
  for (const auto& item : params) {
    if (seen.count(item.key())) continue;
    if (is_encoder_param(item.key())) {
      missing.push_back(hf_name(item.key(), type, model.head));
    } else {
      report.initialised.push_back(hf_name(item.key(), type, model.head));
    }
  }
  const std::string files = join(sd.files());
  check(missing.empty(), files, ": missing tensor", missing.size() > 1 ? "s " : " ", join(missing));
  check(!strict || report.unexpected.empty(), files, ": unexpected tensor",
        report.unexpected.size() > 1 ? "s " : " ", join(report.unexpected), " (strict mode)");
  report.files = sd.files();
}

Model load_model(const std::string& dir, const LoadOptions& opt, LoadReport* report) {
  check(std::filesystem::is_directory(dir), dir, ": not a model directory");
  ModelConfig config = ModelConfig::load(dir);
  HeadKind head = opt.head_from_config ? head_from_architectures(config.architectures) : opt.head;
  if (head == HeadKind::SequenceClassification && !opt.id2label.empty()) {
    config.id2label = opt.id2label;
    if (!opt.problem_type.empty()) config.problem_type = opt.problem_type;
  }
  if (head == HeadKind::SequenceClassification && config.num_labels() == 0) {
    config.id2label = {"LABEL_0", "LABEL_1"};  // transformers' default num_labels
  }
  Model model(config, head);
  init_weights(*model);
  StateDict sd = load_state_dict(dir);
  LoadReport local;
  bind_state_dict(*model, sd, opt.strict, report ? *report : local);
  model->to(opt.device, opt.dtype);
  return model;
}

void save_model(ModelImpl& model, const std::string& dir) {
  std::filesystem::create_directories(dir);
  ModelConfig config = model.config;
  config.architectures = {architecture_name(config.model_type, model.head)};
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    tensors.emplace_back(hf_name(item.key(), config.model_type, model.head),
                         item.value().detach().to(torch::kCPU).contiguous());
  }
  if (!tensors.empty()) config.torch_dtype = dtype_name(tensors.front().second.scalar_type());
  save_safetensors(dir + "/model.safetensors", tensors);
  config.save(dir + "/config.json");
}

Tokenizer load_model_tokenizer(const std::string& dir) {
  try {
    return Tokenizer::load(dir);
  } catch (const Error& e) {
    fail(dir, ": the model directory needs its tokenizer files (vocab.txt or tokenizer.json): ", e.what());
  }
}

}  // namespace retort
