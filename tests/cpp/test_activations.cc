// Every activation on every ISA path this CPU supports: forwards against double references in
// ulps (sizes 1..130 with vector tails, and a dense sweep incl. ±0, subnormals, huge |x|, ±inf),
// backwards against central differences of the double reference (kinks skipped), the softmax
// rows, thread-count independence, and the vectorised optimizer updates against the scalar
// formulas of optim.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "ops/elementwise_kernels.h"
#include "densitron/optim.h"

namespace densitron {
namespace {

using A = Activation;

struct Case {
  const char* name;
  A act;
  ActivationParams p;
};

ActivationParams prm(float slope, float maxv, float thr, float alpha) {
  ActivationParams p;
  p.negative_slope = slope;
  p.max_value = maxv;
  p.threshold = thr;
  p.alpha = alpha;
  return p;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"linear", A::kLinear, {}},
      {"relu", A::kRelu, {}},
      {"relu_max6", A::kRelu, prm(0, 6, 0, 1)},
      {"relu_max2.5", A::kRelu, prm(0, 2.5f, 0, 1)},
      {"relu_thr1", A::kRelu, prm(0, -1, 1, 1)},
      {"relu_thr-1", A::kRelu, prm(0, -1, -1, 1)},
      {"relu_slope", A::kRelu, prm(0.3f, -1, 0, 1)},
      {"relu_slope1.5", A::kRelu, prm(1.5f, -1, 0, 1)},
      {"relu_all", A::kRelu, prm(0.1f, 3, 0.5f, 1)},
      {"relu_all_negthr", A::kRelu, prm(0.2f, 4, -0.5f, 1)},
      {"leaky_relu", A::kLeakyRelu, prm(0.2f, -1, 0, 1)},
      {"leaky_relu_neg", A::kLeakyRelu, prm(-0.5f, -1, 0, 1)},
      {"relu6", A::kRelu6, {}},
      {"elu", A::kElu, {}},
      {"elu_a0.5", A::kElu, prm(0, -1, 0, 0.5f)},
      {"elu_a-1", A::kElu, prm(0, -1, 0, -1)},
      {"selu", A::kSelu, {}},
      {"gelu", A::kGelu, {}},
      {"gelu_approx", A::kGeluApprox, {}},
      {"silu", A::kSilu, {}},
      {"softplus", A::kSoftplus, {}},
      {"softsign", A::kSoftsign, {}},
      {"sigmoid", A::kSigmoid, {}},
      {"hard_sigmoid", A::kHardSigmoid, {}},
      {"hard_silu", A::kHardSilu, {}},
      {"tanh", A::kTanh, {}},
      {"exponential", A::kExponential, {}},
      {"mish", A::kMish, {}},
      {"celu", A::kCelu, {}},
      {"celu_a0.5", A::kCelu, prm(0, -1, 0, 0.5f)},
      {"celu_a-2", A::kCelu, prm(0, -1, 0, -2)},
      {"hard_shrink", A::kHardShrink, prm(0, -1, 0.5f, 1)},
      {"hard_shrink_t-1", A::kHardShrink, prm(0, -1, -1, 1)},
      {"hard_tanh", A::kHardTanh, {}},
      {"log_sigmoid", A::kLogSigmoid, {}},
      {"soft_shrink", A::kSoftShrink, prm(0, -1, 0.5f, 1)},
      {"soft_shrink_t2", A::kSoftShrink, prm(0, -1, 2, 1)},
      {"soft_shrink_t-1", A::kSoftShrink, prm(0, -1, -1, 1)},
      {"sparse_plus", A::kSparsePlus, {}},
      {"sparse_sigmoid", A::kSparseSigmoid, {}},
      {"squareplus", A::kSquareplus, prm(0, -1, 0, 4)},
      {"squareplus_b1", A::kSquareplus, prm(0, -1, 0, 1)},
      {"tanh_shrink", A::kTanhShrink, {}},
      {"threshold", A::kThreshold, prm(0, -1, 0.3f, -2)},
  };
  return c;
}

