// The executor's per-op work: each node's forward and backward on a thread's share of the
// batch, the cut-kernel (row block) forms of Dense, and softmax over a middle axis.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "densitron/graph.h"
#include "graph/graph_util.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

namespace {

// The calling thread's scratch of n doubles, zeroed (grows only: no allocation once warm).
double* zeroed_doubles(int64_t n) {
  thread_local std::vector<double> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  std::fill(scratch.begin(), scratch.begin() + n, 0.0);
  return scratch.data();
}

// The calling thread's scratch of n indices (grows only).
int64_t* index_scratch(int64_t n) {
  thread_local std::vector<int64_t> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  return scratch.data();
}


// fn(j, n) for the values j in [lo, hi) of a GaussianNoise node's batch with their standard
// normal values n, drawn by the ISA's kernel a chunk at a time (on the stack).
template <class Fn>
void for_each_noise(uint64_t seed, uint64_t key, int64_t lo, int64_t hi, Fn fn) {
  constexpr int64_t kChunk = 512;
  float g[kChunk];
  for (int64_t j0 = lo; j0 < hi; j0 += kChunk) {
    const int64_t m = std::min(kChunk, hi - j0);
    elementwise_kernels()->gaussian_noise(g, m, seed, key, static_cast<uint64_t>(j0));
    for (int64_t q = 0; q < m; ++q) fn(j0 + q, g[q]);
  }
}

// The period per-feature values of n features are laid over (periodic) and walked in
// (for_each_period_run): n, or the first multiple of n from 64 on, so that every run is at
// least 64 values long (Rescaling's one scale made one run, and one call, a value: 2.2 ns
// each, 3x the seed model's epoch).
int64_t period_of(int64_t n) {
  constexpr int64_t kMinPeriod = 64;
  return n >= kMinPeriod ? n : n * ((kMinPeriod + n - 1) / n);
}

// Walks [lo, hi) in runs within periods of period_of(n) values, for values whose feature (or
// alpha) is their index mod n and whose per-feature arrays come from periodic: fn(base, c0, c1)
// for the values base + c, c in [c0, c1), base a multiple of the period. One division a run
// instead of one a value.
template <class Fn>
void for_each_period_run(int64_t lo, int64_t hi, int64_t n, Fn fn) {
  const int64_t period = period_of(n);
  for (int64_t j = lo; j < hi;) {
    const int64_t c0 = j % period, run = std::min(period - c0, hi - j);
    fn(j - c0, c0, c0 + run);
    j += run;
  }
}

// The n values v(c) of a value's feature c, laid over period_of(n) values (value c of the
// period is v(c mod n)), in the calling thread's scratch `slot` (0 or 1).
template <class V>
float* periodic(int64_t n, int slot, V v) {
  thread_local std::vector<float> scratch[2];
  std::vector<float>& out = scratch[slot];
  const int64_t period = period_of(n);
  if (static_cast<int64_t>(out.size()) < period) out.resize(period);
  for (int64_t c = 0; c < n; ++c) out[c] = v(c);
  for (int64_t c = n; c < period; ++c) out[c] = out[c - n];
  return out.data();
}

// Normalization's a (want_b false) or b of each of its f features (kStandardize), over
// period_of(f) values (periodic): from the mean or variance weight (b =
// standardize_scale(variance)), or from the attributes {a..., b...}.
float* standardize_values(const float* weight, const std::vector<double>& fattrs, int64_t f,
                          bool want_b) {
  return periodic(f, want_b, [&](int64_t c) {
    return weight ? (want_b ? standardize_scale(weight[c]) : weight[c])
                  : static_cast<float>(fattrs[(want_b ? f : 0) + c]);
  });
}

}  // namespace

namespace graph_detail {

// kMath's values: y[j] = op(x[j]) for j < n (see MathOp), in float as Keras computes them.
void math_forward(MathOp op, float a, float b, const float* x, float* y, int64_t n) {
  auto compare = [&](auto holds) {  // the comparisons: 1 where x holds against a, else 0
    for (int64_t j = 0; j < n; ++j) y[j] = holds(x[j], a) ? 1.0f : 0.0f;
  };
  switch (op) {
    case MathOp::kSquare:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] * x[j];
      return;
    case MathOp::kAbs:
      for (int64_t j = 0; j < n; ++j) y[j] = std::fabs(x[j]);
      return;
    case MathOp::kSqrt:
      for (int64_t j = 0; j < n; ++j) y[j] = std::sqrt(x[j]);
      return;
    case MathOp::kLog:
      for (int64_t j = 0; j < n; ++j) y[j] = std::log(x[j]);
      return;
    case MathOp::kExp:
      for (int64_t j = 0; j < n; ++j) y[j] = std::exp(x[j]);
      return;
    case MathOp::kLog1p:
      for (int64_t j = 0; j < n; ++j) y[j] = std::log1p(x[j]);
      return;
    case MathOp::kClip:  // NaN stays NaN
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] < a ? a : (x[j] > b ? b : x[j]);
      return;
    case MathOp::kPower:
      for (int64_t j = 0; j < n; ++j) y[j] = std::pow(x[j], a);
      return;
    case MathOp::kDivideBy:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] / a;
      return;
    case MathOp::kDivideInto:
      for (int64_t j = 0; j < n; ++j) y[j] = a / x[j];
      return;
    case MathOp::kGreater:
      return compare(std::greater<float>());
    case MathOp::kGreaterEqual:
      return compare(std::greater_equal<float>());
    case MathOp::kLess:
      return compare(std::less<float>());
    case MathOp::kLessEqual:
      return compare(std::less_equal<float>());
    case MathOp::kEqual:
      return compare(std::equal_to<float>());
    case MathOp::kNotEqual:
      return compare(std::not_equal_to<float>());
    case MathOp::kStopGradient:
      std::copy(x, x + n, y);
      return;
    case MathOp::kSign:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] > 0.0f ? 1.0f : (x[j] < 0.0f ? -1.0f : x[j]);
      return;
    case MathOp::kFloor:
      for (int64_t j = 0; j < n; ++j) y[j] = std::floor(x[j]);
      return;
    case MathOp::kCeil:
      for (int64_t j = 0; j < n; ++j) y[j] = std::ceil(x[j]);
      return;
    case MathOp::kRound:
      for (int64_t j = 0; j < n; ++j) y[j] = std::nearbyint(x[j]);
      return;
    case MathOp::kMultiplyBy:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] * a;
      return;
    case MathOp::kAdd:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] + a;
      return;
  }
}

// kMath's gradient: g[j] = dy[j]·op'(x[j]) (y: the node's values), for j < n.
void math_backward(MathOp op, float a, float b, const float* x, const float* y,
                   const float* dy, float* g, int64_t n) {
  switch (op) {
    case MathOp::kSquare:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * (2.0f * x[j]);
      return;
    case MathOp::kAbs:  // sign(x): 0 at 0
      for (int64_t j = 0; j < n; ++j)
        g[j] = x[j] > 0.0f ? dy[j] : (x[j] < 0.0f ? -dy[j] : 0.0f * dy[j]);
      return;
    case MathOp::kSqrt:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * (0.5f / y[j]);
      return;
    case MathOp::kLog:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] / x[j];
      return;
    case MathOp::kExp:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * y[j];
      return;
    case MathOp::kLog1p:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] / (1.0f + x[j]);
      return;
    case MathOp::kClip:
      for (int64_t j = 0; j < n; ++j) g[j] = x[j] >= a && x[j] <= b ? dy[j] : 0.0f;
      return;
    case MathOp::kPower:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * (a * std::pow(x[j], a - 1.0f));
      return;
    case MathOp::kDivideBy:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] / a;
      return;
    case MathOp::kDivideInto:  // -a / x² = -y / x
      for (int64_t j = 0; j < n; ++j) g[j] = -dy[j] * (y[j] / x[j]);
      return;
    case MathOp::kMultiplyBy:
      for (int64_t j = 0; j < n; ++j) g[j] = dy[j] * a;
      return;
    case MathOp::kAdd:
      std::copy(dy, dy + n, g);
      return;
    default:  // the comparisons, stop_gradient, sign, floor, ceil, round: no gradient
      std::fill(g, g + n, 0.0f);
      return;
  }
}

}  // namespace graph_detail


// The epilogue of Dense i's input-gradient GEMM (columns from col0 of the input on): its
// input's activation derivative when that is fused there (dact_by_consumer_), else none.
GemmEpilogue Graph::input_grad_epilogue(int i, int64_t col0) const {
  GemmEpilogue ep;
  const int in = nodes_[i].inputs[0];
  if (!dact_by_consumer_[in]) return ep;
  epilogue_for(nodes_[in].activation, nodes_[in].act_params, &ep.dact);
  ep.dact_y = out_[in] + col0;
  ep.ldy = nodes_[in].last_dim;
  return ep;
}

