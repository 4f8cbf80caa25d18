// Activations, losses, reductions and optimizer updates against double-precision references,
// over sizes with tails; activation backwards against central finite differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "densitron/optim.h"
#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

std::vector<float> random_vec(size_t n, unsigned seed, float scale = 2.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

double ref_act(Activation act, double x) {
  switch (act) {
    case Activation::kRelu:
      return x > 0 ? x : 0;
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-x));
    case Activation::kTanh:
      return std::tanh(x);
    default:
      return x;
  }
}

class ActivationTest : public ::testing::TestWithParam<Activation> {};

TEST_P(ActivationTest, ForwardMatchesDoubleAndBackwardMatchesFiniteDifferences) {
  const Activation act = GetParam();
  for (int64_t rows : {1, 3}) {
    for (int64_t cols : {1, 7, 15, 16, 17, 33}) {
      std::vector<float> x = random_vec(rows * cols, static_cast<unsigned>(rows * 100 + cols));
      std::vector<float> y = x;
      activation_forward(act, ActivationParams(), x.data(), y.data(), rows, cols);
      for (int64_t r = 0; r < rows; ++r) {
        double mx = -1e30, sum = 0;
        for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, double(x[r * cols + j]));
        for (int64_t j = 0; j < cols; ++j) sum += std::exp(double(x[r * cols + j]) - mx);
        for (int64_t j = 0; j < cols; ++j) {
          const double xv = x[r * cols + j];
          const double expect = act == Activation::kSoftmax ? std::exp(xv - mx) / sum
                                                            : ref_act(act, xv);
          EXPECT_NEAR(y[r * cols + j], expect, 1e-6 * std::max(1.0, std::fabs(expect)));
        }
      }
      // backward: d/dx of Σ w ⊙ act(x), against central differences in double
      std::vector<float> w = random_vec(rows * cols, 7);
      std::vector<float> dz(rows * cols);
      activation_backward(act, ActivationParams(), x.data(), y.data(), w.data(), dz.data(), rows,
                          cols);
      for (int64_t i = 0; i < rows * cols; ++i) {
        if (act == Activation::kRelu && std::fabs(x[i]) < 1e-2) continue;  // the kink
        const double h = 1e-3;
        double f[2];
        for (int s = 0; s < 2; ++s) {
          std::vector<float> xp = x;
          xp[i] += s == 0 ? h : -h;
          activation_forward(act, ActivationParams(), xp.data(), xp.data(), rows, cols);
          double acc = 0;
          for (int64_t k = 0; k < rows * cols; ++k) acc += double(w[k]) * xp[k];
          f[s] = acc;
        }
        EXPECT_NEAR(dz[i], (f[0] - f[1]) / (2 * h), 5e-3) << "i=" << i << " cols=" << cols;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, ActivationTest,
                         ::testing::Values(Activation::kLinear, Activation::kRelu,
                                           Activation::kSigmoid, Activation::kTanh,
                                           Activation::kSoftmax));

TEST(ColumnSums, MatchDoubleWithAccumulate) {
  for (int64_t cols : {1, 5, 16, 17, 64}) {
    const int64_t rows = 13;
    std::vector<float> x = random_vec(rows * cols, 3);
    std::vector<float> s(cols, 1.0f);
    column_sums(x.data(), rows, cols, s.data(), true);
    for (int64_t j = 0; j < cols; ++j) {
      double ref = 1.0;
      for (int64_t i = 0; i < rows; ++i) ref += x[i * cols + j];
      EXPECT_NEAR(s[j], ref, 1e-5);
    }
  }
}

// Runs fn(isa) with each ISA this machine supports active, then restores the active one.
template <class Fn>
void for_each_isa(Fn fn) {
  const Isa saved = active_isa();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    set_active_isa(isa);
    fn(isa);
  }
  set_active_isa(saved);
}

TEST(FirstNan, FindsTheFirstNanInSmallAndThreadedScans) {
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{1000}, int64_t{3} << 20}) {
    std::vector<float> x(n, 1.5f);
    EXPECT_EQ(first_nan(x.data(), n), -1);
    for (int64_t pos : {n - 1, n / 2, int64_t{0}}) {
      x[pos] = std::nanf("");
      EXPECT_EQ(first_nan(x.data(), n), pos) << "n=" << n;
    }
  }
}

TEST(CopyHasNan, CopiesAndFlagsANanAtEveryPositionOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{33}, int64_t{784}}) {
      std::vector<float> src = random_vec(n, 7), dst(n + 1, -1.0f);
      ASSERT_FALSE(copy_has_nan(src.data(), dst.data(), n)) << isa_name(isa) << " n=" << n;
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(dst[j], src[j]);
      ASSERT_EQ(dst[n], -1.0f) << "wrote past the end";
      for (int64_t pos = 0; pos < n; pos += (n > 40 ? 97 : 1)) {
        std::vector<float> bad = src;
        bad[pos] = std::nanf("");
        EXPECT_TRUE(copy_has_nan(bad.data(), dst.data(), n))
            << isa_name(isa) << " n=" << n << " pos=" << pos;
      }
    }
  });
}

// float64 rows rounded to float32 as they are gathered: the nearest float (ties to even), as a
// cast, for values between floats, beyond float's range (to infinity) and below its normal
// range; a NaN at every position flagged.
TEST(CopyF64HasNan, RoundsLikeACastAndFlagsANanOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{33}, int64_t{784}}) {
      std::vector<double> src(n);
      std::mt19937_64 rng(static_cast<unsigned>(n));
      std::normal_distribution<double> normal;
      for (int64_t j = 0; j < n; ++j) src[j] = normal(rng) * std::pow(10.0, j % 9 - 4);
      if (n > 5) {
        src[0] = 1.0 + std::ldexp(1.0, -24);  // a tie: to even, 1.0f
        src[1] = 1.0 + 3 * std::ldexp(1.0, -24);  // a tie: to even, 1 + 2^-22
        src[2] = 1e39, src[3] = -1e300, src[4] = 1e-41, src[5] = -0.0;
      }
      std::vector<float> dst(n + 1, -1.0f);
      ASSERT_FALSE(copy_f64_has_nan(src.data(), dst.data(), n)) << isa_name(isa) << " n=" << n;
      for (int64_t j = 0; j < n; ++j) {
        const float want = static_cast<float>(src[j]);
        ASSERT_TRUE(dst[j] == want && std::signbit(dst[j]) == std::signbit(want))
            << isa_name(isa) << " j=" << j << " " << src[j] << " -> " << dst[j];
      }
      ASSERT_EQ(dst[n], -1.0f) << "wrote past the end";
      for (int64_t pos = 0; pos < n; pos += (n > 40 ? 97 : 1)) {
        std::vector<double> bad = src;
        bad[pos] = std::nan("");
        EXPECT_TRUE(copy_f64_has_nan(bad.data(), dst.data(), n))
            << isa_name(isa) << " n=" << n << " pos=" << pos;
      }
    }
  });
}

// Integer rows converted to float32 as they are gathered: int32, int64 (beyond float's 24
// bits, rounded to nearest as a cast) and uint8, with tails.
TEST(IntsToFloat, ConvertsLikeACastOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{33}, int64_t{100}}) {
      std::vector<int32_t> i32(n);
      std::vector<int64_t> i64(n);
      std::vector<uint8_t> u8(n);
      for (int64_t j = 0; j < n; ++j) {
        i32[j] = static_cast<int32_t>((j * 2654435761u) >> (j % 7)) * (j % 2 ? -1 : 1);
        i64[j] = (int64_t{1} << (20 + j % 40)) + j * 3 - 1;
        u8[j] = static_cast<uint8_t>(j * 37);
      }
      std::vector<float> out(n + 1, -1.0f);
      ints_to_float(i32.data(), 1, out.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(out[j], static_cast<float>(i32[j])) << isa_name(isa);
      ints_to_float(i64.data(), 2, out.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(out[j], static_cast<float>(i64[j])) << isa_name(isa);
      ints_to_float(u8.data(), 3, out.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(out[j], static_cast<float>(u8[j])) << isa_name(isa);
      ASSERT_EQ(out[n], -1.0f) << "wrote past the end";
    }
  });
}

TEST(Losses, CrossentropyMatchesKerasFormulaAndFusedGradient) {
  const int64_t rows = 4, cols = 5;
  std::vector<float> z = random_vec(rows * cols, 11);
  std::vector<float> p = z;
  activation_forward(Activation::kSoftmax, ActivationParams(), p.data(), p.data(), rows, cols);
  std::vector<float> y(rows * cols, 0.0f), labels(rows);
  for (int64_t r = 0; r < rows; ++r) {
    y[r * cols + (r * 2) % cols] = 1.0f;
    labels[r] = static_cast<float>((r * 2) % cols);
  }
  std::vector<float> g(rows * cols), gs(rows * cols);
  const double sum = loss_forward_backward(Loss::kCategoricalCrossentropy, p.data(), y.data(),
                                           rows, cols, g.data(), rows, true);
  const double sparse = loss_forward_backward(Loss::kSparseCategoricalCrossentropy, p.data(),
                                              labels.data(), rows, cols, gs.data(), rows, true);
  double ref = 0;
  for (int64_t r = 0; r < rows; ++r) ref -= std::log(double(p[r * cols + (r * 2) % cols]));
  EXPECT_NEAR(sum, ref, 1e-5);
  EXPECT_NEAR(sparse, ref, 1e-5);
  for (int64_t i = 0; i < rows * cols; ++i) {
    EXPECT_NEAR(g[i], (p[i] - y[i]) / rows, 1e-7);
    EXPECT_NEAR(gs[i], g[i], 1e-7);
  }
}

// The sparse cross-entropies' ignore_class, on every ISA, on probabilities (fused and not) and
// on logits: a row labelled with it, or with an id outside [0, cols), adds no loss and gets a
// zero gradient; every other row is bit for bit what it is without ignore_class.
TEST(Losses, SparseCrossentropyIgnoresAClassOnEveryIsa) {
  const int64_t rows = 6, cols = 19;  // wider than a vector, with a tail
  std::vector<float> z = random_vec(rows * cols, 12), p = z;
  activation_forward(Activation::kSoftmax, ActivationParams(), p.data(), p.data(), rows, cols);
  const std::vector<float> labels = {3, 7, 18, 7, 0, 25}, w = {1, 2, 3, 4, 5, 6};
  for_each_isa([&](Isa isa) {
    for (Loss loss : {Loss::kSparseCategoricalCrossentropy,
                      Loss::kSparseCategoricalCrossentropyLogits}) {
      for (bool fused : {false, true}) {
        if (fused && loss == Loss::kSparseCategoricalCrossentropyLogits) continue;
        const float* in = loss == Loss::kSparseCategoricalCrossentropy ? p.data() : z.data();
        std::vector<float> g(rows * cols), kept(rows * cols);
        const double sum = loss_forward_backward(loss, in, labels.data(), rows, cols, g.data(),
                                                 4.0, fused, w.data(), 1, 0.0f, nullptr, 7.0f);
        double want = 0.0;
        for (int64_t r = 0; r < rows; ++r) {
          const bool counts = labels[r] != 7.0f && labels[r] < cols;
          const double one = loss_forward_backward(loss, in + r * cols, &labels[r], 1, cols,
                                                   kept.data() + r * cols, 4.0, fused, &w[r]);
          if (counts) want += one;
          for (int64_t j = 0; j < cols; ++j) {
            const float expected = counts ? kept[r * cols + j] : 0.0f;
            ASSERT_EQ(g[r * cols + j], expected) << isa_name(isa) << " row " << r;
          }
        }
        EXPECT_EQ(sum, want) << isa_name(isa);
        EXPECT_GT(sum, 0.0);
      }
    }
  });
}

