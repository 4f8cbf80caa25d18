// Row-wise activations, losses and reductions over row-major float32 matrices (rows × cols).
// Pure functions over pointers and sizes; the backward of every activation is expressed through
// the forward's output y, so the executor keeps only outputs.
#pragma once

#include <cstdint>

namespace densitron {

enum class Activation : int { kLinear = 0, kRelu = 1, kSigmoid = 2, kTanh = 3, kSoftmax = 4 };

// y = act(x) in place over a rows × cols block with row stride ld.
void activation_forward(Activation act, float* y, int64_t rows, int64_t cols, int64_t ld);
// dz = dy ⊙ act'(x), with act' expressed through y = act(x). dz may alias dy.
void activation_backward(Activation act, const float* y, const float* dy, float* dz,
                         int64_t rows, int64_t cols);
// col_sums[j] (+)= Σ_i x[i, j]
void column_sums(const float* x, int64_t rows, int64_t cols, float* col_sums, bool accumulate);

enum class Loss : int {
  kCategoricalCrossentropy = 0,
  kSparseCategoricalCrossentropy = 1,
  kBinaryCrossentropy = 2,
  kMeanSquaredError = 3,
  kMeanAbsoluteError = 4,
};

// Sum over the rows of the per-sample loss (Keras's formula), and, when grad != nullptr, the
// gradient of (sum / scale_rows) with respect to the prediction p (rows × cols).
// y: rows × cols targets, or rows × 1 integer class ids for the sparse loss.
// When fused_logits is set, grad receives the gradient with respect to the logits z of the
// output activation instead: p = softmax(z) for the categorical losses, p = sigmoid(z) for
// binary cross-entropy (exact when no probability is clipped).
double loss_forward_backward(Loss loss, const float* p, const float* y, int64_t rows,
                             int64_t cols, float* grad, double scale_rows, bool fused_logits);

enum class AccuracyKind : int { kCategorical = 0, kSparseCategorical = 1, kBinary = 2 };
// Sum over rows of the per-row accuracy (binary accuracy is a mean over the last axis).
double accuracy_sum(AccuracyKind kind, const float* p, const float* y, int64_t rows,
                    int64_t cols, float threshold);

}  // namespace densitron
