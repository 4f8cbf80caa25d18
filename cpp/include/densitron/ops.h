// Row-wise activations, losses and reductions over row-major float32 matrices (rows × cols).
// Pure functions over pointers and sizes. Backwards use the forward's output y, plus the input
// x for the few activations whose derivative cannot be written through y.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace densitron {

enum class Activation : int {
  kLinear = 0,
  kRelu = 1,
  kSigmoid = 2,
  kTanh = 3,
  kSoftmax = 4,  // over the last axis (each row)
  kLeakyRelu = 5,
  kRelu6 = 6,
  kElu = 7,
  kSelu = 8,
  kGelu = 9,         // exact, with erf
  kGeluApprox = 10,  // tanh approximation
  kSilu = 11,        // x·sigmoid(x), alias swish
  kSoftplus = 12,
  kSoftsign = 13,
  kHardSigmoid = 14,
  kHardSilu = 15,
  kLogSoftmax = 16,  // over the last axis
  kExponential = 17,
  kMish = 18,
  kCelu = 19,           // alpha: ActivationParams::alpha
  kHardShrink = 20,     // ActivationParams::threshold
  kHardTanh = 21,
  kLogSigmoid = 22,
  kSoftShrink = 23,     // ActivationParams::threshold
  kSparsePlus = 24,
  kSparseSigmoid = 25,
  kSquareplus = 26,     // b: ActivationParams::alpha
  kTanhShrink = 27,
  kThreshold = 28,      // x > threshold ? x : default_value (ActivationParams::alpha)
};

// Parameters of the parameterised activations (Keras's arguments and defaults).
struct ActivationParams {
  float negative_slope = 0.0f;  // relu (default 0), leaky_relu (Keras default 0.2)
  float max_value = -1.0f;      // relu: < 0 means no upper bound
  float threshold = 0.0f;       // relu, hard_shrink, soft_shrink, threshold
  float alpha = 1.0f;           // elu, celu; squareplus's b; threshold's default_value
};

// True when the backward needs the input x as well as the output y (gelu, silu, mish, a relu
// with a threshold, slope or cap, ...); otherwise x may be passed as nullptr.
bool activation_needs_input(Activation act, const ActivationParams& p);

// y = act(x) over rows × cols, row-major with row stride cols; y may equal x (in place).
void activation_forward(Activation act, const ActivationParams& p, const float* x, float* y,
                        int64_t rows, int64_t cols);
// dx = dy ⊙ act'(x) (a Jacobian-vector product per row for the softmaxes). y = act(x) is always
// given; x only when activation_needs_input(act), else it may be nullptr. dx may alias dy.
void activation_backward(Activation act, const ActivationParams& p, const float* x,
                         const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);
// col_sums[j] (+)= Σ_i x[i, j]
void column_sums(const float* x, int64_t rows, int64_t cols, float* col_sums, bool accumulate);
// out = a uniformly random permutation of 0..n-1, the same for the same seed on every platform
// (an epoch's shuffle).
void random_permutation(int64_t* out, int64_t n, uint64_t seed);
// Index of the first NaN among n values, or -1 (threaded for large arrays).
int64_t first_nan(const float* x, int64_t n);
// Whether any of n values is not an integer in [0, limit) (NaN included; limit >= 1): class
// ids and Embedding ids. SIMD, one thread.
bool any_bad_id(const float* x, int64_t n, float limit);
// dst = src (n values); returns whether src holds a NaN. SIMD, one thread.
bool copy_has_nan(const float* src, float* dst, int64_t n);
// The same from float64 values, each rounded to the nearest float32 (as NumPy's astype).
bool copy_f64_has_nan(const double* src, float* dst, int64_t n);
// dst = n integers converted to float32 (rounded to nearest, as NumPy's astype): type 1
// int32, 2 int64, 3 uint8 (RawType in graph.h). SIMD, one thread.
void ints_to_float(const void* src, int type, float* dst, int64_t n);
// out[j] = Σ_e val[e]·w[idx[e]·ldw + j] for j < n: a sparse row (nnz stored values at columns
// idx) times the row-major matrix w, the terms added in entry order (fused multiply-adds on
// the SIMD paths). SIMD, one thread.
void sparse_row_times(const int32_t* idx, const float* val, int64_t nnz, const float* w,
                      int64_t ldw, float* out, int64_t n);
// y += a·x (fused multiply-adds on the SIMD paths). SIMD, one thread.
void axpy(float a, const float* x, float* y, int64_t n);

// A dense matrix's element types for dense_to_csr and stored_fraction (the last four as
// RawType in graph.h, shifted by one).
enum DenseType : int { kDenseFloat32 = 0, kDenseFloat64, kDenseInt32, kDenseInt64, kDenseUint8 };
// A matrix in CSR form: row r's stored values data[indptr[r]..indptr[r+1]) at columns indices[...]
// in column order; first_nan_row: the first row storing a NaN, or -1.
struct CsrMatrix {
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> data;
  int64_t first_nan_row = -1;
};
// The stored (not ±0; NaN stored) values of a dense C-order rows × cols matrix of `type`, as
// float32 rounded as NumPy's astype. One pass over x, rows split between threads.
CsrMatrix dense_to_csr(const void* x, int type, int64_t rows, int64_t cols);
// The fraction of stored values among `sample` rows spread evenly over the matrix.
double stored_fraction(const void* x, int type, int64_t rows, int64_t cols, int64_t sample);

