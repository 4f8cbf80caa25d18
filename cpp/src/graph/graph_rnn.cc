// kLSTM and kGRU, Keras's LSTM and GRU (reset_after) over a whole sequence (see OpType::kLSTM
// and kGRU): sigmoid gates, tanh activations. Each thread runs its own samples through every
// step: one product x·kernel + bias for all their steps, then a step's h_{t-1}·recurrent_kernel
// and its gates and states in one pass per sample, no meeting between steps (the samples'
// recurrences are independent); a step a mask drops keeps the states. Each sample keeps a
// record of every step for the backward, which walks the steps back on the same samples,
// leaving each step's gate gradients in the record; the kernels' and bias's gradients are
// summed over kRnnBlocks fixed blocks of samples, each on one thread, then added in block
// order: the same for any thread count.
//
// A step's record (8·units values; SimpleRNN's 3·units), each ending with the step's h_{t-1}:
//   LSTM: z = x·W + h·R + b (4u: i, f, g, o, activated in place), c, tanh c, h; the backward
//         overwrites z with its gradient dz (for the kernels, the bias, dx and dh_{t-1}).
//   GRU:  x·W + b_x (3u: z, r, h; then z, r, hh activated), h·R + b_h (3u; its third, the
//         reset's r_h, kept), h; the backward overwrites both with their gradients.
//   SimpleRNN: z = x·W + h·R + b (then its gradient), h = tanh or relu of z.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "densitron/graph.h"
#include "graph/graph_util.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

constexpr int kRnnBlocks = 8;

struct RnnGeom {
  bool lstm, gru, simple, relu;
  int64_t steps, features, units, sequences, backwards, zero_masked, masked, states_in,
      states_out;
  explicit RnnGeom(const NodeSpec& node)
      : lstm(node.op == OpType::kLSTM), gru(node.op == OpType::kGRU),
        simple(node.op == OpType::kSimpleRNN), relu(simple && node.iattrs.size() > 9 &&
                                                     node.iattrs[9] == 1),
        steps(node.iattrs[0]), features(node.iattrs[1]),
        units(node.iattrs[2]), sequences(node.iattrs[3]), backwards(node.iattrs[4]),
        zero_masked(node.iattrs.size() > 5 ? node.iattrs[5] : 0),
        masked(node.iattrs.size() > 6 ? node.iattrs[6] : node.inputs.size() > 1),
        states_in(node.iattrs.size() > 6 ? node.iattrs[7] : 0),
        states_out(node.iattrs.size() > 6 ? node.iattrs[8] : 0) {}
  int64_t states() const { return lstm ? 2 : 1; }  // h (and LSTM's c)
  int64_t main_width() const { return (sequences ? steps : 1) * units; }
  int64_t width() const { return main_width() + states_out * states() * units; }
  int64_t inputs() const { return 1 + masked + states_in * states(); }
  int64_t gates() const { return (lstm ? 4 : gru ? 3 : 1) * units; }  // a product's columns
  int64_t rec_at() const { return gru ? gates() : 0; }  // where h·R goes in a step's record
  int64_t bias() const { return (gru ? 2 : 1) * gates(); }
  int64_t h_at() const { return (simple ? 1 : 6) * units; }
  int64_t hp_at() const { return h_at() + units; }  // (h_{t-1}, the step's input state)
  int64_t slot() const { return hp_at() + units; }
  int64_t record() const { return steps * slot(); }  // a sample's
  int64_t time(int64_t s) const { return backwards ? steps - 1 - s : s; }  // step s's input
};

// The ISA's sigmoid and tanh on n values (the elementwise kernels' own, called directly: a
// step calls them a few times a sample).
struct Squash {
  const ElementwiseKernels* k = elementwise_kernels();
  const float prm[4] = {0.0f, -1.0f, 0.0f, 1.0f};  // (unused by these two)
  void sigmoid(float* v, int64_t n) const {
    k->act_forward(static_cast<int>(Activation::kSigmoid), prm, v, v, n);
  }
  void tanh(const float* x, float* y, int64_t n) const {
    k->act_forward(static_cast<int>(Activation::kTanh), prm, x, y, n);
  }
};

