// AVX2+FMA microkernels: a 6×16 register tile (12 ymm accumulators, two B vectors per k, A
// broadcast), the Haswell-class shape. Row tails are exact (template row count), column tails
// use maskload/maskstore, so no lane reads or writes past the matrix. The epilogue (alpha,
// beta, bias, relu/sigmoid/tanh) is fused into the write-back. Also: the packing of A rows and
// of a transposed B, and the transposing write-back (store_trans_body.inc), on 8×8 transposes.
// Compiled with -mavx2 -mfma: includes only <immintrin.h>, kernel_info.h and
// store_trans_body.inc (compiled into this file's anonymous namespace: no shared inline).
#include <immintrin.h>

#include <cstdint>

#include "gemm/kernel_info.h"

// GCC 12 reports its own intrinsic headers as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace densitron {
namespace gemm {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int kNv = kNr / 8;

// exp(x): 2^n · P(r), |r| <= ln2/2, degree-6 polynomial; x clamped so 2^n stays normal.
__m256 exp_ps(__m256 x) {
  // Clamped with x as the second operand, which min/max return when it is NaN: NaN stays NaN.
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n is in [-126, 128): 2^n from the exponent field, applied as two halves to reach 128.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i h1 = _mm256_srai_epi32(ni, 1);
  const __m256i h2 = _mm256_sub_epi32(ni, h1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// kAct: EpilogueAct as int, a template parameter so the write-back has no branch per vector.
template <int kAct>
inline __attribute__((always_inline)) __m256 activate(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  switch (kAct) {
    case 1:  // relu
      return _mm256_max_ps(_mm256_setzero_ps(), x);  // relu(NaN) = NaN, as Keras
    case 2:  // sigmoid: 1 / (1 + e^-x)
      return _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
    case 3: {  // tanh: sign(x)·(1 - e)/(1 + e), e = e^(-2|x|); odd Taylor series near 0
      const __m256 sign_bit = _mm256_set1_ps(-0.0f);
      const __m256 ax = _mm256_andnot_ps(sign_bit, x);
      const __m256 e = exp_ps(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
      __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
      const __m256 x2 = _mm256_mul_ps(x, x);
      __m256 s = _mm256_fmadd_ps(x2, _mm256_set1_ps(-17.0f / 315.0f), _mm256_set1_ps(2.0f / 15.0f));
      s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-1.0f / 3.0f));
      s = _mm256_fmadd_ps(_mm256_mul_ps(s, x2), ax, ax);
      t = _mm256_blendv_ps(t, s, _mm256_cmp_ps(ax, _mm256_set1_ps(0.0625f), _CMP_LT_OQ));
      return _mm256_or_ps(t, _mm256_and_ps(x, sign_bit));
    }
    default:
      return x;
  }
}

// g · act'(y) for act as int (see gemm.h), the same operations as the engine's backward.
template <int kDact>
inline __attribute__((always_inline)) __m256 scale_by_derivative(__m256 g, __m256 y) {
  const __m256 one = _mm256_set1_ps(1.0f);
  switch (kDact) {
    case 1:
      return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), g);
    case 2:
      return _mm256_mul_ps(g, _mm256_mul_ps(y, _mm256_sub_ps(one, y)));
    case 3:
      return _mm256_mul_ps(g, _mm256_sub_ps(one, _mm256_mul_ps(y, y)));
    default:
      return g;
  }
}

// C = act(alpha·acc + beta·C + bias) for one tile, kAct in 0..3; or, for kAct = 4 + d, the
// backward epilogue C = (alpha·acc + beta·C + bias) · d'(Y). kBeta false: C is not read.
template <int kRows, int kVecs, int kAct, bool kBeta>
inline __attribute__((always_inline)) void write_back(const __m256 (&acc)[kRows][kVecs],
                                                      const UkernelArgs& p,
                                                      const __m256i (&mask)[kVecs], bool full,
                                                      bool last) {
  const __m256 alpha = _mm256_set1_ps(p.alpha);
  const __m256 beta = _mm256_set1_ps(p.beta);
  const bool add_bias = last && p.bias != nullptr;
  constexpr int kFwd = kAct < 4 ? kAct : 0, kDact = kAct < 4 ? 0 : kAct - 4;
  __m256 bias[kVecs];
#pragma GCC unroll 2
  for (int v = 0; v < kVecs; ++v) {
    bias[v] = add_bias ? _mm256_maskload_ps(p.bias + 8 * v, mask[v]) : _mm256_setzero_ps();
  }
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    float* c = p.c + i * p.ldc;
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      // vmaskmov stores are slow (microcoded on AMD): full vectors use plain loads/stores.
      const bool whole = full || v + 1 < kVecs;
      __m256 x = _mm256_mul_ps(alpha, acc[i][v]);
      if (kBeta) {
        const __m256 c0 =
            whole ? _mm256_loadu_ps(c + 8 * v) : _mm256_maskload_ps(c + 8 * v, mask[v]);
        x = _mm256_fmadd_ps(beta, c0, x);
      }
      if (add_bias) x = _mm256_add_ps(x, bias[v]);
      x = activate<kFwd>(x);
      if (kDact != 0) {
        const float* y = p.dact_y + i * p.ldy + 8 * v;
        const __m256 yv = whole ? _mm256_loadu_ps(y) : _mm256_maskload_ps(y, mask[v]);
        x = scale_by_derivative<kDact>(x, yv);
      }
      if (whole) {
        _mm256_storeu_ps(c + 8 * v, x);
      } else {
        _mm256_maskstore_ps(c + 8 * v, mask[v], x);
      }
    }
  }
}

