// Graph executor: forward in node order, loss on the outputs, backward in reverse order with
// gradients summed where a node feeds several consumers, regularization, then one optimizer pass
// per parameter and its constraint. Buffers grow only when a larger batch arrives; a step
// allocates nothing. Random ops (Dropout, GaussianNoise) draw from a counter-based hash of
// (seed, step, element), so results do not depend on the thread count.
#include "densitron/graph.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "densitron/gemm.h"

namespace densitron {
namespace {

bool epilogue_for(Activation act, const ActivationParams& p, EpilogueAct* out) {
  switch (act) {
    case Activation::kLinear:
      *out = EpilogueAct::kNone;
      return true;
    case Activation::kRelu:
      *out = EpilogueAct::kRelu;
      return !activation_needs_input(act, p);
    case Activation::kSigmoid:
      *out = EpilogueAct::kSigmoid;
      return true;
    case Activation::kTanh:
      *out = EpilogueAct::kTanh;
      return true;
    default:
      return false;
  }
}

inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in (0, 1) from (seed, step, index).
inline float hash_uniform(uint64_t seed, uint64_t step, uint64_t index) {
  const uint64_t h = mix64(seed ^ mix64(step * 0x632be59bd9b4e019ull ^ mix64(index)));
  return (static_cast<float>(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void put(float* dst, const float* src, int64_t n, bool accumulate) {
  if (accumulate) {
    add_into(dst, src, n);
  } else {
    std::memcpy(dst, src, n * sizeof(float));
  }
}

bool is_merge(OpType op) {
  return op == OpType::kAdd || op == OpType::kSubtract || op == OpType::kMultiply ||
         op == OpType::kAverage || op == OpType::kMaximum || op == OpType::kMinimum;
}

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Adds the time of a scope to a profile slot when profiling is on (one clock read otherwise
// skipped entirely).
class ProfileScope {
 public:
  ProfileScope(bool on, double* slot) : slot_(on ? slot : nullptr), t0_(on ? now_seconds() : 0) {}
  ~ProfileScope() {
    if (slot_) *slot_ += now_seconds() - t0_;
  }

 private:
  double* slot_;
  double t0_;
};

}  // namespace

Graph::Graph(std::vector<NodeSpec> nodes, std::vector<ParamSpec> params, std::vector<int> inputs,
             std::vector<int> outputs)
    : nodes_(std::move(nodes)),
      params_(std::move(params)),
      inputs_(std::move(inputs)),
      outputs_(std::move(outputs)) {
  const int n = static_cast<int>(nodes_.size());
  const int np = static_cast<int>(params_.size());
  consumers_.assign(n, 0);
  auto param_size = [&](int p) -> int64_t {
    if (p < 0 || p >= np) bad("parameter index out of range");
    return params_[p].size;
  };
  for (int i = 0; i < n; ++i) {
    NodeSpec& node = nodes_[i];
    if (node.width <= 0) bad("node width must be positive");
    if (node.last_dim <= 0) node.last_dim = node.width;
    if (node.width % node.last_dim != 0) bad("last_dim must divide width");
    for (int in : node.inputs) {
      if (in < 0 || in >= i) bad("nodes must be in topological order");
      consumers_[in]++;
    }
    const NodeSpec* in0 = node.inputs.empty() ? nullptr : &nodes_[node.inputs[0]];
    auto need_inputs = [&](size_t lo) {
      if (node.inputs.size() < lo) bad("node has too few inputs");
    };
    switch (node.op) {
      case OpType::kInput:
        if (!node.inputs.empty()) bad("input node with inputs");
        break;
      case OpType::kDense: {
        need_inputs(1);
        if (node.params.size() != 2) bad("Dense needs kernel and bias slots");
        const int64_t in_last = in0->last_dim;
        if (param_size(node.params[0]) != in_last * node.last_dim) bad("Dense kernel size");
        if (node.params[1] >= 0 && param_size(node.params[1]) != node.last_dim)
          bad("Dense bias size");
        if (in0->width / in_last * node.last_dim != node.width) bad("Dense output width");
        break;
      }
      case OpType::kActivation:
      case OpType::kDropout:
      case OpType::kGaussianNoise:
      case OpType::kReshape:
        need_inputs(1);
        if (in0->width != node.width) bad("elementwise node width mismatch");
        if ((node.op == OpType::kDropout || node.op == OpType::kGaussianNoise) &&
            (node.fattrs.size() != 1 || node.iattrs.size() != 1))
          bad("Dropout/GaussianNoise attributes");
        if (node.op == OpType::kDropout && !(node.fattrs[0] >= 0.0 && node.fattrs[0] < 1.0))
          bad("Dropout rate must be in [0, 1)");
        break;
      case OpType::kBatchNorm:
      case OpType::kLayerNorm: {
        need_inputs(1);
        if (in0->width != node.width) bad("normalization width mismatch");
        const bool bn = node.op == OpType::kBatchNorm;
        if (node.params.size() != (bn ? 4u : 2u) || node.fattrs.size() != (bn ? 2u : 1u))
          bad("normalization attributes");
        for (size_t s = 0; s < node.params.size(); ++s) {
          if (node.params[s] < 0 && s >= 2) bad("BatchNormalization needs moving statistics");
          if (node.params[s] >= 0 && param_size(node.params[s]) != node.last_dim)
            bad("normalization parameter size");
        }
        break;
      }
      case OpType::kAdd:
      case OpType::kSubtract:
      case OpType::kMultiply:
      case OpType::kAverage:
      case OpType::kMaximum:
      case OpType::kMinimum:
        need_inputs(node.op == OpType::kSubtract ? 2 : 1);
        if (node.op == OpType::kSubtract && node.inputs.size() != 2) bad("Subtract takes two");
        for (int in : node.inputs)
          if (nodes_[in].width != node.width) bad("merge width mismatch");
        break;
      case OpType::kConcatenate: {
        need_inputs(1);
        if (node.iattrs.size() != 1 || node.iattrs[0] < 1) bad("Concatenate attributes");
        int64_t total = 0;
        for (int in : node.inputs) {
          if (nodes_[in].width % node.iattrs[0] != 0) bad("Concatenate block mismatch");
          total += nodes_[in].width;
        }
        if (total != node.width) bad("Concatenate width mismatch");
        break;
      }
      case OpType::kEmbedding:
        need_inputs(1);
        if (node.params.size() != 1 || node.iattrs.size() != 1) bad("Embedding attributes");
        if (param_size(node.params[0]) != node.iattrs[0] * node.last_dim)
          bad("Embedding table size");
        if (in0->width * node.last_dim != node.width) bad("Embedding output width");
        break;
    }
  }
  for (int i : inputs_)
    if (i < 0 || i >= n || nodes_[i].op != OpType::kInput) bad("graph inputs must be inputs");
  for (int o : outputs_)
    if (o < 0 || o >= n) bad("graph output out of range");
  out_buf_.resize(n);
  grad_buf_.resize(n);
  pre_buf_.resize(n);
  aux_buf_.resize(n);
  out_.assign(n, nullptr);
  grad_ready_.assign(n, false);
  fused_.assign(n, false);
  requires_grad_.assign(n, false);
  keeps_input_.assign(n, false);
  for (int i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    keeps_input_[i] = node.op == OpType::kDense &&
                      activation_needs_input(node.activation, node.act_params);
  }
  int64_t total = 0;
  grad_offset_.resize(params_.size());
  for (size_t p = 0; p < params_.size(); ++p) {
    grad_offset_[p] = total;
    total += params_[p].size;
  }
  grads_.assign(total, 0.0f);
  param_grad_ready_.assign(params_.size(), false);
}

int Graph::num_metrics() const {
  int count = 0;
  for (const OutputSpec& o : output_specs_) count += static_cast<int>(o.metrics.size());
  return count;
}

void Graph::compile(std::vector<OutputSpec> outputs, const OptimizerConfig& optimizer,
                    std::vector<bool> trainable) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (outputs.size() != outputs_.size()) bad("one output spec per model output is required");
  if (trainable.size() != params_.size()) bad("one trainable flag per parameter is required");
  for (size_t k = 0; k < outputs.size(); ++k) {
    const NodeSpec& node = nodes_[outputs_[k]];
    const int64_t sub_rows = node.width / node.last_dim;
    if (outputs[k].node != outputs_[k]) bad("output spec order");
    const bool sparse = outputs[k].loss == Loss::kSparseCategoricalCrossentropy;
    if (outputs[k].target_width != (sparse ? sub_rows : node.width)) bad("target width");
  }
  output_specs_ = std::move(outputs);
  optimizer_ = optimizer;
  for (size_t p = 0; p < params_.size(); ++p) params_[p].trainable = trainable[p];
  // requires_grad: some trainable parameter lies at or before the node.
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& node = nodes_[i];
    bool rg = false;
    for (int in : node.inputs) rg = rg || requires_grad_[in];
    if (node.op != OpType::kBatchNorm) {
      for (int p : node.params) rg = rg || (p >= 0 && params_[p].trainable);
    } else {
      for (int s = 0; s < 2; ++s) rg = rg || (node.params[s] >= 0 && params_[node.params[s]].trainable);
    }
    requires_grad_[i] = rg;
  }
  // A softmax (sigmoid) output read by nothing else hands the loss gradient straight to its
  // logits: the cross-entropy and the activation's Jacobian collapse to p - y.
  std::fill(fused_.begin(), fused_.end(), false);
  std::vector<int> loss_count(nodes_.size(), 0);
  for (const OutputSpec& o : output_specs_) loss_count[o.node]++;
  for (const OutputSpec& o : output_specs_) {
    const NodeSpec& node = nodes_[o.node];
    if (consumers_[o.node] != 0 || loss_count[o.node] != 1) continue;
    if (node.op != OpType::kDense && node.op != OpType::kActivation) continue;
    const bool categorical = o.loss == Loss::kCategoricalCrossentropy ||
                             o.loss == Loss::kSparseCategoricalCrossentropy;
    if ((categorical && node.activation == Activation::kSoftmax) ||
        (o.loss == Loss::kBinaryCrossentropy && node.activation == Activation::kSigmoid))
      fused_[o.node] = true;
  }
  slot_count_ = optimizer_slot_count(optimizer_);
  slots_.assign(static_cast<size_t>(slot_count_) * grads_.size(), 0.0f);
  iterations_ = 0;
  target_buf_.assign(output_specs_.size(), {});
  target_.assign(output_specs_.size(), nullptr);
  capacity_ = 0;  // target buffers are sized with the node buffers
  compiled_ = true;
}

void Graph::ensure_capacity(int64_t rows) {
  if (rows <= capacity_) return;
  int64_t scratch = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& node = nodes_[i];
    const int64_t n = rows * node.width;
    out_buf_[i].resize(n);
    if (node.op != OpType::kInput) grad_buf_[i].resize(n);
    if (keeps_input_[i]) pre_buf_[i].resize(n);
    if (node.op == OpType::kBatchNorm) {
      aux_buf_[i].resize(2 * node.last_dim);
      dscratch_.resize(std::max<size_t>(dscratch_.size(), 2 * node.last_dim));
    }
    if (node.op == OpType::kLayerNorm) aux_buf_[i].resize(2 * rows * node.width / node.last_dim);
    if (is_merge(node.op) || node.op == OpType::kActivation) scratch = std::max(scratch, n);
  }
  scratch_.resize(scratch);
  for (size_t k = 0; k < output_specs_.size(); ++k)
    target_buf_[k].resize(rows * output_specs_[k].target_width);
  capacity_ = rows;
}

void Graph::bind_inputs(const std::vector<const float*>& x, const int64_t* rows_idx,
                        int64_t start, int64_t count) {
  ProfileScope scope(profiling_, &prof_[kProfGather]);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const int node = inputs_[k];
    const int64_t w = nodes_[node].width;
    if (rows_idx == nullptr) {  // contiguous rows: read the caller's array in place
      out_[node] = x[k] + start * w;
      continue;
    }
    float* buf = out_buf_[node].data();
    for (int64_t r = 0; r < count; ++r)
      std::memcpy(buf + r * w, x[k] + rows_idx[start + r] * w, w * sizeof(float));
    out_[node] = buf;
  }
}

void Graph::prefetch_rows(const DataRefs& data, const int64_t* rows_idx, int64_t start,
                          int64_t count) {
  // Random rows of a large array miss every cache level; asking for the next batch's rows
  // while this one computes hides most of that latency.
  if (rows_idx == nullptr || count <= 0) return;
  ProfileScope scope(profiling_, &prof_[kProfGather]);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const int64_t bytes = nodes_[inputs_[k]].width * static_cast<int64_t>(sizeof(float));
    for (int64_t r = 0; r < count; ++r) {
      const char* row = reinterpret_cast<const char*>(data.x[k] + rows_idx[start + r] *
                                                      nodes_[inputs_[k]].width);
      for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 2);
    }
  }
}

