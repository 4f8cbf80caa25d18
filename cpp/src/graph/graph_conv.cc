// kConv, the native convolution (see OpType::kConv): each thread takes (sample, tile) items,
// lays a tile of output positions' windows out as rows (im2col) in its own buffer, sized once
// by run, and multiplies them by the kernel with the bias and activation in the GEMM's
// epilogue. The backward sums the kernel gradient colᵀ·dy tile by tile: a small kernel's in
// fixed blocks of samples, each block's partial on one thread, then added in block order; a
// large one's with each thread owning a range of the kernel's rows (it lays out only those
// columns). It scatters dy·Wᵀ back into the input's gradient (col2im), each thread owning
// whole samples. Windows no deeper than the filters (conv_keeps_windows: a first layer's) are
// laid out once a step, by the forward, into aux_buf_, and read there again by the backward.
// A transposed convolution (see forward_conv_transpose) runs the same pieces the other way
// round. Every sum runs in an order fixed by the shapes: the results are the same for any
// thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "densitron/graph.h"
#include "graph/graph_util.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

// Output position p's coordinates along the three axes, stepped through positions in order.
struct OutputCursor {
  const ConvGeom& g;
  int64_t at[3];
  OutputCursor(const ConvGeom& geom, int64_t p) : g(geom) {
    at[2] = p % g.out[2];
    p /= g.out[2];
    at[1] = p % g.out[1];
    at[0] = p / g.out[1];
  }
  void next() {
    if (++at[2] == g.out[2]) {
      at[2] = 0;
      if (++at[1] == g.out[1]) {
        at[1] = 0;
        ++at[0];
      }
    }
  }
};

// The window of the output position at cursor o as im2col_runs and col2im walk it, a run of
// k[2]·cin values for each (k0, k1): its first input coordinates b0, b1, b2 (before the taps'
// dilations) and the taps [t_lo, t_hi) of the last axis that lie inside the input.
struct WindowRuns {
  int64_t b0, b1, b2, t_lo, t_hi;
  WindowRuns(const ConvGeom& g, const OutputCursor& o)
      : b0(o.at[0] * g.stride[0] - g.pad[0]),
        b1(o.at[1] * g.stride[1] - g.pad[1]),
        b2(o.at[2] * g.stride[2] - g.pad[2]),
        t_lo(std::min(g.k[2], std::max<int64_t>(0, -b2))),
        t_hi(std::max(t_lo, std::min(g.k[2], g.in[2] - b2))) {}
};

// fn(row, t, lo, src) for each output position p in [p0, p1) (row p - p0) and each kernel
// tap t whose columns [t·cin, (t + 1)·cin) meet [c0, c1): lo, the first of those columns in
// [c0, c1), and src, the input offset (of the sample) of the channel lo - t·cin at the tap,
// or -1 where the tap leaves the input.
template <class Fn>
inline void for_each_window(const ConvGeom& g, int64_t p0, int64_t p1, int64_t c0, int64_t c1,
                            Fn fn) {
  const int64_t cin = g.cin;
  const int64_t t0 = c0 / cin, t1 = (c1 + cin - 1) / cin;
  OutputCursor o(g, p0);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b0 = o.at[0] * g.stride[0] - g.pad[0];
    const int64_t b1 = o.at[1] * g.stride[1] - g.pad[1];
    const int64_t b2 = o.at[2] * g.stride[2] - g.pad[2];
    int64_t t = 0;
    for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
      const int64_t i0 = b0 + k0 * g.dil[0];
      const bool in0 = i0 >= 0 && i0 < g.in[0];
      for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
        const int64_t i1 = b1 + k1 * g.dil[1];
        const bool in1 = in0 && i1 >= 0 && i1 < g.in[1];
        for (int64_t k2 = 0; k2 < g.k[2]; ++k2, ++t) {
          if (t < t0 || t >= t1) continue;
          const int64_t i2 = b2 + k2 * g.dil[2];
          const int64_t lo = std::max(c0, t * cin);
          const bool inside = in1 && i2 >= 0 && i2 < g.in[2];
          fn(p - p0, t, lo,
             inside ? ((i0 * g.in[1] + i1) * g.in[2] + i2) * cin + (lo - t * cin) : -1);
        }
      }
    }
    o.next();
  }
}

// Runs of at least this many values are copied by memcpy, or added by the ISA's axpy (this
// file is built for the baseline x86-64: 4 lanes); shorter ones inline, a call dearer.
constexpr int64_t kVectorRun = 16;