// Categorical cross-entropy on every ISA, on probabilities and on logits (the SIMD kernels
// sum rows by vectors and take their own logarithms and exponentials): against Keras's
// formulas in double, -Σ t·log(clip(p / Σp)) and -Σ t·log_softmax(z), t = y(1 - s) + s/k,
// over rows narrower and wider than a vector, with tails; sparse labels; sample weights one a
// row and one for two rows; the gradients ((p·Σt - t)/rows·w through a fused softmax and on
// logits, with p = softmax(z); (dq - <dq, q>)/Σp/rows·w on probabilities, dq = -t/q where
// t ≠ 0 and q is not clipped) against the same formulas in double. NaN stays NaN.
TEST(Losses, CategoricalCrossentropyMatchesItsFormulaOnEveryIsa) {
  const double lo = 1e-7f, hi = 1.0f - 1e-7f;
  for_each_isa([&](Isa isa) {
    for (int64_t cols : {1, 3, 10, 16, 17, 100}) {
      const int64_t rows = 9;
      std::mt19937 rng(static_cast<unsigned>(cols));
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      std::vector<float> p(rows * cols), z(rows * cols), y(rows * cols, 0.0f), labels(rows);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j) {
          p[r * cols + j] = u(rng) * (j % 7 == 3 ? 1e-9f : 1.0f);
          z[r * cols + j] = 8.0f * u(rng) - 4.0f + (j % 5 == 1 ? 30.0f : 0.0f);
        }
        labels[r] = static_cast<float>((r * 5) % cols);
        if (r % 3 == 0) {  // soft targets
          for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = j % 2 ? u(rng) : 0.0f;
        } else {
          y[r * cols + static_cast<int64_t>(labels[r])] = 1.0f;
        }
      }
      std::vector<float> w = {0.5f, 2.0f, 1.25f, 0.75f, 1.5f, 1.0f, 3.0f, 0.25f, 1.75f};
      for (int variant = 0; variant < 3; ++variant) {  // probabilities, fused, logits
        const bool fused = variant == 1, logits = variant == 2;
        const float* x = logits ? z.data() : p.data();
        for (bool sparse : {false, true}) {
          for (float s : {0.0f, 0.1f}) {
            if (sparse && s != 0.0f) continue;  // no smoothing for the sparse form
            for (int64_t per : {0, 1, 2}) {  // 0: no weights
              std::vector<float> g(rows * cols);
              const Loss loss = logits ? (sparse ? Loss::kSparseCategoricalCrossentropyLogits
                                                 : Loss::kCategoricalCrossentropyLogits)
                                       : (sparse ? Loss::kSparseCategoricalCrossentropy
                                                 : Loss::kCategoricalCrossentropy);
              const double got = loss_forward_backward(
                  loss, x, sparse ? labels.data() : y.data(), rows, cols, g.data(), rows, fused,
                  per ? w.data() : nullptr, per ? per : 1, s);
              double want = 0.0;
              for (int64_t r = 0; r < rows; ++r) {
                const float* xr = x + r * cols;
                const double wr = per ? w[r / per] : 1.0;
                double sum = 0.0, mx = xr[0], tsum = 0.0, dot = 0.0, loss_r = 0.0;
                for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, double(xr[j]));
                for (int64_t j = 0; j < cols; ++j) sum += logits ? std::exp(xr[j] - mx) : xr[j];
                std::vector<double> t(cols), dq(cols), prob(cols);
                for (int64_t j = 0; j < cols; ++j) {
                  const double yj = sparse ? (j == labels[r] ? 1.0 : 0.0) : y[r * cols + j];
                  t[j] = yj * (1.0 - s) + double(s) / cols;
                  tsum += t[j];
                  const double q = logits ? std::exp(xr[j] - mx) / sum : xr[j] / sum;
                  prob[j] = logits ? q : xr[j];
                  const double lq = logits ? xr[j] - mx - std::log(sum)
                                           : std::log(std::min(std::max(q, lo), hi));
                  if (t[j] != 0.0) loss_r -= t[j] * lq;
                  dq[j] = t[j] != 0.0 && q >= lo && q <= hi ? -t[j] / q : 0.0;
                  dot += dq[j] * q;
                }
                want += loss_r * wr;
                for (int64_t j = 0; j < cols; ++j) {
                  const bool through_softmax = fused || logits;
                  const double ref = through_softmax ? (prob[j] * tsum - t[j]) / rows * wr
                                                     : (dq[j] - dot) / sum / rows * wr;
                  // relative to the row's largest terms (dq - dot cancels)
                  const double tol =
                      (through_softmax ? 1e-5 * tsum
                                       : 1e-5 * (std::fabs(dot) + std::fabs(dq[j])) / sum) /
                          rows * wr + 1e-12;
                  ASSERT_NEAR(g[r * cols + j], ref, tol)
                      << isa_name(isa) << " cols=" << cols << " r=" << r << " j=" << j
                      << " sparse=" << sparse << " s=" << s << " per=" << per
                      << " variant=" << variant;
                }
              }
              ASSERT_NEAR(got, want, 1e-6 * std::fabs(want))
                  << isa_name(isa) << " cols=" << cols << " sparse=" << sparse << " s=" << s
                  << " per=" << per << " variant=" << variant;
            }
          }
        }
        std::vector<float> bad(x, x + rows * cols);
        bad[cols + cols / 2] = std::nanf("");  // row 1 (one-hot): its sum is NaN
        EXPECT_TRUE(std::isnan(loss_forward_backward(
            logits ? Loss::kCategoricalCrossentropyLogits : Loss::kCategoricalCrossentropy,
            bad.data(), y.data(), rows, cols, nullptr, rows, false)))
            << isa_name(isa) << " cols=" << cols << " variant=" << variant;
      }
    }
  });
}

// Binary cross-entropy on every ISA (the SIMD kernels compute its logarithms by a series of
// their own): against Keras's formula in double, -mean(y·log p + (1 - y)·log(1 - p)) with p
// clipped to [1e-7, 1 - 1e-7], over probabilities from the clip limits to 1/2, 1 to 3
// columns and more values than one chunk of the kernel, with and without sample weights; the
// gradients (plain and through a fused sigmoid) bit for bit the scalar formulas; NaN stays NaN.
TEST(Losses, BinaryCrossentropyMatchesItsFormulaOnEveryIsa) {
  const Isa saved = active_isa();
  const float edge[] = {0.0f, 1e-9f, 1e-7f, 3e-7f, 1e-4f, 0.01f, 0.3f, 0.5f, 0.7f, 0.99f,
                        0.9999f, 1.0f - 1e-7f, 1.0f};
  auto term = [](float p, float y) {  // -(y·log p + (1 - y)·log(1 - p)), p clipped, in double
    const double pc = std::min(std::max(double(p), double(1e-7f)), double(1.0f - 1e-7f));
    return -(y * std::log(pc) + (1.0 - y) * std::log(1.0 - pc));
  };
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    set_active_isa(isa);
    for (int64_t cols : {1, 3}) {
      const int64_t rows = 1500 / cols + 7, n = rows * cols;
      std::vector<float> p(n), y(n), g(n), gf(n);
      std::mt19937 rng(5);
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (int64_t i = 0; i < n; ++i) {
        p[i] = i < 13 ? edge[i] : (i % 3 == 0 ? std::pow(10.0f, -7.0f * u(rng)) : u(rng));
        if (i % 2) p[i] = 1.0f - p[i];
        y[i] = i % 5 == 0 ? u(rng) : static_cast<float>(i % 2);
      }
      const double got = loss_forward_backward(Loss::kBinaryCrossentropy, p.data(), y.data(),
                                               rows, cols, g.data(), rows, false);
      loss_forward_backward(Loss::kBinaryCrossentropy, p.data(), y.data(), rows, cols,
                            gf.data(), rows, true);
      double want = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        want += term(p[i], y[i]) / cols;
        const float d = p[i] - y[i];
        const bool in = p[i] >= 1e-7f && p[i] <= 1.0f - 1e-7f;
        ASSERT_EQ(g[i], in ? d / (p[i] * (1.0f - p[i])) * (1.0f / cols) * (1.0f / rows) : 0.0f)
            << isa_name(isa) << " i=" << i;
        ASSERT_EQ(gf[i], d * (1.0f / cols) * (1.0f / rows)) << isa_name(isa) << " i=" << i;
      }
      EXPECT_NEAR(got, want, 1e-6 * std::fabs(want)) << isa_name(isa) << " cols=" << cols;
      // value by value: each row's loss within a few float ulps of the double formula (plus
      // an ulp of 1: 1 - p is rounded to float first, as in Keras)
      for (int64_t i = 0; i < n; i += cols) {
        const double one = loss_forward_backward(Loss::kBinaryCrossentropy, p.data() + i,
                                                 y.data() + i, 1, cols, nullptr, 1, false);
        double ref = 0.0;
        for (int64_t j = i; j < i + cols; ++j) ref += term(p[j], y[j]) / cols;
        ASSERT_NEAR(one, ref, 4e-7 * std::fabs(ref) + 1.2e-7) << isa_name(isa) << " p=" << p[i];
      }
      // Sample weights, one a row or one for every two rows: each row's gradient scaled by
      // (1/rows)·w, its loss by w.
      for (int64_t per : {1, 2}) {
        std::vector<float> w((rows + per - 1) / per);
        for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f + 0.5f * u(rng);
        const double wgot = loss_forward_backward(Loss::kBinaryCrossentropy, p.data(), y.data(),
                                                  rows, cols, g.data(), rows, false, w.data(),
                                                  per);
        double wwant = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const float wi = w[i / cols / per];
          wwant += term(p[i], y[i]) / cols * wi;
          const float d = p[i] - y[i];
          const bool in = p[i] >= 1e-7f && p[i] <= 1.0f - 1e-7f;
          ASSERT_EQ(g[i], in ? d / (p[i] * (1.0f - p[i])) * (1.0f / cols) * (1.0f / rows * wi)
                             : 0.0f)
              << isa_name(isa) << " i=" << i << " per=" << per;
        }
        EXPECT_NEAR(wgot, wwant, 1e-6 * std::fabs(wwant)) << isa_name(isa) << " per=" << per;
      }
      std::vector<float> bad = p;
      bad[n / 2] = std::nanf("");
      EXPECT_TRUE(std::isnan(loss_forward_backward(Loss::kBinaryCrossentropy, bad.data(),
                                                   y.data(), rows, cols, nullptr, rows, false)));
    }
  }
  set_active_isa(saved);
}

// The elementwise losses the kernels compute besides binary cross-entropy, on every ISA:
// against their formulas in double (each term and its derivative, given below), over 1, 3 and
// 785 columns (rows longer than a kernel chunk), without and with sample weights (one a row,
// one for two rows): each row the mean of its terms (the KL divergence's their sum) times its
// weight, each gradient value the derivative times (1/cols)·(w/rows). NaN stays NaN.
TEST(Losses, ElementwiseLossesMatchTheirFormulasOnEveryIsa) {
  const double eps = 1e-7f;
  auto sign = [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); };
  struct Case {
    Loss loss;
    float param;
    float lo, hi;  // the predictions' range
    bool binary;   // {0, 1} targets (else in [0, 1])
    std::function<void(double p, double y, double* t, double* g)> f;
  };
  const double delta = 1.5;
  const Case cases[] = {
      {Loss::kMeanSquaredError, 0, -20, 20, false,
       [](double p, double y, double* t, double* g) { *t = (p - y) * (p - y), *g = 2 * (p - y); }},
      {Loss::kMeanAbsoluteError, 0, -20, 20, false,
       [&](double p, double y, double* t, double* g) { *t = std::fabs(p - y), *g = sign(p - y); }},
      {Loss::kBinaryCrossentropyLogits, 0.1f, -20, 20, true,  // smoothed: y·0.9 + 0.05
       [](double z, double y, double* t, double* g) {
         y = y * 0.9 + 0.05;
         *t = std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z)));
         *g = 1 / (1 + std::exp(-z)) - y;
       }},
      {Loss::kMeanAbsolutePercentageError, 0, -3, 3, false,
       [&](double p, double y, double* t, double* g) {
         const double m = std::max(std::fabs(y), eps);
         *t = 100 * std::fabs(p - y) / m, *g = 100 * sign(p - y) / m;
       }},
      {Loss::kMeanSquaredLogarithmicError, 0, -1, 5, false,
       [&](double p, double y, double* t, double* g) {
         const double a = std::max(p, eps) + 1, e = std::log(a) - std::log(std::max(y, eps) + 1);
         *t = e * e, *g = p > eps ? 2 * e / a : 0;
       }},
      {Loss::kHuber, float(delta), -4, 4, false,
       [&](double p, double y, double* t, double* g) {
         const double d = p - y;
         *t = std::fabs(d) <= delta ? d * d / 2 : delta * std::fabs(d) - delta * delta / 2;
         *g = std::fabs(d) <= delta ? d : delta * sign(d);
       }},
      {Loss::kLogCosh, 0, -6, 6, false,
       [](double p, double y, double* t, double* g) {
         *t = std::log(std::cosh(p - y)), *g = std::tanh(p - y);
       }},
      {Loss::kHinge, 1.0f, -3, 3, true,  // param 1: {0, 1} read as {-1, 1}
       [](double p, double y, double* t, double* g) {
         const double s = 2 * y - 1, m = std::max(1 - s * p, 0.0);
         *t = m, *g = m > 0 ? -s : 0;
       }},
      {Loss::kSquaredHinge, 0, -3, 3, false,
       [](double p, double y, double* t, double* g) {
         const double m = std::max(1 - y * p, 0.0);
         *t = m * m, *g = -2 * y * m;
       }},
      {Loss::kPoisson, 0, 0, 5, false,
       [&](double p, double y, double* t, double* g) {
         *t = p - y * std::log(p + eps), *g = 1 - y / (p + eps);
       }},
      {Loss::kKLDivergence, 0, -0.1f, 1.1f, false,
       [&](double p, double y, double* t, double* g) {
         const double yc = std::min(std::max(y, eps), 1.0), pc = std::min(std::max(p, eps), 1.0);
         *t = yc * std::log(yc / pc), *g = p >= eps && p <= 1 ? -yc / pc : 0;
       }},
  };
  for_each_isa([&](Isa isa) {
    for (const Case& c : cases) {
      const bool sum = c.loss == Loss::kKLDivergence;
      for (int64_t cols : {1, 3, 785}) {
        const int64_t rows = cols == 785 ? 5 : 1100 / cols + 3, n = rows * cols;
        std::mt19937 rng(static_cast<unsigned>(cols));
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        std::vector<float> p(n), y(n), w(rows);
        for (int64_t i = 0; i < n; ++i) {
          p[i] = c.lo + (c.hi - c.lo) * u(rng);
          y[i] = c.binary ? static_cast<float>(i % 2) : u(rng);
        }
        if (!c.binary) p[1] = y[1];  // d = 0
        for (float& v : w) v = 0.25f + 2.0f * u(rng);
        for (int64_t per : {0, 1, 2}) {
          std::vector<float> g(n);
          const double got = loss_forward_backward(c.loss, p.data(), y.data(), rows, cols,
                                                   g.data(), rows, false,
                                                   per ? w.data() : nullptr, per ? per : 1,
                                                   c.param);
          double want = 0.0;
          for (int64_t i = 0; i < n; ++i) {
            const double wi = per ? w[i / cols / per] : 1.0;
            double t, d;
            c.f(p[i], y[i], &t, &d);
            want += (sum ? t : t / cols) * wi;
            const double scale = (sum ? 1.0 : 1.0 / cols) * wi / rows, ref = d * scale;
            // (differences of values near 1, as sigmoid(z) - y, round to 1e-7 absolute)
            ASSERT_NEAR(g[i], ref, 2e-6 * std::fabs(ref) + 2e-7 * scale)
                << isa_name(isa) << " loss=" << int(c.loss) << " i=" << i << " p=" << p[i]
                << " y=" << y[i] << " per=" << per;
          }
          EXPECT_NEAR(got, want, 2e-6 * std::fabs(want))
              << isa_name(isa) << " loss=" << int(c.loss) << " cols=" << cols << " per=" << per;
        }
        std::vector<float> bad = p;
        bad[n - 1] = std::nanf("");
        EXPECT_TRUE(std::isnan(loss_forward_backward(c.loss, bad.data(), y.data(), rows, cols,
                                                     nullptr, rows, false, nullptr, 1,
                                                     c.param)))
            << isa_name(isa) << " loss=" << int(c.loss) << " cols=" << cols;
      }
    }
  });
}