void Graph::gather_targets(const DataRefs& data, int k, const int64_t* rows_idx, int64_t start,
                           int64_t batch) {
  const int64_t w = output_specs_[k].target_width;
  if (rows_idx == nullptr) {
    target_[k] = data.y[k] + start * w;
    return;
  }
  float* buf = target_buf_[k].data();
  for (int64_t r = 0; r < batch; ++r)
    std::memcpy(buf + r * w, data.y[k] + rows_idx[start + r] * w, w * sizeof(float));
  target_[k] = buf;
}

void Graph::reset_profile() {
  for (double& v : prof_) v = 0.0;
}

std::vector<double> Graph::profile() const { return std::vector<double>(prof_, prof_ + kProfCount); }

void Graph::gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                 const GemmEpilogue* ep) {
  // GEMM time is moved from the enclosing node's elementwise slot to the GEMM slot.
  const double t0 = profiling_ ? now_seconds() : 0.0;
  sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc, ep ? *ep : GemmEpilogue());
  if (profiling_) {
    const double dt = now_seconds() - t0;
    prof_[kProfGemm] += dt;
    prof_[kProfElementwise] -= dt;
  }
}

float* Graph::param(int node, int slot) const {
  const int p = nodes_[node].params[slot];
  return p >= 0 ? params_[p].data : nullptr;
}

