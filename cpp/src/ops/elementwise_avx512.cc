// The elementwise kernels (activations, softmax rows, optimizer updates) for AVX-512F/DQ/BW/VL:
// 16 lanes, masked tails, vscalefps for 2^k. Compiled with AVX-512 flags; includes nothing but
// <immintrin.h>, <cstdint> and plain declarations (see elementwise_body.inc).
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

constexpr int64_t kW = 16;
constexpr bool kFusedFma = true;
using V = __m512;
using M = __mmask16;

inline V vset(float f) { return _mm512_set1_ps(f); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm512_storeu_ps(p, v); }
inline M tail_mask(int64_t n) { return static_cast<M>((1u << n) - 1u); }
inline V vload_n(const float* p, int64_t n, float fill) {
  return _mm512_mask_loadu_ps(vset(fill), tail_mask(n), p);
}
inline void vstore_n(float* p, V v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
inline V vmin(V a, V b) { return _mm512_min_ps(a, b); }
inline V vsqrt(V a) { return _mm512_sqrt_ps(a); }
// 1/sqrt(a) for finite a > 0: the 14-bit estimate and one Newton step (~1 ulp), several
// times cheaper than a square root and a division.
inline V vrsqrt(V a) {
  const V y = _mm512_rsqrt14_ps(a);
  return _mm512_mul_ps(y, _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), a),
                                           _mm512_mul_ps(y, y), _mm512_set1_ps(1.5f)));
}
inline V vround(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V vscale2(V p, V k) { return _mm512_scalef_ps(p, k); }
inline V vand_bits(V a, uint32_t m) {
  return _mm512_castsi512_ps(
      _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(static_cast<int>(m))));
}
inline V vxor(V a, V b) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
// For finite a > 0, normal: the exponent e (as a float) and the mantissa m in [1, 2) of
// a = m·2^e.
inline V vexponent(V a) { return _mm512_getexp_ps(a); }
inline V vmantissa(V a) { return _mm512_getmant_ps(a, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero); }
inline M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline M ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
inline M mand(M a, M b) { return static_cast<M>(a & b); }
inline int64_t first_lane(M m) { return m ? __builtin_ctz(m) : kW; }  // kW when none
inline V sel(M m, V t, V f) { return _mm512_mask_blend_ps(m, f, t); }
inline float hsum(V a) { return _mm512_reduce_add_ps(a); }
inline float hmax(V a) { return _mm512_reduce_max_ps(a); }

// Bytes as lanes and back (small integers held as floats: a pooling window's routed taps).
inline V ld_u8(const uint8_t* p, int64_t l) {
  const __m128i b = l == kW ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                            : _mm_maskz_loadu_epi8(tail_mask(l), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
}
inline void st_u8(uint8_t* p, V v, int64_t l) {
  const __m128i b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));
  if (l == kW) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), b);
  } else {
    _mm_mask_storeu_epi8(p, tail_mask(l), b);
  }
}

// Dropout: the body's plain loop, which this build vectorises (see dropout there).
inline int64_t dropout_lanes(const float*, float*, int64_t, uint64_t, uint64_t, float, float,
                             bool) {
  return 0;
}

// Compressing stored values: whole blocks of 16 by vcompressps (values) and vpcompressd (their
// positions), the count by popcount; returns the values handled (the body does the tail).
inline int64_t compress_lanes(const float* x, int64_t n, int32_t base, int32_t* idx, float* val,
                              int64_t* count) {
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), step = _mm512_set1_epi32(16);
  __m512i pos = _mm512_add_epi32(_mm512_set1_epi32(base),
                                 _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                   13, 14, 15));
  int64_t c = *count, j = 0;
  for (; j + 16 <= n; j += 16, pos = _mm512_add_epi32(pos, step)) {
    const __m512i v = _mm512_loadu_si512(x + j);
    const __mmask16 m = _mm512_test_epi32_mask(v, abs);
    if (m == 0) continue;
    _mm512_mask_compressstoreu_epi32(val + c, m, v);
    _mm512_mask_compressstoreu_epi32(idx + c, m, pos);
    c += __builtin_popcount(m);
  }
  *count = c;
  return j;
}

}  // namespace

#include "ops/elementwise_body.inc"

const ElementwiseKernels* elementwise_kernels_avx512() { return &kKernels; }

}  // namespace densitron
