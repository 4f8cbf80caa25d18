// The graph's transposed convolution (OpType::kConv with transposed = 1): its forward, its
// kernel, bias and input gradients against a double-precision reference over 1-D, 2-D and 3-D
// shapes with tails (odd sizes, strides 1 to 3, dilation, padding before, outputs longer than
// the windows reach, channels and filters not multiples of 8, several tiles a sample), the same
// values and gradients on one and two threads, and malformed attributes refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/graph.h"
#include "densitron/optim.h"

namespace densitron {
namespace {

// A layer's input (in positions of c channels) scattered into its output (out positions of
// f filters): input position p at kernel offset t reaches output p·stride - pad + t·dil.
struct Case {
  std::vector<int64_t> in, k, stride, dil, pad, out;
  int64_t c, f;
  std::vector<int64_t> iattrs() const {  // the convolution of f channels whose gradient it is
    std::vector<int64_t> ia{static_cast<int64_t>(in.size())};
    ia.insert(ia.end(), out.begin(), out.end());
    ia.push_back(f);
    for (const auto* v : {&k, &stride, &dil, &pad, &in}) ia.insert(ia.end(), v->begin(), v->end());
    ia.push_back(c);
    ia.push_back(1);  // groups
    ia.push_back(1);  // transposed
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

// fn(p, t, o) for each input position p, kernel offset t and the output position o they reach.
template <class Fn>
void for_each_reach(const Case& cc, Fn fn) {
  const size_t r = cc.in.size();
  for (int64_t p = 0; p < prod(cc.in); ++p)
    for (int64_t t = 0; t < prod(cc.k); ++t) {
      int64_t pr = p, tr = t, o = 0;
      std::vector<int64_t> pc(r), kc(r);
      for (size_t a = r; a-- > 0;) {
        pc[a] = pr % cc.in[a];
        pr /= cc.in[a];
        kc[a] = tr % cc.k[a];
        tr /= cc.k[a];
      }
      bool inside = true;
      for (size_t a = 0; a < r; ++a) {
        const int64_t i = pc[a] * cc.stride[a] - cc.pad[a] + kc[a] * cc.dil[a];
        inside = inside && i >= 0 && i < cc.out[a];
        o = o * cc.out[a] + i;
      }
      if (inside) fn(p, t, o);
    }
}

// z[s, o, f] = b[f] + Σ x[s, p, c]·w[t, f, c] over the (p, t) reaching o, in double.
std::vector<double> reference(const Case& cc, const std::vector<float>& x,
                              const std::vector<float>& w, const std::vector<float>* b,
                              int64_t batch) {
  const int64_t n = prod(cc.in), m = prod(cc.out);
  std::vector<double> z(batch * m * cc.f, 0.0);
  for (int64_t s = 0; s < batch; ++s)
    for_each_reach(cc, [&](int64_t p, int64_t t, int64_t o) {
      for (int64_t f = 0; f < cc.f; ++f)
        for (int64_t c = 0; c < cc.c; ++c)
          z[(s * m + o) * cc.f + f] +=
              static_cast<double>(x[(s * n + p) * cc.c + c]) * w[(t * cc.f + f) * cc.c + c];
    });
  if (b != nullptr)
    for (int64_t q = 0; q < batch * m; ++q)
      for (int64_t f = 0; f < cc.f; ++f) z[q * cc.f + f] += (*b)[f];
  return z;
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

double derivative(Activation act, double z) {
  switch (act) {
    case Activation::kTanh:
      return 1.0 - std::tanh(z) * std::tanh(z);
    case Activation::kSigmoid:
      return apply(act, z) * (1.0 - apply(act, z));
    default:
      return 1.0;
  }
}

// The graph: an Input, a bias-add over its whole sample (b0, n·c values: its gradient is the
// batch's sum of the input gradients), then the transposed convolution (w, b).
struct Net {
  std::vector<NodeSpec> nodes;
  std::vector<ParamSpec> params;
  Net(const Case& cc, std::vector<float>& b0, std::vector<float>& w, std::vector<float>& b,
      Activation act, bool bias, std::vector<int64_t> iattrs = {}) {
    const int64_t in_w = prod(cc.in) * cc.c;
    NodeSpec input;
    input.op = OpType::kInput;
    input.width = in_w;
    input.last_dim = in_w;
    NodeSpec add;
    add.op = OpType::kBiasAdd;
    add.inputs = {0};
    add.width = add.last_dim = in_w;
    add.params = {0};
    NodeSpec conv;
    conv.op = OpType::kConv;
    conv.inputs = {1};
    conv.width = prod(cc.out) * cc.f;
    conv.last_dim = cc.f;
    conv.activation = act;
    conv.params = {1, bias ? 2 : -1};
    conv.iattrs = iattrs.empty() ? cc.iattrs() : iattrs;
    nodes = {input, add, conv};
    params.resize(3);
    for (auto [p, v] : {std::pair<int, std::vector<float>*>{0, &b0}, {1, &w}, {2, &b}}) {
      params[p].data = v->data();
      params[p].size = static_cast<int64_t>(v->size());
    }
  }
};

struct Values {
  std::vector<float> x, b0, w, b, target;
};

Values values(const Case& cc, int64_t batch, unsigned seed) {
  Values v;
  v.x = random_vec(batch * prod(cc.in) * cc.c, seed);
  v.b0.assign(prod(cc.in) * cc.c, 0.0f);
  v.w = random_vec(prod(cc.k) * cc.f * cc.c, seed + 1);
  v.b = random_vec(cc.f, seed + 2);
  v.target = random_vec(batch * prod(cc.out) * cc.f, seed + 3);
  return v;
}

std::vector<float> predict(const Case& cc, Values& v, int64_t batch, Activation act, bool bias,
                           int threads) {
  Net net(cc, v.b0, v.w, v.b, act, bias);
  const int saved = get_num_threads();
  set_num_threads(threads);
  Graph g(net.nodes, net.params, {0}, {2});
  std::vector<float> y(batch * net.nodes[2].width, std::nanf(""));
  g.predict({v.x.data()}, batch, 3, {y.data()});
  set_num_threads(saved);
  return y;
}

// The gradients (b0, w, b concatenated) of the mean squared error to v.target over the batch.
std::vector<float> gradients(const Case& cc, Values& v, int64_t batch, Activation act,
                             int threads) {
  Net net(cc, v.b0, v.w, v.b, act, true);
  const int saved = get_num_threads();
  set_num_threads(threads);
  Graph g(net.nodes, net.params, {0}, {2});
  OutputSpec out;
  out.node = 2;
  out.loss = Loss::kMeanSquaredError;
  out.target_width = net.nodes[2].width;
  g.compile({out}, OptimizerConfig(), {true, true, true});
  DataRefs data;
  data.x = {v.x.data()};
  data.y = {v.target.data()};
  data.rows = batch;
  std::vector<float> grads;
  g.gradients(data, &grads);
  set_num_threads(saved);
  return grads;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      // 1-D: Keras's 'valid' (pad 0) and 'same' sizes, strides, dilation, output_padding
      {{9}, {3}, {1}, {1}, {0}, {11}, 3, 5},
      {{7}, {4}, {2}, {1}, {1}, {14}, 7, 9},
      {{10}, {3}, {1}, {3}, {3}, {10}, 1, 13},
      {{6}, {5}, {3}, {1}, {1}, {19}, 10, 17},
      {{9}, {1}, {1}, {1}, {0}, {9}, 6, 11},   // 1×1: the rows themselves (no scatter)
      {{5}, {2}, {3}, {1}, {0}, {16}, 2, 3},   // windows that leave gaps and a longer output
      // 2-D
      {{7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {14, 12}, 3, 10},
      {{8, 5}, {3, 2}, {2, 3}, {1, 1}, {1, 0}, {16, 15}, 5, 7},
      {{9, 8}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {9, 8}, 9, 6},
      {{7, 8}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {13, 16}, 4, 3},  // 1×1 at stride 2
      {{40, 37}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {40, 37}, 33, 17},  // several tiles
      // a kernel past kConvBlockedKernel: its gradient shared by rows, not sample blocks
      {{5, 4}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {10, 9}, 129, 127},
      // 3-D
      {{3, 4, 5}, {2, 3, 3}, {1, 2, 1}, {1, 1, 1}, {0, 1, 1}, {4, 8, 5}, 3, 5},
      {{4, 3, 5}, {3, 2, 2}, {2, 1, 3}, {1, 2, 1}, {1, 1, 0}, {8, 5, 16}, 2, 9},
  };
  return all;
}

double tolerance(const Case& cc) {
  return 1e-5 * std::sqrt(static_cast<double>(prod(cc.k) * cc.c)) + 1e-6;
}

TEST(ConvTranspose, ForwardMatchesReference) {
  const int64_t batch = 5;
  for (const Case& cc : cases())
    for (Activation act :
         {Activation::kLinear, Activation::kRelu, Activation::kTanh, Activation::kSigmoid})
      for (bool bias : {true, false}) {
        Values v = values(cc, batch, 1);
        const std::vector<float> y = predict(cc, v, batch, act, bias, 1);
        const std::vector<double> z = reference(cc, v.x, v.w, bias ? &v.b : nullptr, batch);
        ASSERT_EQ(y.size(), z.size());
        for (size_t j = 0; j < y.size(); ++j)
          ASSERT_NEAR(y[j], apply(act, z[j]), tolerance(cc) * (1.0 + std::fabs(z[j])))
              << "case in[0] " << cc.in[0] << " value " << j;
      }
}

TEST(ConvTranspose, GradientsMatchReference) {
  const int64_t batch = 4;
  for (const Case& cc : cases())
    for (Activation act : {Activation::kLinear, Activation::kTanh}) {
      Values v = values(cc, batch, 7);
      const std::vector<float> grads = gradients(cc, v, batch, act, 1);
      const int64_t n = prod(cc.in), m = prod(cc.out), values = batch * m * cc.f;
      const std::vector<double> z = reference(cc, v.x, v.w, &v.b, batch);
      std::vector<double> dz(values);  // the mean squared error's gradient, through act
      for (int64_t j = 0; j < values; ++j)
        dz[j] = 2.0 * (apply(act, z[j]) - v.target[j]) / values * derivative(act, z[j]);
      std::vector<double> gb0(n * cc.c, 0.0), gw(v.w.size(), 0.0), gb(cc.f, 0.0);
      for (int64_t s = 0; s < batch; ++s)
        for_each_reach(cc, [&](int64_t p, int64_t t, int64_t o) {
          for (int64_t f = 0; f < cc.f; ++f) {
            const double d = dz[(s * m + o) * cc.f + f];
            for (int64_t c = 0; c < cc.c; ++c) {
              gw[(t * cc.f + f) * cc.c + c] += d * v.x[(s * n + p) * cc.c + c];
              gb0[p * cc.c + c] += d * v.w[(t * cc.f + f) * cc.c + c];
            }
          }
        });
      for (int64_t j = 0; j < values; ++j) gb[j % cc.f] += dz[j];
      std::vector<double> want(gb0);
      want.insert(want.end(), gw.begin(), gw.end());
      want.insert(want.end(), gb.begin(), gb.end());
      ASSERT_EQ(grads.size(), want.size());
      double scale = 0.0;
      for (double g : want) scale = std::max(scale, std::fabs(g));
      for (size_t j = 0; j < want.size(); ++j)
        ASSERT_NEAR(grads[j], want[j], 1e-4 * scale) << "case in[0] " << cc.in[0] << " grad " << j;
    }
}

TEST(ConvTranspose, SameValuesAndGradientsOnOneAndTwoThreads) {
  for (const Case& cc : cases()) {
    const int64_t batch = 7;
    Values v = values(cc, batch, 11);
    ASSERT_EQ(predict(cc, v, batch, Activation::kRelu, true, 1),
              predict(cc, v, batch, Activation::kRelu, true, 2));
    ASSERT_EQ(gradients(cc, v, batch, Activation::kTanh, 1),
              gradients(cc, v, batch, Activation::kTanh, 2));
  }
}

TEST(ConvTranspose, MalformedAttributesRefused) {
  const Case cc{{7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {14, 12}, 3, 4};
  Values v = values(cc, 1, 3);
  auto build = [&](std::vector<int64_t> ia, bool bias = true) {
    Net net(cc, v.b0, v.w, v.b, Activation::kLinear, bias, std::move(ia));
    Graph g(net.nodes, net.params, {0}, {2});
  };
  EXPECT_NO_THROW(build(cc.iattrs()));
  std::vector<int64_t> ia = cc.iattrs();
  ia.back() = 2;  // transposed 0 or 1
  EXPECT_THROW(build(ia), std::invalid_argument);
  ia.back() = 0;  // a plain convolution: its widths are the other way round
  EXPECT_THROW(build(ia), std::invalid_argument);
  ia = cc.iattrs();
  ia[ia.size() - 2] = 2;  // no groups
  EXPECT_THROW(build(ia), std::invalid_argument);
  ia = cc.iattrs();
  ia.push_back(1);  // a field too many
  EXPECT_THROW(build(ia), std::invalid_argument);
  v.b.push_back(0.0f);  // a bias of f values
  EXPECT_THROW(build(cc.iattrs()), std::invalid_argument);
}

}  // namespace
}  // namespace densitron
