// The graph executor: a DAG of nodes in topological order, run forward, loss, backward,
// optimizer update and metrics for runs of batches in one call. Every node's output is a
// row-major block of batch × width floats (width = the product of its per-sample shape; ops
// that work on the last axis see rows = batch·width/last_dim of last_dim values). Node buffers
// are sized once for the largest batch seen and reused; nothing is allocated per step.
// Parameters live in caller-owned float32 buffers (the Python Variables); gradients and
// optimizer slots live here.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "densitron/gemm.h"
#include "densitron/ops.h"
#include "densitron/optim.h"

namespace densitron {

enum class OpType : int {
  kInput = 0,
  kDense = 1,         // params {kernel (in, units), bias or -1}; activation fused
  kActivation = 2,     // i {} or, for a softmax over a middle axis, {outer, length, inner}
  kAdd = 3,
  kConcatenate = 4,   // i {blocks per sample}: joins each input's block-th slices
  kSubtract = 5,
  kMultiply = 6,
  kAverage = 7,
  kMaximum = 8,
  kMinimum = 9,
  kDropout = 10,        // f {rate[, a, b, alpha']}, i {seed, ...}; identity outside training;
                        // x/(1 - rate) or 0, or with a, b (AlphaDropout) a·(x or alpha') + b
  kGaussianNoise = 11,  // f {stddev}, i {seed[, multiplicative[, always]]}; identity outside
                        // training (unless always): x + stddev·n, or x·(1 + stddev·n)
                        // (GaussianDropout), n ~ N(0, 1)
  kBatchNorm = 12,      // params {gamma|-1, beta|-1, moving_mean, moving_var}, f {momentum, eps},
                        // i {} or {frozen}: 1 runs in inference mode when training (Keras's
                        // BatchNormalization with trainable=False)
  kLayerNorm = 13,      // params {gamma|-1, beta|-1}, f {eps}, i {} or {rms}: with rms 1,
                        // RMSNormalization's x·gamma/sqrt(mean(x²) + eps) (beta -1)
  kReshape = 14,        // Flatten, Reshape, Identity: the same values, a new shape
  kEmbedding = 15,      // params {table (input_dim, output_dim)}; input holds integer ids
  kPool = 16,           // i {outer, length, inner, max[, masked]}: each sample's (outer,
                        // length, inner) values reduced over length, to their mean (max 0),
                        // maximum (max 1) or sum (max 2, ops.sum); masked: the mean over the
                        // steps whose id in input 1 (a model Input of `length` ids a sample)
                        // is not 0
  kStandardize = 17,    // i {invert, features}; params {mean, variance} (then a = mean,
                        // b = max(sqrt(variance), 1e-7)) or none, with f {a..., b...}: feature
                        // c = j mod features of each value j is (x - a_c) / b_c, or with invert
                        // a_c + x·b_c (Keras's Normalization; Rescaling as a_c + x·b_c)
  kDot = 18,            // i {d, normalize}: each sample's d values of its two inputs, summed
                        // products; normalize: each vector first scaled by min(1/‖v‖, 1e7)
  kUnitNorm = 19,       // f {1/eps}: each row of the last axis times min(1/‖row‖, 1/eps)
  kIndexMap = 20,       // i {m_0, ..., m_width-1}: value j of each sample is its input's value
                        // m_j, or 0 where m_j = -1 (Permute, RepeatVector, Cropping1D,
                        // ZeroPadding1D), or -1e9 where m_j = -2 (Keras's masked attention
                        // score); the gradient adds each dy_j into m_j
  kCategorize = 21,     // i {depth, k, mode[, digitize]}, f {boundaries...}: each input value
                        // becomes an id (digitizing, by default with boundaries: how many are
                        // <= it (NaN: all); else the value truncated); mode -1 writes the ids,
                        // 0 a one-hot row of depth per id, 1 (multi-hot) and 2 (counts) one row
                        // of depth per k ids; an id outside [0, depth) sets nothing
                        // (CategoryEncoding, Discretization). i {depth, k, mode, 2, n_oov,
                        // oov_start}, f {n increasing keys, their n ids, default}: a lookup,
                        // the value truncated to an integer, its key's id, else oov_start +
                        // floormod(value, n_oov) when n_oov > 1, else the default (NaN too)
                        // (IntegerLookup). No gradient
  kBiasAdd = 22,        // params {b (last_dim)}: x + b along the last axis (a layer's own
                        // weight added in its call(): `x + self.b`)
  kScaleBy = 23,        // params {s (last_dim)}: x · s along the last axis (`x * self.s`)
  kPReLU = 24,          // params {alpha (n values)}, i {n}: each value x where x > 0, else
                        // alpha·x, alpha[f mod n] for the value's flat index f (n divides the
                        // width: alpha over a sample's last axes, shared over the leading ones)
  kMath = 25,           // i {MathOp}, f {a, b}: each value through one of Keras's elementwise
                        // ops (densitron.ops.square, sqrt, clip... on a symbolic tensor)
  kDivide = 26,         // x0 / x1 of one width (a divisor per row: kRowBroadcast)
  kTarget = 27,         // i {k}: output k's targets of the batch's rows (a loss function's
                        // y_true); it and every node reading it run only with targets (not in
                        // predict)
  kRowBroadcast = 28,   // i {mode}: x0 combined with x1, one value per row of x0's last axis:
                        // x0 + x1 (mode 0), x0 - x1 (1), x1 - x0 (2), x0·x1 (3), x0 / x1 (4),
                        // as NumPy broadcasts a last axis of 1
  kArgReduce = 30,      // i {min}: the index of each row's first maximum (min 1: minimum) over
                        // its input's last axis, as a float (a NaN counts as the extreme, as
                        // NumPy's); no gradient (ops.argmax, ops.argmin)
  kBatchMatMul = 32,    // i {groups, m, k, n, trans_a, trans_b}: per sample, groups products
                        // C_g = op(A_g)·op(B_g) (m × k by k × n); inputs A (groups·m·k values
                        // a sample, k × m each when trans_a) and B (groups·k·n, n × k each
                        // when trans_b); width groups·m·n (attention's scores and mixing)
  kModeSelect = 31,     // two inputs of its width: the first in training (and in a noisy
                        // predict), the second outside it; the gradient goes to the first
                        // (a call() that branches on `training`, traced once per mode)
  kBatchReduce = 29,    // i {mode}: the mean (mode 0) or sum (1) of every value of the batch,
                        // one value a sample (the same in every row: a batch's scalar combined
                        // with tensors, ops.mean(y_true) in y_true - ops.mean(y_true)); always
                        // solo, so its sums run in one order
  kConv = 33,           // params {kernel (K = prod(k)·cin, filters), bias or -1}, i {rank,
                        // in[rank], cin, k[rank], strides[rank], dilation[rank],
                        // pad_before[rank], out[rank], filters} (rank 1 to 3): a channels_last
                        // convolution (batch, in..., cin) → (batch, out..., filters), output
                        // position o's window reading input o·stride - pad_before + t·dilation
                        // at kernel offset t (0 where that leaves the input: the padding after
                        // is implied), times Keras's kernel (k..., cin, filters); bias and
                        // activation fused as kDense's. Tiles of output rows are laid out
                        // (im2col) in a per-thread buffer and multiplied by the kernel.
                        // With groups 1 and a last attribute transposed = 1: that
                        // convolution's input gradient (Keras's ConvTranspose, kernel
                        // (k..., cin, filters) as Keras's (k..., out channels, in
                        // channels)), input (batch, out..., filters) → (batch, in..., cin),
                        // bias (cin) and activation after: x·Wᵀ scattered back (col2im)
  kWindowPool = 34,     // i {rank, in[rank], channels, k[rank], strides[rank], pad_before[rank],
                        // out[rank], mode} (rank 1 to 3): Keras's windowed pooling of a
                        // channels_last input (batch, in..., channels) → (batch, out...,
                        // channels), output position o's window the inputs o·stride -
                        // pad_before + t, 0 <= t < k, that lie inside the input (each window
                        // must meet it): their maximum (mode 1; the gradient goes to the first
                        // maximum in window order, as XLA's select-and-scatter) or their mean
                        // (mode 0; divided by the count inside, as Keras's 'same' average).
                        // Threads share (sample, position) items forward and samples backward
  kLSTM = 36,           // params {kernel (features, 4·units), recurrent_kernel (units,
                        // 4·units), bias (4·units) or -1}, i {steps, features, units,
                        // sequences, backwards[, zero_masked[, masked, states_in, states_out[,
                        // variant[, gate_inputs, seed]]]]}: Keras's LSTM (gates i, f, g,
                        // o; sigmoid and tanh) over each sample's steps (steps × features
                        // values), from zero states, in reverse with backwards; width
                        // steps·units (sequences 1: every step's output, in the order
                        // processed) or units (the last). An optional input 1 of steps values
                        // masks the steps where it is 0: they keep the states, and output the
                        // state h (zeros with zero_masked 1). With the 12 iattrs, f {rate}:
                        // Keras's recurrent dropout in training (rate > 0), h_{t-1} times one
                        // mask a gate (the seed's, as a Dropout node's of gates·units values)
                        // before each gate's product; gate_inputs 1: the input holds one copy
                        // of the features a gate (steps × gates·features), gate q's product
                        // from copy q (Keras's per-gate input dropout, done before the node)
  kGRU = 37,            // as kLSTM, Keras's GRU with reset_after (gates z, r, h): kernel
                        // (features, 3·units), recurrent_kernel (units, 3·units), bias (2,
                        // 3·units: the input's, the recurrent product's) or -1; variant 1:
                        // reset_after=False, (r·h_{t-1})·R_h, bias (3·units)
  kSimpleRNN = 38,      // as kLSTM, Keras's SimpleRNN: h = tanh (or relu, variant 1) of
                        // x·W + h·R + b; kernel (features, units), recurrent kernel (units,
                        // units), bias (units) or -1; gate_inputs 0
                        // Stateful (Keras's stateful=True), all three: params {..., h state,
                        // LSTM's c state} (batch × units each, non-trainable), where the steps
                        // start (unless states come in) and the forward leaves its final
                        // states; every batch of a run must then have that batch size
};

// kMath's operations on each value x (a and b: the node's fattrs).
enum class MathOp : int {
  kSquare = 0,      // x·x
  kAbs = 1,         // |x|
  kSqrt = 2,        // √x
  kLog = 3,         // log x
  kExp = 4,         // e^x
  kLog1p = 5,       // log(1 + x)
  kClip = 6,        // min(max(x, a), b): the gradient passes where a <= x <= b
  kPower = 7,       // x^a
  kDivideBy = 8,    // x / a
  kDivideInto = 9,  // a / x
  // comparisons with a: 1 where true, else 0 (no gradient)
  kGreater = 10,
  kGreaterEqual = 11,
  kLess = 12,
  kLessEqual = 13,
  kEqual = 14,
  kNotEqual = 15,
  // values with no gradient
  kStopGradient = 16,  // x
  kSign = 17,          // -1, 0 or 1 (NaN stays)
  kFloor = 18,
  kCeil = 19,
  kRound = 20,         // to nearest, ties to even (NumPy's and Keras's round)
  // linear, for a batch-reduced scalar's tail (see OutputSpec::tail)
  kMultiplyBy = 21,  // x·a
  kAdd = 22,         // x + a
};

struct NodeSpec {
  OpType op = OpType::kInput;
  std::vector<int> inputs;  // indices of earlier nodes
  int64_t width = 0;        // values per sample of this node's output
  int64_t last_dim = 0;     // size of the output's last axis (0: width)
  Activation activation = Activation::kLinear;
  ActivationParams act_params;
  std::vector<int> params;     // op-specific parameter indices (-1: absent)
  std::vector<double> fattrs;  // op-specific float attributes
  std::vector<int64_t> iattrs; // op-specific integer attributes
  // Keras's activity regularization of the output (any layer): (l1·Σ|y| + l2·Σy²) / batch size
  // added to the loss, its gradient to the output's.
  float activity_l1 = 0.0f, activity_l2 = 0.0f;
  bool has_activity() const { return activity_l1 != 0.0f || activity_l2 != 0.0f; }
};

enum class ConstraintKind : int { kNone = 0, kMaxNorm = 1, kMinMaxNorm = 2, kNonNeg = 3,
                                  kUnitNorm = 4 };

struct ParamSpec {
  float* data = nullptr;
  int64_t size = 0;
  bool trainable = true;
  // Shape as (rows, cols) for norm constraints: a vector is (1, size) with axis 0 taken whole.
  int64_t rows = 1, cols = 1;
  float l1 = 0.0f, l2 = 0.0f;  // regularization added to the loss
  bool regularized() const { return l1 != 0.0f || l2 != 0.0f; }
  ConstraintKind constraint = ConstraintKind::kNone;
  float c_min = 0.0f, c_max = 0.0f, c_rate = 1.0f;
  int c_axis = 0;
};

struct MetricSpec {
  bool is_accuracy = true;
  AccuracyKind accuracy = AccuracyKind::kCategorical;
  float threshold = 0.5f;
  Loss loss = Loss::kMeanSquaredError;  // when !is_accuracy: a loss-shaped metric (mse, mae...)
  bool weighted = false;  // Keras's weighted_metrics: each row's value times its sample weight
  int64_t class_id = -1, top_k = 0;  // the confusion counts' (see accuracy_sum)
  // AUC with explicit thresholds: Keras's full sorted list (its -eps and 1 + eps ends
  // included); `threshold` then holds their count.
  std::vector<float> thresholds;
  // Whether the spec keeps bucket counts (auc_buckets), their count n given as `threshold`.
  bool buckets() const {
    return is_accuracy && (accuracy == AccuracyKind::kAucBuckets ||
                           accuracy == AccuracyKind::kAucBucketsLogits ||
                           accuracy == AccuracyKind::kAucColumnBuckets ||
                           accuracy == AccuracyKind::kAucColumnBucketsLogits ||
                           accuracy == AccuracyKind::kThresholdBuckets);
  }
  bool bucket_count_valid() const {
    return threshold >= 2.0f && threshold <= 1e6f && threshold == std::floor(threshold);
  }
  // The engine sums the spec keeps for an output of `cols` columns: 1, an AUC's 2n bucket
  // counts, R2Score's and the F-scores' 4 per column, or the IoUs' 3 per class.
  bool iou() const {
    return is_accuracy && (accuracy == AccuracyKind::kIoUSums ||
                           accuracy == AccuracyKind::kIoUSumsArgmaxPred ||
                           accuracy == AccuracyKind::kIoUSumsArgmax ||
                           accuracy == AccuracyKind::kBinaryIoUSums);
  }
  // Whether the targets are one class id a row (the sparse accuracies and cross-entropies).
  bool sparse_targets() const {
    return is_accuracy ? accuracy == AccuracyKind::kSparseCategorical ||
                             accuracy == AccuracyKind::kSparseTopKCategorical ||
                             accuracy == AccuracyKind::kIoUSumsArgmaxPred
                       : loss == Loss::kSparseCategoricalCrossentropy ||
                             loss == Loss::kSparseCategoricalCrossentropyLogits;
  }
  // A loss-shaped metric with Keras's ignore_class (the sparse cross-entropy's), given as
  // `threshold` (NaN: none): two sums, the loss over the other rows and their weight.
  bool ignores_a_class() const { return !is_accuracy && !std::isnan(threshold); }
  int64_t sums(int64_t cols) const {
    if (!is_accuracy) return ignores_a_class() ? 2 : 1;
    if (iou()) return 3 * top_k;  // top_k: the classes
    if (accuracy == AccuracyKind::kAucColumnBuckets ||
        accuracy == AccuracyKind::kAucColumnBucketsLogits)
      return 2 * static_cast<int64_t>(threshold) * cols;
    if (buckets()) return 2 * static_cast<int64_t>(threshold);
    return accuracy == AccuracyKind::kR2Sums || accuracy == AccuracyKind::kFScoreSums ? 4 * cols
                                                                                      : 1;
  }
};

// The engine's sums of one metric over rows × cols predictions p and their targets y (rows ×
// cols values, or one class id a row for the sparse kinds), written to out (spec.sums(cols)
// values): a mean metric's sum of its per-row values, each times its row's weight
// w[r / rows_per_weight] when w is given; an AUC's bucket counts, or R2Score's or an F-score's
// column sums. hinge: the hinge losses' reading of {0, 1} targets (see hinge_targets).
void metric_sums(const MetricSpec& spec, const float* p, const float* y, int64_t rows,
                 int64_t cols, const float* w, int64_t rows_per_weight, float hinge,
                 double* out);

struct OutputSpec {
  int node = -1;
  Loss loss = Loss::kMeanSquaredError;
  float loss_weight = 1.0f;
  int64_t target_width = 0;  // values per sample of y for this output (1 for sparse labels)
  std::vector<MetricSpec> metrics;
  // The loss's own argument (label smoothing of the loss's targets, not the metrics'; Huber's
  // delta), see ops.h; the hinge losses' is decided batch by batch (hinge_targets).
  float loss_param = 0.0f;
  // The focal losses' {gamma, alpha, apply_class_balancing}, see ops.h.
  std::array<float, 3> loss_extra{2.0f, 0.25f, 0.0f};
  // The sparse cross-entropies' ignore_class (NaN: none): rows with that class id take no
  // loss, and a batch's loss is the sum over the others divided by their count, as Keras's
  // mask reduces it.
  float ignore_class = std::numeric_limits<float>::quiet_NaN();
  bool ignores_a_class() const { return !std::isnan(ignore_class); }
  // Keras's loss reduction of the batch: kOverBatch (sum_over_batch_size, mean: the weighted
  // sum over the loss rows' count), kSum (the weighted sum), kOverWeights
  // (mean_with_sample_weight: the weighted sum over the sum of the samples' weights, 0 when
  // that is 0; without weights kOverBatch's).
  enum Reduction : int { kOverBatch = 0, kSum = 1, kOverWeights = 2 };
  int reduction = kOverBatch;
  // Keras's mask on the output (Embedding(mask_zero=True)'s ids, Masking's kept steps): the
  // node holding it, one value a loss row (a value other than 0 keeps the row), or -1. Its
  // rows weigh each loss row, times any sample weight (apply_mask): kOverBatch divides the
  // batch's weighted sum by the count of kept rows (0 when none is kept), kOverWeights by the
  // sum of the masked weights; the simple metrics weigh their rows by the mask, the weighted
  // ones by the masked weights (Keras's MeanMetricWrapper).
  int mask_node = -1;
  // A loss or metric function that reduced the batch itself (kMeanOfValues with param 1, its
  // mean, or 2, its sum, over every value): the MathOps {op, a, b} it applied to that scalar
  // afterwards, in order (Keras's sqrt(mean(...)) of an RMSE), each batch's value through them.
  std::vector<std::array<float, 3>> tail;
};

// One model input held as compressed sparse rows (scipy's CSR layout): row r's stored values
// are values[e] at columns indices[e] for e in [indptr[r], indptr[r + 1]); every other value is
// zero, and values stored twice at one column add up. The engine writes the rows it gathers
// out densely, so the rest of a step is the same as for a dense input.
struct SparseRows {
  const int64_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const float* values = nullptr;
};

// Whole-array data for a run: one row-major array per model input and per output target,
// each with `rows` rows. An input with an entry in `sparse` (indptr set) is read from there,
// and its x entry is nullptr.
// An input in another type than float32, read as it is: each gathered row is converted to
// float32 (rounded to nearest, as NumPy's astype).
enum class RawType : int { kFloat64 = 0, kInt32 = 1, kInt64 = 2, kUint8 = 3 };
struct RawInput {
  const void* data = nullptr;
  RawType type = RawType::kFloat64;
  size_t value_bytes() const {
    switch (type) {
      case RawType::kFloat64:
      case RawType::kInt64:
        return 8;
      case RawType::kInt32:
        return 4;
      default:
        return 1;
    }
  }
};

// A batch size beyond the rows is their count (one batch), so that no row arithmetic
// overflows (a batch_size near 2^63 wrapped to negative counts: predict left its output
// unwritten).
inline int64_t clamped_batch(int64_t batch_size, int64_t rows) {
  return std::min(batch_size, std::max<int64_t>(rows, 1));
}

// The first row of batch `batch` of `size` rows (size >= 1), at most `rows`, without
// overflow.
inline int64_t batch_row(int64_t batch, int64_t size, int64_t rows) {
  return batch > rows / size ? rows : std::min(batch * size, rows);
}

struct DataRefs {
  std::vector<const float*> x;
  std::vector<RawInput> raw;       // per input, or empty: x in another type (x[k] nullptr)
  std::vector<SparseRows> sparse;  // per input, or empty
  std::vector<const float*> y;
  std::vector<const float*> w;  // per output: the sample weights of each row, or nullptr (or empty)
  // per output (or empty: 1 each): how many weights a row holds, 1 or one per loss row of the
  // output (Keras's temporal weights: shape (rows, T) for an output (rows, T, C))
  std::vector<int64_t> w_width;
  int64_t rows = 0;
  bool is_sparse(size_t k) const { return k < sparse.size() && sparse[k].indptr != nullptr; }
  bool any_sparse() const {
    for (size_t k = 0; k < sparse.size(); ++k)
      if (is_sparse(k)) return true;
    return false;
  }
  bool is_raw(size_t k) const { return k < raw.size() && raw[k].data != nullptr; }
  bool any_raw() const {
    for (size_t k = 0; k < raw.size(); ++k)
      if (is_raw(k)) return true;
    return false;
  }
};

// A contiguous range [lo, hi) of items: one thread's share of an op's work.
struct Share {
  int64_t lo, hi;
};

struct RunTotals {
  int64_t rows = 0;
  double loss_sum = 0.0;                  // Σ_batches rows·(Σ_outputs weight·mean loss + reg)
  std::vector<double> output_loss_sums;   // Σ_rows loss, per output
  std::vector<double> metric_sums;        // Σ_rows metric, outputs' metrics in order
  // Σ_rows sample weight per output (rows without); then, per output, the Σ_rows of its mask's
  // mean over the row's loss rows (0 for an output without a mask)
  std::vector<double> weight_sums;
  // Shuffled training checks input rows for NaN as it gathers them and stops before the
  // first batch holding one: the input's index and the row, or -1.
  int nan_input = -1;
  int64_t nan_row = -1;
};

namespace graph_detail {
struct ConvGeom;  // a kConv node's geometry (graph_util.h)
}

class Graph {
 public:
  Graph(std::vector<NodeSpec> nodes, std::vector<ParamSpec> params, std::vector<int> inputs,
        std::vector<int> outputs);