// LSTM's step for one sample: z (its record) holds x·W + h·R + b; cp the previous c or null.
inline void lstm_cell(const Squash& sq, float* z, const float* cp, int64_t u) {
  float* c = z + 4 * u;
  float* tc = z + 5 * u;
  float* h = z + 6 * u;
  sq.sigmoid(z, 2 * u);               // i, f
  sq.tanh(z + 2 * u, z + 2 * u, u);   // g
  sq.sigmoid(z + 3 * u, u);           // o
  if (cp == nullptr) {
    for (int64_t j = 0; j < u; ++j) c[j] = z[j] * z[2 * u + j];
  } else {
    for (int64_t j = 0; j < u; ++j) c[j] = z[u + j] * cp[j] + z[j] * z[2 * u + j];
  }
  sq.tanh(c, tc, u);
  for (int64_t j = 0; j < u; ++j) h[j] = z[3 * u + j] * tc[j];
}

// GRU's step (reset_after): z (the record) holds x·W + b_x, then h·R + b_h; hp the previous h
// or null. As Keras: z, r = σ(x_z + r_z), σ(x_r + r_r); hh = tanh(x_h + r·r_h);
// h = z·h_{t-1} + (1 - z)·hh.
inline void gru_cell(const Squash& sq, float* z, const float* hp, int64_t u) {
  const float* rc = z + 3 * u;
  float* h = z + 6 * u;
  for (int64_t j = 0; j < 2 * u; ++j) z[j] += rc[j];
  sq.sigmoid(z, 2 * u);
  for (int64_t j = 0; j < u; ++j) z[2 * u + j] += z[u + j] * rc[2 * u + j];
  sq.tanh(z + 2 * u, z + 2 * u, u);
  for (int64_t j = 0; j < u; ++j)
    h[j] = z[j] * (hp != nullptr ? hp[j] : 0.0f) + (1.0f - z[j]) * z[2 * u + j];
}

// LSTM's gradient at a step for one sample: dh (in: the carried h gradient, out: 0, the
// product with Rᵀ adds the step before's) and dc (in: carried; out: the step before's), og the
// output's gradient and cp the previous c (zeros where there are none: the loop vectorizes);
// the record's z becomes dz.
inline void lstm_cell_backward(float* z, const float* __restrict cp,
                               const float* __restrict og, float* __restrict dh,
                               float* __restrict dc, int64_t u) {
  float* __restrict zi = z;  // (the four gates' values, then their gradients: apart)
  float* __restrict zf = z + u;
  float* __restrict zg = z + 2 * u;
  float* __restrict zo = z + 3 * u;
  const float* __restrict tc = z + 5 * u;
  for (int64_t j = 0; j < u; ++j) {
    const float gi = zi[j], gf = zf[j], gg = zg[j], go = zo[j];
    const float h_grad = dh[j] + og[j];
    const float c_grad = dc[j] + h_grad * go * (1.0f - tc[j] * tc[j]);
    zi[j] = c_grad * gg * gi * (1.0f - gi);
    zf[j] = c_grad * cp[j] * gf * (1.0f - gf);
    zg[j] = c_grad * gi * (1.0f - gg * gg);
    zo[j] = h_grad * tc[j] * go * (1.0f - go);
    dc[j] = c_grad * gf;
    dh[j] = 0.0f;
  }
}

// GRU's: dh in: the carried h gradient, out: its part through z·h_{t-1} (the product with Rᵀ
// adds the rest); hp the previous h (zeros where none); the record's two products become their
// gradients.
inline void gru_parts_backward(float* __restrict xz, float* __restrict xr, float* __restrict xh,
                               float* __restrict rz, float* __restrict rr, float* __restrict rh,
                               const float* __restrict hp, const float* __restrict og,
                               float* __restrict dh, int64_t u) {
  for (int64_t j = 0; j < u; ++j) {
    const float gz = xz[j], gr = xr[j], hh = xh[j], reset_h = rh[j];
    const float h_grad = dh[j] + og[j];
    const float dz = h_grad * (hp[j] - hh) * gz * (1.0f - gz);
    const float dpre = h_grad * (1.0f - gz) * (1.0f - hh * hh);
    const float dr = dpre * reset_h * gr * (1.0f - gr);
    xz[j] = dz;
    xr[j] = dr;
    xh[j] = dpre;
    rz[j] = dz;
    rr[j] = dr;
    rh[j] = dpre * gr;
    dh[j] = h_grad * gz;
  }
}

// (each product's three parts as parameters of their own: GCC vectorizes it then)
inline void gru_cell_backward(float* z, const float* hp, const float* og, float* dh, int64_t u) {
  gru_parts_backward(z, z + u, z + 2 * u, z + 3 * u, z + 4 * u, z + 5 * u, hp, og, dh, u);
}

