// The emulation layer of the DENSITRON_EMULATE_AVX512 test build (cpu/avx512_emulation.h): the
// intrinsics it defines itself, lane by lane, against Intel's definitions (special values
// included), so that a kernel test passing under emulation says something about the hardware.
// Built only with that option, with the AVX-512 kernel files' flags.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/avx512_emulation.h"

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct F16 {
  float f[16];
};
__m512 load(const F16& x) { return _mm512_loadu_ps(x.f); }
F16 store(__m512 v) {
  F16 x;
  _mm512_storeu_ps(x.f, v);
  return x;
}
uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
// Same bits, or both NaN.
void expect_same(float got, float want, const char* what, int lane) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << " lane " << lane << ": " << got;
  } else {
    EXPECT_EQ(bits(got), bits(want)) << what << " lane " << lane << ": " << got << " vs " << want;
  }
}

TEST(Avx512Emulation, ScalefIsOneRoundingOfATimesTwoToTheFloorOfB) {
  const F16 a = {{0.75f, 1.5f, 1.0f, -3.0f, 1.0f + 0x1p-23f, 0.0f, -0.0f, kInf, 1.0f, kInf, 0.0f,
                  kNaN, 2.0f, 1.25f, -1.0f, 5.0f}};
  const F16 b = {{128.0f, -149.0f, -150.0f, 2.5f, -127.0f, kInf, 3.0f, -kInf, kNaN, 1.0f, -kInf,
                  1.0f, 1e9f, -2.5f, 129.0f, -1e9f}};
  // 1.5 · 2^-149 and 2^-150 are ties (to even: 2^-148, 0), as is 2^-127 + 2^-150 (2^-127).
  const F16 want = {{0x1.8p127f, 0x1p-148f, 0.0f, -12.0f, 0x1p-127f, kNaN, -0.0f, kNaN, kNaN,
                     kInf, 0.0f, kNaN, kInf, 1.25f * 0.125f, -kInf, 0.0f}};
  const F16 got = store(_mm512_scalef_ps(load(a), load(b)));
  for (int i = 0; i < 16; ++i) expect_same(got.f[i], want.f[i], "scalef", i);
}

TEST(Avx512Emulation, GetexpAndGetmantSplitAFloat) {
  const F16 a = {{1.0f, 3.0f, -0.375f, 0x1p-130f, 0.0f, -0.0f, kInf, -kInf, kNaN, 1e30f,
                  0.99999994f, 2.0f, -7.5f, 0x1.fffffep127f, 0x1p-126f, 6.0f}};
  const F16 e = store(_mm512_getexp_ps(load(a)));
  const F16 m = store(_mm512_getmant_ps(load(a), _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero));
  const F16 ms = store(_mm512_getmant_ps(load(a), _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src));
  for (int i = 0; i < 16; ++i) {
    const float x = a.f[i];
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(e.f[i]) && std::isnan(m.f[i]) && std::isnan(ms.f[i]));
    } else if (x == 0.0f) {
      expect_same(e.f[i], -kInf, "getexp", i);
      expect_same(m.f[i], 1.0f, "getmant", i);
    } else if (std::isinf(x)) {
      expect_same(e.f[i], kInf, "getexp", i);
      expect_same(m.f[i], 1.0f, "getmant", i);
      expect_same(ms.f[i], std::copysign(1.0f, x), "getmant src", i);
    } else {
      // |x| = m · 2^e exactly, m in [1, 2), e an integer.
      EXPECT_EQ(e.f[i], std::floor(e.f[i])) << i;
      EXPECT_GE(m.f[i], 1.0f) << i;
      EXPECT_LT(m.f[i], 2.0f) << i;
      expect_same(std::ldexp(m.f[i], static_cast<int>(e.f[i])), std::fabs(x), "m·2^e", i);
      expect_same(ms.f[i], std::copysign(m.f[i], x), "getmant src", i);
    }
  }
}

