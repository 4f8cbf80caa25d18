// Measures this machine's peak single-precision FMA throughput (GFLOP/s) for 1..N threads:
// each thread runs independent chains of vfmadd (zmm when AVX-512 is available, else ymm),
// enough chains to hide FMA latency. The GEMM targets are quoted as a fraction of this.
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kChains = 16;
constexpr long kIters = 1 << 24;

__attribute__((target("avx512f,fma"))) float run_avx512(long iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float run_avx2(long iters) {
  constexpr int kYmmChains = 12;
  __m256 acc[kYmmChains];
  for (int i = 0; i < kYmmChains; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kYmmChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kYmmChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

}  // namespace

int main(int argc, char** argv) {
  const bool have512 = __builtin_cpu_supports("avx512f");
  const bool have2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!have2) {
    std::printf("fma_peak: this CPU has no AVX2+FMA; nothing to measure\n");
    return 0;
  }
  bool use512 = have512;
  if (argc > 1 && std::strcmp(argv[1], "avx2") == 0) use512 = false;
  const double flops_per_iter = use512 ? kChains * 16 * 2.0 : 12 * 8 * 2.0;
  const int max_threads = omp_get_num_procs();
  std::printf("isa=%s  (flops/iter/thread=%.0f)\n", use512 ? "avx512" : "avx2", flops_per_iter);
  volatile float sink = 0;
  for (int t = 1; t <= max_threads; ++t) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(t)
      {
        const float r = use512 ? run_avx512(kIters) : run_avx2(kIters);
#pragma omp atomic
        sink += r;
      }
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double gf = t * kIters * flops_per_iter / s * 1e-9;
      if (gf > best) best = gf;
    }
    std::printf("threads=%d  peak=%.1f GFLOP/s  (%.1f per thread)\n", t, best, best / t);
  }
  return 0;
}