  void compile(std::vector<OutputSpec> outputs, const OptimizerConfig& optimizer,
               std::vector<bool> trainable);
  bool compiled() const { return compiled_; }
  void set_learning_rate(float lr) { optimizer_.learning_rate = lr; }
  // The rates of a schedule written in Python for steps first, first + 1, ... (values[k] at
  // first + k steps done), set before each run of steps (LrSchedule::kTable).
  void set_lr_table(int64_t first, std::vector<float> values) {
    optimizer_.schedule.kind = LrSchedule::kTable;
    optimizer_.schedule.boundaries.assign(1, first);
    optimizer_.schedule.values = std::move(values);
  }
  float learning_rate() const { return optimizer_.learning_rate; }
  // Training stops after the first batch whose loss is not finite (Keras's TerminateOnNaN),
  // the batches a call ran then telling where.
  void set_stop_on_nonfinite_loss(bool stop) { stop_on_nonfinite_ = stop; }
  int64_t last_batches_run() const { return last_batches_run_; }
  // Threads the last run used (1 while the machine is oversubscribed: see cpu.h).
  int last_run_threads() const { return last_run_threads_; }
  int64_t iterations() const { return iterations_; }  // steps taken (accumulating ones too)
  // LossScaleOptimizer's state (OptimizerConfig::loss_scale): the scale and the finite steps
  // since it last changed (Keras's dynamic_scale and step_counter).
  float loss_scale() const { return loss_scale_; }
  void set_loss_scale(float s) { loss_scale_ = s; }
  int64_t scale_counter() const { return scale_counter_; }
  void set_scale_counter(int64_t c) { scale_counter_ = c; }
  void set_iterations(int64_t it) { iterations_ = it; }
  // The optimizer's state: slot s (optimizer_slot_count of them, in the kernels' order) of
  // parameter p, size(p) floats, zero after compile.
  int slot_count() const { return slot_count_; }
  int num_params() const { return static_cast<int>(params_.size()); }
  size_t num_inputs() const { return inputs_.size(); }
  // Whether a sparse input k is read in place (only single-input Dense layers consume it, each
  // kernel written by no other node when training) rather than written out densely row by row.
  bool reads_sparse_in_place(size_t k, bool training) const;
  int64_t param_size(int p) const { return params_[p].size; }
  float* slot(int s, int p) { return slots_->data() + s * param_total_ + grad_offset_[p]; }
  // The graphs of one model at other data shapes (same parameters, same optimizer) can hold
  // one optimizer state: share_slots makes this graph's slots other's buffer (a compile gives
  // the graph a buffer of its own again). slots_mismatch says why two graphs cannot share
  // ("" when they can).
  std::string slots_mismatch(const Graph& other) const;
  void share_slots(const Graph& other) { slots_ = other.slots_; }
  const void* slots_buffer() const { return slots_.get(); }

