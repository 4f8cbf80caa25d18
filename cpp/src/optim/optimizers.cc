// SGD, RMSprop and Adam as Keras 3 defines them (optim.h): one pass over each parameter buffer,
// weight decay fused into the same pass, vectorised for the active ISA (elementwise_kernels.h)
// and split across threads for large buffers. Elementwise, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>

#include "densitron/optim.h"
#include "ops/elementwise_kernels.h"

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

// Elements per thread below which a parallel region costs more than it saves.
constexpr int64_t kMinChunk = 1 << 15;

struct Update {
  const ElementwiseKernels* k;
  OptimizerKind kind;
  OptimArgs a;
  float* w;
  const float* g;
  float* s[3];
};

void update_chunk(void* ctx, int64_t b, int64_t e) {
  const Update& u = *static_cast<const Update*>(ctx);
  auto at = [b](float* p) { return p != nullptr ? p + b : nullptr; };
  switch (u.kind) {
    case OptimizerKind::kSgd:
      u.k->sgd(&u.a, u.w + b, u.g + b, at(u.s[0]), e - b);
      return;
    case OptimizerKind::kRmsprop:
      u.k->rmsprop(&u.a, u.w + b, u.g + b, at(u.s[0]), at(u.s[1]), at(u.s[2]), e - b);
      return;
    case OptimizerKind::kAdam:
      u.k->adam(&u.a, u.w + b, u.g + b, at(u.s[0]), at(u.s[1]), at(u.s[2]), e - b);
      return;
  }
}

}  // namespace

void optimizer_update(const OptimizerConfig& c, int64_t step, float* w, const float* g,
                      float* const* slots, int64_t n) {
  Update u{elementwise_kernels(), c.kind, {}, w, g, {nullptr, nullptr, nullptr}};
  OptimArgs& a = u.a;
  a.learning_rate = c.learning_rate;
  a.momentum = c.momentum;
  a.rho = c.rho;
  a.epsilon = c.epsilon;
  a.beta_1 = c.beta_1;
  a.beta_2 = c.beta_2;
  a.decay = c.weight_decay != 0.0f ? c.learning_rate * c.weight_decay : 0.0f;
  a.nesterov = c.nesterov ? 1 : 0;
  a.centered = c.centered ? 1 : 0;
  a.amsgrad = c.amsgrad ? 1 : 0;
  switch (c.kind) {
    case OptimizerKind::kSgd:
      if (c.momentum != 0.0f) u.s[0] = slots[0];
      break;
    case OptimizerKind::kRmsprop:  // slots: v, then the centered average, then momentum
      u.s[0] = slots[0];
      if (c.centered) u.s[1] = slots[1];
      if (c.momentum != 0.0f) u.s[2] = slots[c.centered ? 2 : 1];
      break;
    case OptimizerKind::kAdam: {
      const double t = static_cast<double>(step);
      a.alpha = static_cast<float>(c.learning_rate * std::sqrt(1.0 - std::pow(c.beta_2, t)) /
                                   (1.0 - std::pow(c.beta_1, t)));
      u.s[0] = slots[0];
      u.s[1] = slots[1];
      if (c.amsgrad) u.s[2] = slots[2];
      break;
    }
  }
  parallel_chunks(n, kMinChunk, update_chunk, &u);
}

}  // namespace densitron