double softplus_d(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// Keras 3's formulas in double (ReLU.static_call for relu).
double ref(const Case& c, double x) {
  const ActivationParams& p = c.p;
  switch (c.act) {
    case A::kLinear:
      return x;
    case A::kRelu: {
      const double s = p.negative_slope, t = p.threshold;
      if (s != 0 && p.max_value < 0 && t == 0) return std::max(x, s * x);
      double r = x > t ? x : 0.0;
      if (p.max_value >= 0) r = std::min(std::max(r, 0.0), double(p.max_value));
      return s != 0 ? r - s * std::max(t - x, 0.0) : r;
    }
    case A::kLeakyRelu:
      return std::max(x, double(p.negative_slope) * x);
    case A::kRelu6:
      return std::min(std::max(x, 0.0), 6.0);
    case A::kElu:
      return x >= 0 ? x : p.alpha * std::expm1(x);
    case A::kSelu:
      return 1.0507009873554804934 * (x >= 0 ? x : 1.6732632423543772848 * std::expm1(x));
    case A::kGelu:
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case A::kGeluApprox: {
      const double z = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
      return x / (1 + std::exp(-2 * z));  // = x·(1 + tanh z)/2
    }
    case A::kSilu:
      return x * (1 / (1 + std::exp(-x)));  // x·sigmoid(x): NaN at -inf, as Keras
    case A::kSoftplus:
      return softplus_d(x);
    case A::kSoftsign:
      return x / (1 + std::fabs(x));
    case A::kSigmoid:
      return 1 / (1 + std::exp(-x));
    case A::kHardSigmoid:
      return std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case A::kHardSilu:
      return x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
    case A::kTanh:
      return std::tanh(x);
    case A::kExponential:
      return std::exp(x);
    case A::kMish:
      return x * std::tanh(softplus_d(x));
    case A::kCelu:
      return x > 0 ? x : p.alpha * std::expm1(x / p.alpha);
    case A::kHardShrink:
      return std::fabs(x) > p.threshold ? x : 0.0;
    case A::kHardTanh:
      return x > 1 ? 1.0 : x < -1 ? -1.0 : x;
    case A::kLogSigmoid:
      return -softplus_d(-x);
    case A::kSoftShrink: {
      const double t = p.threshold;
      return x > t ? x - t : x < -t ? x + t : 0.0;
    }
    case A::kSparsePlus:
      return x <= -1 ? 0.0 : x >= 1 ? x : (x + 1) * (x + 1) / 4;
    case A::kSparseSigmoid:
      return x <= -1 ? 0.0 : x >= 1 ? 1.0 : (x + 1) / 2;
    case A::kSquareplus:  // x² overflows in float32 beyond 1.8e19, as Keras's square does
      return x * x > FLT_MAX ? x + INFINITY : (x + std::sqrt(x * x + p.alpha)) / 2;
    case A::kTanhShrink:
      return x - std::tanh(x);
    case A::kThreshold:
      return x > p.threshold ? x : double(p.alpha);
    default:
      return NAN;
  }
}

std::vector<double> kinks(const Case& c) {
  switch (c.act) {
    case A::kRelu:
      return {0.0, double(c.p.threshold), double(c.p.max_value)};
    case A::kLeakyRelu:
    case A::kElu:
    case A::kSelu:
      return {0.0};
    case A::kRelu6:
      return {0.0, 6.0};
    case A::kHardSigmoid:
    case A::kHardSilu:
      return {-3.0, 3.0};
    case A::kCelu:
      return {0.0};
    case A::kHardShrink:
    case A::kSoftShrink:
      return {double(c.p.threshold), -double(c.p.threshold)};
    case A::kHardTanh:
    case A::kSparsePlus:
    case A::kSparseSigmoid:
      return {-1.0, 1.0};
    case A::kThreshold:
      return {double(c.p.threshold)};
    default:
      return {};
  }
}

double ulp_of(double v) {
  const float f = static_cast<float>(std::fabs(v));
  if (f < FLT_MIN) return FLT_TRUE_MIN;
  if (std::isinf(f)) return std::ldexp(1.0, 104);  // ulp at FLT_MAX
  return double(std::nextafter(f, INFINITY)) - double(f);
}

// Error of a float result against a double reference, in ulps of the reference. Subnormal
// results count in units of 2^-10·FLT_MIN (their own spacing is too coarse for products).
double ulps(float got, double want) {
  if (std::fabs(want) < FLT_MIN && std::isfinite(got)) {
    return std::fabs(double(got) - want) / std::ldexp(double(FLT_MIN), -10);
  }
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e9;
  if (std::isinf(want)) return got == static_cast<float>(want) ? 0 : 1e9;
  if (std::isinf(got)) return std::fabs(want) >= FLT_MAX ? 0 : 1e9;  // rounds up to inf
  return std::fabs(double(got) - want) / ulp_of(want);
}

// ulps of one forward value. x - tanh(x) and x + sqrt(x² + b) cancel (Keras computes them so
// too): their errors count in ulps of the operands' scale, |x|, where that is larger.
double forward_ulps(const Case& c, float x, float got) {
  const double want = ref(c, x);
  if ((c.act == A::kTanhShrink || c.act == A::kSquareplus) && std::isfinite(x) &&
      std::fabs(double(x)) > std::fabs(want)) {
    return std::fabs(double(got) - want) / ulp_of(x);
  }
  return ulps(got, want);
}

std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(i)) v.push_back(i);
  }
  return v;
}