  // Trains on batches first_batch .. first_batch+num_batches-1 of the epoch whose sample order
  // is perm (nullptr: natural order); the last batch may be partial. Returns the epoch's
  // running totals: with continue_totals, the previous call's and this one's.
  RunTotals train_batches(const DataRefs& data, const int64_t* perm, int64_t batch_size,
                          int64_t first_batch, int64_t num_batches, bool continue_totals);
  // check_nan: the rows are gathered in order and checked for NaN on the way; a NaN stops the
  // run before its batch (RunTotals::nan_input, nan_row).
  RunTotals evaluate(const DataRefs& data, int64_t batch_size, bool check_nan = false);
  // Forward, loss and backward over all rows as one batch, without an update: grads receives
  // the gradient of every parameter, concatenated in parameter order (zeros where frozen).
  RunTotals gradients(const DataRefs& data, std::vector<float>* grads);
  // out[k] receives rows × width(output k); data's targets and weights are not read. With
  // `training_forward`, the dropout and noise layers are active (Keras's model(x,
  // training=True), Monte Carlo dropout), drawing new noise on every call.
  void predict(const DataRefs& data, int64_t batch_size, const std::vector<float*>& out,
               bool training_forward = false);
  void predict(const std::vector<const float*>& x, int64_t rows, int64_t batch_size,
               const std::vector<float*>& out);

