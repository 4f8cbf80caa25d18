// AVX-512F microkernels: an 8×32 register tile (16 zmm accumulators, two B vectors per k, A
// broadcast from memory). 12×32 was measured slower on 2048³: twelve C rows 8 KiB apart share
// one set of the 12-way L1. Row and column tails are exact: the row count is a template
// parameter and columns are masked, so no lane computes past the matrix. The epilogue (alpha,
// beta, bias, relu/sigmoid/tanh) is fused into the write-back.
// Compiled with AVX-512 flags: includes only <immintrin.h>, kernel_info.h and
// store_trans_body.inc (compiled into this file's anonymous namespace: no shared inline).
#include <immintrin.h>

#include <cstdint>

#include "gemm/kernel_info.h"

// GCC 12 reports its own intrinsic headers (`__m512 __Y = __Y;`) as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace densitron {
namespace gemm {
namespace {

constexpr int kMr = 8;
constexpr int kNr = 32;
constexpr int kNv = kNr / 16;

// exp(x) for x in float range: 2^n · P(r), |r| <= ln2/2, degree-6 polynomial (~1 ulp).
__m512 exp_ps(__m512 x) {
  // Clamped with x as the second operand, which min/max return when it is NaN: NaN stays NaN.
  x = _mm512_max_ps(_mm512_set1_ps(-88.0f), _mm512_min_ps(_mm512_set1_ps(88.5f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// kAct: EpilogueAct as int, a template parameter so the write-back has no branch per vector.
template <int kAct>
inline __attribute__((always_inline)) __m512 activate(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  switch (kAct) {
    case 1:  // relu
      return _mm512_max_ps(_mm512_setzero_ps(), x);  // relu(NaN) = NaN, as Keras
    case 2:  // sigmoid: 1 / (1 + e^-x)
      return _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    case 3: {  // tanh: sign(x)·(1 - e)/(1 + e), e = e^(-2|x|); odd Taylor series near 0
      const __m512 ax = _mm512_abs_ps(x);
      const __m512 e = exp_ps(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0f)));
      __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
      const __m512 x2 = _mm512_mul_ps(x, x);
      __m512 s = _mm512_fmadd_ps(x2, _mm512_set1_ps(-17.0f / 315.0f), _mm512_set1_ps(2.0f / 15.0f));
      s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-1.0f / 3.0f));
      s = _mm512_fmadd_ps(_mm512_mul_ps(s, x2), ax, ax);
      t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.0625f), _CMP_LT_OQ), t, s);
      // copy the sign of x
      return _mm512_castsi512_ps(_mm512_or_si512(
          _mm512_castps_si512(t),
          _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int32_t(0x80000000u)))));
    }
    default:
      return x;
  }
}

// g · act'(y) for act as int (see gemm.h), the same operations as the engine's backward.
template <int kDact>
inline __attribute__((always_inline)) __m512 scale_by_derivative(__m512 g, __m512 y) {
  const __m512 one = _mm512_set1_ps(1.0f);
  switch (kDact) {
    case 1:
      return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), g);
    case 2:
      return _mm512_mul_ps(g, _mm512_mul_ps(y, _mm512_sub_ps(one, y)));
    case 3:
      return _mm512_mul_ps(g, _mm512_sub_ps(one, _mm512_mul_ps(y, y)));
    default:
      return g;
  }
}

// C = act(alpha·acc + beta·C + bias) for one tile, kAct in 0..3; or, for kAct = 4 + d, the
// backward epilogue C = (alpha·acc + beta·C + bias) · d'(Y). kBeta false: C is not read.
template <int kRows, int kVecs, int kAct, bool kBeta>
inline __attribute__((always_inline)) void write_back(const __m512 (&acc)[kRows][kVecs],
                                                      const UkernelArgs& p,
                                                      const __mmask16 (&mask)[kVecs], bool full,
                                                      bool last) {
  const __m512 alpha = _mm512_set1_ps(p.alpha);
  const __m512 beta = _mm512_set1_ps(p.beta);
  const bool add_bias = last && p.bias != nullptr;
  constexpr int kFwd = kAct < 4 ? kAct : 0, kDact = kAct < 4 ? 0 : kAct - 4;
  __m512 bias[kVecs];
#pragma GCC unroll 4
  for (int v = 0; v < kVecs; ++v) {
    bias[v] = add_bias ? _mm512_maskz_loadu_ps(mask[v], p.bias + 16 * v) : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
    float* c = p.c + i * p.ldc;
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      // Masked stores are slow on some cores (AMD), above all across cache lines: full
      // vectors use plain loads and stores.
      const bool whole = full || v + 1 < kVecs;
      __m512 x = _mm512_mul_ps(alpha, acc[i][v]);
      if (kBeta) {
        const __m512 c0 =
            whole ? _mm512_loadu_ps(c + 16 * v) : _mm512_maskz_loadu_ps(mask[v], c + 16 * v);
        x = _mm512_fmadd_ps(beta, c0, x);
      }
      if (add_bias) x = _mm512_add_ps(x, bias[v]);
      x = activate<kFwd>(x);
      if (kDact != 0) {
        const float* y = p.dact_y + i * p.ldy + 16 * v;
        const __m512 yv = whole ? _mm512_loadu_ps(y) : _mm512_maskz_loadu_ps(mask[v], y);
        x = scale_by_derivative<kDact>(x, yv);
      }
      if (whole) {
        _mm512_storeu_ps(c + 16 * v, x);
      } else {
        _mm512_mask_storeu_ps(c + 16 * v, mask[v], x);
      }
    }
  }
}