// Forces an ISA for one scope.
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : saved_(active_isa()) { set_active_isa(isa); }
  ~IsaScope() { set_active_isa(saved_); }

 private:
  Isa saved_;
};

std::vector<float> normal_vec(size_t n, unsigned seed, float sd) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// Ulp budget of each forward (compositions like x·sigmoid(x) add a rounding or two); gelu's
// tanh form takes exp of a computed argument, so its budget scales with the condition number.
double ulp_budget(A act);
double ulp_budget(const Case& c, float x, double want) {
  double b = ulp_budget(c.act);
  if (c.act == A::kGeluApprox && want != 0) {
    const double h = 1e-6 * std::max(1.0, std::fabs(double(x)));
    const double d = (ref(c, x + h) - ref(c, x - h)) / (2 * h);
    b *= std::max(1.0, std::fabs(x * d / want));
  }
  return b;
}
double ulp_budget(A act) {
  switch (act) {
    case A::kGelu:  // every float in [-15, -0.5] (erfc's tail) is within 5.8
    case A::kGeluApprox:
    case A::kMish:
    case A::kSilu:
    case A::kSelu:
      return 6;
    default:
      return 4;
  }
}

class ActivationIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(ActivationIsa, ForwardMatchesDoubleOverSizesWithTails) {
  IsaScope scope(GetParam());
  for (const Case& c : cases()) {
    for (int64_t n = 1; n <= 130; ++n) {
      std::vector<float> x = normal_vec(n, 1000 + n, 3.0f), y(n);
      activation_forward(c.act, c.p, x.data(), y.data(), 1, n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_LE(forward_ulps(c, x[i], y[i]), ulp_budget(c, x[i], ref(c, x[i])))
            << c.name << " n=" << n << " x=" << x[i] << " y=" << y[i] << " ref=" << ref(c, x[i]);
      }
      std::vector<float> inplace = x;  // y may equal x
      activation_forward(c.act, c.p, inplace.data(), inplace.data(), 1, n);
      ASSERT_EQ(inplace, y) << c.name;
    }
  }
}

TEST_P(ActivationIsa, ForwardDenseSweepIncludingExtremes) {
  IsaScope scope(GetParam());
  std::vector<float> x;
  for (double v = -120.0; v <= 120.0; v += 1.0 / 512) x.push_back(static_cast<float>(v));
  for (float v = 1e-30f; v < 1e30f; v *= 1.37f) {
    x.push_back(v);
    x.push_back(-v);
  }
  for (float v : {0.0f, -0.0f, FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX,
                  INFINITY, -INFINITY, 88.72f, 88.73f, -87.3f, -103.9f, -104.5f, 9.0f, -9.0f}) {
    x.push_back(v);
  }
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> y(n);
  for (const Case& c : cases()) {
    activation_forward(c.act, c.p, x.data(), y.data(), 1, n);
    double worst = 0;
    float worst_x = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = ref(c, x[i]);
      // x·f(x) overflows in double-free ways at |x| ~ FLT_MAX; compare where the result is finite
      if (!std::isfinite(want) && std::isfinite(x[i]) && c.act != A::kExponential) continue;
      const double e = forward_ulps(c, x[i], y[i]) / ulp_budget(c, x[i], want) * ulp_budget(c.act);
      if (e > worst) {
        worst = e;
        worst_x = x[i];
      }
    }
    EXPECT_LE(worst, ulp_budget(c.act)) << c.name << " worst at x=" << worst_x;
    RecordProperty(std::string(c.name) + "_max_ulps", std::to_string(worst));
  }
  const float nan = std::nanf("");
  for (const Case& c : cases()) {
    if (c.act == A::kRelu6 || c.act == A::kHardSigmoid || c.act == A::kHardSilu) continue;
    float out = 0;
    activation_forward(c.act, c.p, &nan, &out, 1, 1);
    if (c.act == A::kHardShrink || c.act == A::kSoftShrink || c.act == A::kThreshold) {
      // Keras's where(...): a NaN fails every comparison and takes the else value
      EXPECT_EQ(out, c.act == A::kThreshold ? c.p.alpha : 0.0f) << c.name;
      continue;
    }
    if (c.act != A::kRelu || c.p.max_value < 0) EXPECT_TRUE(std::isnan(out)) << c.name;
  }
}

