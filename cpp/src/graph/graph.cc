// Graph executor: forward in node order, loss on the outputs, backward in reverse order with
// gradients summed where a node feeds several consumers, regularization, then one optimizer pass
// per parameter and its constraint. Buffers grow only when a larger batch arrives; a step
// allocates nothing. A run of batches is one OpenMP parallel region: every op splits its work
// into per-thread shares (rows, columns or GEMM tiles; never the summation order) and the
// threads meet at a barrier between ops, so a step costs no fork/join. Random ops (Dropout,
// GaussianNoise) draw from a counter-based hash of (seed, step, element), so results do not
// depend on the thread count. The per-op forward and backward code is in graph_nodes.cc.
#include "densitron/graph.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "cpu/futex.h"
#include "cpu/openmp.h"
#include "densitron/cpu.h"
#include "densitron/gemm.h"
#include "graph/graph_util.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

// The largest id a lookup node (kCategorize, mode -1, a table) writes: its table's ids, its
// default and its OOV ids; NaN when one is not a whole number >= 0 (or not such a lookup).
static double lookup_max_id(const NodeSpec& node) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (node.iattrs.size() != 6 || node.iattrs[2] != -1 || node.iattrs[3] != 2) return nan;
  const size_t n = node.fattrs.size() / 2;
  double top = 0.0;
  for (size_t j = n; j < node.fattrs.size(); ++j) {
    const double v = node.fattrs[j];
    if (!(v >= 0.0 && v == std::floor(v))) return nan;
    top = std::max(top, v);
  }
  const int64_t n_oov = node.iattrs[4], oov_start = node.iattrs[5];
  if (n_oov > 1) {
    if (oov_start < 0) return nan;
    top = std::max(top, static_cast<double>(oov_start + n_oov - 1));
  }
  return top;
}

using namespace graph_detail;  // NOLINT: the graph sources' private helpers

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
      case OpType::kTarget:
        if (!node.inputs.empty() || node.iattrs.size() != 1 || node.iattrs[0] < 0 ||
            node.iattrs[0] >= static_cast<int64_t>(outputs_.size()))
          bad("a target node reads the targets of one model output");
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
        if (node.op == OpType::kActivation && !node.iattrs.empty() &&
            (node.iattrs.size() != 3 || node.iattrs[0] * node.iattrs[1] * node.iattrs[2] != node.width ||
             (node.activation != Activation::kSoftmax && node.activation != Activation::kLogSoftmax)))
          bad("an axis is given only to softmax and log_softmax, as (outer, length, inner)");
        if ((node.op == OpType::kDropout || node.op == OpType::kGaussianNoise) &&
            (node.fattrs.empty() || node.iattrs.empty() ||
             (node.op == OpType::kGaussianNoise &&
              (node.iattrs.size() > 3 || node.fattrs.size() != 1)) ||
             (node.op == OpType::kDropout && node.fattrs.size() != 1 &&
              node.fattrs.size() != 4)))
          bad("Dropout/GaussianNoise attributes");
        if (node.op == OpType::kDropout && node.iattrs.size() > 1) {
          // a noise_shape: seed, rank flags, the rank - 1 dims after the batch axis
          int64_t width = 1;
          for (size_t a = node.iattrs.size() / 2 + 1; a < node.iattrs.size(); ++a)
            width *= node.iattrs[a];
          if (node.iattrs.size() % 2 != 0 || node.iattrs.size() < 4 || width != node.width)
            bad("Dropout's noise_shape attributes");
        }
        // (rate 1 drops every value, Keras's zeros: the kernels select 0 over x·(1/0);
        // AlphaDropout's a·x + b has no value there)
        if (node.op == OpType::kDropout &&
            !(node.fattrs[0] >= 0.0 &&
              (node.fattrs.size() == 4 ? node.fattrs[0] < 1.0 : node.fattrs[0] <= 1.0)))
          bad("Dropout rate must be in [0, 1] ([0, 1) for AlphaDropout)");
        break;
      case OpType::kBatchNorm:
      case OpType::kLayerNorm: {
        need_inputs(1);
        if (in0->width != node.width) bad("normalization width mismatch");
        const bool bn = node.op == OpType::kBatchNorm;
        if (node.params.size() != (bn ? 4u : 2u) || node.fattrs.size() != (bn ? 2u : 1u))
          bad("normalization attributes");
        // LayerNormalization's i {rms}: 1 for RMSNormalization (no centering, no beta)
        if (!bn && !node.iattrs.empty() &&
            (node.iattrs.size() != 1 || node.iattrs[0] < 0 || node.iattrs[0] > 1 ||
             (node.iattrs[0] == 1 && node.params[1] >= 0)))
          bad("LayerNormalization's rms flag (no beta then)");
        if (bn && !node.iattrs.empty() &&
            (node.iattrs.size() != 1 || node.iattrs[0] < 0 || node.iattrs[0] > 1))
          bad("BatchNormalization's frozen flag");
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
      case OpType::kPool:
        need_inputs(1);
        if (node.iattrs.size() < 4 || node.iattrs.size() > 5 || node.iattrs[0] < 1 ||
            node.iattrs[1] < 1 || node.iattrs[2] < 1 ||
            node.iattrs[0] * node.iattrs[1] * node.iattrs[2] != in0->width ||
            node.iattrs[0] * node.iattrs[2] != node.width || node.iattrs[3] < 0 ||
            node.iattrs[3] > 2)
          bad("pooling attributes: (outer, length, inner, max) of the input's values");
        if (pool_masked(node) != (node.inputs.size() == 2) ||
            (pool_masked(node) &&
             (node.iattrs[3] != 0 || nodes_[node.inputs[1]].width != node.iattrs[1])))
          bad("a masked mean pooling reads one value a step (0: masked)");
        break;
      case OpType::kStandardize: {
        need_inputs(1);
        if (in0->width != node.width) bad("Normalization width mismatch");
        const int64_t f = node.iattrs.size() == 2 ? node.iattrs[1] : 0;
        if (f < 1 || (f != 1 && f != node.last_dim)) bad("Normalization attributes");
        if (node.params.empty() ? node.fattrs.size() != static_cast<size_t>(2 * f)
                                : node.params.size() != 2 || !node.fattrs.empty() ||
                                      node.params[0] < 0 || node.params[1] < 0 ||
                                      param_size(node.params[0]) != f ||
                                      param_size(node.params[1]) != f)
          bad("Normalization takes a mean and a variance of one value per feature");
        break;
      }
      case OpType::kIndexMap: {
        need_inputs(1);
        if (static_cast<int64_t>(node.iattrs.size()) != node.width) bad("index map size");
        for (int64_t m : node.iattrs)
          if (m < -2 || m >= in0->width) bad("index map entries must lie in [-2, input width)");
        break;
      }
      case OpType::kBiasAdd:
      case OpType::kScaleBy:
        need_inputs(1);
        if (node.params.size() != 1 || node.params[0] < 0 ||
            param_size(node.params[0]) != node.last_dim || in0->width != node.width ||
            in0->last_dim != node.last_dim)
          bad("BiasAdd and ScaleBy take one vector of the last axis's size");
        break;
      case OpType::kPReLU:
        need_inputs(1);
        if (node.params.size() != 1 || node.params[0] < 0 || node.iattrs.size() != 1 ||
            node.iattrs[0] < 1 || param_size(node.params[0]) != node.iattrs[0] ||
            node.width % node.iattrs[0] != 0 || in0->width != node.width)
          bad("PReLU takes a number of alpha values that divides the width");
        break;
      case OpType::kCategorize: {
        need_inputs(1);
        const bool lookup = node.iattrs.size() == 6 && node.iattrs[3] == 2;
        if (node.iattrs.size() < 3 || (node.iattrs.size() > 4 && !lookup) ||
            node.iattrs[0] < 1 || node.iattrs[1] < 1 || node.iattrs[2] < -1 ||
            node.iattrs[2] > 2 || (node.iattrs.size() == 4 && node.iattrs[3] != 0 &&
                                   node.iattrs[3] != 1))
          bad("categorize attributes {depth, k, mode[, digitize]}");
        const int64_t depth = node.iattrs[0], k = node.iattrs[1], mode = node.iattrs[2];
        const int64_t want = mode < 0 ? in0->width
                                      : (mode == 0 ? in0->width * depth
                                                   : (in0->width % k ? -1 : in0->width / k * depth));
        if (node.width != want) bad("categorize output width");
        if (lookup) {  // {keys (increasing), their values, the default}, n_oov >= 0
          const size_t n = node.fattrs.size() / 2;
          if (node.fattrs.size() % 2 != 1 || node.iattrs[4] < 0) bad("lookup table");
          for (size_t b = 1; b < n; ++b)
            if (!(node.fattrs[b - 1] < node.fattrs[b])) bad("lookup keys must increase");
        } else {
          for (size_t b = 1; b < node.fattrs.size(); ++b)
            if (!(node.fattrs[b - 1] <= node.fattrs[b])) bad("boundaries must not decrease");
        }
        break;
      }
      case OpType::kMath:
        need_inputs(1);
        if (in0->width != node.width || node.iattrs.size() != 1 || node.iattrs[0] < 0 ||
            node.iattrs[0] > static_cast<int64_t>(MathOp::kAdd) || node.fattrs.size() != 2)
          bad("math op attributes: {op}, {a, b}");
        break;
      case OpType::kRowBroadcast:
        need_inputs(2);
        if (node.inputs.size() != 2 || in0->width != node.width ||
            nodes_[node.inputs[1]].width * node.last_dim != node.width ||
            node.iattrs.size() != 1 || node.iattrs[0] < 0 || node.iattrs[0] > 4)
          bad("a row broadcast takes its width and one value per row, and a mode 0 to 4");
        break;
      case OpType::kArgReduce:
        need_inputs(1);
        if (in0->width / in0->last_dim != node.width || node.iattrs.size() != 1 ||
            node.iattrs[0] < 0 || node.iattrs[0] > 1)
          bad("an arg reduction gives one index a row of its input's last axis, mode 0 or 1");
        break;
      case OpType::kBatchReduce:
        need_inputs(1);
        if (node.width != 1 || node.iattrs.size() != 1 || node.iattrs[0] < 0 ||
            node.iattrs[0] > 1)
          bad("a batch reduction gives one value a sample, mode 0 (mean) or 1 (sum)");
        break;
      case OpType::kBatchMatMul: {
        need_inputs(2);
        const auto& ia = node.iattrs;
        if (node.inputs.size() != 2 || ia.size() != 6 || ia[0] < 1 || ia[1] < 1 || ia[2] < 1 ||
            ia[3] < 1 || in0->width != ia[0] * ia[1] * ia[2] ||
            nodes_[node.inputs[1]].width != ia[0] * ia[2] * ia[3] ||
            node.width != ia[0] * ia[1] * ia[3])
          bad("a batched matmul takes groups of m × k and k × n values a sample");
        break;
      }
      case OpType::kConv: {
        need_inputs(1);
        ConvGeom g;
        if (node.inputs.size() != 1 || !conv_geom(node.iattrs, &g) ||
            in0->width != g.node_in_width() || node.width != g.node_out_width() ||
            node.last_dim != g.node_channels() || node.params.size() != 2 ||
            node.params[0] < 0)
          bad("a convolution takes {rank, in[rank], cin, k[rank], strides[rank], "
              "dilation[rank], pad_before[rank], out[rank], filters[, groups[, transposed]]} "
              "of its input's and output's widths (groups dividing cin and filters; 1 when "
              "transposed), a kernel and a bias slot");
        if (param_size(node.params[0]) != g.kdepth() * g.filters)
          bad("convolution kernel size");
        if (node.params[1] >= 0 && param_size(node.params[1]) != g.node_channels())
          bad("convolution bias size");
        break;
      }
      case OpType::kLSTM:
      case OpType::kGRU:
      case OpType::kSimpleRNN: {
        need_inputs(1);
        const auto& ia = node.iattrs;
        bool ok = ia.size() >= 5 && rnn_attrs_valid(node) &&
                  in0->width == rnn_input_width(node) &&
                  (node.params.size() == 3 ||  // (then a stateful node's h and LSTM's c)
                   node.params.size() == (node.op == OpType::kLSTM ? 5u : 4u)) &&
                  node.params[0] >= 0 && node.params[1] >= 0 &&
                  node.activation == Activation::kLinear;
        for (size_t k = 1; ok && k < node.inputs.size(); ++k)  // the mask, the states
          ok = nodes_[node.inputs[k]].width ==
               (k == 1 && (ia.size() > 6 ? ia[6] == 1 : true) ? ia[0] : ia[2]);
        if (!ok)
          bad("a recurrent layer (LSTM, GRU, SimpleRNN) takes {steps, features, units, "
              "sequences 0 or 1, backwards 0 or 1[, zero masked outputs 0 or 1[, masked, "
              "states in, states out[, SimpleRNN's relu or GRU's reset_before[, a copy of the "
              "input a gate, recurrent dropout seed]]]]} (fattrs {recurrent dropout rate} with "
              "the last two) of its input's and output's widths, a mask of steps values (or "
              "none) and initial states of units values (or none), a kernel, a recurrent "
              "kernel and a bias slot");
        if (param_size(node.params[0]) != ia[1] * rnn_columns(node) ||
            param_size(node.params[1]) != ia[2] * rnn_columns(node) ||
            (node.params[2] >= 0 && param_size(node.params[2]) != rnn_bias_size(node)))
          bad("recurrent layer weight sizes");
        for (size_t k = 3; k < node.params.size(); ++k)
          if (node.params[k] < 0 || param_size(node.params[k]) < ia[2] ||
              param_size(node.params[k]) % ia[2] != 0 ||
              param_size(node.params[k]) != param_size(node.params[3]))
            bad("a stateful recurrent layer's states: batch × units values each");
        break;
      }
      case OpType::kWindowPool: {
        need_inputs(1);
        ConvGeom g;
        int64_t mode = 0;
        if (node.inputs.size() != 1 || !pool_geom(node.iattrs, &g, &mode) ||
            in0->width != g.in_positions() * g.cin || node.width != g.positions() * g.cin ||
            node.last_dim != g.cin || !node.params.empty())
          bad("a windowed pooling takes {rank, in[rank], channels, k[rank], strides[rank], "
              "pad_before[rank], out[rank], mode 0 or 1} of its input's and output's widths, "
              "each window meeting the input");
        break;
      }
      case OpType::kModeSelect:
      case OpType::kDivide:
        need_inputs(2);
        if (node.inputs.size() != 2 || in0->width != node.width ||
            nodes_[node.inputs[1]].width != node.width)
          bad(node.op == OpType::kDivide ? "Divide takes two inputs of its width"
                                          : "a mode selection takes two inputs of its width");
        break;
      case OpType::kUnitNorm:
        need_inputs(1);
        if (in0->width != node.width || node.fattrs.size() != 1 || !(node.fattrs[0] > 0.0))
          bad("UnitNormalization attributes");
        break;
      case OpType::kDot:
        need_inputs(2);
        if (node.inputs.size() != 2 || node.iattrs.size() != 2 || node.iattrs[0] < 1 ||
            nodes_[node.inputs[0]].width != node.iattrs[0] ||
            nodes_[node.inputs[1]].width != node.iattrs[0] || node.width != 1)
          bad("Dot takes two inputs of d values a sample and gives one");
        break;
      case OpType::kEmbedding:
        need_inputs(1);
        if (node.params.size() != 1 || node.iattrs.size() != 1) bad("Embedding attributes");
        if (param_size(node.params[0]) != node.iattrs[0] * node.last_dim)
          bad("Embedding table size");
        if (in0->width * node.last_dim != node.width) bad("Embedding output width");
        if (in0->op == OpType::kCategorize) {  // IntegerLookup's ids: each one in range
          const double top = lookup_max_id(*in0);
          if (!(top < static_cast<double>(node.iattrs[0])))
            bad("An Embedding reads an IntegerLookup's ids, each of which must be in [0, "
                "input_dim): the lookup's vocabulary_size() may be at most the Embedding's "
                "input_dim. Received: ids up to " +
                (std::isnan(top) ? std::string("a value that is not an index")
                                 : std::to_string(static_cast<int64_t>(top))) +
                " for input_dim=" + std::to_string(node.iattrs[0]));
        } else if (in0->op != OpType::kInput &&
                   !(in0->op == OpType::kIndexMap && nodes_[in0->inputs[0]].op == OpType::kInput)) {
          bad("Embedding must read a model Input directly, or columns of one");
        }
        break;
    }
  }
  for (int i : inputs_)
    if (i < 0 || i >= n || nodes_[i].op != OpType::kInput) bad("graph inputs must be inputs");
  for (int o : outputs_)
    if (o < 0 || o >= n) bad("graph output out of range");
  for (const NodeSpec& node : nodes_) always_noise_ = always_noise_ || always_random(node);
  out_buf_.resize(n);
  stage_x_.resize(inputs_.size());
  grad_buf_.resize(n);
  pre_buf_.resize(n);
  partial_buf_.resize(n);
  aux_buf_.resize(n);
  // A convolution of one group whose tile is a whole sample, read only by a disjoint max
  // pooling (pool_is_disjoint_max): its forward pools each sample right after writing it, from
  // the cache (the pooling reading the whole batch's output back from memory was 6% of a
  // convnet's step), and the pooling's own forward does nothing.
  pooled_by_.assign(n, -1);
  for (int j = 0; j < n; ++j) {
    if (!pool_is_disjoint_max(nodes_[j])) continue;
    const int in = nodes_[j].inputs[0];
    ConvGeom g;
    if (nodes_[in].op == OpType::kConv && consumers_[in] == 1 &&
        conv_geom(nodes_[in].iattrs, &g) && !g.transposed && g.groups == 1 &&
        conv_tile_rows(g) == g.positions())
      pooled_by_[in] = j;
  }
  out_.assign(n, nullptr);
  needs_targets_.assign(n, false);
  for (int i = 0; i < n; ++i) {
    needs_targets_[i] = nodes_[i].op == OpType::kTarget;
    for (int in : nodes_[i].inputs) needs_targets_[i] = needs_targets_[i] || needs_targets_[in];
  }
  for (int o : outputs_)
    if (o < 0 || o >= n || needs_targets_[o]) bad("a model output cannot read targets");
  fused_.assign(n, false);
  requires_grad_.assign(n, false);
  dropout_offsets_.assign(n, {});
  dropout_span_.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    if (nodes_[i].op != OpType::kDropout) continue;
    std::vector<int64_t>& offs = dropout_offsets_[i];
    offs.resize(nodes_[i].width);
    for (int64_t e = 0; e < nodes_[i].width; ++e) {
      offs[e] = static_cast<int64_t>(dropout_mask_index(nodes_[i].iattrs, e));
      dropout_span_[i] = std::max(dropout_span_[i], offs[e] + 1);
    }
  }
  keeps_input_.assign(n, false);
  ksplit_.assign(n, 1);
  gather_split_.assign(n, 1);
  kernel_split_node_.assign(params_.size(), -1);
  for (int i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    keeps_input_[i] = (node.op == OpType::kDense || node.op == OpType::kConv) &&
                      activation_needs_input(node.activation, node.act_params);
    if (node.op != OpType::kDense) continue;
    const NodeSpec& in = nodes_[node.inputs[0]];
    if (in.width != in.last_dim) continue;  // rank-2 inputs only
    // A tall kernel is cut into row blocks over its input features; see ksplit_ in graph.h.
    const int64_t k = in.last_dim;
    // Blocks of at least 64 rows: a 128×128 kernel in two (4% off a 784-128-128-128-10 step
    // at batch 32; neutral at 64 and 256 wide). Not a kernel of more than kMaxCutKernel values.
    if (k >= 128 && k * node.last_dim >= 16384 && k * node.last_dim <= kMaxCutKernel)
      ksplit_[i] = static_cast<int>(std::min<int64_t>(kMaxSplit, k / 64));
    if (ksplit_[i] > 1) {
      kernel_split_node_[node.params[0]] = i;
      if (in.op == OpType::kInput && gather_split_[node.inputs[0]] == 1)
        gather_split_[node.inputs[0]] = ksplit_[i];
    }
  }
  int64_t total = 0;
  grad_offset_.resize(params_.size());
  for (size_t p = 0; p < params_.size(); ++p) {
    grad_offset_[p] = total;
    total += params_[p].size;
  }
  param_total_ = total;
  grads_.clear();  // (made by the first run that takes gradients: see ensure_grads)
  grads_.shrink_to_fit();
}

