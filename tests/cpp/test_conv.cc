// The graph's native convolution (OpType::kConv): its forward against a double-precision
// reference over 1-D, 2-D and 3-D shapes with tails (odd sizes, strides 1 to 3, dilation,
// padding before and an implied padding after, channels and filters not multiples of 8), the
// fused activations, the same values on one and two threads, and malformed attributes refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/graph.h"

namespace densitron {
namespace {

struct ConvCase {
  std::vector<int64_t> in, k, stride, dil, pad;
  int64_t cin, filters;
  int64_t groups = 1;  // (a last attribute when more than one)
  std::vector<int64_t> out() const {  // the windows that start inside the padded input
    std::vector<int64_t> o;
    for (size_t a = 0; a < in.size(); ++a) {
      const int64_t span = dil[a] * (k[a] - 1) + 1;
      o.push_back((in[a] + 2 * pad[a] - span) / stride[a] + 1);  // padding after = before
    }
    return o;
  }
  std::vector<int64_t> iattrs() const {
    std::vector<int64_t> ia{static_cast<int64_t>(in.size())};
    ia.insert(ia.end(), in.begin(), in.end());
    ia.push_back(cin);
    for (const auto* v : {&k, &stride, &dil, &pad}) ia.insert(ia.end(), v->begin(), v->end());
    const std::vector<int64_t> o = out();
    ia.insert(ia.end(), o.begin(), o.end());
    ia.push_back(filters);
    if (groups != 1) ia.push_back(groups);
    return ia;
  }
};

int64_t prod(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

std::vector<float> random_vec(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// y[s, o..., f] = Σ_{t..., c} x[s, o·stride - pad + t·dil, c]·w[t..., c, f] + b[f], in double.
std::vector<double> reference(const ConvCase& cc, const std::vector<float>& x,
                              const std::vector<float>& w, const std::vector<float>& b,
                              int64_t batch) {
  const size_t r = cc.in.size();
  const std::vector<int64_t> out = cc.out();
  const int64_t positions = prod(out), taps = prod(cc.k), in_pos = prod(cc.in);
  std::vector<double> y(batch * positions * cc.filters, 0.0);
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t t = 0; t < taps; ++t) {
        int64_t pr = p, tr = t, flat = 0;
        bool inside = true;
        std::vector<int64_t> o(r), kk(r);
        for (size_t a = r; a-- > 0;) {
          o[a] = pr % out[a];
          pr /= out[a];
          kk[a] = tr % cc.k[a];
          tr /= cc.k[a];
        }
        for (size_t a = 0; a < r; ++a) {
          const int64_t i = o[a] * cc.stride[a] - cc.pad[a] + kk[a] * cc.dil[a];
          inside = inside && i >= 0 && i < cc.in[a];
          flat = flat * cc.in[a] + i;
        }
        if (!inside) continue;
        const int64_t cg = cc.cin / cc.groups, fg = cc.filters / cc.groups;
        for (int64_t f = 0; f < cc.filters; ++f)
          for (int64_t c = 0; c < cg; ++c) {  // output f's group's channels
            const double xv = x[(s * in_pos + flat) * cc.cin + f / fg * cg + c];
            y[(s * positions + p) * cc.filters + f] += xv * w[(t * cg + c) * cc.filters + f];
          }
      }
  for (int64_t q = 0; q < batch * positions; ++q)
    for (int64_t f = 0; f < cc.filters; ++f) y[q * cc.filters + f] += b[f];
  return y;
}

// The graph's output: an Input, then the convolution with `act`, predicted in batches of 3.
std::vector<float> run_conv(const ConvCase& cc, std::vector<float>& w, std::vector<float>& b,
                            const std::vector<float>& x, int64_t batch, Activation act,
                            bool bias = true) {
  const int64_t in_w = prod(cc.in) * cc.cin, out_w = prod(cc.out()) * cc.filters;
  NodeSpec input;
  input.op = OpType::kInput;
  input.width = in_w;
  input.last_dim = cc.cin;
  NodeSpec conv;
  conv.op = OpType::kConv;
  conv.inputs = {0};
  conv.width = out_w;
  conv.last_dim = cc.filters;
  conv.activation = act;
  conv.params = {0, bias ? 1 : -1};
  conv.iattrs = cc.iattrs();
  std::vector<ParamSpec> params(2);
  params[0].data = w.data();
  params[0].size = static_cast<int64_t>(w.size());
  params[1].data = b.data();
  params[1].size = static_cast<int64_t>(b.size());
  Graph g({input, conv}, params, {0}, {1});
  std::vector<float> y(batch * out_w, std::nanf(""));
  g.predict({x.data()}, batch, 3, {y.data()});
  return y;
}

double apply(Activation act, double z) {
  switch (act) {
    case Activation::kRelu:
      return std::max(z, 0.0);
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-z));
    default:
      return z;
  }
}

void check(const ConvCase& cc, Activation act, int threads, bool bias = true) {
  const int64_t batch = 5;
  const int64_t in_w = prod(cc.in) * cc.cin;
  std::vector<float> x = random_vec(batch * in_w, 1);
  std::vector<float> w = random_vec(prod(cc.k) * cc.cin / cc.groups * cc.filters, 2);
  std::vector<float> b = random_vec(cc.filters, 3);
  const int saved = get_num_threads();
  set_num_threads(threads);
  const std::vector<float> y = run_conv(cc, w, b, x, batch, act, bias);
  set_num_threads(saved);
  std::vector<float> zero_b(cc.filters, 0.0f);
  const std::vector<double> ref = reference(cc, x, w, bias ? b : zero_b, batch);
  ASSERT_EQ(y.size(), ref.size());
  const double tol = 1e-5 * std::sqrt(static_cast<double>(prod(cc.k) * cc.cin)) + 1e-6;
  for (size_t j = 0; j < y.size(); ++j)
    ASSERT_NEAR(y[j], apply(act, ref[j]), tol * (1.0 + std::fabs(ref[j]))) << "value " << j;
}

const std::vector<ConvCase>& cases() {
  static const std::vector<ConvCase> all = {
      // 1-D: valid, 'same'-like padding, strides, dilation, a causal-like left padding
      {{17}, {3}, {1}, {1}, {0}, 3, 5},
      {{17}, {4}, {2}, {1}, {1}, 7, 9},
      {{23}, {3}, {1}, {3}, {3}, 1, 13},
      {{11}, {5}, {3}, {1}, {2}, 10, 17},
      {{9}, {1}, {1}, {1}, {0}, 6, 11},  // pointwise: the input's rows read directly
      // 2-D
      {{13, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, 10},
      {{15, 9}, {3, 2}, {2, 3}, {1, 1}, {1, 0}, 5, 7},
      {{12, 14}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 9, 6},
      {{7, 8}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, 4, 3},  // 1×1 at stride 2: laid out
      {{40, 37}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 17, 33},  // several tiles a sample
      // 3-D
      {{5, 6, 7}, {2, 3, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}, 3, 5},
      {{6, 5, 7}, {3, 2, 2}, {2, 1, 3}, {1, 2, 1}, {1, 1, 0}, 2, 9},
      // groups: grouped, depthwise (a channel a group, multiplier 1 and 3), a 1×1 grouped one
      {{17}, {3}, {2}, {1}, {1}, 6, 9, 3},
      {{13, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 10, 10, 10},
      {{15, 9}, {3, 2}, {2, 1}, {2, 1}, {2, 0}, 5, 15, 5},
      {{40, 37}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 12, 20, 4},
      {{7, 8}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 8, 6, 2},
      {{5, 6, 7}, {2, 3, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}, 4, 8, 4},
  };
  return all;
}

TEST(Conv, ForwardMatchesReference) {
  for (const ConvCase& cc : cases())
    for (Activation act : {Activation::kLinear, Activation::kRelu, Activation::kTanh})
      check(cc, act, 1);
}

TEST(Conv, ForwardWithoutBiasAndUnfusedActivation) {
  for (const ConvCase& cc : cases()) {
    check(cc, Activation::kLinear, 1, false);
    check(cc, Activation::kSigmoid, 2, false);
  }
}

TEST(Conv, SameValuesOnOneAndTwoThreads) {
  for (const ConvCase& cc : cases()) {
    const int64_t batch = 7, in_w = prod(cc.in) * cc.cin;
    std::vector<float> x = random_vec(batch * in_w, 4);
    std::vector<float> w = random_vec(prod(cc.k) * cc.cin / cc.groups * cc.filters, 5);
    std::vector<float> b = random_vec(cc.filters, 6);
    const int saved = get_num_threads();
    set_num_threads(1);
    const std::vector<float> one = run_conv(cc, w, b, x, batch, Activation::kRelu);
    set_num_threads(2);
    const std::vector<float> two = run_conv(cc, w, b, x, batch, Activation::kRelu);
    set_num_threads(saved);
    ASSERT_EQ(one, two);
  }
}

TEST(Conv, MalformedAttributesRefused) {
  const ConvCase cc{{9, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, 4};
  std::vector<float> w(9 * 3 * 4), b(4);
  auto build = [&](std::vector<int64_t> ia, int64_t kernel_size) {
    NodeSpec input;
    input.op = OpType::kInput;
    input.width = 9 * 8 * 3;
    NodeSpec conv;
    conv.op = OpType::kConv;
    conv.inputs = {0};
    conv.width = prod(cc.out()) * 4;
    conv.last_dim = 4;
    conv.params = {0, 1};
    conv.iattrs = std::move(ia);
    std::vector<ParamSpec> params(2);
    params[0].data = w.data();
    params[0].size = kernel_size;
    params[1].data = b.data();
    params[1].size = 4;
    Graph g({input, conv}, params, {0}, {1});
  };
  EXPECT_NO_THROW(build(cc.iattrs(), 9 * 3 * 4));
  EXPECT_THROW(build(cc.iattrs(), 9 * 3 * 4 - 1), std::invalid_argument);  // kernel size
  std::vector<int64_t> ia = cc.iattrs();
  ia.pop_back();
  EXPECT_THROW(build(ia, 108), std::invalid_argument);  // a field missing
  for (size_t f = 0; f < cc.iattrs().size(); ++f) {
    ia = cc.iattrs();
    ia[f] = f == 10 || f == 11 ? -1 : 0;  // (padding may be 0, not negative)
    EXPECT_THROW(build(ia, 108), std::invalid_argument) << "field " << f;
  }
  ia = cc.iattrs();
  ia[0] = 4;
  EXPECT_THROW(build(ia, 108), std::invalid_argument);  // rank
  ia = cc.iattrs();
  ia.push_back(1);
  EXPECT_NO_THROW(build(ia, 108));  // groups 1, written
  for (int64_t groups : {0, -1, 2, 3}) {  // (2 does not divide cin 3; 3 not filters 4)
    ia.back() = groups;
    EXPECT_THROW(build(ia, 108 / std::max<int64_t>(groups, 1)), std::invalid_argument)
        << "groups " << groups;
  }
  ia.back() = 1;
  ia.push_back(0);
  EXPECT_NO_THROW(build(ia, 108));  // transposed 0, written
  ia.push_back(0);
  EXPECT_THROW(build(ia, 108), std::invalid_argument);  // a field too many
}

}  // namespace
}  // namespace densitron