// The row-wise losses, per ISA, against their formulas in double over rows of 1 to 100 values
// (tails): cosine similarity (a zero target row, a p row short enough for its clamped norm)
// and categorical hinge (one-hot targets, ties of the largest rival, a row past its margin),
// with weights, and NaN kept.
TEST(Losses, RowLossesMatchTheirFormulasOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (Loss loss : {Loss::kCosineSimilarity, Loss::kCategoricalHinge}) {
      const bool hinge = loss == Loss::kCategoricalHinge;
      for (int64_t cols : {1, 3, 16, 17, 100}) {
        const int64_t rows = 6, n = rows * cols;
        std::vector<float> p = random_vec(n, static_cast<unsigned>(cols), 2.0f);
        std::vector<float> y = random_vec(n, static_cast<unsigned>(cols) + 7, 1.0f);
        std::vector<float> w = {0.5f, 2.0f, 1.0f, 3.0f, 0.25f, 1.5f};
        if (hinge) {
          for (int64_t i = 0; i < n; ++i) y[i] = (i % cols) == (i / cols) % cols;
          if (cols >= 3) {  // row 1: two rivals tie for the largest; row 2 past its margin
            p[cols + 2] = p[cols + cols - 1] = 5.0f;
            p[2 * cols + 2] = 5.0f;
            for (int64_t j = 0; j < cols; ++j) p[2 * cols + j] = j == 2 ? 5.0f : -1.0f;
          }
        } else {
          for (int64_t j = 0; j < cols; ++j) y[2 * cols + j] = 0.0f;  // a zero target row
          for (int64_t j = 0; j < cols; ++j) p[3 * cols + j] *= 1e-9f;  // clamped norm
        }
        for (bool weighted : {false, true}) {
          std::vector<float> g(n);
          const double got =
              loss_forward_backward(loss, p.data(), y.data(), rows, cols, g.data(), rows, false,
                                    weighted ? w.data() : nullptr, 1, 0.0f);
          double want = 0.0;
          for (int64_t r = 0; r < rows; ++r) {
            const float* pr = p.data() + r * cols;
            const float* yr = y.data() + r * cols;
            const double wr = weighted ? w[r] : 1.0, scale = wr / rows;
            std::vector<double> ref(cols);
            double row, size = scale;  // the gradient terms' size (cosine: of its two terms)
            if (hinge) {
              double pos = 0.0, neg = -INFINITY;
              for (int64_t j = 0; j < cols; ++j) {
                pos += double(yr[j]) * pr[j];
                neg = std::max(neg, (1.0 - yr[j]) * pr[j]);
              }
              row = std::max(neg - pos + 1.0, 0.0);
              int ties = 0;
              for (int64_t j = 0; j < cols; ++j) ties += (1.0 - yr[j]) * pr[j] == neg;
              for (int64_t j = 0; j < cols; ++j) {
                const double dneg = (1.0 - yr[j]) * pr[j] == neg ? (1.0 - yr[j]) / ties : 0.0;
                ref[j] = row > 0.0 ? (dneg - yr[j]) * scale : 0.0;
              }
            } else {
              double pp = 0.0, yy = 0.0, yp = 0.0;
              for (int64_t j = 0; j < cols; ++j) {
                pp += double(pr[j]) * pr[j], yy += double(yr[j]) * yr[j];
                yp += double(yr[j]) * pr[j];
              }
              const double ip = std::min(1.0 / std::sqrt(pp), 1e7);
              const double iy = std::min(1.0 / std::sqrt(yy), 1e7);
              const bool clamped = ip == 1e7;
              row = -yp * ip * iy;
              size = 0.0;
              for (int64_t j = 0; j < cols; ++j) {
                const double a = yr[j], b = clamped ? 0.0 : yp * ip * ip * pr[j];
                ref[j] = -iy * ip * (a - b) * scale;
                size = std::max(size, iy * ip * (std::fabs(a) + std::fabs(b)) * scale);
              }
            }
            want += row * wr;
            for (int64_t j = 0; j < cols; ++j)
              ASSERT_NEAR(g[r * cols + j], ref[j], 2e-6 * size)
                  << isa_name(isa) << " loss=" << int(loss) << " cols=" << cols << " r=" << r
                  << " j=" << j;
          }
          EXPECT_NEAR(got, want, 2e-6 * std::fabs(want) + 1e-12)
              << isa_name(isa) << " loss=" << int(loss) << " cols=" << cols;
        }
        std::vector<float> bad = p;
        bad[n - 1] = std::nanf("");
        EXPECT_TRUE(std::isnan(loss_forward_backward(loss, bad.data(), y.data(), rows, cols,
                                                     nullptr, rows, false, nullptr, 1, 0.0f)))
            << isa_name(isa) << " loss=" << int(loss) << " cols=" << cols;
      }
    }
  });
}

// An epoch's shuffle: a permutation of 0..n-1, the same for a seed, another for another seed,
// and uniform: over many seeds each value lands in each position about equally often.
TEST(Shuffle, RandomPermutationIsAUniformPermutationOfItsSeed) {
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<int64_t> p(n), q(n), sorted(n);
    random_permutation(p.data(), n, 42);
    random_permutation(q.data(), n, 42);
    EXPECT_EQ(p, q) << n;
    sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << n;
    if (n >= 7) {
      random_permutation(q.data(), n, 43);
      EXPECT_NE(p, q) << n;
    }
  }
  constexpr int kN = 6, kSeeds = 60000;
  std::vector<int> counts(kN * kN, 0);
  std::vector<int64_t> p(kN);
  for (int s = 0; s < kSeeds; ++s) {
    random_permutation(p.data(), kN, static_cast<uint64_t>(s));
    for (int i = 0; i < kN; ++i) ++counts[i * kN + p[i]];
  }
  const double expected = static_cast<double>(kSeeds) / kN, sd = std::sqrt(expected);
  for (int c : counts) EXPECT_NEAR(c, expected, 5 * sd);  // (10,000 ± 91 each)
}

// The noise layers' uniform in (0, 1) of (seed, key, index), written out here as the kernels'
// reference: SplitMix64's output at step `index` of the stream that starts at mix64(seed ^
// mix64(key·K)), mix64(base + index·0x9e3779b97f4a7c15), its top 24 bits.
uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
float hash_uniform(uint64_t seed, uint64_t key, uint64_t index) {
  const uint64_t base = mix64(seed ^ mix64(key * 0x632be59bd9b4e019ull));
  const uint64_t h = mix64(base + index * 0x9e3779b97f4a7c15ull);
  return (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// Dropout's kernel (vectorised by the AVX-512 build) keeps and drops exactly the values that
// uniform says, on every ISA: forward, and accumulated into a gradient, with
// tails, mask indices from an offset, rate 0 (all kept) and rate near 1.
TEST(Dropout, KernelMasksAreTheExecutorsHashOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 7, 8, 9, 16, 33, 1000}) {
      for (float rate : {0.0f, 0.2f, 0.5f, 0.999f}) {
        const uint64_t seed = 12345, key = 7 + n, first = n % 5 == 0 ? 0 : 1000003;
        const float scale = 1.0f / (1.0f - rate);
        const std::vector<float> x = random_vec(n, 60 + n);
        std::vector<float> y(n), acc = random_vec(n, 61), acc_want = acc;
        k->dropout(x.data(), y.data(), n, seed, key, first, rate, scale, false);
        k->dropout(x.data(), acc.data(), n, seed, key, first, rate, scale, true);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; ++i) {
          const bool keep = hash_uniform(seed, key, first + i) >= rate;
          kept += keep;
          const float v = keep ? x[i] * scale : 0.0f;
          ASSERT_EQ(y[i], v) << isa_name(isa) << " n=" << n << " i=" << i << " rate=" << rate;
          ASSERT_EQ(acc[i], acc_want[i] + v) << isa_name(isa) << " n=" << n << " i=" << i;
        }
        if (rate == 0.0f) EXPECT_EQ(kept, n);
        if (n == 1000 && rate == 0.5f) EXPECT_NEAR(kept, 500, 60);
      }
    }
  });
}

// GaussianNoise's values on every ISA: Box-Muller on the uniforms of indices 2j and
// 2j + 1, sqrt(-2·log u1)·cos(2π·u2), against that formula in double (the kernels' logarithm
// and cosine are their own), with tails and offsets; over 200k draws, mean 0 and variance 1.
TEST(GaussianNoise, KernelValuesAreBoxMullerOfTheExecutorsHashOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 15, 16, 17, 300, 200000}) {
      const uint64_t seed = 99, key = 4, first = n == 15 ? 123456789 : 0;
      std::vector<float> g(n);
      k->gaussian_noise(g.data(), n, seed, key, first);
      double sum = 0.0, squares = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t j = 2 * (first + i);
        const double u1 = hash_uniform(seed, key, j);
        const double u2 = hash_uniform(seed, key, j + 1);
        const double want = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        ASSERT_NEAR(g[i], want, 1e-6 * (1.0 + std::fabs(want))) << isa_name(isa) << " i=" << i;
        sum += g[i];
        squares += double(g[i]) * g[i];
      }
      if (n == 200000) {
        EXPECT_NEAR(sum / n, 0.0, 0.01) << isa_name(isa);
        EXPECT_NEAR(squares / n, 1.0, 0.01) << isa_name(isa);
      }
    }
  });
}

// BatchNormalization's column kernels on every ISA against double formulas: rows × w values
// a stride apart (a thread's range of features, the whole vectors and a tail), with and
// without gamma and beta, the backward's sums with any of their outputs absent, and the input
// gradient written and accumulated.
TEST(BatchNorm, ColumnKernelsMatchDoubleFormulasOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t rows : {1, 5, 33}) {
      for (int64_t w : {1, 7, 16, 17, 40}) {
        const int64_t ld = w + 3, n = rows * ld;
        const std::string where =
            std::string(isa_name(isa)) + " rows=" + std::to_string(rows) + " w=" + std::to_string(w);
        std::vector<float> x = random_vec(n, 80 + w), dy = random_vec(n, 81 + w);
        for (float& v : x) v = 3.0f + v;  // a mean well away from 0
        const std::vector<float> gamma = random_vec(w, 82), beta = random_vec(w, 83);
        std::vector<double> mu(w), sq(w);
        k->col_moments(x.data(), rows, ld, w, mu.data(), sq.data());
        std::vector<float> mean(w), inv(w);
        for (int64_t j = 0; j < w; ++j) {
          double m = 0.0, q = 0.0;
          for (int64_t r = 0; r < rows; ++r) m += x[r * ld + j];
          m /= rows;
          for (int64_t r = 0; r < rows; ++r) q += (x[r * ld + j] - m) * (x[r * ld + j] - m);
          ASSERT_NEAR(mu[j], m, 1e-12 * std::fabs(m)) << where;
          ASSERT_NEAR(sq[j], q, 1e-9 * (q + 1e-3)) << where;
          mean[j] = static_cast<float>(m);
          inv[j] = static_cast<float>(1.0 / std::sqrt(q / rows + 1e-3));
        }
        for (int variant = 0; variant < 4; ++variant) {
          const float* g = variant & 1 ? gamma.data() : nullptr;
          const float* b = variant & 2 ? beta.data() : nullptr;
          std::vector<float> y(n, -7.0f);
          k->col_normalize(x.data(), y.data(), rows, ld, w, mean.data(), inv.data(), g, b);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < w; ++j) {
              const double want = (double(x[r * ld + j]) - mean[j]) * inv[j] * (g ? g[j] : 1.0) +
                                  (b ? b[j] : 0.0);
              ASSERT_NEAR(y[r * ld + j], want, 1e-5 * (1.0 + std::fabs(want))) << where;
            }
            for (int64_t j = w; j < ld; ++j) ASSERT_EQ(y[r * ld + j], -7.0f) << where;
          }
        }
        // the sums, each output present or absent
        std::vector<double> sdy_want(w, 0.0), sdx_want(w, 0.0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < w; ++j) {
            const double d = dy[r * ld + j];
            sdy_want[j] += d;
            sdx_want[j] += d * ((double(x[r * ld + j]) - mean[j]) * inv[j]);
          }
        for (int variant = 1; variant < 8; ++variant) {
          std::vector<float> gg(w, 0.5f), gb(w, -0.5f);
          std::vector<double> sdy(w, 9.0), sdx(w, 9.0);
          const bool want_g = variant & 4, want_b = variant & 2, sums = variant & 1;
          k->col_norm_grad_sums(dy.data(), x.data(), rows, ld, w, mean.data(), inv.data(),
                                want_g ? gg.data() : nullptr, want_b ? gb.data() : nullptr,
                                sums ? sdy.data() : nullptr, sums ? sdx.data() : nullptr);
          for (int64_t j = 0; j < w; ++j) {
            const double tol = 1e-5 * (1.0 + rows);
            EXPECT_NEAR(gg[j], want_g ? 0.5 + sdx_want[j] : 0.5, tol) << where;
            EXPECT_NEAR(gb[j], want_b ? -0.5 + sdy_want[j] : -0.5, tol) << where;
            EXPECT_NEAR(sdy[j], sums ? sdy_want[j] : 9.0, 1e-9 * (1.0 + rows)) << where;
            EXPECT_NEAR(sdx[j], sums ? sdx_want[j] : 9.0, tol) << where;
          }
        }
        // the input gradient from the factors g = gamma·inv, a = mean of dy, b = mean of dy·xhat
        std::vector<float> fg(w), fa(w), fb(w);
        for (int64_t j = 0; j < w; ++j) {
          fg[j] = gamma[j] * inv[j];
          fa[j] = static_cast<float>(sdy_want[j] / rows);
          fb[j] = static_cast<float>(sdx_want[j] / rows);
        }
        for (bool acc : {false, true}) {
          std::vector<float> gx = random_vec(n, 84), before = gx;
          k->col_norm_backward(dy.data(), x.data(), gx.data(), rows, ld, w, mean.data(),
                               inv.data(), fg.data(), fa.data(), fb.data(), acc);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < w; ++j) {
              const double xhat = (double(x[r * ld + j]) - mean[j]) * inv[j];
              const double v = double(fg[j]) * (dy[r * ld + j] - fa[j] - xhat * fb[j]);
              const double want = acc ? before[r * ld + j] + v : v;
              ASSERT_NEAR(gx[r * ld + j], want, 1e-5 * (1.0 + std::fabs(want))) << where;
            }
            for (int64_t j = w; j < ld; ++j) ASSERT_EQ(gx[r * ld + j], before[r * ld + j]) << where;
          }
        }
      }
    }
  });
}