TEST_P(ActivationIsa, BackwardMatchesCentralDifferencesOfTheReference) {
  IsaScope scope(GetParam());
  for (const Case& c : cases()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 130}) {
      std::vector<float> x = normal_vec(n, 77 + n, 3.0f), y(n), dy = normal_vec(n, 5 + n, 1.0f);
      activation_forward(c.act, c.p, x.data(), y.data(), 1, n);
      std::vector<float> dx(n, 0.0f);
      const float* xin = activation_needs_input(c.act, c.p) ? x.data() : nullptr;
      activation_backward(c.act, c.p, xin, y.data(), dy.data(), dx.data(), 1, n);
      std::vector<float> dx_with_x(n, 0.0f);  // giving x when not needed changes nothing
      activation_backward(c.act, c.p, x.data(), y.data(), dy.data(), dx_with_x.data(), 1, n);
      ASSERT_EQ(dx, dx_with_x) << c.name;
      std::vector<float> alias = dy;  // dx may alias dy
      activation_backward(c.act, c.p, xin, y.data(), alias.data(), alias.data(), 1, n);
      ASSERT_EQ(alias, dx) << c.name;
      for (int64_t i = 0; i < n; ++i) {
        const double xi = x[i];
        const double h = 1e-5 * std::max(1.0, std::fabs(xi));
        bool near_kink = false;
        for (double k : kinks(c)) near_kink |= std::fabs(xi - k) < 1e-3;
        if (near_kink) continue;
        const double d = (ref(c, xi + h) - ref(c, xi - h)) / (2 * h) * dy[i];
        EXPECT_NEAR(dx[i], d, 2e-5 * std::fabs(d) + 1e-6 * std::max(1.0, std::fabs(ref(c, xi))))
            << c.name << " x=" << xi;
      }
    }
  }
}

double row_ref(A act, const std::vector<double>& x, int64_t j) {
  double m = -INFINITY, s = 0;
  for (double v : x) m = std::max(m, v);
  for (double v : x) s += std::exp(v - m);
  return act == A::kSoftmax ? std::exp(x[j] - m) / s : x[j] - m - std::log(s);
}

TEST_P(ActivationIsa, SoftmaxAndLogSoftmaxRows) {
  IsaScope scope(GetParam());
  for (A act : {A::kSoftmax, A::kLogSoftmax}) {
    for (int64_t rows : {1, 3}) {
      for (int64_t cols = 1; cols <= 130; cols += (cols < 20 ? 1 : 7)) {
        const int64_t n = rows * cols;
        std::vector<float> x = normal_vec(n, 300 + n, 4.0f), y(n), dy = normal_vec(n, 9, 1.0f);
        x[0] += 60.0f;  // a dominant logit: the max subtraction matters
        activation_forward(act, {}, x.data(), y.data(), rows, cols);
        std::vector<float> dx(n);
        ASSERT_FALSE(activation_needs_input(act, {}));
        activation_backward(act, {}, nullptr, y.data(), dy.data(), dx.data(), rows, cols);
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> xr(x.begin() + r * cols, x.begin() + (r + 1) * cols);
          for (int64_t j = 0; j < cols; ++j) {
            const double want = row_ref(act, xr, j);
            // x - max rounds: its relative error is amplified by |x - max| (exp) or cancels (log)
            double mx = -INFINITY;
            for (double v : xr) mx = std::max(mx, v);
            const double cond = 2 + std::fabs(xr[j] - mx);
            const double scale = act == A::kSoftmax ? std::fabs(want) : 1.0;
            EXPECT_NEAR(y[r * cols + j], want, 2e-7 * cond * scale) << "cols=" << cols;
            // d/dx_j Σ_k dy_k·y_k by central differences in double
            const double h = 1e-5;
            double f[2];
            for (int s = 0; s < 2; ++s) {
              std::vector<double> xp = xr;
              xp[j] += s == 0 ? h : -h;
              f[s] = 0;
              for (int64_t k = 0; k < cols; ++k) f[s] += dy[r * cols + k] * row_ref(act, xp, k);
            }
            const double d = (f[0] - f[1]) / (2 * h);
            EXPECT_NEAR(dx[r * cols + j], d, 1e-5 * (1 + std::fabs(d))) << "cols=" << cols;
          }
        }
      }
    }
  }
}