void Graph::check_embedding_ids(int64_t batch) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& node = nodes_[i];
    if (node.op != OpType::kEmbedding) continue;
    const float* ids = out_[node.inputs[0]];
    const int64_t n = batch * nodes_[node.inputs[0]].width;
    const float limit = static_cast<float>(node.iattrs[0]);
    for (int64_t j = 0; j < n; ++j) {
      const float v = ids[j];
      if (!(v >= 0.0f && v < limit) || v != std::floor(v))
        bad("Embedding ids must be integers in [0, input_dim=" + std::to_string(node.iattrs[0]) +
            "). Received: " + std::to_string(v));
    }
  }
}

void Graph::forward(int64_t batch, bool training) {
  check_embedding_ids(batch);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].op == OpType::kInput) continue;  // bound by bind_inputs
    forward_node(static_cast<int>(i), batch, training);
  }
}

void Graph::forward_node(int i, int64_t batch, bool training) {
  ProfileScope scope(profiling_, &prof_[kProfElementwise]);
  const NodeSpec& node = nodes_[i];
  float* y = out_buf_[i].data();
  const int64_t w = node.width, last = node.last_dim;
  const int64_t n = batch * w, rows = n / last;
  const float* x = out_[node.inputs[0]];
  switch (node.op) {
    case OpType::kInput:
      return;
    case OpType::kDense: {
      const int64_t in_last = nodes_[node.inputs[0]].last_dim;
      GemmEpilogue ep;
      ep.bias = param(i, 1);
      EpilogueAct fused_act;
      const bool fusable = epilogue_for(node.activation, node.act_params, &fused_act);
      if (keeps_input_[i]) {
        float* z = pre_buf_[i].data();
        gemm(false, false, rows, last, in_last, x, in_last, param(i, 0), last, 0.0f, z, last,
             &ep);
        activation_forward(node.activation, node.act_params, z, y, rows, last);
      } else {
        if (fusable) ep.act = fused_act;
        gemm(false, false, rows, last, in_last, x, in_last, param(i, 0), last, 0.0f, y, last,
             &ep);
        if (!fusable) activation_forward(node.activation, node.act_params, y, y, rows, last);
      }
      break;
    }
    case OpType::kActivation:
      activation_forward(node.activation, node.act_params, x, y, rows, last);
      break;
    case OpType::kReshape:
      out_[i] = x;
      return;
    case OpType::kDropout: {
      const float rate = static_cast<float>(node.fattrs[0]);
      if (!training || rate == 0.0f) {
        out_[i] = x;
        return;
      }
      const float scale = 1.0f / (1.0f - rate);
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      for (int64_t j = 0; j < n; ++j)
        y[j] = hash_uniform(seed, iterations_, j) >= rate ? x[j] * scale : 0.0f;
      break;
    }
    case OpType::kGaussianNoise: {
      const float stddev = static_cast<float>(node.fattrs[0]);
      if (!training || stddev == 0.0f) {
        out_[i] = x;
        return;
      }
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      for (int64_t j = 0; j < n; ++j) {
        const float u1 = hash_uniform(seed, iterations_, 2 * j);
        const float u2 = hash_uniform(seed, iterations_, 2 * j + 1);
        const float z = std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
        y[j] = x[j] + stddev * z;
      }
      break;
    }
    case OpType::kAdd:
    case OpType::kAverage:
      std::memcpy(y, x, n * sizeof(float));
      for (size_t k = 1; k < node.inputs.size(); ++k) add_into(y, out_[node.inputs[k]], n);
      if (node.op == OpType::kAverage) {
        const float inv = 1.0f / static_cast<float>(node.inputs.size());
        for (int64_t j = 0; j < n; ++j) y[j] *= inv;
      }
      break;
    case OpType::kSubtract: {
      const float* b = out_[node.inputs[1]];
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] - b[j];
      break;
    }
    case OpType::kMultiply:
    case OpType::kMaximum:
    case OpType::kMinimum:
      std::memcpy(y, x, n * sizeof(float));
      for (size_t k = 1; k < node.inputs.size(); ++k) {
        const float* b = out_[node.inputs[k]];
        if (node.op == OpType::kMultiply) {
          for (int64_t j = 0; j < n; ++j) y[j] *= b[j];
        } else if (node.op == OpType::kMaximum) {
          for (int64_t j = 0; j < n; ++j) y[j] = b[j] > y[j] ? b[j] : y[j];
        } else {
          for (int64_t j = 0; j < n; ++j) y[j] = b[j] < y[j] ? b[j] : y[j];
        }
      }
      break;
    case OpType::kConcatenate: {
      const int64_t blocks = node.iattrs[0];
      const int64_t block_w = w / blocks;
      int64_t col = 0;
      for (int in : node.inputs) {
        const int64_t iw = nodes_[in].width / blocks;
        const float* src = out_[in];
        for (int64_t r = 0; r < batch * blocks; ++r)
          std::memcpy(y + r * block_w + col, src + r * iw, iw * sizeof(float));
        col += iw;
      }
      break;
    }
    case OpType::kBatchNorm: {
      const float* gamma = param(i, 0);
      const float* beta = param(i, 1);
      float* mm = param(i, 2);
      float* mv = param(i, 3);
      const float eps = static_cast<float>(node.fattrs[1]);
      float* mean = aux_buf_[i].data();
      float* inv = mean + last;
      if (training) {
        double* sum = dscratch_.data();
        double* sq = sum + last;
        std::fill(sum, sum + 2 * last, 0.0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < last; ++c) sum[c] += x[r * last + c];
        for (int64_t c = 0; c < last; ++c) mean[c] = static_cast<float>(sum[c] / rows);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < last; ++c) {
            const double d = x[r * last + c] - mean[c];
            sq[c] += d * d;
          }
        const float momentum = static_cast<float>(node.fattrs[0]);
        for (int64_t c = 0; c < last; ++c) {
          const float var = static_cast<float>(sq[c] / rows);
          inv[c] = 1.0f / std::sqrt(var + eps);
          if (update_stats_) {
            mm[c] = mm[c] * momentum + mean[c] * (1.0f - momentum);
            mv[c] = mv[c] * momentum + var * (1.0f - momentum);
          }
        }
      } else {
        for (int64_t c = 0; c < last; ++c) {
          mean[c] = mm[c];
          inv[c] = 1.0f / std::sqrt(mv[c] + eps);
        }
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < last; ++c) {
          float v = (x[r * last + c] - mean[c]) * inv[c];
          if (gamma) v *= gamma[c];
          if (beta) v += beta[c];
          y[r * last + c] = v;
        }
      break;
    }
    case OpType::kLayerNorm: {
      const float* gamma = param(i, 0);
      const float* beta = param(i, 1);
      const float eps = static_cast<float>(node.fattrs[0]);
      float* stats = aux_buf_[i].data();
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * last;
        double sum = 0.0, sq = 0.0;
        for (int64_t c = 0; c < last; ++c) sum += xr[c];
        const double mean = sum / last;
        for (int64_t c = 0; c < last; ++c) sq += (xr[c] - mean) * (xr[c] - mean);
        const float m = static_cast<float>(mean);
        const float inv = 1.0f / std::sqrt(static_cast<float>(sq / last) + eps);
        stats[2 * r] = m;
        stats[2 * r + 1] = inv;
        float* yr = y + r * last;
        for (int64_t c = 0; c < last; ++c) {
          float v = (xr[c] - m) * inv;
          if (gamma) v *= gamma[c];
          if (beta) v += beta[c];
          yr[c] = v;
        }
      }
      break;
    }
    case OpType::kEmbedding: {
      const float* table = param(i, 0);
      const int64_t ids = batch * nodes_[node.inputs[0]].width;
      for (int64_t j = 0; j < ids; ++j)
        std::memcpy(y + j * last, table + static_cast<int64_t>(x[j]) * last, last * sizeof(float));
      break;
    }
  }
  out_[i] = y;
}