// The gradient buffer, one value per parameter value, is made when a run first needs it, so
// that a model built or used for inference only holds its weights once (a 10 GB Dense layer
// took 20 GB to build).
void Graph::ensure_grads() {
  if (static_cast<int64_t>(grads_.size()) != param_total_) grads_.assign(param_total_, 0.0f);
}

void metric_sums(const MetricSpec& spec, const float* p, const float* y, int64_t rows,
                 int64_t cols, const float* w, int64_t rows_per_weight, float hinge,
                 double* out) {
  if (spec.ignores_a_class()) {
    // The other rows' loss and what it divides by: their weights' sum, or without weights
    // every row (Keras 3.15 masks the weights only: unweighted, the ignored rows count as 0)
    out[0] = loss_forward_backward(spec.loss, p, y, rows, cols, nullptr, 1.0, false, w,
                                   rows_per_weight, hinge, nullptr, spec.threshold);
    out[1] = w == nullptr ? static_cast<double>(rows) : 0.0;
    for (int64_t r = 0; r < rows && w != nullptr; ++r)
      if (y[r] != spec.threshold) out[1] += w[r / rows_per_weight];
    return;
  }
  const int64_t sums = spec.sums(cols);
  if (sums > 1) {  // an AUC's bucket counts, R2Score's or an F-score's column sums
    std::fill(out, out + sums, 0.0);
    if (spec.accuracy == AccuracyKind::kR2Sums) {
      r2_sums(p, y, rows, cols, out, w, rows_per_weight);
    } else if (spec.accuracy == AccuracyKind::kFScoreSums) {
      f_score_sums(p, y, rows, cols, spec.threshold, out, w, rows_per_weight);
    } else if (spec.iou()) {  // (the classes in top_k; the ignored id, or -1, in threshold)
      const bool binary = spec.accuracy == AccuracyKind::kBinaryIoUSums;
      iou_sums(spec.accuracy, p, y, rows, cols, spec.top_k, spec.threshold,
               binary ? -1 : static_cast<int64_t>(spec.threshold), out, w, rows_per_weight);
    } else {
      const bool per_column = spec.accuracy == AccuracyKind::kAucColumnBuckets ||
                              spec.accuracy == AccuracyKind::kAucColumnBucketsLogits;
      const bool logits = spec.accuracy == AccuracyKind::kAucBucketsLogits ||
                          spec.accuracy == AccuracyKind::kAucColumnBucketsLogits;
      const bool at_thresholds = spec.accuracy == AccuracyKind::kThresholdBuckets;
      auc_buckets(p, y, rows, cols, static_cast<int64_t>(spec.threshold), logits, out, w,
                  rows_per_weight, per_column,
                  spec.thresholds.empty() ? nullptr : spec.thresholds.data(),
                  at_thresholds && spec.thresholds.empty(), at_thresholds ? spec.class_id : -1);
    }
    return;
  }
  out[0] = spec.is_accuracy
               ? accuracy_sum(spec.accuracy, p, y, rows, cols, spec.threshold, w,
                              rows_per_weight, spec.class_id, spec.top_k)
               : loss_forward_backward(spec.loss, p, y, rows, cols, nullptr, 1.0, false, w,
                                       rows_per_weight, hinge);
}

int Graph::num_metrics() const {
  int count = 0;
  for (const OutputSpec& o : output_specs_)
    for (const MetricSpec& m : o.metrics)
      count += static_cast<int>(m.sums(nodes_[o.node].last_dim));
  return count;
}

void Graph::compile(std::vector<OutputSpec> outputs, const OptimizerConfig& optimizer,
                    std::vector<bool> trainable) {
  std::lock_guard<std::mutex> lock(mutex_);
  // One spec per model output, in order; after them, a loss function's values (traced into
  // nodes that read the targets) as kMeanOfValues outputs without targets or metrics (with
  // loss weight 0: a metric function's, which takes no gradient).
  if (outputs.size() < outputs_.size()) bad("one output spec per model output is required");
  if (trainable.size() != params_.size()) bad("one trainable flag per parameter is required");
  for (size_t k = 0; k < outputs.size(); ++k) {
    const OutputSpec& o = outputs[k];
    if (o.node < 0 || o.node >= static_cast<int>(nodes_.size())) bad("output spec node");
    const NodeSpec& node = nodes_[o.node];
    const int64_t sub_rows = node.width / node.last_dim;
    for (const std::array<float, 3>& op : o.tail)
      if (!(op[0] >= 0.0f && op[0] <= static_cast<float>(MathOp::kAdd)))
        bad("a tail op is a MathOp");
    if (!o.tail.empty() && !(o.loss == Loss::kMeanOfValues && o.loss_param != 0.0f))
      bad("a tail follows a loss function's batch reduction");
    if (o.mask_node >= 0 &&
        (k >= outputs_.size() || o.mask_node >= static_cast<int>(nodes_.size()) ||
         nodes_[o.mask_node].width != sub_rows || o.ignores_a_class()))
      bad("a mask node holds one value a loss row of a model output without ignore_class");
    if (k >= outputs_.size()) {
      if (o.loss != Loss::kMeanOfValues || o.target_width != 0 || !o.metrics.empty() ||
          !(o.loss_param == 0.0f || o.loss_param == 1.0f || o.loss_param == 2.0f))
        bad("a loss function's values take no targets or metrics");
      continue;
    }
    if (o.node != outputs_[k] || o.loss == Loss::kMeanOfValues) bad("output spec order");
    const bool sparse = o.loss == Loss::kSparseCategoricalCrossentropy ||
                        o.loss == Loss::kSparseCategoricalCrossentropyLogits;
    // (without a loss, the targets are the metrics' and the loss function's, either form;
    // none at all when there are no metrics: every loss from add_loss)
    if (o.target_width != (sparse ? sub_rows : node.width) &&
        !(o.loss == Loss::kNone && (o.target_width == sub_rows || o.target_width == node.width ||
                                    (o.target_width == 0 && o.metrics.empty()))))
      bad("target width");
    for (const MetricSpec& m : o.metrics) {
      if (m.buckets() && !m.bucket_count_valid()) bad("an AUC takes 2 to 1e6 thresholds");
      if (m.class_id >= node.last_dim || m.top_k < 0) bad("a metric's class_id or top_k");
      if (m.iou() && m.top_k < 1) bad("an IoU metric's classes");
      if (o.loss == Loss::kNone && o.target_width != (m.sparse_targets() ? sub_rows : node.width))
        bad("a metric's targets");
    }
  }
  for (const NodeSpec& node : nodes_)
    if (node.op == OpType::kTarget &&
        node.width != outputs[static_cast<size_t>(node.iattrs[0])].target_width)
      bad("a target node's width is its output's target width");
  const int n = static_cast<int>(nodes_.size());
  std::vector<int> loss_count(n, 0);
  for (const OutputSpec& o : outputs) loss_count[o.node]++;
  for (int c : loss_count)
    if (c > 1) bad("a node can carry one loss");
  for (int p : optimizer.no_decay)
    if (p < 0 || p >= static_cast<int>(params_.size())) bad("no_decay: a parameter index");
  output_specs_ = std::move(outputs);
  mask_keep_.assign(output_specs_.size(), {});
  mask_weight_.assign(output_specs_.size(), {});
  optimizer_ = optimizer;
  no_decay_.assign(params_.size(), false);
  for (int p : optimizer_.no_decay) no_decay_[p] = true;
  for (size_t p = 0; p < params_.size(); ++p) params_[p].trainable = trainable[p];

  // requires_grad: some trainable parameter lies at or before the node.
  for (int i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    bool rg = false;
    for (int in : node.inputs) rg = rg || requires_grad_[in];
    const size_t own = trainable_param_slots(node);
    for (size_t s = 0; s < own; ++s)
      rg = rg || (node.params[s] >= 0 && params_[node.params[s]].trainable);
    requires_grad_[i] = rg;
  }
  for (int i = 0; i < n; ++i)  // (a mask is no value the pooling differentiates)
    if (nodes_[i].op == OpType::kPool && pool_masked(nodes_[i]) &&
        requires_grad_[nodes_[i].inputs[1]])
      bad("a masked pooling's mask takes no gradient");
  // The backward plan, fixed for every step: which nodes receive a gradient, and who writes
  // each gradient first (later writers accumulate).
  has_grad_.assign(n, false);
  first_writer_.assign(n, {-2, 0});  // {-1, 0}: the loss writes first
  // A loss writes the node's gradient; none for a node no trainable weight lies behind (a
  // model input itself has no gradient buffer: add_loss(ops.mean(inputs))).
  std::vector<bool> loss_grad(n, false);
  for (size_t k = 0; k < output_specs_.size(); ++k)
    loss_grad[output_specs_[k].node] =
        loss_grad[output_specs_[k].node] ||
        (takes_gradient(k) && requires_grad_[output_specs_[k].node]);
  for (int i = n - 1; i >= 0; --i) {
    if (loss_grad[i]) {
      has_grad_[i] = true;
      first_writer_[i] = {-1, 0};
    }
    if (!has_grad_[i] || nodes_[i].op == OpType::kEmbedding) continue;
    const std::vector<int>& ins = nodes_[i].inputs;
    for (size_t s = 0; s < ins.size(); ++s) {
      const int in = ins[s];
      if (!requires_grad_[in]) continue;
      if (!has_grad_[in]) first_writer_[in] = {i, static_cast<int>(s)};
      has_grad_[in] = true;
    }
  }
  param_first_writer_.assign(params_.size(), -1);
  param_writers_.assign(params_.size(), 0);
  for (int i = n - 1; i >= 0; --i) {
    if (!has_grad_[i]) continue;
    const NodeSpec& node = nodes_[i];
    const size_t own = trainable_param_slots(node);
    for (size_t s = 0; s < own; ++s) {
      const int p = node.params[s];
      if (p < 0 || !params_[p].trainable) continue;
      if (param_first_writer_[p] < 0) param_first_writer_[p] = i;
      param_writers_[p]++;
    }
  }
  has_constraints_ = false;
  for (const ParamSpec& ps : params_)
    has_constraints_ = has_constraints_ || ps.constraint != ConstraintKind::kNone;
  // A softmax (sigmoid) output read by nothing else hands the loss gradient straight to its
  // logits: the cross-entropy and the activation's Jacobian collapse to p - y.
  std::fill(fused_.begin(), fused_.end(), false);
  for (const OutputSpec& o : output_specs_) {
    const NodeSpec& node = nodes_[o.node];
    if (consumers_[o.node] != 0 || node.has_activity()) continue;
    if (node.op != OpType::kDense && node.op != OpType::kActivation) continue;
    if (!node.iattrs.empty()) continue;  // a softmax over a middle axis
    const bool categorical = o.loss == Loss::kCategoricalCrossentropy ||
                             o.loss == Loss::kSparseCategoricalCrossentropy;
    if ((categorical && node.activation == Activation::kSoftmax) ||
        (o.loss == Loss::kBinaryCrossentropy && node.activation == Activation::kSigmoid))
      fused_[o.node] = true;
  }
  // A Dense read only by another Dense, with an activation the GEMM epilogue knows (relu,
  // sigmoid, tanh): the reader's input-gradient GEMM applies the derivative as it writes.
  dact_by_consumer_.assign(n, false);
  for (int i = 0; i < n; ++i) {
    if (nodes_[i].op != OpType::kDense) continue;
    const int in = nodes_[i].inputs[0];
    const NodeSpec& src = nodes_[in];
    EpilogueAct act;
    // (an activity regularizer's gradient is w.r.t. the output: it needs the plain path)
    dact_by_consumer_[in] = src.op == OpType::kDense && !fused_[in] && consumers_[in] == 1 &&
                            !src.has_activity() &&
                            has_grad_[in] && first_writer_[in] == std::make_pair(i, 0) &&
                            !keeps_input_[in] &&
                            epilogue_for(src.activation, src.act_params, &act) &&
                            act != EpilogueAct::kNone;
  }
  // A relu convolution read only by a max pooling whose windows tile it (pool_is_disjoint_max):
  // the pooling's backward, writing each of the convolution's output gradients once, applies
  // the relu's derivative as it writes (the convolution's own pass over them was 3% of a
  // convnet's step).
  for (int i = 0; i < n; ++i) {
    if (!pool_is_disjoint_max(nodes_[i])) continue;
    const int in = nodes_[i].inputs[0];
    const NodeSpec& src = nodes_[in];
    EpilogueAct act;
    dact_by_consumer_[in] = src.op == OpType::kConv && !fused_[in] && consumers_[in] == 1 &&
                            !src.has_activity() && has_grad_[in] &&
                            first_writer_[in] == std::make_pair(i, 0) && !keeps_input_[in] &&
                            epilogue_for(src.activation, src.act_params, &act) &&
                            act == EpilogueAct::kRelu;
  }
  activity_nodes_.clear();
  for (int i = 0; i < n; ++i)
    if (nodes_[i].has_activity()) activity_nodes_.push_back(i);
  slot_count_ = optimizer_slot_count(optimizer_);
  // (a buffer of its own: a graph that shared another's state starts afresh)
  slots_ = std::make_shared<std::vector<float>>(static_cast<size_t>(slot_count_ * param_total_));
  for (int s = 0; s < slot_count_; ++s)
    std::fill(slots_->begin() + s * param_total_, slots_->begin() + (s + 1) * param_total_,
              optimizer_slot_initial_value(optimizer_, s));
  if (optimizer_.kind == OptimizerKind::kScheduleFree)  // Keras's z starts at the weight
    for (size_t p = 0; p < params_.size(); ++p)
      std::copy(params_[p].data, params_[p].data + params_[p].size, slot(0, static_cast<int>(p)));
  iterations_ = 0;
  loss_scale_ = optimizer_.initial_scale;
  scale_counter_ = 0;
  target_buf_.assign(output_specs_.size(), {});
  target_.assign(output_specs_.size(), nullptr);
  weight_buf_.assign(output_specs_.size(), {});
  weight_.assign(output_specs_.size(), nullptr);
  stage_target_.assign(output_specs_.size(), {});
  stage_weight_.assign(output_specs_.size(), {});
  capacity_ = 0;  // target buffers are sized with the node buffers
  compiled_ = true;
}