// LayerNormalization's row kernels on every ISA against double formulas, over rows shorter
// and longer than a vector with tails: the statistics and output (with and without gamma and
// beta), the input gradient written and accumulated, and gamma's and beta's gradients over a
// strided range of features. The double sums are split the same way on every ISA, so the
// statistics are bitwise equal across ISAs.
TEST(LayerNorm, RowKernelsMatchDoubleFormulasOnEveryIsa) {
  std::vector<std::vector<float>> stats_by_isa;
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    std::vector<float> all_stats;
    for (int64_t n : {1, 7, 8, 9, 16, 17, 100}) {
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> x = random_vec(n, 90 + n), dy = random_vec(n, 91 + n);
      for (float& v : x) v = 2.0f + v;
      const std::vector<float> gamma = random_vec(n, 92), beta = random_vec(n, 93);
      const float eps = 1e-3f;
      for (bool centered : {true, false}) {  // (not centered: RMSNormalization's, mean 0)
      double m = 0.0, q = 0.0;
      for (float v : x) m += v;
      m = centered ? m / n : 0.0;
      for (float v : x) q += (v - m) * (v - m);
      const double inv = 1.0 / std::sqrt(q / n + eps);
      for (int variant = 0; variant < 4; ++variant) {
        const float* g = variant & 1 ? gamma.data() : nullptr;
        const float* b = variant & 2 ? beta.data() : nullptr;
        std::vector<float> y(n + 1, -7.0f);
        float stats[2];
        k->layer_norm_row(x.data(), y.data(), n, g, b, eps, stats, centered);
        ASSERT_NEAR(stats[0], m, 1e-6 * std::fabs(m)) << where;
        ASSERT_NEAR(stats[1], inv, 1e-5 * inv) << where;
        if (variant == 0) all_stats.insert(all_stats.end(), stats, stats + 2);
        for (int64_t c = 0; c < n; ++c) {
          const double want = (x[c] - m) * inv * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
          ASSERT_NEAR(y[c], want, 2e-5 * (1.0 + std::fabs(want))) << where << " c=" << c;
        }
        ASSERT_EQ(y[n], -7.0f) << where;
      }
      const float fm = static_cast<float>(m), finv = static_cast<float>(inv);
      for (int variant = 0; variant < 4; ++variant) {
        const float* g = variant & 1 ? gamma.data() : nullptr;
        const bool acc = variant & 2;
        std::vector<float> gx = random_vec(n, 94), before = gx;
        k->layer_norm_row_backward(dy.data(), x.data(), gx.data(), n, g, fm, finv, acc,
                                   centered);
        double a = 0.0, bsum = 0.0;
        for (int64_t c = 0; c < n; ++c) {
          const double dxhat = double(dy[c]) * (g ? g[c] : 1.0);
          a += dxhat;
          bsum += dxhat * (x[c] - double(fm)) * finv;
        }
        a = centered ? a / n : 0.0;
        bsum /= n;
        for (int64_t c = 0; c < n; ++c) {
          const double dxhat = double(dy[c]) * (g ? g[c] : 1.0);
          const double xhat = (x[c] - double(fm)) * finv;
          const double want = finv * (dxhat - a - xhat * bsum) + (acc ? before[c] : 0.0);
          ASSERT_NEAR(gx[c], want, 1e-5 * (1.0 + std::fabs(want) + finv)) << where << " c=" << c;
        }
      }
      }
    }
    // gamma's and beta's gradients over 5 rows × w features, 3 apart from the next row's
    for (int64_t w : {1, 16, 17, 40}) {
      const int64_t rows = 5, ld = w + 3;
      const std::vector<float> x = random_vec(rows * ld, 95), dy = random_vec(rows * ld, 96);
      std::vector<float> stats(2 * rows);
      for (int64_t r = 0; r < rows; ++r) stats[2 * r] = 0.1f * r, stats[2 * r + 1] = 1.0f + r;
      for (int variant = 1; variant < 4; ++variant) {
        std::vector<float> gg(w, 0.5f), gb(w, -0.5f);
        const bool want_g = variant & 1, want_b = variant & 2;
        k->layer_norm_param_grads(dy.data(), x.data(), rows, ld, w, stats.data(),
                                  want_g ? gg.data() : nullptr, want_b ? gb.data() : nullptr);
        for (int64_t c = 0; c < w; ++c) {
          double sg = 0.5, sb = -0.5;
          for (int64_t r = 0; r < rows; ++r) {
            sg += double(dy[r * ld + c]) * (x[r * ld + c] - stats[2 * r]) * stats[2 * r + 1];
            sb += dy[r * ld + c];
          }
          EXPECT_NEAR(gg[c], want_g ? sg : 0.5, 1e-5 * (1.0 + std::fabs(sg))) << isa_name(isa);
          EXPECT_NEAR(gb[c], want_b ? sb : -0.5, 1e-5) << isa_name(isa);
        }
      }
    }
    stats_by_isa.push_back(all_stats);
  });
  for (const std::vector<float>& s : stats_by_isa) EXPECT_EQ(s, stats_by_isa[0]);
}

// Embedding's row kernels on every ISA: rows of the table gathered by id, and rows of dy
// added into the table rows of the ids in a range (repeated ids, ids at both ends of the
// range and outside it), each table value's terms in batch order: bitwise equal to the
// scalar loop.
TEST(Embedding, RowKernelsGatherAndScatterAddInBatchOrderOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t d : {1, 7, 16, 17, 40}) {
      const int64_t rows = 50, n = 300;
      const std::string where = std::string(isa_name(isa)) + " d=" + std::to_string(d);
      const std::vector<float> table = random_vec(rows * d, 100 + d);
      const std::vector<float> dy = random_vec(n * d, 101 + d);
      std::vector<float> ids(n);
      for (int64_t j = 0; j < n; ++j) ids[j] = static_cast<float>((j * 37 + j / 7) % rows);
      ids[0] = 0.0f, ids[1] = rows - 1, ids[2] = 10.0f, ids[3] = 29.0f, ids[4] = 30.0f;
      std::vector<float> y(n * d + 1, -3.0f);
      k->gather_rows(table.data(), ids.data(), n, d, y.data());
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < d; ++c)
          ASSERT_EQ(y[j * d + c], table[static_cast<int64_t>(ids[j]) * d + c]) << where;
      ASSERT_EQ(y[n * d], -3.0f) << where;
      for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, rows}, {10, 30}, {30, 31}}) {
        std::vector<float> got = table, want = table;
        std::vector<int64_t> list(n);
        k->scatter_add_rows(dy.data(), ids.data(), n, d, lo, hi, got.data(), list.data());
        for (int64_t j = 0; j < n; ++j) {
          const int64_t id = static_cast<int64_t>(ids[j]);
          if (id < lo || id >= hi) continue;
          for (int64_t c = 0; c < d; ++c) want[id * d + c] += dy[j * d + c];
        }
        ASSERT_EQ(got, want) << where << " lo=" << lo << " hi=" << hi;
      }
    }
  });
}

// Embedding's id check on every ISA: integers in [0, limit) pass; a negative, a fraction, the
// limit itself, a NaN or an infinity anywhere (tails included) is found.
TEST(Embedding, AnyBadIdFindsEveryKindOfBadIdOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 7, 16, 17, 100}) {
      std::vector<float> ids(n);
      for (int64_t j = 0; j < n; ++j) ids[j] = static_cast<float>((j * 13) % 50);
      ids[n - 1] = 49.0f;
      EXPECT_FALSE(k->any_bad_id(ids.data(), n, 50.0f)) << isa_name(isa) << " n=" << n;
      for (float bad : {-1.0f, 2.5f, 50.0f, 1e9f, std::nanf(""), INFINITY, -0.5f}) {
        for (int64_t pos : {int64_t{0}, n / 2, n - 1}) {
          std::vector<float> b = ids;
          b[pos] = bad;
          EXPECT_TRUE(k->any_bad_id(b.data(), n, 50.0f))
              << isa_name(isa) << " n=" << n << " bad=" << bad << " pos=" << pos;
        }
      }
    }
  });
}

// Mean pooling's row kernels on every ISA: the kept rows summed onto y in row order (bitwise
// the scalar loop's sums) with their count, and the gradient rows set or added, with and
// without a mask (none kept, some, all), over widths with tails.
TEST(Pooling, RowKernelsSumAndSpreadKeptRowsOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 7, 16, 17, 40}) {
      const int64_t rows = 9;
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      const std::vector<float> x = random_vec(rows * n, 110 + n), v = random_vec(n, 111);
      std::vector<float> some(rows, 1.0f), none(rows, 0.0f);
      some[0] = some[4] = some[8] = 0.0f;
      const std::vector<float>* masks[] = {nullptr, &some, &none};
      for (const std::vector<float>* keep : masks) {
        const float* kp = keep ? keep->data() : nullptr;
        std::vector<float> y = random_vec(n + 1, 112), want = y;
        float count = 0.0f;
        for (int64_t j = 0; j < rows; ++j) {
          if (kp && kp[j] == 0.0f) continue;
          count += 1.0f;
          for (int64_t c = 0; c < n; ++c) want[c] += x[j * n + c];
        }
        ASSERT_EQ(k->add_rows(x.data(), rows, n, n, kp, y.data()), count) << where;
        ASSERT_EQ(y, want) << where;
        // rows ld apart (a bias gradient's columns of a wider matrix)
        const int64_t ld = n + 3;
        std::vector<float> xs(rows * ld, 1e30f), ys = random_vec(n + 1, 114), swant = ys;
        for (int64_t j = 0; j < rows; ++j)
          for (int64_t c = 0; c < n; ++c) {
            xs[j * ld + c] = x[j * n + c];
            if (!kp || kp[j] != 0.0f) swant[c] += x[j * n + c];
          }
        ASSERT_EQ(k->add_rows(xs.data(), rows, n, ld, kp, ys.data()), count) << where;
        ASSERT_EQ(ys, swant) << where;
        for (bool acc : {false, true}) {
          std::vector<float> g = random_vec(rows * n + 1, 113), gwant = g;
          for (int64_t j = 0; j < rows; ++j)
            for (int64_t c = 0; c < n; ++c) {
              const float t = kp && kp[j] == 0.0f ? 0.0f : v[c];
              gwant[j * n + c] = acc ? gwant[j * n + c] + t : t;
            }
          k->put_rows(v.data(), rows, n, kp, g.data(), acc);
          ASSERT_EQ(g, gwant) << where << " acc=" << acc;
        }
      }
    }
  });
}

// PReLU and Maximum/Minimum's selections on every ISA, over widths with tails, with zeros,
// ties and NaN: PReLU's x or 0 + alpha·x and its gradient (dy, alpha·dy, 0 at 0), written and
// accumulated; the max's (min's) gradient to the first input on ties and NaN.
TEST(Selections, PreluAndPickGradMatchTheScalarRulesOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {1, 7, 16, 17, 40}) {
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> x = random_vec(n, 120 + n), alpha = random_vec(n, 121);
      std::vector<float> dy = random_vec(n, 122), b = random_vec(n, 123);
      x[0] = 0.0f;
      if (n > 3) x[1] = -0.0f, b[2] = x[2], b[3] = std::nanf("");
      std::vector<float> y(n + 1, -5.0f);
      elementwise_kernels()->prelu(x.data(), alpha.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float want = x[i] > 0.0f ? x[i] : 0.0f + alpha[i] * x[i];
        ASSERT_TRUE(y[i] == want && std::signbit(y[i]) == std::signbit(want)) << where;
      }
      ASSERT_EQ(y[n], -5.0f) << where;
      for (bool acc : {false, true}) {
        std::vector<float> g = random_vec(n + 1, 124), before = g;
        elementwise_kernels()->prelu_grad(x.data(), alpha.data(), dy.data(), g.data(), n, acc);
        for (int64_t i = 0; i < n; ++i) {
          const float r = x[i] > 0.0f ? dy[i] : (x[i] < 0.0f ? alpha[i] * dy[i] : 0.0f);
          ASSERT_EQ(g[i], acc ? before[i] + r : r) << where;
        }
        ASSERT_EQ(g[n], before[n]) << where;
      }
      for (bool max : {true, false}) {
        for (bool second : {false, true}) {
          std::vector<float> g(n + 1, -5.0f);
          elementwise_kernels()->pick_grad(x.data(), b.data(), dy.data(), g.data(), n, max,
                                           second);
          for (int64_t i = 0; i < n; ++i) {
            const bool wins = max ? b[i] > x[i] : b[i] < x[i];
            ASSERT_EQ(g[i], wins == second ? dy[i] : 0.0f) << where << " i=" << i;
          }
          ASSERT_EQ(g[n], -5.0f) << where;
        }
      }
    }
  });
}

// L1/L2 regularization on every ISA over lengths with tails: the sums against a double loop
// (each left 0 when its factor is 0, infinities included), and the gradient l1·sign(w) + 2·l2·w
// (sign 0 at ±0 and NaN) written, accumulated, or not asked for.
TEST(Regularize, SumsAndGradientMatchTheScalarRulesOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 7, 8, 17, 100}) {
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> w = random_vec(n, 140 + n, 3.0f);
      w[0] = 0.0f;
      if (n > 7) w[3] = -0.0f;
      if (n == 17) w[5] = std::nanf("");  // (the sums NaN: checked as such)
      for (auto [l1, l2] : {std::pair{0.01f, 0.0f}, {0.0f, 0.003f}, {0.02f, 0.5f}}) {
        const std::string at = where + " l1=" + std::to_string(l1) + " l2=" + std::to_string(l2);
        double a = 0.0, b = 0.0;
        for (float v : w) a += std::fabs(static_cast<double>(v)), b += double(v) * v;
        double sums[2] = {-1.0, -1.0};
        for (bool first : {true, false}) {
          std::vector<float> g = random_vec(n + 1, 141), before = g;
          k->regularize(w.data(), g.data(), n, l1, l2, first, sums);
          for (int64_t i = 0; i < n; ++i) {
            const float s = w[i] > 0.0f ? 1.0f : (w[i] < 0.0f ? -1.0f : 0.0f);
            const float r = l1 * s + 2.0f * l2 * w[i];
            const float want = first ? r : before[i] + r;
            ASSERT_TRUE(g[i] == want || (std::isnan(g[i]) && std::isnan(want))) << at;
          }
          ASSERT_EQ(g[n], before[n]) << at;
        }
        for (int j = 0; j < 2; ++j) {
          const double want = (j == 0 ? l1 : l2) == 0.0f ? 0.0 : (j == 0 ? a : b);
          if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(sums[j])) << at;
          } else {
            ASSERT_NEAR(sums[j], want, 1e-12 * std::fabs(want)) << at << " sum " << j;
          }
        }
        std::vector<float> big(n, 1.0f);
        big[n - 1] = std::numeric_limits<float>::infinity();
        k->regularize(big.data(), nullptr, n, 0.0f, l2, false, sums);
        ASSERT_EQ(sums[0], 0.0) << at;  // no 0·inf
        ASSERT_EQ(sums[1], l2 == 0.0f ? 0.0 : std::numeric_limits<double>::infinity()) << at;
      }
    }
  });
}

