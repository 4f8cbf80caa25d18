// Test builds only (CMake's DENSITRON_EMULATE_AVX512): the AVX-512 kernel files, compiled for
// AVX2 + FMA, get this header before their own code (-include), so their _mm512_* intrinsics
// run as SIMDe's portable code (its native aliases) and the C++ tests check those kernels on a
// CPU without AVX-512. Never part of the wheel.
//
// GCC's <immintrin.h> comes first: SIMDe then takes its __m512 / __mmask16 types as its own,
// and the kernels' later #include <immintrin.h> adds nothing. An intrinsic that neither SIMDe
// nor this header aliases stays GCC's always-inline AVX-512 function, which fails to compile
// for this target ("target specific option mismatch"): a gap is a build error, never an
// AVX-512 instruction at run time.
//
// Below, the intrinsics the kernels use that SIMDe 0.7.4 lacks, and _mm512_scalef_ps, whose
// SIMDe form (a · exp2(floor(b)), subnormal inputs flushed) overflows where a · 2^n does not
// (0.75 · 2^128) and rounds twice below the normal range. Each is the lane-by-lane definition
// in Intel's manual (special values included), not a fast form: the emulated tests check the
// kernels' logic, not their speed. Where the hardware gives an approximation (vrsqrt14ps) this
// gives one no better than the manual's bound, so a kernel leaning on more accuracy fails here.
#ifndef DENSITRON_CPU_AVX512_EMULATION_H_
#define DENSITRON_CPU_AVX512_EMULATION_H_

#include <immintrin.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace densitron_avx512_emulation {

struct Lanes {
  float f[16];
};
inline Lanes lanes(__m512 v) {
  Lanes l;
  std::memcpy(l.f, &v, sizeof(l.f));
  return l;
}
inline __m512 vector(const Lanes& l) {
  __m512 v;
  std::memcpy(&v, l.f, sizeof(l.f));
  return v;
}
inline bool lane_on(__mmask16 k, int i) { return (k >> i) & 1; }

// Masked loads and stores touch only the lanes that are on (the hardware suppresses faults
// on the others: a tail load must not read past the end of an array).
inline __m512 mask_loadu_ps(__m512 src, __mmask16 k, const void* p) {
  Lanes l = lanes(src);
  const char* bytes = static_cast<const char*>(p);
  for (int i = 0; i < 16; ++i) {
    if (lane_on(k, i)) std::memcpy(&l.f[i], bytes + 4 * i, 4);
  }
  return vector(l);
}
inline __m512 maskz_loadu_ps(__mmask16 k, const void* p) {
  return mask_loadu_ps(_mm512_setzero_ps(), k, p);
}
inline void mask_storeu_ps(void* p, __mmask16 k, __m512 v) {
  const Lanes l = lanes(v);
  char* bytes = static_cast<char*>(p);
  for (int i = 0; i < 16; ++i) {
    if (lane_on(k, i)) std::memcpy(bytes + 4 * i, &l.f[i], 4);
  }
}

