// Process-wide runtime settings: intra-op threads (the one piece of global state Retort keeps), device
// and dtype parsing for the --device / --dtype options.
#pragma once

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace retort {

// Sets libtorch's intra-op threads; n <= 0 means one per core (libtorch defaults to 1 here).
// Returns the count in effect.
int set_threads(int n);
int hardware_threads();

// Keeps freed tensor memory in the process instead of returning it to the kernel (glibc's malloc
// maps and unmaps every large block by default, so each training step page-faults its activations
// in again: measured 2x+ slower steps here). Idempotent; a no-op off glibc.
void keep_freed_memory();

// "cpu", "cuda", "cuda:N"; throws Error when CUDA is asked for and this libtorch or machine has none.
c10::Device parse_device(const std::string& s);
// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16", "fp64"/"float64".
c10::ScalarType parse_dtype(const std::string& s);
std::string dtype_name(c10::ScalarType t);

}  // namespace retort