Share Graph::k_part(int i, int part) const {
  const int64_t k = nodes_[nodes_[i].inputs[0]].last_dim;
  return share_of(k, part, ksplit_[i], 1, kPartAlign);
}

bool Graph::accumulates(int in, int node, int slot) const {
  return !(first_writer_[in].first == node && first_writer_[in].second == slot);
}

void Graph::ensure_capacity(int64_t rows) {
  // Inputs' gather buffers, per run: none for a sparse input read in place (a 1024-row pass of
  // 20,000 features would take 82 MB).
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const int64_t n = rows * nodes_[inputs_[k]].width;
    if (!sparse_direct_[k] && static_cast<int64_t>(out_buf_[inputs_[k]].size()) < n)
      out_buf_[inputs_[k]].resize(n);
  }
  if (rows <= capacity_) return;
  int64_t scratch = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const NodeSpec& node = nodes_[i];
    const int64_t n = rows * node.width;
    if (node.op != OpType::kInput && node.op != OpType::kTarget) out_buf_[i].resize(n);
    if (node.op != OpType::kInput && node.op != OpType::kTarget) grad_buf_[i].resize(n);
    if (keeps_input_[i]) pre_buf_[i].resize(n);
    if (ksplit_[i] > 1) partial_buf_[i].resize(static_cast<size_t>(ksplit_[i]) * n);
    ConvGeom g;
    if (node.op == OpType::kConv && conv_geom(node.iattrs, &g) && conv_blocked(g))
      partial_buf_[i].resize(kConvBlocks * (g.kdepth() * g.filters + g.node_channels()));
    if (node.op == OpType::kConv && conv_geom(node.iattrs, &g) && conv_keeps_windows(g))
      aux_buf_[i].resize(rows * g.positions() * g.depth());
    if (rnn_op(node.op)) {
      aux_buf_[i].resize(rnn_record_floats(node, rows));
      // its last units values, read as zeros (a shrinking resize keeps what was there)
      std::fill(aux_buf_[i].end() - node.last_dim, aux_buf_[i].end(), 0.0f);
      partial_buf_[i].resize(rnn_partial_floats(node));
    }
    if (pool_is_disjoint_max(node))  // its windows' routed taps, a byte each (graph_pool.cc)
      aux_buf_[i].resize((n + 3) / 4);
    if (node.op == OpType::kBatchNorm) aux_buf_[i].resize(2 * node.last_dim);
    if (node.op == OpType::kLayerNorm) aux_buf_[i].resize(2 * rows * node.width / node.last_dim);
    if (node.op == OpType::kMultiply || node.op == OpType::kMaximum ||
        node.op == OpType::kMinimum || node.op == OpType::kMath || node.op == OpType::kDivide ||
        node.op == OpType::kRowBroadcast)
      scratch = std::max(scratch, n);
  }
  scratch_.resize(scratch);
  for (size_t k = 0; k < output_specs_.size(); ++k)
    target_buf_[k].resize(rows * output_specs_[k].target_width);
  capacity_ = rows;  // (weight_buf_ is sized by run, for the run's weights a row)
}

void Graph::reset_profile() {
  for (double& v : prof_) v = 0.0;
  for (double& v : wait_) v = 0.0;
  barriers_ = 0;
}

// All threads of the run meet here between ops (each calls it the same number of times). A
// waiter spins, then yields its core a few times, then sleeps on the sense word (a futex) once
// the wait grows long: on an oversubscribed machine (other processes busy on every core) the
// thread it waits for may be descheduled for a whole time slice, which spinning or yielding
// would only prolong (the seed model's batch-32 epoch took 0.6-0.8 s on two threads, 1.7x one
// thread's time, beside two busy processes). The last to arrive flips the sense, and wakes
// sleepers only when some have gone to sleep, so a quick barrier costs no system call.
// When profiling, each thread's time waiting for the others is recorded: the step's load
// imbalance (thread 0's also as kProfWait, out of the category it interrupted).
void Graph::barrier(const Step& st) {
  if (st.nth <= 1) return;
  const bool timed = profiling_ && st.ith < kMaxProfiledThreads;
  const double t0 = timed ? now_seconds() : 0.0;
  const int phase = (*st.sense ^= 1);
  if (spin_.arrived.fetch_add(1, std::memory_order_acq_rel) == st.nth - 1) {
    spin_.arrived.store(0, std::memory_order_relaxed);
    spin_.sense.store(phase, std::memory_order_seq_cst);
    if (spin_.sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&spin_.sense);
  } else {
    constexpr int kSpinsBeforeYield = 512;  // ~10 µs of pauses
    constexpr int kYieldsBeforeSleep = 16;
    for (int spins = 0; spin_.sense.load(std::memory_order_acquire) != phase; ++spins) {
      if (spins < kSpinsBeforeYield) {
        cpu_relax();
      } else if (spins < kSpinsBeforeYield + kYieldsBeforeSleep) {
        std::this_thread::yield();
      } else {
        // Counted in before the sense is read again (both sequentially consistent, as the
        // flip and the count's read above): either the flipper sees a sleeper and wakes it,
        // or this thread sees the flip and does not sleep.
        const double asleep = now_seconds();
        spin_.sleepers.fetch_add(1, std::memory_order_seq_cst);
        while (spin_.sense.load(std::memory_order_seq_cst) != phase)
          futex_wait(&spin_.sense, phase ^ 1);
        spin_.sleepers.fetch_sub(1, std::memory_order_relaxed);
        *st.slept += now_seconds() - asleep;
        break;
      }
    }
  }
  if (!timed) return;
  const double dt = now_seconds() - t0;
  wait_[st.ith] += dt;
  if (st.ith != 0) return;
  ++barriers_;
  prof_[kProfWait] += dt;
  if (prof_open_ != nullptr) *prof_open_ -= dt;
}

std::vector<double> Graph::profile() const {
  return std::vector<double>(prof_, prof_ + kProfCount);
}

void Graph::gemm(const Step& st, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc, const GemmEpilogue* ep) {
  // GEMM time is moved from the enclosing node's elementwise slot to the GEMM slot.
  const double t0 = profiling_ && st.ith == 0 ? now_seconds() : 0.0;
  sgemm_share(st.ith, st.nth, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc,
              ep ? *ep : GemmEpilogue(), kMinGemmWorkPerThread);
  charge_time(st, t0, kProfGemm);
}

// Moves the time since t0 from slot `from` (by default a node's elementwise scope, which
// encloses it) to slot `to`.
void Graph::charge_time(const Step& st, double t0, ProfileCategory to, ProfileCategory from) {
  if (!profiling_ || st.ith != 0) return;
  const double dt = now_seconds() - t0;
  prof_[to] += dt;
  prof_[from] -= dt;
}

void Graph::local_gemm(const Step& st, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                       const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                       float* c, int64_t ldc, const GemmEpilogue* ep) {
  const double t0 = profiling_ && st.ith == 0 ? now_seconds() : 0.0;
  sgemm_share(0, 1, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc,
              ep ? *ep : GemmEpilogue());
  charge_time(st, t0, kProfGemm);
}

float* Graph::param(int node, int slot) const {
  const int p = nodes_[node].params[slot];
  return p >= 0 ? params_[p].data : nullptr;
}

float* Graph::param_grad(int p) {
  return grads_.data() + grad_offset_[p];
}

bool Graph::param_grad_wanted(int p) const {
  return p >= 0 && params_[p].trainable && param_first_writer_[p] >= 0;
}

void Graph::check_embedding_ids(const DataRefs& data) const {
  const int64_t rows = data.rows;
  for (const NodeSpec& node : nodes_) {
    if (node.op != OpType::kEmbedding) continue;
    // The ids: a model Input's values, or some of its columns (an IndexMap of it: x[:, 0]),
    // or a lookup's (checked when the graph was made).
    const NodeSpec& ids_node = nodes_[node.inputs[0]];
    if (ids_node.op == OpType::kCategorize) continue;
    const bool columns = ids_node.op == OpType::kIndexMap;
    const int in = columns ? ids_node.inputs[0] : node.inputs[0];
    size_t k = 0;
    while (k < inputs_.size() && inputs_[k] != in) ++k;
    if (data.is_sparse(k))
      throw std::invalid_argument(
          "An Embedding layer's ids cannot come from a sparse matrix; pass them as a dense "
          "integer array. Received: a sparse matrix as input " + std::to_string(k));
    const int64_t n = rows * nodes_[in].width;
    auto check_value = [&](double v) {
      if (!(v >= 0.0 && v < static_cast<double>(node.iattrs[0])) || v != std::floor(v))
        bad("Embedding ids must be integers in [0, input_dim=" +
            std::to_string(node.iattrs[0]) + "). Received: " + std::to_string(v));
    };
    auto check_each = [&](const auto* ids) {  // (ids of any type)
      if (!columns) {
        for (int64_t j = 0; j < n; ++j) check_value(static_cast<double>(ids[j]));
        return;
      }
      const int64_t width = nodes_[in].width;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c : ids_node.iattrs) check_value(static_cast<double>(ids[r * width + c]));
    };
    // (columns: the other columns may hold anything, so each picked value is checked)
    if (!data.is_raw(k)) {
      if (columns || any_bad_id(data.x[k], n, static_cast<float>(node.iattrs[0])))
        check_each(data.x[k]);
      continue;
    }
    // Integer ids: a branch-free range check (a negative id is a huge unsigned one) first.
    const uint64_t limit = static_cast<uint64_t>(node.iattrs[0]);
    auto check_ints = [&](const auto* ids) {
      bool out = columns;  // (picked columns: every picked value checked)
      if (!columns)
        for (int64_t j = 0; j < n; ++j)
          out |= static_cast<uint64_t>(static_cast<int64_t>(ids[j])) >= limit;
      if (out) check_each(ids);
    };
    const void* raw = data.raw[k].data;
    switch (data.raw[k].type) {
      case RawType::kFloat64:
        check_each(static_cast<const double*>(raw));
        break;
      case RawType::kInt32:
        check_ints(static_cast<const int32_t*>(raw));
        break;
      case RawType::kInt64:
        check_ints(static_cast<const int64_t*>(raw));
        break;
      case RawType::kUint8:
        check_ints(static_cast<const uint8_t*>(raw));
        break;
    }
  }
}

// --- one batch ---------------------------------------------------------------------------