// GCC's own order (avx512fintrin.h's __MM512_REDUCE_OP): the upper eight lanes onto the lower
// eight, then four onto four, then lanes {2, 3} onto {0, 1}, then lane 1 onto lane 0. The same
// additions in the same order give the same bits as the native build.
inline float reduce_add_ps(__m512 v) {
  const Lanes l = lanes(v);
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = l.f[i + 8] + l.f[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  const float t0 = t4[0] + t4[2], t1 = t4[1] + t4[3];
  return t0 + t1;
}
// maxps(a, b): a when a > b, else b (so b when either is NaN), as GCC's tree of _mm*_max_ps.
inline float maxps(float a, float b) { return a > b ? a : b; }
inline float reduce_max_ps(__m512 v) {
  const Lanes l = lanes(v);
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = maxps(l.f[i + 8], l.f[i]);
  for (int i = 0; i < 4; ++i) t4[i] = maxps(t8[i + 4], t8[i]);
  const float t0 = maxps(t4[0], t4[2]), t1 = maxps(t4[1], t4[3]);
  return maxps(t0, t1);
}

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// vscalefps: a · 2^floor(b), one rounding. NaN in either gives NaN; 0 · 2^+inf and
// inf · 2^-inf are invalid (NaN).
inline float scalef(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return a + b;
  if (std::isinf(b)) {
    if (b > 0) return a == 0.0f ? kNaN : std::copysign(kInf, a);
    return std::isinf(a) ? kNaN : std::copysign(0.0f, a);
  }
  const float n = std::floor(b);
  const int e = n > 1000.0f ? 1000 : n < -1000.0f ? -1000 : static_cast<int>(n);
  return std::scalbn(a, e);
}
inline __m512 scalef_ps(__m512 a, __m512 b) {
  Lanes x = lanes(a);
  const Lanes y = lanes(b);
  for (int i = 0; i < 16; ++i) x.f[i] = scalef(x.f[i], y.f[i]);
  return vector(x);
}

// vgetexpps: floor(log2 |a|) as a float; -inf for ±0, +inf for ±inf, NaN for NaN. (The
// comparison with zero is an SSE one, so it sees a subnormal as zero under MXCSR.DAZ, as
// the hardware does.)
inline __m512 getexp_ps(__m512 a) {
  Lanes x = lanes(a);
  for (float& v : x.f) {
    if (std::isnan(v)) v = v + v;
    else if (v == 0.0f) v = -kInf;
    else if (std::isinf(v)) v = kInf;
    else v = static_cast<float>(std::ilogb(v));
  }
  return vector(x);
}

// vgetmantps for the interval [1, 2) (the only one the kernels use; others do not compile):
// |a| = m · 2^e with m in [1, 2); m with a's sign (_MM_MANT_SIGN_src), without it (zero), or NaN
// for a negative a (nan). ±0 and ±inf give 1 (signed as m), NaN gives NaN.
template <int kInterval, int kSign>
inline __m512 getmant_ps(__m512 a) {
  static_assert(kInterval == _MM_MANT_NORM_1_2, "emulated getmant: only _MM_MANT_NORM_1_2");
  Lanes x = lanes(a);
  for (float& v : x.f) {
    if (std::isnan(v)) {
      v = v + v;
      continue;
    }
    const bool negative = std::signbit(v);
    if (negative && kSign == _MM_MANT_SIGN_nan) {
      v = kNaN;
      continue;
    }
    int e = 0;
    float m = (v == 0.0f || std::isinf(v)) ? 1.0f : 2.0f * std::frexp(std::fabs(v), &e);
    if (negative && kSign == _MM_MANT_SIGN_src) m = -m;
    v = m;
  }
  return vector(x);
}

// vrsqrt14ps: 1/sqrt(a) within a relative error of 2^-14. Here the exact value with its
// significand cut to 14 bits, an error up to (but under) that bound, where the hardware's is
// often smaller. +0 → +inf, -0 → -inf, a < 0 → NaN, +inf → +0.
inline __m512 rsqrt14_ps(__m512 a) {
  Lanes x = lanes(a);
  for (float& v : x.f) {
    if (std::isnan(v)) v = v + v;
    else if (v == 0.0f) v = std::copysign(kInf, v);
    else if (v < 0.0f) v = kNaN;
    else if (std::isinf(v)) v = 0.0f;
    else {
      float r = static_cast<float>(1.0 / std::sqrt(static_cast<double>(v)));
      uint32_t bits;
      std::memcpy(&bits, &r, 4);
      bits &= ~((1u << (23 - 14)) - 1u);
      std::memcpy(&r, &bits, 4);
      v = r;
    }
  }
  return vector(x);
}

}  // namespace densitron_avx512_emulation

#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps(src, k, p) densitron_avx512_emulation::mask_loadu_ps(src, k, p)
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps(k, p) densitron_avx512_emulation::maskz_loadu_ps(k, p)
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps(p, k, v) densitron_avx512_emulation::mask_storeu_ps(p, k, v)
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps(v) densitron_avx512_emulation::reduce_add_ps(v)
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps(v) densitron_avx512_emulation::reduce_max_ps(v)
#undef _mm512_scalef_ps
#define _mm512_scalef_ps(a, b) densitron_avx512_emulation::scalef_ps(a, b)
#undef _mm512_getexp_ps
#define _mm512_getexp_ps(a) densitron_avx512_emulation::getexp_ps(a)
#undef _mm512_getmant_ps
#define _mm512_getmant_ps(a, interval, sign) \
  densitron_avx512_emulation::getmant_ps<(interval), (sign)>(a)
#undef _mm512_rsqrt14_ps
#define _mm512_rsqrt14_ps(a) densitron_avx512_emulation::rsqrt14_ps(a)
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4(a, b, imm8) simde_mm512_shuffle_f32x4(a, b, imm8)

#endif  // DENSITRON_CPU_AVX512_EMULATION_H_
