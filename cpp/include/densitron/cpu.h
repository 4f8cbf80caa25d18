// CPU feature detection, the instruction set chosen once for the process, and the thread count.
// The ISA is read from cpuid and xgetbv (OS support for the wider registers) and can be forced
// with DENSITRON_ISA=generic|avx2|avx512; forcing one the CPU lacks is an error.
#pragma once

#include <string>

namespace densitron {

enum class Isa : int { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// What the CPU and OS support, best first.
Isa best_supported_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

// The ISA in use (chosen on first call; honours DENSITRON_ISA). Throws std::runtime_error with a
// readable message when DENSITRON_ISA names an unknown or unsupported ISA.
Isa active_isa();
// Forces a path for tests; throws std::invalid_argument if this CPU lacks it.
void set_active_isa(Isa isa);

// Threads used by the kernels: defaults to OpenMP's (honouring OMP_NUM_THREADS); always 1 in a
// build without OpenMP.
int get_num_threads();
void set_num_threads(int n);  // n >= 1
bool built_with_openmp();    // false: everything runs on one thread

// While in scope, the calling thread treats subnormal float inputs and results as zero (x86's
// MXCSR DAZ and FTZ bits, AArch64's FPCR FZ; nothing elsewhere), then restores its previous
// mode.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned long long saved_ = 0;  // the MXCSR or FPCR it restores
};

}  // namespace densitron
