// Keras's Adafactor, Muon and ScheduleFreeAdamW (through optimizer_update) against scalar double
// references of their formulas over odd sizes (Adafactor: variables of rank 1, 2 and 3).
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

namespace densitron {
namespace {

// Keras's Newton-Schulz orthogonalization in double, of a rows×cols matrix.
std::vector<double> newton_schulz(std::vector<double> g, int64_t rows, int64_t cols, int steps) {
  const bool tr = rows > cols;
  const int64_t r = tr ? cols : rows, c = tr ? rows : cols;
  std::vector<double> x(g.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) x[tr ? j * rows + i : i * cols + j] = g[i * cols + j];
  double sq = 0.0;
  for (double e : x) sq += e * e;
  for (double& e : x) e /= std::sqrt(sq) + 1e-7;
  for (int s = 0; s < steps; ++s) {
    std::vector<double> A(r * r, 0.0), B(r * r, 0.0), t(r * c, 0.0);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < r; ++j)
        for (int64_t k = 0; k < c; ++k) A[i * r + j] += x[i * c + k] * x[j * c + k];
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < r; ++j) {
        double s2 = 0.0;
        for (int64_t k = 0; k < r; ++k) s2 += A[i * r + k] * A[k * r + j];
        B[i * r + j] = -4.775 * A[i * r + j] + 2.0315 * s2;
      }
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < c; ++j)
        for (int64_t k = 0; k < r; ++k) t[i * c + j] += B[i * r + k] * x[k * c + j];
    for (size_t i = 0; i < x.size(); ++i) x[i] = 3.4445 * x[i] + t[i];
  }
  std::vector<double> out(g.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = x[tr ? j * rows + i : i * cols + j];
  return out;
}

TEST(Muon, MatricesMatchScalarNewtonSchulz) {
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{5, 3}, {3, 5}, {7, 7}, {1, 9},
                                   {33, 17}}) {
    const int64_t n = rows * cols;
    OptimizerConfig c;
    c.kind = OptimizerKind::kMuon;
    c.learning_rate = 0.05f;
    c.momentum = 0.95f;
    c.nesterov = true;
    c.weight_decay = 0.0f;
    c.factor_dims = {rows, cols};
    std::vector<float> w = normal_vec(n, 3, 1.0f), m(n, 0.0f), v(n, 0.0f);
    std::vector<double> wr(w.begin(), w.end()), mr(n, 0.0);
    float* slots[] = {m.data(), v.data()};
    for (int64_t t = 1; t <= 3; ++t) {
      const std::vector<float> g = normal_vec(n, 50 + t, 0.3f);
      optimizer_update(c, t, w.data(), g.data(), slots, n);
      std::vector<double> G(n);
      for (int64_t i = 0; i < n; ++i) {
        mr[i] += g[i] + mr[i] * (0.95 - 1.0);
        G[i] = g[i] + 0.95 * mr[i];
      }
      const std::vector<double> u = newton_schulz(G, rows, cols, 5);
      const double adjust = std::sqrt(double(std::max(rows, cols))) * 0.2;
      for (int64_t i = 0; i < n; ++i) {
        wr[i] -= 0.05 * u[i] * adjust;
        EXPECT_NEAR(w[i], wr[i], 1e-4 * std::abs(wr[i]) + 3e-6) << rows << "x" << cols;
      }
    }
  }
}

TEST(ScheduleFree, MatchesScalarReference) {
  const int64_t n = 37;
  OptimizerConfig c;
  c.kind = OptimizerKind::kScheduleFree;
  c.learning_rate = 0.05f;
  c.beta_1 = 0.9f;
  c.beta_2 = 0.999f;
  c.epsilon = 1e-8f;
  c.warmup_steps = 2;
  std::vector<float> w = normal_vec(n, 9, 1.0f), z(w), v(n, 0.0f);
  std::vector<double> wr(w.begin(), w.end()), zr(wr), vr(n, 0.0);
  float* slots[] = {z.data(), v.data()};
  const double c1 = 1.0 - double(0.9f), c2 = double(1.0f - 0.999f);
  for (int64_t t = 1; t <= 5; ++t) {
    const std::vector<float> g = normal_vec(n, 70 + t, 0.3f);
    optimizer_update(c, t, w.data(), g.data(), slots, n);
    const double lr = 0.05 * std::min(double(t) / 2.0, 1.0);
    const double bc2 = double(1.0f - std::pow(0.999f, float(t)));
    for (int64_t i = 0; i < n; ++i) {
      vr[i] += (double(g[i]) * g[i] - vr[i]) * c2;
      const double z_old = zr[i];
      zr[i] -= lr * g[i] / (std::sqrt(vr[i] / bc2) + 1e-8);
      const double x = (1.0 - 1.0 / t) * ((wr[i] - c1 * z_old) / double(0.9f)) + zr[i] / t;
      wr[i] = c1 * zr[i] + double(0.9f) * x;
      EXPECT_NEAR(w[i], wr[i], 1e-5 * std::abs(wr[i]) + 5e-6) << "step " << t;
      EXPECT_NEAR(z[i], zr[i], 1e-5 * std::abs(zr[i]) + 2e-6) << "step " << t;
    }
  }
}

}  // namespace
}  // namespace densitron