// Columns [c0, c1) of the windows of output positions [p0, p1) of sample xs, as rows of
// c1 - c0 values in col; 0 where a window leaves the input.
// Whole windows' rows (im2col's columns [0, depth)) where the last axis is not dilated: each
// (k0, k1) row of the window is one run of k[2]·cin input values, its part inside the input
// copied at once and zeros beside it (the taps one by one cost a call each: a first layer's
// cin of 1 or 3 made that most of its time). kRun: the run's length when known at compile
// time (a first layer's 3 or 9 values: copied unrolled, a loop's setup dearer than the copy),
// else 0.
template <int kRun>
void im2col_runs_of(const ConvGeom& g, const float* xs, int64_t p0, int64_t p1, float* col) {
  const int64_t cin = g.cin, depth = g.depth(), run = g.k[2] * cin;
  // With kRun known, a window wholly inside the input is copied from its (k0, k1) rows'
  // offsets, computed once (a first layer's 26×26 windows were mostly index arithmetic).
  constexpr int64_t kMaxRows = 64;
  const int64_t rows = g.k[0] * g.k[1];
  int64_t row_off[kMaxRows];
  const bool by_rows = kRun > 0 && rows <= kMaxRows;
  if (by_rows) {
    for (int64_t k0 = 0, r = 0; k0 < g.k[0]; ++k0)
      for (int64_t k1 = 0; k1 < g.k[1]; ++k1, ++r)
        row_off[r] = (k0 * g.dil[0] * g.in[1] + k1 * g.dil[1]) * g.in[2] * cin;
  }
  const int64_t last0 = (g.k[0] - 1) * g.dil[0], last1 = (g.k[1] - 1) * g.dil[1];
  OutputCursor o(g, p0);
  for (int64_t p = p0; p < p1; ++p) {
    const WindowRuns w(g, o);
    const int64_t b0 = w.b0, b1 = w.b1, b2 = w.b2, t_lo = w.t_lo, t_hi = w.t_hi;
    const bool whole = t_lo == 0 && t_hi == g.k[2];
    float* __restrict dst = col + (p - p0) * depth;
    if (by_rows && whole && b0 >= 0 && b0 + last0 < g.in[0] && b1 >= 0 &&
        b1 + last1 < g.in[1]) {
      const float* __restrict src = xs + ((b0 * g.in[1] + b1) * g.in[2] + b2) * cin;
      for (int64_t r = 0; r < rows; ++r, dst += kRun)
        for (int j = 0; j < kRun; ++j) dst[j] = src[row_off[r] + j];
      o.next();
      continue;
    }
    for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
      const int64_t i0 = b0 + k0 * g.dil[0];
      const bool in0 = i0 >= 0 && i0 < g.in[0];
      for (int64_t k1 = 0; k1 < g.k[1]; ++k1, dst += run) {
        const int64_t i1 = b1 + k1 * g.dil[1];
        if (!in0 || i1 < 0 || i1 >= g.in[1]) {
          std::fill(dst, dst + run, 0.0f);
          continue;
        }
        const float* __restrict src = xs + ((i0 * g.in[1] + i1) * g.in[2] + b2 + t_lo) * cin;
        if (kRun > 0 && whole) {
          for (int j = 0; j < kRun; ++j) dst[j] = src[j];
          continue;
        }
        std::fill(dst, dst + t_lo * cin, 0.0f);
        const int64_t n = (t_hi - t_lo) * cin;
        float* __restrict d = dst + t_lo * cin;
        if (n >= kVectorRun) {
          std::memcpy(d, src, n * sizeof(float));
        } else {
          for (int64_t j = 0; j < n; ++j) d[j] = src[j];
        }
        std::fill(dst + t_hi * cin, dst + run, 0.0f);
      }
    }
    o.next();
  }
}

void im2col_runs(const ConvGeom& g, const float* xs, int64_t p0, int64_t p1, float* col) {
  switch (g.k[2] * g.cin) {
    case 3:
      im2col_runs_of<3>(g, xs, p0, p1, col);
      return;
    case 9:
      im2col_runs_of<9>(g, xs, p0, p1, col);
      return;
    default:
      im2col_runs_of<0>(g, xs, p0, p1, col);
  }
}

void im2col(const ConvGeom& g, const float* xs, int64_t p0, int64_t p1, int64_t c0, int64_t c1,
            float* col) {
  if (c0 == 0 && c1 == g.depth() && g.dil[2] == 1) {
    im2col_runs(g, xs, p0, p1, col);
    return;
  }
  const int64_t ld = c1 - c0, cin = g.cin;
  for_each_window(g, p0, p1, c0, c1, [&](int64_t row, int64_t t, int64_t lo, int64_t src) {
    const int64_t n = std::min(c1, (t + 1) * cin) - lo;
    float* dst = col + row * ld + (lo - c0);
    if (src < 0) {
      std::fill(dst, dst + n, 0.0f);
    } else if (n == 1) {
      *dst = xs[src];
    } else {
      std::memcpy(dst, xs + src, n * sizeof(float));
    }
  });
}

