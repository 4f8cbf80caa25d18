// Private to the graph executor's sources (graph.cc, graph_nodes.cc): work shares, the GEMM
// epilogue an activation maps to, hashing for the random layers, timing, and the executor's
// tuning constants.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/prefetch.h"
#include "densitron/gemm.h"
#include "densitron/graph.h"
#include "densitron/ops.h"

namespace densitron {
namespace graph_detail {

// A noise node that draws in every run, training or not (kGaussianNoise's `always`).
inline bool always_random(const NodeSpec& node) {
  return node.op == OpType::kGaussianNoise && node.iattrs.size() > 2 && node.iattrs[2] != 0;
}

// A BatchNormalization of trainable=False: inference mode in training too (Keras's).
inline bool batch_norm_frozen(const NodeSpec& node) {
  return node.op == OpType::kBatchNorm && !node.iattrs.empty() && node.iattrs[0] == 1;
}

// A kBatchMatMul node's multiply-adds over `batch` samples (groups · m · k · n each).
inline double batch_matmul_macs(const NodeSpec& node, int64_t batch) {
  const auto& ia = node.iattrs;
  return static_cast<double>(batch) * ia[0] * ia[1] * ia[2] * ia[3];
}

// The calling thread's scratch of n floats (grows only: no allocation once warm).
inline float* float_scratch(int64_t n) {
  thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(n);
  return scratch.data();
}

// A kConv node's geometry (see OpType::kConv), its spatial axes padded to three at the front
// (size 1, kernel 1, stride 1, dilation 1, no padding) so that every rank runs one loop nest.
struct ConvGeom {
  int64_t in[3], k[3], stride[3], dil[3], pad[3], out[3];
  int64_t cin = 0, filters = 0, groups = 1;
  // A transposed convolution: this convolution's input gradient, its input (out positions
  // of filters channels) scattered into its output (in positions of cin channels).
  bool transposed = false;
  int64_t positions() const { return out[0] * out[1] * out[2]; }
  int64_t in_positions() const { return in[0] * in[1] * in[2]; }
  int64_t taps() const { return k[0] * k[1] * k[2]; }
  int64_t depth() const { return taps() * cin; }  // a window's values
  // A group's window values, the kernel's rows (K; depth() for one group): a group's
  // channels cin / groups at each tap, its outputs filters / groups of the kernel's columns.
  int64_t kdepth() const { return taps() * (cin / groups); }
  // The node's input and output widths (a sample's values) and its output's channels.
  int64_t node_in_width() const {
    return transposed ? positions() * filters : in_positions() * cin;
  }
  int64_t node_out_width() const {
    return transposed ? in_positions() * cin : positions() * filters;
  }
  int64_t node_channels() const { return transposed ? cin : filters; }
  // A 1×1 window at stride 1 without padding: the input's rows are the windows themselves.
  bool direct() const {
    if (groups != 1) return false;
    for (int a = 0; a < 3; ++a)
      if (k[a] != 1 || stride[a] != 1 || pad[a] != 0 || out[a] != in[a]) return false;
    return true;
  }
};

// The geometry of kConv attributes, or false when they are malformed (counts, sizes < 1,
// padding < 0, values beyond 2^24 a size or 2^40 a product, a transposed flag other than 0
// or 1, or a transposed one of groups).
inline bool conv_geom(const int64_t* ia, size_t n, ConvGeom* g) {
  if (n == 0 || ia[0] < 1 || ia[0] > 3 || static_cast<int64_t>(n) < 3 + 6 * ia[0] ||
      static_cast<int64_t>(n) > 5 + 6 * ia[0])
    return false;
  const int r = static_cast<int>(ia[0]);
  constexpr int64_t kMax = int64_t{1} << 24;
  // layout: rank, in[r], cin, k[r], strides[r], dilation[r], pad[r], out[r], filters
  const int64_t* in = ia + 1;
  g->cin = ia[1 + r];
  const int64_t* k = ia + 2 + r;
  const int64_t* st = k + r;
  const int64_t* dl = st + r;
  const int64_t* pd = dl + r;
  const int64_t* ou = pd + r;
  g->filters = ou[r];
  for (int a = 0; a < 3; ++a) {
    const int s = a - (3 - r);  // the attribute axis, or < 0 for a padded one
    g->in[a] = s < 0 ? 1 : in[s];
    g->k[a] = s < 0 ? 1 : k[s];
    g->stride[a] = s < 0 ? 1 : st[s];
    g->dil[a] = s < 0 ? 1 : dl[s];
    g->pad[a] = s < 0 ? 0 : pd[s];
    g->out[a] = s < 0 ? 1 : ou[s];
    if (g->in[a] < 1 || g->k[a] < 1 || g->stride[a] < 1 || g->dil[a] < 1 || g->pad[a] < 0 ||
        g->out[a] < 1 || g->in[a] > kMax || g->k[a] > kMax || g->stride[a] > kMax ||
        g->dil[a] > kMax || g->pad[a] > kMax || g->out[a] > kMax)
      return false;
  }
  if (g->cin < 1 || g->filters < 1 || g->cin > kMax || g->filters > kMax) return false;
  // (optional last fields: groups, then transposed)
  g->groups = static_cast<int64_t>(n) >= 4 + 6 * r ? ia[3 + 6 * r] : 1;
  const int64_t transposed = static_cast<int64_t>(n) == 5 + 6 * r ? ia[4 + 6 * r] : 0;
  if (g->groups < 1 || g->cin % g->groups != 0 || g->filters % g->groups != 0) return false;
  if ((transposed != 0 && transposed != 1) || (transposed == 1 && g->groups != 1)) return false;
  g->transposed = transposed == 1;
  constexpr double kMaxProduct = static_cast<double>(int64_t{1} << 40);
  const double in_values = static_cast<double>(g->in[0]) * g->in[1] * g->in[2] * g->cin;
  const double out_values = static_cast<double>(g->out[0]) * g->out[1] * g->out[2] * g->filters;
  const double kernel = static_cast<double>(g->k[0]) * g->k[1] * g->k[2] * g->cin * g->filters /
                        g->groups;
  return in_values <= kMaxProduct && out_values <= kMaxProduct && kernel <= kMaxProduct;
}
inline bool conv_geom(const std::vector<int64_t>& ia, ConvGeom* g) {
  return conv_geom(ia.data(), ia.size(), g);
}

// The geometry of kWindowPool attributes {rank, in[r], channels, k[r], strides[r], pad[r],
// out[r], mode} as a convolution's of dilation 1 and `channels` filters, and its mode (0 the
// mean, 1 the maximum); false when malformed (conv_geom's limits, a mode other than 0 or 1,
// or a window that misses the input: padding before >= k, or a last window starting past it).
inline bool pool_geom(const std::vector<int64_t>& ia, ConvGeom* g, int64_t* mode) {
  if (ia.empty() || ia[0] < 1 || ia[0] > 3 || static_cast<int64_t>(ia.size()) != 3 + 5 * ia[0])
    return false;
  const int64_t r = ia[0];
  // as kConv's attributes: the dilation (1s) after the strides, the channels as filters
  int64_t conv[21];
  int64_t n = 0;
  for (int64_t j = 0; j < 2 + 3 * r; ++j) conv[n++] = ia[j];
  for (int64_t j = 0; j < r; ++j) conv[n++] = 1;
  for (int64_t j = 2 + 3 * r; j < 2 + 5 * r; ++j) conv[n++] = ia[j];
  conv[n++] = ia[1 + r];
  *mode = ia.back();
  if (!conv_geom(conv, static_cast<size_t>(n), g) || (*mode != 0 && *mode != 1)) return false;
  for (int a = 0; a < 3; ++a)
    if (g->pad[a] >= g->k[a] || (g->out[a] - 1) * g->stride[a] - g->pad[a] >= g->in[a])
      return false;
  return true;
}

// The input values a kWindowPool node reads over `batch` samples (each window's taps, every
// channel), counted as multiply-adds in the choice of threads.
inline double pool_reads(const NodeSpec& node, int64_t batch) {
  ConvGeom g;
  int64_t mode = 0;
  if (!pool_geom(node.iattrs, &g, &mode)) return 0.0;
  return static_cast<double>(batch) * g.positions() * g.taps() * g.cin;
}

// A kConv kernel of at most this many values (K · filters) takes its gradient in kConvBlocks
// fixed blocks of the batch's samples, each block's partial sum (and the bias's) computed by
// one thread with the whole kernel depth, then the blocks added in order; a larger one is
// shared out by kernel rows instead. Both by the shapes alone: the same for any thread count.
constexpr int64_t kConvBlockedKernel = 128 * 1024;
constexpr int kConvBlocks = 8;
inline bool conv_blocked(const ConvGeom& g) {
  return g.groups > 1 || g.kdepth() * g.filters <= kConvBlockedKernel;
}

// A kConv node whose forward keeps its windows' layout (the batch's positions × depth() values,
// in aux_buf_) for the kernel's gradient instead of laying it out twice a step: one group, not
// transposed nor direct, windows no deeper than the filters (the layout no larger than the
// output: a first layer of one to three channels, whose second layout took 10-25% of its step).
inline bool conv_keeps_windows(const ConvGeom& g) {
  return g.groups == 1 && !g.transposed && !g.direct() && g.depth() <= g.filters;
}

// A kConv node's multiply-adds over `batch` samples (positions · K · filters each).
inline double conv_macs(const NodeSpec& node, int64_t batch) {
  ConvGeom g;
  if (!conv_geom(node.iattrs, &g)) return 0.0;
  return static_cast<double>(batch) * g.positions() * g.kdepth() * g.filters;
}

// Output rows a kConv tile lays out at once: about 128K floats of windows (512 KB), at least
// 32 rows, at most the sample's positions. Fixed by the shapes, so a row's sums are the same
// for any thread count.
inline int64_t conv_tile_rows(const ConvGeom& g) {
  constexpr int64_t kTileFloats = 128 * 1024;
  return std::min(g.positions(), std::max<int64_t>(32, kTileFloats / g.depth()));
}

// The GEMM epilogue that computes activation `act` exactly, when there is one.
inline bool epilogue_for(Activation act, const ActivationParams& p, EpilogueAct* out) {
  switch (act) {
    case Activation::kLinear:
      *out = EpilogueAct::kNone;
      return true;
    case Activation::kRelu:  // the plain max(x, 0) only: no slope, cap or threshold
      *out = EpilogueAct::kRelu;
      return p.negative_slope == 0.0f && p.max_value < 0.0f && p.threshold == 0.0f;
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

// The index of Dropout's mask value for element j of a batch: j itself, or with a noise_shape
// (iattrs: seed, then per axis of the input, batch first, 1 where the mask is shared, then
// the dims after the batch axis) j's coordinates with the shared axes set to 0, in the
// input's layout.
inline uint64_t dropout_mask_index(const std::vector<int64_t>& iattrs, int64_t j) {
  if (iattrs.size() == 1) return static_cast<uint64_t>(j);
  const size_t rank = iattrs.size() / 2;  // seed + rank flags + (rank - 1) dims
  const int64_t* shared = iattrs.data() + 1;
  const int64_t* dims = iattrs.data() + 1 + rank;
  int64_t rest = j, index = 0, stride = 1;
  for (size_t a = rank - 1; a >= 1; --a) {  // sample axes, last first
    const int64_t c = rest % dims[a - 1];
    rest /= dims[a - 1];
    if (!shared[a]) index += c * stride;
    stride *= dims[a - 1];
  }
  if (!shared[0]) index += rest * stride;  // rest: the sample
  return static_cast<uint64_t>(index);
}

// Keras's l2 normalisation scale of a vector with squared norm `squares`: min(1/‖v‖, 1/eps).
inline float inverse_norm(float squares) {
  return std::min(1.0f / std::sqrt(squares), 1e7f);
}

// a·c, a·a and c·c of two d-vectors (Dot's forward and backward).
struct DotSums {
  float ac = 0.0f, aa = 0.0f, cc = 0.0f;
};
inline DotSums dot_sums(const float* a, const float* c, int64_t d) {
  DotSums s;
  for (int64_t j = 0; j < d; ++j) {
    s.ac += a[j] * c[j];
    s.aa += a[j] * a[j];
    s.cc += c[j] * c[j];
  }
  return s;
}

// How many of a node's leading params can be trained (BatchNormalization's moving statistics
// and Normalization's mean and variance cannot).
inline size_t trainable_param_slots(const NodeSpec& node) {
  if (node.op == OpType::kBatchNorm) return 2;
  if (node.op == OpType::kStandardize) return 0;
  return node.params.size();
}

// Normalization's (a, b) of feature c (see OpType::kStandardize).
inline float standardize_scale(float variance) { return std::max(std::sqrt(variance), 1e-7f); }

inline void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

inline void put(float* dst, const float* src, int64_t n, bool accumulate) {
  if (accumulate) {
    add_into(dst, src, n);
  } else {
    std::memcpy(dst, src, n * sizeof(float));
  }
}

// The row blocks of a cut kernel that thread ith owns: a contiguous range of the blocks, so
// its columns of the batch are one contiguous run per row.
inline void owned_parts(int parts, int ith, int nth, int* lo, int* hi) {
  *lo = parts * ith / nth;
  *hi = parts * (ith + 1) / nth;
}

// Thread ith's share [lo, hi) of n items: contiguous chunks of `align` items, and no more
// threads than n / min_items allows (the rest get nothing).
inline Share share_of(int64_t n, int ith, int nth, int64_t min_items = 1, int64_t align = 1) {
  const int64_t useful = std::max<int64_t>(1, std::min<int64_t>(nth, n / std::max<int64_t>(min_items, 1)));
  if (ith >= useful) return {n, n};
  const int64_t chunks = (n + align - 1) / align;
  const int64_t lo = std::min(n, chunks * ith / useful * align);
  const int64_t hi = std::min(n, chunks * (ith + 1) / useful * align);
  return {lo, hi};
}

// Row blocks of a cut kernel start at multiples of this many rows. Eight, not sixteen: a
// 784-row kernel is then cut 192/200/192/200, and two threads get 392 rows each instead of
// 384 and 400 (thread 0 waited 5% of each first-layer op for thread 1).
constexpr int64_t kPartAlign = 8;

// The columns [lo, hi) of a width-w input whose kernel is cut into `parts` row blocks that
// thread ith of nth owns (and copies from the batch).
inline Share owned_columns(int64_t w, int parts, int ith, int nth) {
  int p0, p1;
  owned_parts(parts, ith, nth, &p0, &p1);
  if (p0 >= p1) return {w, w};
  return {share_of(w, p0, parts, 1, kPartAlign).lo,
          share_of(w, p1 - 1, parts, 1, kPartAlign).hi};
}

// Source rows a gather requests ahead of the one it copies (2, 4 and 8 measured: 4 as good as
// any at batch 32, 128 and 512).
constexpr int64_t kGatherAhead = 4;

// Runs of at least this many batches are timed for the oversubscription verdict (cpu.h).
constexpr int64_t kJudgedBatches = 16;

// Bytes of dense input rows per thread up to which the next batch's rows are requested ahead
// during a step (prefetch_next). Beyond, they no longer wait in L2 beside the step's own data:
// the seed model was 4-7% faster an epoch without the requests at batch 512 (1.6 MB of rows a
// batch) and 3-5% at 256; 784-256-256-10 at 512 even to 3% faster. From 64 rows of 784 too,
// since the gather requests each row a few rows ahead itself (alternating processes): at 128
// (200 KB a thread) the seed model 3% faster (0.0427 -> 0.0414 s an epoch), 784-128-128-10
// 1.5%; at 64 (100 KB) 784-128-128-10 4-5% (0.094-0.098 -> 0.090-0.091), the seed model even;
// at 32 (50 KB) even with or without, so the requests stay for narrower rows.
constexpr int64_t kMaxPrefetchBytesPerThread = 64 * 1024;

// Inside a run the threads already meet between ops, so splitting costs no fork: elementwise
// work is split from this many values per thread, GEMMs from this many multiply-adds.
constexpr int64_t kMinElementsPerThread = 512;
// The score Keras's softmax gives a masked position (its _large_negative_number for float32).
constexpr float kMaskedScore = -1e9f;
constexpr double kMinGemmWorkPerThread = 16384.0;

// A Dense with fewer outputs than 2·kMinElementsPerThread runs solo (thread 0 alone, the others
// gathering the next batch) below this many multiply-adds, forward or backward. Raised from
// 32k to 128k: 784-128-10 at batch 32 (41k) went 4-7% faster an epoch, from fewer barriers and
// more of the next batch gathered in the window; 784-256-256-10 (82k) and the models it leaves
// split were within noise.
constexpr double kMaxSoloDenseMacs = 131072.0;

// Multiply-adds per step (forward and backward) from which a step runs on two threads, and
// per thread beyond two.
constexpr double kMacsForTwoThreads = 0.5e6;
constexpr double kMacsPerThread = 2.0e6;
// The multiply-adds a trainable value's update counts as in that choice (an optimizer step
// reads and writes its value and slots: a few multiply-adds' time at the GEMMs' rate).
constexpr double kUpdateMacs = 4.0;

// Parameter elements per thread below which an optimizer update is not shared out.
constexpr int64_t kMinUpdatePerThread = 2048;

// Parameter elements per block of the gradient norms of clipnorm and global_clipnorm.
constexpr int64_t kClipBlock = 16384;

// Row blocks a tall kernel is cut into at most (fixed, independent of the thread count).
constexpr int kMaxSplit = 4;
// The largest kernel (values) cut into blocks. A larger one no core keeps in its L2 from step to
// step, cut or not, and the cut's partial products and their sum cost more than they save:
// 784-1024-1024-10 uncut 4-8% faster an epoch at batch 128 (1.45-1.52 s against 1.50-1.65 s,
// alternating processes), 2% at batch 32, even at 512; 784-768-10 and 784-2048-10 even;
// 784-512-10 (401k values) 6% slower uncut at batch 32, so it stays cut.
constexpr int64_t kMaxCutKernel = int64_t{1} << 19;

[[noreturn]] inline void bad(const std::string& what) { throw std::invalid_argument(what); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Adds the time of a scope to a profile slot when profiling is on (one clock read otherwise
// skipped entirely), and, given `open`, marks the slot open in *open meanwhile, so a barrier
// inside can take its wait out of it.
class ProfileScope {
 public:
  ProfileScope(bool on, double* slot, double** open)
      : slot_(on ? slot : nullptr), open_(on ? open : nullptr), t0_(on ? now_seconds() : 0) {
    if (!open_) return;
    outer_ = *open_;
    *open_ = slot_;
  }
  ~ProfileScope() {
    if (!slot_) return;
    *slot_ += now_seconds() - t0_;
    if (open_) *open_ = outer_;
  }

 private:
  double* slot_;
  double** open_;
  double* outer_ = nullptr;
  double t0_;
};

// kMath's values, y[j] = op(x[j]), and gradient, g[j] = dy[j]·op'(x[j]) (y: the values), for
// j < n (graph_nodes.cc).
void math_forward(MathOp op, float a, float b, const float* x, float* y, int64_t n);
void math_backward(MathOp op, float a, float b, const float* x, const float* y,
                   const float* dy, float* g, int64_t n);

// kLSTM's, kGRU's and kSimpleRNN's (graph_rnn.cc): attributes {steps, features, units,
// sequences, backwards[, zero_masked[, masked, states_in, states_out[, variant[, gate_inputs,
// seed]]]]} (see rnn_attrs_valid) valid with its inputs and width; its input's width; the
// floats of its records for `rows` samples, of its blocks' gradient partials, of its bias; its
// multiply-adds a forward of `batch` samples.
inline bool rnn_op(OpType op) {
  return op == OpType::kLSTM || op == OpType::kGRU || op == OpType::kSimpleRNN;
}
bool rnn_attrs_valid(const NodeSpec& node);
int64_t rnn_input_width(const NodeSpec& node);  // steps × (a step's input values)
int64_t rnn_record_floats(const NodeSpec& node, int64_t rows);
int64_t rnn_partial_floats(const NodeSpec& node);
int64_t rnn_bias_size(const NodeSpec& node);
int64_t rnn_columns(const NodeSpec& node);  // the kernels' columns: (4, 3 or 1)·units
double rnn_macs(const NodeSpec& node, int64_t batch);

}  // namespace graph_detail
}  // namespace densitron