// write_back for a run-time epilogue: act in 0..3, or 4 + d for the derivative d (see above).
template <int kRows, int kVecs, bool kBeta>
inline __attribute__((always_inline)) void write_back_as(int act,
                                                         const __m512 (&acc)[kRows][kVecs],
                                                         const UkernelArgs& p,
                                                         const __mmask16 (&mask)[kVecs],
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

// kRows × (16·kVecs) tile. kRowMajorA: A(i, p) = a[i·a_rs + p]; else a[p·a_cs + i].
template <int kRows, int kVecs, bool kRowMajorA>
void tile(const UkernelArgs& p) {
  __m512 acc[kRows][kVecs];
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_ps();

  const int64_t n = p.n;
  __mmask16 mask[kVecs];
#pragma GCC unroll 4
  for (int v = 0; v < kVecs; ++v) {
    const int64_t left = n - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
  }
  const bool full = n == 16 * kVecs;

  // Start fetching the C tile now so the write-back does not wait on it.
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
    const char* row = reinterpret_cast<const char*>(p.c + i * p.ldc);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(row + 64 * kVecs - 1, _MM_HINT_T0);
  }

  const float* a = p.a;
  const float* b = p.b;
  const int64_t k = p.k, b_rs = p.b_rs, a_rs = p.a_rs, a_cs = p.a_cs;
  if (full) {
    for (int64_t q = 0; q < k; ++q) {
      __m512 bv[kVecs];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i) {
        const __m512 ai = _mm512_set1_ps(kRowMajorA ? a[i * a_rs + q] : a[q * a_cs + i]);
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      b += b_rs;
    }
  } else {
    for (int64_t q = 0; q < k; ++q) {
      __m512 bv[kVecs];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < kRows; ++i) {
        const __m512 ai = _mm512_set1_ps(kRowMajorA ? a[i * a_rs + q] : a[q * a_cs + i]);
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
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
      {tile<7, 1, kRowMajorA>, tile<7, 2, kRowMajorA>},
      {tile<8, 1, kRowMajorA>, tile<8, 2, kRowMajorA>},
  };
  kTiles[p->m - 1][(p->n - 1) / 16](*p);
}

// In-register transpose of 16 rows of 16 floats (unpack, shuffle, two 128-bit lane shuffles).
inline __attribute__((always_inline)) void transpose_16x16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    t[2 * g] = _mm512_unpacklo_ps(r[2 * g], r[2 * g + 1]);
    t[2 * g + 1] = _mm512_unpackhi_ps(r[2 * g], r[2 * g + 1]);
  }
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    t[8 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
  }
}

}  // namespace

// dst[p·32 + j] = b[j·ldb + p] for j < n (zero for n <= j < 32), p < k: 16×16 blocks.
void sgemm_pack_b_trans_32_avx512(int64_t n, int64_t k, const float* b, int64_t ldb,
                                  float* dst) {
  for (int64_t p0 = 0; p0 < k; p0 += 16) {
    const int64_t kk = k - p0 < 16 ? k - p0 : 16;
    const __mmask16 kmask = kk == 16 ? __mmask16(0xFFFF) : __mmask16((1u << kk) - 1u);
    for (int64_t j0 = 0; j0 < kNr; j0 += 16) {
      const int64_t rows = n - j0 < 0 ? 0 : (n - j0 < 16 ? n - j0 : 16);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        r[i] = i < rows ? _mm512_maskz_loadu_ps(kmask, b + (j0 + i) * ldb + p0)
                        : _mm512_setzero_ps();
      }
      transpose_16x16(r);
      float* d = dst + p0 * kNr + j0;
      if (kk == 16) {
#pragma GCC unroll 16
        for (int q = 0; q < 16; ++q) _mm512_storeu_ps(d + q * kNr, r[q]);
      } else {
        for (int64_t q = 0; q < kk; ++q) _mm512_storeu_ps(d + q * kNr, r[q]);
      }
    }
  }
}

