// Every Keras activation, forward and backward, over row-major float32 blocks (rows × cols, row
// stride cols). The elementwise ones run over the flat array in per-thread chunks; softmax and
// log_softmax normalise each row. The kernels come from the table for the active ISA
// (elementwise_kernels.h). Backwards are written through y where y determines act'(x):
// sigmoid y(1-y), tanh 1-y², elu y+alpha for y < 0, softplus 1-exp(-y), softsign (1-|y|)²,
// exponential y, softmax y ⊙ (dy - <dy, y>), log_softmax dy - exp(y)·Σdy.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

static_assert(static_cast<int>(Activation::kLinear) == 0 && static_cast<int>(Activation::kRelu) == 1 &&
                  static_cast<int>(Activation::kSigmoid) == 2 &&
                  static_cast<int>(Activation::kTanh) == 3 &&
                  static_cast<int>(Activation::kLeakyRelu) == 5 &&
                  static_cast<int>(Activation::kRelu6) == 6 &&
                  static_cast<int>(Activation::kElu) == 7 &&
                  static_cast<int>(Activation::kSelu) == 8 &&
                  static_cast<int>(Activation::kGelu) == 9 &&
                  static_cast<int>(Activation::kGeluApprox) == 10 &&
                  static_cast<int>(Activation::kSilu) == 11 &&
                  static_cast<int>(Activation::kSoftplus) == 12 &&
                  static_cast<int>(Activation::kSoftsign) == 13 &&
                  static_cast<int>(Activation::kHardSigmoid) == 14 &&
                  static_cast<int>(Activation::kHardSilu) == 15 &&
                  static_cast<int>(Activation::kExponential) == 17 &&
                  static_cast<int>(Activation::kMish) == 18 &&
                  static_cast<int>(Activation::kCelu) == 19 &&
                  static_cast<int>(Activation::kHardShrink) == 20 &&
                  static_cast<int>(Activation::kHardTanh) == 21 &&
                  static_cast<int>(Activation::kLogSigmoid) == 22 &&
                  static_cast<int>(Activation::kSoftShrink) == 23 &&
                  static_cast<int>(Activation::kSparsePlus) == 24 &&
                  static_cast<int>(Activation::kSparseSigmoid) == 25 &&
                  static_cast<int>(Activation::kSquareplus) == 26 &&
                  static_cast<int>(Activation::kTanhShrink) == 27 &&
                  static_cast<int>(Activation::kThreshold) == 28,
              "elementwise_body.inc mirrors densitron::Activation");

const ElementwiseKernels* elementwise_kernels() {
#if defined(DENSITRON_X86)
  switch (active_isa()) {
    case Isa::kAvx512:
      return elementwise_kernels_avx512();
    case Isa::kAvx2:
      return elementwise_kernels_avx2();
    case Isa::kGeneric:
      break;
  }
#endif
  return elementwise_kernels_generic();
}

void parallel_chunks(int64_t n, int64_t min_chunk, void (*fn)(void*, int64_t, int64_t),
                     void* ctx) {
  const int64_t by_size = n / std::max<int64_t>(min_chunk, 1);
  const int nt = static_cast<int>(std::min<int64_t>(get_num_threads(), by_size));
  if (nt <= 1) {
    fn(ctx, 0, n);
    return;
  }
  constexpr int64_t kLine = 16;  // floats per 64-byte line: chunks never share a line
  const int64_t per = (n / nt + kLine - 1) / kLine * kLine;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    const int64_t b = std::min(n, t * per);
    const int64_t e = t == nt - 1 ? n : std::min(n, b + per);
    if (b < e) fn(ctx, b, e);
  }
}

