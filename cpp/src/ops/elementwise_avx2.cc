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
constexpr bool kFusedFma = true;
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
inline int64_t first_lane(M m) {  // kW when none
  const int bits = _mm256_movemask_ps(m);
  return bits ? __builtin_ctz(static_cast<unsigned>(bits)) : kW;
}
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

// Dropout's hash (see dropout in the body) on 4 lanes of 64 bits: AVX2 multiplies 32-bit
// halves, so a 64-bit product is lo·lo + ((hi·lo + lo·hi) << 32).
inline __m256i mul64(__m256i a, __m256i b) {
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                         _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}
inline __m256i mix64_lanes(__m256i z) {
  z = _mm256_add_epi64(z, _mm256_set1_epi64x(static_cast<int64_t>(0x9e3779b97f4a7c15ull)));
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)),
            _mm256_set1_epi64x(static_cast<int64_t>(0xbf58476d1ce4e5b9ull)));
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)),
            _mm256_set1_epi64x(static_cast<int64_t>(0x94d049bb133111ebull)));
  return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}
// Dropout's uniforms (uniform_at in the body) 8 at a time: the stream's states base + (first +
// i)·kGolden for 4 lanes in each of two vectors, stepped by 8·kGolden.
inline int64_t dropout_lanes(const float* x, float* y, int64_t n, uint64_t base, uint64_t first,
                             float rate, float scale, bool accumulate) {
  constexpr uint64_t kGold = 0x9e3779b97f4a7c15ull;
  auto state = [&](uint64_t i) { return static_cast<int64_t>(base + (first + i) * kGold); };
  __m256i s0 = _mm256_set_epi64x(state(3), state(2), state(1), state(0));
  __m256i s1 = _mm256_set_epi64x(state(7), state(6), state(5), state(4));
  const __m256i step = _mm256_set1_epi64x(static_cast<int64_t>(8 * kGold));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h0 = _mm256_srli_epi64(mix64_lanes(s0), 40);
    const __m256i h1 = _mm256_srli_epi64(mix64_lanes(s1), 40);
    s0 = _mm256_add_epi64(s0, step);
    s1 = _mm256_add_epi64(s1, step);
    // the low halves of both hash vectors' lanes, in index order
    const __m256 lo = _mm256_shuffle_ps(_mm256_castsi256_ps(h0), _mm256_castsi256_ps(h1), 0x88);
    const __m256i h = _mm256_permute4x64_epi64(_mm256_castps_si256(lo), 0xd8);
    const V u = (_mm256_cvtepi32_ps(h) + 0.5f) * (1.0f / 16777216.0f);
    const V v = _mm256_and_ps(_mm256_cmp_ps(u, vset(rate), _CMP_GE_OQ), vload(x + i) * scale);
    vstore(y + i, accumulate ? vload(y + i) + v : v);
  }
  return i;
}

// Bytes as lanes and back (small integers held as floats: a pooling window's routed taps).
inline V ld_u8(const uint8_t* p, int64_t l) {
  int64_t b = 0;
  __builtin_memcpy(&b, p, l == kW ? 8 : l);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(b)));
}
inline void st_u8(uint8_t* p, V v, int64_t l) {
  const __m256i i = _mm256_cvtps_epi32(v);
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  const int64_t b = _mm_cvtsi128_si64(_mm_packus_epi16(w, w));
  __builtin_memcpy(p, &b, l == kW ? 8 : l);
}

// Compressing stored values: the body's plain loop (see compress_stored there).
inline int64_t compress_lanes(const float*, int64_t, int32_t, int32_t*, float*, int64_t*) {
  return 0;
}

}  // namespace

#include "ops/elementwise_body.inc"

const ElementwiseKernels* elementwise_kernels_avx2() { return &kKernels; }

}  // namespace densitron