// A weight constraint's column pieces on every ISA: the squared sums per column, added to sq
// in double row by row (bit for bit a double loop's), and the scaling by column, over widths
// with tails and a leading dimension beyond the width.
TEST(ConstraintColumns, SquaredSumsAndScalingMatchTheScalarLoopsOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t w : {1, 5, 8, 17, 40}) {
      const std::string where = std::string(isa_name(isa)) + " w=" + std::to_string(w);
      const int64_t rows = 13, ld = w + 3;
      const std::vector<float> x = random_vec(rows * ld, 150 + w, 2.0f), f = random_vec(w, 151);
      std::vector<double> sq(w + 1, 0.25), want = sq;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < w; ++j) want[j] += double(x[r * ld + j]) * x[r * ld + j];
      k->col_sq_sums(x.data(), rows, ld, w, sq.data());
      ASSERT_EQ(sq, want) << where;
      std::vector<float> y = x, ywant = x;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < w; ++j) ywant[r * ld + j] *= f[j];
      k->scale_cols(y.data(), rows, ld, w, f.data());
      ASSERT_EQ(y, ywant) << where;
    }
  });
}

// clip_by_norm's scaling y·c / d on every ISA bit for bit the scalar's, with the divisor a power
// of two (done as a multiplication: subnormal and overflowing results included) or not.
TEST(ScaleDiv, MatchesTheScalarOrderOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {1, 7, 16, 33}) {
      std::vector<float> x = random_vec(n, 160 + n, 3.0f);
      x[0] = 3e38f;
      if (n > 2) x[1] = 1e-30f, x[2] = -0.0f;
      for (float c : {1.0f, 0.7f, 4.0f})
        for (float d : {1.0f, 0.5f, 2.5f, 0x1p-120f, 0x1p120f, 0x1p-127f, 0x1p-130f, 3e-39f}) {
          const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n) +
                                    " c=" + std::to_string(c) + " d=" + std::to_string(d);
          std::vector<float> y = x;
          elementwise_kernels()->scale_div(y.data(), n, c, d);
          for (int64_t i = 0; i < n; ++i) {
            const float want = x[i] * c / d;
            ASSERT_TRUE(y[i] == want || (std::isnan(y[i]) && std::isnan(want))) << where;
            ASSERT_EQ(std::signbit(y[i]), std::signbit(want)) << where;
          }
        }
    }
  });
}

// clipvalue's clamp on every ISA: the scalar rule with NaN, ±0 and infinities, tails included.
TEST(Clamp, MatchesTheScalarRuleOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {1, 7, 16, 33}) {
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> x = random_vec(n + 1, 170 + n, 2.0f);
      x[0] = std::nanf("");
      if (n > 3) x[1] = -0.0f, x[2] = -std::numeric_limits<float>::infinity(), x[3] = 0.5f;
      std::vector<float> y = x;
      elementwise_kernels()->clamp(y.data(), n, -0.5f, 0.5f);
      for (int64_t i = 0; i < n; ++i) {
        const float want = x[i] < -0.5f ? -0.5f : (x[i] > 0.5f ? 0.5f : x[i]);
        ASSERT_TRUE(y[i] == want || (std::isnan(y[i]) && std::isnan(want))) << where;
        ASSERT_EQ(std::signbit(y[i]), std::signbit(want)) << where;
      }
      ASSERT_EQ(y[n], x[n]) << where;
    }
  });
}

// A sparse row's kernel gradient on every ISA: bit for bit the per-entry axpy it replaces (in
// entry order, repeated columns included), only for columns in [lo, hi), the entries in range
// listed in order.
TEST(SparseRowScatter, MatchesPerEntryAxpyInOrderOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    const std::vector<int32_t> idx = {5, 0, 9, 5, 3, 8, 11, 7, 2, 5};
    const int64_t nnz = static_cast<int64_t>(idx.size()), cols = 12;
    const std::vector<float> val = random_vec(nnz, 180);
    for (int64_t n : {1, 16, 17, 40}) {
      const std::vector<float> d = random_vec(n, 181 + n);
      for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, cols}, {3, 8}, {6, 6}}) {
        const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n) +
                                  " lo=" + std::to_string(lo) + " hi=" + std::to_string(hi);
        std::vector<float> g = random_vec(cols * n, 182), want = g;
        std::vector<int64_t> list(nnz, -1), want_list;
        for (int64_t e = 0; e < nnz; ++e) {
          if (idx[e] < lo || idx[e] >= hi) continue;
          want_list.push_back(e);
          k->axpy(val[e], d.data(), want.data() + idx[e] * n, n);
        }
        const int64_t count = k->sparse_row_scatter(idx.data(), val.data(), nnz, d.data(),
                                                    g.data(), n, lo, hi, list.data());
        ASSERT_EQ(count, static_cast<int64_t>(want_list.size())) << where;
        ASSERT_EQ(std::vector<int64_t>(list.begin(), list.begin() + count), want_list) << where;
        ASSERT_EQ(g, want) << where;
      }
    }
  });
}

// Dense rows made sparse on every ISA: the stored values (not ±0; NaN and infinities stored),
// bit for bit, with their positions from `base`, over lengths with tails and empty blocks.
TEST(CompressStored, ListsTheNonZeroValuesInOrderOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {1, 15, 16, 17, 48, 100}) {
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> x(n, 0.0f);
      const std::vector<float> r = random_vec(n, 190 + n);
      for (int64_t j = 0; j < n; ++j)
        if (j >= 16 && j < 32) x[j] = 0.0f;  // an empty block
        else if (r[j] > 0.4f) x[j] = r[j];
      if (n > 40) x[40] = -0.0f, x[41] = std::nanf(""), x[42] = -INFINITY, x[43] = 1e-40f;
      std::vector<int32_t> idx(n, -7), want_idx;
      std::vector<float> val(n, -7.0f), want_val;
      for (int64_t j = 0; j < n; ++j) {
        uint32_t b;
        std::memcpy(&b, &x[j], sizeof b);
        if ((b & 0x7fffffffu) == 0) continue;
        want_idx.push_back(static_cast<int32_t>(j) + 1000);
        want_val.push_back(x[j]);
      }
      const int64_t count = elementwise_kernels()->compress_stored(x.data(), n, 1000,
                                                                   idx.data(), val.data());
      ASSERT_EQ(count, static_cast<int64_t>(want_idx.size())) << where;
      ASSERT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + count), want_idx) << where;
      ASSERT_EQ(0, std::memcmp(val.data(), want_val.data(), count * sizeof(float))) << where;
    }
  });
}

// use_ema's moving average on every ISA: bit for bit the scalar a·avg + b·w (two products,
// then their sum), over lengths with tails.
TEST(MovingAverage, MatchesTheScalarFormulaOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    for (int64_t n : {1, 15, 16, 33}) {
      const std::vector<float> w = random_vec(n, 200 + n, 3.0f);
      std::vector<float> avg = random_vec(n + 1, 201), want = avg;
      for (int64_t i = 0; i < n; ++i) want[i] = 0.99f * want[i] + 0.00999999f * w[i];
      elementwise_kernels()->moving_average(avg.data(), w.data(), n, 0.99f, 0.00999999f);
      ASSERT_EQ(avg, want) << isa_name(isa) << " n=" << n;
    }
  });
}

// The recurrent cells' kernels (graph_rnn.cc's LSTM and GRU steps) on every ISA: bit for bit
// the scalar formulas with the ISA's own sigmoid and tanh (act_forward), over unit counts with
// tails, and, in double, LSTM's and GRU's steps of Keras's formulas within float rounding.
TEST(RnnCells, MatchTheScalarFormulasOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    const float prm[4] = {0.0f, -1.0f, 0.0f, 1.0f};
    auto sig = [&](float v) {
      float y;
      k->act_forward(2, prm, &v, &y, 1);
      return y;
    };
    auto th = [&](float v) {
      float y;
      k->act_forward(3, prm, &v, &y, 1);
      return y;
    };
    for (int64_t u : {1, 7, 8, 17, 33}) {
      const std::string where = std::string(isa_name(isa)) + " u=" + std::to_string(u);
      const std::vector<float> z0 = random_vec(8 * u, 300 + u, 3.0f);
      const std::vector<float> cp = random_vec(u, 301 + u), og = random_vec(u, 302 + u);
      const std::vector<float> dh0 = random_vec(2 * u, 303 + u);
      for (bool has_c : {false, true}) {  // LSTM forward, then backward from its record
        std::vector<float> z = z0, want = z0;
        k->lstm_cell(z.data(), has_c ? cp.data() : nullptr, u);
        for (int64_t j = 0; j < u; ++j) {
          const float i = sig(z0[j]), f = sig(z0[u + j]), g = th(z0[2 * u + j]);
          const float o = sig(z0[3 * u + j]);
          const float c = has_c ? f * cp[j] + i * g : i * g;
          want[j] = i, want[u + j] = f, want[2 * u + j] = g, want[3 * u + j] = o;
          want[4 * u + j] = c, want[5 * u + j] = th(c), want[6 * u + j] = o * th(c);
          // Keras's step in double
          auto sd = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
          const double cd = sd(z0[u + j]) * (has_c ? cp[j] : 0.0) +
                            sd(z0[j]) * std::tanh(static_cast<double>(z0[2 * u + j]));
          ASSERT_NEAR(z[6 * u + j], sd(z0[3 * u + j]) * std::tanh(cd), 2e-6) << where;
        }
        ASSERT_EQ(z, want) << where << " lstm forward";
        std::vector<float> dh = dh0, wdh = dh0, zb = z;
        k->lstm_cell_backward(zb.data(), cp.data(), og.data(), dh.data(), dh.data() + u, u);
        for (int64_t j = 0; j < u; ++j) {
          const float gi = z[j], gf = z[u + j], gg = z[2 * u + j], go = z[3 * u + j];
          const float tc = z[5 * u + j];
          const float h_grad = wdh[j] + og[j];
          const float c_grad = wdh[u + j] + h_grad * go * (1.0f - tc * tc);
          want[j] = c_grad * gg * gi * (1.0f - gi);
          want[u + j] = c_grad * cp[j] * gf * (1.0f - gf);
          want[2 * u + j] = c_grad * gi * (1.0f - gg * gg);
          want[3 * u + j] = h_grad * tc * go * (1.0f - go);
          wdh[u + j] = c_grad * gf;
          wdh[j] = 0.0f;
        }
        ASSERT_EQ(zb, want) << where << " lstm backward";
        ASSERT_EQ(dh, wdh) << where << " lstm backward dh, dc";
      }
      // GRU: part 0 (reset after), parts 1 then 2 (reset before); hp or none
      for (int mode : {0, 1}) {
        for (bool has_h : {false, true}) {
          const float* hp = has_h ? cp.data() : nullptr;
          std::vector<float> z = z0, want = z0;
          if (mode == 0) {
            k->gru_cell(z.data(), hp, 0, u);
          } else {
            k->gru_cell(z.data(), nullptr, 1, u);
            k->gru_cell(z.data(), hp, 2, u);
          }
          for (int64_t j = 0; j < u; ++j) {
            const float gz = sig(z0[j] + z0[3 * u + j]), gr = sig(z0[u + j] + z0[4 * u + j]);
            const float rh = z0[5 * u + j];
            const float hh = th(z0[2 * u + j] + (mode == 0 ? gr * rh : rh));
            want[j] = gz, want[u + j] = gr, want[2 * u + j] = hh;
            want[6 * u + j] = gz * (has_h ? cp[j] : 0.0f) + (1.0f - gz) * hh;
          }
          ASSERT_EQ(z, want) << where << " gru forward " << mode;
        }
        // backward from a record (h_{t-1} at 7u)
        std::vector<float> z = z0, want = z0, dh = dh0, wdh = dh0;
        k->gru_cell(z.data(), nullptr, 1, u);
        k->gru_cell(z.data(), cp.data(), mode == 0 ? 0 : 2, u);
        std::copy(cp.begin(), cp.end(), z.begin() + 7 * u);
        want = z;
        k->gru_cell_backward(z.data(), z.data() + 7 * u, og.data(), dh.data(), mode == 1, u);
        for (int64_t j = 0; j < u; ++j) {
          const float gz = want[j], gr = want[u + j], hh = want[2 * u + j];
          const float h_grad = wdh[j] + og[j];
          const float dz = h_grad * (cp[j] - hh) * gz * (1.0f - gz);
          const float dpre = h_grad * (1.0f - gz) * (1.0f - hh * hh);
          const float dr = dpre * want[5 * u + j] * gr * (1.0f - gr);
          want[j] = dz, want[2 * u + j] = dpre, want[3 * u + j] = dz;
          if (mode == 0) want[u + j] = dr, want[4 * u + j] = dr, want[5 * u + j] = dpre * gr;
          else want[5 * u + j] = dpre;
          wdh[j] = h_grad * gz;
        }
        ASSERT_EQ(z, want) << where << " gru backward " << mode;
        ASSERT_EQ(dh, wdh) << where << " gru backward dh " << mode;
      }
      for (bool masked : {false, true}) {  // reset before: the gradient through r·h
        std::vector<float> xr = random_vec(u, 310 + u, 0.5f), rr(u, 7.0f), dh = og;
        for (float& v : xr) v = 0.5f + v;  // (an r in (0, 1))
        std::vector<float> wxr = xr, wrr = rr, wdh = og;
        const float* m = masked ? dh0.data() : nullptr;
        k->gru_reset_backward(xr.data(), rr.data(), cp.data(), z0.data(), m, dh.data(), u);
        for (int64_t j = 0; j < u; ++j) {
          const float gr = wxr[j];
          wxr[j] = wrr[j] = z0[j] * cp[j] * gr * (1.0f - gr);
          wdh[j] += masked ? z0[j] * gr * dh0[j] : z0[j] * gr;
        }
        ASSERT_EQ(xr, wxr) << where;
        ASSERT_EQ(rr, wrr) << where;
        ASSERT_EQ(dh, wdh) << where;
      }
    }
  });
}