namespace {

// Elements per thread below which threading costs more than it brings (~L2-sized chunks).
constexpr int64_t kMinChunk = 1 << 16;

struct Call {
  const ElementwiseKernels* k;
  int act;
  float prm[4];
  const float* x;
  const float* y;
  const float* dy;
  float* out;
  int64_t cols;
};

void fill_params(Call& c, const ActivationParams& p) {
  c.prm[0] = p.negative_slope;
  c.prm[1] = p.max_value;
  c.prm[2] = p.threshold;
  c.prm[3] = p.alpha;
}

void forward_chunk(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->act_forward(c.act, c.prm, c.x + b, c.out + b, e - b);
}

void backward_chunk(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->act_backward(c.act, c.prm, c.x != nullptr ? c.x + b : nullptr, c.y + b, c.dy + b,
                    c.out + b, e - b);
}

void softmax_rows(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->softmax_rows(c.x + b * c.cols, c.out + b * c.cols, e - b, c.cols);
}

void log_softmax_rows(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->log_softmax_rows(c.x + b * c.cols, c.out + b * c.cols, e - b, c.cols);
}

void softmax_jvp_rows(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->softmax_jvp_rows(c.y + b * c.cols, c.dy + b * c.cols, c.out + b * c.cols, e - b, c.cols);
}

void log_softmax_jvp_rows(void* ctx, int64_t b, int64_t e) {
  const Call& c = *static_cast<const Call*>(ctx);
  c.k->log_softmax_jvp_rows(c.y + b * c.cols, c.dy + b * c.cols, c.out + b * c.cols, e - b,
                            c.cols);
}

void check_act(Activation act) {
  const int a = static_cast<int>(act);
  if (a < 0 || a > static_cast<int>(Activation::kThreshold)) {
    throw std::invalid_argument("unknown activation id " + std::to_string(a));
  }
}

int64_t rows_per_chunk(int64_t cols) { return std::max<int64_t>(1, kMinChunk / std::max<int64_t>(cols, 1)); }

}  // namespace

bool activation_needs_input(Activation act, const ActivationParams& p) {
  switch (act) {
    case Activation::kRelu:
      if (p.negative_slope != 0.0f && p.max_value < 0.0f && p.threshold == 0.0f) {
        return p.negative_slope < 0.0f || p.negative_slope > 1.0f;  // leaky form
      }
      // y > 0 (and y < max_value) marks where x passes only without a slope or negative threshold
      return p.negative_slope != 0.0f || p.threshold < 0.0f;
    case Activation::kLeakyRelu:
      return p.negative_slope < 0.0f || p.negative_slope > 1.0f;
    case Activation::kElu:
    case Activation::kCelu:
      return !(p.alpha > 0.0f);
    case Activation::kHardShrink:
      return p.threshold < 0.0f;
    case Activation::kGelu:
    case Activation::kGeluApprox:
    case Activation::kSilu:
    case Activation::kHardSilu:
    case Activation::kMish:
    case Activation::kHardTanh:
    case Activation::kSparsePlus:
    case Activation::kSquareplus:
    case Activation::kTanhShrink:
    case Activation::kThreshold:
      return true;
    default:
      return false;
  }
}

void activation_forward(Activation act, const ActivationParams& p, const float* x, float* y,
                        int64_t rows, int64_t cols) {
  check_act(act);
  Call c{elementwise_kernels(), static_cast<int>(act), {}, x, nullptr, nullptr, y, cols};
  fill_params(c, p);
  if (act == Activation::kSoftmax || act == Activation::kLogSoftmax) {
    if (cols == 0) return;
    parallel_chunks(rows, rows_per_chunk(cols),
                    act == Activation::kSoftmax ? softmax_rows : log_softmax_rows, &c);
    return;
  }
  parallel_chunks(rows * cols, kMinChunk, forward_chunk, &c);
}

void activation_backward(Activation act, const ActivationParams& p, const float* x,
                         const float* y, const float* dy, float* dx, int64_t rows,
                         int64_t cols) {
  check_act(act);
  if (activation_needs_input(act, p) && x == nullptr) {
    throw std::invalid_argument("activation backward needs the input x");
  }
  // With x given, the forms through x are used only where y is not enough.
  Call c{elementwise_kernels(), static_cast<int>(act), {}, activation_needs_input(act, p) ? x : nullptr,
         y, dy, dx, cols};
  fill_params(c, p);
  if (act == Activation::kSoftmax || act == Activation::kLogSoftmax) {
    if (cols == 0) return;
    parallel_chunks(rows, rows_per_chunk(cols),
                    act == Activation::kSoftmax ? softmax_jvp_rows : log_softmax_jvp_rows, &c);
    return;
  }
  parallel_chunks(rows * cols, kMinChunk, backward_chunk, &c);
}

}  // namespace densitron