TEST(Avx512Emulation, Rsqrt14IsWithinItsBoundAndNoCloser) {
  std::vector<float> xs;
  for (float x = 1e-30f; x < 1e30f; x *= 1.37f) xs.push_back(x);
  bool some_error = false;
  for (size_t i = 0; i + 16 <= xs.size(); i += 16) {
    const F16 r = store(_mm512_rsqrt14_ps(_mm512_loadu_ps(xs.data() + i)));
    for (int l = 0; l < 16; ++l) {
      const double exact = 1.0 / std::sqrt(static_cast<double>(xs[i + l]));
      const double rel = std::fabs(r.f[l] - exact) / exact;
      EXPECT_LT(rel, 0x1p-14) << xs[i + l];
      some_error |= rel > 0x1p-20;  // an estimate, not 1/sqrt rounded
    }
  }
  EXPECT_TRUE(some_error);
  const F16 s = {{0.0f, -0.0f, -1.0f, kInf, kNaN, 4.0f, 1.0f, 0.25f, 0x1p-140f /* subnormal */,
                  1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f}};
  const F16 r = store(_mm512_rsqrt14_ps(load(s)));
  const float want[9] = {kInf, -kInf, kNaN, 0.0f, kNaN, 0.5f, 1.0f, 2.0f, 0x1p70f};
  for (int i = 0; i < 9; ++i) expect_same(r.f[i], want[i], "rsqrt14", i);
}

TEST(Avx512Emulation, MaskedLoadsAndStoresTouchOnlyTheLanesOn) {
  float src[16], dst[16];
  for (int i = 0; i < 16; ++i) src[i] = static_cast<float>(i + 1), dst[i] = -1.0f;
  const __mmask16 k = 0x8421;  // lanes 0, 5, 10, 15
  const F16 fill = {{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}};
  const F16 l = store(_mm512_mask_loadu_ps(load(fill), k, src));
  const F16 z = store(_mm512_maskz_loadu_ps(k, src));
  _mm512_mask_storeu_ps(dst, k, _mm512_loadu_ps(src));
  for (int i = 0; i < 16; ++i) {
    const bool on = (k >> i) & 1;
    EXPECT_EQ(l.f[i], on ? src[i] : 9.0f) << i;
    EXPECT_EQ(z.f[i], on ? src[i] : 0.0f) << i;
    EXPECT_EQ(dst[i], on ? src[i] : -1.0f) << i;
  }
  // A tail at the end of an array: the lanes off are never read (ASan or a guard page would
  // tell; here the array has exactly the three lanes on).
  std::vector<float> three = {1.0f, 2.0f, 3.0f};
  const F16 t = store(_mm512_maskz_loadu_ps(0x7, three.data()));
  EXPECT_EQ(t.f[2], 3.0f);
  EXPECT_EQ(t.f[3], 0.0f);
}

TEST(Avx512Emulation, ReductionsAddInGccsOrder) {
  // Lanes whose sum depends on the order: 2^24 and 1s. GCC's tree adds lane i + 8 to lane i,
  // then i + 4 to i, then {2, 3} to {0, 1}, then 1 to 0.
  F16 a{};
  a.f[0] = 0x1p24f;
  for (int i = 1; i < 16; ++i) a.f[i] = 1.0f;
  float t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = a.f[i + 8] + a.f[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  const float want = (t4[0] + t4[2]) + (t4[1] + t4[3]);
  EXPECT_EQ(_mm512_reduce_add_ps(load(a)), want);
  EXPECT_EQ(_mm512_reduce_max_ps(load(a)), 0x1p24f);
  F16 n{};
  for (int i = 0; i < 16; ++i) n.f[i] = -static_cast<float>(i);
  n.f[11] = 7.0f;
  EXPECT_EQ(_mm512_reduce_max_ps(load(n)), 7.0f);
}

}  // namespace