// SimpleRNN's step: z = x·W + h·R + b (the record's first part), h = tanh z or relu z.
inline void simple_cell(const Squash& sq, bool relu, float* z, int64_t u) {
  float* h = z + u;
  if (!relu) {
    sq.tanh(z, h, u);
    return;
  }
  for (int64_t j = 0; j < u; ++j) h[j] = std::max(z[j], 0.0f);
}

// SimpleRNN's gradient: z becomes dz = (dh + og)·act'(z), read from h; dh 0 (the product with
// Rᵀ adds the step before's).
inline void simple_cell_backward(bool relu, float* __restrict z, const float* __restrict h,
                                 const float* __restrict og, float* __restrict dh, int64_t u) {
  if (relu) {
    for (int64_t j = 0; j < u; ++j) {
      z[j] = (dh[j] + og[j]) * static_cast<float>(h[j] > 0.0f);
      dh[j] = 0.0f;
    }
    return;
  }
  for (int64_t j = 0; j < u; ++j) {
    z[j] = (dh[j] + og[j]) * (1.0f - h[j] * h[j]);
    dh[j] = 0.0f;
  }
}

}  // namespace

namespace graph_detail {

bool rnn_attrs_valid(const NodeSpec& node) {
  const auto& ia = node.iattrs;
  const bool simple = node.op == OpType::kSimpleRNN;  // (a 10th: relu 1, tanh 0)
  if (ia.size() != 5 && ia.size() != 6 && ia.size() != 9 && !(simple && ia.size() == 10))
    return false;
  if (ia[0] < 1 || ia[1] < 1 || ia[2] < 1) return false;
  for (size_t k = 3; k < ia.size(); ++k)
    if (ia[k] != 0 && ia[k] != 1) return false;
  const RnnGeom g(node);
  return static_cast<int64_t>(node.inputs.size()) == g.inputs() && node.width == g.width() &&
         node.last_dim == g.units;
}

int64_t rnn_record_floats(const NodeSpec& node, int64_t rows) {
  const RnnGeom g(node);
  // (then each sample's dh, dc carried back, then u zeros)
  return rows * (g.record() + 2 * g.units) + g.units;
}

int64_t rnn_partial_floats(const NodeSpec& node) {
  const RnnGeom g(node);
  return kRnnBlocks * ((g.features + g.units) * g.gates() + g.bias());
}

int64_t rnn_bias_size(const NodeSpec& node) { return RnnGeom(node).bias(); }

int64_t rnn_columns(const NodeSpec& node) { return RnnGeom(node).gates(); }

double rnn_macs(const NodeSpec& node, int64_t batch) {
  const RnnGeom g(node);
  return static_cast<double>(batch) * g.steps * (g.features + g.units) * g.gates();
}

}  // namespace graph_detail

