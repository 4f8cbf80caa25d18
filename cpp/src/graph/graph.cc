// Graph executor: forward in node order, loss on the outputs, backward in reverse order with
// gradients summed where a node feeds several consumers, then one optimizer pass per parameter.
// Buffers grow only when a larger batch arrives; a step allocates nothing.
#include "densitron/graph.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "densitron/gemm.h"

namespace densitron {
namespace {

EpilogueAct epilogue_for(Activation act) {
  switch (act) {
    case Activation::kRelu:
      return EpilogueAct::kRelu;
    case Activation::kSigmoid:
      return EpilogueAct::kSigmoid;
    case Activation::kTanh:
      return EpilogueAct::kTanh;
    default:
      return EpilogueAct::kNone;
  }
}

void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

Graph::Graph(std::vector<NodeSpec> nodes, std::vector<ParamSpec> params, std::vector<int> inputs,
             std::vector<int> outputs)
    : nodes_(std::move(nodes)),
      params_(std::move(params)),
      inputs_(std::move(inputs)),
      outputs_(std::move(outputs)) {
  const int n = static_cast<int>(nodes_.size());
  consumers_.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    if (node.width <= 0) throw std::invalid_argument("node width must be positive");
    for (int in : node.inputs) {
      if (in < 0 || in >= i) throw std::invalid_argument("nodes must be in topological order");
      consumers_[in]++;
    }
    const int64_t in_w = node.inputs.empty() ? 0 : nodes_[node.inputs[0]].width;
    switch (node.op) {
      case OpType::kInput:
        if (!node.inputs.empty()) throw std::invalid_argument("input node with inputs");
        break;
      case OpType::kDense:
        if (node.inputs.size() != 1 || node.kernel < 0 ||
            node.kernel >= static_cast<int>(params_.size()) ||
            params_[node.kernel].size != in_w * node.width)
          throw std::invalid_argument("malformed Dense node");
        if (node.bias >= 0 && (node.bias >= static_cast<int>(params_.size()) ||
                               params_[node.bias].size != node.width))
          throw std::invalid_argument("malformed Dense bias");
        break;
      case OpType::kActivation:
        if (node.inputs.size() != 1 || in_w != node.width)
          throw std::invalid_argument("malformed Activation node");
        break;
      case OpType::kAdd:
        if (node.inputs.empty()) throw std::invalid_argument("Add needs inputs");
        for (int in : node.inputs)
          if (nodes_[in].width != node.width) throw std::invalid_argument("Add width mismatch");
        break;
      case OpType::kConcatenate: {
        int64_t total = 0;
        for (int in : node.inputs) total += nodes_[in].width;
        if (node.inputs.empty() || total != node.width)
          throw std::invalid_argument("Concatenate width mismatch");
        break;
      }
    }
  }
  for (int i : inputs_)
    if (i < 0 || i >= n || nodes_[i].op != OpType::kInput)
      throw std::invalid_argument("graph inputs must be input nodes");
  for (int o : outputs_)
    if (o < 0 || o >= n) throw std::invalid_argument("graph output out of range");
  out_buf_.resize(n);
  grad_buf_.resize(n);
  out_.assign(n, nullptr);
  grad_ready_.assign(n, false);
  fused_.assign(n, false);
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
  if (outputs.size() != outputs_.size())
    throw std::invalid_argument("one output spec per model output is required");
  if (trainable.size() != params_.size())
    throw std::invalid_argument("one trainable flag per parameter is required");
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (outputs[k].node != outputs_[k]) throw std::invalid_argument("output spec order");
    if (outputs[k].target_width <= 0) throw std::invalid_argument("target width");
  }
  output_specs_ = std::move(outputs);
  optimizer_ = optimizer;
  for (size_t p = 0; p < params_.size(); ++p) params_[p].trainable = trainable[p];
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
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out_buf_[i].resize(rows * nodes_[i].width);
    if (nodes_[i].op != OpType::kInput) grad_buf_[i].resize(rows * nodes_[i].width);
  }
  for (size_t k = 0; k < output_specs_.size(); ++k)
    target_buf_[k].resize(rows * output_specs_[k].target_width);
  capacity_ = rows;
}

