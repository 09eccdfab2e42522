// Threads, devices and dtypes for the CLI's --threads / --device / --dtype options.
#include <climits>
#include <thread>

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

int set_threads(int n) {
  const int want = n > 0 ? n : hardware_threads();
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