void Graph::forward_rnn(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const RnnGeom g(node);
  const int64_t u = g.units, f = g.features, steps = g.steps, sl = g.slot(), rec = g.record();
  const int64_t gw = g.gates(), ra = g.rec_at();
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  if (n <= 0) return;
  const float* x = out_[node.inputs[0]] + rs.lo * steps * f;
  // with a mask (input 1: 1 a step kept, 0 masked), a masked step keeps the states
  const float* kept = g.masked ? out_[node.inputs[1]] + rs.lo * steps : nullptr;
  // the initial states (h, then LSTM's c), or zeros
  const int s0 = static_cast<int>(1 + g.masked);
  const float* h0 = g.states_in ? out_[node.inputs[s0]] + rs.lo * u : nullptr;
  const float* c0 = g.states_in && g.lstm ? out_[node.inputs[s0 + 1]] + rs.lo * u : nullptr;
  float* r = aux_buf_[i].data() + rs.lo * rec;
  const int64_t width = g.width();
  float* y = out_buf_[i].data() + rs.lo * width;
  const float* bias = param(i, 2);
  GemmEpilogue ep;
  ep.bias = bias;
  // every step's x_t·kernel + bias (GRU: its input half), into the records
  local_gemm(st, false, false, n * steps, gw, f, x, f, param(i, 0), gw, 0.0f, r, sl, &ep);
  GemmEpilogue rec_ep;  // (GRU: the recurrent half of the bias, added to h·R)
  rec_ep.bias = g.gru && bias != nullptr ? bias + gw : nullptr;
  const float* rk = param(i, 1);
  const Squash sq;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = g.time(s), tp = g.time(s - 1);
    if (s > 0 || h0 != nullptr) {  // LSTM: z += h_{t-1}·R; GRU: its second product h·R + b_h
      local_gemm(st, false, false, n, gw, u, s > 0 ? r + tp * sl + g.h_at() : h0,
                 s > 0 ? rec : u, rk, gw, g.gru ? 0.0f : 1.0f, r + t * sl + ra, rec, &rec_ep);
    } else if (g.gru) {  // (h_{-1} = 0: b_h alone)
      for (int64_t k = 0; k < n; ++k) {
        float* rc = r + k * rec + t * sl + ra;
        if (rec_ep.bias != nullptr) std::memcpy(rc, rec_ep.bias, gw * sizeof(float));
        else std::fill(rc, rc + gw, 0.0f);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      float* z = r + k * rec + t * sl;
      const float* prev = s > 0 ? r + k * rec + tp * sl : nullptr;
      const float* hp = prev != nullptr ? prev + g.h_at() : h0 != nullptr ? h0 + k * u : nullptr;
      const float* cp = prev != nullptr ? prev + 4 * u : c0 != nullptr ? c0 + k * u : nullptr;
      if (hp != nullptr) std::memcpy(z + g.hp_at(), hp, u * sizeof(float));
      else std::fill(z + g.hp_at(), z + g.hp_at() + u, 0.0f);
      if (g.gru) gru_cell(sq, z, hp, u);
      else if (g.lstm) lstm_cell(sq, z, cp, u);
      else simple_cell(sq, g.relu, z, u);
      float* h = z + g.h_at();
      bool zero_out = false;
      if (kept != nullptr && kept[k * steps + t] == 0.0f) {  // the states kept
        if (hp != nullptr) std::memcpy(h, hp, u * sizeof(float));
        else std::fill(h, h + u, 0.0f);
        if (g.lstm && cp != nullptr) std::memcpy(z + 4 * u, cp, u * sizeof(float));
        else if (g.lstm) std::fill(z + 4 * u, z + 5 * u, 0.0f);
        zero_out = g.zero_masked != 0;
      }
      float* dst = g.sequences ? y + k * width + s * u
                               : (s == steps - 1 ? y + k * width : nullptr);
      if (dst != nullptr && zero_out) std::fill(dst, dst + u, 0.0f);
      else if (dst != nullptr) std::memcpy(dst, h, u * sizeof(float));
    }
  }
  if (!g.states_out) return;
  const float* last = r + g.time(steps - 1) * sl;  // the final states: h, then LSTM's c
  for (int64_t k = 0; k < n; ++k) {
    float* dst = y + k * width + g.main_width();
    std::memcpy(dst, last + k * rec + g.h_at(), u * sizeof(float));
    if (g.lstm) std::memcpy(dst + u, last + k * rec + 4 * u, u * sizeof(float));
  }
}