// Softmax and log_softmax over a middle axis (each column of a len × inner block) on every
// ISA against double formulas, with tails of columns, large values and a NaN column; the
// backward from the output, written and accumulated.
TEST(SoftmaxCols, MatchDoubleFormulasOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t len : {1, 3, 20}) {
      for (int64_t inner : {1, 5, 16, 17}) {
        const std::string where = std::string(isa_name(isa)) + " len=" + std::to_string(len) +
                                  " inner=" + std::to_string(inner);
        const int64_t n = len * inner;
        std::vector<float> x = random_vec(n, 130 + n, 4.0f), dy = random_vec(n, 131);
        x[0] += 80.0f;  // exp overflows unless the max is taken out
        if (inner > 2) x[(len - 1) * inner + 2] = std::nanf("");
        for (bool log : {false, true}) {
          std::vector<float> y(n + 1, -9.0f);
          k->softmax_cols(x.data(), y.data(), len, inner, log);
          for (int64_t c = 0; c < inner; ++c) {
            double mx = -INFINITY, sum = 0.0;
            bool nan = false;
            for (int64_t j = 0; j < len; ++j) {
              mx = std::max(mx, double(x[j * inner + c]));
              nan = nan || std::isnan(x[j * inner + c]);
            }
            for (int64_t j = 0; j < len; ++j) sum += std::exp(x[j * inner + c] - mx);
            for (int64_t j = 0; j < len; ++j) {
              const float got = y[j * inner + c];
              if (nan) {
                ASSERT_TRUE(std::isnan(got)) << where;
                continue;
              }
              const double z = x[j * inner + c] - mx - std::log(sum);
              const double want = log ? z : std::exp(z);
              ASSERT_NEAR(got, want, 2e-6 * (1.0 + std::fabs(want))) << where << " c=" << c;
            }
          }
          ASSERT_EQ(y[n], -9.0f) << where;
          // the backward, from the output of x without its NaN
          std::vector<float> clean = x;
          for (float& v : clean)
            if (std::isnan(v)) v = 0.5f;
          k->softmax_cols(clean.data(), y.data(), len, inner, log);
          for (bool acc : {false, true}) {
            std::vector<float> dx = random_vec(n, 132), before = dx;
            k->softmax_cols_jvp(y.data(), dy.data(), dx.data(), len, inner, log, acc);
            for (int64_t c = 0; c < inner; ++c) {
              double dot = 0.0;
              for (int64_t j = 0; j < len; ++j)
                dot += log ? dy[j * inner + c] : double(dy[j * inner + c]) * y[j * inner + c];
              for (int64_t j = 0; j < len; ++j) {
                const int64_t e = j * inner + c;
                const double v = log ? dy[e] - std::exp(double(y[e])) * dot : y[e] * (dy[e] - dot);
                ASSERT_NEAR(dx[e], (acc ? before[e] : 0.0) + v, 1e-5 * (1.0 + std::fabs(v)))
                    << where;
              }
            }
          }
        }
      }
    }
  });
}

// Max pooling's row kernels on every ISA: the largest value of each column (a later NaN
// passed over), and its gradient shared equally between ties, written and accumulated.
TEST(Pooling, MaxRowKernelsPickTheMaxAndShareTiesOnEveryIsa) {
  for_each_isa([&](Isa isa) {
    const ElementwiseKernels* k = elementwise_kernels();
    for (int64_t n : {1, 7, 16, 17, 40}) {
      const int64_t rows = 6;
      const std::string where = std::string(isa_name(isa)) + " n=" + std::to_string(n);
      std::vector<float> x = random_vec(rows * n, 140 + n), dy = random_vec(n, 141);
      for (float& v : x) v = std::round(v * 2.0f) / 2.0f;  // ties
      if (n > 3) x[3 * n + 1] = std::nanf("");
      std::vector<float> y(n + 1, -9.0f);
      k->max_rows(x.data(), rows, n, y.data());
      for (int64_t c = 0; c < n; ++c) {
        float want = x[c];
        for (int64_t j = 1; j < rows; ++j) want = x[j * n + c] > want ? x[j * n + c] : want;
        ASSERT_EQ(y[c], want) << where;
      }
      ASSERT_EQ(y[n], -9.0f) << where;
      for (bool acc : {false, true}) {
        std::vector<float> g = random_vec(rows * n + 1, 142), before = g;
        k->max_rows_grad(x.data(), y.data(), dy.data(), g.data(), rows, n, acc);
        for (int64_t c = 0; c < n; ++c) {
          int ties = 0;
          for (int64_t j = 0; j < rows; ++j) ties += x[j * n + c] == y[c];
          for (int64_t j = 0; j < rows; ++j) {
            const float t = x[j * n + c] == y[c] ? dy[c] / static_cast<float>(std::max(ties, 1))
                                                  : 0.0f;
            ASSERT_EQ(g[j * n + c], acc ? before[j * n + c] + t : t) << where;
          }
        }
        ASSERT_EQ(g[rows * n], before[rows * n]) << where;
      }
    }
  });
}

// Soft targets over many classes (more than the 64 columns the non-zero targets are listed
// in at a time), some zero: the loss against -Σ y·log(p/Σp) in double, the gradients (plain
// and through a fused softmax) against their formulas.
TEST(Losses, CrossentropyOverManyClassesWithSoftTargets) {
  const int64_t rows = 5;
  for (int64_t cols : {3, 10, 64, 65, 150}) {
    std::vector<float> p = random_vec(rows * cols, 40 + cols), y(rows * cols, 0.0f);
    for (float& v : p) v = std::fabs(v) + 0.01f;  // not normalised: the loss divides by Σp
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = r % 3; j < cols; j += 1 + (j * 7 + r) % 11) y[r * cols + j] = 0.25f + j % 3;
    std::vector<float> g(p.size()), gf(p.size());
    const double got = loss_forward_backward(Loss::kCategoricalCrossentropy, p.data(), y.data(),
                                             rows, cols, g.data(), rows, false);
    loss_forward_backward(Loss::kCategoricalCrossentropy, p.data(), y.data(), rows, cols,
                          gf.data(), rows, true);
    double want = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0.0, ysum = 0.0, dot = 0.0;
      for (int64_t j = 0; j < cols; ++j) sum += p[r * cols + j], ysum += y[r * cols + j];
      for (int64_t j = 0; j < cols; ++j) {
        const double yj = y[r * cols + j], q = p[r * cols + j] / sum;
        if (yj != 0.0) want -= yj * std::log(q);
        dot -= yj;  // Σ_j (-y_j/q_j)·q_j
      }
      for (int64_t j = 0; j < cols; ++j) {
        const double yj = y[r * cols + j], q = p[r * cols + j] / sum;
        const double dq = yj != 0.0 ? -yj / q : 0.0;
        EXPECT_NEAR(g[r * cols + j], (dq - dot) / sum / rows, 1e-5 * (1 + std::fabs(dq / sum)))
            << cols;
        EXPECT_NEAR(gf[r * cols + j], (p[r * cols + j] * ysum - yj) / rows,
                    1e-6 * (1 + ysum)) << cols;
      }
    }
    EXPECT_NEAR(got, want, 2e-6 * std::fabs(want)) << cols;
  }
}

// Categorical accuracy takes the first largest value of a row as its class (Keras's argmax),
// for the prediction and for one-hot or soft targets; a NaN is never the largest after the
// first value.
TEST(Metrics, CategoricalAccuracyTakesTheFirstLargest) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t cols = 4;
  //                          prediction row          target row
  const float p[] = {0.2f, 0.4f, 0.4f, 0.0f,    nan, 0.9f, 0.1f, 0.0f,
                     0.1f, 0.1f, nan, 0.7f,     0.3f, 0.3f, 0.3f, 0.1f};
  const float y[] = {0.0f, 1.0f, 0.0f, 0.0f,    0.0f, 1.0f, 0.0f, 0.0f,
                     0.0f, 0.0f, 0.0f, 1.0f,    0.5f, 0.5f, 0.0f, 0.0f};
  // row 0: tie at 1 and 2 -> 1, a hit; row 1: NaN first -> 0, a miss; row 2: the NaN skipped
  // -> 3, a hit; row 3: tie of 0, 1, 2 -> 0, and the soft target's tie -> 0: a hit.
  EXPECT_EQ(accuracy_sum(AccuracyKind::kCategorical, p, y, 4, cols, 0.5f), 3.0);
  const float ids[] = {1.0f, 1.0f, 3.0f, 0.0f};
  EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseCategorical, p, ids, 4, cols, 0.5f), 3.0);
}

// The same rule on every ISA over rows narrower and wider than a vector (tails): each row's
// class is std::max_element's, with ties, NaN (first or not) and -inf placed at random; and
// top-3 accuracy counts a class as a hit when fewer than 3 values lie above its value.
TEST(Metrics, CategoricalAccuracyTakesTheFirstLargestOnEveryIsa) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = HUGE_VALF;
  for_each_isa([&](Isa isa) {
    std::mt19937 rng(3);
    for (int64_t cols : {1, 5, 16, 17, 40, 1000}) {
      for (int trial = 0; trial < 60; ++trial) {
        std::vector<float> row(cols);
        for (float& v : row) v = static_cast<float>(rng() % 7);  // ties
        for (int k = 0; k < 3; ++k) {
          const float special[] = {nan, -inf, 7.0f};
          row[rng() % cols] = special[rng() % 3];
        }
        const int64_t want = std::max_element(row.begin(), row.end()) - row.begin();
        for (int64_t id : {want, (want + 1) % cols}) {
          const float label = static_cast<float>(id);
          EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseCategorical, row.data(), &label, 1, cols,
                                 0.5f),
                    id == want ? 1.0 : 0.0)
              << isa_name(isa) << " cols=" << cols << " trial=" << trial;
          // top 3: fewer than 3 values above the class's (never for a NaN class value)
          const int64_t above = std::count_if(row.begin(), row.end(),
                                              [&](float v) { return v > row[id]; });
          EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseTopKCategorical, row.data(), &label, 1,
                                 cols, 3.0f),
                    !std::isnan(row[id]) && above < 3 ? 1.0 : 0.0)
              << isa_name(isa) << " cols=" << cols << " trial=" << trial << " top 3";
        }
      }
    }
  });
}

// Keras's label smoothing: the loss and its gradient (fused or not) on targets y are those on
// y·(1 - s) + s/k (k: classes, or 2 for the binary cross-entropy), and s = 0 changes nothing.
TEST(Losses, LabelSmoothingEqualsTheLossOnSmoothedTargets) {
  const int64_t rows = 6, cols = 4;
  const float s = 0.2f;
  std::vector<float> z = random_vec(rows * cols, 12), soft = z, sig = z;
  activation_forward(Activation::kSoftmax, ActivationParams(), z.data(), soft.data(), rows,
                     cols);
  activation_forward(Activation::kSigmoid, ActivationParams(), z.data(), sig.data(), rows, cols);
  std::vector<float> y(rows * cols, 0.0f);
  for (int64_t r = 0; r < rows; ++r) y[r * cols + (r * 3) % cols] = 1.0f;
  struct Case { Loss loss; const std::vector<float>* p; bool fused; float k; };
  const Case cases[] = {{Loss::kCategoricalCrossentropy, &soft, false, float(cols)},
                        {Loss::kCategoricalCrossentropy, &soft, true, float(cols)},
                        {Loss::kCategoricalCrossentropyLogits, &z, false, float(cols)},
                        {Loss::kBinaryCrossentropy, &sig, false, 2.0f},
                        {Loss::kBinaryCrossentropy, &sig, true, 2.0f},
                        {Loss::kBinaryCrossentropyLogits, &z, false, 2.0f}};
  for (const Case& c : cases) {
    std::vector<float> ys(y.size());
    for (size_t i = 0; i < y.size(); ++i) ys[i] = y[i] * (1.0f - s) + s / c.k;
    std::vector<float> g(y.size()), gs(y.size()), g0(y.size()), gd(y.size());
    const double got = loss_forward_backward(c.loss, c.p->data(), y.data(), rows, cols, g.data(),
                                             rows, c.fused, nullptr, 1, s);
    const double want = loss_forward_backward(c.loss, c.p->data(), ys.data(), rows, cols,
                                              gs.data(), rows, c.fused);
    EXPECT_NEAR(got, want, 1e-5 * std::fabs(want)) << static_cast<int>(c.loss);
    for (size_t i = 0; i < g.size(); ++i)
      EXPECT_NEAR(g[i], gs[i], 1e-6) << static_cast<int>(c.loss) << " fused " << c.fused;
    // s = 0: bitwise the loss without smoothing.
    const double plain = loss_forward_backward(c.loss, c.p->data(), y.data(), rows, cols,
                                               gd.data(), rows, c.fused);
    EXPECT_EQ(loss_forward_backward(c.loss, c.p->data(), y.data(), rows, cols, g0.data(), rows,
                                    c.fused, nullptr, 1, 0.0f),
              plain);
    EXPECT_EQ(g0, gd);
  }
  // The categorical one against its formula in double: -Σ_j (y_j (1 - s) + s/k) log p_j.
  double ref = 0.0;
  for (int64_t i = 0; i < rows * cols; ++i)
    ref -= (y[i] * (1.0 - s) + s / cols) * std::log(static_cast<double>(soft[i]));
  EXPECT_NEAR(loss_forward_backward(Loss::kCategoricalCrossentropy, soft.data(), y.data(), rows,
                                    cols, nullptr, rows, false, nullptr, 1, s),
              ref, 1e-5 * ref);
}

