// Row-wise activations over row-major float32 blocks. Backward passes are written through the
// forward output y (relu: y > 0, sigmoid: y(1-y), tanh: 1-y², softmax: y ⊙ (dy - <dy, y>)).
#include <algorithm>
#include <cassert>
#include <cmath>

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

void activation_forward(Activation act, float* y, int64_t rows, int64_t cols, int64_t ld) {
  assert(ld >= cols);
  for (int64_t i = 0; i < rows; ++i) {
    float* r = y + i * ld;
    switch (act) {
      case Activation::kLinear:
        return;
      case Activation::kRelu:
        for (int64_t j = 0; j < cols; ++j) r[j] = r[j] > 0.0f ? r[j] : 0.0f;
        break;
      case Activation::kSigmoid:
        for (int64_t j = 0; j < cols; ++j) r[j] = 1.0f / (1.0f + std::exp(-r[j]));
        break;
      case Activation::kTanh:
        for (int64_t j = 0; j < cols; ++j) r[j] = std::tanh(r[j]);
        break;
      case Activation::kSoftmax:
        if (cols > 0) softmax_row(r, cols);
        break;
    }
  }
}

void activation_backward(Activation act, const float* y, const float* dy, float* dz,
                         int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  switch (act) {
    case Activation::kLinear:
      if (dz != dy) std::copy(dy, dy + n, dz);
      return;
    case Activation::kRelu:
      for (int64_t i = 0; i < n; ++i) dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
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
  }
}

}  // namespace densitron