// The windows' gradient col (rows of K values, output positions [p0, p1)) added into sample
// gradient gxs, window by window in order. Where the last axis is not dilated each (k0, k1)
// row of a window is one run of k[2]·cin values, its part inside the input added at once:
// the same additions in the same order as tap by tap (a tap's cin values a call cost
// Conv2D(64, 3) after 32 channels a tenth of its input gradient).
void col2im(const ConvGeom& g, const float* col, int64_t p0, int64_t p1, float* gxs) {
  const int64_t depth = g.depth(), cin = g.cin;
  const auto add = elementwise_kernels()->axpy;
  if (g.dil[2] == 1) {
    const int64_t run = g.k[2] * cin;
    OutputCursor o(g, p0);
    for (int64_t p = p0; p < p1; ++p) {
      const WindowRuns w(g, o);
      const int64_t b0 = w.b0, b1 = w.b1, b2 = w.b2, t_lo = w.t_lo, t_hi = w.t_hi;
      const float* from = col + (p - p0) * depth;
      for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
        const int64_t i0 = b0 + k0 * g.dil[0];
        const bool in0 = i0 >= 0 && i0 < g.in[0];
        for (int64_t k1 = 0; k1 < g.k[1]; ++k1, from += run) {
          const int64_t i1 = b1 + k1 * g.dil[1];
          if (!in0 || i1 < 0 || i1 >= g.in[1]) continue;
          float* __restrict to = gxs + ((i0 * g.in[1] + i1) * g.in[2] + b2 + t_lo) * cin;
          const float* __restrict f = from + t_lo * cin;
          const int64_t n = (t_hi - t_lo) * cin;
          if (n >= kVectorRun) {
            add(1.0f, f, to, n);  // fma(1, f, to): the sum's one rounding, as to + f
          } else {
            for (int64_t j = 0; j < n; ++j) to[j] += f[j];
          }
        }
      }
      o.next();
    }
    return;
  }
  for_each_window(g, p0, p1, 0, depth, [&](int64_t row, int64_t, int64_t lo, int64_t src) {
    if (src < 0) return;
    const float* from = col + row * depth + lo;
    float* __restrict to = gxs + src;
    for (int64_t c = 0; c < cin; ++c) to[c] += from[c];
  });
}

// Group grp's windows of output positions [p0, p1) of sample xs as rows of kdepth() values
// (each tap's cin / groups channels of the group); im2col's whole windows for one group.
void im2col_group(const ConvGeom& g, const float* xs, int64_t p0, int64_t p1, int64_t grp,
                  float* col) {
  if (g.groups == 1) {
    im2col(g, xs, p0, p1, 0, g.depth(), col);
    return;
  }
  const int64_t cg = g.cin / g.groups, ld = g.kdepth(), off = grp * cg;
  for_each_window(g, p0, p1, 0, g.depth(), [&](int64_t row, int64_t t, int64_t, int64_t src) {
    float* dst = col + row * ld + t * cg;
    if (src < 0) {
      std::fill(dst, dst + cg, 0.0f);
    } else if (cg == 1) {
      *dst = xs[src + off];
    } else {
      std::memcpy(dst, xs + src + off, cg * sizeof(float));
    }
  });
}

// Group grp's windows' gradient col (rows of kdepth() values) added into sample gradient gxs.
void col2im_group(const ConvGeom& g, const float* col, int64_t p0, int64_t p1, int64_t grp,
                  float* gxs) {
  if (g.groups == 1) {
    col2im(g, col, p0, p1, gxs);
    return;
  }
  const int64_t cg = g.cin / g.groups, ld = g.kdepth(), off = grp * cg;
  for_each_window(g, p0, p1, 0, g.depth(), [&](int64_t row, int64_t t, int64_t, int64_t src) {
    if (src < 0) return;
    const float* from = col + row * ld + t * cg;
    float* __restrict to = gxs + src + off;
    for (int64_t c = 0; c < cg; ++c) to[c] += from[c];
  });
}

