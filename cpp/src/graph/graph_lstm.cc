// kLSTM, Keras's LSTM over a whole sequence (see OpType::kLSTM): sigmoid gates, tanh
// activations. Each thread runs its own samples through every step: one product x·kernel + bias
// for all their steps, then a step's h_{t-1}·recurrent_kernel added in place and its gates and
// states in one pass per sample, no meeting between steps (the samples' recurrences are
// independent); a step a mask drops keeps the states. Each sample keeps a record of every step (the gates, c, tanh c and h) for the
// backward, which walks the steps back on the same samples, leaving each step's gate gradients
// dz in the record; the kernels' and bias's gradients are summed over kLstmBlocks fixed blocks
// of samples, each on one thread, then added in block order: the same for any thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "densitron/graph.h"
#include "graph/graph_util.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

constexpr int kLstmBlocks = 8;

struct LstmGeom {
  int64_t steps, features, units, sequences, backwards, zero_masked;
  explicit LstmGeom(const NodeSpec& node)
      : steps(node.iattrs[0]), features(node.iattrs[1]), units(node.iattrs[2]),
        sequences(node.iattrs[3]), backwards(node.iattrs[4]),
        zero_masked(node.iattrs.size() > 5 ? node.iattrs[5] : 0) {}
  int64_t slot() const { return 7 * units; }           // a step's record: z, c, tanh c, h
  int64_t record() const { return steps * slot(); }    // a sample's
  int64_t time(int64_t s) const { return backwards ? steps - 1 - s : s; }  // step s's input
};

}  // namespace

namespace graph_detail {

bool lstm_attrs_valid(const std::vector<int64_t>& ia) {
  return (ia.size() == 5 || ia.size() == 6) && ia[0] >= 1 && ia[1] >= 1 && ia[2] >= 1 &&
         (ia[3] == 0 || ia[3] == 1) && (ia[4] == 0 || ia[4] == 1) &&
         (ia.size() == 5 || ia[5] == 0 || ia[5] == 1);
}

int64_t lstm_record_floats(const NodeSpec& node, int64_t rows) {
  const LstmGeom g(node);
  return rows * (g.record() + 2 * g.units);  // (then each sample's dh, dc carried back)
}

int64_t lstm_partial_floats(const NodeSpec& node) {
  const LstmGeom g(node);
  return kLstmBlocks * (g.features + g.units + 1) * 4 * g.units;
}

double lstm_macs(const NodeSpec& node, int64_t batch) {
  const LstmGeom g(node);
  return static_cast<double>(batch) * g.steps * (g.features + g.units) * 4 * g.units;
}

}  // namespace graph_detail

void Graph::forward_lstm(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const LstmGeom g(node);
  const int64_t u = g.units, f = g.features, steps = g.steps, sl = g.slot(), rec = g.record();
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  if (n <= 0) return;
  const float* x = out_[node.inputs[0]] + rs.lo * steps * f;
  // with a mask (input 1: 1 a step kept, 0 masked), a masked step keeps the states
  const float* kept = node.inputs.size() > 1 ? out_[node.inputs[1]] : nullptr;
  float* r = aux_buf_[i].data() + rs.lo * rec;
  float* y = out_buf_[i].data();
  GemmEpilogue ep;
  ep.bias = param(i, 2);
  // every step's x_t·kernel + bias, into the records' z
  local_gemm(st, false, false, n * steps, 4 * u, f, x, f, param(i, 0), 4 * u, 0.0f, r, sl, &ep);
  const float* rk = param(i, 1);
  const ActivationParams none{};
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = g.time(s), tp = g.time(s - 1);
    if (s > 0)  // z += h_{t-1}·recurrent_kernel
      local_gemm(st, false, false, n, 4 * u, u, r + tp * sl + 6 * u, rec, rk, 4 * u, 1.0f,
                 r + t * sl, rec);
    for (int64_t k = 0; k < n; ++k) {
      float* z = r + k * rec + t * sl;
      float* c = z + 4 * u;
      float* tc = z + 5 * u;
      float* h = z + 6 * u;
      activation_forward(Activation::kSigmoid, none, z, z, 1, 2 * u);  // i, f
      activation_forward(Activation::kTanh, none, z + 2 * u, z + 2 * u, 1, u);  // g
      activation_forward(Activation::kSigmoid, none, z + 3 * u, z + 3 * u, 1, u);  // o
      if (s == 0) {
        for (int64_t j = 0; j < u; ++j) c[j] = z[j] * z[2 * u + j];
      } else {
        const float* cp = r + k * rec + tp * sl + 4 * u;
        for (int64_t j = 0; j < u; ++j) c[j] = z[u + j] * cp[j] + z[j] * z[2 * u + j];
      }
      activation_forward(Activation::kTanh, none, c, tc, 1, u);
      for (int64_t j = 0; j < u; ++j) h[j] = z[3 * u + j] * tc[j];
      bool zero_out = false;
      if (kept != nullptr && kept[(rs.lo + k) * steps + t] == 0.0f) {
        if (s == 0) {  // the states kept: zeros before the first step
          std::fill(c, c + u, 0.0f);
          std::fill(h, h + u, 0.0f);
        } else {
          std::memcpy(c, r + k * rec + tp * sl + 4 * u, u * sizeof(float));
          std::memcpy(h, r + k * rec + tp * sl + 6 * u, u * sizeof(float));
        }
        zero_out = g.zero_masked != 0;
      }
      float* dst = g.sequences ? y + ((rs.lo + k) * steps + s) * u
                               : (s == steps - 1 ? y + (rs.lo + k) * u : nullptr);
      if (dst != nullptr && zero_out) std::fill(dst, dst + u, 0.0f);
      else if (dst != nullptr) std::memcpy(dst, h, u * sizeof(float));
    }
  }
}

