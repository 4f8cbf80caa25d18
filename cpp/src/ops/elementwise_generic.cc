// The portable twin of the elementwise kernels, built with the baseline flags. Under GCC and
// Clang its vector is four floats of the compilers' vector extension (SSE on x86-64, NEON on
// AArch64: the ARM build's path), each primitive the scalar form's arithmetic lane by lane
// (only reductions across lanes add in another order); other compilers get the scalar form
// (V = float, M = bool; also built so with -DDENSITRON_SCALAR_ELEMENTWISE, as CI does). 2^k
// is built in the exponent field in two halves, as on AVX2.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

#if (defined(__GNUC__) || defined(__clang__)) && !defined(DENSITRON_SCALAR_ELEMENTWISE)

constexpr int64_t kW = 4;
constexpr bool kFusedFma = false;  // vfma rounds the product
typedef float V __attribute__((vector_size(16)));
typedef int32_t M __attribute__((vector_size(16)));  // lane masks: -1 true, 0 false
using VI = M;
// (GCC left the lane loops of vsqrt and vround as calls, a third of rmsprop's speed.)
#define ALWAYS_INLINE inline __attribute__((always_inline))

ALWAYS_INLINE V vset(float f) { return V{f, f, f, f}; }
ALWAYS_INLINE V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
ALWAYS_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof v); }
ALWAYS_INLINE V vload_n(const float* p, int64_t n, float fill) {
  V v = vset(fill);
  for (int64_t i = 0; i < n && i < kW; ++i) v[i] = p[i];
  return v;
}
ALWAYS_INLINE void vstore_n(float* p, V v, int64_t n) {
  for (int64_t i = 0; i < n && i < kW; ++i) p[i] = v[i];
}
ALWAYS_INLINE V vfma(V a, V b, V c) { return a * b + c; }
ALWAYS_INLINE V sel(M m, V t, V f) { return m ? t : f; }  // a blend, per lane
ALWAYS_INLINE M lt(V a, V b) { return a < b; }
ALWAYS_INLINE M le(V a, V b) { return a <= b; }
ALWAYS_INLINE M gt(V a, V b) { return a > b; }
ALWAYS_INLINE M ge(V a, V b) { return a >= b; }
ALWAYS_INLINE M mand(M a, M b) { return a & b; }
ALWAYS_INLINE V vmax(V a, V b) { return a > b ? a : b; }
ALWAYS_INLINE V vmin(V a, V b) { return a < b ? a : b; }
ALWAYS_INLINE V vsqrt(V a) {
  for (int i = 0; i < kW; ++i) a[i] = std::sqrt(a[i]);
  return a;
}
ALWAYS_INLINE V vrsqrt(V a) { return vset(1.0f) / vsqrt(a); }
ALWAYS_INLINE V vround(V a) {
  for (int i = 0; i < kW; ++i) a[i] = std::nearbyint(a[i]);
  return a;
}
ALWAYS_INLINE V pow2i(VI k) { return (V)((k + 127) << 23); }
ALWAYS_INLINE V vscale2(V p, V k) {
  const M num = k == k;
  const VI ki = __builtin_convertvector(sel(num, k, vset(0.0f)), VI);
  const VI k1 = ki >> 1;  // floor(k / 2)
  return sel(num, p * pow2i(k1) * pow2i(ki - k1), k);
}
ALWAYS_INLINE V vand_bits(V a, uint32_t m) { return (V)((VI)a & static_cast<int32_t>(m)); }
ALWAYS_INLINE V vxor(V a, V b) { return (V)((VI)a ^ (VI)b); }
// For finite a > 0, normal: the exponent e (as a float) and the mantissa m in [1, 2) of
// a = m·2^e.
ALWAYS_INLINE V vexponent(V a) { return __builtin_convertvector(((VI)a >> 23) - 127, V); }
ALWAYS_INLINE V vmantissa(V a) { return (V)(((VI)a & 0x007fffff) | 0x3f800000); }
ALWAYS_INLINE int64_t first_lane(M m) {  // kW when none
  for (int i = 0; i < kW; ++i) {
    if (m[i]) return i;
  }
  return kW;
}
ALWAYS_INLINE float hsum(V a) { return (a[0] + a[2]) + (a[1] + a[3]); }
ALWAYS_INLINE float hmax(V a) {
  const V h = vmax(a, V{a[2], a[3], a[2], a[3]});
  return h[0] > h[1] ? h[0] : h[1];
}
// Bytes as lanes and back (small integers held as floats: a pooling window's routed taps).
ALWAYS_INLINE V ld_u8(const uint8_t* p, int64_t l) {
  V v = vset(0.0f);
  for (int64_t i = 0; i < l && i < kW; ++i) v[i] = p[i];
  return v;
}
ALWAYS_INLINE void st_u8(uint8_t* p, V v, int64_t l) {
  for (int64_t i = 0; i < l && i < kW; ++i) p[i] = static_cast<uint8_t>(v[i]);
}

#else  // one float per "vector"

constexpr int64_t kW = 1;
constexpr bool kFusedFma = false;
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
inline V ld_u8(const uint8_t* p, int64_t l) { return l > 0 ? p[0] : 0.0f; }
inline void st_u8(uint8_t* p, V v, int64_t l) {
  if (l > 0) p[0] = static_cast<uint8_t>(v);
}

#endif

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