  // Step profile: seconds thread 0 spent per category since the last reset, when enabled.
  // kProfWait: waiting for the other threads at barriers (taken out of the category it
  // interrupted); kProfRun: the runs whole, from their set-up to the join of their threads
  // (what the categories leave of it is scheduling: barriers' own cost, prefetch, set-up).
  enum ProfileCategory { kProfGather = 0, kProfGemm, kProfElementwise, kProfLoss, kProfOptimizer,
                         kProfWait, kProfRun, kProfCount };
  void set_profiling(bool on) { profiling_ = on; }
  void reset_profile();
  std::vector<double> profile() const;
  // Seconds each thread spent waiting for the others at barriers (profiling only).
  static constexpr int kMaxProfiledThreads = 8;
  std::vector<double> barrier_waits() const {
    return std::vector<double>(wait_, wait_ + kMaxProfiledThreads);
  }
  // Barriers the threads met at (profiling only).
  int64_t barrier_count() const { return barriers_; }

  int64_t node_width(int node) const { return nodes_[node].width; }
  const std::vector<int>& output_nodes() const { return outputs_; }
  const std::vector<int>& input_nodes() const { return inputs_; }
  int num_metrics() const;

 private:
  enum class Mode { kTrain, kEvaluate, kPredict, kGradients };
  // One thread's view of one batch inside a run.
  struct Step {
    int ith = 0, nth = 1;
    int64_t batch = 0;
    bool training = false;
    // The next batch's rows (shuffled runs): requested a slice at a time (see prefetch_next)
    // and copied by idle threads into the other parity's buffers (see solo_barrier).
    const DataRefs* data = nullptr;
    const int64_t* next_rows = nullptr;
    int64_t next_count = 0;
    const int64_t* rows = nullptr;  // this batch's source rows (gathered runs), or nullptr
    int parity = 0;  // which of the two gather buffers this batch uses
    int pf_chunks = 1;
    mutable int pf_done = 0;
    int64_t* windows = nullptr;  // this thread's count of solo windows passed in the run
    int* sense = nullptr;        // this thread's phase of the run's barrier (see barrier)
    double* slept = nullptr;     // this thread's seconds asleep in the barrier, in the run
    mutable double fused_reg = 0.0;  // regularization of the updates done in the backward
    // A Dense node whose kernel gradient and update wait for the barrier after its input
    // gradient product (see deferred_kernel_update), or -1.
    mutable int deferred = -1;
    OptimizerStep opt{};             // this step's optimizer update, prepared once
    OptimizerStep opt_no_decay{};    // the same without weight decay (exclude_from_weight_decay)
    int64_t noise = -1;  // the noise layers' step key: iterations_ when -1 (see noise_key)
    // LossScaleOptimizer: this step's gradients were not all finite, so it takes no update
    mutable bool skipped = false;
  };