enum class Loss : int {
  kCategoricalCrossentropy = 0,
  kSparseCategoricalCrossentropy = 1,
  kBinaryCrossentropy = 2,
  kMeanSquaredError = 3,
  kMeanAbsoluteError = 4,
  // from_logits=True: the prediction holds logits (softmax/sigmoid applied inside the loss)
  kCategoricalCrossentropyLogits = 5,
  kSparseCategoricalCrossentropyLogits = 6,
  kBinaryCrossentropyLogits = 7,
  // Keras's other losses, all on the prediction as it is (no activation fused)
  kMeanAbsolutePercentageError = 8,
  kMeanSquaredLogarithmicError = 9,
  kCosineSimilarity = 10,  // -cos(y, p): the loss; the metric is its negation
  kHuber = 11,             // param: delta
  kLogCosh = 12,
  kHinge = 13,             // param: 1 converts {0, 1} targets to {-1, 1} (see hinge_targets)
  kSquaredHinge = 14,      // param: as kHinge
  kCategoricalHinge = 15,
  kKLDivergence = 16,
  kPoisson = 17,
  // Keras's BinaryFocalCrossentropy, on probabilities or (Logits) on logits through a sigmoid;
  // param: label smoothing; extra: {gamma, alpha, apply_class_balancing (0 or 1)}
  kBinaryFocalCrossentropy = 18,
  kBinaryFocalCrossentropyLogits = 19,
  // Keras's CategoricalFocalCrossentropy, on probabilities or (Logits) on logits through a
  // softmax; param: label smoothing; extra: {gamma, alpha, unused}
  kCategoricalFocalCrossentropy = 20,
  kCategoricalFocalCrossentropyLogits = 21,
  // An output that carries metrics only: no loss, no gradient (a model output whose loss a
  // Python function computes through other nodes)
  kNone = 22,
  // The prediction holds the loss values themselves (a loss function's, traced into nodes):
  // each row's loss is the mean of its values
  kMeanOfValues = 23,
};

// Keras's hinge losses read {0, 1} targets as {-1, 1} when every target value of the batch is
// 0 or 1: the param of kHinge and kSquaredHinge for a batch whose n targets are y.
float hinge_targets(const float* y, int64_t n);

// Sum over the rows of the per-sample loss (Keras's formula), and, when grad != nullptr, the
// gradient of (sum / scale_rows) with respect to the prediction p (rows × cols).
// y: rows × cols targets, or rows × 1 integer class ids for the sparse loss.
// When fused_logits is set, grad receives the gradient with respect to the logits z of the
// output activation instead: p = softmax(z) for the categorical losses, p = sigmoid(z) for
// binary cross-entropy (exact when no probability is clipped). `weights`, when given, holds a
// sample weight for every rows_per_weight consecutive rows, scaling their loss and gradient.
// `param` is the loss's own argument: for the dense cross-entropies Keras's label smoothing s,
// which replaces y by y·(1 - s) + s/cols for the categorical ones and by y·(1 - s) + s/2 for
// the binary one; Huber's delta; for the hinge losses whether targets are converted.
// `extra` holds the focal losses' further arguments (see Loss), nullptr for the others.
// For the sparse cross-entropies, a row whose class id is `ignore_class` (Keras's; NaN for
// none) or outside [0, cols) has loss 0 and gradient 0.
double loss_forward_backward(Loss loss, const float* p, const float* y, int64_t rows,
                             int64_t cols, float* grad, double scale_rows, bool fused_logits,
                             const float* weights = nullptr, int64_t rows_per_weight = 1,
                             float param = 0.0f, const float* extra = nullptr,
                             float ignore_class = std::numeric_limits<float>::quiet_NaN());