void Graph::begin_batch(const Step& st, const DataRefs& data, bool targets,
                        const int64_t* perm, int64_t start, int64_t batch) {
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfGather], &prof_open_);
  const int par = st.parity;
  if (st.ith == 0) {
    for (size_t k = 0; k < inputs_.size(); ++k) {
      const int node = inputs_[k];
      out_[node] = perm ? gathered_x(par, k) : data.x[k] + start * nodes_[node].width;
    }
    if (targets) {
      for (size_t k = 0; k < output_specs_.size(); ++k) {
        target_[k] = perm ? gathered_target(par, k)
                          : data.y[k] + start * output_specs_[k].target_width;
        const float* sw = k < data.w.size() ? data.w[k] : nullptr;
        weight_[k] = sw == nullptr ? nullptr
                                   : (perm ? gathered_weight(par, k)
                                           : sw + start * weight_width_[k]);
      }
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {  // (in order: a reshape takes its input's)
      const NodeSpec& node = nodes_[i];
      if (node.op == OpType::kInput) continue;
      if (node.op == OpType::kTarget) {  // a loss function's y_true: the targets
        out_[i] = targets ? target_[node.iattrs[0]] : nullptr;
        continue;
      }
      const bool noop_random = (node.op == OpType::kDropout || node.op == OpType::kGaussianNoise) &&
                               ((!st.training && !always_random(node)) || node.fattrs[0] == 0.0);
      out_[i] = (node.op == OpType::kReshape || noop_random) ? out_[node.inputs[0]]
                                                              : out_buf_[i].data();
    }
    claimed_[par ^ 1].store(0, std::memory_order_relaxed);  // the next batch's, see solo_barrier
  }
  if (perm != nullptr) {
    // Rows copied ahead by idle threads during the last step are in place; every thread copies
    // a share of the rest.
    const int64_t* src = perm + start;
    const int64_t done = std::min(claimed_[par].load(std::memory_order_relaxed), batch);
    if (done > 0) {
      const Share sh = share_of(batch - done, st.ith, st.nth, 4);
      copy_rows(data, par, src, done + sh.lo, done + sh.hi, batch);
    } else {
      const Share sh = share_of(batch, st.ith, st.nth, 4);
      for (size_t k = 0; k < inputs_.size(); ++k) {
        const int64_t w = nodes_[inputs_[k]].width;
        const int parts = gather_split_[inputs_[k]];
        if (parts == 1) {
          gather_input(par, k, data, src, sh.lo, sh.hi, sh.hi, 0, w);
          continue;
        }
        // Each thread copies the feature columns of the row blocks of the kernel it owns, so
        // the first layer's partial products read only what their own core wrote.
        const Share cs = owned_columns(w, parts, st.ith, st.nth);
        if (cs.lo < cs.hi) gather_input(par, k, data, src, 0, batch, batch, cs.lo, cs.hi);
      }
      copy_targets(data, par, src, sh.lo, sh.hi);
    }
  }
  prefetch_next(st);
  barrier(st);
}

float* Graph::gathered_x(int parity, size_t k) {
  return parity ? stage_x_[k].data() : out_buf_[inputs_[k]].data();
}

float* Graph::gathered_target(int parity, size_t k) {
  return parity ? stage_target_[k].data() : target_buf_[k].data();
}

float* Graph::gathered_weight(int parity, size_t k) {
  return parity ? stage_weight_[k].data() : weight_buf_[k].data();
}

// Notes a NaN in input k's source row `row` (the first one noted is reported).
void Graph::note_nan(int parity, size_t k, int64_t row) {
  int64_t none = -1;
  nan_code_[parity].compare_exchange_strong(
      none, row * static_cast<int64_t>(inputs_.size()) + static_cast<int64_t>(k),
      std::memory_order_relaxed);
}

// n values of input k's source row `row` into the gather buffer, noting a NaN among them.
void Graph::copy_input(int parity, size_t k, const float* src, float* dst, int64_t n,
                       int64_t row) {
  if (copy_has_nan(src, dst, n)) note_nan(parity, k, row);
}

// The same for an input of another type: float64 rounded (NaN noted), integers converted.
void Graph::copy_raw(int parity, size_t k, RawType type, const void* src, float* dst, int64_t n,
                     int64_t row) {
  if (type == RawType::kFloat64) {
    if (copy_f64_has_nan(static_cast<const double*>(src), dst, n)) note_nan(parity, k, row);
  } else {
    ints_to_float(src, static_cast<int>(type), dst, n);
  }
}

namespace {

// Keras's L1/L2 penalty of n values, l1·Σ|x| + l2·Σx² (a term whose factor is 0 left out, as
// Keras does), the sums in double by the ISA's regularize kernel.
double l1_l2_penalty(const float* x, int64_t n, float l1, float l2) {
  double sums[2];
  elementwise_kernels()->regularize(x, nullptr, n, l1, l2, false, sums);
  return l1 * sums[0] + l2 * sums[1];
}

// Requests row `row`'s stored entries (values and column indices) of a sparse input, with
// prefetch_floats's locality kLocality.
template <int kLocality = 3>
void prefetch_sparse_row(const SparseRows& sp, int64_t row) {
  const int64_t e0 = sp.indptr[row], n = sp.indptr[row + 1] - e0;
  prefetch_floats<kLocality>(sp.values + e0, n);
  prefetch_floats<kLocality>(reinterpret_cast<const float*>(sp.indices + e0), n);
}

}  // namespace

// Columns [c0, c1) of rows [lo, hi) of input k (source row src[r] of x) into the gather
// buffer. Random rows miss every cache level: each row is requested whole before its copy, and
// the row kGatherAhead further on with it, so the rows' memory latencies overlap. On the seed
// model this took thread 0's gathering from 8.0 to 4.7 ms an epoch at batch 128 (the epoch
// 6% faster) and from 8.5 to 4.8 ms at batch 512. Rows up to `limit` of the batch may be
// requested (another thread may copy them).
void Graph::gather_input(int parity, size_t k, const DataRefs& data, const int64_t* src,
                         int64_t lo, int64_t hi, int64_t limit, int64_t c0, int64_t c1) {
  if (data.is_sparse(k)) {
    if (!sparse_direct_[k]) gather_sparse(parity, k, data.sparse[k], src, lo, hi, limit, c0, c1);
    return;
  }
  const int64_t w = nodes_[inputs_[k]].width, n = c1 - c0;
  float* buf = gathered_x(parity, k);
  const bool raw = data.is_raw(k);
  const char* x = raw ? static_cast<const char*>(data.raw[k].data)
                      : reinterpret_cast<const char*>(data.x[k]);
  const int64_t vb = raw ? static_cast<int64_t>(data.raw[k].value_bytes()) : 4;
  auto at = [&](int64_t r) { return x + (src[r] * w + c0) * vb; };  // row r's first value
  for (int64_t r = lo; r < std::min(hi, lo + kGatherAhead); ++r) prefetch_bytes(at(r), n * vb);
  for (int64_t r = lo; r < hi; ++r) {
    if (r + kGatherAhead < limit) prefetch_bytes(at(r + kGatherAhead), n * vb);
    if (raw) {
      copy_raw(parity, k, data.raw[k].type, at(r), buf + r * w + c0, n, src[r]);
    } else {
      copy_input(parity, k, reinterpret_cast<const float*>(at(r)), buf + r * w + c0, n, src[r]);
    }
  }
}

// gather_input for a sparse input: columns [c0, c1) of each row written out densely (zeros,
// then the stored values added in), a NaN among them noted as for dense rows. Each row's
// entries are requested kGatherAhead rows ahead of their copy.
void Graph::gather_sparse(int parity, size_t k, const SparseRows& sp, const int64_t* src,
                          int64_t lo, int64_t hi, int64_t limit, int64_t c0, int64_t c1) {
  const int64_t w = nodes_[inputs_[k]].width;
  float* buf = gathered_x(parity, k);
  for (int64_t r = lo; r < std::min(hi, lo + kGatherAhead); ++r) prefetch_sparse_row(sp, src[r]);
  for (int64_t r = lo; r < hi; ++r) {
    if (r + kGatherAhead < limit) prefetch_sparse_row(sp, src[r + kGatherAhead]);
    const int64_t row = src[r];
    float* dst = buf + r * w;
    std::memset(dst + c0, 0, (c1 - c0) * sizeof(float));
    bool nan = false;
    for (int64_t e = sp.indptr[row]; e < sp.indptr[row + 1]; ++e) {
      const int64_t c = sp.indices[e];
      if (c < c0 || c >= c1) continue;
      dst[c] += sp.values[e];
      nan = nan || std::isnan(sp.values[e]);
    }
    if (nan) note_nan(parity, k, row);
  }
}

// Whole rows [lo, hi) of a batch of `count` rows whose source rows are src[]: inputs, targets,
// sample weights.
void Graph::copy_rows(const DataRefs& data, int parity, const int64_t* src, int64_t lo,
                      int64_t hi, int64_t count) {
  for (size_t k = 0; k < inputs_.size(); ++k)
    gather_input(parity, k, data, src, lo, hi, count, 0, nodes_[inputs_[k]].width);
  copy_targets(data, parity, src, lo, hi);
}

// The targets and sample weights of rows [lo, hi) of a batch whose source rows are src[].
void Graph::copy_targets(const DataRefs& data, int parity, const int64_t* src, int64_t lo,
                         int64_t hi) {
  if (data.y.empty()) return;  // predict
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const int64_t w = output_specs_[k].target_width;
    float* ty = gathered_target(parity, k);
    for (int64_t r = lo; r < hi; ++r)
      std::memcpy(ty + r * w, data.y[k] + src[r] * w, w * sizeof(float));
    const float* sw = k < data.w.size() ? data.w[k] : nullptr;
    float* tw = gathered_weight(parity, k);
    const int64_t ww = weight_width_[k];
    if (sw != nullptr && ww == 1) {
      for (int64_t r = lo; r < hi; ++r) tw[r] = sw[src[r]];
    } else if (sw != nullptr) {
      for (int64_t r = lo; r < hi; ++r)
        std::memcpy(tw + r * ww, sw + src[r] * ww, ww * sizeof(float));
    }
  }
}

// Random rows of a large array miss every cache level. The next batch's rows are requested a
// slice at a time between the ops of this step (all at once would overflow the miss queues).
// With solo windows (has_window_) whole rows are requested, every thread every nth row, for
// they are copied by whichever thread claims them (see solo_barrier); otherwise each thread
// requests the rows or columns it copies itself in begin_batch.
void Graph::prefetch_next(const Step& st) {
  if (st.next_rows == nullptr || st.pf_done >= st.pf_chunks) return;
  const Share cr = share_of(st.next_count, st.pf_done++, st.pf_chunks);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const int node = inputs_[k];
    const int64_t w = nodes_[node].width;
    const int parts = has_window_ ? 1 : gather_split_[node];
    const Share own = share_of(st.next_count, st.ith, st.nth, 4);
    const Share cs = parts == 1 ? Share{0, w} : owned_columns(w, parts, st.ith, st.nth);
    const int64_t lo = parts == 1 && !has_window_ ? std::max(cr.lo, own.lo) : cr.lo;
    const int64_t hi = parts == 1 && !has_window_ ? std::min(cr.hi, own.hi) : cr.hi;
    const bool sparse = st.data->is_sparse(k);
    for (int64_t r = lo; r < hi; ++r) {
      if (has_window_ && r % st.nth != st.ith) continue;
      const int64_t row = st.next_rows[r];
      if (sparse) {
        prefetch_sparse_row<2>(st.data->sparse[k], row);
      } else if (st.data->is_raw(k)) {
        const RawInput& in = st.data->raw[k];
        const int64_t vb = static_cast<int64_t>(in.value_bytes());
        prefetch_bytes<2>(static_cast<const char*>(in.data) + (row * w + cs.lo) * vb,
                          (cs.hi - cs.lo) * vb);
      } else {
        prefetch_floats<2>(st.data->x[k] + row * w + cs.lo, cs.hi - cs.lo);
      }
    }
  }
  // The targets and sample weights of the slice's rows, by every thread: whichever copies
  // them finds them in its own cache (on 784-32-32-10 at batch 32 the other thread's 40-byte
  // target copies in the solo window took 5% of its time, each a miss; with the requests the
  // epoch was 2-3% faster).
  if (st.data->y.empty()) return;  // predict (as in copy_targets, one entry per output spec)
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const int64_t w = output_specs_[k].target_width, ww = weight_width_[k];
    const float* sw = k < st.data->w.size() ? st.data->w[k] : nullptr;
    for (int64_t r = cr.lo; r < cr.hi; ++r) {
      const int64_t row = st.next_rows[r];
      prefetch_floats<2>(st.data->y[k] + row * w, w);
      if (sw != nullptr) prefetch_floats<2>(sw + row * ww, ww);
    }
  }
}

// While thread 0 runs a chain of solo ops, the others copy rows of the next batch, claimed
// one at a time, until thread 0 ends the chain (window number `window`).
void Graph::gather_in_window(const Step& st, int64_t window) {
  if (st.next_rows == nullptr) return;
  std::atomic<int64_t>& claimed = claimed_[st.parity ^ 1];
  while (window_end_.load(std::memory_order_acquire) < window) {
    const int64_t r = claimed.fetch_add(1, std::memory_order_relaxed);
    if (r >= st.next_count) return;
    copy_rows(*st.data, st.parity ^ 1, st.next_rows, r, r + 1, st.next_count);
  }
}

// The barrier that ends a chain of solo ops: thread 0 marks the chain's end, the others use
// the wait to gather ahead.
void Graph::solo_barrier(const Step& st) {
  if (st.nth <= 1) return;
  const int64_t window = ++*st.windows;
  if (st.ith == 0) {
    window_end_.store(window, std::memory_order_release);
  } else {
    gather_in_window(st, window);
  }
  barrier(st);
}