namespace {

// store_trans_body.inc's vocabulary (see there) on AVX-512.
constexpr int kW = 16;
using V = __m512;
using M = __mmask16;
inline M lanes(int64_t n) { return n >= 16 ? M(0xFFFF) : M((1u << n) - 1u); }
inline V vload(const float* p, M m, bool whole) {
  return whole ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
inline void vstore(float* p, V x, M m, bool whole) {
  if (whole) {
    _mm512_storeu_ps(p, x);
  } else {
    _mm512_mask_storeu_ps(p, m, x);
  }
}
inline V vzero() { return _mm512_setzero_ps(); }
inline V vset1(float f) { return _mm512_set1_ps(f); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline __attribute__((always_inline)) void transpose(V (&r)[kW]) { transpose_16x16(r); }

#include "gemm/store_trans_body.inc"

}  // namespace

void sgemm_store_trans_avx512(const StoreTransArgs* p) { store_trans_any(p); }

// dst[p·nr + j] = b[p·ldb + j] for j < n (zero for n <= j < nr), p < k: two vectors a row, the
// row eight ahead requested meanwhile (libc's memcpy of each 128-byte row cost more than the
// copy: a 64×256 by 256×256 product spent a fifth of its time packing B).
void sgemm_pack_b_rows_32_avx512(int64_t n, int64_t k, const float* b, int64_t ldb,
                                 float* dst) {
  static_assert(kNr == 32, "a row of the panel is two vectors");
  const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
  const __mmask16 m1 =
      n >= 32 ? __mmask16(0xFFFF) : (n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1u));
  for (int64_t p = 0; p < k; ++p) {
    const float* s = b + p * ldb;
    if (p + 8 < k) {
      _mm_prefetch(reinterpret_cast<const char*>(s + 8 * ldb), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(s + 8 * ldb + 16), _MM_HINT_T0);
    }
    _mm512_storeu_ps(dst + p * kNr, _mm512_maskz_loadu_ps(m0, s));
    _mm512_storeu_ps(dst + p * kNr + 16, _mm512_maskz_loadu_ps(m1, s + 16));
  }
}

// dst[p·mr + i] = a[i·lda + p] for i < m (zero for m <= i < mr), p < k: 16 k at a time, each
// block transposed in registers and stored as whole vectors in increasing p, so the 16 - mr
// lanes past a column are overwritten by the next one (the last spills into the caller's slack).
void sgemm_pack_a_rows_avx512(int64_t m, int64_t k, const float* a, int64_t lda, float* dst) {
  static_assert(kMr <= 16, "a column of the panel must fit one vector");
  for (int64_t p0 = 0; p0 < k; p0 += 16) {
    const int64_t kk = k - p0 < 16 ? k - p0 : 16;
    const __mmask16 kmask = kk == 16 ? __mmask16(0xFFFF) : __mmask16((1u << kk) - 1u);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      if (i < m) _mm_prefetch(reinterpret_cast<const char*>(a + i * lda + p0 + 64), _MM_HINT_T0);
      r[i] = i < m ? _mm512_maskz_loadu_ps(kmask, a + i * lda + p0) : _mm512_setzero_ps();
    }
    transpose_16x16(r);
    float* d = dst + p0 * kMr;
    if (kk == 16) {
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) _mm512_storeu_ps(d + q * kMr, r[q]);
    } else {
      for (int64_t q = 0; q < kk; ++q) _mm512_storeu_ps(d + q * kMr, r[q]);
    }
  }
}

void sgemm_ukernel_8x32_avx512(const UkernelArgs* p) { ukernel<false>(p); }
void sgemm_ukernel_8x32_avx512_rowa(const UkernelArgs* p) { ukernel<true>(p); }

// kc·nr·4 = 32 KiB of B in L1 (48 KiB); mc·kc·4 = 256 KiB of A in L2 (1 MiB);
// nc·kc·4 = 4 MiB of B in the shared L3.
extern const KernelInfo kKernelInfoAvx512 = {
    "avx512", kMr, kNr, /*kc=*/256, /*mc=*/256, /*nc=*/4096,
    sgemm_ukernel_8x32_avx512, sgemm_ukernel_8x32_avx512_rowa, sgemm_pack_b_trans_32_avx512,
    sgemm_pack_b_rows_32_avx512, sgemm_pack_a_rows_avx512, sgemm_store_trans_avx512};

}  // namespace gemm
}  // namespace densitron
