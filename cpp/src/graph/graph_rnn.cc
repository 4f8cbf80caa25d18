// kLSTM, kGRU and kSimpleRNN, Keras's LSTM, GRU (reset_after, or reset before the product) and
// SimpleRNN over a whole sequence (see OpType::kLSTM): sigmoid gates, tanh activations (or
// SimpleRNN's relu). Each thread runs its own samples through every step: one product
// x·kernel + bias for all their steps, then a step's h_{t-1}·recurrent_kernel and its gates and
// states in one pass per sample, no meeting between steps (the samples' recurrences are
// independent); a step a mask drops keeps the states. Each sample keeps a record of every step
// for the backward, which walks the steps back on the same samples, leaving each step's gate
// gradients in the record; the kernels' and bias's gradients are summed over kRnnBlocks fixed
// blocks of samples, each on one thread, then added in block order: the same for any thread
// count. Keras's recurrent dropout (in training): h_{t-1} times one mask a gate (SimpleRNN's
// one), drawn once a run as a Dropout node of gates·units values with the node's seed draws
// them, each gate's recurrent product from its own copy; with it LSTM's and GRU's input may
// hold one (dropped) copy of the features a gate, each read by its gate's kernel columns.
//
// A step's record (8·units values; SimpleRNN's 3·units), each ending with the step's h_{t-1}
// (then GRU's reset before the product: r·h_{t-1} (u); a recurrent dropout: h_{t-1}'s
// dropped copies (gates·units), the rows its gradient product reads):
//   LSTM: z = x·W + h·R + b (4u: i, f, g, o, activated in place), c, tanh c, h; the backward
//         overwrites z with its gradient dz (for the kernels, the bias, dx and dh_{t-1}).
//   GRU:  x·W + b_x (3u: z, r, h; then z, r, hh activated), h·R + b_h (3u; its third, the
//         reset's r_h, kept; reset before: (r·h)·R_h, one bias), h; the backward overwrites
//         both with their gradients.
//   SimpleRNN: z = x·W + h·R + b (then its gradient), h = tanh or relu of z.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "densitron/graph.h"
#include "graph/graph_util.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

constexpr int kRnnBlocks = 8;

struct RnnGeom {
  bool lstm, gru, simple, variant, relu, reset_before;
  int64_t steps, features, units, sequences, backwards, zero_masked, masked, states_in,
      states_out, gate_inputs, seed;
  bool stateful;  // params 3 (and LSTM's 4): the states kept from batch to batch
  float rate;  // the recurrent dropout's (0: none)
  bool rec_drop;
  explicit RnnGeom(const NodeSpec& node)
      : lstm(node.op == OpType::kLSTM), gru(node.op == OpType::kGRU),
        simple(node.op == OpType::kSimpleRNN),
        variant(node.iattrs.size() > 9 && node.iattrs[9] == 1), relu(simple && variant),
        reset_before(gru && variant), steps(node.iattrs[0]), features(node.iattrs[1]),
        units(node.iattrs[2]), sequences(node.iattrs[3]), backwards(node.iattrs[4]),
        zero_masked(node.iattrs.size() > 5 ? node.iattrs[5] : 0),
        masked(node.iattrs.size() > 6 ? node.iattrs[6] : node.inputs.size() > 1),
        states_in(node.iattrs.size() > 6 ? node.iattrs[7] : 0),
        states_out(node.iattrs.size() > 6 ? node.iattrs[8] : 0),
        gate_inputs(node.iattrs.size() > 11 ? node.iattrs[10] : 0),
        seed(node.iattrs.size() > 11 ? node.iattrs[11] : 0),
        stateful(node.params.size() > 3),
        rate(node.iattrs.size() > 11 && !node.fattrs.empty()
                 ? static_cast<float>(node.fattrs[0]) : 0.0f),
        rec_drop(rate > 0.0f) {}
  int64_t states() const { return lstm ? 2 : 1; }  // h (and LSTM's c)
  int64_t main_width() const { return (sequences ? steps : 1) * units; }
  int64_t width() const { return main_width() + states_out * states() * units; }
  int64_t inputs() const { return 1 + masked + states_in * states(); }
  int64_t ngates() const { return lstm ? 4 : gru ? 3 : 1; }
  int64_t gates() const { return ngates() * units; }  // a product's columns
  // a step's input values (gate_inputs: one dropped copy of the features a gate)
  int64_t in_features() const { return features * (gate_inputs ? ngates() : 1); }
  int64_t rec_at() const { return gru ? gates() : 0; }  // where h·R goes in a step's record
  int64_t bias() const { return (gru && !reset_before ? 2 : 1) * gates(); }
  int64_t h_at() const { return (simple ? 1 : 6) * units; }
  int64_t hp_at() const { return h_at() + units; }  // (h_{t-1}, the step's input state)
  int64_t rh_at() const { return hp_at() + units; }  // (reset_before: r·h_{t-1})
  int64_t hd_at() const { return rh_at() + (reset_before ? units : 0); }  // (dropped copies)
  int64_t slot() const { return hd_at() + (rec_drop ? gates() : 0); }
  int64_t record() const { return steps * slot(); }  // a sample's
  int64_t time(int64_t s) const { return backwards ? steps - 1 - s : s; }  // step s's input
  // Whether the recurrent product goes a gate at a time (dropped copies, or GRU's reset
  // before its third), and where gate q's rows of it start in a record (`drop`: this run's)
  bool split(bool drop) const { return drop || reset_before; }
  int64_t a_at(int64_t q, bool drop) const {
    return reset_before && q == 2 ? rh_at() : drop ? hd_at() + q * units : hp_at();
  }
  // per sample after the records and the carried dh, dc: the masks, a scratch row, then
  // (stateful LSTM) the step's c_{-1} read from the state buffer
  int64_t extra() const {
    return (rec_drop ? gates() : 0) + (split(rec_drop) ? gates() : 0) + (kept_c() ? units : 0);
  }
  bool kept_c() const { return stateful && lstm && !states_in; }
  // where the c_{-1} copies start in a node's records, for a batch of `batch` samples
  int64_t c0_at(int64_t batch) const { return batch * (record() + 2 * units + extra() -
                                                       (kept_c() ? units : 0)); }
};