void Graph::backward_rnn(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const RnnGeom g(node);
  const int64_t u = g.units, f = g.features, steps = g.steps, sl = g.slot(), rec = g.record();
  const int64_t gw = g.gates(), ra = g.rec_at();
  const int in = node.inputs[0];
  const float* x = out_[in];
  const float* dy = grad_buf_[i].data();
  float* records = aux_buf_[i].data();
  float* carry = records + st.batch * rec;  // each sample's dh, dc (2u values)
  const float* zeros = records + aux_buf_[i].size() - u;  // (zeroed by ensure_capacity)
  const float* rk = param(i, 1);
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  const float* kept = g.masked ? out_[node.inputs[1]] + rs.lo * steps : nullptr;
  const int s0 = static_cast<int>(1 + g.masked);
  const float* c0 = g.states_in && g.lstm ? out_[node.inputs[s0 + 1]] : nullptr;
  const int64_t width = g.width();
  if (n > 0) {
    float* r = records + rs.lo * rec;
    float* cy = carry + rs.lo * 2 * u;
    std::fill(cy, cy + n * 2 * u, 0.0f);
    for (int64_t k = 0; k < n && g.states_out; ++k) {  // the final states' gradients
      const float* ds = dy + (rs.lo + k) * width + g.main_width();
      std::memcpy(cy + k * 2 * u, ds, g.states() * u * sizeof(float));
    }
    for (int64_t s = steps - 1; s >= 0; --s) {
      const int64_t t = g.time(s), tp = g.time(s - 1);
      for (int64_t k = 0; k < n; ++k) {
        float* z = r + k * rec + t * sl;
        const float* cp = s > 0 ? r + k * rec + tp * sl + 4 * u
                                : c0 != nullptr ? c0 + (rs.lo + k) * u : zeros;
        float* dh = cy + k * 2 * u;
        const float* og = g.sequences ? dy + (rs.lo + k) * width + s * u
                                      : (s == steps - 1 ? dy + (rs.lo + k) * width : zeros);
        if (kept != nullptr && kept[k * steps + t] == 0.0f) {
          // a masked step: the states' gradients pass to the step before (its output's too,
          // the state's copy, unless zeroed); no gate gradient
          if (g.zero_masked == 0) add_into(dh, og, u);
          std::fill(z, z + ra + gw, 0.0f);
          continue;
        }
        if (g.gru) gru_cell_backward(z, z + g.hp_at(), og, dh, u);  // (the record's h_{t-1})
        else if (g.lstm) lstm_cell_backward(z, cp, og, dh, dh + u, u);
        else simple_cell_backward(g.relu, z, z + u, og, dh, u);
      }
      if (s > 0 || g.states_in)  // dh_{t-1} += d(h·R)·Rᵀ
        local_gemm(st, false, true, n, u, gw, r + t * sl + ra, rec, rk, gw, 1.0f, cy, 2 * u);
    }
    for (int k = 0; k < static_cast<int>(g.states_in * g.states()); ++k) {  // dh0 (and dc0)
      const int in_k = node.inputs[s0 + k];
      if (!requires_grad_[in_k]) continue;
      const bool acc = accumulates(in_k, i, s0 + k);
      float* gs = grad_buf_[in_k].data() + rs.lo * u;
      for (int64_t j = 0; j < n; ++j) put(gs + j * u, cy + j * 2 * u + k * u, u, acc);
    }
    if (requires_grad_[in]) {  // dx = d(x·W)·Wᵀ, every step of these samples at once
      const bool acc = accumulates(in, i, 0);
      local_gemm(st, false, true, n * steps, f, gw, r, sl, param(i, 0), gw, acc ? 1.0f : 0.0f,
                 grad_buf_[in].data() + rs.lo * steps * f, f);
    }
  }
  const int kp = node.params[0], rp = node.params[1], bp = node.params[2];
  const bool want_k = param_grad_wanted(kp), want_r = param_grad_wanted(rp);
  const bool want_b = bp >= 0 && param_grad_wanted(bp);
  if (!want_k && !want_r && !want_b) return;
  barrier(st);  // every sample's gradients in its records
  const int64_t kf = f * gw, kr = u * gw, nb = g.bias(), stride = kf + kr + nb;
  float* part = partial_buf_[i].data();
  const Share mine = share_of(kRnnBlocks, st.ith, st.nth);
  for (int64_t b = mine.lo; b < mine.hi; ++b) {
    const Share ss = share_of(st.batch, static_cast<int>(b), kRnnBlocks);
    const int64_t m = ss.hi - ss.lo;
    if (m <= 0) continue;
    float* pk = part + b * stride;
    float* pr = pk + kf;
    float* pb = pr + kr;
    const float* r = records + ss.lo * rec;
    if (want_k)
      local_gemm(st, true, false, f, gw, m * steps, x + ss.lo * steps * f, f, r, sl, 0.0f, pk,
                 gw);
    if (want_r)  // Σ h_{t-1}ᵀ·d(h·R)_t over the block's steps in one product (each record
                 // keeps its step's h_{t-1}: the initial h, or zeros, at the first)
      local_gemm(st, true, false, u, gw, m * steps, r + g.hp_at(), sl, r + ra, sl, 0.0f, pr,
                 gw);
    if (want_b) {  // (GRU: both products' gradients, b_x's then b_h's, side by side)
      std::fill(pb, pb + nb, 0.0f);
      for (int64_t k = 0; k < m; ++k)
        for (int64_t t = 0; t < steps; ++t) add_into(pb, r + k * rec + t * sl, nb);
    }
  }
  barrier(st);
  int blocks = 0;  // the non-empty ones: the first `blocks` (samples shared out in order)
  while (blocks < kRnnBlocks && share_of(st.batch, blocks, kRnnBlocks).lo <
                                    share_of(st.batch, blocks, kRnnBlocks).hi)
    ++blocks;
  const Share es = share_of(stride, st.ith, st.nth, kMinElementsPerThread, 16);
  for (int64_t e = es.lo; e < es.hi; ++e) {
    const int slot = e < kf ? 0 : e < kf + kr ? 1 : 2;
    const int p = node.params[slot];
    if (!(slot == 0 ? want_k : slot == 1 ? want_r : want_b)) continue;
    const int64_t at = e - (slot == 0 ? 0 : slot == 1 ? kf : kf + kr);
    float sum = part[e];
    for (int b = 1; b < blocks; ++b) sum += part[b * stride + e];
    float* dst = param_grad(p) + at;
    *dst = param_first_writer_[p] == i ? sum : *dst + sum;
  }
}

}  // namespace densitron