// Each sample's mask: the uniforms of its distinct mask indices (base + 0..span-1, base the
// sample's first value, or 0 when the mask is shared over the batch) by the ISA's dropout
// kernel on ones (1 kept, 0 dropped), then each value's by its offset: the same hash a value
// as before, once per distinct index (SpatialDropout1D after an Embedding hashed each of its
// 3,200 values a sample, and took the offset by divisions, 10x slower an epoch).
template <class Fn>
void Graph::dropout_mask(const Step& st, int i, int64_t lo, int64_t hi, Fn fn) const {
  const NodeSpec& node = nodes_[i];
  const int64_t width = node.width, span = dropout_span_[i];
  const std::vector<int64_t>& offs = dropout_offsets_[i];
  const bool batch_shared = node.iattrs.size() > 1 && node.iattrs[1] != 0;
  float* keep = float_scratch(2 * span);
  float* ones = keep + span;
  std::fill(ones, ones + span, 1.0f);
  int64_t hashed = -1;
  for (int64_t s = lo / width; s * width < hi; ++s) {
    const int64_t base = batch_shared ? 0 : s * width;
    if (base != hashed) {
      elementwise_kernels()->dropout(ones, keep, span, static_cast<uint64_t>(node.iattrs[0]),
                                     static_cast<uint64_t>(noise_key(st)),
                                     static_cast<uint64_t>(base),
                                     static_cast<float>(node.fattrs[0]), 1.0f, false);
      hashed = base;
    }
    const int64_t j1 = std::min(hi, (s + 1) * width);
    for (int64_t j = std::max(lo, s * width); j < j1; ++j)
      fn(j, keep[offs[j - s * width]] != 0.0f);
  }
}

