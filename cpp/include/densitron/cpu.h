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

// Oversubscription. When other processes keep a run's threads off their cores (more runnable
// threads than cores), a run split across threads waits at every barrier for a thread that
// is not running, and two threads take longer than one. The graph executor notes how long
// each run's threads were kept off their cores while runnable (note_run), and while the
// machine is found oversubscribed it runs on one thread; a run on one thread that keeps its
// core (almost) throughout ends that. Results do not change: the engine's are bitwise the
// same on any number of threads. On by default; DENSITRON_ADAPTIVE_THREADS=0 or
// set_adaptive_threads(false) turns it off.
bool adaptive_threads();
void set_adaptive_threads(bool on);
bool machine_oversubscribed();  // the current verdict (false while adaptation is off)
// A run of `wall` seconds, of which its most delayed thread spent `off_core` runnable but not
// running, on `threads` threads (runs are pooled for a verdict: see threads.cc).
void note_run(double wall, double off_core, int threads);
// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID; 0 where there is none).
double thread_cpu_seconds();
// Seconds the calling thread has spent runnable but waiting for a core (Linux's schedstat
// run_delay: unlike wall less CPU time, not counting time a hypervisor took from the virtual
// CPU), or -1 where the kernel does not say.
double thread_wait_seconds();

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