// Nodes too small to split run whole on thread 0 ("solo"); a run of consecutive solo work
// (for example the output layer, the loss and its backward) needs no barrier inside it.
void Graph::plan_step(int64_t batch, int nth, bool training, bool targets) {
  const size_t n = nodes_.size();
  solo_fwd_.assign(n, false);
  solo_bwd_.assign(n, false);
  handoff_.assign(n, false);
  // The nodes a step runs: forward skips inputs and the identities of this mode (reshapes,
  // Dropout and noise outside training); backward visits every node that takes a gradient.
  fwd_order_.clear();
  bwd_order_.clear();
  for (size_t i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    const bool random = node.op == OpType::kDropout || node.op == OpType::kGaussianNoise;
    if (node.op == OpType::kInput || node.op == OpType::kReshape ||
        node.op == OpType::kTarget || (needs_targets_[i] && !targets) ||
        (random && ((!(training || training_forward_) && !always_random(node)) ||
                    node.fattrs[0] == 0.0)))
      continue;
    fwd_order_.push_back(static_cast<int>(i));
  }
  if (training)
    for (int i = static_cast<int>(n) - 1; i >= 0; --i)
      if (has_grad_[i] && nodes_[i].op != OpType::kInput) bwd_order_.push_back(i);
  // The optimizer's work per thread: the row blocks of cut kernels go with their owners,
  // other large parameters are shared out, and small ones go whole to the least loaded thread
  // (largest first).
  update_owner_.assign(params_.size(), -1);
  std::vector<int64_t> load(std::max(nth, 1), 0);
  std::vector<size_t> small;
  for (size_t p = 0; p < params_.size(); ++p) {
    const ParamSpec& ps = params_[p];
    const int split_node = kernel_split_node_[p];
    if (split_node >= 0) {
      for (int part = 0; part < ksplit_[split_node]; ++part) {
        int p0, p1;
        for (int t = 0; t < nth; ++t) {
          owned_parts(ksplit_[split_node], t, nth, &p0, &p1);
          const Share ks = k_part(split_node, part);
          if (part >= p0 && part < p1) load[t] += (ks.hi - ks.lo) * ps.cols;
        }
      }
    } else if (ps.size < kMinUpdatePerThread * nth) {
      small.push_back(p);
    } else {
      for (int t = 0; t < nth; ++t) {
        const Share sh = share_of(ps.size, t, nth, kMinUpdatePerThread, 16);
        load[t] += sh.hi - sh.lo;
      }
    }
  }
  std::stable_sort(small.begin(), small.end(),
                   [this](size_t a, size_t b) { return params_[a].size > params_[b].size; });
  for (size_t p : small) {
    const int t = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    update_owner_[p] = t;
    load[t] += params_[p].size;
  }
  if (nth <= 1) return;
  for (size_t i = 0; i < n; ++i) {
    const NodeSpec& node = nodes_[i];
    // A node's work grows with its inputs too: a pooling of 200 steps reads 200 times the
    // values it writes (the Keras text model's GlobalAveragePooling1D of 32×200×16 values was
    // solo on thread 0, which spent most of the step on it while the other thread waited).
    int64_t width = node.width;
    if (node.op != OpType::kDense)
      for (int in : node.inputs) width = std::max(width, nodes_[in].width);
    const double values = static_cast<double>(batch) * width;
    bool small = values < 2.0 * kMinElementsPerThread;
    if (node.op == OpType::kDense) {
      // (up to 1024 outputs: a 32×32 Dense at batch 32 solo made the 784-32-32-10 epoch
      // 2-6% faster, two barriers fewer a step)
      const double macs = values * nodes_[node.inputs[0]].last_dim;
      small = values <= 2.0 * kMinElementsPerThread && ksplit_[i] == 1 &&
              macs < kMaxSoloDenseMacs;
    }
    if (node.op == OpType::kBatchMatMul) small = batch_matmul_macs(node, batch) < kMaxSoloDenseMacs;
    if (node.op == OpType::kConv) small = conv_macs(node, batch) < kMaxSoloDenseMacs;
    if (rnn_op(node.op)) small = rnn_macs(node, batch) < kMaxSoloDenseMacs;
    if (node.op == OpType::kEmbedding || node.op == OpType::kBatchNorm) small = false;
    if (node.op == OpType::kBatchReduce) small = true;  // (its sums over every row)
    solo_fwd_[i] = small;
    solo_bwd_[i] = small && training;
  }
  for (size_t k = 0; training && k + 1 < fwd_order_.size(); ++k) {
    const int i = fwd_order_[k];
    handoff_[i] = ksplit_[i] > 1 && !solo_fwd_[i] && solo_fwd_[fwd_order_[k + 1]];
  }
}

// Whether Dense node i's forward this step is forward_dense_split's: a cut kernel in training,
// its input dense (a sparse one is read in place, by rows).
bool Graph::splits_forward(const Step& st, int i) const {
  return ksplit_[i] > 1 && sparse_input_[i] < 0 && st.training && st.noise < 0;
}

// Whether node i's forward ends with thread 0 alone (no barrier after it): a split Dense whose
// next node is solo, so thread 0 adds up the partial products itself (a few thousand values)
// and goes on, while the others go on to the solo chain's end and gather ahead there. One
// barrier fewer a step: 784-32-32-10 at batch 32 2-4% faster.
bool Graph::hands_off(const Step& st, int i) const {
  return handoff_[i] && splits_forward(st, i);
}

// Runs `order`'s nodes with `fn(step, node)`: a solo node by thread 0 alone, the others by
// every thread; threads meet between nodes except between consecutive solo ones (`then_solo`:
// whether what follows the last node is solo too). A kernel update the previous node deferred
// past that meeting (Step::deferred) runs first, on every thread.
template <typename Fn>
void Graph::run_nodes(const Step& st, const std::vector<int>& order,
                      const std::vector<bool>& solo, bool then_solo, Fn&& fn) {
  Step alone = st;
  alone.ith = 0;
  alone.nth = 1;
  for (size_t k = 0; k < order.size(); ++k) {
    const int i = order[k];
    deferred_kernel_update(st);
    if (!solo[i]) {
      fn(st, i);
    } else if (st.ith == 0) {
      fn(alone, i);
    }
    prefetch_next(st);
    const bool next_solo = k + 1 < order.size() ? solo[order[k + 1]] : then_solo;
    if (!solo[i]) {
      if (!(&order == &fwd_order_ && hands_off(st, i))) barrier(st);
    } else if (!next_solo) {
      solo_barrier(st);
    }
  }
}

void Graph::forward(const Step& st, bool then_solo) {
  run_nodes(st, fwd_order_, solo_fwd_, then_solo,
            [this](const Step& s, int i) { forward_node(s, i); });
}

// Whether output spec k's loss writes a gradient: not a metrics-only model output, nor a metric
// function's values (an output after the model's with loss weight 0).
bool Graph::takes_gradient(size_t k) const {
  const OutputSpec& o = output_specs_[k];
  return o.loss != Loss::kNone && !(k >= outputs_.size() && o.loss_weight == 0.0f);
}

// Whether output spec k is a metric function's values reduced over the batch by the function:
// each batch adds its value, and the run counts the batches (its weight sum).
bool Graph::counts_batches(size_t k) const {
  const OutputSpec& o = output_specs_[k];
  return k >= outputs_.size() && !takes_gradient(k) && o.loss_param != 0.0f;
}

// A batch-reduced loss or metric function's value for a batch whose n values are v: their
// mean (param 1) or sum (2), in double in order, then its tail of MathOps in float as Keras
// computes them; *slope gets d(value)/d(mean or sum), the tail's derivatives multiplied.
double Graph::batch_scalar(const OutputSpec& o, const float* v, int64_t n, double* slope) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += v[i];
  float x = static_cast<float>(o.loss_param == 1.0f ? sum / static_cast<double>(n) : sum);
  double d = 1.0;
  for (const std::array<float, 3>& op : o.tail) {
    const MathOp m = static_cast<MathOp>(static_cast<int>(op[0]));
    float y, g, one = 1.0f;
    math_forward(m, op[1], op[2], &x, &y, 1);
    math_backward(m, op[1], op[2], &x, &y, &one, &g, 1);
    d *= g;
    x = y;
  }
  *slope = d;
  return x;
}

namespace {

// How many of the n class ids y are not `id`.
int64_t rows_not_labelled(const float* y, int64_t n, float id) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += y[i] != id;
  return count;
}

}  // namespace

// The sum of output k's sample weights over the batch's `batch` rows, per sample: a row's
// weights (one, or one per loss row) count as their mean.
double Graph::batch_weight_sum(size_t k, int64_t batch) const {
  const int64_t ww = weight_width_[k];
  double sum = 0.0;
  for (int64_t i = 0; i < batch * ww; ++i) sum += weight_[k][i];
  return sum / static_cast<double>(ww);
}

// The loss and metrics of blocks [b0, b1) of the batch's samples, each block's sums kept apart
// (loss_part_, metric_part_) so that they add up in block order whatever thread did which.
void Graph::loss_blocks(const Step& st, int b0, int b1, bool with_grad) {
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfLoss], &prof_open_);
  const size_t nout = output_specs_.size(), nmet = static_cast<size_t>(num_metrics());
  for (int b = b0; b < b1; ++b) {
    const Share sb = share_of(st.batch, b, kLossBlocks);
    int m = 0;
    for (size_t k = 0; k < nout; ++k) {
      const OutputSpec& o = output_specs_[k];
      const NodeSpec& node = nodes_[o.node];
      const int64_t sub_rows = node.width / node.last_dim;  // loss rows per sample
      const int64_t cols = node.last_dim, r0 = sb.lo * sub_rows;
      const int64_t rows = (sb.hi - sb.lo) * sub_rows, all_rows = st.batch * sub_rows;
      const float* p = out_[o.node] + r0 * cols;
      const int64_t tw = o.target_width / sub_rows;  // target values per loss row
      const float* y = target_[k] + r0 * tw;
      // Weights per sample (each of its loss rows weighs the sample's), or per loss row.
      const int64_t ww = weight_width_[k];
      int64_t per_weight = ww == 1 ? sub_rows : 1;
      const float* w = weight_[k] ? weight_[k] + sb.lo * ww : nullptr;
      // Keras's mask: each loss row weighs its mask (1 kept, 0 not) times its sample weight
      // (mask_weight_), and the kept rows of the whole batch are counted by every block.
      const bool masked = o.mask_node >= 0;
      const float* keep = nullptr;
      const float* sample_w = w;  // (the sample weights as given: the batch metrics')
      const int64_t sample_per_weight = per_weight;
      int64_t kept_rows = 0;
      double masked_weight_sum = 0.0;
      if (masked) {
        const float* mv = out_[o.mask_node];
        for (int64_t r = 0; r < all_rows; ++r) {
          const bool kept = mv[r] != 0.0f;
          kept_rows += kept;
          if (kept) masked_weight_sum += weight_[k] ? weight_[k][r / per_weight] : 1.0f;
        }
        float* mk = mask_keep_[k].data();
        float* mw = mask_weight_[k].data();
        for (int64_t r = r0; r < r0 + rows; ++r) {
          mk[r] = mv[r] != 0.0f ? 1.0f : 0.0f;
          mw[r] = weight_[k] ? mk[r] * weight_[k][r / per_weight] : mk[r];
        }
        keep = mk + r0;
        w = mw + r0;
        per_weight = 1;
      }
      float* g = with_grad && takes_gradient(k) && requires_grad_[o.node]
                     ? grad_buf_[o.node].data() + r0 * cols
                     : nullptr;
      // Keras's hinge losses look at the whole batch's targets (each block reads them all,
      // once, for the loss and any hinge metric of this output).
      float hinge = -1.0f;
      auto param = [&](Loss loss, float own) {
        if (loss != Loss::kHinge && loss != Loss::kSquaredHinge) return own;
        if (hinge < 0.0f) hinge = hinge_targets(target_[k], st.batch * o.target_width);
        return hinge;
      };
      // The batch loss divides by the batch's loss rows, or with ignore_class by those of
      // another class (each block counts them over the whole batch; with none, the loss and
      // gradient are 0). The part is a per-sample sum: the batch loss times the batch size.
      const int64_t counted =
          masked ? kept_rows
          : o.ignores_a_class() && rows > 0
              ? rows_not_labelled(target_[k], all_rows, o.ignore_class) : all_rows;
      double divisor = static_cast<double>(std::max<int64_t>(counted, 1)) / o.loss_weight;
      // Keras's other reductions: the weighted sum (divided by nothing), or divided by the
      // batch's sum of sample weights (each block sums them over the whole batch; a sum of 0
      // gives a loss and gradient of 0, as divide_no_nan).
      double over = static_cast<double>(all_rows);  // what the loss sum is divided by
      if (o.reduction == OutputSpec::kSum) {
        over = 1.0;
      } else if (o.reduction == OutputSpec::kOverWeights && masked) {
        over = masked_weight_sum;
      } else if (o.reduction == OutputSpec::kOverWeights && w != nullptr) {
        over = batch_weight_sum(k, st.batch) * static_cast<double>(ww);  // (every weight given)
      }
      if (o.reduction != OutputSpec::kOverBatch) divisor = over / o.loss_weight;
      // A loss function that reduced the batch itself (its mean, param 1, or sum, param 2,
      // over every value, as Keras then reduces a scalar): each row weighs the batch's mean
      // sample weight instead of its own, and a sum scales with the values it adds.
      const int batch_reduced =
          o.loss == Loss::kMeanOfValues ? static_cast<int>(o.loss_param) : 0;
      double batch_value = 0.0, batch_w = 1.0;
      if (batch_reduced != 0 && rows > 0) {
        double slope;
        batch_value = batch_scalar(o, out_[o.node], all_rows * cols, &slope);
        if (w != nullptr) {
          batch_w = batch_weight_sum(k, st.batch) / static_cast<double>(st.batch);
        }
        // d(value)/d(each value): slope/values for a mean, slope for a sum
        const double scale = slope * o.loss_weight * batch_w;
        divisor = batch_reduced == 1 ? all_rows / scale : 1.0 / (scale * cols);
      }
      double part;
      if (batch_reduced != 0) {
        // Its gradient is one value for all (kMeanOfValues's with weight 1); a loss's part is
        // the batch's value times its mean weight, a share per sample; a metric's the batch's
        // value, shared by the blocks (the run counts its batches).
        if (g != nullptr)
          std::fill(g, g + rows * cols,
                    static_cast<float>(1.0 / divisor) / static_cast<float>(cols));
        const double samples = static_cast<double>(rows / sub_rows);
        part = takes_gradient(k) ? batch_value * batch_w * samples
                                 : batch_value * samples / static_cast<double>(st.batch);
      } else {
        const bool nothing = over == 0.0;  // (mean_with_sample_weight of zero weights)
        const double sum =
            rows == 0 ? 0.0
                      : loss_forward_backward(o.loss, p, y, rows, cols, g,
                                              nothing ? 1.0 : divisor, fused_[o.node], w,
                                              per_weight, param(o.loss, o.loss_param),
                                              o.loss_extra.data(), o.ignore_class);
        if (nothing && g != nullptr) std::fill(g, g + rows * cols, 0.0f);
        // (a share of the batch's loss times the batch size)
        part = o.reduction == OutputSpec::kOverBatch ? sum / static_cast<double>(sub_rows)
               : nothing ? 0.0 : sum * static_cast<double>(st.batch) / over;
        if (o.ignores_a_class() || (masked && o.reduction == OutputSpec::kOverBatch))
          part = counted > 0 ? sum * static_cast<double>(st.batch) / counted : 0.0;
      }
      loss_part_[b * nout + k] = part;
      for (const MetricSpec& spec : o.metrics) {
        const int64_t sums = spec.sums(cols);
        double* out = &metric_part_[b * nmet + m];
        if (rows == 0) {
          std::fill(out, out + sums, 0.0);
        } else if (masked && sums == 1 && !spec.ignores_a_class()) {  // (MeanMetricWrapper's)
          metric_sums(spec, p, y, rows, cols, spec.weighted ? w : keep, 1,
                      param(spec.loss, 0.0f), out);
        } else {
          metric_sums(spec, p, y, rows, cols, spec.weighted ? sample_w : nullptr,
                      sample_per_weight, param(spec.loss, 0.0f), out);
        }
        if (sums == 1) out[0] /= static_cast<double>(sub_rows);  // per sample
        m += static_cast<int>(sums);
      }
    }
    // Activity regularization: its sums over the block's samples (the loss takes the
    // batch's sum over the batch size, added to every row's mean loss: rows·sum/rows).
    const size_t nact = activity_nodes_.size();
    for (size_t j = 0; j < nact; ++j) {
      const NodeSpec& node = nodes_[activity_nodes_[j]];
      const float* yv = out_[activity_nodes_[j]];
      activity_part_[b * nact + j] = l1_l2_penalty(yv + sb.lo * node.width,
                                                   (sb.hi - sb.lo) * node.width,
                                                   node.activity_l1, node.activity_l2);
    }
  }
}