double Graph::loss_and_grad(const DataRefs& data, const int64_t* rows_idx, int64_t start,
                            int64_t batch, double* output_losses, bool with_grad) {
  double total = 0.0;
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const OutputSpec& o = output_specs_[k];
    const NodeSpec& node = nodes_[o.node];
    const int64_t sub_rows = node.width / node.last_dim;  // loss rows per sample
    {
      ProfileScope scope(profiling_, &prof_[kProfGather]);
      gather_targets(data, static_cast<int>(k), rows_idx, start, batch);
    }
    ProfileScope scope(profiling_, &prof_[kProfLoss]);
    float* g = nullptr;
    if (with_grad) {
      g = grad_buf_[o.node].data();
      grad_ready_[o.node] = true;
    }
    const double rows = static_cast<double>(batch * sub_rows);
    const double sum = loss_forward_backward(o.loss, out_[o.node], target_[k], batch * sub_rows,
                                             node.last_dim, g, rows / o.loss_weight,
                                             fused_[o.node]) /
                       static_cast<double>(sub_rows);
    output_losses[k] += sum;
    total += o.loss_weight * sum;
  }
  return total;
}

void Graph::metrics(int64_t batch, double* sums) {
  ProfileScope scope(profiling_, &prof_[kProfLoss]);
  int m = 0;
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const OutputSpec& o = output_specs_[k];
    const NodeSpec& node = nodes_[o.node];
    const int64_t sub_rows = node.width / node.last_dim;
    const int64_t rows = batch * sub_rows, cols = node.last_dim;
    for (const MetricSpec& spec : o.metrics) {
      const double s = spec.is_accuracy
                           ? accuracy_sum(spec.accuracy, out_[o.node], target_[k], rows, cols,
                                          spec.threshold)
                           : loss_forward_backward(spec.loss, out_[o.node], target_[k], rows,
                                                   cols, nullptr, 1.0, false);
      sums[m++] += s / static_cast<double>(sub_rows);
    }
  }
}

