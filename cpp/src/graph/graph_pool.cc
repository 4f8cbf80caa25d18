// kWindowPool, Keras's windowed pooling (see OpType::kWindowPool): each output position's
// window, clipped to the input, reduced channel-wise over its taps in window order. Forward,
// the threads share the batch's (sample, position) items; backward, whole samples (windows
// overlap when strides < pool size), each sample's windows scattered in order. Every value is
// the same for any thread count, and nothing is allocated a step but each thread's scratch of
// one position's channels (grown once).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "densitron/graph.h"
#include "graph/graph_util.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

// The calling thread's n flags of the maximum's channels still to be met (grows only).
uint32_t* pending_scratch(int64_t n) {
  thread_local std::vector<uint32_t> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  return scratch.data();
}

// The window of output position p clipped to the input: per axis the first input index and
// the count of the window's taps inside it.
struct Window {
  int64_t lo[3], n[3];
  int64_t count() const { return n[0] * n[1] * n[2]; }
};

inline Window window_of(const ConvGeom& g, int64_t p) {
  Window w;
  int64_t o[3];
  o[2] = p % g.out[2];
  p /= g.out[2];
  o[1] = p % g.out[1];
  o[0] = p / g.out[1];
  for (int a = 0; a < 3; ++a) {
    const int64_t b = o[a] * g.stride[a] - g.pad[a];
    w.lo[a] = std::max<int64_t>(b, 0);
    w.n[a] = std::min(b + g.k[a], g.in[a]) - w.lo[a];
  }
  return w;
}

// fn(offset) for the sample offsets of window w's taps, in window order (row-major).
template <class Fn>
inline void for_each_tap(const ConvGeom& g, const Window& w, Fn fn) {
  const int64_t c = g.cin;
  for (int64_t i0 = w.lo[0]; i0 < w.lo[0] + w.n[0]; ++i0)
    for (int64_t i1 = w.lo[1]; i1 < w.lo[1] + w.n[1]; ++i1) {
      const int64_t row = (i0 * g.in[1] + i1) * g.in[2];
      for (int64_t i2 = w.lo[2]; i2 < w.lo[2] + w.n[2]; ++i2) fn((row + i2) * c);
    }
}

// The maximum's gradient at one tap: dp[ch] added into gv[ch] where the tap's value xv[ch]
// is the maximum yp[ch] (NaN for NaN) and pending[ch] (all ones: not met at an earlier tap),
// which it then clears. Masks as integers, with no branch on the data, so that the compiler
// vectorizes it (a branch a value was mispredicted wherever a maximum lands).
inline void route_max_grad(const float* __restrict xv, const float* __restrict yp,
                           const float* __restrict dp, float* __restrict gv,
                           uint32_t* __restrict pending, int64_t c) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const float xc = xv[ch], m = yp[ch];
    const uint32_t hit = pending[ch] & (-static_cast<uint32_t>(xc == m) |
                                        -static_cast<uint32_t>((xc != xc) & (m != m)));
    const float sum = gv[ch] + dp[ch];
    uint32_t sum_bits, old_bits;
    std::memcpy(&sum_bits, &sum, sizeof(float));
    std::memcpy(&old_bits, gv + ch, sizeof(float));
    const uint32_t out = (sum_bits & hit) | (old_bits & ~hit);
    std::memcpy(gv + ch, &out, sizeof(float));
    pending[ch] &= ~hit;
  }
}

}  // namespace

void Graph::forward_window_pool(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  ConvGeom g;
  int64_t mode = 0;
  pool_geom(node.iattrs, &g, &mode);
  const int64_t positions = g.positions(), c = g.cin;
  const int64_t win = nodes_[node.inputs[0]].width;
  const float* x = out_[node.inputs[0]];
  float* y = out_buf_[i].data();
  const Share items = share_of(st.batch * positions, st.ith, st.nth,
                               std::max<int64_t>(1, kMinElementsPerThread / c));
  for (int64_t it = items.lo; it < items.hi; ++it) {
    const int64_t s = it / positions;
    const Window w = window_of(g, it % positions);
    const float* xs = x + s * win;
    float* __restrict yp = y + it * c;
    bool first = true;
    for_each_tap(g, w, [&](int64_t off) {
      const float* xv = xs + off;
      if (first) {
        std::memcpy(yp, xv, c * sizeof(float));
        first = false;
      } else if (mode == 1) {
        for (int64_t ch = 0; ch < c; ++ch) {
          const float v = xv[ch];
          yp[ch] = v > yp[ch] || v != v ? v : yp[ch];
        }
      } else {
        for (int64_t ch = 0; ch < c; ++ch) yp[ch] += xv[ch];
      }
    });
    if (mode == 0) {
      const float count = static_cast<float>(w.count());
      for (int64_t ch = 0; ch < c; ++ch) yp[ch] /= count;
    }
  }
}

// The mean's gradient dy / count spread over each window's taps; the maximum's dy to the first
// tap in window order that holds the maximum, channel by channel.
void Graph::backward_window_pool(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const int in = node.inputs[0];
  if (!requires_grad_[in]) return;
  ConvGeom g;
  int64_t mode = 0;
  pool_geom(node.iattrs, &g, &mode);
  const int64_t positions = g.positions(), c = g.cin;
  const int64_t win = nodes_[in].width;
  const float* x = out_[in];
  const float* y = out_[i];
  const float* dy = grad_buf_[i].data();
  const bool acc = accumulates(in, i, 0);
  float* gx = grad_buf_[in].data();
  float* __restrict v = float_scratch(c);  // the mean's dy / count
  uint32_t* __restrict pending = pending_scratch(c);  // the max's channels still to meet it
  const Share bs = share_of(st.batch, st.ith, st.nth);
  for (int64_t s = bs.lo; s < bs.hi; ++s) {
    const float* xs = x + s * win;
    float* __restrict gxs = gx + s * win;
    if (!acc) std::fill(gxs, gxs + win, 0.0f);
    for (int64_t p = 0; p < positions; ++p) {
      const Window w = window_of(g, p);
      const float* dp = dy + (s * positions + p) * c;
      if (mode == 0) {
        const float count = static_cast<float>(w.count());
        for (int64_t ch = 0; ch < c; ++ch) v[ch] = dp[ch] / count;
        for_each_tap(g, w, [&](int64_t off) { add_into(gxs + off, v, c); });
        continue;
      }
      const float* yp = y + (s * positions + p) * c;
      std::fill(pending, pending + c, ~uint32_t{0});
      for_each_tap(g, w, [&](int64_t off) {
        route_max_grad(xs + off, yp, dp, gxs + off, pending, c);
      });
    }
  }
}

}  // namespace densitron
