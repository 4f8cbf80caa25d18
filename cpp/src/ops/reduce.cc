// Column sums of a row-major block (the bias gradient of a Dense layer), the NaN scan of input
// data, and the epochs' shuffles.
#include <algorithm>
#include <cstdint>

#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

void column_sums(const float* x, int64_t rows, int64_t cols, float* col_sums, bool accumulate) {
  if (!accumulate) std::fill(col_sums, col_sums + cols, 0.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = x + i * cols;
    for (int64_t j = 0; j < cols; ++j) col_sums[j] += r[j];
  }
}

int64_t first_nan(const float* x, int64_t n) {
  // A branch-free OR over fixed chunks (vectorised, memory-bound), threads splitting the
  // chunks; the exact index is looked up only in a chunk that holds a NaN.
  constexpr int64_t kChunks = 64;
  int64_t first = n;
  [[maybe_unused]] const int nt = n >= (int64_t{1} << 20) ? get_num_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : first) if (nt > 1)
  for (int64_t c = 0; c < kChunks; ++c) {
    const int64_t lo = n * c / kChunks, hi = n * (c + 1) / kChunks;
    int any = 0;
    for (int64_t i = lo; i < hi; ++i) any |= (x[i] != x[i]);
    if (!any) continue;
    for (int64_t i = lo; i < hi; ++i)
      if (x[i] != x[i]) {
        first = std::min(first, i);
        break;
      }
  }
  return first < n ? first : -1;
}

bool any_bad_id(const float* x, int64_t n, float limit) {
  return elementwise_kernels()->any_bad_id(x, n, limit);
}

bool copy_has_nan(const float* src, float* dst, int64_t n) {
  return elementwise_kernels()->copy_has_nan(src, dst, n);
}

bool copy_f64_has_nan(const double* src, float* dst, int64_t n) {
  return elementwise_kernels()->copy_f64_has_nan(src, dst, n);
}

void ints_to_float(const void* src, int type, float* dst, int64_t n) {
  elementwise_kernels()->ints_to_float(src, type, dst, n);
}

void sparse_row_times(const int32_t* idx, const float* val, int64_t nnz, const float* w,
                      int64_t ldw, float* out, int64_t n) {
  elementwise_kernels()->sparse_row_times(idx, val, nnz, w, ldw, out, n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  elementwise_kernels()->axpy(a, x, y, n);
}

void random_permutation(int64_t* out, int64_t n, uint64_t seed) {
  // xoshiro256** seeded by SplitMix64; Fisher-Yates from the top, each bound drawn by Lemire's
  // multiply-shift with rejection (unbiased; a division only on the rare rejection).
  uint64_t s[4];
  for (uint64_t& word : s) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    word = z ^ (z >> 31);
  }
  auto next = [&s] {
    const uint64_t result = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3] << 45 | s[3] >> 19;
    return result;
  };
  for (int64_t i = 0; i < n; ++i) out[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    if (static_cast<uint64_t>(m) < bound) {
      const uint64_t threshold = (0 - bound) % bound;
      while (static_cast<uint64_t>(m) < threshold)
        m = static_cast<unsigned __int128>(next()) * bound;
    }
    std::swap(out[i], out[static_cast<int64_t>(m >> 64)]);
  }
}

}  // namespace densitron
