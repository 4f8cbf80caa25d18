// The elementwise kernels (activations, softmax rows, optimizer updates) for AVX2+FMA: 8 lanes,
// vmaskmov tails, 2^k built in the exponent field in two halves (so underflow to subnormals and
// overflow to inf round correctly). Compiled with -mavx2 -mfma; includes nothing but
// <immintrin.h>, <cstdint> and plain declarations (see elementwise_body.inc).
#include <immintrin.h>

#include <cstdint>

#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

constexpr int64_t kW = 8;
using V = __m256;
using M = __m256;

inline V vset(float f) { return _mm256_set1_ps(f); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline V vload_n(const float* p, int64_t n, float fill) {
  const __m256i m = tail_mask(n);
  return _mm256_blendv_ps(vset(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
inline void vstore_n(float* p, V v, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
inline V vmin(V a, V b) { return _mm256_min_ps(a, b); }
inline V vsqrt(V a) { return _mm256_sqrt_ps(a); }
// 1/sqrt(a) for finite a > 0: the 12-bit estimate and one Newton step (~2 ulps).
inline V vrsqrt(V a) {
  const V y = _mm256_rsqrt_ps(a);
  return _mm256_mul_ps(y, _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), a),
                                           _mm256_mul_ps(y, y), _mm256_set1_ps(1.5f)));
}
inline V vround(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V pow2i(V k) {  // 2^k for integral k in [-126, 127]
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
inline V vscale2(V p, V k) {
  const V k1 = _mm256_floor_ps(k * 0.5f);
  return p * pow2i(k1) * pow2i(k - k1);
}
inline V vand_bits(V a, uint32_t m) {
  return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(m))));
}
inline V vxor(V a, V b) { return _mm256_xor_ps(a, b); }
// For finite a > 0, normal: the exponent e (as a float) and the mantissa m in [1, 2) of
// a = m·2^e.
inline V vexponent(V a) {
  const __m256i e = _mm256_srli_epi32(_mm256_castps_si256(a), 23);
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(e, _mm256_set1_epi32(127)));
}
inline V vmantissa(V a) { return vxor(vand_bits(a, 0x007fffffu), _mm256_set1_ps(1.0f)); }
inline M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline M ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
inline M mand(M a, M b) { return _mm256_and_ps(a, b); }
inline V sel(M m, V t, V f) { return _mm256_blendv_ps(f, t, m); }
inline float hsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(V a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

#include "ops/elementwise_body.inc"

const ElementwiseKernels* elementwise_kernels_avx2() { return &kKernels; }

}  // namespace densitron