// A Dense layer's softmax or log_softmax runs in place, and so does its backward. Rows
// narrower than a vector take a path of their own (one vector a row, in registers): in place
// or not, and for any row count, it gives the general path's values bit for bit: the row
// pieces composed row by row (the values are checked against double in
// SoftmaxAndLogSoftmaxRows), and each row on its own as a one-row call.
TEST_P(ActivationIsa, SoftmaxRowsInPlaceEqualOutOfPlace) {
  IsaScope scope(GetParam());
  for (A act : {A::kSoftmax, A::kLogSoftmax}) {
    for (int64_t rows : {1, 2, 5, 32, 33}) {
      for (int64_t cols : {1, 3, 7, 10, 15, 16, 17, 31, 40}) {
        const int64_t n = rows * cols;
        std::vector<float> x = normal_vec(n, 700 + n, 5.0f), y(n), inplace = x;
        const std::vector<float> dy = normal_vec(n, 900 + n, 1.0f);
        activation_forward(act, {}, x.data(), y.data(), rows, cols);
        activation_forward(act, {}, inplace.data(), inplace.data(), rows, cols);
        EXPECT_EQ(y, inplace) << rows << "x" << cols;
        std::vector<float> dx(n), dx_inplace = dy;
        activation_backward(act, {}, nullptr, y.data(), dy.data(), dx.data(), rows, cols);
        activation_backward(act, {}, nullptr, y.data(), dx_inplace.data(), dx_inplace.data(),
                            rows, cols);
        EXPECT_EQ(dx, dx_inplace) << rows << "x" << cols;
        // and the row pieces of the ISA's table composed row by row (the general path)
        const ElementwiseKernels* k = elementwise_kernels();
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t o = r * cols;
          std::vector<float> want(cols), g(cols);
          const float m = k->row_max(x.data() + o, cols);
          const float sum = k->exp_shift_sum(x.data() + o, want.data(), cols, m);
          if (act == A::kSoftmax) {
            k->scale(want.data(), cols, 1.0f / sum);
            k->softmax_jvp(y.data() + o, dy.data() + o, g.data(), cols,
                           k->dot(dy.data() + o, y.data() + o, cols));
          } else {
            k->shift2(x.data() + o, want.data(), cols, m, std::log(sum));
            k->log_softmax_jvp(y.data() + o, dy.data() + o, g.data(), cols,
                               k->sum(dy.data() + o, cols));
          }
          ASSERT_TRUE(std::equal(want.begin(), want.end(), y.begin() + o))
              << rows << "x" << cols << " row " << r;
          ASSERT_TRUE(std::equal(g.begin(), g.end(), dx.begin() + o))
              << rows << "x" << cols << " row " << r;
        }
        for (int64_t r = 0; r < rows; ++r) {  // row by row, as one-row calls
          const int64_t o = r * cols;
          std::vector<float> one(x.begin() + o, x.begin() + o + cols), g(cols);
          activation_forward(act, {}, one.data(), one.data(), 1, cols);
          ASSERT_TRUE(std::equal(one.begin(), one.end(), y.begin() + o))
              << rows << "x" << cols << " row " << r;
          activation_backward(act, {}, nullptr, y.data() + o, dy.data() + o, g.data(), 1, cols);
          ASSERT_TRUE(std::equal(g.begin(), g.end(), dx.begin() + o))
              << rows << "x" << cols << " row " << r;
        }
      }
    }
  }
}

TEST_P(ActivationIsa, ResultsDoNotDependOnTheThreadCount) {
  IsaScope scope(GetParam());
  const int saved = get_num_threads();
  const int64_t rows = 1000, cols = 1037;  // large enough to be split
  std::vector<float> x = normal_vec(rows * cols, 3, 2.0f), dy = normal_vec(rows * cols, 4, 1.0f);
  for (A act : {A::kGelu, A::kSoftmax, A::kLogSoftmax, A::kTanh}) {
    std::vector<float> y1(x.size()), y2(x.size()), d1(x.size()), d2(x.size());
    set_num_threads(1);
    activation_forward(act, {}, x.data(), y1.data(), rows, cols);
    activation_backward(act, {}, x.data(), y1.data(), dy.data(), d1.data(), rows, cols);
    set_num_threads(2);
    activation_forward(act, {}, x.data(), y2.data(), rows, cols);
    activation_backward(act, {}, x.data(), y2.data(), dy.data(), d2.data(), rows, cols);
    EXPECT_EQ(y1, y2);
    EXPECT_EQ(d1, d2);
  }
  set_num_threads(saved);
}