void Graph::forward_node(const Step& st, int i) {
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfElementwise], &prof_open_);
  const NodeSpec& node = nodes_[i];
  const int ith = st.ith, nth = st.nth;
  float* y = out_buf_[i].data();
  const int64_t w = node.width, last = node.last_dim;
  const int64_t n = st.batch * w, rows = n / last;
  const float* x = out_[node.inputs[0]];
  const Share el = share_of(n, ith, nth, kMinElementsPerThread, 16);
  const Share rw = share_of(rows, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / last));
  switch (node.op) {
    case OpType::kInput:
    case OpType::kReshape:
    case OpType::kTarget:  // the batch's gathered targets (begin_batch)
      return;
    case OpType::kDense: {
      const int64_t in_last = nodes_[node.inputs[0]].last_dim;
      if (const int k = sparse_input_[i]; k >= 0) {
        forward_dense_sparse(st, i, static_cast<size_t>(k));
        return;
      }
      // Training keeps each block of a cut kernel on its owner's core; inference has no
      // update to keep local, and whole rows avoid summing the partial products.
      if (splits_forward(st, i)) {  // (not in a noisy predict)
        forward_dense_split(st, i);
        return;
      }
      GemmEpilogue ep;
      ep.bias = param(i, 1);
      EpilogueAct fused_act;
      const bool fusable = epilogue_for(node.activation, node.act_params, &fused_act);
      if (fusable && !keeps_input_[i]) {
        ep.act = fused_act;
        gemm(st, false, false, rows, last, in_last, x, in_last, param(i, 0), last, 0.0f, y, last,
             &ep);
        return;
      }
      gemm(st, false, false, rows, last, in_last, x, in_last, param(i, 0), last, 0.0f,
           dense_pre(i), last, &ep);
      barrier(st);
      activate_dense_rows(i, rw);
      return;
    }
    case OpType::kActivation:
      if (!node.iattrs.empty()) {
        softmax_axis(st, i, x, y, nullptr, nullptr);
        return;
      }
      if (rw.lo < rw.hi)
        activation_forward(node.activation, node.act_params, x + rw.lo * last, y + rw.lo * last,
                           rw.hi - rw.lo, last);
      return;
    case OpType::kDropout: {
      const float rate = static_cast<float>(node.fattrs[0]);
      const float scale = 1.0f / (1.0f - rate);
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      if (node.fattrs.size() == 4) {  // AlphaDropout: a·(x or alpha') + b
        const float a = static_cast<float>(node.fattrs[1]), b = static_cast<float>(node.fattrs[2]);
        const float dropped = static_cast<float>(node.fattrs[3]);
        if (node.iattrs.size() > 1) {  // a noise_shape
          dropout_mask(st, i, el.lo, el.hi,
                       [&](int64_t j, bool kept) { y[j] = a * (kept ? x[j] : dropped) + b; });
          return;
        }
        // Mask index j: the kept values (t, else 0) and the mask (k, 1 or 0) by the ISA's
        // dropout kernel a chunk at a time, then a·(t + (1 - k)·alpha') + b, exactly the
        // select's values (x + 0 is x; 0 + alpha' is alpha') without a branch a value.
        constexpr int64_t kChunk = 256;
        float t[kChunk], k[kChunk], ones[kChunk];
        std::fill(ones, ones + kChunk, 1.0f);
        const ElementwiseKernels* ek = elementwise_kernels();
        const uint64_t key = static_cast<uint64_t>(noise_key(st));
        for (int64_t j0 = el.lo; j0 < el.hi; j0 += kChunk) {
          const int64_t m = std::min(kChunk, el.hi - j0);
          ek->dropout(x + j0, t, m, seed, key, static_cast<uint64_t>(j0), rate, 1.0f, false);
          ek->dropout(ones, k, m, seed, key, static_cast<uint64_t>(j0), rate, 1.0f, false);
          float* __restrict yj = y + j0;
          for (int64_t q = 0; q < m; ++q) yj[q] = a * (t[q] + (1.0f - k[q]) * dropped) + b;
        }
        return;
      }
      if (node.iattrs.size() == 1) {  // no noise_shape: mask index j, by the ISA's kernel
        if (el.lo < el.hi)
          elementwise_kernels()->dropout(x + el.lo, y + el.lo, el.hi - el.lo, seed,
                                         static_cast<uint64_t>(noise_key(st)),
                                         static_cast<uint64_t>(el.lo), rate, scale, false);
        return;
      }
      dropout_mask(st, i, el.lo, el.hi,
                   [&](int64_t j, bool kept) { y[j] = kept ? x[j] * scale : 0.0f; });
      return;
    }
    case OpType::kGaussianNoise: {
      const float stddev = static_cast<float>(node.fattrs[0]);
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      const bool multiplicative = node.iattrs.size() > 1 && node.iattrs[1] != 0;
      for_each_noise(seed, static_cast<uint64_t>(noise_key(st)), el.lo, el.hi,
                     [&](int64_t j, float n) {
                       const float noise = stddev * n;
                       y[j] = multiplicative ? x[j] * (1.0f + noise) : x[j] + noise;
                     });
      return;
    }
    case OpType::kIndexMap: {
      // Each sample's values picked from its input's by the node's map (-1: a zero; -2:
      // Keras's masked attention score, -1e9).
      const int64_t win = nodes_[node.inputs[0]].width;
      const int64_t* map = node.iattrs.data();
      const Share bs = share_of(st.batch, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / w));
      for (int64_t r = bs.lo; r < bs.hi; ++r) {
        const float* xr = x + r * win;
        float* yr = y + r * w;
        for (int64_t j = 0; j < w; ++j)
          yr[j] = map[j] >= 0 ? xr[map[j]] : map[j] == -1 ? 0.0f : kMaskedScore;
      }
      return;
    }
    case OpType::kBiasAdd: {
      const float* b = param(i, 0);
      for (int64_t r = rw.lo; r < rw.hi; ++r)
        for (int64_t c = 0; c < last; ++c) y[r * last + c] = x[r * last + c] + b[c];
      return;
    }
    case OpType::kScaleBy: {
      const float* sc = param(i, 0);
      for (int64_t r = rw.lo; r < rw.hi; ++r)
        for (int64_t c = 0; c < last; ++c) y[r * last + c] = x[r * last + c] * sc[c];
      return;
    }
    case OpType::kPReLU: {
      // Keras's relu(x) - alpha·relu(-x): x where x > 0, else alpha·x (0 + …: never -0).
      const float* w = param(i, 0);
      const int64_t na = node.iattrs[0];
      const float* alpha = periodic(na, 0, [&](int64_t c) { return w[c]; });
      const ElementwiseKernels* ek = elementwise_kernels();
      for_each_period_run(el.lo, el.hi, na, [&](int64_t base, int64_t a0, int64_t a1) {
        ek->prelu(x + base + a0, alpha + a0, y + base + a0, a1 - a0);
      });
      return;
    }
    case OpType::kCategorize: {
      // Keras's Discretization (digitize) and CategoryEncoding, per sample.
      const int64_t depth = node.iattrs[0], k = node.iattrs[1], mode = node.iattrs[2];
      const int64_t win = nodes_[node.inputs[0]].width;
      const std::vector<double>& bounds = node.fattrs;
      // (a Discretization without boundaries has one bin: every value's id is 0)
      const int64_t how = node.iattrs.size() > 3 ? node.iattrs[3] : (bounds.empty() ? 0 : 1);
      const bool digitize = how == 1;
      if (how == 2) {  // IntegerLookup: a table of sorted keys, their values, a default
        const int64_t n = static_cast<int64_t>(bounds.size() / 2);
        const int64_t n_oov = node.iattrs[4], oov_start = node.iattrs[5];
        auto look = [&](float x) -> double {
          // The value cast to int64 as Keras casts it (truncated; NaN and values beyond
          // int64's range its minimum, as x86's conversion in TensorFlow and NumPy), its
          // key's id, else oov_start + floormod(value, n_oov) in integers (a double's
          // floormod of a large value fell outside [0, n_oov): an Embedding read before
          // its table), else the default.
          const double d = static_cast<double>(x);
          const int64_t v = d >= -0x1p63 && d < 0x1p63 ? static_cast<int64_t>(d) : INT64_MIN;
          const double key = static_cast<double>(v);
          const auto at = std::lower_bound(bounds.begin(), bounds.begin() + n, key);
          if (at != bounds.begin() + n && *at == key) return bounds[n + (at - bounds.begin())];
          if (n_oov > 1) {
            const int64_t r = v % n_oov;
            return static_cast<double>(oov_start + (r < 0 ? r + n_oov : r));
          }
          return bounds[2 * n];
        };
        const Share ls =
            share_of(st.batch, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / w));
        for (int64_t r = ls.lo; r < ls.hi; ++r) {
          const float* xr = x + r * win;
          float* yr = y + r * w;
          if (mode < 0) {
            for (int64_t j = 0; j < win; ++j) yr[j] = static_cast<float>(look(xr[j]));
            continue;
          }
          std::fill(yr, yr + w, 0.0f);
          for (int64_t j = 0; j < win; ++j) {
            const double id = look(xr[j]);
            if (!(id >= 0.0 && id < static_cast<double>(depth))) continue;
            float* row = yr + (mode == 0 ? j : j / k) * depth;
            const int64_t c = static_cast<int64_t>(id);
            row[c] = mode == 2 ? row[c] + 1.0f : 1.0f;
          }
        }
        return;
      }
      auto id_of = [&](float v) -> int64_t {
        if (digitize) {
          if (std::isnan(v)) return static_cast<int64_t>(bounds.size());
          return std::upper_bound(bounds.begin(), bounds.end(), static_cast<double>(v)) -
                 bounds.begin();
        }
        if (!(v > -1.0f && v < static_cast<float>(depth))) return -1;  // NaN too
        return static_cast<int64_t>(v);  // truncated, as Keras casts
      };
      const Share bs = share_of(st.batch, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / w));
      for (int64_t r = bs.lo; r < bs.hi; ++r) {
        const float* xr = x + r * win;
        float* yr = y + r * w;
        if (mode < 0) {
          for (int64_t j = 0; j < win; ++j) yr[j] = static_cast<float>(id_of(xr[j]));
          continue;
        }
        std::fill(yr, yr + w, 0.0f);
        for (int64_t j = 0; j < win; ++j) {
          const int64_t id = id_of(xr[j]);
          if (id < 0 || id >= depth) continue;
          float* row = yr + (mode == 0 ? j : j / k) * depth;
          row[id] = mode == 2 ? row[id] + 1.0f : 1.0f;
        }
      }
      return;
    }
    case OpType::kUnitNorm: {
      // Keras's UnitNormalization: x·min(1/‖x‖, 1/eps) over each row of the last axis.
      const float cap = static_cast<float>(node.fattrs[0]);
      for (int64_t r = rw.lo; r < rw.hi; ++r) {
        const float* xr = x + r * last;
        float squares = 0.0f;
        for (int64_t j = 0; j < last; ++j) squares += xr[j] * xr[j];
        const float inv = std::min(1.0f / std::sqrt(squares), cap);
        for (int64_t j = 0; j < last; ++j) y[r * last + j] = xr[j] * inv;
      }
      return;
    }
    case OpType::kDot: {
      // Keras's Dot of two vectors a sample (normalize: of their l2-normalised forms).
      const int64_t d = node.iattrs[0];
      const bool normalize = node.iattrs[1] != 0;
      const float* c = out_[node.inputs[1]];
      const Share bs = share_of(st.batch, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / d));
      for (int64_t b = bs.lo; b < bs.hi; ++b) {
        const DotSums s = dot_sums(x + b * d, c + b * d, d);
        y[b] = normalize ? s.ac * inverse_norm(s.aa) * inverse_norm(s.cc) : s.ac;
      }
      return;
    }
    case OpType::kStandardize: {
      // Keras's Normalization: (x - mean) / max(sqrt(variance), eps), or its inverse.
      const bool invert = node.iattrs[0] != 0;
      const int64_t f = node.iattrs[1];
      const float* __restrict a =
          standardize_values(node.params.empty() ? nullptr : param(i, 0), node.fattrs, f, false);
      const float* __restrict b =
          standardize_values(node.params.empty() ? nullptr : param(i, 1), node.fattrs, f, true);
      for_each_period_run(el.lo, el.hi, f, [&](int64_t base, int64_t c0, int64_t c1) {
        const float* __restrict xs = x + base;
        float* __restrict ys = y + base;
        if (invert) {
          for (int64_t c = c0; c < c1; ++c) ys[c] = a[c] + xs[c] * b[c];
        } else {
          for (int64_t c = c0; c < c1; ++c) ys[c] = (xs[c] - a[c]) / b[c];
        }
      });
      return;
    }
    case OpType::kAdd:
    case OpType::kAverage:
    case OpType::kSubtract:
    case OpType::kMultiply:
    case OpType::kMaximum:
    case OpType::kMinimum: {
      if (el.lo >= el.hi) return;
      const int64_t len = el.hi - el.lo;
      float* yy = y + el.lo;
      std::memcpy(yy, x + el.lo, len * sizeof(float));
      for (size_t k = 1; k < node.inputs.size(); ++k) {
        const float* b = out_[node.inputs[k]] + el.lo;
        switch (node.op) {
          case OpType::kSubtract:
            for (int64_t j = 0; j < len; ++j) yy[j] -= b[j];
            break;
          case OpType::kMultiply:
            for (int64_t j = 0; j < len; ++j) yy[j] *= b[j];
            break;
          case OpType::kMaximum:
            for (int64_t j = 0; j < len; ++j) yy[j] = b[j] > yy[j] ? b[j] : yy[j];
            break;
          case OpType::kMinimum:
            for (int64_t j = 0; j < len; ++j) yy[j] = b[j] < yy[j] ? b[j] : yy[j];
            break;
          default:
            add_into(yy, b, len);
        }
      }
      if (node.op == OpType::kAverage) {
        const float inv = 1.0f / static_cast<float>(node.inputs.size());
        for (int64_t j = 0; j < len; ++j) yy[j] *= inv;
      }
      return;
    }
    case OpType::kMath:
      if (el.lo < el.hi)
        math_forward(static_cast<MathOp>(node.iattrs[0]), static_cast<float>(node.fattrs[0]),
                     static_cast<float>(node.fattrs[1]), x + el.lo, y + el.lo, el.hi - el.lo);
      return;
    case OpType::kRowBroadcast: {
      const float* b = out_[node.inputs[1]];
      const int64_t mode = node.iattrs[0];
      for (int64_t r = rw.lo; r < rw.hi; ++r) {
        const float v = b[r];
        const float* xr = x + r * last;
        float* yr = y + r * last;
        for (int64_t j = 0; j < last; ++j)
          yr[j] = mode == 0 ? xr[j] + v : mode == 1 ? xr[j] - v : mode == 2 ? v - xr[j]
                : mode == 3 ? xr[j] * v : xr[j] / v;
      }
      return;
    }
    case OpType::kDivide: {
      const float* b = out_[node.inputs[1]];
      for (int64_t j = el.lo; j < el.hi; ++j) y[j] = x[j] / b[j];
      return;
    }
    case OpType::kConv:
      forward_conv(st, i);
      return;
    case OpType::kWindowPool:
      forward_window_pool(st, i);
      return;
    case OpType::kLSTM:
    case OpType::kGRU:
    case OpType::kSimpleRNN:
      forward_rnn(st, i);
      return;
    case OpType::kBatchMatMul: {
      // Each thread a range of the batch's (sample, group) products, each on one thread.
      const auto& ia = node.iattrs;
      const int64_t g = ia[0], m = ia[1], k = ia[2], nn = ia[3];
      const bool ta = ia[4] != 0, tb = ia[5] != 0;
      const float* b = out_[node.inputs[1]];
      const Share ps = share_of(st.batch * g, ith, nth, 1);
      for (int64_t p = ps.lo; p < ps.hi; ++p)
        local_gemm(st, ta, tb, m, nn, k, x + p * m * k, ta ? m : k, b + p * k * nn,
                   tb ? k : nn, 0.0f, y + p * m * nn, nn);
      return;
    }
    case OpType::kModeSelect: {
      const float* src = st.training ? x : out_[node.inputs[1]];
      if (el.lo < el.hi) std::memcpy(y + el.lo, src + el.lo, (el.hi - el.lo) * sizeof(float));
      return;
    }
    case OpType::kArgReduce: {
      const int64_t len = nodes_[node.inputs[0]].last_dim;
      const bool lowest = node.iattrs[0] != 0;
      const int64_t rows_in = st.batch * w;  // one index a row of the input's last axis
      const Share rs = share_of(rows_in, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / len));
      for (int64_t r = rs.lo; r < rs.hi; ++r) {
        const float* xr = x + r * len;
        int64_t best = 0;
        for (int64_t j = 0; j < len && !std::isnan(xr[best]); ++j)
          if (std::isnan(xr[j]) || (lowest ? xr[j] < xr[best] : xr[j] > xr[best])) best = j;
        y[r] = static_cast<float>(best);
      }
      return;
    }
    case OpType::kBatchReduce: {  // (solo: the whole batch on one thread)
      const int64_t count = st.batch * nodes_[node.inputs[0]].width;
      double sum = 0.0;
      for (int64_t j = 0; j < count; ++j) sum += x[j];
      const float v = static_cast<float>(node.iattrs[0] == 0 ? sum / static_cast<double>(count)
                                                             : sum);
      std::fill(y, y + st.batch, v);
      return;
    }
    case OpType::kPool: {
      // Keras's global pooling: y = mean (or max) over length, in order, of x's (length, inner)
      // rows of each of the batch's outer groups.
      // Masked (Embedding(mask_zero=True)): the sum over the steps whose id is not 0, divided
      // by their count (0/0 when there are none, as Keras).
      const int64_t len = node.iattrs[1], inner = node.iattrs[2];
      const bool max = node.iattrs[3] == 1, sum = node.iattrs[3] == 2;
      const Share gs = pool_share(st, i);
      for (int64_t g = gs.lo; g < gs.hi; ++g) {
        const float* xg = x + g * len * inner;
        const float* keep = pool_mask(i, g);
        float* yg = y + g * inner;
        if (!max) {
          std::fill(yg, yg + inner, 0.0f);
          const float steps = elementwise_kernels()->add_rows(xg, len, inner, inner, keep, yg);
          if (!sum)
            for (int64_t c = 0; c < inner; ++c) yg[c] /= steps;
          continue;
        }
        elementwise_kernels()->max_rows(xg, len, inner, yg);
      }
      return;
    }
    case OpType::kConcatenate: {
      const int64_t blocks = node.iattrs[0];
      const int64_t block_w = w / blocks;
      const Share bl = share_of(st.batch * blocks, ith, nth, 8);
      int64_t col = 0;
      for (int in : node.inputs) {
        const int64_t iw = nodes_[in].width / blocks;
        const float* src = out_[in];
        for (int64_t r = bl.lo; r < bl.hi; ++r)
          std::memcpy(y + r * block_w + col, src + r * iw, iw * sizeof(float));
        col += iw;
      }
      return;
    }
    case OpType::kBatchNorm: {
      // Each thread owns a range of features: statistics over all rows, then normalization.
      const Share cs = share_of(last, ith, nth, 16, 16);
      const float* gamma = param(i, 0);
      const float* beta = param(i, 1);
      float* mm = param(i, 2);
      float* mv = param(i, 3);
      const float eps = static_cast<float>(node.fattrs[1]);
      float* mean = aux_buf_[i].data();
      float* inv = mean + last;
      const ElementwiseKernels* ek = elementwise_kernels();
      // (a noisy predict and a frozen layer's training keep the moving statistics)
      if (st.training && st.noise < 0 && !batch_norm_frozen(node)) {
        // Each feature's mean and squared deviations over the rows in row order, in double.
        const int64_t w = cs.hi - cs.lo;
        double* mu = zeroed_doubles(2 * w);
        double* sq = mu + w;
        ek->col_moments(x + cs.lo, rows, last, w, mu, sq);
        for (int64_t c = cs.lo; c < cs.hi; ++c) {
          const float var = static_cast<float>(sq[c - cs.lo] / rows);
          mean[c] = static_cast<float>(mu[c - cs.lo]);
          inv[c] = 1.0f / std::sqrt(var + eps);
          if (update_stats_) {
            const float momentum = static_cast<float>(node.fattrs[0]);
            mm[c] = mm[c] * momentum + mean[c] * (1.0f - momentum);
            mv[c] = mv[c] * momentum + var * (1.0f - momentum);
          }
        }
      } else {
        for (int64_t c = cs.lo; c < cs.hi; ++c) {
          mean[c] = mm[c];
          inv[c] = 1.0f / std::sqrt(mv[c] + eps);
        }
      }
      // (the output never overlaps the input or the statistics)
      ek->col_normalize(x + cs.lo, y + cs.lo, rows, last, cs.hi - cs.lo, mean + cs.lo,
                        inv + cs.lo, gamma ? gamma + cs.lo : nullptr,
                        beta ? beta + cs.lo : nullptr);
      return;
    }
    case OpType::kLayerNorm: {
      const float* gamma = param(i, 0);
      const float* beta = param(i, 1);
      const float eps = static_cast<float>(node.fattrs[0]);
      float* stats = aux_buf_[i].data();
      const ElementwiseKernels* ek = elementwise_kernels();
      for (int64_t r = rw.lo; r < rw.hi; ++r)
        ek->layer_norm_row(x + r * last, y + r * last, last, gamma, beta, eps, stats + 2 * r,
                           node.iattrs.empty() || node.iattrs[0] == 0);
      return;
    }
    case OpType::kEmbedding: {
      const float* table = param(i, 0);
      const Share ids = share_of(st.batch * nodes_[node.inputs[0]].width, ith, nth,
                                 std::max<int64_t>(1, kMinElementsPerThread / last));
      elementwise_kernels()->gather_rows(table, x + ids.lo, ids.hi - ids.lo, last,
                                         y + ids.lo * last);
      return;
    }
  }
}

