// The portable twin of the elementwise kernels: the same code as the SIMD paths with one float
// per "vector" (V = float, M = bool), built with the baseline flags. 2^k is built in the
// exponent field in two halves, as on AVX2.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

constexpr int64_t kW = 1;
using V = float;
using M = bool;

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline V vset(float f) { return f; }
inline V vload(const float* p) { return *p; }
inline void vstore(float* p, V v) { *p = v; }
inline V vload_n(const float* p, int64_t n, float fill) { return n > 0 ? *p : fill; }
inline void vstore_n(float* p, V v, int64_t n) {
  if (n > 0) *p = v;
}
inline V vfma(V a, V b, V c) { return a * b + c; }
inline V vmax(V a, V b) { return a > b ? a : b; }
inline V vmin(V a, V b) { return a < b ? a : b; }
inline V vsqrt(V a) { return std::sqrt(a); }
inline V vrsqrt(V a) { return 1.0f / std::sqrt(a); }
inline V vround(V a) { return std::nearbyint(a); }
inline V pow2i(int k) { return from_bits(static_cast<uint32_t>(k + 127) << 23); }
inline V vscale2(V p, V k) {
  if (k != k) return k;  // NaN
  const int ki = static_cast<int>(k);
  const int k1 = ki >> 1;  // floor(k / 2)
  return p * pow2i(k1) * pow2i(ki - k1);
}
inline V vand_bits(V a, uint32_t m) { return from_bits(bits(a) & m); }
inline V vxor(V a, V b) { return from_bits(bits(a) ^ bits(b)); }
// For finite a > 0, normal: the exponent e (as a float) and the mantissa m in [1, 2) of
// a = m·2^e.
inline V vexponent(V a) { return static_cast<float>(static_cast<int>(bits(a) >> 23) - 127); }
inline V vmantissa(V a) { return from_bits((bits(a) & 0x007fffffu) | 0x3f800000u); }
inline M lt(V a, V b) { return a < b; }
inline M le(V a, V b) { return a <= b; }
inline M gt(V a, V b) { return a > b; }
inline M ge(V a, V b) { return a >= b; }
inline M mand(M a, M b) { return a && b; }
inline int64_t first_lane(M m) { return m ? 0 : kW; }  // kW when none
inline V sel(M m, V t, V f) { return m ? t : f; }
inline float hsum(V a) { return a; }
inline float hmax(V a) { return a; }

// Dropout: the body's plain loop (see dropout there).
inline int64_t dropout_lanes(const float*, float*, int64_t, uint64_t, uint64_t, float, float,
                             bool) {
  return 0;
}

// Compressing stored values: the body's plain loop (see compress_stored there).
inline int64_t compress_lanes(const float*, int64_t, int32_t, int32_t*, float*, int64_t*) {
  return 0;
}

}  // namespace

#include "ops/elementwise_body.inc"

const ElementwiseKernels* elementwise_kernels_generic() { return &kKernels; }

}  // namespace densitron