// The scalar formulas of optim.h, in double.
void optimizer_ref(const OptimizerConfig& c, int64_t step, std::vector<double>& w,
                   const std::vector<float>& g, std::vector<std::vector<double>>& s) {
  for (size_t i = 0; i < w.size(); ++i) {
    const double gi = g[i], lr = c.learning_rate;
    if (c.weight_decay != 0) w[i] -= lr * c.weight_decay * w[i];
    switch (c.kind) {
      case OptimizerKind::kSgd:
        if (c.momentum == 0) {
          w[i] -= lr * gi;
        } else {
          s[0][i] = c.momentum * s[0][i] - lr * gi;
          w[i] += c.nesterov ? c.momentum * s[0][i] - lr * gi : s[0][i];
        }
        break;
      case OptimizerKind::kRmsprop: {
        s[0][i] = c.rho * s[0][i] + (1 - c.rho) * gi * gi;
        double denom = s[0][i];
        if (c.centered) {
          s[1][i] = c.rho * s[1][i] + (1 - c.rho) * gi;
          denom -= s[1][i] * s[1][i];
        }
        const double inc = lr * gi / std::sqrt(denom + c.epsilon);
        if (c.momentum != 0) {
          auto& b = s[c.centered ? 2 : 1];
          b[i] = c.momentum * b[i] + inc;
          w[i] -= b[i];
        } else {
          w[i] -= inc;
        }
        break;
      }
      case OptimizerKind::kAdam: {
        const double alpha = lr * std::sqrt(1 - std::pow(c.beta_2, double(step))) /
                             (1 - std::pow(c.beta_1, double(step)));
        s[0][i] += (gi - s[0][i]) * (1 - c.beta_1);
        s[1][i] += (gi * gi - s[1][i]) * (1 - c.beta_2);
        double v = s[1][i];
        if (c.amsgrad) v = s[2][i] = std::max(s[2][i], v);
        w[i] -= alpha * s[0][i] / (std::sqrt(v) + c.epsilon);
        break;
      }
      case OptimizerKind::kAdadelta: {  // Keras's formula
        s[0][i] = c.rho * s[0][i] + (1 - c.rho) * gi * gi;
        const double d = -std::sqrt(s[1][i] + c.epsilon) * gi / std::sqrt(s[0][i] + c.epsilon);
        s[1][i] = c.rho * s[1][i] + (1 - c.rho) * d * d;
        w[i] += lr * d;
        break;
      }
      case OptimizerKind::kLion: {  // Keras's formula
        const double mixed = s[0][i] * c.beta_1 + gi * (1 - c.beta_1);
        w[i] -= lr * ((mixed > 0) - (mixed < 0));
        s[0][i] = s[0][i] * c.beta_2 + gi * (1 - c.beta_2);
        break;
      }
      case OptimizerKind::kAdagrad: {  // Keras's formula (the slot starts at 0.1)
        s[0][i] += gi * gi;
        w[i] -= lr * gi / std::sqrt(s[0][i] + c.epsilon);
        break;
      }
      case OptimizerKind::kAdamax: {  // Keras's formula
        s[0][i] += (gi - s[0][i]) * (1 - c.beta_1);
        s[1][i] = std::max(c.beta_2 * s[1][i], std::fabs(gi));
        w[i] -= lr * s[0][i] / ((1 - std::pow(c.beta_1, double(step))) * (s[1][i] + c.epsilon));
        break;
      }
      case OptimizerKind::kFtrl: {  // Keras's formula (the accumulator starts at 0.1)
        const double p = -c.lr_power, l2 = c.l2_strength + c.ftrl_beta / (2.0 * lr);
        const double na = s[0][i] + gi * gi;
        s[1][i] += gi + 2 * c.l2_shrinkage * w[i] -
                   (std::pow(na, p) - std::pow(s[0][i], p)) / lr * w[i];
        const double clipped = std::min(std::max(s[1][i], double(-c.l1_strength)),
                                        double(c.l1_strength));
        w[i] = (clipped - s[1][i]) / (std::pow(na, p) / lr + 2 * l2);
        s[0][i] = na;
        break;
      }
      case OptimizerKind::kNadam: {  // Keras's formula, its product of u from scratch
        auto u = [&](int64_t t) { return c.beta_1 * (1 - 0.5 * std::pow(0.96, double(t))); };
        double product = 1.0;
        for (int64_t t = 1; t <= step; ++t) product *= u(t);
        s[0][i] += (gi - s[0][i]) * (1 - c.beta_1);
        s[1][i] += (gi * gi - s[1][i]) * (1 - c.beta_2);
        const double m_hat = u(step + 1) * s[0][i] / (1 - product * u(step + 1)) +
                             (1 - u(step)) * gi / (1 - product);
        const double v_hat = s[1][i] / (1 - std::pow(c.beta_2, double(step)));
        w[i] -= lr * m_hat / (std::sqrt(v_hat) + c.epsilon);
        break;
      }
    }
  }
}