float* Graph::grad_target(int in, bool* accumulate) {
  if (!requires_grad_[in]) return nullptr;
  *accumulate = grad_ready_[in];
  grad_ready_[in] = true;
  return grad_buf_[in].data();
}

float* Graph::param_grad(int p, bool* accumulate) {
  if (p < 0 || !params_[p].trainable) return nullptr;
  *accumulate = param_grad_ready_[p];
  param_grad_ready_[p] = true;
  return grads_.data() + grad_offset_[p];
}

void Graph::backward(int64_t batch) {
  std::fill(param_grad_ready_.begin(), param_grad_ready_.end(), false);
  for (int i = static_cast<int>(nodes_.size()) - 1; i >= 0; --i) {
    if (!grad_ready_[i] || nodes_[i].op == OpType::kInput) continue;
    backward_node(i, batch);
  }
}

void Graph::backward_node(int i, int64_t batch) {
  ProfileScope scope(profiling_, &prof_[kProfElementwise]);
  const NodeSpec& node = nodes_[i];
  float* dy = grad_buf_[i].data();
  const int64_t w = node.width, last = node.last_dim;
  const int64_t n = batch * w, rows = n / last;
  const int in = node.inputs[0];
  const float* x = out_[in];
  bool acc = false;
  switch (node.op) {
    case OpType::kInput:
      return;
    case OpType::kDense: {
      if (!fused_[i])
        activation_backward(node.activation, node.act_params,
                            keeps_input_[i] ? pre_buf_[i].data() : nullptr, out_[i], dy, dy,
                            rows, last);
      const int64_t in_last = nodes_[in].last_dim;
      if (float* gw = param_grad(node.params[0], &acc))
        gemm(true, false, in_last, last, rows, x, in_last, dy, last, acc ? 1.0f : 0.0f, gw,
             last);
      if (float* gb = param_grad(node.params[1], &acc)) column_sums(dy, rows, last, gb, acc);
      if (float* gx = grad_target(in, &acc))
        gemm(false, true, rows, in_last, last, dy, last, param(i, 0), last, acc ? 1.0f : 0.0f,
             gx, in_last);
      return;
    }
    case OpType::kActivation: {
      if (!requires_grad_[in]) return;
      if (!fused_[i]) {
        const bool need_x = activation_needs_input(node.activation, node.act_params);
        activation_backward(node.activation, node.act_params, need_x ? x : nullptr, out_[i], dy,
                            dy, rows, last);
      }
      float* gx = grad_target(in, &acc);
      put(gx, dy, n, acc);
      return;
    }
    case OpType::kReshape:
    case OpType::kGaussianNoise:
      if (float* gx = grad_target(in, &acc)) put(gx, dy, n, acc);
      return;
    case OpType::kDropout: {
      float* gx = grad_target(in, &acc);
      if (!gx) return;
      const float rate = static_cast<float>(node.fattrs[0]);
      const float scale = 1.0f / (1.0f - rate);
      const uint64_t seed = static_cast<uint64_t>(node.iattrs[0]);
      for (int64_t j = 0; j < n; ++j) {
        const float v = (rate == 0.0f || hash_uniform(seed, iterations_, j) >= rate)
                            ? dy[j] * scale : 0.0f;
        gx[j] = acc ? gx[j] + v : v;
      }
      return;
    }
    case OpType::kAdd:
    case OpType::kAverage: {
      const float s = node.op == OpType::kAverage ? 1.0f / node.inputs.size() : 1.0f;
      for (int k : node.inputs) {
        float* gx = grad_target(k, &acc);
        if (!gx) continue;
        for (int64_t j = 0; j < n; ++j) gx[j] = (acc ? gx[j] : 0.0f) + s * dy[j];
      }
      return;
    }
    case OpType::kSubtract: {
      if (float* gx = grad_target(node.inputs[0], &acc)) put(gx, dy, n, acc);
      if (float* gx = grad_target(node.inputs[1], &acc))
        for (int64_t j = 0; j < n; ++j) gx[j] = (acc ? gx[j] : 0.0f) - dy[j];
      return;
    }
    case OpType::kMultiply:
    case OpType::kMaximum:
    case OpType::kMinimum: {
      const size_t m = node.inputs.size();
      for (size_t k = 0; k < m; ++k) {
        float* gx = grad_target(node.inputs[k], &acc);
        if (!gx) continue;
        float* c = scratch_.data();
        if (node.op == OpType::kMultiply) {
          std::memcpy(c, dy, n * sizeof(float));
          for (size_t q = 0; q < m; ++q) {
            if (q == k) continue;
            const float* b = out_[node.inputs[q]];
            for (int64_t j = 0; j < n; ++j) c[j] *= b[j];
          }
        } else {
          // The gradient goes to the first input that holds the max (min).
          for (int64_t j = 0; j < n; ++j) {
            size_t arg = 0;
            for (size_t q = 1; q < m; ++q) {
              const float v = out_[node.inputs[q]][j], best = out_[node.inputs[arg]][j];
              if (node.op == OpType::kMaximum ? v > best : v < best) arg = q;
            }
            c[j] = arg == k ? dy[j] : 0.0f;
          }
        }
        put(gx, c, n, acc);
      }
      return;
    }
    case OpType::kConcatenate: {
      const int64_t blocks = node.iattrs[0];
      const int64_t block_w = w / blocks;
      int64_t col = 0;
      for (int k : node.inputs) {
        const int64_t iw = nodes_[k].width / blocks;
        if (float* gx = grad_target(k, &acc))
          for (int64_t r = 0; r < batch * blocks; ++r)
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
      auto mean_of = [&](int64_t r, int64_t c) { return bn ? stats[c] : stats[2 * r]; };
      auto inv_of = [&](int64_t r, int64_t c) { return bn ? stats[last + c] : stats[2 * r + 1]; };
      bool acc_g = false, acc_b = false;
      float* gg = param_grad(node.params[0], &acc_g);
      float* gb = param_grad(node.params[1], &acc_b);
      if (gg && !acc_g) std::fill(gg, gg + last, 0.0f);
      if (gb && !acc_b) std::fill(gb, gb + last, 0.0f);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < last; ++c) {
          const float xhat = (x[r * last + c] - mean_of(r, c)) * inv_of(r, c);
          if (gg) gg[c] += dy[r * last + c] * xhat;
          if (gb) gb[c] += dy[r * last + c];
        }
      float* gx = grad_target(in, &acc);
      if (!gx) return;
      if (bn) {
        double* sum_dy = dscratch_.data();
        double* sum_dy_xhat = sum_dy + last;
        std::fill(sum_dy, sum_dy + 2 * last, 0.0);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < last; ++c) {
            const float d = dy[r * last + c];
            sum_dy[c] += d;
            sum_dy_xhat[c] += d * (x[r * last + c] - stats[c]) * stats[last + c];
          }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < last; ++c) {
            const float xhat = (x[r * last + c] - stats[c]) * stats[last + c];
            const float g = gamma ? gamma[c] : 1.0f;
            const float v = g * stats[last + c] *
                            (dy[r * last + c] - static_cast<float>(sum_dy[c] / rows) -
                             xhat * static_cast<float>(sum_dy_xhat[c] / rows));
            gx[r * last + c] = acc ? gx[r * last + c] + v : v;
          }
      } else {
        for (int64_t r = 0; r < rows; ++r) {
          const float m = stats[2 * r], inv = stats[2 * r + 1];
          double s1 = 0.0, s2 = 0.0;
          for (int64_t c = 0; c < last; ++c) {
            const float dxhat = dy[r * last + c] * (gamma ? gamma[c] : 1.0f);
            s1 += dxhat;
            s2 += dxhat * (x[r * last + c] - m) * inv;
          }
          const float a = static_cast<float>(s1 / last), b = static_cast<float>(s2 / last);
          for (int64_t c = 0; c < last; ++c) {
            const float xhat = (x[r * last + c] - m) * inv;
            const float dxhat = dy[r * last + c] * (gamma ? gamma[c] : 1.0f);
            const float v = inv * (dxhat - a - xhat * b);
            gx[r * last + c] = acc ? gx[r * last + c] + v : v;
          }
        }
      }
      return;
    }
    case OpType::kEmbedding: {
      float* gt = param_grad(node.params[0], &acc);
      if (!gt) return;
      if (!acc) std::fill(gt, gt + params_[node.params[0]].size, 0.0f);
      const int64_t ids = batch * nodes_[in].width;
      for (int64_t j = 0; j < ids; ++j) {
        float* row = gt + static_cast<int64_t>(x[j]) * last;
        for (int64_t c = 0; c < last; ++c) row[c] += dy[j * last + c];
      }
      return;
    }
  }
}