// Keras's other losses: every gradient against central differences of the loss itself (the
// loss is summed in double from float terms, so h = 1e-3 leaves errors near 1e-4 of the
// gradient's scale), away from the kinks (|p - y| of at least 0.05 where a loss has one).
TEST(Losses, OtherLossGradientsMatchFiniteDifferences) {
  const int64_t rows = 5, cols = 7;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.05f, 0.95f);
  struct Case { Loss loss; float param; bool signs; };
  const Case cases[] = {
      {Loss::kMeanAbsolutePercentageError, 0.0f, false}, {Loss::kMeanSquaredLogarithmicError,
                                                           0.0f, false},
      {Loss::kCosineSimilarity, 0.0f, false}, {Loss::kHuber, 1.0f, false},
      {Loss::kHuber, 0.2f, false}, {Loss::kLogCosh, 0.0f, false}, {Loss::kHinge, 1.0f, false},
      {Loss::kHinge, 0.0f, true}, {Loss::kSquaredHinge, 1.0f, false},
      {Loss::kCategoricalHinge, 0.0f, false}, {Loss::kKLDivergence, 0.0f, false},
      {Loss::kPoisson, 0.0f, false}};
  for (const Case& c : cases) {
    std::vector<float> p(rows * cols), y(rows * cols);
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = c.loss == Loss::kHinge || c.loss == Loss::kSquaredHinge ||
                     c.loss == Loss::kCategoricalHinge
                 ? 3.0f * u(rng) - 1.5f
                 : u(rng);
      y[i] = c.signs ? (u(rng) < 0.5f ? -1.0f : 1.0f)
             : c.param == 1.0f && c.loss != Loss::kHuber ? (u(rng) < 0.5f ? 0.0f : 1.0f)
                                                         : u(rng);
      if (c.loss == Loss::kCategoricalHinge) y[i] = (i % cols) == (i / cols) % cols;
      while (std::fabs(p[i] - y[i]) < 0.05f || std::fabs(std::fabs(p[i] - y[i]) - 0.2f) < 0.05f ||
             std::fabs(std::fabs(p[i] * (c.param == 1.0f ? 2 * y[i] - 1 : y[i])) - 1.0f) < 0.05f)
        p[i] += 0.11f;
    }
    std::vector<float> g(p.size());
    loss_forward_backward(c.loss, p.data(), y.data(), rows, cols, g.data(), rows, false,
                          nullptr, 1, c.param);
    double scale = 0.0;
    for (float v : g) scale = std::max(scale, std::fabs(static_cast<double>(v)));
    ASSERT_GT(scale, 0.0) << static_cast<int>(c.loss);
    for (size_t i = 0; i < p.size(); ++i) {
      const float h = 1e-3f, keep = p[i];
      p[i] = keep + h;
      const double up = loss_forward_backward(c.loss, p.data(), y.data(), rows, cols, nullptr,
                                              rows, false, nullptr, 1, c.param);
      p[i] = keep - h;
      const double down = loss_forward_backward(c.loss, p.data(), y.data(), rows, cols, nullptr,
                                                rows, false, nullptr, 1, c.param);
      p[i] = keep;
      const double fd = (up - down) / (2.0 * h) / rows;
      EXPECT_NEAR(g[i], fd, 2e-3 * scale) << "loss " << static_cast<int>(c.loss) << " i " << i;
    }
  }
}

// Keras's hinge target conversion: {0, 1} targets read as {-1, 1} only when every target
// value of the batch is 0 or 1.
TEST(Losses, HingeConvertsBinaryTargetsOfTheWholeBatch) {
  const std::vector<float> binary = {0, 1, 1, 0}, signs = {-1, 1, 1, -1}, mixed = {0, 1, 0.5, 1};
  EXPECT_EQ(hinge_targets(binary.data(), 4), 1.0f);
  EXPECT_EQ(hinge_targets(signs.data(), 4), 0.0f);
  EXPECT_EQ(hinge_targets(mixed.data(), 4), 0.0f);
  const std::vector<float> p = {0.3f, -0.4f, 2.0f, 0.1f};
  EXPECT_EQ(loss_forward_backward(Loss::kHinge, p.data(), binary.data(), 1, 4, nullptr, 1, false,
                                  nullptr, 1, 1.0f),
            loss_forward_backward(Loss::kHinge, p.data(), signs.data(), 1, 4, nullptr, 1, false,
                                  nullptr, 1, 0.0f));
  // max(1 - t·p, 0) by hand for t = -1, 1, 1, -1: 1.3, 1.4, 0, 1.1; mean 0.95
  EXPECT_NEAR(loss_forward_backward(Loss::kHinge, p.data(), signs.data(), 1, 4, nullptr, 1,
                                    false),
              0.95, 1e-6);
}

TEST(Metrics, ConfusionCountsMatchADoubleLoopWithAndWithoutWeights) {
  // Keras's Precision/Recall counts: p > threshold predicted, y != 0 actual, summed over every
  // value of a row, each row's count times its sample weight; tails of 1 to 17 columns.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int64_t cols : {1, 3, 16, 17}) {
    const int64_t rows = 9;
    std::vector<float> p(rows * cols), y(rows * cols), w(rows);
    for (auto& v : p) v = u(rng);
    for (auto& v : y) v = u(rng) < 0.4f ? 1.0f : 0.0f;
    for (auto& v : w) v = u(rng);
    const float t = 0.35f;
    double tp = 0.0, pp = 0.0, ap = 0.0, hits = 0.0;
    int64_t tp_n = 0, pp_n = 0, ap_n = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const bool pred = p[r * cols + j] > t, act = y[r * cols + j] != 0.0f;
        tp += (pred && act) * static_cast<double>(w[r]);
        pp += pred * static_cast<double>(w[r]);
        ap += act * static_cast<double>(w[r]);
        tp_n += pred && act, pp_n += pred, ap_n += act, hits += pred == act;
      }
    // unweighted: the counts over all values at once
    EXPECT_EQ(accuracy_sum(AccuracyKind::kTruePositives, p.data(), y.data(), rows, cols, t),
              double(tp_n));
    EXPECT_EQ(accuracy_sum(AccuracyKind::kPredictedPositives, p.data(), y.data(), rows, cols, t),
              double(pp_n));
    EXPECT_EQ(accuracy_sum(AccuracyKind::kActualPositives, p.data(), y.data(), rows, cols, t),
              double(ap_n));
    EXPECT_NEAR(accuracy_sum(AccuracyKind::kBinary, p.data(), y.data(), rows, cols, t),
                hits / cols, 1e-12);
    EXPECT_NEAR(accuracy_sum(AccuracyKind::kTruePositives, p.data(), y.data(), rows, cols, t,
                             w.data()), tp, 1e-9);
    EXPECT_NEAR(accuracy_sum(AccuracyKind::kPredictedPositives, p.data(), y.data(), rows, cols,
                             t, w.data()), pp, 1e-9);
    EXPECT_NEAR(accuracy_sum(AccuracyKind::kActualPositives, p.data(), y.data(), rows, cols, t,
                             w.data()), ap, 1e-9);
  }
}

// Keras's Precision/Recall filters: with top_k only a row's k highest values (ties to the
// lower index) can be predicted positives; with class_id only that column counts.
TEST(Metrics, ConfusionCountsWithTopKAndClassId) {
  const int64_t cols = 4;
  const std::vector<float> p = {0.9f, 0.6f, 0.6f, 0.1f,   // top 2: columns 0 and 1 (tie to 1)
                                0.2f, 0.3f, 0.8f, 0.7f};  // top 2: columns 2 and 3
  const std::vector<float> y = {1, 0, 1, 0, 0, 1, 1, 0};
  const auto count = [&](AccuracyKind kind, float t, int64_t class_id, int64_t top_k) {
    return accuracy_sum(kind, p.data(), y.data(), 2, cols, t, nullptr, 1, class_id, top_k);
  };
  EXPECT_EQ(count(AccuracyKind::kPredictedPositives, -1e10f, -1, 2), 4.0);
  EXPECT_EQ(count(AccuracyKind::kTruePositives, -1e10f, -1, 2), 2.0);   // (0, 0) and (1, 2)
  EXPECT_EQ(count(AccuracyKind::kPredictedPositives, 0.75f, -1, 2), 2.0);  // 0.9 and 0.8
  EXPECT_EQ(count(AccuracyKind::kTruePositives, 0.5f, 2, 0), 2.0);      // column 2 only
  EXPECT_EQ(count(AccuracyKind::kPredictedPositives, 0.5f, 2, 2), 1.0);  // 0.6 lost the tie
  EXPECT_EQ(count(AccuracyKind::kActualPositives, 0.5f, 1, 0), 1.0);
}

// The same filter over whole rows (found through the row's k-th largest value) against its
// definition, entry by entry: j is among the top k when fewer than k entries are ahead of it
// (greater, or equal at a lower index; NaN never ahead), over rows with ties, NaN and -inf.
TEST(Metrics, ConfusionTopKOverWholeRowsMatchesItsDefinition) {
  std::mt19937 rng(9);
  for (int64_t cols : {2, 3, 7, 40}) {
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> p(cols), y(cols);
      for (int64_t j = 0; j < cols; ++j) {
        p[j] = static_cast<float>(rng() % 5) * 0.25f;  // ties
        y[j] = static_cast<float>(rng() % 2);
      }
      for (int s = 0; s < 2; ++s) {
        const float special[] = {std::nanf(""), -HUGE_VALF, 1.0f};
        p[rng() % cols] = special[rng() % 3];
      }
      for (int64_t k : {1, 2, 5}) {
        for (float t : {-1e10f, 0.3f}) {
          double tp = 0, pp = 0;
          for (int64_t j = 0; j < cols; ++j) {
            int64_t ahead = 0;
            for (int64_t i = 0; i < cols; ++i) ahead += p[i] > p[j] || (i < j && p[i] == p[j]);
            const bool predicted = ahead < k && p[j] > t;
            pp += predicted;
            tp += predicted && y[j] != 0.0f;
          }
          EXPECT_EQ(accuracy_sum(AccuracyKind::kPredictedPositives, p.data(), y.data(), 1, cols,
                                 t, nullptr, 1, -1, k), pp)
              << "cols=" << cols << " trial=" << trial << " k=" << k;
          EXPECT_EQ(accuracy_sum(AccuracyKind::kTruePositives, p.data(), y.data(), 1, cols, t,
                                 nullptr, 1, -1, k), tp)
              << "cols=" << cols << " trial=" << trial << " k=" << k;
        }
      }
    }
  }
}

// Keras's in_top_k: the target is in the top k when fewer than k predictions are strictly
// higher than its own, so ties count in; a NaN at the target never does; a class id out of
// range is a miss, not a read past the row.
TEST(Metrics, TopKCountsTiesInAsKerasDoes) {
  const int64_t cols = 4;
  const float nan = std::nanf("");
  const std::vector<float> p = {0.1f, 0.4f, 0.4f, 0.1f,   // target 3: 3 higher, miss at k=2
                                0.3f, 0.3f, 0.3f, 0.1f,   // target 2: tie for first, hit
                                0.5f, 0.2f, 0.2f, 0.1f,   // target 1: 1 higher, hit
                                0.1f, nan, 0.2f, 0.3f,    // target 1: NaN, miss
                                0.2f, 0.2f, 0.2f, 0.4f};  // target 9: out of range, miss
  const std::vector<float> ids = {3, 2, 1, 1, 9};
  std::vector<float> onehot(4 * cols, 0.0f);
  for (int64_t r = 0; r < 4; ++r) onehot[r * cols + static_cast<int64_t>(ids[r])] = 1.0f;
  EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseTopKCategorical, p.data(), ids.data(), 5, cols,
                         2.0f), 2.0);
  EXPECT_EQ(accuracy_sum(AccuracyKind::kTopKCategorical, p.data(), onehot.data(), 4, cols, 2.0f),
            2.0);
  EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseTopKCategorical, p.data(), ids.data(), 5, cols,
                         4.0f), 3.0);  // every row but the NaN and the out-of-range id
  EXPECT_EQ(accuracy_sum(AccuracyKind::kSparseTopKCategorical, p.data(), ids.data(), 5, cols,
                         1.0f), 1.0);  // only the tie for first
}

// Keras's AUC buckets: max(ceil(p·(n - 1)) - 1, 0) of p clipped to [0, 1], so a value exactly
// on threshold i/(n - 1) counts below it (Keras's p > threshold); weights per row; a NaN
// prediction lands in bucket 0, never outside the counts.
TEST(Metrics, AucBucketsPlaceValuesAsKeras) {
  const int64_t n = 5;  // thresholds -eps, 0.25, 0.5, 0.75, 1 + eps
  const std::vector<float> p = {0.0f, 0.25f, 0.26f, 0.5f, 0.9f, 1.0f, -3.0f, 7.0f, std::nanf("")};
  const std::vector<float> y = {1, 0, 1, 1, 0, 1, 0, 1, 1};
  const std::vector<float> w = {2, 3, 5};  // one weight per row of 3 values
  std::vector<double> out(2 * n, 0.0);
  auc_buckets(p.data(), y.data(), 3, 3, n, false, out.data(), w.data());
  // buckets: 0->0, 0.25->0, 0.26->1, 0.5->1, 0.9->3, 1->3, -3->0, 7->3, NaN->0
  const std::vector<double> want = {2 + 5, 2 + 3, 0, 3 + 5, 0,    // positives
                                    2 + 5, 0, 0, 3, 0};           // negatives
  EXPECT_EQ(out, want);
  // logits: sigmoid first (0 -> 0.5: bucket 1), and the counts add to what out held
  const std::vector<float> z = {0.0f}, one = {1.0f};
  auc_buckets(z.data(), one.data(), 1, 1, n, true, out.data());
  EXPECT_EQ(out[1], 2 + 3 + 1.0);
  // per column: the same counts, kept apart; summed over the columns they are the above
  std::vector<double> cols(2 * n * 3, 0.0), total(2 * n, 0.0);
  auc_buckets(p.data(), y.data(), 3, 3, n, false, cols.data(), w.data(), 1, true);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t b = 0; b < n; ++b) {
      total[b] += cols[c * n + b];
      total[n + b] += cols[(3 + c) * n + b];
    }
  EXPECT_EQ(total, want);
  EXPECT_EQ(cols[2 * n + 0], 5.0);  // column 2: the NaN (row 2, weight 5), a positive
}

