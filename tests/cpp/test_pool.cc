// The graph's windowed pooling (OpType::kWindowPool): its forward, maximum and mean, against a
// double-precision reference over 1-D, 2-D and 3-D shapes with tails (odd sizes, strides 1 to
// 3, overlapping windows, padding before and windows clipped at the end, channels not
// multiples of 8), the same values on one and two threads, and malformed attributes refused.
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

struct PoolCase {
  std::vector<int64_t> in, k, stride, pad;
  int64_t channels;
  std::vector<int64_t> out() const {  // XLA's: 'valid' without padding, else ceil(in / stride)
    std::vector<int64_t> o;
    for (size_t a = 0; a < in.size(); ++a)
      o.push_back(pad[a] == 0 && stride[a] <= k[a] ? (in[a] - k[a]) / stride[a] + 1
                                                   : (in[a] - 1) / stride[a] + 1);
    return o;
  }
  std::vector<int64_t> iattrs(int64_t mode) const {
    std::vector<int64_t> ia{static_cast<int64_t>(in.size())};
    ia.insert(ia.end(), in.begin(), in.end());
    ia.push_back(channels);
    for (const auto* v : {&k, &stride, &pad}) ia.insert(ia.end(), v->begin(), v->end());
    const std::vector<int64_t> o = out();
    ia.insert(ia.end(), o.begin(), o.end());
    ia.push_back(mode);
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

// y[s, o..., c] = max or mean over t of x[s, o·stride - pad + t, c] inside the input.
std::vector<double> reference(const PoolCase& pc, const std::vector<float>& x, int64_t batch,
                              bool max) {
  const size_t r = pc.in.size();
  const std::vector<int64_t> out = pc.out();
  const int64_t positions = prod(out), taps = prod(pc.k), in_pos = prod(pc.in);
  const int64_t c = pc.channels;
  std::vector<double> y(batch * positions * c);
  for (int64_t s = 0; s < batch; ++s)
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t ch = 0; ch < c; ++ch) {
        double acc = max ? -INFINITY : 0.0;
        int64_t count = 0;
        for (int64_t t = 0; t < taps; ++t) {
          int64_t pr = p, tr = t, flat = 0;
          bool inside = true;
          std::vector<int64_t> o(r), kk(r);
          for (size_t a = r; a-- > 0;) {
            o[a] = pr % out[a];
            pr /= out[a];
            kk[a] = tr % pc.k[a];
            tr /= pc.k[a];
          }
          for (size_t a = 0; a < r; ++a) {
            const int64_t i = o[a] * pc.stride[a] - pc.pad[a] + kk[a];
            inside = inside && i >= 0 && i < pc.in[a];
            flat = flat * pc.in[a] + i;
          }
          if (!inside) continue;
          const double v = x[(s * in_pos + flat) * c + ch];
          acc = max ? std::max(acc, v) : acc + v;
          ++count;
        }
        y[(s * positions + p) * c + ch] = max ? acc : acc / count;
      }
  return y;
}

NodeSpec input_node(int64_t width, int64_t last) {
  NodeSpec input;
  input.op = OpType::kInput;
  input.width = width;
  input.last_dim = last;
  return input;
}

// The graph's output: an Input, then the pooling, predicted in batches of 3.
std::vector<float> run_pool(const PoolCase& pc, const std::vector<float>& x, int64_t batch,
                            int64_t mode) {
  const int64_t in_w = prod(pc.in) * pc.channels, out_w = prod(pc.out()) * pc.channels;
  NodeSpec pool;
  pool.op = OpType::kWindowPool;
  pool.inputs = {0};
  pool.width = out_w;
  pool.last_dim = pc.channels;
  pool.iattrs = pc.iattrs(mode);
  Graph g({input_node(in_w, pc.channels), pool}, {}, {0}, {1});
  std::vector<float> y(batch * out_w, std::nanf(""));
  g.predict({x.data()}, batch, 3, {y.data()});
  return y;
}

const std::vector<PoolCase>& cases() {
  static const std::vector<PoolCase> all = {
      // 1-D: valid, 'same' (padding before, a window clipped at the end), strides > pool
      {{17}, {2}, {2}, {0}, 3},
      {{17}, {3}, {2}, {0}, 5},
      {{17}, {4}, {3}, {1}, 9},
      {{10}, {5}, {1}, {2}, 1},
      {{11}, {2}, {3}, {0}, 10},
      // 2-D
      {{13, 11}, {2, 2}, {2, 2}, {0, 0}, 3},
      {{13, 11}, {3, 3}, {2, 2}, {1, 1}, 17},
      {{15, 9}, {3, 2}, {1, 3}, {1, 0}, 6},
      {{7, 8}, {1, 1}, {2, 2}, {0, 0}, 4},
      {{40, 37}, {3, 3}, {1, 1}, {1, 1}, 33},
      // 3-D
      {{5, 6, 7}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, 3},
      {{6, 5, 7}, {3, 2, 3}, {2, 1, 2}, {1, 0, 1}, 9},
  };
  return all;
}

void check(const PoolCase& pc, int64_t mode, int threads) {
  const int64_t batch = 5;
  const std::vector<float> x = random_vec(batch * prod(pc.in) * pc.channels, 1);
  const int saved = get_num_threads();
  set_num_threads(threads);
  const std::vector<float> y = run_pool(pc, x, batch, mode);
  set_num_threads(saved);
  const std::vector<double> ref = reference(pc, x, batch, mode == 1);
  ASSERT_EQ(y.size(), ref.size());
  for (size_t j = 0; j < y.size(); ++j) {
    if (mode == 1) {
      ASSERT_EQ(y[j], static_cast<float>(ref[j])) << "value " << j;
    } else {
      ASSERT_NEAR(y[j], ref[j], 1e-6 * (1.0 + std::fabs(ref[j]))) << "value " << j;
    }
  }
}

TEST(WindowPool, MaxMatchesReference) {
  for (const PoolCase& pc : cases()) check(pc, 1, 1);
}

TEST(WindowPool, MeanMatchesReference) {
  for (const PoolCase& pc : cases()) check(pc, 0, 1);
}

TEST(WindowPool, SameValuesOnOneAndTwoThreads) {
  for (const PoolCase& pc : cases())
    for (int64_t mode : {0, 1}) {
      const int64_t batch = 7;
      const std::vector<float> x = random_vec(batch * prod(pc.in) * pc.channels, 4);
      const int saved = get_num_threads();
      set_num_threads(1);
      const std::vector<float> one = run_pool(pc, x, batch, mode);
      set_num_threads(2);
      const std::vector<float> two = run_pool(pc, x, batch, mode);
      set_num_threads(saved);
      ASSERT_EQ(one, two);
      check(pc, mode, 2);
    }
}

TEST(WindowPool, MalformedAttributesRefused) {
  const PoolCase pc{{9, 8}, {3, 3}, {2, 2}, {1, 1}, 3};  // out (5, 4)
  auto build = [&](std::vector<int64_t> ia, int64_t out_w = 5 * 4 * 3, int64_t last = 3) {
    NodeSpec pool;
    pool.op = OpType::kWindowPool;
    pool.inputs = {0};
    pool.width = out_w;
    pool.last_dim = last;
    pool.iattrs = std::move(ia);
    Graph g({input_node(9 * 8 * 3, 3), pool}, {}, {0}, {1});
  };
  EXPECT_NO_THROW(build(pc.iattrs(1)));
  EXPECT_NO_THROW(build(pc.iattrs(0)));
  EXPECT_THROW(build(pc.iattrs(2)), std::invalid_argument);   // mode
  EXPECT_THROW(build(pc.iattrs(-1)), std::invalid_argument);  // mode
  EXPECT_THROW(build(pc.iattrs(1), 5 * 4 * 3 + 1), std::invalid_argument);  // width
  EXPECT_THROW(build(pc.iattrs(1), 5 * 4 * 3, 4), std::invalid_argument);   // last axis
  std::vector<int64_t> ia = pc.iattrs(1);
  ia.pop_back();
  EXPECT_THROW(build(ia), std::invalid_argument);  // a field missing
  for (size_t f = 0; f + 1 < pc.iattrs(1).size(); ++f) {
    ia = pc.iattrs(1);
    ia[f] = f == 8 || f == 9 ? -1 : 0;  // (padding may be 0, not negative)
    EXPECT_THROW(build(ia), std::invalid_argument) << "field " << f;
  }
  ia = pc.iattrs(1);
  ia[8] = 3;  // padding before the first axis as large as its window: a window outside
  ia[10] = 6;
  EXPECT_THROW(build(ia, 6 * 4 * 3), std::invalid_argument);
  ia = pc.iattrs(1);
  ia[10] = 6;  // a sixth window of the first axis would start at 9, past its 9 values
  EXPECT_THROW(build(ia, 6 * 4 * 3), std::invalid_argument);
  ia = pc.iattrs(1);
  ia[0] = 4;
  EXPECT_THROW(build(ia), std::invalid_argument);  // rank
}

}  // namespace
}  // namespace densitron