std::vector<OptimizerConfig> optimizer_configs() {
  std::vector<OptimizerConfig> v;
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.learning_rate = 0.01f;
  v.push_back(c);
  c.momentum = 0.9f;
  v.push_back(c);
  c.nesterov = true;
  c.weight_decay = 0.01f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kRmsprop;
  v.push_back(c);
  c.centered = true;
  v.push_back(c);
  c.momentum = 0.5f;
  v.push_back(c);
  c.centered = false;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kAdam;
  v.push_back(c);
  c.amsgrad = true;
  c.weight_decay = 0.004f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kAdamax;
  v.push_back(c);
  c.weight_decay = 0.004f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kAdagrad;
  c.learning_rate = 0.01f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kLion;
  c.beta_2 = 0.99f;
  v.push_back(c);
  c.weight_decay = 0.01f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kAdadelta;
  c.learning_rate = 1.0f;
  c.rho = 0.95f;
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kFtrl;
  c.learning_rate = 0.05f;
  v.push_back(c);
  c.l1_strength = 0.01f;  // a weight can land exactly on 0
  c.l2_strength = 0.02f;
  c.l2_shrinkage = 0.03f;
  c.ftrl_beta = 0.5f;
  c.weight_decay = 0.01f;
  v.push_back(c);
  c.lr_power = -0.3f;  // the scalar path
  v.push_back(c);
  c = OptimizerConfig();
  c.kind = OptimizerKind::kNadam;
  v.push_back(c);
  c.beta_1 = 0.8f;
  c.weight_decay = 0.004f;
  v.push_back(c);
  return v;
}

TEST_P(ActivationIsa, OptimizerUpdatesMatchTheScalarFormulas) {
  IsaScope scope(GetParam());
  for (const OptimizerConfig& c : optimizer_configs()) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 130, 100003}) {
      std::vector<float> w = normal_vec(n, 1, 1.0f);
      std::vector<double> wd(w.begin(), w.end());
      const int ns = optimizer_slot_count(c);
      std::vector<std::vector<float>> slots;
      std::vector<std::vector<double>> sd(3, std::vector<double>(n, 0.0));
      for (int s = 0; s < ns; ++s) {
        slots.emplace_back(n, optimizer_slot_initial_value(c, s));
        sd[s].assign(n, optimizer_slot_initial_value(c, s));
      }
      std::vector<float*> sp;
      for (auto& s : slots) sp.push_back(s.data());
      for (int64_t step = 1; step <= 3; ++step) {
        std::vector<float> g = normal_vec(n, 10 + step, 0.5f);
        optimizer_update(c, step, w.data(), g.data(), sp.data(), n);
        optimizer_ref(c, step, wd, g, sd);
      }
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(w[i], wd[i], 2e-6 * std::max(1.0, std::fabs(wd[i])))
            << "kind=" << int(c.kind) << " n=" << n << " i=" << i;
      }
    }
  }
}