  RunTotals run(Mode mode, const DataRefs& data, const int64_t* perm, int64_t batch_size,
                int64_t first_batch, int64_t num_batches, const std::vector<float*>* out,
                const RunTotals* carry = nullptr);
  int threads_for(int64_t batch, bool training) const;
  void ensure_grads();
  void ensure_capacity(int64_t rows);
  void check_embedding_ids(const DataRefs& data) const;
  void begin_batch(const Step& st, const DataRefs& data, bool targets, const int64_t* perm,
                   int64_t start, int64_t batch);
  void prefetch_next(const Step& st);
  float* gathered_x(int parity, size_t k);
  float* gathered_target(int parity, size_t k);
  float* gathered_weight(int parity, size_t k);
  void copy_rows(const DataRefs& data, int parity, const int64_t* src, int64_t lo, int64_t hi,
                 int64_t count);
  void gather_input(int parity, size_t k, const DataRefs& data, const int64_t* src, int64_t lo,
                    int64_t hi, int64_t limit, int64_t c0, int64_t c1);
  void gather_sparse(int parity, size_t k, const SparseRows& sp, const int64_t* src,
                     int64_t lo, int64_t hi, int64_t limit, int64_t c0, int64_t c1);
  void copy_targets(const DataRefs& data, int parity, const int64_t* src, int64_t lo,
                    int64_t hi);
  void copy_input(int parity, size_t k, const float* src, float* dst, int64_t n, int64_t row);
  void copy_raw(int parity, size_t k, RawType type, const void* src, float* dst, int64_t n,
                int64_t row);
  void note_nan(int parity, size_t k, int64_t row);
  void gather_in_window(const Step& st, int64_t window);
  void barrier(const Step& st);
  void solo_barrier(const Step& st);
  void plan_step(int64_t batch, int nth, bool training, bool targets);
  bool takes_gradient(size_t k) const;
  bool counts_batches(size_t k) const;
  static double batch_scalar(const OutputSpec& o, const float* v, int64_t n, double* slope);
  double batch_weight_sum(size_t k, int64_t batch) const;
  template <typename Fn>
  void run_nodes(const Step& st, const std::vector<int>& order, const std::vector<bool>& solo,
                 bool then_solo, Fn&& fn);
  int first_backward_node() const;
  void forward(const Step& st, bool then_solo);
  void forward_node(const Step& st, int i);
  // The batch's samples form kLossBlocks fixed blocks for the loss: their sums add up in
  // block order, the same for any thread count.
  static constexpr int kLossBlocks = 4;
  void loss_blocks(const Step& st, int b0, int b1, bool with_grad);
  double sum_loss_blocks(RunTotals* t) const;
  void backward(const Step& st);
  // Dense nodes reading a sparse input in place (sparse_direct_): y = x·W + b over the stored
  // values of each row, and the kernel gradient over them (zero elsewhere).
  void forward_dense_sparse(const Step& st, int i, size_t k);
  void backward_dense_sparse(const Step& st, int i, size_t k);
  void backward_node(const Step& st, int i);
  double regularize_and_update(const Step& st, bool apply);
  template <typename Fn>
  void for_each_update_share(const Step& st, bool apply, Fn&& fn) const;
  bool clips_by_norm() const;
  bool needs_norms() const;
  void lamb_step(const Step& st);
  void adafactor_step(const Step& st);
  bool gradients_finite(const Step& st);
  void clip_and_update(const Step& st);
  void finish_update(const Step& st);
  double regularization_value() const;
  // With gradient accumulation: whether this step only adds to the sums, and the updates
  // made so far (the schedules' and bias corrections' count).
  bool accumulating() const {
    return optimizer_.accumulation_steps > 1 &&
           (iterations_ + 1) % optimizer_.accumulation_steps != 0;
  }
  int64_t updates() const {
    return iterations_ / std::max<int64_t>(1, optimizer_.accumulation_steps);
  }
  bool accumulate_share(size_t p, Share sh, float* g);
  void ema_share(size_t p, Share sh);
  double update_share(const Step& st, size_t p, Share sh, bool regularized, bool apply,
                      float* g = nullptr, bool summed = false);
  struct BlockUpdate;
  void deferred_kernel_update(const Step& st);
  // fn(j, kept) for the values j in [lo, hi) of Dropout node i's batch (graph_nodes.cc).
  template <class Fn>
  void dropout_mask(const Step& st, int i, int64_t lo, int64_t hi, Fn fn) const;
  // The column sums of dy into the vector parameter in slot `slot` of node i.
  void dense_bias_grad(const Step& st, int i, const float* dy, int64_t rows, int slot = 1);
  void add_activity_grad(const Step& st, int i, int64_t e0, int64_t e1);
  Share pool_share(const Step& st, int i) const;
  const float* pool_mask(int i, int64_t g) const;
  static bool pool_masked(const NodeSpec& node) {
    return node.iattrs.size() == 5 && node.iattrs[4] != 0;
  }
  static void update_rows(void* ctx, int64_t row0, int64_t rows, float* g, int64_t ldg);
  // kConv (graph_conv.cc): forward and backward of node i; per-thread im2col buffers
  void forward_conv(const Step& st, int i);
  void backward_conv(const Step& st, int i, Share rw);
  void conv_activation_backward(const Step& st, int i, Share rw, int64_t last);
  void backward_conv_blocks(const Step& st, int i, const graph_detail::ConvGeom& g,
                            float* col);
  // a transposed one's (graph_conv.cc): forward, backward, and the blocked kernel
  // gradient's partials added in block order (both kinds)
  void forward_conv_transpose(const Step& st, int i, const graph_detail::ConvGeom& g);
  void backward_conv_transpose(const Step& st, int i, const graph_detail::ConvGeom& g,
                               Share rw);
  void add_conv_blocks(const Step& st, int i, int64_t kf, bool kernel_grad, bool bias_grad);
  float* conv_scratch(const Step& st) { return conv_scratch_.data() + st.ith * conv_per_thread_; }
  // kLSTM, kGRU and kSimpleRNN (graph_rnn.cc): forward and backward of node i
  void forward_rnn(const Step& st, int i);
  void backward_rnn(const Step& st, int i);
  // A stateful one's batches must all be of its states' batch size (invalid_argument).
  void check_state_batches(int64_t begin, int64_t end, int64_t batch_size) const;
  // kWindowPool (graph_pool.cc): forward and backward of node i
  void forward_window_pool(const Step& st, int i);
  void backward_window_pool(const Step& st, int i);
  void backward_disjoint_max(int i, const graph_detail::ConvGeom& g, Share bs);
  void pool_disjoint_sample(int i, int64_t s);  // pooling i's forward of sample s
  // A max pooling (kWindowPool) whose windows tile its input without overlap or clipping.
  static bool pool_is_disjoint_max(const NodeSpec& node);
  bool splits_forward(const Step& st, int i) const;
  bool hands_off(const Step& st, int i) const;
  void forward_dense_split(const Step& st, int i);
  float* dense_pre(int i);
  void activate_dense_rows(int i, Share rw);
  void softmax_axis(const Step& st, int i, const float* x, const float* y, const float* dy,
                    float* gx, bool accumulate = false);
  void backward_dense_split(const Step& st, int i);
  Share k_part(int i, int part) const;
  void local_gemm(const Step& st, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                  int64_t ldc, const GemmEpilogue* ep = nullptr);
  GemmEpilogue input_grad_epilogue(int i, int64_t col0) const;
  void charge_time(const Step& st, double t0, ProfileCategory to,
                   ProfileCategory from = kProfElementwise);
  float* param(int node, int slot) const;
  float* param_grad(int p);
  bool param_grad_wanted(int p) const;
  bool param_has_grad(size_t p) const;
  bool accumulates(int in, int node, int slot) const;
  void gemm(const Step& st, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
            const GemmEpilogue* ep = nullptr);

