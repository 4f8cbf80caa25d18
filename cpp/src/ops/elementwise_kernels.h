// The per-ISA table of elementwise kernels: activations over flat arrays, the row pieces of the
// softmaxes, and the optimizer updates. One table per ISA (generic, avx2, avx512), all built from
// elementwise_body.inc. Plain declarations only: the ISA-flagged files include this header.
#pragma once

#include <cstdint>

#include "densitron/optim.h"  // OptimArgs

namespace densitron {

// The losses whose row loss is the mean of per-value terms, by elementwise_loss.
enum ElementwiseLoss : int {
  kLossBce = 0, kLossBceLogits, kLossSquared, kLossAbsolute, kLossPercentage, kLossSquaredLog,
  kLossHuber, kLossLogCosh, kLossHinge, kLossSquaredHinge, kLossPoisson, kLossKLDivergence
};

struct ElementwiseKernels {
  // act: densitron::Activation value; prm: {negative_slope, max_value, threshold, alpha}.
  // Not for the softmaxes, which are built from the row pieces below.
  void (*act_forward)(int act, const float* prm, const float* x, float* y, int64_t n);
  // x may be nullptr when activation_needs_input() is false.
  void (*act_backward)(int act, const float* prm, const float* x, const float* y,
                       const float* dy, float* dx, int64_t n);
  float (*row_max)(const float* x, int64_t n);
  // Σ exp(x - c); also stores the terms into y when y != nullptr.
  float (*exp_shift_sum)(const float* x, float* y, int64_t n, float c);
  void (*scale)(float* y, int64_t n, float s);                              // y *= s
  void (*shift2)(const float* x, float* y, int64_t n, float c1, float c2);  // y = (x - c1) - c2
  float (*sum)(const float* x, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
  // softmax: dx = y ⊙ (dy - d);  log_softmax: dx = dy - exp(y)·s
  void (*softmax_jvp)(const float* y, const float* dy, float* dx, int64_t n, float d);
  void (*log_softmax_jvp)(const float* y, const float* dy, float* dx, int64_t n, float s);
  void (*sgd)(const OptimArgs* a, float* w, const float* g, float* m, int64_t n);
  // a (centered) and b (momentum) may be nullptr.
  void (*rmsprop)(const OptimArgs* a, float* w, const float* g, float* v, float* avg, float* b,
                  int64_t n);
  // vhat may be nullptr (no amsgrad).
  void (*adam)(const OptimArgs* a, float* w, const float* g, float* m, float* v, float* vhat,
               int64_t n);
  void (*adamax)(const OptimArgs* a, float* w, const float* g, float* m, float* u, int64_t n);
  void (*adagrad)(const OptimArgs* a, float* w, const float* g, float* acc, int64_t n);
  void (*lion)(const OptimArgs* a, float* w, const float* g, float* m, int64_t n);
  void (*nadam)(const OptimArgs* a, float* w, const float* g, float* m, float* v, int64_t n);
  void (*ftrl)(const OptimArgs* a, float* w, const float* g, float* acc, float* linear,
               int64_t n);
  void (*adadelta)(const OptimArgs* a, float* w, const float* g, float* acc_g, float* acc_d,
                   int64_t n);
  bool (*copy_has_nan)(const float* x, float* y, int64_t n);  // y = x; whether x holds a NaN
  // out[j] = Σ_e val[e]·w[idx[e]·ldw + j], j < n, terms in entry order (see ops.h)
  void (*sparse_row_times)(const int32_t* idx, const float* val, int64_t nnz, const float* w,
                           int64_t ldw, float* out, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a·x
  // rows × n values, row by row (the pieces above): softmax and log_softmax, and their
  // backwards from the output y (dx may be dy)
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n);
  void (*log_softmax_rows)(const float* x, float* y, int64_t rows, int64_t n);
  void (*softmax_jvp_rows)(const float* y, const float* dy, float* dx, int64_t rows, int64_t n);
  void (*log_softmax_jvp_rows)(const float* y, const float* dy, float* dx, int64_t rows,
                               int64_t n);
  // The terms of an elementwise loss (ElementwiseLoss) over n values into t, and the gradient
  // into g unless nullptr, scaled by c1·c2, or c1·c2s[i] when c2s is not nullptr; targets
  // y·keep + add; param: Huber's delta (see elementwise_body.inc)
  void (*elementwise_loss)(int kind, const float* p, const float* y, float* t, float* g,
                           int64_t n, float keep, float add, float param, float c1, float c2,
                           const float* c2s, bool fused);
  // Keras's categorical cross-entropy of rows × n probabilities (y: targets, or labels when
  // `sparse`), each row weighted by w[r / per] (w may be nullptr): the weighted losses' sum,
  // and the gradient into g (scaled by scale·weight) unless nullptr (see elementwise_body.inc).
  // A sparse row whose label is `ignore` (Keras's ignore_class; NaN: none) or outside [0, n)
  // has no target: loss 0, gradient 0.
  double (*crossentropy_rows)(const float* p, const float* y, float* g, int64_t rows, int64_t n,
                              float keep, float add, float scale, const float* w, int64_t per,
                              bool sparse, bool fused, float ignore);
  // The same on logits z (from_logits=True), the gradient through the softmax
  double (*crossentropy_logits_rows)(const float* z, const float* y, float* g, int64_t rows,
                                     int64_t n, float keep, float add, float scale,
                                     const float* w, int64_t per, bool sparse, float ignore);
  // The index of the first largest of x[0..n), n >= 1 (std::max_element's; 0 when x[0] is NaN)
  int64_t (*first_max)(const float* x, int64_t n);
  // How many of x[0..n) are greater than v
  int64_t (*count_above)(const float* x, int64_t n, float v);
  // Keras's cosine-similarity loss and categorical hinge of one row of n values: the loss,
  // and the gradient into g (scaled by scale) unless nullptr (see elementwise_body.inc)
  double (*cosine_row)(const float* p, const float* y, float* g, int64_t n, float scale);
  double (*categorical_hinge_row)(const float* p, const float* y, float* g, int64_t n,
                                  float scale);
  // Dropout of n values whose mask indices run from `first`: y = x·scale where the uniform of
  // (seed, key, index) is >= rate, else 0 (added to y when `accumulate`)
  void (*dropout)(const float* x, float* y, int64_t n, uint64_t seed, uint64_t key,
                  uint64_t first, float rate, float scale, bool accumulate);
  // Standard normal values for mask indices first..first+n-1 (Box-Muller on dropout's hash)
  void (*gaussian_noise)(float* out, int64_t n, uint64_t seed, uint64_t key, uint64_t first);
  // BatchNormalization over rows × w values, rows ld apart (see elementwise_body.inc): each
  // feature's mean and sum of squared deviations in double; the normalization y = (x -
  // mean)·inv·gamma + beta (gamma, beta may be nullptr); the backward's sums (gamma's and
  // beta's gradients added to gg, gb in float, Σ dy and Σ dy·xhat in double; any may be
  // nullptr); and the input gradient g·(dy - a - xhat·b), added to gx when `acc`.
  void (*col_moments)(const float* x, int64_t rows, int64_t ld, int64_t w, double* mu,
                      double* sq);
  void (*col_normalize)(const float* x, float* y, int64_t rows, int64_t ld, int64_t w,
                        const float* mean, const float* inv, const float* gamma,
                        const float* beta);
  void (*col_norm_grad_sums)(const float* dy, const float* x, int64_t rows, int64_t ld,
                             int64_t w, const float* mean, const float* inv, float* gg,
                             float* gb, double* sum_dy, double* sum_dy_xhat);
  void (*col_norm_backward)(const float* dy, const float* x, float* gx, int64_t rows,
                            int64_t ld, int64_t w, const float* mean, const float* inv,
                            const float* g, const float* a, const float* b, bool acc);
  // LayerNormalization over the last axis (see elementwise_body.inc): one row's statistics
  // {mean, 1/sqrt(variance + eps)} into stats and its output; one row's input gradient
  // (added to gx when `acc`); gamma's and beta's gradients over rows × w values rows ld apart
  // (either may be nullptr). Not `centered`: RMSNormalization's, the mean taken as 0.
  void (*layer_norm_row)(const float* x, float* y, int64_t n, const float* gamma,
                         const float* beta, float eps, float* stats, bool centered);
  void (*layer_norm_row_backward)(const float* dy, const float* x, float* gx, int64_t n,
                                  const float* gamma, float m, float inv, bool acc,
                                  bool centered);
  void (*layer_norm_param_grads)(const float* dy, const float* x, int64_t rows, int64_t ld,
                                 int64_t w, const float* stats, float* gg, float* gb);
  // Embedding: row j of y = table row ids[j] (j < n, rows of d values); and its gradient, row
  // j of dy added to table row ids[j] for the ids in [lo, hi), in order (list: n scratch
  // indices)
  void (*gather_rows)(const float* table, const float* ids, int64_t n, int64_t d, float* y);
  void (*scatter_add_rows)(const float* dy, const float* ids, int64_t n, int64_t d, int64_t lo,
                           int64_t hi, float* table, int64_t* list);
  // Whether any of x[0..n) is not an integer in [0, limit) (NaN included; limit >= 1)
  bool (*any_bad_id)(const float* x, int64_t n, float limit);
  // Mean pooling and bias gradients: y += the rows of x (n values each, stride apart, in order)
  // whose keep is not 0 (keep may be nullptr), returning how many; and mean pooling's gradient,
  // each row of y set to (or, when `acc`, added) v where kept, else 0
  float (*add_rows)(const float* x, int64_t rows, int64_t n, int64_t stride, const float* keep,
                    float* y);
  void (*put_rows)(const float* v, int64_t rows, int64_t n, const float* keep, float* y,
                   bool acc);
  // y = x rounded to float32; whether x holds a NaN (a float64 input's gathered rows)
  bool (*copy_f64_has_nan)(const double* x, float* y, int64_t n);
  // y = n integers as float32: type 1 int32, 2 int64, 3 uint8 (an integer input's rows)
  void (*ints_to_float)(const void* x, int type, float* y, int64_t n);
  // PReLU forward and input gradient (alpha per value; added to g when `acc`), and Maximum's
  // or Minimum's gradient for input a or b (`second`) of two (see elementwise_body.inc)
  void (*prelu)(const float* x, const float* alpha, float* y, int64_t n);
  void (*prelu_grad)(const float* x, const float* alpha, const float* dy, float* g, int64_t n,
                     bool acc);
  void (*pick_grad)(const float* a, const float* b, const float* dy, float* g, int64_t n,
                    bool max, bool second);
  // Softmax (log_softmax) over each column of a len × inner block, and its backward from the
  // output (added to dx when `acc`)
  void (*softmax_cols)(const float* x, float* y, int64_t len, int64_t inner, bool log);
  void (*softmax_cols_jvp)(const float* y, const float* dy, float* dx, int64_t len,
                           int64_t inner, bool log, bool acc);
  // Max pooling over the rows of x (n values each), and its gradient (dy shared between the
  // ties; added to g when `acc`)
  void (*max_rows)(const float* x, int64_t rows, int64_t n, float* y);
  void (*max_rows_grad)(const float* x, const float* y, const float* dy, float* g, int64_t rows,
                        int64_t n, bool acc);
  // Keras's L1/L2 regularization of n values: {Σ|w|, Σw²} in double into sums (a sum whose
  // factor is 0 left 0), and the gradient l1·sign(w) + 2·l2·w stored into g (`first`) or added
  // to it; either output may be nullptr
  void (*regularize)(const float* w, float* g, int64_t n, float l1, float l2, bool first,
                     double* sums);
  // A weight constraint's norms over axis 0: sq[j] += Σ_r x[r·ld + j]² in double, row by row;
  // and the scaling x[r·ld + j] *= f[j] (rows × w values)
  void (*col_sq_sums)(const float* x, int64_t rows, int64_t ld, int64_t w, double* sq);
  void (*scale_cols)(float* x, int64_t rows, int64_t ld, int64_t w, const float* f);
  void (*scale_div)(float* y, int64_t n, float c, float d);  // y = y·c / d, in that order
  void (*clamp)(float* y, int64_t n, float lo, float hi);  // y = min(max(y, lo), hi), NaN kept
  // A sparse row's kernel gradient: g row idx[e] (n values) += val[e]·d (as axpy) for the
  // entries whose column is in [lo, hi), in order; their positions listed into list (scratch
  // for nnz), their count returned
  int64_t (*sparse_row_scatter)(const int32_t* idx, const float* val, int64_t nnz,
                                const float* d, float* g, int64_t n, int64_t lo, int64_t hi,
                                int64_t* list);
  // The stored (not ±0; NaN stored) values of x[0..n) appended to val and their positions
  // base + j to idx (room for n each); returns how many
  int64_t (*compress_stored)(const float* x, int64_t n, int32_t base, int32_t* idx, float* val);
  // avg = a·avg + b·w (use_ema's moving average), products added in that order
  void (*moving_average)(float* avg, const float* w, int64_t n, float a, float b);
  // The recurrent nodes' cells, one sample's step of u units (graph_rnn.cc; see
  // elementwise_body.inc): LSTM's forward and backward; GRU's forward (part 0 the whole step,
  // 1 its gates alone, 2 the rest after the reset-before product) and backward, and the
  // reset-before form's gradient through r·h_{t-1}
  void (*lstm_cell)(float* z, const float* cp, int64_t u);
  void (*lstm_cell_backward)(float* z, const float* cp, const float* og, float* dh, float* dc,
                             int64_t u);
  void (*gru_cell)(float* z, const float* hp, int part, int64_t u);
  void (*gru_cell_backward)(float* z, const float* hp, const float* og, float* dh,
                            bool reset_before, int64_t u);
  void (*gru_reset_backward)(float* xr, float* rr, const float* hh, const float* drh,
                             const float* m, float* dh, int64_t u);
  // A max pooling window whose windows do not overlap (n taps of c values at xs + off[t]): its
  // maximum into y and the tap each channel's gradient goes to into ix; and that gradient
  // written at the taps (times the producer's relu derivative where y is given)
  void (*pool_window_max)(const float* xs, const int64_t* off, int64_t n, float* y, uint8_t* ix,
                          int64_t c);
  void (*pool_window_max_grad)(const int64_t* off, int64_t n, const uint8_t* ix, const float* y,
                               const float* dy, float* gs, int64_t c);
};

const ElementwiseKernels* elementwise_kernels_generic();
const ElementwiseKernels* elementwise_kernels_avx2();
const ElementwiseKernels* elementwise_kernels_avx512();
// The table for densitron::active_isa().
const ElementwiseKernels* elementwise_kernels();

// Σx² of n values in double, by the ISA's regularize kernel (a norm's square: weight
// constraints, global clipnorm, Lamb's trust ratio).
inline double sum_of_squares(const float* x, int64_t n) {
  double sums[2];
  elementwise_kernels()->regularize(x, nullptr, n, 0.0f, 1.0f, false, sums);
  return sums[1];
}

// Runs fn(ctx, begin, end) over [0, n) split into per-thread chunks of whole 64-byte lines; a
// single call on the calling thread when n < 2·min_chunk or one thread is configured.
void parallel_chunks(int64_t n, int64_t min_chunk, void (*fn)(void* ctx, int64_t b, int64_t e),
                     void* ctx);

}  // namespace densitron
