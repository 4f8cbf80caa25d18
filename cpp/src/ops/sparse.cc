// Dense input matrices made sparse: a mostly-zero x (multi-hot or count vectors) is trained on
// through the sparse path, which costs per stored value instead of per value.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/openmp.h"
#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

// Whether a value is stored: not ±0 (NaN is stored).
inline bool stored(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return (b & 0x7fffffffu) != 0;
}
inline bool stored(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return (b & 0x7fffffffffffffffull) != 0;
}
template <typename T>
inline bool stored(T v) {
  return v != 0;
}
inline bool is_nan(float v) { return v != v; }

// Whether any of the 16 values at p is stored (one vectorisable OR of their bits; float32 rows
// go through the ISA's compress_stored instead).
inline bool any_stored16(const double* p) {
  uint64_t b[16];
  std::memcpy(b, p, sizeof b);
  uint64_t any = 0;
  for (uint64_t v : b) any |= v & 0x7fffffffffffffffull;
  return any != 0;
}
template <typename T>
inline bool any_stored16(const T* p) {
  T any = 0;
  for (int k = 0; k < 16; ++k) any |= p[k];
  return any != 0;
}

// One thread's rows [lo, hi) of x: each row's stored values appended to idx and val (in
// column order, as float32), its count into counts[r]; returns the first row with a NaN, or -1.
// Blocks of 16 values with nothing stored are skipped with one test; the others are written to
// the row's scratch lists without a branch (a stored value is an unpredictable one).
template <typename T>
int64_t compress_rows(const T* x, int64_t lo, int64_t hi, int64_t cols, int64_t* counts,
                      std::vector<int32_t>& idx, std::vector<float>& val) {
  constexpr int64_t kBlock = 16;
  std::vector<int32_t> row_idx(cols + kBlock);
  std::vector<float> row_val(cols + kBlock);
  int64_t nan_row = -1;
  for (int64_t r = lo; r < hi; ++r) {
    const T* row = x + r * cols;
    int64_t n = 0;
    bool nan = false;
    auto put = [&](int64_t k) {
      const float v = static_cast<float>(row[k]);
      row_idx[n] = static_cast<int32_t>(k);
      row_val[n] = v;
      nan |= is_nan(v);
      n += stored(row[k]);
    };
    int64_t j = 0;
    for (; j + kBlock <= cols; j += kBlock) {
      if (!any_stored16(row + j)) continue;
      for (int64_t k = j; k < j + kBlock; ++k) put(k);
    }
    for (; j < cols; ++j) put(j);
    idx.insert(idx.end(), row_idx.begin(), row_idx.begin() + n);
    val.insert(val.end(), row_val.begin(), row_val.begin() + n);
    counts[r] = n;
    if (nan && nan_row < 0) nan_row = r;
  }
  return nan_row;
}

// float32 rows by the ISA's kernel (vcompressps on AVX-512).
template <>
int64_t compress_rows(const float* x, int64_t lo, int64_t hi, int64_t cols, int64_t* counts,
                      std::vector<int32_t>& idx, std::vector<float>& val) {
  const ElementwiseKernels* ek = elementwise_kernels();
  std::vector<int32_t> row_idx(cols);
  std::vector<float> row_val(cols);
  int64_t nan_row = -1;
  for (int64_t r = lo; r < hi; ++r) {
    const int64_t n = ek->compress_stored(x + r * cols, cols, 0, row_idx.data(), row_val.data());
    if (nan_row < 0)
      for (int64_t q = 0; q < n; ++q)
        if (is_nan(row_val[q])) nan_row = r;
    idx.insert(idx.end(), row_idx.begin(), row_idx.begin() + n);
    val.insert(val.end(), row_val.begin(), row_val.begin() + n);
    counts[r] = n;
  }
  return nan_row;
}

template <typename T>
CsrMatrix to_csr(const T* x, int64_t rows, int64_t cols) {
  CsrMatrix m;
  m.indptr.assign(rows + 1, 0);
  const int nt = rows * cols >= (int64_t{1} << 20) ? std::max(1, get_num_threads()) : 1;
  std::vector<std::vector<int32_t>> idx(nt);
  std::vector<std::vector<float>> val(nt);
  std::vector<int64_t> nan_rows(nt, -1);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = nt > 1 ? omp_get_thread_num() : 0, n = nt > 1 ? omp_get_num_threads() : 1;
    const int64_t lo = rows * t / n, hi = rows * (t + 1) / n;
    nan_rows[t] = compress_rows(x, lo, hi, cols, m.indptr.data() + 1, idx[t], val[t]);
  }
  for (int64_t r = 0; r < rows; ++r) m.indptr[r + 1] += m.indptr[r];
  m.indices.resize(m.indptr[rows]);
  m.data.resize(m.indptr[rows]);
  size_t at = 0;
  for (int t = 0; t < nt; ++t) {  // the threads' rows in order
    std::copy(idx[t].begin(), idx[t].end(), m.indices.begin() + at);
    std::copy(val[t].begin(), val[t].end(), m.data.begin() + at);
    at += idx[t].size();
    if (m.first_nan_row < 0) m.first_nan_row = nan_rows[t];
  }
  return m;
}

// fn(p) with x as a pointer to its DenseType's values.
template <typename Fn>
decltype(auto) with_values(const void* x, int type, Fn&& fn) {
  switch (type) {
    case kDenseFloat32: return fn(static_cast<const float*>(x));
    case kDenseFloat64: return fn(static_cast<const double*>(x));
    case kDenseInt32: return fn(static_cast<const int32_t*>(x));
    case kDenseInt64: return fn(static_cast<const int64_t*>(x));
    default: return fn(static_cast<const uint8_t*>(x));
  }
}

}  // namespace

double stored_fraction(const void* x, int type, int64_t rows, int64_t cols, int64_t sample) {
  if (rows <= 0 || cols <= 0) return 0.0;
  sample = std::max<int64_t>(1, std::min(sample, rows));
  int64_t count = 0;
  auto scan = [&](auto* p) {
    for (int64_t s = 0; s < sample; ++s) {
      const auto* row = p + (rows - 1) * s / std::max<int64_t>(1, sample - 1) * cols;
      for (int64_t j = 0; j < cols; ++j) count += stored(row[j]);
    }
  };
  with_values(x, type, scan);
  return static_cast<double>(count) / static_cast<double>(sample * cols);
}

CsrMatrix dense_to_csr(const void* x, int type, int64_t rows, int64_t cols) {
  return with_values(x, type, [&](const auto* p) { return to_csr(p, rows, cols); });
}

}  // namespace densitron