// A Dense whose kernel is cut into ksplit_ row blocks over its input features: block b's
// partial product X[:, K_b]·W[K_b, :] is computed by thread b mod nth, then the partials are
// summed with the bias and the activation applied. The sum is a fixed tree, whatever the
// thread count: each even block with the next, (p0 + p1) + (p2 + p3) + ..., then the bias. A
// thread that owns both blocks of a pair adds the second onto the first in its GEMM (beta 1,
// one k block: the same rounded sum), so the final pass reads one buffer for that pair.
void Graph::forward_dense_split(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const int in = node.inputs[0];
  const int64_t in_last = nodes_[in].last_dim, units = node.last_dim, rows = st.batch;
  const int parts = ksplit_[i];
  const float* x = out_[in];
  const float* w = param(i, 0);
  float* partial = partial_buf_[i].data();
  // paired[q]: block q (odd) is added onto block q - 1 in the GEMM: one owner, one k block.
  const int64_t k_block = sgemm_k_block();
  bool paired[kMaxSplit + 1] = {};
  for (int t = 0; t < st.nth; ++t) {
    int lo, hi;
    owned_parts(parts, t, st.nth, &lo, &hi);
    for (int q = lo + 1; q < hi; ++q) {
      const Share ks = k_part(i, q);
      paired[q] = (q & 1) == 1 && ks.hi - ks.lo <= k_block;
    }
  }
  int p0, p1;
  owned_parts(parts, st.ith, st.nth, &p0, &p1);
  for (int part = p0; part < p1; ++part) {
    const Share ks = k_part(i, part);
    const bool onto = paired[part];
    local_gemm(st, false, false, rows, units, ks.hi - ks.lo, x + ks.lo, in_last,
               w + ks.lo * units, units, onto ? 1.0f : 0.0f,
               partial + (onto ? part - 1 : part) * rows * units, units);
  }
  barrier(st);
  const float* bias = param(i, 1);
  float* z = dense_pre(i);
  const Share rw = hands_off(st, i)
                       ? (st.ith == 0 ? Share{0, rows} : Share{0, 0})
                       : share_of(rows, st.ith, st.nth, std::max<int64_t>(1, 256 / units));
  for (int64_t r = rw.lo; r < rw.hi; ++r) {
    float* zr = z + r * units;
    const float* p = partial + r * units;
    for (int part = 0; part < parts; part += 2) {
      const float* a = p + part * rows * units;
      const float* b = part + 1 < parts && !paired[part + 1] ? a + rows * units : nullptr;
      if (part == 0) {
        if (b != nullptr) {
          for (int64_t c = 0; c < units; ++c) zr[c] = a[c] + b[c];
        } else {
          std::memcpy(zr, a, units * sizeof(float));
        }
      } else if (b != nullptr) {
        for (int64_t c = 0; c < units; ++c) zr[c] += a[c] + b[c];
      } else {
        add_into(zr, a, units);
      }
    }
    if (bias) add_into(zr, bias, units);
  }
  activate_dense_rows(i, rw);
}

// y = act(x·W + b) for a sparse x: each row's stored values times their kernel rows, summed in
// the order stored (the same for any thread count; sparse_row_times), then the bias. Rows
// shared between the threads.
void Graph::forward_dense_sparse(const Step& st, int i, size_t k) {
  const NodeSpec& node = nodes_[i];
  const SparseRows& sp = run_data_->sparse[k];
  const int64_t units = node.last_dim;
  const float* w = param(i, 0);
  const float* bias = param(i, 1);
  float* z = dense_pre(i);
  const Share rw = share_of(st.batch, st.ith, st.nth);
  for (int64_t r = rw.lo; r < rw.hi; ++r) {
    const int64_t row = st.rows[r];
    float* zr = z + r * units;
    const int64_t e0 = sp.indptr[row];
    sparse_row_times(sp.indices + e0, sp.values + e0, sp.indptr[row + 1] - e0, w, units, zr,
                     units);
    if (bias) add_into(zr, bias, units);
  }
  activate_dense_rows(i, rw);
}

// Where Dense node i's pre-activation x·W + b is written: a buffer of its own when the
// activation's backward reads it, else the output, activated in place.
float* Graph::dense_pre(int i) { return keeps_input_[i] ? pre_buf_[i].data() : out_buf_[i].data(); }

// Dense node i's activation of rows rw of its pre-activation into its output.
void Graph::activate_dense_rows(int i, Share rw) {
  if (rw.lo >= rw.hi) return;
  const NodeSpec& node = nodes_[i];
  const int64_t units = node.last_dim;
  activation_forward(node.activation, node.act_params, dense_pre(i) + rw.lo * units,
                     out_buf_[i].data() + rw.lo * units, rw.hi - rw.lo, units);
}

