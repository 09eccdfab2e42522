// The fused soft-target kernel (see kl_kernel.h). Per row, with x = s/T and y = t/T:
//   KL = sum_i p_i (y_i - x_i) + (m_x - m_y) + log S_x - log S_y,   p = softmax(y), S_x = sum exp(x - m_x)
//   dKL*T^2/N / ds_i = (softmax(x)_i - p_i) * T / N
// The row is converted to fp32 once into a thread-local buffer; sums run in 16 partial lanes so the
// compiler vectorises them (no fast-math needed), and exp is a Cephes-style polynomial (relative error
// ~2e-7 on the range used) written so it vectorises too. GCC's target_clones picks AVX-512, AVX2 or
// the baseline at load time.
//
// Dimensions: N rows, V vocabulary (padded to a multiple of kLanes in the buffers).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "kl_kernel.h"
#include "retort/error.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define RETORT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RETORT_CLONES
#endif

namespace retort::detail {
namespace {

constexpr int64_t kLanes = 16;
constexpr float kPadValue = -1e30f;  // padding lanes: never the max, exp() of them underflows to ~0

inline float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even, as c10::BFloat16 (inputs are finite)
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// exp(x) for x <= 0 (clamped below at -86: results down to ~4e-38, no denormals).
inline float exp_nonpositive(float x) {
  x = x < -86.0f ? -86.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;            // x - n ln 2, two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

RETORT_CLONES void load_scaled_f32(const float* src, float* dst, int64_t v, float inv_t) {
  for (int64_t i = 0; i < v; ++i) dst[i] = src[i] * inv_t;
}

RETORT_CLONES void load_scaled_bf16(const uint16_t* src, float* dst, int64_t v, float inv_t) {
  for (int64_t i = 0; i < v; ++i) dst[i] = bf16_to_float(src[i]) * inv_t;
}

RETORT_CLONES void store_f32(const float* src, float* dst, int64_t v) { std::memcpy(dst, src, sizeof(float) * v); }

RETORT_CLONES void store_bf16(const float* src, uint16_t* dst, int64_t v) {
  for (int64_t i = 0; i < v; ++i) dst[i] = float_to_bf16(src[i]);
}

// x, y: (Vp) scaled logits, padded; on return x holds the gradient row (before the T/N scale is applied
// by `scale`). Returns the row's KL.
RETORT_CLONES double kl_row(float* x, float* y, int64_t vp, float scale) {
  float mx[kLanes], my[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) mx[j] = my[j] = kPadValue;
  for (int64_t i = 0; i < vp; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      mx[j] = x[i + j] > mx[j] ? x[i + j] : mx[j];
      my[j] = y[i + j] > my[j] ? y[i + j] : my[j];
    }
  }
  float m_x = mx[0], m_y = my[0];
  for (int64_t j = 1; j < kLanes; ++j) {
    m_x = mx[j] > m_x ? mx[j] : m_x;
    m_y = my[j] > m_y ? my[j] : m_y;
  }
  float sx[kLanes] = {}, sy[kLanes] = {}, d[kLanes] = {};
  for (int64_t i = 0; i < vp; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const float ex = exp_nonpositive(x[i + j] - m_x);
      const float ey = exp_nonpositive(y[i + j] - m_y);
      d[j] += ey * (y[i + j] - x[i + j]);
      sx[j] += ex;
      sy[j] += ey;
      x[i + j] = ex;
      y[i + j] = ey;
    }
  }
  double s_x = 0, s_y = 0, dot = 0;
  for (int64_t j = 0; j < kLanes; ++j) {
    s_x += sx[j];
    s_y += sy[j];
    dot += d[j];
  }
  const float gx = static_cast<float>(scale / s_x), gy = static_cast<float>(scale / s_y);
  for (int64_t i = 0; i < vp; ++i) x[i] = x[i] * gx - y[i] * gy;
  return dot / s_y + static_cast<double>(m_x - m_y) + std::log(s_x) - std::log(s_y);
}

class FusedKL : public torch::autograd::Function<FusedKL> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& s, const torch::Tensor& t,
                               double temperature) {
    const auto sc = s.contiguous(), tc = t.contiguous();
    const int64_t n = sc.size(0), v = sc.size(1);
    const int64_t vp = (v + kLanes - 1) / kLanes * kLanes;
    const float inv_t = static_cast<float>(1.0 / temperature);
    const float scale = static_cast<float>(temperature / static_cast<double>(n));  // T^2 * (1/T) / N
    auto grad = torch::empty_like(sc);  // (N, V) d loss / d s, in the student's dtype
    std::vector<double> row_kl(static_cast<size_t>(n));
    const bool s_bf16 = sc.scalar_type() == torch::kBFloat16, t_bf16 = tc.scalar_type() == torch::kBFloat16;
    const auto* s_ptr = static_cast<const char*>(sc.data_ptr());
    const auto* t_ptr = static_cast<const char*>(tc.data_ptr());
    auto* g_ptr = static_cast<char*>(grad.data_ptr());
    const int64_t s_row = v * sc.element_size(), t_row = v * tc.element_size();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> x(static_cast<size_t>(vp), kPadValue), y(static_cast<size_t>(vp), kPadValue);  // (Vp)
      for (int64_t r = begin; r < end; ++r) {
        if (s_bf16) load_scaled_bf16(reinterpret_cast<const uint16_t*>(s_ptr + r * s_row), x.data(), v, inv_t);
        else load_scaled_f32(reinterpret_cast<const float*>(s_ptr + r * s_row), x.data(), v, inv_t);
        if (t_bf16) load_scaled_bf16(reinterpret_cast<const uint16_t*>(t_ptr + r * t_row), y.data(), v, inv_t);
        else load_scaled_f32(reinterpret_cast<const float*>(t_ptr + r * t_row), y.data(), v, inv_t);
        for (int64_t i = v; i < vp; ++i) x[i] = y[i] = kPadValue;  // kl_row overwrote the padding last row
        row_kl[static_cast<size_t>(r)] = kl_row(x.data(), y.data(), vp, scale);
        if (s_bf16) store_bf16(x.data(), reinterpret_cast<uint16_t*>(g_ptr + r * s_row), v);
        else store_f32(x.data(), reinterpret_cast<float*>(g_ptr + r * s_row), v);
      }
    });
    double total = 0;
    for (double k : row_kl) total += k;
    ctx->save_for_backward({grad});
    return torch::tensor(total * temperature * temperature / static_cast<double>(n), torch::kFloat);  // ()
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto grad = ctx->get_saved_variables()[0];  // (N, V)
    return {grad * grad_out[0].to(grad.scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fused_kl_supported(const torch::Tensor& s, const torch::Tensor& t) {
  auto ok = [](const torch::Tensor& x) {
    return x.device().is_cpu() && x.dim() == 2 && x.size(0) > 0 &&
           (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16);
  };
  return ok(s) && ok(t) && s.sizes() == t.sizes();
}

torch::Tensor fused_soft_target_loss(const torch::Tensor& s, const torch::Tensor& t, double temperature) {
  check(fused_kl_supported(s, t), "fused_soft_target_loss: needs (N, V) fp32/bf16 CPU tensors of one shape");
  return FusedKL::apply(s, t.detach(), temperature);
}

}  // namespace retort::detail