double Graph::regularization(bool with_grad) {
  ProfileScope scope(profiling_, &prof_[kProfOptimizer]);
  double total = 0.0;
  for (size_t p = 0; p < params_.size(); ++p) {
    const ParamSpec& ps = params_[p];
    if (ps.l1 == 0.0f && ps.l2 == 0.0f) continue;
    double a = 0.0, b = 0.0;
    for (int64_t j = 0; j < ps.size; ++j) {
      a += std::fabs(ps.data[j]);
      b += static_cast<double>(ps.data[j]) * ps.data[j];
    }
    total += ps.l1 * a + ps.l2 * b;
    if (!with_grad || !ps.trainable) continue;
    bool acc = false;
    float* g = param_grad(static_cast<int>(p), &acc);
    for (int64_t j = 0; j < ps.size; ++j) {
      const float w = ps.data[j];
      const float r = ps.l1 * (w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f)) + 2.0f * ps.l2 * w;
      g[j] = acc ? g[j] + r : r;
    }
  }
  return total;
}

namespace {

// Keras's norm constraints on a (rows, cols) parameter: norms over axis 0 (per column) or
// axis 1 (per row); w ← w · desired / (eps + norm).
void apply_constraint(const ParamSpec& ps) {
  float* w = ps.data;
  if (ps.constraint == ConstraintKind::kNonNeg) {
    for (int64_t j = 0; j < ps.size; ++j) w[j] = w[j] >= 0.0f ? w[j] : 0.0f;
    return;
  }
  const bool per_col = ps.c_axis == 0;
  const int64_t groups = per_col ? ps.cols : ps.rows;
  const int64_t len = per_col ? ps.rows : ps.cols;
  const int64_t stride = per_col ? ps.cols : 1;
  const int64_t step = per_col ? 1 : ps.cols;
  for (int64_t g = 0; g < groups; ++g) {
    float* base = w + g * step;
    double sq = 0.0;
    for (int64_t j = 0; j < len; ++j) sq += static_cast<double>(base[j * stride]) * base[j * stride];
    const float norm = static_cast<float>(std::sqrt(sq));
    float desired = 1.0f;
    switch (ps.constraint) {
      case ConstraintKind::kMaxNorm:
        desired = std::min(std::max(norm, 0.0f), ps.c_max);
        break;
      case ConstraintKind::kMinMaxNorm:
        desired = ps.c_rate * std::min(std::max(norm, ps.c_min), ps.c_max) +
                  (1.0f - ps.c_rate) * norm;
        break;
      case ConstraintKind::kUnitNorm:
        desired = 1.0f;
        break;
      default:
        return;
    }
    const float f = desired / (1e-7f + norm);
    for (int64_t j = 0; j < len; ++j) base[j * stride] *= f;
  }
}

}  // namespace

