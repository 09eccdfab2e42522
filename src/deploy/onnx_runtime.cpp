// ONNX Runtime through Node.js: inputs and outputs cross as JSON files (tests and benchmarks only;
// the data are small and the timings are taken inside the Node process).
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "retort/error.h"
#include "retort/fs.h"
#include "retort/onnx_export.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

OrtRunner find_onnxruntime() {
  OrtRunner r;
  r.script = env_or("RETORT_ORT_SCRIPT", RETORT_ORT_SCRIPT_DEFAULT);
  r.modules = env_or("RETORT_ORT_MODULES", RETORT_ORT_MODULES_DEFAULT);
  if (std::system("node --version > /dev/null 2>&1") != 0) {
    r.missing = "Node.js (node) is not on PATH";
  } else if (!fs::exists(r.script)) {
    r.missing = r.script + " not found (set RETORT_ORT_SCRIPT)";
  } else if (!fs::exists(fs::path(r.modules) / "onnxruntime-node" / "package.json")) {
    r.missing = "onnxruntime-node is not installed in " + r.modules +
                " (scripts/setup.sh installs it with npm; or set RETORT_ORT_MODULES)";
  }
  return r;
}

OrtResult run_onnxruntime(const OrtRunner& ort, const std::string& model_path,
                          const std::map<std::string, torch::Tensor>& inputs, int reps, int threads) {
  check(ort.available(), "ONNX Runtime is not available: ", ort.missing);
  nlohmann::json in;
  for (const auto& [name, t] : inputs) {
    const torch::Tensor c = t.to(torch::kCPU, torch::kLong).contiguous();
    in[name] = {{"dims", c.sizes().vec()},
                {"data", std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel())}};
  }
  const fs::path dir = fs::temp_directory_path() / ("retort_ort_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in_path = (dir / "inputs.json").string(), out_path = (dir / "outputs.json").string(),
                    err_path = (dir / "stderr.txt").string();
  write_file_atomic(in_path, in.dump());
  fs::remove(out_path);
  const std::string cmd = "RETORT_ORT_MODULES=" + shell_quote(ort.modules) + " " + ort.node + " " +
                          shell_quote(ort.script) + " " + shell_quote(model_path) + " " + shell_quote(in_path) + " " +
                          shell_quote(out_path) + " " + std::to_string(reps) + " " +
                          (threads > 0 ? std::to_string(threads) : std::string()) + " 2> " + shell_quote(err_path);
  const int status = std::system(cmd.c_str());
  if (status != 0 || !fs::exists(out_path)) {
    std::string err = fs::exists(err_path) ? read_file(err_path) : "";
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    fail("ONNX Runtime failed on ", model_path, ": ", err.empty() ? "exit status " + std::to_string(status) : err);
  }
  const auto j = nlohmann::json::parse(read_file(out_path));
  OrtResult r;
  for (const auto& [name, v] : j.items()) {
    if (name == "latency_ms") {
      r.latency_ms = v.get<std::vector<double>>();
      continue;
    }
    const auto dims = v["dims"].get<std::vector<int64_t>>();
    const auto data = v["data"].get<std::vector<float>>();
    r.outputs[name] = torch::tensor(data, torch::kFloat).view(dims);
  }
  fs::remove_all(dir);
  return r;
}

double onnx_max_difference(ModelImpl& model, const std::string& onnx_path, const OrtRunner& ort) {
  const ModelConfig& c = model.config;
  const int64_t T = std::min<int64_t>(16, c.max_position_embeddings);
  torch::manual_seed(0);
  std::map<std::string, torch::Tensor> in;
  in["input_ids"] = torch::randint(std::min<int64_t>(1000, c.vocab_size - 1), c.vocab_size, {2, T}, torch::kLong);
  in["attention_mask"] = torch::ones({2, T}, torch::kLong);
  in["attention_mask"].index_put_({1, torch::indexing::Slice(T / 2, T)}, 0);
  if (c.type_vocab_size > 0) {
    in["token_type_ids"] = torch::zeros({2, T}, torch::kLong);
    if (c.type_vocab_size > 1) in["token_type_ids"].index_put_({torch::indexing::Slice(), torch::indexing::Slice(T / 2, T)}, 1);
  }
  ModelOutput ref;
  {
    torch::NoGradGuard no_grad;
    model.eval();
    ref = model.forward(in["input_ids"], in["attention_mask"],
                        c.type_vocab_size > 0 ? in["token_type_ids"] : torch::Tensor());
  }
  const OrtResult got = run_onnxruntime(ort, onnx_path, in);
  std::map<std::string, torch::Tensor> want;
  switch (model.head) {
    case HeadKind::None: want["last_hidden_state"] = ref.encoder.last_hidden_state; break;
    case HeadKind::MaskedLM:
    case HeadKind::SequenceClassification: want["logits"] = ref.logits; break;
    case HeadKind::QuestionAnswering:
      want["start_logits"] = ref.start_logits;
      want["end_logits"] = ref.end_logits;
      break;
  }
  double worst = 0;
  for (const auto& [name, w] : want) {
    check(got.outputs.count(name) != 0, onnx_path, ": ONNX Runtime gave no output '", name, "'");
    const torch::Tensor& g = got.outputs.at(name);
    check(g.sizes() == w.sizes(), onnx_path, ": output '", name, "' has shape ", g.sizes(), ", Retort's ", w.sizes());
    worst = std::max(worst, (g - w.to(torch::kCPU, torch::kFloat)).abs().max().item<double>());
  }
  return worst;
}

}  // namespace retort
