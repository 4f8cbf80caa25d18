// Keras's Adafactor (adafactor_update through optimizer_update) against a scalar double
// reference of its formula over variables of rank 1, 2 and 3 with odd sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "densitron/optim.h"

namespace densitron {
namespace {

std::vector<float> normal_vec(int64_t n, unsigned seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// One Keras Adafactor step in double over outer·d2·d1 values (d2 = 0: a vector).
void reference_step(double lr, int64_t t, int64_t d2, int64_t d1, std::vector<double>& w,
                    const std::vector<float>& g, std::vector<double>& v, std::vector<double>& r,
                    std::vector<double>& c) {
  const int64_t n = static_cast<int64_t>(w.size());
  const double rho = std::min(std::min(lr, 1.0 / std::sqrt(double(t))), 1.0 / std::sqrt(double(t)));
  double ws = 0.0;
  for (double x : w) ws += x * x;
  const double alpha = std::max(1e-3, std::sqrt(ws / n)) * rho;
  const double beta = 1.0 - std::pow(double(t), -0.8);
  auto q = [&](int64_t i) { return double(g[i]) * g[i] + 1e-30; };
  if (d2 > 0) {
    const int64_t outer = n / (d2 * d1);
    for (int64_t o = 0; o < outer; ++o) {
      double rsum = 0.0;
      for (int64_t i = 0; i < d2; ++i) {
        double s = 0.0;
        for (int64_t j = 0; j < d1; ++j) s += q((o * d2 + i) * d1 + j);
        r[o * d2 + i] = beta * r[o * d2 + i] + (1 - beta) * s / d1;
        rsum += r[o * d2 + i];
      }
      for (int64_t j = 0; j < d1; ++j) {
        double s = 0.0;
        for (int64_t i = 0; i < d2; ++i) s += q((o * d2 + i) * d1 + j);
        c[o * d1 + j] = beta * c[o * d1 + j] + (1 - beta) * s / d2;
      }
      for (int64_t i = 0; i < d2; ++i)
        for (int64_t j = 0; j < d1; ++j)
          v[(o * d2 + i) * d1 + j] = r[o * d2 + i] / (rsum / d2) * c[o * d1 + j];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = beta * v[i] + (1 - beta) * q(i);
  }
  double us = 0.0;
  for (int64_t i = 0; i < n; ++i) us += g[i] * double(g[i]) / v[i];
  const double denom = std::max(1.0, std::sqrt(us / n));
  for (int64_t i = 0; i < n; ++i) w[i] -= alpha * (g[i] / std::sqrt(v[i])) / denom;
}

TEST(Adafactor, MatchesScalarReferenceOverRanks) {
  struct Shape {
    int64_t outer, d2, d1;
  };
  for (const Shape s : {Shape{1, 0, 7}, Shape{1, 5, 3}, Shape{3, 5, 7}, Shape{1, 1, 9},
                        Shape{1, 9, 1}}) {
    const int64_t n = s.outer * std::max<int64_t>(s.d2, 1) * s.d1;
    OptimizerConfig c;
    c.kind = OptimizerKind::kAdafactor;
    c.learning_rate = 0.4f;
    c.factor_dims = {s.d2, s.d1};
    std::vector<float> w = normal_vec(n, 7, 1.0f), v(n, 0.0f), r(n, 0.0f), cc(n, 0.0f);
    std::vector<double> wr(w.begin(), w.end()), vr(n, 0.0), rr(n, 0.0), cr(n, 0.0);
    float* slots[] = {v.data(), r.data(), cc.data()};
    for (int64_t t = 1; t <= 4; ++t) {
      const std::vector<float> g = normal_vec(n, 100 + t, t == 2 ? 3.0f : 0.1f);
      optimizer_update(c, t, w.data(), g.data(), slots, n);
      reference_step(0.4, t, s.d2, s.d1, wr, g, vr, rr, cr);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(w[i], wr[i], 2e-5 * std::abs(wr[i]) + 2e-6) << "n " << n << " step " << t;
        EXPECT_NEAR(v[i], vr[i], 2e-5 * vr[i]) << "n " << n << " step " << t;
      }
    }
  }
}

}  // namespace
}  // namespace densitron