// write_back for a run-time epilogue: act in 0..3, or 4 + d for the derivative d (see above).
template <int kRows, int kVecs, bool kBeta>
inline __attribute__((always_inline)) void write_back_as(int act,
                                                         const __m256 (&acc)[kRows][kVecs],
                                                         const UkernelArgs& p,
                                                         const __m256i (&mask)[kVecs],
                                                         bool full, bool last) {
  switch (act) {
    case 1: write_back<kRows, kVecs, 1, kBeta>(acc, p, mask, full, last); break;
    case 2: write_back<kRows, kVecs, 2, kBeta>(acc, p, mask, full, last); break;
    case 3: write_back<kRows, kVecs, 3, kBeta>(acc, p, mask, full, last); break;
    case 5: write_back<kRows, kVecs, 5, kBeta>(acc, p, mask, full, last); break;
    case 6: write_back<kRows, kVecs, 6, kBeta>(acc, p, mask, full, last); break;
    case 7: write_back<kRows, kVecs, 7, kBeta>(acc, p, mask, full, last); break;
    default: write_back<kRows, kVecs, 0, kBeta>(acc, p, mask, full, last); break;
  }
}

// kRows × (8·kVecs) tile. kRowMajorA: A(i, p) = a[i·a_rs + p]; else a[p·a_cs + i].
template <int kRows, int kVecs, bool kRowMajorA>
void tile(const UkernelArgs& p) {
  __m256 acc[kRows][kVecs];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_setzero_ps();

  const int64_t n = p.n;
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i mask[kVecs];
#pragma GCC unroll 2
  for (int v = 0; v < kVecs; ++v) {
    const int64_t left = n - 8 * v;
    mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left > 8 ? 8 : left)), iota);
  }
  const bool full = n == 8 * kVecs;
  // The tile's rows of C are needed only at the write-back, after the k loop: requested now,
  // their misses overlap the loop instead of stalling the write-back (rows of a large C lie
  // far apart, beyond the hardware prefetchers' reach).
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    __builtin_prefetch(p.c + i * p.ldc, 1, 3);
    if (kVecs == 2) __builtin_prefetch(p.c + i * p.ldc + 15, 1, 3);
  }

  const float* a = p.a;
  const float* b = p.b;
  const int64_t k = p.k, b_rs = p.b_rs, a_rs = p.a_rs, a_cs = p.a_cs;
  if (full) {
    for (int64_t q = 0; q < k; ++q) {
      __m256 bv[kVecs];
#pragma GCC unroll 2
      for (int v = 0; v < kVecs; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) {
        const __m256 ai = _mm256_broadcast_ss(kRowMajorA ? a + i * a_rs + q : a + q * a_cs + i);
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      b += b_rs;
    }
  } else {
    for (int64_t q = 0; q < k; ++q) {
      __m256 bv[kVecs];
#pragma GCC unroll 2
      for (int v = 0; v < kVecs; ++v) bv[v] = _mm256_maskload_ps(b + 8 * v, mask[v]);
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) {
        const __m256 ai = _mm256_broadcast_ss(kRowMajorA ? a + i * a_rs + q : a + q * a_cs + i);
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      b += b_rs;
    }
  }

  const bool last = p.last_k_block != 0;
  // The backward epilogue (dact_y) excludes a forward activation (checked by sgemm).
  const int act = !last ? 0 : (p.dact_y != nullptr ? 4 + p.dact : p.act);
  if (p.beta != 0.0f) {
    write_back_as<kRows, kVecs, true>(act, acc, p, mask, full, last);
  } else {
    write_back_as<kRows, kVecs, false>(act, acc, p, mask, full, last);
  }
}

typedef void (*TileFn)(const UkernelArgs&);

template <bool kRowMajorA>
void ukernel(const UkernelArgs* p) {
  static constexpr TileFn kTiles[kMr][kNv] = {
      {tile<1, 1, kRowMajorA>, tile<1, 2, kRowMajorA>},
      {tile<2, 1, kRowMajorA>, tile<2, 2, kRowMajorA>},
      {tile<3, 1, kRowMajorA>, tile<3, 2, kRowMajorA>},
      {tile<4, 1, kRowMajorA>, tile<4, 2, kRowMajorA>},
      {tile<5, 1, kRowMajorA>, tile<5, 2, kRowMajorA>},
      {tile<6, 1, kRowMajorA>, tile<6, 2, kRowMajorA>},
  };
  kTiles[p->m - 1][(p->n - 1) / 8](*p);
}

}  // namespace