void Graph::bind_inputs(const std::vector<const float*>& x, const int64_t* rows_idx,
                        int64_t start, int64_t count) {
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

void Graph::forward(int64_t batch) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& node = nodes_[i];
    float* y = out_buf_[i].data();
    const int64_t w = node.width;
    switch (node.op) {
      case OpType::kInput:
        continue;  // bound by bind_inputs
      case OpType::kDense: {
        const int in = node.inputs[0];
        const int64_t in_w = nodes_[in].width;
        GemmEpilogue ep;
        ep.bias = node.bias >= 0 ? params_[node.bias].data : nullptr;
        ep.act = epilogue_for(node.activation);
        sgemm(false, false, batch, w, in_w, 1.0f, out_[in], in_w, params_[node.kernel].data, w,
              0.0f, y, w, ep);
        if (node.activation == Activation::kSoftmax)
          activation_forward(Activation::kSoftmax, y, batch, w, w);
        break;
      }
      case OpType::kActivation:
        std::memcpy(y, out_[node.inputs[0]], batch * w * sizeof(float));
        activation_forward(node.activation, y, batch, w, w);
        break;
      case OpType::kAdd:
        std::memcpy(y, out_[node.inputs[0]], batch * w * sizeof(float));
        for (size_t j = 1; j < node.inputs.size(); ++j)
          add_into(y, out_[node.inputs[j]], batch * w);
        break;
      case OpType::kConcatenate: {
        int64_t col = 0;
        for (int in : node.inputs) {
          const int64_t iw = nodes_[in].width;
          for (int64_t r = 0; r < batch; ++r)
            std::memcpy(y + r * w + col, out_[in] + r * iw, iw * sizeof(float));
          col += iw;
        }
        break;
      }
    }
    out_[i] = y;
  }
}

double Graph::loss_and_grad(const DataRefs& data, const int64_t* rows_idx, int64_t start,
                            int64_t batch, double* output_losses, bool with_grad) {
  double total = 0.0;
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const OutputSpec& o = output_specs_[k];
    gather_targets(data, static_cast<int>(k), rows_idx, start, batch);
    float* g = nullptr;
    if (with_grad) {
      g = grad_buf_[o.node].data();
      grad_ready_[o.node] = true;
    }
    const double sum = loss_forward_backward(o.loss, out_[o.node], target_[k], batch,
                                             nodes_[o.node].width, g,
                                             static_cast<double>(batch) / o.loss_weight,
                                             fused_[o.node]);
    output_losses[k] += sum;
    total += o.loss_weight * sum;
  }
  return total;
}

void Graph::metrics(int64_t batch, double* sums) {
  int m = 0;
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const OutputSpec& o = output_specs_[k];
    const int64_t w = nodes_[o.node].width;
    for (const MetricSpec& spec : o.metrics) {
      sums[m++] += spec.is_accuracy
                       ? accuracy_sum(spec.accuracy, out_[o.node], target_[k], batch, w,
                                      spec.threshold)
                       : loss_forward_backward(spec.loss, out_[o.node], target_[k], batch, w,
                                               nullptr, 1.0, false);
    }
  }
}