// A depthwise convolution's (one channel a group, multiplier m = filters / cin) rows z of
// output positions [p0, p1) of sample xs, directly (a GEMM a channel would be 1 deep): the
// bias (or 0), then each tap's x·w in window order.
void depthwise_rows(const ConvGeom& g, const float* xs, const float* kernel, const float* bias,
                    int64_t p0, int64_t p1, float* z) {
  const int64_t f = g.filters, cin = g.cin, m = f / cin;
  for (int64_t r = 0; r < p1 - p0; ++r) {
    if (bias != nullptr) {
      std::memcpy(z + r * f, bias, f * sizeof(float));
    } else {
      std::fill(z + r * f, z + (r + 1) * f, 0.0f);
    }
  }
  for_each_window(g, p0, p1, 0, g.depth(), [&](int64_t row, int64_t t, int64_t, int64_t src) {
    if (src < 0) return;
    const float* xv = xs + src;
    const float* w = kernel + t * f;
    float* __restrict zr = z + row * f;
    if (m == 1) {
      for (int64_t c = 0; c < cin; ++c) zr[c] += xv[c] * w[c];
      return;
    }
    for (int64_t c = 0; c < cin; ++c)
      for (int64_t j = 0; j < m; ++j) zr[c * m + j] += xv[c] * w[c * m + j];
  });
}

// A depthwise convolution's gradients of output positions [p0, p1) of sample xs (dy: their
// rows), directly: the kernel's added into pw (taps × filters) unless null, the input's into
// gxs unless null, tap by tap in window order.
void depthwise_backward_rows(const ConvGeom& g, const float* xs, const float* kernel,
                             const float* dy, int64_t p0, int64_t p1, float* pw, float* gxs) {
  const int64_t f = g.filters, cin = g.cin, m = f / cin;
  for_each_window(g, p0, p1, 0, g.depth(), [&](int64_t row, int64_t t, int64_t, int64_t src) {
    if (src < 0) return;
    const float* d = dy + row * f;
    if (m == 1) {  // (one output a channel: vectorized over the channels)
      if (pw != nullptr) {
        const float* xv = xs + src;
        float* __restrict gw = pw + t * f;
        for (int64_t c = 0; c < cin; ++c) gw[c] += xv[c] * d[c];
      }
      if (gxs != nullptr) {
        const float* w = kernel + t * f;
        float* __restrict gv = gxs + src;
        for (int64_t c = 0; c < cin; ++c) gv[c] += d[c] * w[c];
      }
      return;
    }
    if (pw != nullptr) {
      const float* xv = xs + src;
      float* __restrict gw = pw + t * f;
      for (int64_t c = 0; c < cin; ++c)
        for (int64_t j = 0; j < m; ++j) gw[c * m + j] += xv[c] * d[c * m + j];
    }
    if (gxs != nullptr) {
      const float* w = kernel + t * f;
      float* __restrict gv = gxs + src;
      for (int64_t c = 0; c < cin; ++c) {
        float sum = 0.0f;
        for (int64_t j = 0; j < m; ++j) sum += d[c * m + j] * w[c * m + j];
        gv[c] += sum;
      }
    }
  });
}

}  // namespace

void Graph::forward_conv(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  ConvGeom g;
  conv_geom(node.iattrs, &g);
  if (g.transposed) {
    forward_conv_transpose(st, i, g);
    return;
  }
  const int64_t positions = g.positions(), depth = g.depth(), filters = g.filters;
  const int64_t tile = conv_tile_rows(g), tiles = (positions + tile - 1) / tile;
  const int64_t win = nodes_[node.inputs[0]].width;
  const float* x = out_[node.inputs[0]];
  const float* kernel = param(i, 0);
  GemmEpilogue ep;
  ep.bias = param(i, 1);
  EpilogueAct fused_act;
  const bool fuse = epilogue_for(node.activation, node.act_params, &fused_act) &&
                    !keeps_input_[i];
  if (fuse) ep.act = fused_act;
  float* y = out_buf_[i].data();
  float* z = fuse ? y : dense_pre(i);
  const bool direct = g.direct();
  float* col = direct ? nullptr : conv_scratch(st);
  float* kept = conv_keeps_windows(g) ? aux_buf_[i].data() : nullptr;  // (for the backward)
  const Share items = share_of(st.batch * tiles, st.ith, st.nth);
  const int64_t groups = g.groups, kd = g.kdepth(), fg = filters / groups;
  for (int64_t it = items.lo; it < items.hi; ++it) {
    const int64_t s = it / tiles, p0 = it % tiles * tile;
    const int64_t p1 = std::min(positions, p0 + tile), r0 = s * positions + p0;
    const float* xs = x + s * win;
    if (groups > 1 && groups == g.cin) {  // depthwise: directly, then the activation
      depthwise_rows(g, xs, kernel, ep.bias, p0, p1, z + r0 * filters);
      if (node.activation != Activation::kLinear)
        activation_forward(node.activation, node.act_params, z + r0 * filters,
                           y + r0 * filters, p1 - p0, filters);
      continue;
    }
    if (groups > 1) {  // each group's windows times its columns of the kernel
      for (int64_t grp = 0; grp < groups; ++grp) {
        im2col_group(g, xs, p0, p1, grp, col);
        GemmEpilogue eg = ep;
        if (ep.bias != nullptr) eg.bias = ep.bias + grp * fg;
        local_gemm(st, false, false, p1 - p0, fg, kd, col, kd, kernel + grp * fg, filters,
                   0.0f, z + r0 * filters + grp * fg, filters, &eg);
      }
      if (!fuse)
        activation_forward(node.activation, node.act_params, z + r0 * filters,
                           y + r0 * filters, p1 - p0, filters);
      continue;
    }
    float* w = kept != nullptr ? kept + r0 * depth : col;
    if (!direct) im2col(g, xs, p0, p1, 0, depth, w);
    local_gemm(st, false, false, p1 - p0, filters, depth, direct ? xs + p0 * depth : w, depth,
               kernel, filters, 0.0f, z + r0 * filters, filters, &ep);
    if (!fuse)
      activation_forward(node.activation, node.act_params, z + r0 * filters, y + r0 * filters,
                         p1 - p0, filters);
    if (pooled_by_[i] >= 0) pool_disjoint_sample(pooled_by_[i], s);  // (a whole sample)
  }
}

