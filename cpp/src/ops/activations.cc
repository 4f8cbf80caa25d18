// Row-wise activations over row-major float32 blocks. Backward passes are written through the
// forward output y (relu: y > 0, sigmoid: y(1-y), tanh: 1-y², softmax: y ⊙ (dy - <dy, y>)).
#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>

#include "densitron/ops.h"

namespace densitron {
namespace {

void softmax_row(float* y, int64_t cols) {
  float mx = y[0];
  for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, y[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) {
    y[j] = std::exp(y[j] - mx);
    sum += y[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < cols; ++j) y[j] *= inv;
}

}  // namespace

bool activation_needs_input(Activation act, const ActivationParams& p) {
  switch (act) {
    case Activation::kGelu:
    case Activation::kGeluApprox:
    case Activation::kSilu:
    case Activation::kMish:
    case Activation::kHardSilu:
      return true;
    case Activation::kRelu:  // with a threshold, slope or cap, y alone is ambiguous
      return p.threshold != 0.0f || p.negative_slope != 0.0f || p.max_value >= 0.0f;
    default:
      return false;
  }
}

void activation_forward(Activation act, const ActivationParams& p, const float* x, float* y,
                        int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  switch (act) {
    case Activation::kLinear:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Activation::kRelu:
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        v = v >= p.threshold ? v : p.negative_slope * (v - p.threshold);
        if (p.max_value >= 0.0f && v > p.max_value) v = p.max_value;
        y[i] = v;
      }
      return;
    case Activation::kSigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
      return;
    case Activation::kTanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      return;
    case Activation::kSoftmax:
      for (int64_t r = 0; r < rows; ++r) {
        if (x != y) std::copy(x + r * cols, x + (r + 1) * cols, y + r * cols);
        if (cols > 0) softmax_row(y + r * cols, cols);
      }
      return;
    default:
      throw std::invalid_argument("activation not implemented in the engine yet");
  }
}

void activation_backward(Activation act, const ActivationParams& p, const float* x,
                         const float* y, const float* dy, float* dz, int64_t rows,
                         int64_t cols) {
  const int64_t n = rows * cols;
  switch (act) {
    case Activation::kLinear:
      if (dz != dy) std::copy(dy, dy + n, dz);
      return;
    case Activation::kRelu:
      if (x == nullptr) {  // plain relu: y > 0 exactly where x > 0
        for (int64_t i = 0; i < n; ++i) dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        float d = v >= p.threshold ? 1.0f : p.negative_slope;
        if (p.max_value >= 0.0f && y[i] >= p.max_value && v >= p.threshold) d = 0.0f;
        dz[i] = dy[i] * d;
      }
      return;
    case Activation::kSigmoid:
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * y[i] * (1.0f - y[i]);
      return;
    case Activation::kTanh:
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * (1.0f - y[i] * y[i]);
      return;
    case Activation::kSoftmax:
      for (int64_t r = 0; r < rows; ++r) {
        const float* yr = y + r * cols;
        const float* dyr = dy + r * cols;
        float* dzr = dz + r * cols;
        float dot = 0.0f;
        for (int64_t j = 0; j < cols; ++j) dot += dyr[j] * yr[j];
        for (int64_t j = 0; j < cols; ++j) dzr[j] = yr[j] * (dyr[j] - dot);
      }
      return;
    default:
      throw std::invalid_argument("activation not implemented in the engine yet");
  }
}

}  // namespace densitron
