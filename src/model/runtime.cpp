// Threads, the start-up environment (OpenMP wait policy, OpenBLAS core type), devices and dtypes.
#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <thread>

#include <unistd.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <torch/torch.h>

#include "retort/error.h"
#include "retort/runtime.h"

namespace retort {

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void keep_freed_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_MAX, 0);                   // large blocks from the heap, not fresh mappings
  mallopt(M_TRIM_THRESHOLD, INT_MAX);      // and kept: never trimmed back to the kernel
#endif
}

std::vector<EnvSetting> recommended_environment() {
  std::vector<EnvSetting> out;
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (env("OMP_WAIT_POLICY").empty()) out.push_back({"OMP_WAIT_POLICY", "passive"});
  std::string core = env("RETORT_BLAS_CORETYPE");
  if (core.empty()) {
#if defined(__x86_64__) && defined(__GNUC__)
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    std::string current = env("OPENBLAS_CORETYPE");
    std::transform(current.begin(), current.end(), current.begin(), [](unsigned char c) { return std::tolower(c); });
    const bool avx512_core = current == "skylakex" || current == "cooperlake" || current == "sapphirerapids";
    if (avx512 && !avx512_core) core = "SkylakeX";
#endif
  }
  if (!core.empty() && core != "keep" && env("OPENBLAS_CORETYPE") != core) out.push_back({"OPENBLAS_CORETYPE", core});
  return out;
}

void reexec_with_recommended_environment(int argc, char** argv) {
  (void)argc;
  if (std::getenv("RETORT_ENV_APPLIED") || std::getenv("RETORT_NO_REEXEC")) return;
  const auto settings = recommended_environment();
  if (settings.empty()) return;
  for (const auto& s : settings) ::setenv(s.name.c_str(), s.value.c_str(), 1);
  ::setenv("RETORT_ENV_APPLIED", "1", 1);
  // The real path, so the process keeps its name (ps shows "exe" for /proc/self/exe).
  std::string self(4096, '\0');
  const ssize_t len = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
  self.resize(len > 0 ? static_cast<size_t>(len) : 0);
  ::execv(self.empty() ? "/proc/self/exe" : self.c_str(), argv);  // returns only on failure: carry on as is
}

int set_threads(int n) {
  // One per core, shared among the processes of this machine when `retort launch` (or torchrun) started
  // several: LOCAL_WORLD_SIZE of them.
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const int procs = local ? std::max(1, std::atoi(local)) : 1;
  const int want = n > 0 ? n : std::max(1, hardware_threads() / procs);
  torch::set_num_threads(want);
  return torch::get_num_threads();
}

c10::Device parse_device(const std::string& s) {
  c10::Device d(c10::kCPU);
  try {
    d = c10::Device(s);
  } catch (const c10::Error&) {
    fail("invalid device '", s, "' (expected cpu, cuda or cuda:N)");
  }
  check(d.is_cpu() || d.is_cuda(), "unsupported device '", s, "' (expected cpu, cuda or cuda:N)");
  if (d.is_cuda()) {
    check(torch::cuda::is_available(), "device '", s,
          "' requested but this libtorch build or machine has no CUDA device");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    check(!d.has_index() || d.index() < count, "device '", s, "' requested but only ", count,
          " CUDA device(s) are visible");
  }
  return d;
}

c10::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32" || s == "float") return c10::kFloat;
  if (s == "bf16" || s == "bfloat16") return c10::kBFloat16;
  if (s == "fp16" || s == "float16" || s == "half") return c10::kHalf;
  if (s == "fp64" || s == "float64" || s == "double") return c10::kDouble;
  fail("unknown dtype '", s, "' (fp32, bf16, fp16, fp64)");
}

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "float32";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    case c10::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

}  // namespace retort