// Adds the blocks' sums to the run's totals in block order; returns the weighted loss sum.
double Graph::sum_loss_blocks(RunTotals* t) const {
  const size_t nout = output_specs_.size(), nmet = static_cast<size_t>(num_metrics());
  double total = 0.0;
  for (size_t k = 0; k < nout; ++k) {
    double sum = 0.0;
    for (int b = 0; b < kLossBlocks; ++b) sum += loss_part_[b * nout + k];
    t->output_loss_sums[k] += sum;
    total += output_specs_[k].loss_weight * sum;
  }
  for (size_t m = 0; m < nmet; ++m) {
    double sum = 0.0;
    for (int b = 0; b < kLossBlocks; ++b) sum += metric_part_[b * nmet + m];
    t->metric_sums[m] += sum;
  }
  const size_t nact = activity_nodes_.size();
  for (size_t j = 0; j < nact; ++j)
    for (int b = 0; b < kLossBlocks; ++b) total += activity_part_[b * nact + j];
  return total;
}

void Graph::backward(const Step& st) {
  run_nodes(st, bwd_order_, solo_bwd_, false,
            [this](const Step& s, int i) { backward_node(s, i); });
  deferred_kernel_update(st);
}

// The first node the backward pass runs, or -1.
int Graph::first_backward_node() const { return bwd_order_.empty() ? -1 : bwd_order_[0]; }

namespace {

// The factor w <- w·desired / (eps + norm) of Keras's norm constraints for a squared norm sq.
float constraint_factor(const ParamSpec& ps, double sq) {
  const float norm = static_cast<float>(std::sqrt(sq));
  float desired = 1.0f;  // kUnitNorm
  if (ps.constraint == ConstraintKind::kMaxNorm) {
    desired = std::min(std::max(norm, 0.0f), ps.c_max);
  } else if (ps.constraint == ConstraintKind::kMinMaxNorm) {
    desired = ps.c_rate * std::min(std::max(norm, ps.c_min), ps.c_max) +
              (1.0f - ps.c_rate) * norm;
  }
  return desired / (1e-7f + norm);
}

// Whether a parameter's constraint takes norms over axis 0 (per column: see finish_update).
bool column_constraint(const ParamSpec& ps) {
  return ps.trainable && ps.constraint != ConstraintKind::kNone &&
         ps.constraint != ConstraintKind::kNonNeg && ps.c_axis == 0;
}

// A constraint needing no other thread's values, on thread ith's share (of nth) of a (rows,
// cols) parameter: NonNeg a range of its values; a norm constraint over axis 1 (per row) a
// range of its rows, each row's squared norm in double in sum8's order.
void apply_local_constraint(const ParamSpec& ps, int ith, int nth) {
  float* w = ps.data;
  if (ps.constraint == ConstraintKind::kNonNeg) {
    const Share sh = share_of(ps.size, ith, nth, 4096, 16);
    for (int64_t j = sh.lo; j < sh.hi; ++j) w[j] = w[j] >= 0.0f ? w[j] : 0.0f;
    return;
  }
  const int64_t cols = ps.cols;
  const Share rs = share_of(ps.rows, ith, nth, std::max<int64_t>(1, 4096 / cols));
  for (int64_t r = rs.lo; r < rs.hi; ++r) {
    float* row = w + r * cols;
    elementwise_kernels()->scale(row, cols, constraint_factor(ps, sum_of_squares(row, cols)));
  }
}

}  // namespace

// Regularization (loss share returned, gradient added) and, when `apply`, the optimizer step
// and constraints: each thread a range of every parameter's elements. Clipping by norm needs
// every gradient whole first: regularization, then the norms, then the steps.
double Graph::regularize_and_update(const Step& st, bool apply) {
  ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfOptimizer], &prof_open_);
  double reg = 0.0;
  const bool by_norm = apply && needs_norms();
  for_each_update_share(st, apply, [&](size_t p, Share sh, bool regularized, bool step) {
    reg += update_share(st, p, sh, regularized, step && !by_norm);
  });
  if (!by_norm) return reg;
  barrier(st);  // every gradient complete, regularization included
  st.skipped = optimizer_.loss_scale && !gradients_finite(st);
  if (st.skipped) return reg;
  if (accumulator_slot(optimizer_) >= 0) {  // the norms are the averaged gradients'
    bool update = true;
    for_each_update_share(st, apply, [&](size_t p, Share sh, bool, bool step) {
      if (!step) return;
      update = accumulate_share(p, sh, grads_.data() + grad_offset_[p] + sh.lo);
      if (!update) ema_share(p, sh);
    });
    if (!update) return reg;
    barrier(st);  // (the norms' blocks span other threads' shares)
  }
  clip_and_update(st);
  return reg;
}

// Keras's gradient accumulation for one range of parameter p, its gradient at g: on an
// accumulating step, g added to the sums and false returned (no update); on an updating one,
// g = (g + sums) / N, the sums zeroed, and true. Without accumulation: true.
bool Graph::accumulate_share(size_t p, Share sh, float* g) {
  const int as = accumulator_slot(optimizer_);
  if (as < 0) return true;
  float* sums = slot(as, static_cast<int>(p)) + sh.lo;
  const int64_t n = sh.hi - sh.lo;
  if (accumulating()) {
    for (int64_t j = 0; j < n; ++j) sums[j] += g[j];
    return false;
  }
  const float steps = static_cast<float>(optimizer_.accumulation_steps);
  for (int64_t j = 0; j < n; ++j) g[j] = (g[j] + sums[j]) / steps;
  std::fill(sums, sums + n, 0.0f);
  return true;
}

// Whether parameter p takes a gradient: trainable, and written by a node or regularized.
bool Graph::param_has_grad(size_t p) const {
  return params_[p].trainable && (param_first_writer_[p] >= 0 || params_[p].regularized());
}

// LossScaleOptimizer's test, Keras's on the scaled gradients: whether every gradient times the
// scale is finite (each thread its update shares, then every thread reads all the answers).
bool Graph::gradients_finite(const Step& st) {
  const float scale = loss_scale_;
  bool finite = true;
  for_each_update_share(st, true, [&](size_t p, Share sh, bool, bool step) {
    if (!step || !finite) return;
    const float* g = grads_.data() + grad_offset_[p];
    for (int64_t j = sh.lo; j < sh.hi && finite; ++j) finite = std::isfinite(g[j] * scale);
  });
  finite_flags_[st.ith] = finite ? 1 : 0;
  barrier(st);
  for (int t = 0; t < st.nth; ++t) finite = finite && finite_flags_[t] != 0;
  barrier(st);  // (read before any thread's next step writes its flag)
  return finite;
}

bool Graph::clips_by_norm() const {
  return optimizer_.clipnorm > 0.0f || optimizer_.global_clipnorm > 0.0f;
}

// Whether the update needs norms of whole gradients or weights (clipping by norm, Lamb's
// trust ratios): every gradient complete first, so no update inside the backward.
bool Graph::needs_norms() const {
  return clips_by_norm() || optimizer_.kind == OptimizerKind::kLamb ||
         optimizer_.kind == OptimizerKind::kAdafactor ||
         optimizer_.kind == OptimizerKind::kMuon || optimizer_.loss_scale;
}

// Scales the gradients as Keras's clipnorm (each parameter's: g·c / max(‖g‖, c)) or
// global_clipnorm (all of them: g·c·min(1/N, 1/c), NaN when N is not finite) and steps them,
// each thread its update shares, a chunk at a time (scaled, then stepped while in L1). The
// squared sums are taken in fixed blocks (each in sum8's order), every nth by this thread, and
// added in block order by every thread alike.
void Graph::clip_and_update(const Step& st) {
  const ElementwiseKernels* ek = elementwise_kernels();
  const bool clip = clips_by_norm();
  for (size_t b = st.ith; b < clip_blocks_.size() && clip; b += st.nth) {
    const auto& [p, r] = clip_blocks_[b];
    clip_sums_[b] = sum_of_squares(grads_.data() + grad_offset_[p] + r.lo, r.hi - r.lo);
  }
  if (clip) barrier(st);
  const bool global = optimizer_.global_clipnorm > 0.0f;
  const float c = global ? optimizer_.global_clipnorm : optimizer_.clipnorm;
  // The norm of parameter p's blocks, or of all blocks when p < 0.
  auto norm = [&](int p) {
    double sum = 0.0;
    for (size_t b = 0; b < clip_blocks_.size(); ++b)
      if (p < 0 || clip_blocks_[b].first == p) sum += clip_sums_[b];
    return static_cast<float>(std::sqrt(sum));
  };
  float scale = 1.0f;
  if (global) {
    const float n = norm(-1);
    scale = c * std::min(1.0f / n, 1.0f / c) + (n - n);
  }
  constexpr int64_t kChunk = 2048;
  int last = -1;
  float denom = c;
  for_each_update_share(st, true, [&](size_t p, Share sh, bool, bool step) {
    if (!step) return;
    if (clip && !global && static_cast<int>(p) != last) {
      last = static_cast<int>(p);
      denom = std::max(norm(last), c);  // NaN stays NaN
    }
    for (int64_t lo = sh.lo; lo < sh.hi; lo += kChunk) {
      const Share ch{lo, std::min(sh.hi, lo + kChunk)};
      float* g = grads_.data() + grad_offset_[p] + ch.lo;
      if (clip && global) {
        ek->scale(g, ch.hi - ch.lo, scale);
      } else if (clip) {
        ek->scale_div(g, ch.hi - ch.lo, c, denom);
      }
      update_share(st, p, ch, false, true, nullptr, true);
    }
  });
  if (optimizer_.kind == OptimizerKind::kLamb) lamb_step(st);
  if (optimizer_.kind == OptimizerKind::kAdafactor || optimizer_.kind == OptimizerKind::kMuon)
    adafactor_step(st);
}

// Adafactor's and Muon's updates, after every share's gradient is final (clipped): each
// variable whole on one thread (the stepped variables dealt out in turn), so the same for any
// thread count.
void Graph::adafactor_step(const Step& st) {
  barrier(st);  // every gradient clipped
  int k = 0;
  for (size_t p = 0; p < params_.size(); ++p) {
    if (!param_has_grad(p) || update_in_backward_[p]) continue;
    if (k++ % st.nth != st.ith) continue;
    const ParamSpec& ps = params_[p];
    const size_t f = 2 * p;
    const int64_t d2 = f + 1 < optimizer_.factor_dims.size() ? optimizer_.factor_dims[f] : 0;
    const int64_t d1 =
        f + 1 < optimizer_.factor_dims.size() ? optimizer_.factor_dims[f + 1] : ps.size;
    const OptimizerStep& step = no_decay_[p] ? st.opt_no_decay : st.opt;
    const int q = static_cast<int>(p);
    if (optimizer_.kind == OptimizerKind::kMuon) {
      muon_update(step.args, d2, d1, ps.data, grads_.data() + grad_offset_[p], slot(0, q),
                  slot(1, q), ps.size);
    } else {
      adafactor_update(step.args, d2, d1, ps.data, grads_.data() + grad_offset_[p], slot(0, q),
                       slot(1, q), slot(2, q), ps.size);
    }
    ema_share(p, Share{0, ps.size});
  }
}

// Lamb's second pass, after every share's moments (its update r in the gradient buffer): the
// squared norms of each variable's weights and r in the fixed blocks (as clipping's), then
// every share steps by its variable's trust ratio, and its moving average follows.
void Graph::lamb_step(const Step& st) {
  barrier(st);  // every r complete
  for (size_t b = st.ith; b < clip_blocks_.size(); b += st.nth) {
    const auto& [p, r] = clip_blocks_[b];
    lamb_sums_[2 * b] = sum_of_squares(params_[p].data + r.lo, r.hi - r.lo);
    lamb_sums_[2 * b + 1] = sum_of_squares(grads_.data() + grad_offset_[p] + r.lo, r.hi - r.lo);
  }
  barrier(st);
  int last = -1;
  float scale = 0.0f;
  for_each_update_share(st, true, [&](size_t p, Share sh, bool, bool step) {
    if (!step || sh.lo >= sh.hi) return;
    if (static_cast<int>(p) != last) {
      last = static_cast<int>(p);
      double ws = 0.0, rs = 0.0;
      for (size_t b = 0; b < clip_blocks_.size(); ++b)
        if (clip_blocks_[b].first == last) ws += lamb_sums_[2 * b], rs += lamb_sums_[2 * b + 1];
      scale = lamb_ratio(ws, rs) * st.opt.args.learning_rate;
    }
    lamb_apply(params_[p].data + sh.lo, grads_.data() + grad_offset_[p] + sh.lo, sh.hi - sh.lo,
               scale);
    ema_share(p, sh);
  });
}

// Calls fn(p, share, regularized, step) for every range of every parameter this thread
// regularizes or updates (step: whether it takes an optimizer step here, when `apply`).
template <typename Fn>
void Graph::for_each_update_share(const Step& st, bool apply, Fn&& fn) const {
  for (size_t p = 0; p < params_.size(); ++p) {
    const ParamSpec& ps = params_[p];
    const bool regularized = ps.regularized();
    const bool has_grad = param_has_grad(p);
    if (!regularized && !(apply && has_grad)) continue;
    if (apply && update_in_backward_[p]) continue;  // done block by block in the backward
    const int split_node = kernel_split_node_[p];
    const int parts = split_node >= 0 ? ksplit_[split_node] : 1;
    for (int part = 0; part < parts; ++part) {
      Share sh;
      if (parts > 1) {  // the row blocks this thread computed the gradient of
        int p0, p1;
        owned_parts(parts, st.ith, st.nth, &p0, &p1);
        if (part < p0 || part >= p1) continue;
        const Share ks = k_part(split_node, part);
        sh = {ks.lo * ps.cols, ks.hi * ps.cols};
      } else if (update_owner_[p] >= 0) {
        // (a region granted fewer threads than planned, as OMP_DYNAMIC allows, gives the
        // missing threads' parameters to its last one)
        sh = st.ith == std::min(update_owner_[p], st.nth - 1) ? Share{0, ps.size} : Share{0, 0};
      } else {
        sh = share_of(ps.size, st.ith, st.nth, kMinUpdatePerThread, 16);
      }
      fn(p, sh, regularized, apply && has_grad);
    }
  }
}

// One range of one parameter: its regularization (value returned, gradient added) and, when
// `apply`, the optimizer step. The range's gradient is at gblock when given (rows of a cut
// kernel's block, handed over by its gradient GEMM: see update_rows), else in the gradient
// buffer.
double Graph::update_share(const Step& st, size_t p, Share sh, bool regularized, bool apply,
                           float* gblock, bool summed) {
  if (sh.lo >= sh.hi) return 0.0;
  const ParamSpec& ps = params_[p];
  const int64_t off = grad_offset_[p];
  float* g = gblock != nullptr ? gblock : grads_.data() + off + sh.lo;  // g[0]: element sh.lo
  double reg = 0.0;
  if (regularized) {
    const bool first = param_first_writer_[p] < 0;  // no gradient from the graph
    double sums[2];
    elementwise_kernels()->regularize(ps.data + sh.lo, ps.trainable ? g : nullptr,
                                      sh.hi - sh.lo, ps.l1, ps.l2, first, sums);
    reg = ps.l1 * sums[0] + ps.l2 * sums[1];  // (a term whose factor is 0 is 0, as in Keras)
  }
  if (!apply) return reg;
  if (!summed && !accumulate_share(p, sh, g)) {  // (an accumulating step: no update)
    ema_share(p, sh);
    return reg;
  }
  if (const float v = optimizer_.clipvalue; v > 0.0f)
    elementwise_kernels()->clamp(g, sh.hi - sh.lo, -v, v);
  if (optimizer_.kind == OptimizerKind::kAdafactor || optimizer_.kind == OptimizerKind::kMuon)
    return reg;  // (adafactor_step)
  float* slot_ptrs[8];
  for (int s = 0; s < slot_count_; ++s)
    slot_ptrs[s] = slot(s, static_cast<int>(p)) + sh.lo;
  const OptimizerStep& step = no_decay_[p] ? st.opt_no_decay : st.opt;
  if (step.kind == OptimizerKind::kLamb) {  // its moments; the step follows (lamb_step)
    lamb_moments(step.args, ps.data + sh.lo, g, slot_ptrs[0], slot_ptrs[1], sh.hi - sh.lo);
    return reg;
  }
  apply_optimizer_step(step, ps.data + sh.lo, g, slot_ptrs, sh.hi - sh.lo);
  ema_share(p, sh);  // (while the range is in cache)
  return reg;
}

