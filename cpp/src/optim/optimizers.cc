// SGD, RMSprop and Adam as Keras 3 defines them; one pass over each parameter buffer.
#include <cmath>

#include "densitron/optim.h"

namespace densitron {

int optimizer_slot_count(const OptimizerConfig& c) {
  switch (c.kind) {
    case OptimizerKind::kSgd:
      return c.momentum != 0.0f ? 1 : 0;
    case OptimizerKind::kRmsprop:
      return 1 + (c.centered ? 1 : 0) + (c.momentum != 0.0f ? 1 : 0);
    case OptimizerKind::kAdam:
      return c.amsgrad ? 3 : 2;
  }
  return 0;
}

namespace {

void sgd(const OptimizerConfig& c, float* w, const float* g, float* const* slots, int64_t n) {
  const float lr = c.learning_rate;
  if (c.momentum == 0.0f) {
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * g[i];
    return;
  }
  float* m = slots[0];
  const float mu = c.momentum;
  for (int64_t i = 0; i < n; ++i) {
    m[i] = mu * m[i] - lr * g[i];
    w[i] += c.nesterov ? mu * m[i] - lr * g[i] : m[i];
  }
}

void rmsprop(const OptimizerConfig& c, float* w, const float* g, float* const* slots,
             int64_t n) {
  const float lr = c.learning_rate, rho = c.rho, eps = c.epsilon, mu = c.momentum;
  float* v = slots[0];
  float* a = c.centered ? slots[1] : nullptr;
  float* b = mu != 0.0f ? slots[c.centered ? 2 : 1] : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    v[i] = rho * v[i] + (1.0f - rho) * gi * gi;
    float denom = v[i];
    if (a) {
      a[i] = rho * a[i] + (1.0f - rho) * gi;
      denom -= a[i] * a[i];
    }
    const float inc = lr * gi / std::sqrt(denom + eps);
    if (b) {
      b[i] = mu * b[i] + inc;
      w[i] -= b[i];
    } else {
      w[i] -= inc;
    }
  }
}

void adam(const OptimizerConfig& c, int64_t step, float* w, const float* g, float* const* slots,
          int64_t n) {
  const double t = static_cast<double>(step);
  const float alpha = static_cast<float>(c.learning_rate * std::sqrt(1.0 - std::pow(c.beta_2, t)) /
                                         (1.0 - std::pow(c.beta_1, t)));
  const float b1 = c.beta_1, b2 = c.beta_2, eps = c.epsilon;
  float* m = slots[0];
  float* v = slots[1];
  float* vhat = c.amsgrad ? slots[2] : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    m[i] += (gi - m[i]) * (1.0f - b1);
    v[i] += (gi * gi - v[i]) * (1.0f - b2);
    float vv = v[i];
    if (vhat) {
      vhat[i] = vhat[i] > vv ? vhat[i] : vv;
      vv = vhat[i];
    }
    w[i] -= alpha * m[i] / (std::sqrt(vv) + eps);
  }
}

}  // namespace

void optimizer_update(const OptimizerConfig& c, int64_t step, float* w, const float* g,
                      float* const* slots, int64_t n) {
  if (c.weight_decay != 0.0f) {
    const float k = c.learning_rate * c.weight_decay;
    for (int64_t i = 0; i < n; ++i) w[i] -= k * w[i];
  }
  switch (c.kind) {
    case OptimizerKind::kSgd:
      sgd(c, w, g, slots, n);
      return;
    case OptimizerKind::kRmsprop:
      rmsprop(c, w, g, slots, n);
      return;
    case OptimizerKind::kAdam:
      adam(c, step, w, g, slots, n);
      return;
  }
}

}  // namespace densitron
