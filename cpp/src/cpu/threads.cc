// The number of threads the kernels use. Defaults to OpenMP's (omp_get_max_threads(), which
// honours OMP_NUM_THREADS) read at first use; set_num_threads overrides it for the process.
// GNU OpenMP's thread pool does not survive fork(): a child process that entered a parallel
// region would hang. So a forked child runs everything on its one thread (every parallel region
// here is entered only with more than one thread).
#include <pthread.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "cpu/openmp.h"
#include "densitron/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define DENSITRON_HAS_MXCSR 1
#endif

namespace densitron {
namespace {
std::atomic<int> g_num_threads{0};  // 0: not read yet
std::atomic<bool> g_forked{false};

void on_fork_child() {
  g_forked.store(true, std::memory_order_relaxed);
  g_num_threads.store(1, std::memory_order_relaxed);
}

const int g_atfork_registered = pthread_atfork(nullptr, nullptr, on_fork_child);
}  // namespace

bool built_with_openmp() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

int get_num_threads() {
#if !defined(_OPENMP)
  return 1;  // built without OpenMP: one thread, whatever was asked
#endif
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  n = omp_get_max_threads();
  if (n < 1) n = 1;
  int expected = 0;
  g_num_threads.compare_exchange_strong(expected, n, std::memory_order_relaxed);
  return g_num_threads.load(std::memory_order_relaxed);
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("num_threads must be >= 1. Received: num_threads=" +
                                std::to_string(n));
  }
  if (g_forked.load(std::memory_order_relaxed)) return;  // a forked child stays on one thread
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

#ifdef DENSITRON_HAS_MXCSR
constexpr unsigned kFlushToZero = 0x8000u, kDenormalsAreZero = 0x0040u;
FlushDenormals::FlushDenormals() : saved_(_mm_getcsr()) {
  _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
}
FlushDenormals::~FlushDenormals() { _mm_setcsr(saved_); }
#elif defined(__aarch64__)
// FPCR's FZ bit: subnormal inputs and results of float operations are zero.
constexpr unsigned long long kFpcrFlushToZero = 1ull << 24;
unsigned long long read_fpcr() {
  unsigned long long r;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(r));
  return r;
}
void write_fpcr(unsigned long long r) { __asm__ __volatile__("msr fpcr, %0" : : "r"(r)); }
FlushDenormals::FlushDenormals() : saved_(read_fpcr()) { write_fpcr(saved_ | kFpcrFlushToZero); }
FlushDenormals::~FlushDenormals() { write_fpcr(saved_); }
#else
FlushDenormals::FlushDenormals() = default;
FlushDenormals::~FlushDenormals() = default;
#endif

}  // namespace densitron