// use_ema's moving average of parameter p's range sh, after the step (Keras's order: before
// the constraints): avg = m·avg + (1 - m)·w, m = 0 before the first update.
void Graph::ema_share(size_t p, Share sh) {
  const int es = ema_slot(optimizer_);
  if (es < 0) return;
  const float m = updates() == 0 ? 0.0f : optimizer_.ema_momentum, m1 = 1.0f - m;
  float* avg = slot(es, static_cast<int>(p));
  elementwise_kernels()->moving_average(avg + sh.lo, params_[p].data + sh.lo, sh.hi - sh.lo, m,
                                        m1);
}

// Ends a training step's update: Keras's weight constraints, then the step count. A norm over
// axis 0 (per column) is taken in two phases, each thread on a range of the rows, which its
// own update mostly wrote: its partial column sums of squares (in double, row by row), then,
// after a barrier, every thread adds the threads' partials in thread order and scales its
// rows. (The next step reads the weights after begin_batch's barrier.)
void Graph::finish_update(const Step& st) {
  barrier(st);  // every share of every parameter is updated
  if (optimizer_.loss_scale && st.ith == 0) {  // Keras's LossScaleOptimizer's scale
    if (st.skipped) {
      scale_counter_ = 0;
      loss_scale_ *= 0.5f;
    } else if (scale_counter_ == optimizer_.growth_steps - 1) {
      scale_counter_ = 0;
      loss_scale_ *= 2.0f;
    } else {
      ++scale_counter_;
    }
  }
  if (st.skipped) return;  // (no update, no count: the next step reads after a barrier)
  if (const int es = ema_slot(optimizer_); es >= 0) {
    // Keras's use_ema: the averages of the weights the step updated were taken with their
    // update (ema_share); here those of trainable weights without a gradient, as Keras
    // averages every trainable weight, and every ema_overwrite_frequency updates the weights
    // take them (the update count is the step's before it counts; with gradient accumulation
    // every step averages, as Keras's do).
    const int64_t freq = optimizer_.ema_overwrite_frequency;
    const bool overwrite = freq > 0 && (updates() + 1) % freq == 0;
    for (size_t p = 0; p < params_.size(); ++p) {
      if (!params_[p].trainable) continue;
      const Share sh = share_of(params_[p].size, st.ith, st.nth, kMinUpdatePerThread, 16);
      if (!param_has_grad(p)) ema_share(p, sh);
      if (!overwrite) continue;
      const float* avg = slot(es, static_cast<int>(p));
      std::copy(avg + sh.lo, avg + sh.hi, params_[p].data + sh.lo);
    }
    if (overwrite && has_constraints_) barrier(st);  // (the constraints read whole weights)
  }
  if (has_constraints_) {
    ProfileScope scope(profiling_ && st.ith == 0, &prof_[kProfOptimizer], &prof_open_);
    const ElementwiseKernels* ek = elementwise_kernels();
    const int64_t stride = constraint_cols_;
    int64_t off = 0;
    for (const ParamSpec& ps : params_) {
      if (!column_constraint(ps)) continue;
      const Share rs = share_of(ps.rows, st.ith, st.nth);
      double* part = constraint_sums_.data() + st.ith * stride + off;
      std::fill(part, part + ps.cols, 0.0);
      ek->col_sq_sums(ps.data + rs.lo * ps.cols, rs.hi - rs.lo, ps.cols, ps.cols, part);
      off += ps.cols;
    }
    if (off > 0) barrier(st);
    off = 0;
    float* f = constraint_factors_[st.ith].data();
    for (const ParamSpec& ps : params_) {
      if (!ps.trainable || ps.constraint == ConstraintKind::kNone) continue;
      if (!column_constraint(ps)) {
        apply_local_constraint(ps, st.ith, st.nth);
        continue;
      }
      for (int64_t c = 0; c < ps.cols; ++c) {
        double sq = 0.0;
        for (int t = 0; t < st.nth; ++t) sq += constraint_sums_[t * stride + off + c];
        f[c] = constraint_factor(ps, sq);
      }
      const Share rs = share_of(ps.rows, st.ith, st.nth);
      ek->scale_cols(ps.data + rs.lo * ps.cols, rs.hi - rs.lo, ps.cols, ps.cols, f);
      off += ps.cols;
    }
  }
  if (st.ith == 0) ++iterations_;
}

// --- runs of batches ---------------------------------------------------------------------

int Graph::threads_for(int64_t batch, bool training) const {
  // Splitting a step pays once its work outweighs the barriers between ops and the traffic
  // between cores. Measured here (2 cores, processes alternated): two threads win 1.3-1.6x
  // from about 0.6M multiply-adds a step (784-16-10 at batch 16, 784-8-10 at batch 32, the
  // seed model at batch 4 to 16, 784-32-32-10 at batch 32) and lose around 0.3M (784-16-10 at
  // batch 8: 0.9x; 784-32-32-10 at batch 2: 0.55x, though 1.35x at batch 4). Beyond two
  // threads, one per 2M. A training step also updates every trainable value, each counted as
  // kUpdateMacs multiply-adds: an Embedding(10000, 32) text model under Adam, 0.2M
  // multiply-adds a step at batch 32 but 0.32M table values to step, ran on one thread.
  double macs = 0.0;
  for (const NodeSpec& node : nodes_) {
    if (node.op == OpType::kDense)
      macs += 3.0 * static_cast<double>(batch) * nodes_[node.inputs[0]].width * node.last_dim;
    if (node.op == OpType::kBatchMatMul) macs += 3.0 * batch_matmul_macs(node, batch);
    if (node.op == OpType::kConv) macs += 3.0 * conv_macs(node, batch);
    if (node.op == OpType::kWindowPool) macs += 2.0 * pool_reads(node, batch);
    if (rnn_op(node.op)) macs += 3.0 * rnn_macs(node, batch);
  }
  if (training)
    for (const ParamSpec& p : params_)
      if (p.trainable) macs += kUpdateMacs * static_cast<double>(p.size);
  const int by_work = macs < kMacsForTwoThreads
                          ? 1
                          : std::max(2, static_cast<int>(macs / kMacsPerThread));
  return std::max(1, std::min(get_num_threads(), by_work));
}

std::string Graph::slots_mismatch(const Graph& other) const {
  if (!compiled_ || !other.compiled_)
    return std::string("both graphs must be compiled. Received: ") +
           (compiled_ ? "" : "this graph not compiled") +
           (!compiled_ && !other.compiled_ ? " and " : "") +
           (other.compiled_ ? "" : "the other graph not compiled");
  if (optimizer_.kind != other.optimizer_.kind || slot_count_ != other.slot_count_)
    return "the graphs' optimizers differ. Received: " + std::to_string(slot_count_) +
           " slots of optimizer kind " + std::to_string(static_cast<int>(optimizer_.kind)) +
           " and " + std::to_string(other.slot_count_) + " slots of optimizer kind " +
           std::to_string(static_cast<int>(other.optimizer_.kind));
  if (params_.size() != other.params_.size())
    return "the graphs' parameters differ. Received: " + std::to_string(params_.size()) +
           " parameters and " + std::to_string(other.params_.size());
  for (size_t p = 0; p < params_.size(); ++p)
    if (params_[p].size != other.params_[p].size)
      return "the graphs' parameters differ. Received: parameter " + std::to_string(p) +
             " of " + std::to_string(params_[p].size) + " values and of " +
             std::to_string(other.params_[p].size);
  return "";
}

bool Graph::reads_sparse_in_place(size_t k, bool training) const {
  if (training && param_writers_.size() != params_.size()) return false;  // not compiled
  for (const NodeSpec& node : nodes_)
    for (int in : node.inputs)
      if (in == inputs_[k] &&
          !(node.op == OpType::kDense && node.inputs.size() == 1 &&
            (!training || param_writers_[node.params[0]] <= 1)))
        return false;
  return true;
}