// LSTM's and GRU's steps and their gradients, one sample's at a time: the ISA's kernels
// (elementwise_kernels' lstm_cell, gru_cell, ...; their formulas in elementwise_body.inc), each
// a single pass over the units. As Keras: LSTM's c = f·c_{t-1} + i·g, h = o·tanh c; GRU's
// z, r = σ(x_z + r_z), σ(x_r + r_r), hh = tanh(x_h + r·r_h) (or with reset_before
// tanh(x_h + r_h), r_h then (r·h_{t-1})·R_h), h = z·h_{t-1} + (1 - z)·hh.

// SimpleRNN's step: z = x·W + h·R + b (the record's first part), h = tanh z (the ISA's
// kernel) or relu z.
inline void simple_cell(const ElementwiseKernels* ek, bool relu, float* z, int64_t u) {
  float* h = z + u;
  if (!relu) {
    const float no_params[4] = {0.0f, -1.0f, 0.0f, 1.0f};  // (tanh reads none)
    ek->act_forward(static_cast<int>(Activation::kTanh), no_params, z, h, u);
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
  // {steps, features, units, sequences, backwards[, zero_masked[, masked, states in, states
  // out[, variant[, gate_inputs, recurrent dropout seed]]]]}, fattrs {recurrent dropout rate}
  // with the 12: variant 1 SimpleRNN's relu or GRU's reset_before (LSTM has none),
  // gate_inputs 1 an input of one copy of the features a gate (not SimpleRNN's)
  const auto& ia = node.iattrs;
  const size_t n = ia.size();
  if (n != 5 && n != 6 && n != 9 && n != 10 && n != 12) return false;
  if (ia[0] < 1 || ia[1] < 1 || ia[2] < 1) return false;
  for (size_t k = 3; k < std::min<size_t>(n, 11); ++k)
    if (ia[k] != 0 && ia[k] != 1) return false;
  if (n >= 10 && ia[9] == 1 && node.op == OpType::kLSTM) return false;
  if (n == 12 && (ia[11] < 0 || (node.op == OpType::kSimpleRNN && ia[10] != 0))) return false;
  if (node.fattrs.size() != (n == 12 ? 1u : 0u)) return false;
  if (n == 12 && !(node.fattrs[0] >= 0.0 && node.fattrs[0] <= 1.0)) return false;
  const RnnGeom g(node);
  return static_cast<int64_t>(node.inputs.size()) == g.inputs() && node.width == g.width() &&
         node.last_dim == g.units;
}

int64_t rnn_input_width(const NodeSpec& node) {
  const RnnGeom g(node);
  return g.steps * g.in_features();
}

int64_t rnn_record_floats(const NodeSpec& node, int64_t rows) {
  const RnnGeom g(node);
  // (then each sample's dh, dc carried back, its masks and scratch, then the backward's
  // copy of Rᵀ, then u zeros)
  return rows * (g.record() + 2 * g.units + g.extra()) + g.gates() * g.units + g.units;
}

int64_t rnn_partial_floats(const NodeSpec& node) {
  const RnnGeom g(node);
  return kRnnBlocks * ((g.features + g.units) * g.gates() + g.bias());
}

int64_t rnn_bias_size(const NodeSpec& node) { return RnnGeom(node).bias(); }

int64_t rnn_columns(const NodeSpec& node) { return RnnGeom(node).gates(); }

double rnn_macs(const NodeSpec& node, int64_t batch) {
  const RnnGeom g(node);
  return static_cast<double>(batch) * g.steps * (g.in_features() + g.units) * g.gates();
}

}  // namespace graph_detail