// A sparse row times a matrix (the forward of a Dense layer on a sparse input) and axpy (its
// kernel gradient), against double over widths with tails, entry counts 0..40, repeated
// columns, and a matrix wider than the product (ldw > n).
TEST_P(ActivationIsa, SparseRowTimesAndAxpyMatchDouble) {
  IsaScope scope(GetParam());
  std::mt19937 rng(5);
  for (int64_t n : {1, 3, 15, 16, 17, 33, 64, 65, 100, 130}) {
    for (int64_t nnz : {0, 1, 7, 40}) {
      const int64_t rows = 50, ldw = n + 3;
      std::vector<float> w = normal_vec(rows * ldw, 77 + n, 1.0f);
      std::vector<float> val = normal_vec(nnz, 99 + nnz, 2.0f);
      std::vector<int32_t> idx(nnz);
      for (auto& i : idx) i = static_cast<int32_t>(rng() % rows);
      if (nnz > 1) idx[1] = idx[0];  // a repeated column adds up
      std::vector<float> out(n + 1, -7.0f);
      sparse_row_times(idx.data(), val.data(), nnz, w.data(), ldw, out.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0.0;
        for (int64_t e = 0; e < nnz; ++e) ref += double(val[e]) * w[idx[e] * ldw + j];
        ASSERT_NEAR(out[j], ref, 1e-5 * (1.0 + std::fabs(ref)) * (1 + nnz))
            << "n=" << n << " nnz=" << nnz << " j=" << j;
      }
      ASSERT_EQ(out[n], -7.0f) << "wrote past n";
      std::vector<float> y = normal_vec(n + 1, 5 + n, 1.0f), x = normal_vec(n, 6 + n, 1.0f);
      const std::vector<float> y0 = y;
      axpy(0.37f, x.data(), y.data(), n);
      for (int64_t j = 0; j < n; ++j)
        ASSERT_NEAR(y[j], y0[j] + 0.37 * double(x[j]), 1e-6 * (1.0 + std::fabs(y0[j])));
      ASSERT_EQ(y[n], y0[n]) << "wrote past n";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, ActivationIsa, ::testing::ValuesIn(isas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });

// Nadam's product of u_t, continued from a cache or computed afresh, is the same float32
// chain Keras assigns, into the subnormals (where it settles on a few ulps).
TEST(Optimizer, NadamProductContinuesAsFromScratch) {
  NadamProduct cache;
  float chain = 1.0f;
  for (int64_t t = 1; t <= 3000; ++t) {
    chain = chain * 0.9f * (1.0f - 0.5f * std::pow(0.96f, static_cast<float>(t)));
    ASSERT_EQ(nadam_u_product(0.9f, t, &cache), chain) << t;
    if (t % 97 == 0) ASSERT_EQ(nadam_u_product(0.9f, t), chain) << t;
  }
  EXPECT_LT(chain, 1e-44f);
  EXPECT_EQ(nadam_u_product(0.9f, 3, &cache), nadam_u_product(0.9f, 3));  // back: afresh
  EXPECT_NE(nadam_u_product(0.5f, 3, &cache), nadam_u_product(0.9f, 3));  // other beta_1
}

TEST(Activation, NeedsInputExactlyWhereYIsNotEnough) {
  EXPECT_FALSE(activation_needs_input(A::kRelu, {}));
  EXPECT_FALSE(activation_needs_input(A::kRelu, prm(0, 6, 0, 1)));
  EXPECT_FALSE(activation_needs_input(A::kRelu, prm(0, -1, 0.5f, 1)));
  EXPECT_TRUE(activation_needs_input(A::kRelu, prm(0, -1, -0.5f, 1)));
  EXPECT_FALSE(activation_needs_input(A::kRelu, prm(0.2f, -1, 0, 1)));
  EXPECT_TRUE(activation_needs_input(A::kRelu, prm(0.2f, 6, 0, 1)));
  EXPECT_TRUE(activation_needs_input(A::kRelu, prm(1.5f, -1, 0, 1)));
  EXPECT_FALSE(activation_needs_input(A::kLeakyRelu, prm(0.2f, -1, 0, 1)));
  EXPECT_FALSE(activation_needs_input(A::kElu, {}));
  EXPECT_TRUE(activation_needs_input(A::kElu, prm(0, -1, 0, -1)));
  EXPECT_FALSE(activation_needs_input(A::kCelu, {}));
  EXPECT_TRUE(activation_needs_input(A::kCelu, prm(0, -1, 0, -2)));
  EXPECT_FALSE(activation_needs_input(A::kHardShrink, prm(0, -1, 0.5f, 1)));
  EXPECT_TRUE(activation_needs_input(A::kHardShrink, prm(0, -1, -1, 1)));
  for (A a : {A::kGelu, A::kGeluApprox, A::kSilu, A::kHardSilu, A::kMish, A::kHardTanh,
              A::kSparsePlus, A::kSquareplus, A::kTanhShrink, A::kThreshold}) {
    EXPECT_TRUE(activation_needs_input(a, {}));
  }
  for (A a : {A::kLinear, A::kSigmoid, A::kTanh, A::kSoftmax, A::kRelu6, A::kSelu, A::kSoftplus,
              A::kSoftsign, A::kHardSigmoid, A::kLogSoftmax, A::kExponential, A::kLogSigmoid,
              A::kSoftShrink, A::kSparseSigmoid}) {
    EXPECT_FALSE(activation_needs_input(a, {}));
  }
  float y = 1, dy = 1, dx = 0;
  EXPECT_THROW(activation_backward(A::kGelu, {}, nullptr, &y, &dy, &dx, 1, 1),
               std::invalid_argument);
}

TEST(Activation, KerasReluExamples) {
  // keras.activations.relu docstring: x = [-10, -5, 0, 5, 10]
  const float x[5] = {-10, -5, 0, 5, 10};
  float y[5];
  activation_forward(A::kRelu, prm(0.5f, -1, 0, 1), x, y, 1, 5);
  EXPECT_EQ(std::vector<float>(y, y + 5), (std::vector<float>{-5, -2.5f, 0, 5, 10}));
  activation_forward(A::kRelu, prm(0, 5, 0, 1), x, y, 1, 5);
  EXPECT_EQ(std::vector<float>(y, y + 5), (std::vector<float>{0, 0, 0, 5, 5}));
  activation_forward(A::kRelu, prm(0, -1, 5, 1), x, y, 1, 5);
  EXPECT_EQ(std::vector<float>(y, y + 5), (std::vector<float>{0, 0, 0, 0, 10}));  // strict x > 5
  // relu'(0) = 0, as jax.nn.relu
  const float z = 0, one = 1;
  float d = -1;
  activation_backward(A::kRelu, {}, nullptr, &z, &one, &d, 1, 1);
  EXPECT_EQ(d, 0.0f);
}

}  // namespace
}  // namespace densitron
