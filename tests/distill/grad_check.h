// Finite-difference gradient checks for loss tests: the analytic gradient of a scalar function of one
// double-precision tensor against central differences, element by element.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include <torch/torch.h>

namespace retort::test {

// f: x (any shape, double) -> () double. Every element's analytic gradient must match (f(x+h)-f(x-h))/2h
// within 1e-6, and at least one must be above 1e-3 (so the check compared real gradients, not zeros).
inline void expect_gradients_match(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x0) {
  ASSERT_EQ(x0.scalar_type(), torch::kDouble);
  auto x = x0.detach().clone().set_requires_grad(true);  // same shape as x0
  f(x).backward();
  auto analytic = x.grad().contiguous();                  // same shape as x0
  const double h = 1e-6;
  auto flat = x0.detach().clone().contiguous();            // same shape as x0
  auto* p = flat.data_ptr<double>();
  const auto* g = analytic.data_ptr<double>();
  double max_abs_grad = 0;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double keep = p[i];
    p[i] = keep + h;
    const double up = f(flat).item<double>();
    p[i] = keep - h;
    const double down = f(flat).item<double>();
    p[i] = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(g[i], numeric, 1e-6) << "element " << i;
    max_abs_grad = std::max(max_abs_grad, std::abs(g[i]));
  }
  EXPECT_GT(max_abs_grad, 1e-3);  // the check compared real gradients, not zeros
}

}  // namespace retort::test
