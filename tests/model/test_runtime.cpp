// The start-up environment Retort recommends (OpenMP wait policy, OpenBLAS core type) and the user's
// overrides of it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "retort/runtime.h"

namespace retort {
namespace {

using Vars = std::map<std::string, std::optional<std::string>>;

// Sets (or unsets, with nullopt) environment variables for one scope, restoring them afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const Vars& vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_[k] = old ? std::optional<std::string>(old) : std::nullopt;
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

std::map<std::string, std::string> recommended() {
  std::map<std::string, std::string> m;
  for (const auto& s : recommended_environment()) m[s.name] = s.value;
  return m;
}

bool has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

TEST(Runtime, OpenMpWaitsPassivelyUnlessTheUserChose) {
  {
    ScopedEnv env(Vars{{"OMP_WAIT_POLICY", std::nullopt}});
    EXPECT_EQ(recommended()["OMP_WAIT_POLICY"], "passive");
  }
  ScopedEnv env(Vars{{"OMP_WAIT_POLICY", "active"}});
  EXPECT_EQ(recommended().count("OMP_WAIT_POLICY"), 0u);
}

TEST(Runtime, OpenBlasCoreTypeFollowsTheCpuAndTheOverride) {
  {
    ScopedEnv env(Vars{{"OPENBLAS_CORETYPE", "Haswell"}, {"RETORT_BLAS_CORETYPE", std::nullopt}});
    const auto m = recommended();
    if (has_avx512()) EXPECT_EQ(m.at("OPENBLAS_CORETYPE"), "SkylakeX");
    else EXPECT_EQ(m.count("OPENBLAS_CORETYPE"), 0u);
  }
  {
    ScopedEnv env(Vars{{"OPENBLAS_CORETYPE", "SkylakeX"}, {"RETORT_BLAS_CORETYPE", std::nullopt}});
    EXPECT_EQ(recommended().count("OPENBLAS_CORETYPE"), 0u);  // already an AVX-512 core type
  }
  {
    ScopedEnv env(Vars{{"OPENBLAS_CORETYPE", "Haswell"}, {"RETORT_BLAS_CORETYPE", "keep"}});
    EXPECT_EQ(recommended().count("OPENBLAS_CORETYPE"), 0u);
  }
  {
    ScopedEnv env(Vars{{"OPENBLAS_CORETYPE", "Haswell"}, {"RETORT_BLAS_CORETYPE", "Zen"}});
    EXPECT_EQ(recommended().at("OPENBLAS_CORETYPE"), "Zen");
  }
  ScopedEnv env(Vars{{"OPENBLAS_CORETYPE", "Zen"}, {"RETORT_BLAS_CORETYPE", "Zen"}});
  EXPECT_EQ(recommended().count("OPENBLAS_CORETYPE"), 0u);  // nothing to change
}

}  // namespace
}  // namespace retort
