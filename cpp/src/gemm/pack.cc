// Packs panels of op(A) and op(B) into k-major, contiguous, zero-padded buffers for the
// microkernels: A panel dst[p·mr + i], B panel dst[p·nr + j] (see kernel_info.h).
#include <cstring>

#include "gemm/kernel_info.h"

namespace densitron {
namespace gemm {

void pack_a_panel(int64_t m, int64_t k, const float* a, int64_t rs, int64_t cs, int64_t mr,
                  float* dst) {
  if (rs == 1) {  // op(A) columns contiguous (trans_a storage): copy rows of mr
    for (int64_t p = 0; p < k; ++p) {
      const float* src = a + p * cs;
      float* d = dst + p * mr;
      for (int64_t i = 0; i < m; ++i) d[i] = src[i];
      for (int64_t i = m; i < mr; ++i) d[i] = 0.0f;
    }
    return;
  }
  // op(A) rows contiguous: gather a column of mr rows per p, four k at a time.
  int64_t p = 0;
  for (; p + 4 <= k; p += 4) {
    float* d = dst + p * mr;
    for (int64_t i = 0; i < m; ++i) {
      const float* src = a + i * rs + p * cs;
      d[i] = src[0];
      d[mr + i] = src[cs];
      d[2 * mr + i] = src[2 * cs];
      d[3 * mr + i] = src[3 * cs];
    }
    for (int64_t i = m; i < mr; ++i) d[i] = d[mr + i] = d[2 * mr + i] = d[3 * mr + i] = 0.0f;
  }
  for (; p < k; ++p) {
    float* d = dst + p * mr;
    for (int64_t i = 0; i < m; ++i) d[i] = a[i * rs + p * cs];
    for (int64_t i = m; i < mr; ++i) d[i] = 0.0f;
  }
}

void pack_b_panel(int64_t n, int64_t k, const float* b, int64_t rs, int64_t cs, int64_t nr,
                  float* dst) {
  if (cs == 1) {  // rows of op(B) contiguous: copy
    for (int64_t p = 0; p < k; ++p) {
      std::memcpy(dst + p * nr, b + p * rs, static_cast<size_t>(n) * sizeof(float));
      for (int64_t j = n; j < nr; ++j) dst[p * nr + j] = 0.0f;
    }
    return;
  }
  // trans_b storage: column j of op(B) is contiguous in k; transpose in blocks of 4 columns.
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* s0 = b + j * cs;
    const float* s1 = s0 + cs;
    const float* s2 = s1 + cs;
    const float* s3 = s2 + cs;
    for (int64_t p = 0; p < k; ++p) {
      float* d = dst + p * nr + j;
      d[0] = s0[p * rs];
      d[1] = s1[p * rs];
      d[2] = s2[p * rs];
      d[3] = s3[p * rs];
    }
  }
  for (; j < n; ++j) {
    const float* s = b + j * cs;
    for (int64_t p = 0; p < k; ++p) dst[p * nr + j] = s[p * rs];
  }
  if (n < nr) {
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t jj = n; jj < nr; ++jj) dst[p * nr + jj] = 0.0f;
    }
  }
}

}  // namespace gemm
}  // namespace densitron