  std::vector<NodeSpec> nodes_;
  std::vector<ParamSpec> params_;
  std::vector<int> inputs_, outputs_;
  std::vector<int> consumers_;       // per node: how many nodes read it
  std::vector<bool> needs_targets_;  // per node: it reads a kTarget node (runs with targets)
  std::vector<bool> fused_;          // per node: its gradient arrives w.r.t. pre-activation
  // per Dense node: its only consumer, a Dense, applies this node's activation derivative in
  // the epilogue of its input-gradient GEMM, so the gradient arrives w.r.t. pre-activation
  std::vector<bool> dact_by_consumer_;
  // per node: the disjoint max pooling a kConv's forward runs sample by sample, or -1
  std::vector<int> pooled_by_;
  std::vector<bool> requires_grad_;  // per node: a trainable parameter lies at or before it
  std::vector<bool> keeps_input_;    // per node: activation backward needs its input (pre_)
  // The backward plan (fixed at compile): nodes that receive a gradient; the (node, input
  // slot) that writes each node's gradient first ({-1, 0}: the loss), later writers add; the
  // node that writes each parameter's gradient first (-1: none).
  std::vector<bool> has_grad_;
  std::vector<std::pair<int, int>> first_writer_;
  std::vector<int> param_first_writer_;
  bool has_constraints_ = false;
  // Per run (plan_step): nodes whose forward (backward) is done whole by thread 0.
  std::vector<bool> solo_fwd_, solo_bwd_;
  // Per run (plan_step), training only: a cut Dense followed by a solo node, whose partial
  // products thread 0 alone adds up, so that no barrier follows it (see hands_off).
  std::vector<bool> handoff_;
  std::vector<int> update_owner_;  // per run and parameter: the thread updating it whole, or -1
  // per run and parameter: a kernel updated in the backward as its gradient is computed, a few
  // rows at a time, while they are in cache: a cut kernel with one gradient writer, each row
  // block by its owner right after the block's gradient; another Dense kernel with one writer
  // by the threads sharing its gradient product, after the barrier that ends the node's input
  // gradient (the kernel's last reader in the step)
  std::vector<bool> update_in_backward_;
  std::vector<bool> no_decay_;  // per parameter: excluded from weight decay (see compile)
  // Gradient clipping by norm (clipnorm, global_clipnorm): the gradients' squared sums in
  // fixed blocks of parameter elements, {parameter, range} each, summed in block order, so
  // the norms are the same for any thread count.
  std::vector<std::pair<int, Share>> clip_blocks_;
  std::vector<double> clip_sums_;
  std::vector<double> lamb_sums_;  // Lamb's per block: Σw², Σr²
  std::vector<int> param_writers_;  // per parameter: how many nodes write its gradient
  std::vector<int> fwd_order_, bwd_order_;  // per run: the nodes a step runs, in order
  bool loss_solo_ = true;                    // per run: the loss is small, thread 0 does it
  std::vector<double> loss_part_, metric_part_;  // per loss block and output / metric
  std::vector<int> activity_nodes_;              // nodes with an activity regularizer
  std::vector<double> activity_part_;            // per loss block and activity node
  // Dense nodes whose kernel is tall (many input features; at most kMaxCutKernel values) are
  // cut into ksplit_ row blocks: block b's partial product, its kernel gradient and its
  // optimizer update all belong to thread b mod nth, so the largest weights stay in one core's
  // cache from step to step. The block count depends on the shapes only, so results are the
  // same for any thread count.
  std::vector<int> ksplit_;            // per node (1: not cut)
  std::vector<int> gather_split_;      // per input node: column blocks its batch is copied in
  std::vector<int> kernel_split_node_; // per parameter: the cut Dense it is the kernel of, or -1