void Graph::backward(int64_t batch) {
  std::fill(param_grad_ready_.begin(), param_grad_ready_.end(), false);
  // Gradients flow only into nodes that lie on a path from a parameter: input nodes take none.
  auto pass_to = [&](int in, const float* dz) {
    if (nodes_[in].op == OpType::kInput) return;
    const int64_t n = batch * nodes_[in].width;
    float* g = grad_buf_[in].data();
    if (grad_ready_[in]) {
      add_into(g, dz, n);
    } else {
      std::memcpy(g, dz, n * sizeof(float));
      grad_ready_[in] = true;
    }
  };
  for (int i = static_cast<int>(nodes_.size()) - 1; i >= 0; --i) {
    if (!grad_ready_[i]) continue;
    const NodeSpec& node = nodes_[i];
    float* dy = grad_buf_[i].data();
    const int64_t w = node.width;
    switch (node.op) {
      case OpType::kInput:
        break;
      case OpType::kDense: {
        if (!fused_[i]) activation_backward(node.activation, out_[i], dy, dy, batch, w);
        const int in = node.inputs[0];
        const int64_t in_w = nodes_[in].width;
        const int kp = node.kernel;
        if (params_[kp].trainable) {
          const float beta = param_grad_ready_[kp] ? 1.0f : 0.0f;
          sgemm(true, false, in_w, w, batch, 1.0f, out_[in], in_w, dy, w, beta,
                grads_.data() + grad_offset_[kp], w);
          param_grad_ready_[kp] = true;
        }
        const int bp = node.bias;
        if (bp >= 0 && params_[bp].trainable) {
          column_sums(dy, batch, w, grads_.data() + grad_offset_[bp], param_grad_ready_[bp]);
          param_grad_ready_[bp] = true;
        }
        if (nodes_[in].op != OpType::kInput) {
          const float beta = grad_ready_[in] ? 1.0f : 0.0f;
          sgemm(false, true, batch, in_w, w, 1.0f, dy, w, params_[kp].data, w, beta,
                grad_buf_[in].data(), in_w);
          grad_ready_[in] = true;
        }
        break;
      }
      case OpType::kActivation:
        if (!fused_[i]) activation_backward(node.activation, out_[i], dy, dy, batch, w);
        pass_to(node.inputs[0], dy);
        break;
      case OpType::kAdd:
        for (int in : node.inputs) pass_to(in, dy);
        break;
      case OpType::kConcatenate: {
        int64_t col = 0;
        for (int in : node.inputs) {
          const int64_t iw = nodes_[in].width;
          if (nodes_[in].op != OpType::kInput) {
            float* g = grad_buf_[in].data();
            const bool acc = grad_ready_[in];
            for (int64_t r = 0; r < batch; ++r) {
              const float* src = dy + r * w + col;
              if (acc) {
                add_into(g + r * iw, src, iw);
              } else {
                std::memcpy(g + r * iw, src, iw * sizeof(float));
              }
            }
            grad_ready_[in] = true;
          }
          col += iw;
        }
        break;
      }
    }
  }
}

void Graph::update() {
  ++iterations_;
  const size_t total = grads_.size();
  float* slot_ptrs[4];
  for (size_t p = 0; p < params_.size(); ++p) {
    if (!params_[p].trainable || !param_grad_ready_[p]) continue;
    const int64_t off = grad_offset_[p];
    for (int s = 0; s < slot_count_; ++s) slot_ptrs[s] = slots_.data() + s * total + off;
    optimizer_update(optimizer_, iterations_, params_[p].data, grads_.data() + off, slot_ptrs,
                     params_[p].size);
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
  for (int64_t b = first_batch; b < first_batch + num_batches; ++b) {
    const int64_t start = b * batch_size;
    if (start >= data.rows) break;
    const int64_t batch = std::min(batch_size, data.rows - start);
    bind_inputs(data.x, perm, start, batch);
    forward(batch);
    std::fill(grad_ready_.begin(), grad_ready_.end(), false);
    t.loss_sum += loss_and_grad(data, perm, start, batch, t.output_loss_sums.data(), true);
    metrics(batch, t.metric_sums.data());
    backward(batch);
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
  for (int64_t start = 0; start < data.rows; start += batch_size) {
    const int64_t batch = std::min(batch_size, data.rows - start);
    bind_inputs(data.x, nullptr, start, batch);
    forward(batch);
    t.loss_sum += loss_and_grad(data, nullptr, start, batch, t.output_loss_sums.data(), false);
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
  bind_inputs(data.x, nullptr, 0, data.rows);
  forward(data.rows);
  std::fill(grad_ready_.begin(), grad_ready_.end(), false);
  t.loss_sum = loss_and_grad(data, nullptr, 0, data.rows, t.output_loss_sums.data(), true);
  metrics(data.rows, t.metric_sums.data());
  backward(data.rows);
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
    forward(batch);
    for (size_t k = 0; k < outputs_.size(); ++k) {
      const int64_t w = nodes_[outputs_[k]].width;
      std::memcpy(out[k] + start * w, out_[outputs_[k]], batch * w * sizeof(float));
    }
  }
}

}  // namespace densitron
