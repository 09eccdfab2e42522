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

}  // namespace retort