// The node's own activation's gradient, in place in dy (rows rw of this thread, `last` values
// a row), then a barrier; nothing where the activation is linear, fused or applied by the
// consumer.
void Graph::conv_activation_backward(const Step& st, int i, Share rw, int64_t last) {
  const NodeSpec& node = nodes_[i];
  if (fused_[i] || dact_by_consumer_[i] || node.activation == Activation::kLinear) return;
  float* dy = grad_buf_[i].data();
  if (rw.lo < rw.hi)
    activation_backward(node.activation, node.act_params,
                        keeps_input_[i] ? pre_buf_[i].data() + rw.lo * last : nullptr,
                        out_[i] + rw.lo * last, dy + rw.lo * last, dy + rw.lo * last,
                        rw.hi - rw.lo, last);
  barrier(st);
}

// As kDense's backward: the activation's gradient (rows rw of this thread), then the kernel's
// gradient, the bias's and the input's (none when the input takes none: a model Input).
void Graph::backward_conv(const Step& st, int i, Share rw) {
  const NodeSpec& node = nodes_[i];
  ConvGeom g;
  conv_geom(node.iattrs, &g);
  if (g.transposed) {
    backward_conv_transpose(st, i, g, rw);
    return;
  }
  const int64_t positions = g.positions(), depth = g.depth(), filters = g.filters;
  const int64_t tile = conv_tile_rows(g);
  const int in = node.inputs[0];
  const int64_t win = nodes_[in].width, rows = st.batch * positions;
  const float* x = out_[in];
  float* dy = grad_buf_[i].data();
  conv_activation_backward(st, i, rw, filters);
  const bool direct = g.direct();
  float* col = direct ? nullptr : conv_scratch(st);
  const int kp = node.params[0];
  if (g.groups > 1 || (param_grad_wanted(kp) && conv_blocked(g))) {
    backward_conv_blocks(st, i, g, col);
    return;
  }
  // dW[K_t, :] = Σ over samples and tiles of col[:, K_t]ᵀ·dy_tile, thread t's rows K_t
  if (param_grad_wanted(kp)) {
    const Share ks = share_of(depth, st.ith, st.nth, 16, 8);
    const int64_t kw = ks.hi - ks.lo;
    bool first = param_first_writer_[kp] == i;
    float* gw = param_grad(kp) + ks.lo * filters;
    const float* kept = conv_keeps_windows(g) ? aux_buf_[i].data() : nullptr;  // (forward's)
    for (int64_t s = 0; s < st.batch && kw > 0; ++s) {
      const float* xs = x + s * win;
      for (int64_t p0 = 0; p0 < positions; p0 += tile) {
        const int64_t p1 = std::min(positions, p0 + tile);
        const float* a = direct ? xs + p0 * depth + ks.lo
                         : kept != nullptr ? kept + (s * positions + p0) * depth + ks.lo : col;
        if (!direct && kept == nullptr)
          im2col(g, xs, p0, p1, ks.lo, ks.hi, col);  // (elementwise in the profile)
        local_gemm(st, true, false, kw, filters, p1 - p0, a,
                   direct || kept != nullptr ? depth : kw,
                   dy + (s * positions + p0) * filters, filters, first ? 0.0f : 1.0f, gw,
                   filters);
        first = false;
      }
    }
  }
  dense_bias_grad(st, i, dy, rows, 1);
  if (!requires_grad_[in]) return;
  // dx: each sample's tiles' dy·Wᵀ, scattered back into its windows (col2im)
  const bool acc = accumulates(in, i, 0);
  float* gx = grad_buf_[in].data();
  const float* kernel = param(i, 0);
  const Share bs = share_of(st.batch, st.ith, st.nth);
  for (int64_t s = bs.lo; s < bs.hi; ++s) {
    float* gxs = gx + s * win;
    if (!direct && !acc) std::fill(gxs, gxs + win, 0.0f);
    for (int64_t p0 = 0; p0 < positions; p0 += tile) {
      const int64_t p1 = std::min(positions, p0 + tile);
      const float* d = dy + (s * positions + p0) * filters;
      if (direct) {
        local_gemm(st, false, true, p1 - p0, depth, filters, d, filters, kernel, filters,
                   acc ? 1.0f : 0.0f, gxs + p0 * depth, depth);
        continue;
      }
      local_gemm(st, false, true, p1 - p0, depth, filters, d, filters, kernel, filters, 0.0f,
                 col, depth);
      col2im(g, col, p0, p1, gxs);
    }
  }
}

