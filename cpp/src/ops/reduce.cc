// Column sums of a row-major block (the bias gradient of a Dense layer), and the NaN scan of
// input data.
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
  const int nt = n >= (int64_t{1} << 20) ? get_num_threads() : 1;
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

bool copy_has_nan(const float* src, float* dst, int64_t n) {
  return elementwise_kernels()->copy_has_nan(src, dst, n);
}

void sparse_row_times(const int32_t* idx, const float* val, int64_t nnz, const float* w,
                      int64_t ldw, float* out, int64_t n) {
  elementwise_kernels()->sparse_row_times(idx, val, nnz, w, ldw, out, n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  elementwise_kernels()->axpy(a, x, y, n);
}

}  // namespace densitron
