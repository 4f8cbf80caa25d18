// The number of threads the kernels use. Defaults to OpenMP's (omp_get_max_threads(), which
// honours OMP_NUM_THREADS) read at first use; set_num_threads overrides it for the process.
#include <omp.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "densitron/cpu.h"

namespace densitron {
namespace {
std::atomic<int> g_num_threads{0};  // 0: not read yet
}  // namespace

int get_num_threads() {
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
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

}  // namespace densitron