// The gradients of a small kernel (conv_blocked): each of kConvBlocks fixed blocks of the
// batch's samples, on the thread that owns it, sums its kernel gradient colᵀ·dy and bias
// gradient (column sums of dy) into a partial of its own and scatters its samples' input
// gradients; after a barrier the threads add the blocks' partials in block order, each a
// share of the values.
void Graph::backward_conv_blocks(const Step& st, int i, const ConvGeom& g, float* col) {
  const NodeSpec& node = nodes_[i];
  const int64_t positions = g.positions(), depth = g.depth(), filters = g.filters;
  const int64_t groups = g.groups, kd = g.kdepth(), fg = filters / groups;
  const int64_t tile = conv_tile_rows(g), kf = kd * filters, stride = kf + filters;
  const int in = node.inputs[0];
  const int64_t win = nodes_[in].width;
  const float* x = out_[in];
  const float* dy = grad_buf_[i].data();
  const float* kernel = param(i, 0);
  const bool direct = g.direct();
  const int kp = node.params[0], bp = node.params[1];
  const bool bias_grad = param_grad_wanted(bp);
  const bool kernel_grad = param_grad_wanted(kp);  // (always, but with groups)
  float* gx = requires_grad_[in] ? grad_buf_[in].data() : nullptr;
  const bool acc = gx != nullptr && accumulates(in, i, 0);
  float* part = partial_buf_[i].data();
  const float* kept = conv_keeps_windows(g) ? aux_buf_[i].data() : nullptr;  // (forward's)
  const Share mine = share_of(kConvBlocks, st.ith, st.nth);
  for (int64_t b = mine.lo; b < mine.hi; ++b) {
    const Share ss = share_of(st.batch, static_cast<int>(b), kConvBlocks);
    float* pw = part + b * stride;
    float* pb = pw + kf;
    if (bias_grad) std::fill(pb, pb + filters, 0.0f);
    bool first = true;
    for (int64_t s = ss.lo; s < ss.hi; ++s) {
      const float* xs = x + s * win;
      float* gxs = gx != nullptr ? gx + s * win : nullptr;
      if (gxs != nullptr && !direct && !acc) std::fill(gxs, gxs + win, 0.0f);
      for (int64_t p0 = 0; p0 < positions; p0 += tile) {
        const int64_t p1 = std::min(positions, p0 + tile), n = p1 - p0;
        const float* d = dy + (s * positions + p0) * filters;
        if (groups > 1 && groups == g.cin) {  // depthwise: directly
          if (first && kernel_grad) std::fill(pw, pw + kf, 0.0f);
          first = false;
          depthwise_backward_rows(g, xs, kernel, d, p0, p1, kernel_grad ? pw : nullptr, gxs);
          if (bias_grad) elementwise_kernels()->add_rows(d, n, filters, filters, nullptr, pb);
          continue;
        }
        if (groups > 1) {  // each group's windows and its columns of the kernel
          for (int64_t grp = 0; grp < groups; ++grp) {
            if (kernel_grad) {
              im2col_group(g, xs, p0, p1, grp, col);
              local_gemm(st, true, false, kd, fg, n, col, kd, d + grp * fg, filters,
                         first ? 0.0f : 1.0f, pw + grp * fg, filters);
            }
            if (gxs == nullptr) continue;
            local_gemm(st, false, true, n, kd, fg, d + grp * fg, filters, kernel + grp * fg,
                       filters, 0.0f, col, kd);
            col2im_group(g, col, p0, p1, grp, gxs);
          }
          first = false;
          if (bias_grad) elementwise_kernels()->add_rows(d, n, filters, filters, nullptr, pb);
          continue;
        }
        const float* a = direct ? xs + p0 * depth
                         : kept != nullptr ? kept + (s * positions + p0) * depth : col;
        if (!direct && kept == nullptr) im2col(g, xs, p0, p1, 0, depth, col);
        local_gemm(st, true, false, depth, filters, n, a, depth, d, filters,
                   first ? 0.0f : 1.0f, pw, filters);
        first = false;
        if (bias_grad) elementwise_kernels()->add_rows(d, n, filters, filters, nullptr, pb);
        if (gxs == nullptr) continue;
        if (direct) {
          local_gemm(st, false, true, n, depth, filters, d, filters, kernel, filters,
                     acc ? 1.0f : 0.0f, gxs + p0 * depth, depth);
          continue;
        }
        local_gemm(st, false, true, n, depth, filters, d, filters, kernel, filters, 0.0f, col,
                   depth);
        col2im(g, col, p0, p1, gxs);
      }
    }
  }
  barrier(st);
  add_conv_blocks(st, i, kf, kernel_grad, bias_grad);
}