void Graph::backward_lstm(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const LstmGeom g(node);
  const int64_t u = g.units, f = g.features, steps = g.steps, sl = g.slot(), rec = g.record();
  const int in = node.inputs[0];
  const float* x = out_[in];
  const float* dy = grad_buf_[i].data();
  float* records = aux_buf_[i].data();
  float* carry = records + st.batch * rec;  // each sample's dh, dc (2u values)
  const float* rk = param(i, 1);
  const float* kept = node.inputs.size() > 1 ? out_[node.inputs[1]] : nullptr;
  const Share rs = share_of(st.batch, st.ith, st.nth, 1);
  const int64_t n = rs.hi - rs.lo;
  if (n > 0) {
    float* r = records + rs.lo * rec;
    float* cy = carry + rs.lo * 2 * u;
    std::fill(cy, cy + n * 2 * u, 0.0f);
    for (int64_t s = steps - 1; s >= 0; --s) {
      const int64_t t = g.time(s), tp = g.time(s - 1);
      for (int64_t k = 0; k < n; ++k) {
        float* z = r + k * rec + t * sl;  // i, f, g, o; then their dz
        const float* tc = z + 5 * u;
        const float* cp = s > 0 ? r + k * rec + tp * sl + 4 * u : nullptr;
        float* dh = cy + k * 2 * u;
        float* dc = dh + u;
        const float* out_grad =
            g.sequences ? dy + ((rs.lo + k) * steps + s) * u
                        : (s == steps - 1 ? dy + (rs.lo + k) * u : nullptr);
        if (kept != nullptr && kept[(rs.lo + k) * steps + t] == 0.0f) {
          // a masked step: the states' gradients pass to the step before (its output's too,
          // the state's copy, unless zeroed); no gate gradient
          if (out_grad != nullptr && g.zero_masked == 0) add_into(dh, out_grad, u);
          std::fill(z, z + 4 * u, 0.0f);
          continue;
        }
        for (int64_t j = 0; j < u; ++j) {
          const float gi = z[j], gf = z[u + j], gg = z[2 * u + j], go = z[3 * u + j];
          const float h_grad = dh[j] + (out_grad != nullptr ? out_grad[j] : 0.0f);
          const float c_grad = dc[j] + h_grad * go * (1.0f - tc[j] * tc[j]);
          const float prev = cp != nullptr ? cp[j] : 0.0f;
          z[j] = c_grad * gg * gi * (1.0f - gi);
          z[u + j] = c_grad * prev * gf * (1.0f - gf);
          z[2 * u + j] = c_grad * gi * (1.0f - gg * gg);
          z[3 * u + j] = h_grad * tc[j] * go * (1.0f - go);
          dc[j] = c_grad * gf;
          dh[j] = 0.0f;  // (the product below adds the step before's)
        }
      }
      if (s > 0)  // dh_{t-1} += dz_t·recurrent_kernelᵀ
        local_gemm(st, false, true, n, u, 4 * u, r + t * sl, rec, rk, 4 * u, 1.0f, cy, 2 * u);
    }
    if (requires_grad_[in]) {  // dx = dz·kernelᵀ, every step of these samples at once
      const bool acc = accumulates(in, i, 0);
      local_gemm(st, false, true, n * steps, f, 4 * u, r, sl, param(i, 0), 4 * u,
                 acc ? 1.0f : 0.0f, grad_buf_[in].data() + rs.lo * steps * f, f);
    }
  }
  const int kp = node.params[0], rp = node.params[1], bp = node.params[2];
  const bool want_k = param_grad_wanted(kp), want_r = param_grad_wanted(rp);
  const bool want_b = bp >= 0 && param_grad_wanted(bp);
  if (!want_k && !want_r && !want_b) return;
  barrier(st);  // every sample's dz in its record
  const int64_t kf = f * 4 * u, kr = u * 4 * u, stride = kf + kr + 4 * u;
  float* part = partial_buf_[i].data();
  const Share mine = share_of(kLstmBlocks, st.ith, st.nth);
  for (int64_t b = mine.lo; b < mine.hi; ++b) {
    const Share ss = share_of(st.batch, static_cast<int>(b), kLstmBlocks);
    const int64_t m = ss.hi - ss.lo;
    if (m <= 0) continue;
    float* pk = part + b * stride;
    float* pr = pk + kf;
    float* pb = pr + kr;
    const float* r = records + ss.lo * rec;
    if (want_k)
      local_gemm(st, true, false, f, 4 * u, m * steps, x + ss.lo * steps * f, f, r, sl, 0.0f,
                 pk, 4 * u);
    if (want_r) {
      if (steps == 1) std::fill(pr, pr + kr, 0.0f);
      for (int64_t s = 1; s < steps; ++s)  // Σ h_{t-1}ᵀ·dz_t
        local_gemm(st, true, false, u, 4 * u, m, r + g.time(s - 1) * sl + 6 * u, rec,
                   r + g.time(s) * sl, rec, s == 1 ? 0.0f : 1.0f, pr, 4 * u);
    }
    if (want_b) {
      std::fill(pb, pb + 4 * u, 0.0f);
      for (int64_t k = 0; k < m; ++k)
        for (int64_t t = 0; t < steps; ++t) add_into(pb, r + k * rec + t * sl, 4 * u);
    }
  }
  barrier(st);
  int blocks = 0;  // the non-empty ones: the first `blocks` (samples shared out in order)
  while (blocks < kLstmBlocks && share_of(st.batch, blocks, kLstmBlocks).lo <
                                     share_of(st.batch, blocks, kLstmBlocks).hi)
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