void Graph::check_state_batches(int64_t begin, int64_t end, int64_t batch_size) const {
  for (const NodeSpec& node : nodes_) {
    if (!rnn_op(node.op) || node.params.size() <= 3) continue;
    const int64_t expected = param_size(node.params[3]) / node.iattrs[2];
    for (int64_t s = begin; s < end; s += batch_size) {
      const int64_t batch = std::min(batch_size, end - s);  // (then no overflow below)
      if (batch != expected)  // (Keras's message)
        throw std::invalid_argument(
            "If an RNN is stateful, the batch size of the input sequences must be the same as "
            "the batch size of the initial state. \n- Expected batch size: " +
            std::to_string(expected) + "\n- Received batch size: " + std::to_string(batch));
      if (batch < batch_size) break;
    }
  }
}

void Graph::forward_rnn(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const RnnGeom g(node);
  const int64_t u = g.units, fi = g.in_features(), steps = g.steps, sl = g.slot();
  const int64_t rec = g.record(), gw = g.gates(), ra = g.rec_at();
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  if (n <= 0) return;
  const float* x = out_[node.inputs[0]] + rs.lo * steps * fi;
  // with a mask (input 1: 1 a step kept, 0 masked), a masked step keeps the states
  const float* kept = g.masked ? out_[node.inputs[1]] + rs.lo * steps : nullptr;
  // the initial states (h, then LSTM's c): the call's, else a stateful node's, else zeros
  const int s0 = static_cast<int>(1 + g.masked);
  float* state_h = g.stateful ? param(i, 3) + rs.lo * u : nullptr;
  float* state_c = g.stateful && g.lstm ? param(i, 4) + rs.lo * u : nullptr;
  const float* h0 = g.states_in ? out_[node.inputs[s0]] + rs.lo * u : state_h;
  const float* c0 = g.states_in && g.lstm ? out_[node.inputs[s0 + 1]] + rs.lo * u : state_c;
  float* records = aux_buf_[i].data();
  if (g.kept_c()) {  // (the backward's c_{-1}: the state buffer is written at the end)
    float* copy = records + g.c0_at(st.batch) + rs.lo * u;
    std::memcpy(copy, state_c, n * u * sizeof(float));
    c0 = copy;
  }
  float* r = records + rs.lo * rec;
  const int64_t width = g.width();
  float* y = out_buf_[i].data() + rs.lo * width;
  const float* bias = param(i, 2);
  const float* kw = param(i, 0);
  GemmEpilogue ep;
  ep.bias = bias;
  // every step's x_t·kernel + bias (GRU: its input half), into the records; gate_inputs: each
  // gate's columns from its own copy of the features
  if (!g.gate_inputs) {
    local_gemm(st, false, false, n * steps, gw, fi, x, fi, kw, gw, 0.0f, r, sl, &ep);
  } else {
    for (int64_t q = 0; q < g.ngates(); ++q) {
      GemmEpilogue eq;
      eq.bias = bias != nullptr ? bias + q * u : nullptr;
      local_gemm(st, false, false, n * steps, u, g.features, x + q * g.features, fi,
                 kw + q * u, gw, 0.0f, r + q * u, sl, &eq);
    }
  }
  // the recurrent dropout in training: each sample's masks (one a gate: Keras's implementation
  // 1), the values a Dropout node of gates·units values with the seed draws from ones (the
  // unrolled steps' masks), each 1/(1 - rate) or 0
  const bool drop = g.rec_drop && st.training, split = g.split(drop);
  float* masks = records + st.batch * (rec + 2 * u);
  if (drop) {
    const float scale = 1.0f / (1.0f - g.rate);
    for (int64_t k = 0; k < n; ++k) {
      float* m = masks + (rs.lo + k) * gw;
      std::fill(m, m + gw, 1.0f);
      elementwise_kernels()->dropout(m, m, gw, static_cast<uint64_t>(g.seed),
                                     static_cast<uint64_t>(noise_key(st)),
                                     static_cast<uint64_t>((rs.lo + k) * gw), g.rate, scale,
                                     false);
    }
  }
  GemmEpilogue rec_ep;  // (GRU: the recurrent half of the bias, added to h·R)
  rec_ep.bias = g.gru && !g.reset_before && bias != nullptr ? bias + gw : nullptr;
  const float* rk = param(i, 1);
  const ElementwiseKernels* ek = elementwise_kernels();
  // the recurrent product of gate q's columns (split) from rows a_at(q) of step t's records
  auto gate_product = [&](int64_t t, int64_t q) {
    GemmEpilogue eq;
    eq.bias = rec_ep.bias != nullptr ? rec_ep.bias + q * u : nullptr;
    local_gemm(st, false, false, n, u, u, r + t * sl + g.a_at(q, drop), rec, rk + q * u, gw,
               g.gru ? 0.0f : 1.0f, r + t * sl + ra + q * u, rec, &eq);
  };
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = g.time(s), tp = g.time(s - 1);
    const bool has_h = s > 0 || h0 != nullptr;
    auto prev_h = [&](int64_t k) -> const float* {
      return s > 0 ? r + k * rec + tp * sl + g.h_at() : h0 != nullptr ? h0 + k * u : nullptr;
    };
    auto keep_prev = [&](int64_t k) {  // the record's h_{t-1} (and its dropped copies)
      float* z = r + k * rec + t * sl;
      const float* hp = prev_h(k);
      if (hp != nullptr) std::memcpy(z + g.hp_at(), hp, u * sizeof(float));
      else std::fill(z + g.hp_at(), z + g.hp_at() + u, 0.0f);
      if (!drop) return;
      const float* m = masks + (rs.lo + k) * gw;
      for (int64_t q = 0; q < g.ngates(); ++q)
        for (int64_t j = 0; j < u; ++j)
          z[g.hd_at() + q * u + j] = z[g.hp_at() + j] * m[q * u + j];
    };
    if (split) {
      for (int64_t k = 0; k < n; ++k) keep_prev(k);
      // (reset_before: its third product waits for r)
      for (int64_t q = 0; has_h && q < g.ngates() - (g.reset_before ? 1 : 0); ++q)
        gate_product(t, q);
    } else if (has_h) {  // LSTM: z += h_{t-1}·R; GRU: its second product h·R + b_h
      local_gemm(st, false, false, n, gw, u, s > 0 ? r + tp * sl + g.h_at() : h0,
                 s > 0 ? rec : u, rk, gw, g.gru ? 0.0f : 1.0f, r + t * sl + ra, rec, &rec_ep);
    }
    if (g.gru && !has_h) {  // (h_{-1} = 0: b_h alone)
      for (int64_t k = 0; k < n; ++k) {
        float* rc = r + k * rec + t * sl + ra;
        if (rec_ep.bias != nullptr) std::memcpy(rc, rec_ep.bias, gw * sizeof(float));
        else std::fill(rc, rc + gw, 0.0f);
      }
    }
    if (g.reset_before) {  // z, r; then r·h_{t-1} (its dropped copy) and its product
      for (int64_t k = 0; k < n; ++k) {
        float* z = r + k * rec + t * sl;
        ek->gru_cell(z, nullptr, 1, u);  // (z, r)
        const float* hh = z + (drop ? g.hd_at() + 2 * u : g.hp_at());
        for (int64_t j = 0; j < u; ++j) z[g.rh_at() + j] = z[u + j] * hh[j];
      }
      if (has_h) gate_product(t, 2);
    }
    for (int64_t k = 0; k < n; ++k) {
      float* z = r + k * rec + t * sl;
      const float* prev = s > 0 ? r + k * rec + tp * sl : nullptr;
      const float* hp = prev_h(k);
      const float* cp = prev != nullptr ? prev + 4 * u : c0 != nullptr ? c0 + k * u : nullptr;
      if (!split) keep_prev(k);
      if (g.gru) ek->gru_cell(z, hp, g.reset_before ? 2 : 0, u);
      else if (g.lstm) ek->lstm_cell(z, cp, u);
      else simple_cell(ek, g.relu, z, u);
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
  const float* last = r + g.time(steps - 1) * sl;  // the final states: h, then LSTM's c
  for (int64_t k = 0; k < n && g.stateful; ++k) {  // (these samples' states, read above)
    std::memcpy(state_h + k * u, last + k * rec + g.h_at(), u * sizeof(float));
    if (g.lstm) std::memcpy(state_c + k * u, last + k * rec + 4 * u, u * sizeof(float));
  }
  if (!g.states_out) return;
  for (int64_t k = 0; k < n; ++k) {
    float* dst = y + k * width + g.main_width();
    std::memcpy(dst, last + k * rec + g.h_at(), u * sizeof(float));
    if (g.lstm) std::memcpy(dst + u, last + k * rec + 4 * u, u * sizeof(float));
  }
}

void Graph::backward_rnn(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const RnnGeom g(node);
  const int64_t u = g.units, f = g.features, fi = g.in_features(), steps = g.steps;
  const int64_t sl = g.slot(), rec = g.record(), gw = g.gates(), ra = g.rec_at();
  const int in = node.inputs[0];
  const float* x = out_[in];
  const float* dy = grad_buf_[i].data();
  float* records = aux_buf_[i].data();
  float* carry = records + st.batch * rec;  // each sample's dh, dc (2u values)
  const float* masks = carry + st.batch * 2 * u;  // (the forward's, with recurrent dropout)
  float* scratch = records + st.batch * (rec + 2 * u) + (g.rec_drop ? st.batch * gw : 0);
  const float* zeros = records + aux_buf_[i].size() - u;  // (zeroed by ensure_capacity)
  const ElementwiseKernels* ek = elementwise_kernels();
  // Rᵀ (gates·units rows of u), written once a batch by the threads together: the per-step
  // products d(h·R)·Rᵀ read it row-major in place instead of packing R's columns every step
  float* rkt = records + aux_buf_[i].size() - u - gw * u;
  {
    const float* rk0 = param(i, 1);
    const Share ts = share_of(gw, st.ith, st.nth, 1);
    for (int64_t c = ts.lo; c < ts.hi; ++c)
      for (int64_t j = 0; j < u; ++j) rkt[c * u + j] = rk0[j * gw + c];
    barrier(st);
  }
  const float* rk = rkt;
  const float* kw = param(i, 0);
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  const float* kept = g.masked ? out_[node.inputs[1]] + rs.lo * steps : nullptr;
  const int s0 = static_cast<int>(1 + g.masked);
  const float* c0 = g.states_in && g.lstm ? out_[node.inputs[s0 + 1]]
                    : g.kept_c() ? records + g.c0_at(st.batch) : nullptr;
  const int64_t width = g.width();
  const bool drop = g.rec_drop, split = g.split(drop);
  // the gates whose recurrent product reads h_{t-1} (or its copies) directly
  const int64_t direct = g.ngates() - (g.reset_before ? 1 : 0);
  if (n > 0) {
    float* r = records + rs.lo * rec;
    float* cy = carry + rs.lo * 2 * u;
    float* sc = scratch + rs.lo * gw;
    std::fill(cy, cy + n * 2 * u, 0.0f);
    for (int64_t k = 0; k < n && g.states_out; ++k) {  // the final states' gradients
      const float* ds = dy + (rs.lo + k) * width + g.main_width();
      std::memcpy(cy + k * 2 * u, ds, g.states() * u * sizeof(float));
    }
    for (int64_t s = steps - 1; s >= 0; --s) {
      const int64_t t = g.time(s), tp = g.time(s - 1);
      const bool has_h = s > 0 || g.states_in || g.stateful;
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
        if (g.gru)  // (from the record's h_{t-1})
          ek->gru_cell_backward(z, z + g.hp_at(), og, dh, g.reset_before, u);
        else if (g.lstm) ek->lstm_cell_backward(z, cp, og, dh, dh + u, u);
        else simple_cell_backward(g.relu, z, z + u, og, dh, u);
      }
      if (g.reset_before) {  // d(r·h_{t-1}) = d(r_h)·R_hᵀ: r's gradient, h_{t-1}'s through it
        if (has_h)
          local_gemm(st, false, false, n, u, u, r + t * sl + ra + 2 * u, rec, rk + 2 * u * u,
                     u, 0.0f, sc + 2 * u, gw);
        for (int64_t k = 0; k < n; ++k) {
          float* z = r + k * rec + t * sl;
          if (!has_h) {  // (r·0: no gradient)
            std::fill(z + u, z + 2 * u, 0.0f);
            std::fill(z + 4 * u, z + 5 * u, 0.0f);
            continue;
          }
          ek->gru_reset_backward(z + u, z + 4 * u, z + (drop ? g.hd_at() + 2 * u : g.hp_at()),
                             sc + k * gw + 2 * u,
                             drop ? masks + (rs.lo + k) * gw + 2 * u : nullptr,
                             cy + k * 2 * u, u);
        }
      }
      if (!has_h) continue;
      if (!split) {  // dh_{t-1} += d(h·R)·Rᵀ
        local_gemm(st, false, false, n, u, gw, r + t * sl + ra, rec, rk, u, 1.0f, cy, 2 * u);
      } else if (!drop) {  // (reset_before: z's and r's columns)
        local_gemm(st, false, false, n, u, direct * u, r + t * sl + ra, rec, rk, u, 1.0f, cy,
                   2 * u);
      } else {  // each gate's d(h_q·R_q)·R_qᵀ through its mask
        for (int64_t q = 0; q < direct; ++q)
          local_gemm(st, false, false, n, u, u, r + t * sl + ra + q * u, rec, rk + q * u * u,
                     u, 0.0f, sc + q * u, gw);
        for (int64_t k = 0; k < n; ++k) {
          float* dh = cy + k * 2 * u;
          const float* m = masks + (rs.lo + k) * gw;
          const float* d = sc + k * gw;
          for (int64_t q = 0; q < direct; ++q)
            for (int64_t j = 0; j < u; ++j) dh[j] += d[q * u + j] * m[q * u + j];
        }
      }
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
      float* gx = grad_buf_[in].data() + rs.lo * steps * fi;
      if (!g.gate_inputs) {
        local_gemm(st, false, true, n * steps, f, gw, r, sl, kw, gw, acc ? 1.0f : 0.0f, gx, f);
      } else {  // (each gate's copy of the features)
        for (int64_t q = 0; q < g.ngates(); ++q)
          local_gemm(st, false, true, n * steps, f, u, r + q * u, sl, kw + q * u, gw,
                     acc ? 1.0f : 0.0f, gx + q * f, fi);
      }
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
    const float* xb = x + ss.lo * steps * fi;
    if (want_k && !g.gate_inputs)
      local_gemm(st, true, false, f, gw, m * steps, xb, f, r, sl, 0.0f, pk, gw);
    for (int64_t q = 0; want_k && g.gate_inputs && q < g.ngates(); ++q)
      local_gemm(st, true, false, f, u, m * steps, xb + q * f, fi, r + q * u, sl, 0.0f,
                 pk + q * u, gw);
    // Σ h_{t-1}ᵀ·d(h·R)_t over the block's steps in one product (each record keeps its step's
    // h_{t-1}: the initial h, or zeros, at the first); split, a gate's from its own rows
    if (want_r && !split)
      local_gemm(st, true, false, u, gw, m * steps, r + g.hp_at(), sl, r + ra, sl, 0.0f, pr,
                 gw);
    for (int64_t q = 0; want_r && split && q < g.ngates(); ++q)
      local_gemm(st, true, false, u, u, m * steps, r + g.a_at(q, drop), sl, r + ra + q * u, sl,
                 0.0f, pr + q * u, gw);
    if (want_b) {  // (GRU: both products' gradients, b_x's then b_h's, side by side)
      std::fill(pb, pb + nb, 0.0f);
      for (int64_t k = 0; k < m; ++k)
        elementwise_kernels()->add_rows(r + k * rec, steps, nb, sl, nullptr, pb);
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