// After the blocks' barrier: the kernel's (kf values) and bias's gradients, each thread a
// share of the values, summed over the non-empty blocks' partials (kf + the bias's size
// apart) in block order.
void Graph::add_conv_blocks(const Step& st, int i, int64_t kf, bool kernel_grad,
                            bool bias_grad) {
  const NodeSpec& node = nodes_[i];
  const int kp = node.params[0], bp = node.params[1];
  const int64_t stride = kf + node.last_dim;
  const float* part = partial_buf_[i].data();
  const int64_t e0 = kernel_grad ? 0 : kf, e1 = bias_grad ? stride : kf;
  Share es = share_of(e1 - e0, st.ith, st.nth, kMinElementsPerThread, 16);
  es.lo += e0;
  es.hi += e0;
  float* gw = kernel_grad ? param_grad(kp) : nullptr;
  float* gb = bias_grad ? param_grad(bp) : nullptr;
  const bool first_w = kernel_grad && param_first_writer_[kp] == i;
  const bool first_b = bias_grad && param_first_writer_[bp] == i;
  int blocks = 0;  // the non-empty ones: the first `blocks` (samples shared out in order)
  while (blocks < kConvBlocks && share_of(st.batch, blocks, kConvBlocks).lo <
                                     share_of(st.batch, blocks, kConvBlocks).hi)
    ++blocks;
  for (int64_t e = es.lo; e < es.hi; ++e) {
    float sum = part[e];
    for (int b = 1; b < blocks; ++b) sum += part[b * stride + e];
    float* dst = e < kf ? gw + e : gb + (e - kf);
    *dst = (e < kf ? first_w : first_b) ? sum : *dst + sum;
  }
}

// A transposed convolution's forward (g: the convolution whose input gradient it is): each
// sample on one thread, tile by tile of its input rows x·Wᵀ (the windows' values) scattered
// into its output in window order (col2im), then the bias and the activation.
void Graph::forward_conv_transpose(const Step& st, int i, const ConvGeom& g) {
  const NodeSpec& node = nodes_[i];
  const int64_t n = g.positions(), depth = g.depth(), c = g.filters, f = g.cin;
  const int64_t m = g.in_positions(), tile = conv_tile_rows(g);
  const int64_t win = n * c, wout = m * f;
  const float* x = out_[node.inputs[0]];
  const float* kernel = param(i, 0);
  const float* bias = param(i, 1);
  float* y = out_buf_[i].data();
  float* z = dense_pre(i);
  const bool direct = g.direct();
  float* col = direct ? nullptr : conv_scratch(st);
  const Share bs = share_of(st.batch, st.ith, st.nth);
  for (int64_t s = bs.lo; s < bs.hi; ++s) {
    const float* xs = x + s * win;
    float* zs = z + s * wout;
    if (!direct) std::fill(zs, zs + wout, 0.0f);
    for (int64_t p0 = 0; p0 < n; p0 += tile) {
      const int64_t p1 = std::min(n, p0 + tile);
      local_gemm(st, false, true, p1 - p0, depth, c, xs + p0 * c, c, kernel, c, 0.0f,
                 direct ? zs + p0 * depth : col, depth);
      if (!direct) col2im(g, col, p0, p1, zs);
    }
    if (bias != nullptr)
      for (int64_t r = 0; r < m; ++r) add_into(zs + r * f, bias, f);
    if (node.activation != Activation::kLinear)
      activation_forward(node.activation, node.act_params, zs, y + s * wout, m, f);
  }
}