void Graph::update() {
  ProfileScope scope(profiling_, &prof_[kProfOptimizer]);
  ++iterations_;
  const size_t total = grads_.size();
  float* slot_ptrs[4];
  for (size_t p = 0; p < params_.size(); ++p) {
    if (!params_[p].trainable || !param_grad_ready_[p]) continue;
    const int64_t off = grad_offset_[p];
    for (int s = 0; s < slot_count_; ++s) slot_ptrs[s] = slots_.data() + s * total + off;
    optimizer_update(optimizer_, iterations_, params_[p].data, grads_.data() + off, slot_ptrs,
                     params_[p].size);
    if (params_[p].constraint != ConstraintKind::kNone) apply_constraint(params_[p]);
  }
}

RunTotals Graph::train_batches(const DataRefs& data, const int64_t* perm, int64_t batch_size,
                               int64_t first_batch, int64_t num_batches) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  RunTotals t;
  t.output_loss_sums.assign(output_specs_.size(), 0.0);
  t.metric_sums.assign(num_metrics(), 0.0);
  ensure_capacity(std::min(batch_size, data.rows));
  update_stats_ = true;
  for (int64_t b = first_batch; b < first_batch + num_batches; ++b) {
    const int64_t start = b * batch_size;
    if (start >= data.rows) break;
    const int64_t batch = std::min(batch_size, data.rows - start);
    bind_inputs(data.x, perm, start, batch);
    const int64_t next = start + batch;
    prefetch_rows(data, perm, next, std::min(batch_size, data.rows - next));
    forward(batch, true);
    std::fill(grad_ready_.begin(), grad_ready_.end(), false);
    const double loss = loss_and_grad(data, perm, start, batch, t.output_loss_sums.data(), true);
    metrics(batch, t.metric_sums.data());
    backward(batch);
    const double reg = regularization(true);
    t.loss_sum += loss + reg * static_cast<double>(batch);
    update();
    t.rows += batch;
  }
  return t;
}