// The kernel gradient xᵀ·dy for a sparse x: only the kernel rows of the batch's stored columns
// are non-zero. Each thread owns a range of kernel rows (a cut kernel's blocks, as its update
// takes them), sets the rows it wrote last step back to zero (every row when a regularizer
// adds to the gradient), then adds each stored value's v·dy row in batch order: the same sums
// for any thread count. The update pass then steps the whole kernel, as Keras does.
void Graph::backward_dense_sparse(const Step& st, int i, size_t k) {
  const NodeSpec& node = nodes_[i];
  const int64_t units = node.last_dim, rows = st.batch;
  const float* dy = grad_buf_[i].data();
  const int kp = node.params[0];
  if (param_grad_wanted(kp)) {
    const SparseRows& sp = run_data_->sparse[k];
    float* g = param_grad(kp);
    Share own{0, 0};
    if (ksplit_[i] > 1) {
      int p0, p1;
      owned_parts(ksplit_[i], st.ith, st.nth, &p0, &p1);
      if (p0 < p1) own = {k_part(i, p0).lo, k_part(i, p1 - 1).hi};
    } else {
      own = share_of(params_[kp].rows, st.ith, st.nth);
    }
    const size_t stride = sparse_touched_.size() / nodes_.size();
    std::vector<int64_t>& touched = sparse_touched_[static_cast<size_t>(i) * stride + st.ith];
    // Last step's rows back to zero: those listed, or the whole owned range when a regularizer
    // adds to every row or last step wrote more rows (with repeats) than the range holds.
    const int64_t span = own.hi - own.lo;
    if (params_[kp].regularized() || (touched.size() == 1 && touched[0] == kWholeRange)) {
      std::fill(g + own.lo * units, g + own.hi * units, 0.0f);
    } else {
      for (int64_t c : touched) std::fill(g + c * units, g + (c + 1) * units, 0.0f);
    }
    touched.clear();
    bool listing = true;
    std::vector<int64_t>& list = sparse_lists_[st.ith];  // a row's entries in range
    const ElementwiseKernels* ek = elementwise_kernels();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = st.rows[r], e0 = sp.indptr[row], nnz = sp.indptr[row + 1] - e0;
      if (static_cast<int64_t>(list.size()) < nnz) list.resize(nnz);
      const int64_t count = ek->sparse_row_scatter(sp.indices + e0, sp.values + e0, nnz,
                                                   dy + r * units, g, units, own.lo, own.hi,
                                                   list.data());
      if (!listing) continue;
      if (static_cast<int64_t>(touched.size()) + count > span) {
        touched.assign(1, kWholeRange);
        listing = false;
        continue;
      }
      for (int64_t q = 0; q < count; ++q) touched.push_back(sp.indices[e0 + list[q]]);
    }
  }
  dense_bias_grad(st, i, dy, rows);
}

// Rows of a kernel (a cut kernel's block, or a whole kernel from row 0), updated by
// update_rows as their gradient GEMM finishes them.
struct Graph::BlockUpdate {
  Graph* graph;
  const Step* st;
  int p;          // the kernel parameter
  int64_t row0;   // the block's first row in the kernel
  int64_t cols;
  // The gradient GEMM's epilogue that hands its rows to update_rows.
  GemmEpilogue epilogue() {
    GemmEpilogue ep;
    ep.rows_done = update_rows;
    ep.rows_ctx = this;
    return ep;
  }
};

void Graph::update_rows(void* ctx, int64_t row0, int64_t rows, float* g, int64_t ldg) {
  const BlockUpdate& bu = *static_cast<const BlockUpdate*>(ctx);
  Graph& graph = *bu.graph;
  const Step& st = *bu.st;
  const double t0 = graph.profiling_ && st.ith == 0 ? now_seconds() : 0.0;
  const ParamSpec& ps = graph.params_[bu.p];
  const bool regularized = ps.regularized();
  // The rows are contiguous: the block's C and the GEMM's row buffer both have ld == cols.
  assert(ldg == bu.cols);
  (void)ldg;
  const int64_t lo = (bu.row0 + row0) * bu.cols;
  st.fused_reg += graph.update_share(st, static_cast<size_t>(bu.p),
                                     Share{lo, lo + rows * bu.cols}, regularized, true, g);
  graph.charge_time(st, t0, kProfOptimizer, kProfGemm);  // it ran inside the GEMM's time
}

// The kernel gradient of st.deferred, a Dense node whose backward left it for after the
// barrier that ended its input gradient product: every thread computes rows of it, each few
// rows handed to the optimizer as they finish (update_rows), never stored whole.
void Graph::deferred_kernel_update(const Step& st) {
  const int i = st.deferred;
  if (i < 0) return;
  st.deferred = -1;
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfElementwise], &prof_open_);
  const NodeSpec& node = nodes_[i];
  const int64_t last = node.last_dim, rows = st.batch * node.width / last;
  const int64_t in_last = nodes_[node.inputs[0]].last_dim;
  const int kp = node.params[0];
  BlockUpdate bu{this, &st, kp, 0, last};
  const GemmEpilogue ep = bu.epilogue();
  gemm(st, true, false, in_last, last, rows, out_[node.inputs[0]], in_last,
       grad_buf_[i].data(), last, 0.0f, param_grad(kp), last, &ep);
}

void Graph::backward_dense_split(const Step& st, int i) {
  const NodeSpec& node = nodes_[i];
  const int in = node.inputs[0];
  const int64_t in_last = nodes_[in].last_dim, units = node.last_dim, rows = st.batch;
  const int parts = ksplit_[i];
  const float* x = out_[in];
  float* dy = grad_buf_[i].data();
  const int kp = node.params[0];
  const bool want_w = param_grad_wanted(kp);
  bool acc_x = false;
  float* gx = requires_grad_[in] ? grad_buf_[in].data() : nullptr;
  if (gx) acc_x = accumulates(in, i, 0);
  int p0, p1;
  owned_parts(parts, st.ith, st.nth, &p0, &p1);
  for (int part = p0; part < p1; ++part) {
    const Share ks = k_part(i, part);
    if (gx) {  // first: the block of the kernel it reads may be updated just below
      const GemmEpilogue ep = input_grad_epilogue(i, ks.lo);
      local_gemm(st, false, true, rows, ks.hi - ks.lo, units, dy, units, param(i, 0) + ks.lo * units,
                 units, acc_x ? 1.0f : 0.0f, gx + ks.lo, in_last, &ep);
    }
    if (!want_w) continue;
    if (!update_in_backward_[kp]) {
      local_gemm(st, true, false, ks.hi - ks.lo, units, rows, x + ks.lo, in_last, dy, units,
                 param_first_writer_[kp] == i ? 0.0f : 1.0f, param_grad(kp) + ks.lo * units,
                 units);
      continue;
    }
    // The block's optimizer step, a few rows at a time as the GEMM finishes them (update_rows):
    // the gradient is consumed while in L1 and never stored (the thread's scratch backs the
    // products that cannot hand rows over without it).
    BlockUpdate bu{this, &st, kp, ks.lo, units};
    const GemmEpilogue ep = bu.epilogue();
    local_gemm(st, true, false, ks.hi - ks.lo, units, rows, x + ks.lo, in_last, dy, units, 0.0f,
               block_grad_[st.ith].data(), units, &ep);
  }
  dense_bias_grad(st, i, dy, rows);
}

// The outer groups of a pooling node's batch this thread reduces.
Share Graph::pool_share(const Step& st, int i) const {
  const NodeSpec& node = nodes_[i];
  const int64_t per_group = node.iattrs[1] * node.iattrs[2];
  return share_of(st.batch * node.iattrs[0], st.ith, st.nth,
                  std::max<int64_t>(1, kMinElementsPerThread / per_group));
}

// The ids (0: a masked step) of outer group g's sample of a masked pooling node, or nullptr.
const float* Graph::pool_mask(int i, int64_t g) const {
  const NodeSpec& node = nodes_[i];
  if (!pool_masked(node)) return nullptr;
  return out_[node.inputs[1]] + g / node.iattrs[0] * node.iattrs[1];
}

// Values [e0, e1) of node i's output gradient get its activity regularizer's:
// (l1·sign(y) + 2·l2·y) / batch size.
void Graph::add_activity_grad(const Step& st, int i, int64_t e0, int64_t e1) {
  const NodeSpec& node = nodes_[i];
  const float* y = out_[i];
  float* dy = grad_buf_[i].data();
  const float scale = 1.0f / static_cast<float>(st.batch);
  elementwise_kernels()->regularize(y + e0, dy + e0, e1 - e0, node.activity_l1 * scale,
                                    node.activity_l2 * scale, false, nullptr);
}

// Dense node i's bias gradient, the column sums of its dy (rows × units), each thread a share
// of the columns.
void Graph::dense_bias_grad(const Step& st, int i, const float* dy, int64_t rows, int slot) {
  const int bp = nodes_[i].params[slot];
  if (!param_grad_wanted(bp)) return;
  const int64_t units = nodes_[i].last_dim;
  const Share cs = share_of(units, st.ith, st.nth, 64, 16);
  if (cs.lo >= cs.hi) return;
  float* gb = param_grad(bp);
  if (param_first_writer_[bp] == i) std::fill(gb + cs.lo, gb + cs.hi, 0.0f);
  elementwise_kernels()->add_rows(dy + cs.lo, rows, cs.hi - cs.lo, units, nullptr, gb + cs.lo);
}

// Softmax or log_softmax over a middle axis: the output is (outer, len, inner) per sample and
// each (outer, inner) pair is normalised over len values inner apart. Forward when dy is
// nullptr (x → y); otherwise the backward from y and dy into gx.
void Graph::softmax_axis(const Step& st, int i, const float* x, const float* y, const float* dy,
                         float* gx, bool accumulate) {
  const NodeSpec& node = nodes_[i];
  const int64_t len = node.iattrs[1], inner = node.iattrs[2];
  const int64_t groups = st.batch * node.iattrs[0];
  const bool log = node.activation == Activation::kLogSoftmax;
  const Share gs = share_of(groups, st.ith, st.nth, 1);
  float* yo = out_buf_[i].data();
  const ElementwiseKernels* ek = elementwise_kernels();
  for (int64_t g = gs.lo; g < gs.hi; ++g) {
    const int64_t base = g * len * inner;
    if (dy == nullptr) {
      ek->softmax_cols(x + base, yo + base, len, inner, log);
    } else {
      ek->softmax_cols_jvp(y + base, dy + base, gx + base, len, inner, log, accumulate);
    }
  }
}