// dst[p·nr + j] = b[p·ldb + j] for j < n (zero for n <= j < nr), p < k: two vectors a row
// (instead of a libc memcpy call per 64-byte row).
void sgemm_pack_b_rows_16_avx2(int64_t n, int64_t k, const float* b, int64_t ldb, float* dst) {
  static_assert(kNr == 16, "a row of the panel is two vectors");
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n) - 8), lane);
  for (int64_t p = 0; p < k; ++p) {
    const float* s = b + p * ldb;
    _mm256_storeu_ps(dst + p * kNr, _mm256_maskload_ps(s, m0));
    _mm256_storeu_ps(dst + p * kNr + 8, _mm256_maskload_ps(s + 8, m1));
  }
}

namespace {

// Lanes [0, count) of a maskload/maskstore mask, count in 0..8.
inline __m256i lanes(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// In-register transpose of 8 rows of 8 floats.
inline __attribute__((always_inline)) void transpose_8x8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    t[2 * g] = _mm256_unpacklo_ps(r[2 * g], r[2 * g + 1]);
    t[2 * g + 1] = _mm256_unpackhi_ps(r[2 * g], r[2 * g + 1]);
  }
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
    r[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
  }
}

// store_trans_body.inc's vocabulary (see there) on AVX2.
constexpr int kW = 8;
using V = __m256;
using M = __m256i;
inline V vload(const float* p, M m, bool whole) {
  return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
inline void vstore(float* p, V x, M m, bool whole) {
  if (whole) {
    _mm256_storeu_ps(p, x);  // (vmaskmov stores are microcoded on AMD)
  } else {
    _mm256_maskstore_ps(p, m, x);
  }
}
inline V vzero() { return _mm256_setzero_ps(); }
inline V vset1(float f) { return _mm256_set1_ps(f); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
inline __attribute__((always_inline)) void transpose(V (&r)[kW]) { transpose_8x8(r); }

#include "gemm/store_trans_body.inc"

}  // namespace

// dst[p·16 + j] = b[j·ldb + p] for j < n (zero for n <= j < 16), p < k: 8×8 blocks transposed
// in registers (the portable packing of a transposed B cost dY·Wᵀ at batch 64 a fifth more
// time than the same product with W as stored).
void sgemm_pack_b_trans_16_avx2(int64_t n, int64_t k, const float* b, int64_t ldb, float* dst) {
  for (int64_t p0 = 0; p0 < k; p0 += 8) {
    const int64_t kk = k - p0 < 8 ? k - p0 : 8;
    const __m256i kmask = lanes(kk);
    for (int64_t j0 = 0; j0 < kNr; j0 += 8) {
      const int64_t rows = n - j0 < 0 ? 0 : (n - j0 < 8 ? n - j0 : 8);
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        r[i] = i < rows ? _mm256_maskload_ps(b + (j0 + i) * ldb + p0, kmask)
                        : _mm256_setzero_ps();
      }
      transpose_8x8(r);
      float* d = dst + p0 * kNr + j0;
      for (int64_t q = 0; q < kk; ++q) _mm256_storeu_ps(d + q * kNr, r[q]);
    }
  }
}

// dst[p·6 + i] = a[i·lda + p] for i < m (zero for m <= i < 6), p < k: 8 k at a time, each block
// transposed in registers and stored as whole vectors in increasing p, so the two lanes past a
// column are overwritten by the next one (the last spills into the caller's slack).
void sgemm_pack_a_rows_avx2(int64_t m, int64_t k, const float* a, int64_t lda, float* dst) {
  static_assert(kMr <= 8, "a column of the panel must fit one vector");
  for (int64_t p0 = 0; p0 < k; p0 += 8) {
    const int64_t kk = k - p0 < 8 ? k - p0 : 8;
    const __m256i kmask = lanes(kk);
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      r[i] = i < m && i < kMr ? _mm256_maskload_ps(a + i * lda + p0, kmask) : _mm256_setzero_ps();
    transpose_8x8(r);
    float* d = dst + p0 * kMr;
    for (int64_t q = 0; q < kk; ++q) _mm256_storeu_ps(d + q * kMr, r[q]);
  }
}

void sgemm_store_trans_avx2(const StoreTransArgs* p) { store_trans_any(p); }

void sgemm_ukernel_6x16_avx2(const UkernelArgs* p) { ukernel<false>(p); }
void sgemm_ukernel_6x16_avx2_rowa(const UkernelArgs* p) { ukernel<true>(p); }

// kc·nr·4 = 16 KiB of B in L1 (32 KiB on Haswell-class cores); mc·kc·4 = 144 KiB of A in L2;
// nc·kc·4 = 4 MiB of B in L3.
extern const KernelInfo kKernelInfoAvx2 = {
    "avx2", kMr, kNr, /*kc=*/256, /*mc=*/144, /*nc=*/4080,
    sgemm_ukernel_6x16_avx2, sgemm_ukernel_6x16_avx2_rowa, sgemm_pack_b_trans_16_avx2,
    sgemm_pack_b_rows_16_avx2, sgemm_pack_a_rows_avx2, sgemm_store_trans_avx2};

}  // namespace gemm
}  // namespace densitron