  bool compiled_ = false;
  std::vector<OutputSpec> output_specs_;
  OptimizerConfig optimizer_;
  int64_t iterations_ = 0;
  float loss_scale_ = 0.0f;
  int64_t scale_counter_ = 0;
  std::vector<char> finite_flags_;  // per thread: its shares' gradients all finite
  RunTotals epoch_totals_;
  bool update_stats_ = true;  // training forwards move BatchNormalization's statistics

  int64_t capacity_ = 0;
  std::vector<std::vector<float>> out_buf_, grad_buf_, pre_buf_, aux_buf_, partial_buf_;
  // Per input, for the current run: a sparse input whose every consumer is a Dense node with a
  // kernel of its own, read in place from the CSR arrays (never written out densely).
  std::vector<bool> sparse_direct_;
  // predict with the noise layers active (training_forward) and the calls so far that did.
  bool training_forward_ = false;
  bool stop_on_nonfinite_ = false;
  int64_t last_batches_run_ = 0;
  int last_run_threads_ = 0;
  int64_t noisy_predicts_ = 0;
  // A noise node drawing in every run, training or not (densitron.random.normal in a call()):
  // runs outside training then take fresh keys as a noisy predict does.
  bool always_noise_ = false;
  int64_t noise_key(const Step& st) const { return st.noise >= 0 ? st.noise : iterations_; }
  std::vector<int> sparse_input_;  // per node, this run: the sparse input k it reads in place, or -1
  const DataRefs* run_data_ = nullptr;
  // Per (node, thread): the kernel rows whose gradient the thread wrote in the last step, set
  // back to zero before the next step's (backward_dense_sparse).
  std::vector<std::vector<int64_t>> sparse_touched_;
  static constexpr int64_t kWholeRange = -1;  // sparse_touched_: the thread's whole range
  std::vector<std::vector<int64_t>> sparse_lists_;  // per thread: scratch for a row's entries
  std::vector<double> constraint_sums_;  // per thread: partial column sums (finish_update)
  int64_t constraint_cols_ = 0;          // their count a thread
  std::vector<std::vector<float>> constraint_factors_;  // per thread: a parameter's factors
  // Per Dropout node: each value's mask index within its sample (dropout_mask_index of the
  // sample's values; 0..width-1 without a noise_shape), and one more than their largest.
  std::vector<std::vector<int64_t>> dropout_offsets_;
  std::vector<int64_t> dropout_span_;
  std::vector<const float*> out_;  // per node: its output for this batch
  std::vector<std::vector<float>> target_buf_;  // per output: gathered targets
  std::vector<const float*> target_;
  std::vector<std::vector<float>> weight_buf_;  // per output: gathered sample weights
  std::vector<const float*> weight_;
  std::vector<int64_t> weight_width_;  // per output: weights a row holds in this run (w_width)
  // Shuffled runs gather each batch into one of two buffer sets by parity: the nodes' own
  // (out_buf_, target_buf_, weight_buf_) or these, per input and per output. While thread 0
  // runs a chain of solo ops the other threads copy rows of the next batch ahead of time,
  // claimed one by one through claimed_[parity]; thread 0 counts the chains in window_end_.
  std::vector<std::vector<float>> stage_x_, stage_target_, stage_weight_;
  // per output with a mask: each loss row's mask (1 kept, 0 not) and masked sample weight
  std::vector<std::vector<float>> mask_keep_, mask_weight_;
  std::atomic<int64_t> claimed_[2] = {};
  std::atomic<int64_t> window_end_{0};
  // The run's barrier, sense-reversing: the threads count in, the last flips the sense the
  // others spin on (then sleep on). About 30 ns on this machine where an OpenMP barrier takes
  // 250-400 ns.
  struct alignas(64) SpinBarrier {
    std::atomic<int> arrived{0};
    alignas(64) std::atomic<int> sense{0};
    std::atomic<int> sleepers{0};  // waiters asleep on sense (see Graph::barrier)
  };
  SpinBarrier spin_;
  // Per parity: the first NaN met while gathering that batch's inputs, as row·inputs + input
  // (-1: none); written before the batch's first barrier, read after it.
  std::atomic<int64_t> nan_code_[2] = {};
  bool has_window_ = false;  // per run: a solo chain leaves threads idle, and rows are shuffled
  std::vector<float> scratch_;
  // kConv's per-thread im2col tiles: conv_per_thread_ floats a thread (the largest tile rows ×
  // K of the conv nodes), sized by run for its thread count
  std::vector<float> conv_scratch_;
  int64_t conv_per_thread_ = 0;
  std::vector<std::vector<float>> block_grad_;  // per thread: a cut kernel block's gradient C
  std::vector<NadamProduct> nadam_products_;     // per thread: Nadam's product, step by step

  std::vector<int64_t> grad_offset_;  // per parameter, into grads_
  int64_t param_total_ = 0;           // values of all parameters
  std::vector<float> grads_;          // param_total_ of them once a run takes gradients
  // (shared by the graphs of one model that share_slots joined)
  std::shared_ptr<std::vector<float>> slots_ = std::make_shared<std::vector<float>>();
  int slot_count_ = 0;
  bool profiling_ = false;
  double prof_[kProfCount] = {};
  double* prof_open_ = nullptr;  // thread 0's innermost open ProfileScope's slot, or nullptr
  double wait_[kMaxProfiledThreads] = {};
  int64_t barriers_ = 0;
  std::mutex mutex_;
};

}  // namespace densitron