void Graph::backward_node(const Step& st, int i) {
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfElementwise], &prof_open_);
  const NodeSpec& node = nodes_[i];
  const int ith = st.ith, nth = st.nth;
  float* dy = grad_buf_[i].data();
  const int64_t w = node.width, last = node.last_dim;
  const int64_t n = st.batch * w, rows = n / last;
  const int in = node.inputs[0];
  const float* x = out_[in];
  const Share el = share_of(n, ith, nth, kMinElementsPerThread, 16);
  const Share rw = share_of(rows, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / last));
  // The gradient buffer of input slot s, or nullptr when that input takes none.
  auto target = [&](size_t s, bool* acc) -> float* {
    const int src = node.inputs[s];
    if (!requires_grad_[src]) return nullptr;
    *acc = accumulates(src, i, static_cast<int>(s));
    return grad_buf_[src].data();
  };
  bool acc = false;
  // An activity regularizer's gradient joins the output's before the node's own backward reads
  // it (Dense adds it in its row pass below).
  if (node.has_activity() && node.op != OpType::kDense) {
    if (el.lo < el.hi) add_activity_grad(st, i, el.lo, el.hi);
    barrier(st);
  }
  switch (node.op) {
    case OpType::kInput:
    case OpType::kTarget:
      return;
    case OpType::kDense: {
      const bool act_back = !fused_[i] && !dact_by_consumer_[i] &&
                            node.activation != Activation::kLinear;
      if (act_back || node.has_activity()) {
        if (rw.lo < rw.hi) {
          if (node.has_activity()) add_activity_grad(st, i, rw.lo * last, rw.hi * last);
          if (act_back)
            activation_backward(node.activation, node.act_params,
                                keeps_input_[i] ? pre_buf_[i].data() + rw.lo * last : nullptr,
                                out_[i] + rw.lo * last, dy + rw.lo * last, dy + rw.lo * last,
                                rw.hi - rw.lo, last);
        }
        barrier(st);
      }
      if (const int k = sparse_input_[i]; k >= 0) {
        backward_dense_sparse(st, i, static_cast<size_t>(k));
        return;
      }
      if (ksplit_[i] > 1) {
        backward_dense_split(st, i);
        return;
      }
      const int64_t in_last = nodes_[in].last_dim;
      const int kp = node.params[0];
      if (param_grad_wanted(kp) && update_in_backward_[kp]) {
        st.deferred = i;  // after the barrier that ends the input gradient, which reads kp
      } else if (param_grad_wanted(kp)) {
        gemm(st, true, false, in_last, last, rows, x, in_last, dy, last,
             param_first_writer_[kp] == i ? 0.0f : 1.0f, param_grad(kp), last);
      }
      dense_bias_grad(st, i, dy, rows);
      if (float* gx = target(0, &acc)) {
        const GemmEpilogue ep = input_grad_epilogue(i, 0);
        gemm(st, false, true, rows, in_last, last, dy, last, param(i, 0), last,
             acc ? 1.0f : 0.0f, gx, in_last, &ep);
      }
      return;
    }
    case OpType::kConv:
      backward_conv(st, i, rw);
      return;
    case OpType::kWindowPool:
      backward_window_pool(st, i);
      return;
    case OpType::kLSTM:
    case OpType::kGRU:
    case OpType::kSimpleRNN:
      backward_rnn(st, i);
      return;
    case OpType::kActivation: {
      float* gx = target(0, &acc);
      if (gx && !node.iattrs.empty()) {
        softmax_axis(st, i, nullptr, out_[i], dy, gx, acc);
        return;
      }
      if (!gx || rw.lo >= rw.hi) return;
      float* d = dy + rw.lo * last;
      if (!fused_[i]) {
        const bool need_x = activation_needs_input(node.activation, node.act_params);
        activation_backward(node.activation, node.act_params, need_x ? x + rw.lo * last : nullptr,
                            out_[i] + rw.lo * last, d, d, rw.hi - rw.lo, last);
      }
      put(gx + rw.lo * last, d, (rw.hi - rw.lo) * last, acc);
      return;
    }
    case OpType::kGaussianNoise:
      if (node.iattrs.size() > 1 && node.iattrs[1] != 0) {  // GaussianDropout: dy·(1 + s·n)
        float* gx = target(0, &acc);
        if (!gx) return;
        const float stddev = static_cast<float>(node.fattrs[0]);
        const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
        for_each_noise(seed, static_cast<uint64_t>(noise_key(st)), el.lo, el.hi,
                       [&](int64_t j, float n) {
                         const float v = dy[j] * (1.0f + stddev * n);
                         gx[j] = acc ? gx[j] + v : v;
                       });
        return;
      }
      [[fallthrough]];
    case OpType::kReshape:
      if (float* gx = target(0, &acc))
        if (el.lo < el.hi) put(gx + el.lo, dy + el.lo, el.hi - el.lo, acc);
      return;
    case OpType::kPReLU: {
      // d alpha: sums of dy·min(x, 0) over the batch, each thread a range of the alpha values,
      // samples in order; dx = dy where x > 0, alpha·dy where x < 0, 0 at 0 (relu's
      // derivative at 0 is 0, as in Keras).
      const int ap = node.params[0];
      const float* alpha = param(i, 0);
      const int64_t na = node.iattrs[0], n = st.batch * node.width;
      if (param_grad_wanted(ap)) {
        const Share as = share_of(na, ith, nth, 64, 16);
        if (as.lo < as.hi) {
          float* ga = param_grad(ap);
          if (param_first_writer_[ap] == i) std::fill(ga + as.lo, ga + as.hi, 0.0f);
          for (int64_t f0 = 0; f0 < n; f0 += na)
            for (int64_t a = as.lo; a < as.hi; ++a)
              ga[a] += dy[f0 + a] * std::min(x[f0 + a], 0.0f);
        }
      }
      if (float* gx = target(0, &acc)) {
        const float* al = periodic(na, 0, [&](int64_t c) { return alpha[c]; });
        const ElementwiseKernels* ek = elementwise_kernels();
        for_each_period_run(el.lo, el.hi, na, [&](int64_t base, int64_t a0, int64_t a1) {
          const int64_t e = base + a0;
          ek->prelu_grad(x + e, al + a0, dy + e, gx + e, a1 - a0, acc);
        });
      }
      return;
    }
    case OpType::kScaleBy: {
      // ds: column sums of dy·x, each thread its columns; dx = dy·s.
      const int sp = node.params[0];
      const float* sc = param(i, 0);
      if (param_grad_wanted(sp)) {
        const Share cs = share_of(last, ith, nth, 64, 16);
        if (cs.lo < cs.hi) {
          float* gs = param_grad(sp);
          if (param_first_writer_[sp] == i) std::fill(gs + cs.lo, gs + cs.hi, 0.0f);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = cs.lo; c < cs.hi; ++c) gs[c] += dy[r * last + c] * x[r * last + c];
        }
      }
      if (float* gx = target(0, &acc))
        for (int64_t r = rw.lo; r < rw.hi; ++r)
          for (int64_t c = 0; c < last; ++c) {
            const float v = dy[r * last + c] * sc[c];
            gx[r * last + c] = acc ? gx[r * last + c] + v : v;
          }
      return;
    }
    case OpType::kBiasAdd: {
      // db: column sums of dy (dense_bias_grad, each thread its columns); dx = dy.
      dense_bias_grad(st, i, dy, rows, 0);
      if (float* gx = target(0, &acc))
        if (el.lo < el.hi) put(gx + el.lo, dy + el.lo, el.hi - el.lo, acc);
      return;
    }
    case OpType::kCategorize: {
      // Not differentiable (Keras gives no gradient): an input that takes one gets zeros.
      float* gx = target(0, &acc);
      if (!gx || acc) return;
      const int64_t win = nodes_[in].width;
      const Share bs = share_of(st.batch, st.ith, st.nth);
      if (bs.lo < bs.hi) std::fill(gx + bs.lo * win, gx + bs.hi * win, 0.0f);
      return;
    }
    case OpType::kIndexMap: {
      // dx[m_j] += dy[j] for each sample, in j order (the same sums for any thread count).
      float* gx = target(0, &acc);
      if (!gx) return;
      const int64_t win = nodes_[in].width;
      const int64_t* map = node.iattrs.data();
      const Share bs = share_of(st.batch, st.ith, st.nth,
                                std::max<int64_t>(1, kMinElementsPerThread / w));
      for (int64_t r = bs.lo; r < bs.hi; ++r) {
        float* gr = gx + r * win;
        const float* dr = dy + r * w;
        if (!acc) std::fill(gr, gr + win, 0.0f);
        for (int64_t j = 0; j < w; ++j)
          if (map[j] >= 0) gr[map[j]] += dr[j];
      }
      return;
    }
    case OpType::kUnitNorm: {
      // y = x·n, n = ‖x‖^-1: dx = n·(dy - y·(y·dy)); where n is capped, dx = n·dy.
      float* gx = target(0, &acc);
      if (!gx) return;
      const float cap = static_cast<float>(node.fattrs[0]);
      const float* yv = out_[i];
      for (int64_t r = rw.lo; r < rw.hi; ++r) {
        const float *xr = x + r * last, *yr = yv + r * last, *dr = dy + r * last;
        float squares = 0.0f, ydy = 0.0f;
        for (int64_t j = 0; j < last; ++j) {
          squares += xr[j] * xr[j];
          ydy += yr[j] * dr[j];
        }
        const float inv = std::min(1.0f / std::sqrt(squares), cap);
        const bool capped = !(1.0f / std::sqrt(squares) < cap);
        float* gr = gx + r * last;
        for (int64_t j = 0; j < last; ++j) {
          const float v = inv * (capped ? dr[j] : dr[j] - yr[j] * ydy);
          gr[j] = acc ? gr[j] + v : v;
        }
      }
      return;
    }
    case OpType::kDot: {
      // d(a·c)/da = c; normalized, y = S·na·nc with n = min(‖v‖^-1, 1e7):
      // dy/da_j = nc·(c_j·na - S·na³·a_j), the second term only where na is not clamped.
      const int64_t d = node.iattrs[0];
      const bool normalize = node.iattrs[1] != 0;
      const Share bs = share_of(st.batch, ith, nth, std::max<int64_t>(1, kMinElementsPerThread / d));
      for (size_t s = 0; s < 2; ++s) {
        float* gx = target(s, &acc);
        if (!gx) continue;
        const float* self = out_[node.inputs[s]];
        const float* other = out_[node.inputs[1 - s]];
        for (int64_t b = bs.lo; b < bs.hi; ++b) {
          const float *sb = self + b * d, *ob = other + b * d;
          const DotSums sums = dot_sums(sb, ob, d);  // (ac: the dot, aa: self's, cc: other's)
          const float ns = normalize ? inverse_norm(sums.aa) : 1.0f;
          const float no = normalize ? inverse_norm(sums.cc) : 1.0f;
          const bool clamped = !(1.0f / std::sqrt(sums.aa) < 1e7f);
          const float self_term = normalize && !clamped ? sums.ac * ns * ns * ns : 0.0f;
          float* gb = gx + b * d;
          for (int64_t j = 0; j < d; ++j) {
            const float v = dy[b] * no * (ob[j] * ns - self_term * sb[j]);
            gb[j] = acc ? gb[j] + v : v;
          }
        }
      }
      return;
    }
    case OpType::kStandardize: {
      float* gx = target(0, &acc);
      if (!gx) return;
      const bool invert = node.iattrs[0] != 0;
      const int64_t f = node.iattrs[1];
      const float* __restrict b =
          standardize_values(node.params.empty() ? nullptr : param(i, 1), node.fattrs, f, true);
      for_each_period_run(el.lo, el.hi, f, [&](int64_t base, int64_t c0, int64_t c1) {
        const float* __restrict ds = dy + base;
        float* __restrict gs = gx + base;
        for (int64_t c = c0; c < c1; ++c) {
          const float v = invert ? ds[c] * b[c] : ds[c] / b[c];
          gs[c] = acc ? gs[c] + v : v;
        }
      });
      return;
    }
    case OpType::kDropout: {
      float* gx = target(0, &acc);
      if (!gx) return;
      const float rate = static_cast<float>(node.fattrs[0]);
      // (AlphaDropout's kept values are scaled by a)
      const float scale = node.fattrs.size() == 4 ? static_cast<float>(node.fattrs[1])
                                                  : 1.0f / (1.0f - rate);
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      if (node.iattrs.size() == 1) {  // no noise_shape (rate 0 keeps all: every u > 0)
        if (el.lo < el.hi)
          elementwise_kernels()->dropout(dy + el.lo, gx + el.lo, el.hi - el.lo, seed,
                                         static_cast<uint64_t>(noise_key(st)),
                                         static_cast<uint64_t>(el.lo), rate, scale, acc);
        return;
      }
      dropout_mask(st, i, el.lo, el.hi, [&](int64_t j, bool kept) {
        const float v = (rate == 0.0f || kept) ? dy[j] * scale : 0.0f;
        gx[j] = acc ? gx[j] + v : v;
      });
      return;
    }
    case OpType::kAdd:
    case OpType::kAverage:
    case OpType::kSubtract: {
      const float avg = node.op == OpType::kAverage ? 1.0f / node.inputs.size() : 1.0f;
      for (size_t s = 0; s < node.inputs.size(); ++s) {
        float* gx = target(s, &acc);
        if (!gx) continue;
        const float f = (node.op == OpType::kSubtract && s == 1) ? -1.0f : avg;
        for (int64_t j = el.lo; j < el.hi; ++j) gx[j] = (acc ? gx[j] : 0.0f) + f * dy[j];
      }
      return;
    }
    case OpType::kMultiply:
    case OpType::kMaximum:
    case OpType::kMinimum: {
      const size_t m = node.inputs.size();
      float* c = scratch_.data();
      for (size_t s = 0; s < m; ++s) {
        float* gx = target(s, &acc);
        if (!gx) continue;
        if (m == 2) {  // two inputs, the common case: loops that vectorise
          const float* __restrict a = out_[node.inputs[0]];
          const float* __restrict b = out_[node.inputs[1]];
          const float* __restrict d = dy;
          float* __restrict cs = c;
          if (node.op == OpType::kMultiply) {
            const float* __restrict other = s == 0 ? b : a;
            for (int64_t j = el.lo; j < el.hi; ++j) cs[j] = d[j] * other[j];
          } else if (el.lo < el.hi) {  // the second input only where it beats the first
            elementwise_kernels()->pick_grad(a + el.lo, b + el.lo, d + el.lo, cs + el.lo,
                                             el.hi - el.lo, node.op == OpType::kMaximum,
                                             s == 1);
          }
          if (el.lo < el.hi) put(gx + el.lo, c + el.lo, el.hi - el.lo, acc);
          continue;
        }
        for (int64_t j = el.lo; j < el.hi; ++j) {
          float v = dy[j];
          if (node.op == OpType::kMultiply) {
            for (size_t q = 0; q < m; ++q)
              if (q != s) v *= out_[node.inputs[q]][j];
          } else {
            // The gradient goes to the first input that holds the max (min).
            size_t arg = 0;
            for (size_t q = 1; q < m; ++q) {
              const float a = out_[node.inputs[q]][j], best = out_[node.inputs[arg]][j];
              if (node.op == OpType::kMaximum ? a > best : a < best) arg = q;
            }
            if (arg != s) v = 0.0f;
          }
          c[j] = v;
        }
        if (el.lo < el.hi) put(gx + el.lo, c + el.lo, el.hi - el.lo, acc);
      }
      return;
    }
    case OpType::kMath: {
      float* gx = target(0, &acc);
      if (gx == nullptr || el.lo >= el.hi) return;
      float* c = scratch_.data();
      math_backward(static_cast<MathOp>(node.iattrs[0]), static_cast<float>(node.fattrs[0]),
                    static_cast<float>(node.fattrs[1]), x + el.lo, out_[i] + el.lo, dy + el.lo,
                    c + el.lo, el.hi - el.lo);
      put(gx + el.lo, c + el.lo, el.hi - el.lo, acc);
      return;
    }
    case OpType::kArgReduce: {  // no gradient: an input that takes one gets zeros
      float* gx = target(0, &acc);
      if (!gx || acc || el.lo >= el.hi) return;
      const int64_t len = nodes_[in].last_dim;
      std::fill(gx + el.lo * len, gx + el.hi * len, 0.0f);
      return;
    }
    case OpType::kBatchReduce: {  // every input value gets Σ dy (over the count for a mean)
      float* gx = target(0, &acc);
      if (gx == nullptr) return;
      const int64_t count = st.batch * nodes_[in].width;
      double sum = 0.0;
      for (int64_t r = 0; r < st.batch; ++r) sum += dy[r];
      const float g = static_cast<float>(node.iattrs[0] == 0 ? sum / static_cast<double>(count)
                                                             : sum);
      for (int64_t j = 0; j < count; ++j) gx[j] = acc ? gx[j] + g : g;
      return;
    }
    case OpType::kRowBroadcast: {
      // d/dx0 = ±dy (mode 3: dy·x1, 4: dy / x1); d/dx1 = ±Σ_row dy (mode 3: Σ_row dy·x0,
      // 4: -Σ_row dy·y / x1)
      const float* b = out_[node.inputs[1]];
      const float* yv = out_[i];
      const int64_t mode = node.iattrs[0];
      float* c = scratch_.data();
      if (rw.lo >= rw.hi) return;
      if (float* gx = target(0, &acc)) {
        for (int64_t r = rw.lo; r < rw.hi; ++r)
          for (int64_t j = r * last; j < (r + 1) * last; ++j)
            c[j] = mode == 3 ? dy[j] * b[r] : mode == 4 ? dy[j] / b[r]
                 : mode == 2 ? -dy[j] : dy[j];
        put(gx + rw.lo * last, c + rw.lo * last, (rw.hi - rw.lo) * last, acc);
      }
      if (float* gx = target(1, &acc)) {  // (the row sums in this thread's own scratch)
        float* sums = float_scratch(rw.hi - rw.lo);
        for (int64_t r = rw.lo; r < rw.hi; ++r) {
          float sum = 0.0f;
          for (int64_t j = r * last; j < (r + 1) * last; ++j)
            sum += mode == 3 ? dy[j] * x[j] : mode == 4 ? dy[j] * yv[j] : dy[j];
          sums[r - rw.lo] = mode == 1 ? -sum : mode == 4 ? -sum / b[r] : sum;
        }
        put(gx + rw.lo, sums, rw.hi - rw.lo, acc);
      }
      return;
    }
    case OpType::kBatchMatMul: {
      // C = A'·B' (A' = op(A), B' = op(B)): dA' = dC·B'ᵀ, dB' = A'ᵀ·dC, each stored as its
      // input is (transposed back where that input was).
      const auto& ia = node.iattrs;
      const int64_t g = ia[0], m = ia[1], k = ia[2], nn = ia[3];
      const bool ta = ia[4] != 0, tb = ia[5] != 0;
      const float* a = out_[node.inputs[0]];
      const float* b = out_[node.inputs[1]];
      const Share ps = share_of(st.batch * g, ith, nth, 1);
      bool acc_b = false;
      float* ga = target(0, &acc);
      float* gb = target(1, &acc_b);
      for (int64_t p = ps.lo; p < ps.hi; ++p) {
        const float* dc = dy + p * m * nn;
        const float* ap = a + p * m * k;
        const float* bp = b + p * k * nn;
        if (ga != nullptr) {
          float* gp = ga + p * m * k;
          const float beta = acc ? 1.0f : 0.0f;
          if (!ta)  // dA (m × k) = dC·B'ᵀ
            local_gemm(st, false, !tb, m, k, nn, dc, nn, bp, tb ? k : nn, beta, gp, k);
          else  // dA (k × m) = B'·dCᵀ
            local_gemm(st, tb, true, k, m, nn, bp, tb ? k : nn, dc, nn, beta, gp, m);
        }
        if (gb != nullptr) {
          float* gp = gb + p * k * nn;
          const float beta = acc_b ? 1.0f : 0.0f;
          if (!tb)  // dB (k × n) = A'ᵀ·dC
            local_gemm(st, !ta, false, k, nn, m, ap, ta ? m : k, dc, nn, beta, gp, nn);
          else  // dB (n × k) = dCᵀ·A'
            local_gemm(st, true, ta, nn, k, m, dc, nn, ap, ta ? m : k, beta, gp, k);
        }
      }
      return;
    }
    case OpType::kModeSelect: {  // (backward runs in training: the first input was chosen)
      if (el.lo >= el.hi) return;
      if (float* gx = target(0, &acc)) put(gx + el.lo, dy + el.lo, el.hi - el.lo, acc);
      if (float* gx = target(1, &acc); gx != nullptr && !acc)
        std::fill(gx + el.lo, gx + el.hi, 0.0f);
      return;
    }
    case OpType::kDivide: {
      // d/dx0 = dy / x1; d/dx1 = -dy·y / x1
      const float* b = out_[node.inputs[1]];
      const float* yv = out_[i];
      float* c = scratch_.data();
      if (el.lo >= el.hi) return;
      if (float* gx = target(0, &acc)) {
        for (int64_t j = el.lo; j < el.hi; ++j) c[j] = dy[j] / b[j];
        put(gx + el.lo, c + el.lo, el.hi - el.lo, acc);
      }
      if (float* gx = target(1, &acc)) {
        for (int64_t j = el.lo; j < el.hi; ++j) c[j] = -dy[j] * yv[j] / b[j];
        put(gx + el.lo, c + el.lo, el.hi - el.lo, acc);
      }
      return;
    }
    case OpType::kPool: {
      float* gx = target(0, &acc);
      if (gx == nullptr) return;
      // The mean's gradient is dy / length everywhere; the max's goes to the values equal to
      // the maximum, shared equally between ties (as JAX's and TensorFlow's reductions).
      const int64_t len = node.iattrs[1], inner = node.iattrs[2];
      const bool max = node.iattrs[3] == 1, sum = node.iattrs[3] == 2;
      const float* yv = out_[i];
      const Share gs = pool_share(st, i);
      if (!max) {
        // The mean's: each group's dy/steps computed once, then written step after step.
        float* __restrict v = float_scratch(inner);
        for (int64_t g = gs.lo; g < gs.hi; ++g) {
          const float* keep = pool_mask(i, g);
          const float* dg = dy + g * inner;
          float steps = sum ? 1.0f : static_cast<float>(len);
          if (keep != nullptr) {
            steps = 0.0f;
            for (int64_t j = 0; j < len; ++j) steps += keep[j] != 0.0f ? 1.0f : 0.0f;
          }
          for (int64_t c = 0; c < inner; ++c) v[c] = dg[c] / steps;
          elementwise_kernels()->put_rows(v, len, inner, keep, gx + g * len * inner, acc);
        }
        return;
      }
      // The max's: each column's dy shared between the values equal to its maximum.
      for (int64_t g = gs.lo; g < gs.hi; ++g)
        elementwise_kernels()->max_rows_grad(x + g * len * inner, yv + g * inner, dy + g * inner,
                                             gx + g * len * inner, len, inner, acc);
      return;
    }
    case OpType::kConcatenate: {
      const int64_t blocks = node.iattrs[0];
      const int64_t block_w = w / blocks;
      const Share bl = share_of(st.batch * blocks, ith, nth, 8);
      int64_t col = 0;
      for (size_t s = 0; s < node.inputs.size(); ++s) {
        const int64_t iw = nodes_[node.inputs[s]].width / blocks;
        if (float* gx = target(s, &acc))
          for (int64_t r = bl.lo; r < bl.hi; ++r)
            put(gx + r * iw, dy + r * block_w + col, iw, acc);
        col += iw;
      }
      return;
    }
    case OpType::kBatchNorm:
    case OpType::kLayerNorm: {
      const bool bn = node.op == OpType::kBatchNorm;
      const float* gamma = param(i, 0);
      const float* stats = aux_buf_[i].data();
      // gamma and beta: sums over rows, each thread a range of features.
      const Share cs = share_of(last, ith, nth, 16, 16);
      const int gp = node.params[0], bp = node.params[1];
      float* gg = param_grad_wanted(gp) ? param_grad(gp) : nullptr;
      float* gb = param_grad_wanted(bp) ? param_grad(bp) : nullptr;
      if (gg && param_first_writer_[gp] == i) std::fill(gg + cs.lo, gg + cs.hi, 0.0f);
      if (gb && param_first_writer_[bp] == i) std::fill(gb + cs.lo, gb + cs.hi, 0.0f);
      float* gx = target(0, &acc);
      const int64_t w = cs.hi - cs.lo;
      if (bn) {
        // gamma's and beta's gradients, and each feature's sums over the rows in row order
        // (in double) for the input gradient; then every row's gradient from the features'
        // factors. (The gradients never overlap dy, x or the statistics.)
        const ElementwiseKernels* ek = elementwise_kernels();
        const float* mean = stats + cs.lo;
        const float* inv = stats + last + cs.lo;
        // (a frozen layer normalized by the moving statistics: its input gradient is dy·g)
        const bool frozen = batch_norm_frozen(node);
        double* sum_dy = gx && !frozen ? zeroed_doubles(2 * w) : nullptr;
        double* sum_dy_xhat = sum_dy ? sum_dy + w : nullptr;
        if (gg || gb || gx)
          ek->col_norm_grad_sums(dy + cs.lo, x + cs.lo, rows, last, w, mean, inv,
                                 gg ? gg + cs.lo : nullptr, gb ? gb + cs.lo : nullptr, sum_dy,
                                 sum_dy_xhat);
        if (!gx) return;
        float* g = float_scratch(3 * w);
        float* a = g + w;
        float* b = a + w;
        for (int64_t j = 0; j < w; ++j) {
          g[j] = (gamma ? gamma[cs.lo + j] : 1.0f) * inv[j];
          a[j] = frozen ? 0.0f : static_cast<float>(sum_dy[j] / rows);
          b[j] = frozen ? 0.0f : static_cast<float>(sum_dy_xhat[j] / rows);
        }
        ek->col_norm_backward(dy + cs.lo, x + cs.lo, gx + cs.lo, rows, last, w, mean, inv, g, a,
                              b, acc);
        return;
      }
      // layer normalization: each row's mean and 1/std in stats
      const ElementwiseKernels* ek = elementwise_kernels();
      if (gg || gb)
        ek->layer_norm_param_grads(dy + cs.lo, x + cs.lo, rows, last, w, stats,
                                   gg ? gg + cs.lo : nullptr, gb ? gb + cs.lo : nullptr);
      if (!gx) return;
      for (int64_t r = rw.lo; r < rw.hi; ++r)
        ek->layer_norm_row_backward(dy + r * last, x + r * last, gx + r * last, last, gamma,
                                    stats[2 * r], stats[2 * r + 1], acc,
                                    node.iattrs.empty() || node.iattrs[0] == 0);
      return;
    }
    case OpType::kEmbedding: {
      const int tp = node.params[0];
      if (!param_grad_wanted(tp)) return;
      // Each thread owns a range of the table's rows (whole rows, so no cache line of the
      // gradient is written by two threads, as it was when threads owned ranges of columns
      // of every row: 6x slower an epoch on two threads), and adds the rows of the ids that
      // fall in it, in batch order: every table value sums its terms in the same order for
      // any thread count.
      const int64_t table_rows = node.iattrs[0];
      const Share rs = share_of(table_rows, ith, nth, std::max<int64_t>(1, 64 / last));
      float* gt = param_grad(tp);
      if (param_first_writer_[tp] == i && rs.lo < rs.hi)
        std::fill(gt + rs.lo * last, gt + rs.hi * last, 0.0f);
      const int64_t ids = st.batch * nodes_[in].width;
      elementwise_kernels()->scatter_add_rows(dy, x, ids, last, rs.lo, rs.hi, gt,
                                              index_scratch(ids));
      return;
    }
  }
}

}  // namespace densitron
