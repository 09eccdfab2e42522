// Process-wide runtime settings: intra-op threads (the one piece of global state Retort keeps), device
// and dtype parsing for the --device / --dtype options.
#pragma once

#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace retort {

// Sets libtorch's intra-op threads; n <= 0 means one per core (libtorch defaults to 1 here), divided
// among LOCAL_WORLD_SIZE processes when that is set (data-parallel launches).
// Returns the count in effect.
int set_threads(int n);
int hardware_threads();

// Keeps freed tensor memory in the process instead of returning it to the kernel (glibc's malloc
// maps and unmaps every large block by default, so each training step page-faults its activations
// in again: measured 2x+ slower steps here). Idempotent; a no-op off glibc.
void keep_freed_memory();

// Environment settings that only take effect when a process starts (OpenMP and OpenBLAS read them as
// they load), with the values Retort recommends for this CPU, for those the environment does not
// already hold. Measured here (2-core AVX-512 EPYC, distillation step 12L/768 -> 6L, fp32): the preset
// OPENBLAS_CORETYPE=Haswell and libgomp's default spin-waiting (its idle threads spin while OpenBLAS's
// own threads compute) together halved throughput: 159 -> 309 tokens/s with the values below.
//   OMP_WAIT_POLICY=passive        unless set
//   OPENBLAS_CORETYPE=SkylakeX     on AVX-512 CPUs, replacing an AVX2-only core type; RETORT_BLAS_CORETYPE
//                                  overrides the choice ("keep" leaves OPENBLAS_CORETYPE as it is)
struct EnvSetting {
  std::string name, value;
};
std::vector<EnvSetting> recommended_environment();

// For a program's main(): when recommended_environment() is not empty, sets it and re-executes the
// program (once: RETORT_ENV_APPLIED marks the second start) so OpenMP and OpenBLAS see it. Returns
// only when nothing needed changing or the re-execution failed (then the program runs as it is).
// RETORT_NO_REEXEC=1 disables it.
void reexec_with_recommended_environment(int argc, char** argv);

// "cpu", "cuda", "cuda:N"; throws Error when CUDA is asked for and this libtorch or machine has none.
c10::Device parse_device(const std::string& s);
// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16", "fp64"/"float64".
c10::ScalarType parse_dtype(const std::string& s);
std::string dtype_name(c10::ScalarType t);

}  // namespace retort