RunTotals Graph::evaluate(const DataRefs& data, int64_t batch_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  RunTotals t;
  t.output_loss_sums.assign(output_specs_.size(), 0.0);
  t.metric_sums.assign(num_metrics(), 0.0);
  ensure_capacity(std::min(batch_size, data.rows));
  const double reg = regularization(false);
  for (int64_t start = 0; start < data.rows; start += batch_size) {
    const int64_t batch = std::min(batch_size, data.rows - start);
    bind_inputs(data.x, nullptr, start, batch);
    forward(batch, false);
    t.loss_sum += loss_and_grad(data, nullptr, start, batch, t.output_loss_sums.data(), false) +
                  reg * static_cast<double>(batch);
    metrics(batch, t.metric_sums.data());
    t.rows += batch;
  }
  return t;
}

RunTotals Graph::gradients(const DataRefs& data, std::vector<float>* grads) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  RunTotals t;
  t.output_loss_sums.assign(output_specs_.size(), 0.0);
  t.metric_sums.assign(num_metrics(), 0.0);
  ensure_capacity(data.rows);
  update_stats_ = false;  // a pure function of the weights: moving statistics stay
  bind_inputs(data.x, nullptr, 0, data.rows);
  forward(data.rows, true);
  std::fill(grad_ready_.begin(), grad_ready_.end(), false);
  t.loss_sum = loss_and_grad(data, nullptr, 0, data.rows, t.output_loss_sums.data(), true);
  metrics(data.rows, t.metric_sums.data());
  backward(data.rows);
  t.loss_sum += regularization(true) * static_cast<double>(data.rows);
  t.rows = data.rows;
  grads->assign(grads_.size(), 0.0f);
  for (size_t p = 0; p < params_.size(); ++p) {
    if (!param_grad_ready_[p]) continue;
    std::copy(grads_.begin() + grad_offset_[p], grads_.begin() + grad_offset_[p] + params_[p].size,
              grads->begin() + grad_offset_[p]);
  }
  return t;
}

void Graph::predict(const std::vector<const float*>& x, int64_t rows, int64_t batch_size,
                    const std::vector<float*>& out) {
  std::lock_guard<std::mutex> lock(mutex_);
  ensure_capacity(std::min(batch_size, rows));
  for (int64_t start = 0; start < rows; start += batch_size) {
    const int64_t batch = std::min(batch_size, rows - start);
    bind_inputs(x, nullptr, start, batch);
    forward(batch, false);
    for (size_t k = 0; k < outputs_.size(); ++k) {
      const int64_t w = nodes_[outputs_[k]].width;
      std::memcpy(out[k] + start * w, out_[outputs_[k]], batch * w * sizeof(float));
    }
  }
}

}  // namespace densitron