// A transposed convolution's backward: the activation's gradient (rows rw), the bias's (column
// sums of dy), then g's forward and kernel gradient with dy as g's input: the input's
// gradient im2col(dy)·W and the kernel's Σ im2col(dy)ᵀ·x. A small kernel's in kConvBlocks
// fixed blocks of samples (each tile's layout serving both products), a large one's by rows
// of the kernel, the input's gradient then by (sample, tile) items.
void Graph::backward_conv_transpose(const Step& st, int i, const ConvGeom& g, Share rw) {
  const NodeSpec& node = nodes_[i];
  const int64_t n = g.positions(), depth = g.depth(), c = g.filters, f = g.cin;
  const int64_t m = g.in_positions(), tile = conv_tile_rows(g), tiles = (n + tile - 1) / tile;
  const int64_t win = n * c, wout = m * f;
  const int in = node.inputs[0];
  const float* x = out_[in];
  float* dy = grad_buf_[i].data();
  conv_activation_backward(st, i, rw, f);
  dense_bias_grad(st, i, dy, st.batch * m, 1);
  const bool direct = g.direct();
  float* col = direct ? nullptr : conv_scratch(st);
  const float* kernel = param(i, 0);
  float* gx = requires_grad_[in] ? grad_buf_[in].data() : nullptr;
  const bool acc = gx != nullptr && accumulates(in, i, 0);
  const int kp = node.params[0];
  const bool kernel_grad = param_grad_wanted(kp);
  if (kernel_grad && conv_blocked(g)) {
    const int64_t kf = depth * c, stride = kf + f;
    float* part = partial_buf_[i].data();
    const Share mine = share_of(kConvBlocks, st.ith, st.nth);
    for (int64_t b = mine.lo; b < mine.hi; ++b) {
      const Share ss = share_of(st.batch, static_cast<int>(b), kConvBlocks);
      float* pw = part + b * stride;
      bool first = true;
      for (int64_t s = ss.lo; s < ss.hi; ++s) {
        const float* dys = dy + s * wout;
        for (int64_t p0 = 0; p0 < n; p0 += tile) {
          const int64_t p1 = std::min(n, p0 + tile), rows = p1 - p0;
          if (!direct) im2col(g, dys, p0, p1, 0, depth, col);
          const float* a = direct ? dys + p0 * depth : col;
          const float* xt = x + s * win + p0 * c;
          local_gemm(st, true, false, depth, c, rows, a, depth, xt, c, first ? 0.0f : 1.0f, pw,
                     c);
          first = false;
          if (gx != nullptr)
            local_gemm(st, false, false, rows, c, depth, a, depth, kernel, c, acc ? 1.0f : 0.0f,
                       gx + s * win + p0 * c, c);
        }
      }
    }
    barrier(st);
    add_conv_blocks(st, i, kf, true, false);
    return;
  }
  // dW[K_t, :] = Σ over samples and tiles of im2col(dy)[:, K_t]ᵀ·x_tile, thread t's rows K_t
  if (kernel_grad) {
    const Share ks = share_of(depth, st.ith, st.nth, 16, 8);
    const int64_t kw = ks.hi - ks.lo;
    bool first = param_first_writer_[kp] == i;
    float* gw = param_grad(kp) + ks.lo * c;
    for (int64_t s = 0; s < st.batch && kw > 0; ++s) {
      const float* dys = dy + s * wout;
      for (int64_t p0 = 0; p0 < n; p0 += tile) {
        const int64_t p1 = std::min(n, p0 + tile);
        if (!direct) im2col(g, dys, p0, p1, ks.lo, ks.hi, col);
        local_gemm(st, true, false, kw, c, p1 - p0, direct ? dys + p0 * depth + ks.lo : col,
                   direct ? depth : kw, x + s * win + p0 * c, c, first ? 0.0f : 1.0f, gw, c);
        first = false;
      }
    }
  }
  if (gx == nullptr) return;
  // dx: each (sample, tile) item's rows im2col(dy)·W, on one thread
  const Share items = share_of(st.batch * tiles, st.ith, st.nth);
  for (int64_t it = items.lo; it < items.hi; ++it) {
    const int64_t s = it / tiles, p0 = it % tiles * tile, p1 = std::min(n, p0 + tile);
    const float* dys = dy + s * wout;
    if (!direct) im2col(g, dys, p0, p1, 0, depth, col);
    local_gemm(st, false, false, p1 - p0, c, depth, direct ? dys + p0 * depth : col, depth,
               kernel, c, acc ? 1.0f : 0.0f, gx + s * win + p0 * c, c);
  }
}

}  // namespace densitron