// The counts are Keras's confusion counts at a threshold, summed over a row's values (for
// Precision = true positives / predicted positives, Recall = true positives / actual
// positives): predicted positive p > threshold, actual positive y != 0.
enum class AccuracyKind : int {
  kCategorical = 0,
  kSparseCategorical = 1,
  kBinary = 2,
  kTruePositives = 3,
  kPredictedPositives = 4,
  kActualPositives = 5,
  // Keras's top-k accuracies, k given as the threshold: the target class is among the k
  // highest predictions when fewer than k predictions are strictly higher than its own (a NaN
  // prediction for it never is).
  kTopKCategorical = 6,
  kSparseTopKCategorical = 7,
  // Keras's AUC with evenly spaced thresholds, n of them given as the threshold: not a sum
  // but 2n of them (auc_buckets); with Logits the predictions go through a sigmoid first.
  kAucBuckets = 8,
  kAucBucketsLogits = 9,
  // Keras's R2Score: 4 sums per column (r2_sums).
  kR2Sums = 10,
  // Keras's F-beta scores: 4 sums per column (f_score_sums); the threshold, or 0 for the
  // row's maximum.
  kFScoreSums = 11,
  // The AUC's bucket counts kept for each column apart (multi_label, label_weights): 2n·cols.
  kAucColumnBuckets = 12,
  kAucColumnBucketsLogits = 13,
  // Keras's SensitivitySpecificityBase metrics (SensitivityAtSpecificity, PrecisionAtRecall...):
  // n bucket counts as kAucBuckets but without its epsilon ends (auc_buckets's above_zero), of
  // the class_id column alone when class_id >= 0.
  kThresholdBuckets = 14,
  // Keras's IoU metrics: a confusion matrix's per-class sums over num_classes (given as top_k)
  // classes (iou_sums): targets and predictions as class ids, one pair a value (IoU, MeanIoU);
  // ids a row against the row's highest prediction (sparse_y_pred=False); both the rows'
  // highest values (OneHotIoU, OneHotMeanIoU); ids against p >= threshold (BinaryIoU).
  kIoUSums = 15,
  kIoUSumsArgmaxPred = 16,
  kIoUSumsArgmax = 17,
  kBinaryIoUSums = 18,
};

// Keras's FBetaScore sums of each column c, added to out (4·cols values): true positives
// Σ w·ŷ·y, false positives Σ w·ŷ·(1 - y), false negatives Σ w·(1 - ŷ)·y and Σ w·y, where ŷ
// is 1 when p > threshold, or with threshold 0 when p is its row's maximum and |p| > 1e-9.
void f_score_sums(const float* p, const float* y, int64_t rows, int64_t cols, float threshold,
                  double* out, const float* weights = nullptr, int64_t rows_per_weight = 1);

// Keras's IoU sums for `kind` (kIoUSums...kBinaryIoUSums), added to out (3·num_classes
// values): for each class c, the (weighted) count of pairs where target and prediction are
// both c, of predictions c, and of targets c. An id is a value truncated toward zero, and a
// pair counts only when both ids are classes (in [0, num_classes)) and the target is not
// `ignore` (-1: none), as Keras masks them. `threshold` is BinaryIoU's (p >= threshold is
// class 1); with the argmax kinds a row's id is the index of its first highest value.
void iou_sums(AccuracyKind kind, const float* p, const float* y, int64_t rows, int64_t cols,
              int64_t num_classes, float threshold, int64_t ignore, double* out,
              const float* weights = nullptr, int64_t rows_per_weight = 1);

// Keras's R2Score sums of each column c, added to out (4·cols values): Σ w·y, Σ w·y²,
// Σ w·(y - p)², Σ w, w the row's weight (or 1).
void r2_sums(const float* p, const float* y, int64_t rows, int64_t cols, double* out,
             const float* weights = nullptr, int64_t rows_per_weight = 1);

// Keras's AUC confusion counts before their cumulative sums: every value p (clipped to [0, 1];
// through a sigmoid first when `logits`) of the rows falls in bucket
// max(ceil(p·(n - 1)) - 1, 0), and adds its row's weight (or 1) to positives[bucket] when its
// target is not 0, else to negatives[bucket]; out holds positives then negatives (2n values)
// and is added to. A NaN prediction counts in bucket 0. With per_column, each column c keeps
// its own: positives at out[c·n + bucket], negatives at out[(cols + c)·n + bucket].
// With `thresholds` (n sorted values, Keras's list with its -eps and 1 + eps ends), the bucket
// is instead the index of the last threshold below the prediction (0 when none is).
// With `above_zero` (Keras's evenly spaced thresholds 0, 1/(n - 1), ..., 1 without epsilon
// ends), the bucket is min(ceil(p·(n - 1)), n - 1): bucket 0 holds the values above no
// threshold, bucket b >= 1 those above thresholds 0 to b - 1. With class_id >= 0 only that
// column counts.
void auc_buckets(const float* p, const float* y, int64_t rows, int64_t cols, int64_t n,
                 bool logits, double* out, const float* weights = nullptr,
                 int64_t rows_per_weight = 1, bool per_column = false,
                 const float* thresholds = nullptr, bool above_zero = false,
                 int64_t class_id = -1);
// Sum over rows of the per-row accuracy (binary accuracy is a mean over the last axis) or
// count, each row's times the sample weight weights[r / rows_per_weight] when weights are
// given.
// The confusion counts take Keras's `top_k` (> 0: only a row's k highest predictions, ties to
// the lower index, can be predicted positives) and `class_id` (>= 0: only that column counts).
double accuracy_sum(AccuracyKind kind, const float* p, const float* y, int64_t rows,
                    int64_t cols, float threshold, const float* weights = nullptr,
                    int64_t rows_per_weight = 1, int64_t class_id = -1, int64_t top_k = 0);

}  // namespace densitron