// The SensitivitySpecificityBase buckets (above_zero): min(ceil(p·(n - 1)), n - 1) of p
// clipped to [0, 1], so bucket 0 holds the values above no threshold (p <= 0, as Keras's
// p > 0 fails there) and a value exactly on i/(n - 1) is above thresholds 0 to i - 1 only;
// with class_id only that column counts.
TEST(Metrics, ThresholdBucketsPlaceValuesAsKeras) {
  const int64_t n = 5;  // thresholds 0, 0.25, 0.5, 0.75, 1
  const std::vector<float> p = {0.0f, 0.25f, 0.26f, 0.5f, 0.9f, 1.0f, -3.0f, 7.0f, 0.01f};
  const std::vector<float> y = {1, 0, 1, 1, 0, 1, 0, 1, 1};
  const std::vector<float> w = {2, 3, 5};  // one weight per row of 3 values
  std::vector<double> out(2 * n, 0.0);
  auc_buckets(p.data(), y.data(), 3, 3, n, false, out.data(), w.data(), 1, false, nullptr,
              /*above_zero=*/true);
  // buckets: 0->0, 0.25->1, 0.26->2, 0.5->2, 0.9->4, 1->4, -3->0, 7->4, 0.01->1
  const std::vector<double> want = {2, 5, 2 + 3, 0, 3 + 5,   // positives
                                    5, 2, 0, 0, 3};          // negatives
  EXPECT_EQ(out, want);
  // class_id 1: the middle column alone (0.25 negative, 0.9 negative, 7 positive)
  std::vector<double> mid(2 * n, 0.0);
  auc_buckets(p.data(), y.data(), 3, 3, n, false, mid.data(), w.data(), 1, false, nullptr,
              true, 1);
  EXPECT_EQ(mid, (std::vector<double>{0, 0, 0, 0, 5, 0, 2, 0, 0, 3}));
}

// Keras's R2Score sums per column: Σ w·y, Σ w·y², Σ w·(y - p)², Σ w, added to what out holds.
TEST(Metrics, R2SumsPerColumnAgainstADoubleLoop) {
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t rows = 7, cols = 3;
  std::vector<float> p(rows * cols), y(rows * cols), w(rows);
  for (auto& v : p) v = nd(rng);
  for (auto& v : y) v = nd(rng);
  for (auto& v : w) v = std::fabs(nd(rng));
  std::vector<double> out(4 * cols, 1.0), want(4 * cols, 1.0);
  r2_sums(p.data(), y.data(), rows, cols, out.data(), w.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double yv = y[r * cols + c], e = yv - p[r * cols + c], wr = w[r];
      want[c] += wr * yv;
      want[cols + c] += wr * yv * yv;
      want[2 * cols + c] += wr * e * e;
      want[3 * cols + c] += wr;
    }
  for (int64_t i = 0; i < 4 * cols; ++i) EXPECT_NEAR(out[i], want[i], 1e-12) << i;
}

// Keras's F-score counts: with threshold 0 a prediction is positive where it is its row's
// maximum (ties both) and |p| > 1e-9; with a threshold where p > threshold.
TEST(Metrics, FScoreSumsByRowMaximumAndThreshold) {
  const int64_t cols = 3;
  const std::vector<float> p = {0.2f, 0.5f, 0.3f,   // max: class 1
                                0.4f, 0.4f, 0.2f,   // tie: classes 0 and 1
                                0.0f, 0.0f, 0.0f};  // all 0: none (|p| > 1e-9 fails)
  const std::vector<float> y = {0, 1, 0, 1, 0, 0, 0, 0, 1};
  const std::vector<float> w = {1.0f, 2.0f, 4.0f};
  std::vector<double> out(4 * cols, 0.0);
  f_score_sums(p.data(), y.data(), 3, cols, 0.0f, out.data(), w.data());
  const std::vector<double> want = {2, 1, 0,    // tp: row 1 class 0 (w 2), row 0 class 1
                                    0, 2, 0,    // fp: row 1 class 1
                                    0, 0, 4,    // fn: row 2 class 2
                                    2, 1, 4};   // Σ w·y
  EXPECT_EQ(out, want);
  std::fill(out.begin(), out.end(), 0.0);
  f_score_sums(p.data(), y.data(), 3, cols, 0.35f, out.data());
  // p > 0.35: (0, 1), (1, 0), (1, 1)
  const std::vector<double> want_t = {1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  EXPECT_EQ(out, want_t);
}

TEST(Optimizers, RmspropGoldenKerasValue) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kRmsprop;
  c.learning_rate = 0.1f;
  float w = 10.0f, g = 10.0f, v = 0.0f;
  float* slots[] = {&v};
  optimizer_update(c, 1, &w, &g, slots, 1);
  EXPECT_NEAR(w, 9.683772f, 2e-6);
}

TEST(Optimizers, SgdMomentumMatchesFormulaOverSteps) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.learning_rate = 0.1f;
  c.momentum = 0.9f;
  std::vector<float> w = random_vec(19, 1), m(19, 0.0f);
  std::vector<double> wr(w.begin(), w.end()), mr(19, 0.0);
  float* slots[] = {m.data()};
  for (int step = 1; step <= 4; ++step) {
    std::vector<float> g = random_vec(19, 100 + step);
    optimizer_update(c, step, w.data(), g.data(), slots, 19);
    for (int i = 0; i < 19; ++i) {
      mr[i] = 0.9 * mr[i] - 0.1 * g[i];
      wr[i] += mr[i];
      EXPECT_NEAR(w[i], wr[i], 1e-5);
    }
  }
}

// The graph applies an update a few rows at a time as a gradient GEMM hands them over, or in
// per-thread shares: an element's result must not depend on where a chunk starts or ends,
// whether it falls in a whole vector or a partial one.
TEST(Optimizers, UpdateAppliedInChunksEqualsWholeOnEveryIsa) {
  const Isa saved = active_isa();
  std::vector<OptimizerConfig> configs(7);
  configs[0].kind = OptimizerKind::kRmsprop;
  configs[1].kind = OptimizerKind::kRmsprop;
  configs[1].momentum = 0.9f;
  configs[1].centered = true;
  configs[2].kind = OptimizerKind::kAdam;
  configs[3].kind = OptimizerKind::kAdam;
  configs[3].amsgrad = true;
  configs[3].weight_decay = 0.004f;
  configs[4].kind = OptimizerKind::kSgd;
  configs[4].momentum = 0.9f;
  configs[5].kind = OptimizerKind::kSgd;
  configs[5].momentum = 0.9f;
  configs[5].nesterov = true;
  configs[6].kind = OptimizerKind::kSgd;
  const int64_t n = 643;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    set_active_isa(isa);
    for (size_t c = 0; c < configs.size(); ++c) {
      const OptimizerStep step = prepare_optimizer_step(configs[c], 3);
      for (int64_t chunk : {int64_t{7}, int64_t{60}, int64_t{100}}) {
        std::vector<float> w = random_vec(n, 1), g = random_vec(n, 2, 0.01f);
        std::vector<std::vector<float>> slots(3);
        for (int s = 0; s < 3; ++s) {
          slots[s] = random_vec(n, 3 + s, 1e-3f);
          for (float& v : slots[s]) v = std::fabs(v);  // second moments are non-negative
        }
        std::vector<float> w2 = w;
        std::vector<std::vector<float>> slots2 = slots;
        float* whole[3] = {slots[0].data(), slots[1].data(), slots[2].data()};
        apply_optimizer_step(step, w.data(), g.data(), whole, n);
        for (int64_t lo = 0; lo < n; lo += chunk) {
          const int64_t len = std::min(chunk, n - lo);
          float* part[3] = {slots2[0].data() + lo, slots2[1].data() + lo, slots2[2].data() + lo};
          apply_optimizer_step(step, w2.data() + lo, g.data() + lo, part, len);
        }
        for (int64_t j = 0; j < n; ++j)
          ASSERT_EQ(w2[j], w[j]) << isa_name(isa) << " config " << c << " chunk " << chunk
                                 << " j " << j;
        for (int s = 0; s < 3; ++s)
          for (int64_t j = 0; j < n; ++j) ASSERT_EQ(slots2[s][j], slots[s][j]);
      }
    }
  }
  set_active_isa(saved);
}

TEST(Activations, AppliedInChunksEqualWholeOnEveryIsa) {
  const Isa saved = active_isa();
  const int64_t n = 643;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    set_active_isa(isa);
    for (Activation act : {Activation::kSigmoid, Activation::kTanh, Activation::kGelu,
                           Activation::kSilu, Activation::kElu, Activation::kSoftplus}) {
      const std::vector<float> x = random_vec(n, 5, 4.0f), dy = random_vec(n, 6);
      std::vector<float> y(n), y2(n), dx(n), dx2(n);
      activation_forward(act, ActivationParams(), x.data(), y.data(), 1, n);
      activation_backward(act, ActivationParams(), x.data(), y.data(), dy.data(), dx.data(), 1, n);
      for (int64_t lo = 0; lo < n; lo += 37) {
        const int64_t len = std::min<int64_t>(37, n - lo);
        activation_forward(act, ActivationParams(), x.data() + lo, y2.data() + lo, 1, len);
        activation_backward(act, ActivationParams(), x.data() + lo, y.data() + lo,
                            dy.data() + lo, dx2.data() + lo, 1, len);
      }
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_EQ(y2[j], y[j]) << isa_name(isa) << " act " << static_cast<int>(act) << " j " << j;
        ASSERT_EQ(dx2[j], dx[j]) << isa_name(isa) << " act " << static_cast<int>(act)
                                 << " j " << j;
      }
    }
  }
  set_active_isa(saved);
}

// The oversubscription verdict (cpu.h): split runs judged 50 ms at a time; two windows in a
// row with a thread off its core over 20% of the time turn one-thread runs on (one is taken
// for a passing burst); 50 ms of one-thread runs that keep their core turn them off, and
// each retry that finds the machine still busy doubles that wait.
TEST(Oversubscription, SplitRunsKeptOffTheirCoresTurnOneThreadOnUntilACoreIsFree) {
  set_adaptive_threads(true);  // (also resets the verdict and the pools)
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.030, 0.027, 2);  // 30 ms: not yet a window
  note_run(0.030, 0.000, 2);  // a window, 45% off core: busy, but the first
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.050, 0.025, 2);  // the second busy window in a row
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.040, 0.000, 1);  // one thread keeping its core, but not 50 ms of it yet
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.020, 0.010, 1);  // 60 ms, 17% off core: still busy
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.060, 0.001, 1);  // 2%: a core is free
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.050, 0.025, 2);  // the retry finds the machine busy again, twice
  note_run(0.050, 0.025, 2);
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.060, 0.000, 1);  // now 100 ms of one-thread runs are needed
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.050, 0.000, 1);
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.050, 0.001, 2);  // split runs on a quiet machine: the wait is back to 50 ms
  note_run(0.050, 0.030, 2);  // a busy window between quiet ones: a burst, not a verdict
  note_run(0.050, 0.000, 2);
  note_run(0.050, 0.030, 2);
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.050, 0.030, 2);
  EXPECT_TRUE(machine_oversubscribed());
  note_run(0.050, 0.000, 1);
  EXPECT_FALSE(machine_oversubscribed());
  note_run(0.120, 0.060, 2);  // one long busy run: two windows' worth
  EXPECT_TRUE(machine_oversubscribed());
  set_adaptive_threads(false);  // off: no verdict, runs not noted
  note_run(0.050, 0.050, 2);
  note_run(0.050, 0.050, 2);
  EXPECT_FALSE(machine_oversubscribed());
  set_adaptive_threads(true);
}

TEST(Oversubscription, ThreadClocksCountUp) {
  const double cpu0 = thread_cpu_seconds(), wait0 = thread_wait_seconds();
  volatile double sink = 0.0;
  for (int i = 0; i < 2000000; ++i) sink = sink + 1e-9 * i;
  EXPECT_GT(thread_cpu_seconds(), cpu0);
#if defined(__linux__) && defined(__x86_64__)
  EXPECT_GE(wait0, 0.0);  // the kernel's schedstat (maybe not under an emulator's /proc)
#endif
  if (wait0 >= 0.0) {
    EXPECT_GE(thread_wait_seconds(), wait0);
  } else {
    EXPECT_EQ(wait0, -1.0);  // not known: the verdict falls back on wall and CPU time
  }
}

}  // namespace
}  // namespace densitron

// A schedule written in Python reaches the engine as a table of rates: values[k] after
// first + k steps, the first value before and the last after.
TEST(LrScheduleTable, ReadsTheRateOfEachStepAndClampsOutside) {
  densitron::LrScheduleConfig s;
  s.kind = densitron::LrSchedule::kTable;
  s.boundaries = {10};
  s.values = {0.5f, 0.25f, 0.125f};
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 10), 0.5f);
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 11), 0.25f);
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 12), 0.125f);
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 3), 0.5f);
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 40), 0.125f);
  s.values.clear();
  s.initial = 0.75f;
  EXPECT_EQ(densitron::scheduled_learning_rate(s, 5), 0.75f);
}

// AUC buckets at explicit thresholds: the index of the last threshold strictly below the
// prediction (Keras counts a prediction above a threshold when pred > threshold).
TEST(AucBuckets, ExplicitThresholdsPlaceEachValueAboveTheThresholdsBelowIt) {
  const std::vector<float> thr = {-1e-7f, 0.3f, 0.5f, 1.0f + 1e-7f};
  const std::vector<float> p = {0.0f, 0.3f, 0.31f, 0.5f, 0.9f, 1.0f};
  const std::vector<float> y = {1, 1, 0, 1, 0, 1};
  std::vector<double> out(8, 0.0);
  densitron::auc_buckets(p.data(), y.data(), 6, 1, 4, false, out.data(), nullptr, 1, false,
                         thr.data());
  // positives: 0.0 -> 0, 0.3 -> 0, 0.5 -> 1, 1.0 -> 2; negatives: 0.31 -> 1, 0.9 -> 2
  EXPECT_EQ(out, (std::vector<double>{2, 1, 1, 0, 0, 1, 1, 0}));
}
