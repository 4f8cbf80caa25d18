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
#include "ops/elementwise_kernels.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

// The calling thread's n flags of the maximum's channels still to be met (grows only).
uint32_t* pending_scratch(int64_t n) {
  thread_local std::vector<uint32_t> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  return scratch.data();
}

// The calling thread's n offsets of a window's taps (grows only).
int64_t* int_scratch(int64_t n) {
  thread_local std::vector<int64_t> scratch;
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

// A max pooling whose windows tile the input without overlap or clipping (strides equal to the
// pool size, no padding before, the windows inside the input: Keras's MaxPooling2D(2) over
// 'valid' padding, or 'same' where the size divides): each input value is a tap of at most one
// window, so the backward writes each input gradient once (the maximum's dy, or 0) instead of
// zeroing the sample and routing into it, and finds the tap to route to in the byte a
// window's channel the forward kept (aux_buf_) rather than in the input again. At most 255
// taps a window.
bool disjoint_max(const ConvGeom& g, int64_t mode) {
  if (mode != 1 || g.taps() > 255) return false;
  for (int a = 0; a < 3; ++a)
    if (g.stride[a] != g.k[a] || g.pad[a] != 0 || g.out[a] * g.k[a] > g.in[a]) return false;
  return true;
}

// The sample offsets of the window at output (o0, o1, o2) of a disjoint pooling's taps, in
// window order, into off (taps() values).
inline void disjoint_taps(const ConvGeom& g, int64_t o0, int64_t o1, int64_t o2, int64_t* off) {
  int64_t t = 0;
  for (int64_t k0 = 0; k0 < g.k[0]; ++k0)
    for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
      const int64_t row = ((o0 * g.k[0] + k0) * g.in[1] + o1 * g.k[1] + k1) * g.in[2];
      for (int64_t k2 = 0; k2 < g.k[2]; ++k2) off[t++] = (row + o2 * g.k[2] + k2) * g.cin;
    }
}

// Items [lo, hi) (sample · positions() + position) of a disjoint max pooling of x (win values
// a sample): each window's maximum into y and its routed taps into taps (at item · cin).
void disjoint_max_items(const ConvGeom& g, const float* x, int64_t win, int64_t lo, int64_t hi,
                        float* y, uint8_t* taps) {
  const int64_t positions = g.positions(), c = g.cin, n = g.taps();
  int64_t* off = int_scratch(n);
  const auto window_max = elementwise_kernels()->pool_window_max;
  for (int64_t it = lo; it < hi; ++it) {
    const int64_t s = it / positions, p = it % positions;
    const int64_t o2 = p % g.out[2], o1 = p / g.out[2] % g.out[1];
    disjoint_taps(g, p / g.out[2] / g.out[1], o1, o2, off);
    window_max(x + s * win, off, n, y + it * c, taps + it * c, c);
  }
}

// Sample gradient gxs's values outside every window of a disjoint pooling (the rows, columns
// or planes past out·k) set to 0.
void zero_uncovered(const ConvGeom& g, float* gxs) {
  const int64_t c = g.cin, e0 = g.out[0] * g.k[0], e1 = g.out[1] * g.k[1];
  const int64_t e2 = g.out[2] * g.k[2];
  for (int64_t i0 = 0; i0 < g.in[0]; ++i0)
    for (int64_t i1 = 0; i1 < g.in[1]; ++i1) {
      float* row = gxs + (i0 * g.in[1] + i1) * g.in[2] * c;
      if (i0 >= e0 || i1 >= e1)
        std::fill(row, row + g.in[2] * c, 0.0f);
      else
        std::fill(row + e2 * c, row + g.in[2] * c, 0.0f);
    }
}

}  // namespace

bool Graph::pool_is_disjoint_max(const NodeSpec& node) {
  ConvGeom g;
  int64_t mode = 0;
  return node.op == OpType::kWindowPool && pool_geom(node.iattrs, &g, &mode) &&
         disjoint_max(g, mode);
}

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
  if (disjoint_max(g, mode)) {
    if (pooled_by_[node.inputs[0]] == i) return;  // (done by the convolution's forward)
    disjoint_max_items(g, x, win, items.lo, items.hi, y,
                       reinterpret_cast<uint8_t*>(aux_buf_[i].data()));  // (taps: the backward's)
    return;
  }
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

// A disjoint max pooling's forward of sample s alone: its windows' maxima and routed taps, as
// forward_window_pool's (called by the convolution it pools, pooled_by_, sample by sample).
void Graph::pool_disjoint_sample(int i, int64_t s) {
  const NodeSpec& node = nodes_[i];
  ConvGeom g;
  int64_t mode = 0;
  pool_geom(node.iattrs, &g, &mode);
  const int64_t positions = g.positions();
  disjoint_max_items(g, out_buf_[node.inputs[0]].data(), nodes_[node.inputs[0]].width,
                     s * positions, (s + 1) * positions, out_buf_[i].data(),
                     reinterpret_cast<uint8_t*>(aux_buf_[i].data()));
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
  if (!acc && disjoint_max(g, mode)) {
    backward_disjoint_max(i, g, bs);
    return;
  }
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

// A disjoint max pooling's input gradient (the first writer's), samples bs: each window's taps
// written once from the routed taps its forward recorded in aux_buf_ (pool_window_max_grad: the
// input itself is not read again), then the values outside every window zeroed; with the
// producer's relu derivative where it leaves that to this node (dact_by_consumer_).
void Graph::backward_disjoint_max(int i, const ConvGeom& g, Share bs) {
  const NodeSpec& node = nodes_[i];
  const int in = node.inputs[0];
  const int64_t positions = g.positions(), c = g.cin, n = g.taps();
  const int64_t win = nodes_[in].width;
  const float* y = out_[i];
  const float* dy = grad_buf_[i].data();
  const uint8_t* taps = reinterpret_cast<const uint8_t*>(aux_buf_[i].data());
  float* gx = grad_buf_[in].data();
  const bool relu = dact_by_consumer_[in];
  int64_t* off = int_scratch(n);
  const auto window_grad = elementwise_kernels()->pool_window_max_grad;
  for (int64_t s = bs.lo; s < bs.hi; ++s) {
    float* gxs = gx + s * win;
    zero_uncovered(g, gxs);
    int64_t p = 0;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++p) {
          const int64_t r = (s * positions + p) * c;
          disjoint_taps(g, o0, o1, o2, off);
          window_grad(off, n, taps + r, relu ? y + r : nullptr, dy + r, gxs, c);
        }
  }
}

}  // namespace densitron