RunTotals Graph::run(Mode mode, const DataRefs& data, const int64_t* perm, int64_t batch_size,
                     int64_t first_batch, int64_t num_batches, const std::vector<float*>* out,
                     const RunTotals* carry) {
  batch_size = clamped_batch(batch_size, data.rows);
  RunTotals t;
  if (carry != nullptr) {
    t = *carry;
  } else {
    t.output_loss_sums.assign(output_specs_.size(), 0.0);
    t.metric_sums.assign(num_metrics(), 0.0);
    t.weight_sums.assign(2 * output_specs_.size(), 0.0);
  }
  const int64_t begin = batch_row(first_batch, batch_size, data.rows);
  const int64_t end = batch_row(first_batch + std::min(num_batches, data.rows + 1), batch_size,
                                data.rows);
  if (begin >= end) return t;
  ProfileScope whole(profiling_, &prof_[kProfRun], nullptr);  // not open: barriers leave it
  const bool training = mode == Mode::kTrain || mode == Mode::kGradients;
  if (training) ensure_grads();
  check_embedding_ids(data);
  // Sparse inputs read in place by Dense consumers (sparse_direct_) need no gather buffer.
  run_data_ = &data;
  sparse_direct_.assign(inputs_.size(), false);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    if (!data.is_sparse(k)) continue;
    sparse_direct_[k] = reads_sparse_in_place(k, training);
  }
  check_state_batches(begin, end, batch_size);
  ensure_capacity(std::min(batch_size, end - begin));
  weight_width_.assign(output_specs_.size(), 1);
  for (size_t k = 0; k < output_specs_.size(); ++k) {
    const NodeSpec& out = nodes_[output_specs_[k].node];
    const int64_t ww = k < data.w_width.size() ? data.w_width[k] : 1;
    if (ww != 1 && ww != out.width / out.last_dim)
      throw std::invalid_argument(
          "sample weights: one a row or one per loss row (" +
          std::to_string(out.width / out.last_dim) + ") of output " + std::to_string(k) +
          ". Received: " + std::to_string(ww) + " a row");
    weight_width_[k] = ww;
    const int64_t n = std::min(batch_size, end - begin) * ww;
    if (static_cast<int64_t>(weight_buf_[k].size()) < n) weight_buf_[k].resize(n);
    if (output_specs_[k].mask_node >= 0) {
      const int64_t m = std::min(batch_size, end - begin) * (out.width / out.last_dim);
      if (static_cast<int64_t>(mask_keep_[k].size()) < m) {
        mask_keep_[k].resize(m);
        mask_weight_[k].resize(m);
      }
    }
  }
  // Sparse inputs and inputs of other types than float32 always run with a row order
  // (gathered, or read through it): in order when not shuffled.
  std::vector<int64_t> in_order;
  if (perm == nullptr && (data.any_sparse() || data.any_raw())) {
    in_order.resize(data.rows);
    for (int64_t r = 0; r < data.rows; ++r) in_order[r] = r;
    perm = in_order.data();
  }
  update_stats_ = mode == Mode::kTrain;
  const double reg_eval = mode == Mode::kEvaluate ? regularization_value() : 0.0;
  std::vector<double> reg_share(64, 0.0);
  const int wanted_threads =
      std::min(threads_for(std::min(batch_size, end - begin), training), 64);
  const int nt = machine_oversubscribed() ? 1 : wanted_threads;
  last_run_threads_ = nt;
  plan_step(std::min(batch_size, end - begin), nt, training, mode != Mode::kPredict);
  conv_per_thread_ = 0;  // kConv's im2col tiles, one a thread
  for (const NodeSpec& node : nodes_) {
    ConvGeom g;
    if (node.op == OpType::kConv && conv_geom(node.iattrs, &g) && !g.direct())
      conv_per_thread_ = std::max(conv_per_thread_, conv_tile_rows(g) * g.depth());
  }
  if (static_cast<int64_t>(conv_scratch_.size()) < nt * conv_per_thread_)
    conv_scratch_.resize(nt * conv_per_thread_);
  int64_t loss_values = 0;
  for (const OutputSpec& o : output_specs_) loss_values += nodes_[o.node].width;
  loss_solo_ = nt <= 1 || std::min(batch_size, end - begin) * loss_values <
                              2 * kMinElementsPerThread;
  int pf_chunks = 1;  // slices the next batch's prefetch is spread over: one per op of a step
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const OpType op = nodes_[i].op;
    if (op != OpType::kInput && op != OpType::kReshape) ++pf_chunks;
    if (training && has_grad_[i] && op != OpType::kInput) ++pf_chunks;
  }
  // A next batch too large to wait in L2 beside the step's own data is not requested ahead
  // (kMaxPrefetchBytesPerThread): its rows would only push the step's out.
  int64_t dense_row_bytes = 0;
  for (size_t k = 0; k < inputs_.size(); ++k)
    if (!data.is_sparse(k))
      dense_row_bytes += nodes_[inputs_[k]].width *
                         static_cast<int64_t>(data.is_raw(k) ? data.raw[k].value_bytes() : 4);
  if (batch_size * dense_row_bytes > kMaxPrefetchBytesPerThread * nt) pf_chunks = 0;
  bool any_solo = mode != Mode::kPredict && loss_solo_;
  for (int i : fwd_order_) any_solo = any_solo || solo_fwd_[i];
  for (int i : bwd_order_) any_solo = any_solo || solo_bwd_[i];
  has_window_ = nt > 1 && perm != nullptr && any_solo && end - begin > batch_size;
  if (has_window_) {  // the second set of gather buffers, batch-sized, only when used
    const int64_t rows = std::min(batch_size, end - begin);
    for (size_t k = 0; k < inputs_.size(); ++k)
      if (!sparse_direct_[k] &&
          static_cast<int64_t>(stage_x_[k].size()) < rows * nodes_[inputs_[k]].width)
        stage_x_[k].resize(rows * nodes_[inputs_[k]].width);
    for (size_t k = 0; k < output_specs_.size(); ++k)
      if (static_cast<int64_t>(stage_weight_[k].size()) < rows * weight_width_[k]) {
        stage_target_[k].resize(rows * output_specs_[k].target_width);
        stage_weight_[k].resize(rows * weight_width_[k]);
      }
  }
  // Cut kernels updated block by block in the backward: the gradient GEMM hands each few rows
  // to the optimizer as it finishes them (update_rows), from a small buffer in L1 when the
  // batch fits one k block, else from the thread's scratch, sized here for the largest block.
  // Never through the gradient buffer (784-256-256-10 at batch 32: 4-5% faster with the
  // scratch, 1-2% more with the rows handed over; the seed model 1-4% more).
  update_in_backward_.assign(params_.size(), false);
  int64_t block_grad = 0;
  clip_blocks_.clear();
  if (mode == Mode::kTrain && needs_norms()) {
    // The norms need every gradient whole: no update in the backward.
    for (size_t p = 0; p < params_.size(); ++p) {
      if (!param_has_grad(p)) continue;
      const int64_t size = params_[p].size;
      for (int64_t lo = 0; lo < size; lo += kClipBlock)
        clip_blocks_.push_back({static_cast<int>(p), Share{lo, std::min(size, lo + kClipBlock)}});
    }
    clip_sums_.assign(clip_blocks_.size(), 0.0);
    lamb_sums_.assign(2 * clip_blocks_.size(), 0.0);
  }
  const bool may_update_in_backward = mode == Mode::kTrain && !needs_norms();
  for (size_t p = 0; p < params_.size() && may_update_in_backward; ++p) {
    const int writer = param_first_writer_[p], cut = kernel_split_node_[p];
    const bool one_writer = params_[p].trainable && param_writers_[p] == 1 && writer >= 0;
    if (cut >= 0) {
      update_in_backward_[p] = one_writer && writer == cut;
    } else {
      // Other Dense kernels with one gradient writer (not a solo node) are updated in the
      // backward too: their gradient GEMM runs after the barrier that ends the node's input
      // gradient product, the last read of the kernel, and hands its rows to the optimizer
      // (deferred_kernel_update). 784-64-64-64-64-10 at batch 32: 3-4% faster; wider or at
      // batch 128 about the same. Kernels small enough to go whole to one thread's update
      // stay in the update pass (784-32-32-10 at batch 128: 3% slower deferred), and so do
      // biases (updating them as their gradient is summed, on the thread that sums it: 1-3%
      // slower).
      update_in_backward_[p] = one_writer && nodes_[writer].op == OpType::kDense &&
                               nodes_[writer].params[0] == static_cast<int>(p) &&
                               !solo_bwd_[writer] &&
                               params_[p].size >= kMinUpdatePerThread * nt;
    }
    if (update_in_backward_[p] && cut >= 0) {
      for (int part = 0; part < ksplit_[cut]; ++part) {
        const Share ks = k_part(cut, part);
        block_grad = std::max(block_grad, (ks.hi - ks.lo) * params_[p].cols);
      }
    }
  }
  // Sparse inputs read in place by their Dense consumers: their kernels' gradients are written
  // whole (zero where the batch has no value) and updated in the update pass.
  sparse_touched_.assign(nodes_.size() * static_cast<size_t>(nt), {});
  if (static_cast<int>(sparse_lists_.size()) < nt) sparse_lists_.resize(nt);
  if (has_constraints_ && mode == Mode::kTrain) {  // finish_update's column norms
    int64_t cols = 0, widest = 0;
    for (const ParamSpec& ps : params_)
      if (column_constraint(ps)) cols += ps.cols, widest = std::max(widest, ps.cols);
    constraint_cols_ = cols;
    constraint_sums_.assign(static_cast<size_t>(nt * cols), 0.0);
    constraint_factors_.resize(nt);
    for (std::vector<float>& f : constraint_factors_) f.resize(widest);
  }
  sparse_input_.assign(nodes_.size(), -1);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    if (!sparse_direct_[k]) continue;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].op != OpType::kDense || nodes_[i].inputs[0] != inputs_[k]) continue;
      sparse_input_[i] = static_cast<int>(k);
      const int kp = nodes_[i].params[0];
      if (!training) continue;  // (the parameters' gradient tables exist once compiled)
      update_in_backward_[kp] = false;
      if (param_grad_wanted(kp))
        std::fill(param_grad(kp), param_grad(kp) + params_[kp].size, 0.0f);
    }
  }
  if (static_cast<int>(block_grad_.size()) < nt) block_grad_.resize(nt);
  if (static_cast<int>(nadam_products_.size()) < nt) nadam_products_.resize(nt);
  if (static_cast<int>(finite_flags_.size()) < nt) finite_flags_.resize(nt);
  for (int t = 0; t < nt; ++t)
    if (static_cast<int64_t>(block_grad_[t].size()) < block_grad)
      block_grad_[t].resize(block_grad);
  spin_.arrived.store(0);
  spin_.sense.store(0);
  claimed_[0].store(0);
  claimed_[1].store(0);
  nan_code_[0].store(-1);
  nan_code_[1].store(-1);
  window_end_.store(0);

  int64_t stop_code = -1;
  int64_t batches_run = 0;
  std::atomic<bool> nonfinite{false};  // (set by thread 0 after a batch, read after a barrier)
  const bool stop_nonfinite = stop_on_nonfinite_ && mode == Mode::kTrain;
  // Runs that want several threads note how long their threads were kept off their cores
  // while runnable (the kernel's count, or else wall time less CPU time and sleep in
  // barriers) for the oversubscription verdict (cpu.h). Only runs of kJudgedBatches or more:
  // the clocks take a system call each.
  const bool judge = wanted_threads > 1 && adaptive_threads() &&
                     end - begin >= kJudgedBatches * batch_size;
  const double run_start = judge ? now_seconds() : 0.0;
  double off_core[64] = {};  // per thread, seconds
  auto body = [&](int ith, int nth) {
    const double wait0 = judge ? thread_wait_seconds() : -1.0;
    const bool clocks = judge && wait0 < 0.0;  // (the fallback: wall and CPU time)
    const double wall0 = clocks ? now_seconds() : 0.0;
    const double cpu0 = clocks ? thread_cpu_seconds() : 0.0;
    int64_t windows = 0;
    int sense = 0;
    double slept = 0.0;
    for (int64_t start = begin; start < end; start += batch_size) {
      Step st;
      st.ith = ith;
      st.nth = nth;
      st.batch = std::min(batch_size, end - start);
      st.training = training || training_forward_;  // (the noise layers' mode)
      // a noisy predict: keys no training step uses (negative iterations) and no other
      // call's or pass's
      if (training_forward_ || (always_noise_ && !training))
        st.noise = (int64_t{1} << 62) + (noisy_predicts_ << 31) + start;
      st.data = &data;
      // Batches alternate between the two gather buffers only when the next one is gathered
      // ahead; otherwise every batch uses the nodes' own.
      st.parity = has_window_ ? static_cast<int>(((start - begin) / batch_size) & 1) : 0;
      st.windows = &windows;
      st.sense = &sense;
      st.slept = &slept;
      st.rows = perm != nullptr ? perm + start : nullptr;
      const int64_t next = std::min(batch_size, end - (start + st.batch));
      if (perm != nullptr && next > 0) {
        st.next_rows = perm + start + st.batch;
        st.next_count = next;
        st.pf_chunks = pf_chunks;
      }
      begin_batch(st, data, mode != Mode::kPredict, perm, start, st.batch);
      // (after begin_batch's barrier: thread 0 counted the previous step before it)
      if (mode == Mode::kTrain)
        st.opt = prepare_optimizer_step(optimizer_, updates() + 1, &nadam_products_[ith],
                                        iterations_);
      if (mode == Mode::kTrain && !optimizer_.no_decay.empty()) {
        st.opt_no_decay = st.opt;
        st.opt_no_decay.args.decay = 0.0f;
        st.opt_no_decay.args.adam_decay = 0.0f;
      }
      // A NaN among the gathered inputs stops the run before this batch trains (every
      // thread reads the same code: it was written before begin_batch's barrier).
      // (predict passes NaN through: its sparse rows are gathered, and noted, too)
      const int64_t nan_code = nan_code_[st.parity].load(std::memory_order_relaxed);
      if (nan_code >= 0 && mode != Mode::kPredict) {
        if (ith == 0) stop_code = nan_code;
        break;
      }
      // the batch before made the loss NaN or infinite (written before begin_batch's barrier)
      if (stop_nonfinite && nonfinite.load(std::memory_order_relaxed)) break;
      // The loss runs on thread 0: with a solo last node before it and a solo first backward
      // node after it, no barrier separates them.
      forward(st, mode != Mode::kPredict && loss_solo_);
      if (mode == Mode::kPredict) {
        const Share rs = share_of(st.batch, ith, nth, 64);
        for (size_t k = 0; k < outputs_.size(); ++k) {
          const int64_t w = nodes_[outputs_[k]].width;
          if (rs.lo < rs.hi)
            std::memcpy((*out)[k] + (start + rs.lo) * w, out_[outputs_[k]] + rs.lo * w,
                        (rs.hi - rs.lo) * w * sizeof(float));
        }
        barrier(st);
        continue;
      }
      // The loss in fixed sample blocks: all of them on thread 0 when small ("solo"),
      // otherwise each thread a range of blocks, then a barrier.
      if (loss_solo_) {
        if (ith == 0) loss_blocks(st, 0, kLossBlocks, training);
      } else {
        loss_blocks(st, kLossBlocks * ith / nth, kLossBlocks * (ith + 1) / nth, training);
        barrier(st);
      }
      if (ith == 0) {
        t.loss_sum += sum_loss_blocks(&t) + reg_eval * static_cast<double>(st.batch);
        t.rows += st.batch;
        for (size_t k = 0; k < output_specs_.size(); ++k) {
          double sw = static_cast<double>(st.batch);
          if (counts_batches(k)) {  // a batch-reduced metric function: Keras's mean over batches
            t.weight_sums[k] += 1.0;
            continue;
          }
          if (weight_[k] != nullptr) sw = batch_weight_sum(k, st.batch);
          const OutputSpec& o = output_specs_[k];
          if (o.mask_node >= 0) {  // the masked weights' and the mask's means per sample
            const NodeSpec& node = nodes_[o.node];
            const int64_t sub_rows = node.width / node.last_dim, n = st.batch * sub_rows;
            double kept = 0.0, weighted = 0.0;
            for (int64_t r = 0; r < n; ++r) {
              kept += mask_keep_[k][r];
              weighted += mask_weight_[k][r];
            }
            sw = weighted / static_cast<double>(sub_rows);
            t.weight_sums[output_specs_.size() + k] += kept / static_cast<double>(sub_rows);
          }
          t.weight_sums[k] += sw;
        }
      }
      const int first_bwd = training ? first_backward_node() : -1;
      if (loss_solo_ && !(first_bwd >= 0 && solo_bwd_[first_bwd])) solo_barrier(st);
      if (!training) continue;
      backward(st);
      reg_share[ith] = regularize_and_update(st, mode == Mode::kTrain) + st.fused_reg;
      if (mode == Mode::kTrain) {
        finish_update(st);
      } else {
        barrier(st);
      }
      if (ith == 0) {
        double reg = 0.0;
        for (int k = 0; k < nth; ++k) reg += reg_share[k];
        t.loss_sum += reg * static_cast<double>(st.batch);
        ++batches_run;
        if (stop_nonfinite && !std::isfinite(t.loss_sum))
          nonfinite.store(true, std::memory_order_relaxed);
      }
    }
    if (judge) {
      const double off = clocks ? (now_seconds() - wall0) - (thread_cpu_seconds() - cpu0) - slept
                                : thread_wait_seconds() - wait0;
      off_core[ith] = std::max(0.0, off);
    }
  };
  loss_part_.assign(static_cast<size_t>(kLossBlocks) * output_specs_.size(), 0.0);
  metric_part_.assign(static_cast<size_t>(kLossBlocks) * num_metrics(), 0.0);
  activity_part_.assign(static_cast<size_t>(kLossBlocks) * activity_nodes_.size(), 0.0);
  if (nt <= 1) {
    FlushDenormals flush;
    body(0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    {
      FlushDenormals flush;
      body(omp_get_thread_num(), omp_get_num_threads());
    }
  }
  if (judge) note_run(now_seconds() - run_start, *std::max_element(off_core, off_core + nt), nt);
  if (mode == Mode::kTrain) last_batches_run_ = batches_run;
  if (stop_code >= 0) {
    const int64_t inputs = static_cast<int64_t>(inputs_.size());
    t.nan_input = static_cast<int>(stop_code % inputs);
    t.nan_row = stop_code / inputs;
  }
  if (always_noise_ && !training && !training_forward_) ++noisy_predicts_;  // (fresh keys)
  return t;
}

double Graph::regularization_value() const {
  double total = 0.0;
  for (const ParamSpec& ps : params_) {
    if (!ps.regularized()) continue;
    total += l1_l2_penalty(ps.data, ps.size, ps.l1, ps.l2);
  }
  return total;
}

RunTotals Graph::train_batches(const DataRefs& data, const int64_t* perm, int64_t batch_size,
                               int64_t first_batch, int64_t num_batches, bool continue_totals) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  // An epoch's totals carry over between the calls that make it up, so they are summed batch
  // by batch in one order however fit groups its batches into calls.
  const bool continues = continue_totals && epoch_totals_.output_loss_sums.size() ==
                                                   output_specs_.size();
  epoch_totals_ = run(Mode::kTrain, data, perm, batch_size, first_batch, num_batches, nullptr,
                      continues ? &epoch_totals_ : nullptr);
  return epoch_totals_;
}

RunTotals Graph::evaluate(const DataRefs& data, int64_t batch_size, bool check_nan) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  // Gathering the rows in order checks them on the way, cheaper than a pass over x before a
  // run that reads it again (evaluate on 60,000 rows: 3-6% faster on the seed model, the same
  // on 784-128-10).
  std::vector<int64_t> in_order;
  if (check_nan) {
    in_order.resize(data.rows);
    for (int64_t r = 0; r < data.rows; ++r) in_order[r] = r;
  }
  batch_size = clamped_batch(batch_size, data.rows);
  return run(Mode::kEvaluate, data, check_nan ? in_order.data() : nullptr, batch_size, 0,
             (data.rows + batch_size - 1) / batch_size, nullptr);
}

RunTotals Graph::gradients(const DataRefs& data, std::vector<float>* grads) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!compiled_) throw std::logic_error("the graph is not compiled");
  RunTotals t = run(Mode::kGradients, data, nullptr, data.rows, 0, 1, nullptr);
  grads->assign(param_total_, 0.0f);
  for (size_t p = 0; p < params_.size(); ++p) {
    if (!param_has_grad(p)) continue;
    const ParamSpec& ps = params_[p];
    std::copy(grads_.begin() + grad_offset_[p], grads_.begin() + grad_offset_[p] + ps.size,
              grads->begin() + grad_offset_[p]);
  }
  return t;
}

void Graph::predict(const DataRefs& data, int64_t batch_size, const std::vector<float*>& out,
                    bool training_forward) {
  std::lock_guard<std::mutex> lock(mutex_);
  training_forward_ = training_forward;
  batch_size = clamped_batch(batch_size, data.rows);
  try {
    run(Mode::kPredict, data, nullptr, batch_size, 0, (data.rows + batch_size - 1) / batch_size,
        &out);
  } catch (...) {
    training_forward_ = false;
    throw;
  }
  if (training_forward_) ++noisy_predicts_;
  training_forward_ = false;
}

void Graph::predict(const std::vector<const float*>& x, int64_t rows, int64_t batch_size,
                    const std::vector<float*>& out) {
  DataRefs data;
  data.x = x;
  data.rows = rows;
  predict(data, batch_size, out);
}

}  // namespace densitron
