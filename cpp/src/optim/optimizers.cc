// SGD, RMSprop and Adam as Keras 3 defines them (optim.h): one pass over each parameter buffer,
// weight decay fused into the same pass, vectorised for the active ISA (elementwise_kernels.h)
// and split across threads for large buffers. Elementwise, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "densitron/gemm.h"
#include "densitron/optim.h"
#include "ops/elementwise_kernels.h"

namespace densitron {

namespace {

int step_slot_count(const OptimizerConfig& c) {
  switch (c.kind) {
    case OptimizerKind::kSgd:
      return c.momentum != 0.0f ? 1 : 0;
    case OptimizerKind::kRmsprop:
      return 1 + (c.centered ? 1 : 0) + (c.momentum != 0.0f ? 1 : 0);
    case OptimizerKind::kAdam:
      return c.amsgrad ? 3 : 2;
    case OptimizerKind::kAdamax:
    case OptimizerKind::kAdadelta:
    case OptimizerKind::kNadam:
    case OptimizerKind::kFtrl:
      return 2;
    case OptimizerKind::kAdagrad:
    case OptimizerKind::kLion:
      return 1;
    case OptimizerKind::kLamb:
      return 2;
    case OptimizerKind::kAdafactor:  // v, then r and c in the first n/d1 and n/d2 values
      return 3;
    case OptimizerKind::kMuon:  // momentum, AdamW's velocity (unused by the matrices)
      return 2;
    case OptimizerKind::kScheduleFree:  // z (Keras's momentum), velocity
      return 2;
  }
  return 0;
}

}  // namespace

int optimizer_slot_count(const OptimizerConfig& c) {
  return step_slot_count(c) + (c.use_ema ? 1 : 0) + (c.accumulation_steps > 1 ? 1 : 0);
}

int ema_slot(const OptimizerConfig& c) { return c.use_ema ? step_slot_count(c) : -1; }

int accumulator_slot(const OptimizerConfig& c) {
  return c.accumulation_steps > 1 ? step_slot_count(c) + (c.use_ema ? 1 : 0) : -1;
}

float optimizer_slot_initial_value(const OptimizerConfig& c, int s) {
  const bool accumulator = c.kind == OptimizerKind::kAdagrad || c.kind == OptimizerKind::kFtrl;
  return accumulator && s == 0 ? c.initial_accumulator : 0.0f;
}

namespace {

// Elements per thread below which a parallel region costs more than it saves.
constexpr int64_t kMinChunk = 1 << 15;

struct Update {
  const OptimizerStep* s;
  float* w;
  const float* g;
  float* const* slots;
};

// Keras's Ftrl for a learning_rate_power other than -0.5 (the kernels' sqrt): one element at
// a time with std::pow, the kernels' order of operations otherwise.
void ftrl_any_power(const OptimArgs* a, float* w, const float* g, float* acc, float* linear,
                    int64_t n) {
  const float lr = a->learning_rate, p = a->power;
  for (int64_t i = 0; i < n; ++i) {
    float wi = w[i];
    if (a->decay != 0.0f) wi -= a->decay * wi;
    const float gi = g[i], na = acc[i] + gi * gi, pn = std::pow(na, p);
    const float lin =
        linear[i] + ((gi + 2.0f * a->shrinkage * wi) - (pn - std::pow(acc[i], p)) / lr * wi);
    linear[i] = lin;
    w[i] = (std::min(std::max(lin, -a->l1), a->l1) - lin) / (pn / lr + 2.0f * a->l2);
    acc[i] = na;
  }
}

void update_chunk(void* ctx, int64_t b, int64_t e) {
  const Update& u = *static_cast<const Update*>(ctx);
  float* at[3];
  for (int k = 0; k < 3; ++k) at[k] = u.s->slot[k] >= 0 ? u.slots[u.s->slot[k]] + b : nullptr;
  const ElementwiseKernels* k = static_cast<const ElementwiseKernels*>(u.s->kernels);
  const OptimArgs* a = &u.s->args;
  switch (u.s->kind) {
    case OptimizerKind::kSgd:
      k->sgd(a, u.w + b, u.g + b, at[0], e - b);
      return;
    case OptimizerKind::kRmsprop:
      k->rmsprop(a, u.w + b, u.g + b, at[0], at[1], at[2], e - b);
      return;
    case OptimizerKind::kAdam:
      k->adam(a, u.w + b, u.g + b, at[0], at[1], at[2], e - b);
      return;
    case OptimizerKind::kAdamax:
      k->adamax(a, u.w + b, u.g + b, at[0], at[1], e - b);
      return;
    case OptimizerKind::kAdagrad:
      k->adagrad(a, u.w + b, u.g + b, at[0], e - b);
      return;
    case OptimizerKind::kLion:
      k->lion(a, u.w + b, u.g + b, at[0], e - b);
      return;
    case OptimizerKind::kAdadelta:
      k->adadelta(a, u.w + b, u.g + b, at[0], at[1], e - b);
      return;
    case OptimizerKind::kNadam:
      k->nadam(a, u.w + b, u.g + b, at[0], at[1], e - b);
      return;
    case OptimizerKind::kLamb:  // (its norms need the whole variable: see optimizer_update)
      throw std::logic_error("Lamb updates a whole variable in two passes");
    case OptimizerKind::kAdafactor:  // (see adafactor_update)
      throw std::logic_error("Adafactor updates a whole variable at once");
    case OptimizerKind::kMuon:  // (see muon_update)
      throw std::logic_error("Muon updates a whole variable at once");
    case OptimizerKind::kScheduleFree:
      schedule_free_update(*a, u.w + b, u.g + b, at[0], at[1], e - b);
      return;
    case OptimizerKind::kFtrl:
      if (a->power == 0.5f) {
        k->ftrl(a, u.w + b, u.g + b, at[0], at[1], e - b);
      } else {
        ftrl_any_power(a, u.w + b, u.g + b, at[0], at[1], e - b);
      }
      return;
  }
}

// Keras's u_t in float32: beta_1·(1 - 0.5·0.96^t).
float nadam_u(float beta_1, int64_t t) {
  return beta_1 * (1.0f - 0.5f * std::pow(0.96f, static_cast<float>(t)));
}

}  // namespace

void lamb_moments(const OptimArgs& a, float* w, float* g, float* m, float* v, int64_t n) {
  const float c1 = 1.0f - a.beta_1, c2 = 1.0f - a.beta_2;
  for (int64_t i = 0; i < n; ++i) {
    if (a.decay != 0.0f) w[i] -= w[i] * a.decay;
    const float gi = g[i];
    const float mi = m[i] + (gi - m[i]) * c1, vi = v[i] + (gi * gi - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    g[i] = (mi / a.alpha) / (std::sqrt(vi / a.m_scale) + a.epsilon);
  }
}

void adafactor_update(const OptimArgs& a, int64_t d2, int64_t d1, float* w, const float* g,
                      float* v, float* r, float* c, int64_t n) {
  if (n <= 0) return;
  const float b = a.beta_2_t, b1 = 1.0f - a.beta_2_t, e1 = a.epsilon_1;
  double ws = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (a.decay != 0.0f) w[i] -= w[i] * a.decay;
    ws += static_cast<double>(w[i]) * w[i];
  }
  const float rms_w = static_cast<float>(std::sqrt(ws / static_cast<double>(n)));
  const float alpha = std::max(a.epsilon_2, rms_w) * a.rho_t;
  if (d2 > 0) {
    const int64_t outer = n / (d2 * d1);
    std::vector<double> col(static_cast<size_t>(d1));
    for (int64_t o = 0; o < outer; ++o) {
      const float* go = g + o * d2 * d1;
      float* ro = r + o * d2;
      float* co = c + o * d1;
      std::fill(col.begin(), col.end(), 0.0);
      double rsum = 0.0;
      for (int64_t i = 0; i < d2; ++i) {
        double row = 0.0;
        for (int64_t j = 0; j < d1; ++j) {
          const float q = go[i * d1 + j] * go[i * d1 + j] + e1;
          row += q;
          col[j] += q;
        }
        ro[i] = b * ro[i] + b1 * static_cast<float>(row / static_cast<double>(d1));
        rsum += ro[i];
      }
      for (int64_t j = 0; j < d1; ++j)
        co[j] = b * co[j] + b1 * static_cast<float>(col[j] / static_cast<double>(d2));
      const float rmean = static_cast<float>(rsum / static_cast<double>(d2));
      float* vo = v + o * d2 * d1;
      for (int64_t i = 0; i < d2; ++i) {
        const float ri = ro[i] / rmean;
        for (int64_t j = 0; j < d1; ++j) vo[i * d1 + j] = ri * co[j];
      }
    }
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = b * v[i] + b1 * (g[i] * g[i] + e1);
  }
  double us = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float u = g[i] / std::sqrt(v[i]);
    us += static_cast<double>(u) * u;
  }
  const float rms_u = static_cast<float>(std::sqrt(us / static_cast<double>(n)));
  const float denom = std::max(1.0f, rms_u / a.clip_threshold);
  for (int64_t i = 0; i < n; ++i) w[i] -= alpha * ((g[i] / std::sqrt(v[i])) / denom);
}

void muon_update(const OptimArgs& a, int64_t rows, int64_t cols, float* w, const float* g,
                 float* m, float* v, int64_t n) {
  if (n <= 0) return;
  if (rows <= 0) {  // Keras's _adamw_update_step, in its order of float32 operations
    const float c1 = a.g_scale, c2 = a.v_scale;  // (1 - beta_1, 1 - beta_2)
    for (int64_t i = 0; i < n; ++i) {
      if (a.adam_decay != 0.0f) w[i] -= w[i] * a.adam_decay;
      const float gi = g[i];
      m[i] += (gi - m[i]) * c1;
      v[i] += (gi * gi - v[i]) * c2;
      w[i] -= (m[i] * a.alpha) / (std::sqrt(v[i]) + a.epsilon);
    }
    return;
  }
  const float mom = a.momentum;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (a.decay != 0.0f) w[i] -= w[i] * a.decay;
    m[i] += g[i] + m[i] * a.m_scale;  // (m_scale: momentum - 1)
  }
  // X: r×c with r <= c (the matrix transposed when it has more rows than columns)
  const bool tr = rows > cols;
  const int64_t r = tr ? cols : rows, c = tr ? rows : cols;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t k = i * cols + j;
      const float gk = a.nesterov ? g[k] + mom * m[k] : m[k];
      x[tr ? j * rows + i : k] = gk;
    }
  double sq = 0.0;
  for (float e : x) sq += static_cast<double>(e) * e;
  const float denom = static_cast<float>(std::sqrt(sq)) + 1e-7f;
  for (float& e : x) e /= denom;
  std::vector<float> A(static_cast<size_t>(r * r)), B(static_cast<size_t>(r * r)),
      t(static_cast<size_t>(n));
  for (int s = 0; s < a.ns_steps; ++s) {
    sgemm_share(0, 1, false, true, r, r, c, 1.0f, x.data(), c, x.data(), c, 0.0f, A.data(), r);
    std::vector<float> ca(A);
    for (float& e : ca) e *= a.muon_c;
    sgemm_share(0, 1, false, false, r, r, r, 1.0f, ca.data(), r, A.data(), r, 0.0f, B.data(), r);
    for (int64_t i = 0; i < r * r; ++i) B[i] = a.muon_b * A[i] + B[i];
    sgemm_share(0, 1, false, false, r, c, r, 1.0f, B.data(), r, x.data(), c, 0.0f, t.data(), c);
    for (int64_t i = 0; i < n; ++i) x[i] = a.muon_a * x[i] + t[i];
  }
  const float adjust = std::sqrt(static_cast<float>(std::max(rows, cols)));
  const float lr = a.learning_rate;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const float u = lr * x[tr ? j * rows + i : i * cols + j];
      w[i * cols + j] -= a.rms_rate < 0.0f ? u : (u * adjust) * a.rms_rate;
    }
}

void schedule_free_update(const OptimArgs& a, float* w, const float* g, float* z, float* v,
                          int64_t n) {
  const float b1 = a.beta_1, c1 = 1.0f - a.beta_1, c2 = 1.0f - a.beta_2;
  const float lr = a.learning_rate, bc2 = a.alpha, wt = a.m_scale, wt1 = 1.0f - a.m_scale;
  for (int64_t i = 0; i < n; ++i) {
    float y = w[i];
    if (a.decay != 0.0f) y -= y * a.decay;
    const float gi = g[i];
    const float vi = v[i] + (gi * gi - v[i]) * c2;
    v[i] = vi;
    const float z_old = z[i];
    const float zi = z_old - (lr * gi) / (std::sqrt(vi / bc2) + a.epsilon);
    z[i] = zi;
    const float x = wt1 * ((y - c1 * z_old) / b1) + wt * zi;
    w[i] = c1 * zi + b1 * x;
  }
}

float lamb_ratio(double w_squares, double r_squares) {
  const float wn = static_cast<float>(std::sqrt(w_squares));
  const float rn = static_cast<float>(std::sqrt(r_squares));
  return wn > 0.0f && rn > 0.0f ? wn / rn : 1.0f;
}

void lamb_apply(float* w, const float* r, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) w[i] -= scale * r[i];
}

float scheduled_learning_rate(const LrScheduleConfig& s, int64_t iterations) {
  // float32 throughout, in the order of Keras's ops.
  const float t = static_cast<float>(iterations);
  const float pi = 3.14159265358979323846f;
  // The decays' progress t / decay_steps, floored when staircase.
  const auto progress = [&] {
    const float p = t / s.decay_steps;
    return s.staircase ? std::floor(p) : p;
  };
  switch (s.kind) {
    case LrSchedule::kConstant:
      return s.initial;
    case LrSchedule::kExponentialDecay:
      return s.initial * std::pow(s.decay_rate, progress());
    case LrSchedule::kInverseTimeDecay:
      return s.initial / (1.0f + s.decay_rate * progress());
    case LrSchedule::kPolynomialDecay: {
      float steps = s.decay_steps, step = t;
      if (s.cycle) {
        steps *= t == 0.0f ? 1.0f : std::ceil(t / s.decay_steps);
      } else {
        step = std::min(step, steps);
      }
      const float p = step / steps;
      return (s.initial - s.end) * std::pow(1.0f - p, s.power) + s.end;
    }
    case LrSchedule::kPiecewiseConstantDecay: {
      // values[0] up to and including boundaries[0], values[i] in (b[i-1], b[i]], the last
      // value after the last boundary.
      size_t i = 0;
      while (i < s.boundaries.size() && iterations > s.boundaries[i]) ++i;
      return s.values[i];
    }
    case LrSchedule::kTable: {
      if (s.values.empty()) return s.initial;
      const int64_t first = s.boundaries.empty() ? 0 : s.boundaries[0];
      const int64_t last = static_cast<int64_t>(s.values.size()) - 1;
      return s.values[std::min(std::max<int64_t>(iterations - first, 0), last)];
    }
    case LrSchedule::kCosineDecay: {
      auto decay = [&](float step, float from) {
        const float cosine = 0.5f * (1.0f + std::cos(pi * (step / s.decay_steps)));
        return from * ((1.0f - s.alpha) * cosine + s.alpha);
      };
      if (!s.warmup) return decay(std::min(t, s.decay_steps), s.initial);
      const float step = std::min(t, s.decay_steps + s.warmup_steps);
      if (step < s.warmup_steps)
        return (s.warmup_target - s.initial) * (step / s.warmup_steps) + s.initial;
      return decay(step - s.warmup_steps, s.warmup_target);
    }
    case LrSchedule::kCosineDecayRestarts: {
      float fraction = t / s.decay_steps, restart;
      if (s.t_mul == 1.0f) {
        restart = std::floor(fraction);
        fraction -= restart;
      } else {
        restart = std::floor(std::log(1.0f - fraction * (1.0f - s.t_mul)) / std::log(s.t_mul));
        const float done = (1.0f - std::pow(s.t_mul, restart)) / (1.0f - s.t_mul);
        fraction = (fraction - done) / std::pow(s.t_mul, restart);
      }
      const float cosine =
          0.5f * std::pow(s.m_mul, restart) * (1.0f + std::cos(pi * fraction));
      return s.initial * ((1.0f - s.alpha) * cosine + s.alpha);
    }
  }
  return s.initial;
}

float nadam_u_product(float beta_1, int64_t steps, NadamProduct* cache) {
  NadamProduct p;
  p.beta_1 = beta_1;
  if (cache != nullptr && cache->beta_1 == beta_1 && cache->steps <= steps) p = *cache;
  // As Keras assigns it: (product·beta_1)·(1 - 0.5·0.96^t).
  for (; p.steps < steps && p.value != 0.0f; ++p.steps)
    p.value = p.value * beta_1 *
              (1.0f - 0.5f * std::pow(0.96f, static_cast<float>(p.steps + 1)));
  p.steps = steps;
  if (cache != nullptr) *cache = p;
  return p.value;
}

OptimizerStep prepare_optimizer_step(const OptimizerConfig& c, int64_t step,
                                     NadamProduct* nadam, int64_t schedule_step) {
  const float lr = c.schedule.kind != LrSchedule::kConstant
                       ? scheduled_learning_rate(c.schedule,
                                                 schedule_step >= 0 ? schedule_step : step - 1)
                       : c.learning_rate;
  OptimizerStep s{};
  s.slot[0] = s.slot[1] = s.slot[2] = -1;
  s.kind = c.kind;
  s.kernels = elementwise_kernels();
  OptimArgs& a = s.args;
  a.learning_rate = lr;
  a.momentum = c.momentum;
  a.rho = c.rho;
  a.epsilon = c.epsilon;
  a.beta_1 = c.beta_1;
  a.beta_2 = c.beta_2;
  a.decay = c.weight_decay != 0.0f ? lr * c.weight_decay : 0.0f;
  a.nesterov = c.nesterov ? 1 : 0;
  a.centered = c.centered ? 1 : 0;
  a.amsgrad = c.amsgrad ? 1 : 0;
  switch (c.kind) {
    case OptimizerKind::kSgd:
      if (c.momentum != 0.0f) s.slot[0] = 0;
      break;
    case OptimizerKind::kRmsprop:  // slots: v, then the centered average, then momentum
      s.slot[0] = 0;
      if (c.centered) s.slot[1] = 1;
      if (c.momentum != 0.0f) s.slot[2] = c.centered ? 2 : 1;
      break;
    case OptimizerKind::kAdam: {
      const double t = static_cast<double>(step);
      a.alpha = static_cast<float>(lr * std::sqrt(1.0 - std::pow(c.beta_2, t)) /
                                   (1.0 - std::pow(c.beta_1, t)));
      s.slot[0] = 0;
      s.slot[1] = 1;
      if (c.amsgrad) s.slot[2] = 2;
      break;
    }
    case OptimizerKind::kAdagrad:  // slot: the accumulator
    case OptimizerKind::kLion:     // slot: the momentum
      s.slot[0] = 0;
      break;
    case OptimizerKind::kAdadelta:  // slots: the accumulated gradients, then deltas
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    case OptimizerKind::kAdamax:  // slots: m, u
      a.alpha = static_cast<float>(lr / (1.0 - std::pow(c.beta_1, static_cast<double>(step))));
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    case OptimizerKind::kNadam: {  // slots: m, v; Keras's scalars in float32
      const float u_t = nadam_u(c.beta_1, step), u_next = nadam_u(c.beta_1, step + 1);
      const float product = nadam_u_product(c.beta_1, step, nadam);
      a.m_scale = u_next / (1.0f - product * u_next);
      a.g_scale = (1.0f - u_t) / (1.0f - product);
      a.v_scale = 1.0f / (1.0f - std::pow(c.beta_2, static_cast<float>(step)));
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    }
    case OptimizerKind::kLamb:  // slots: m, v; Keras's bias corrections in float32
      a.alpha = 1.0f - std::pow(c.beta_1, static_cast<float>(step));
      a.m_scale = 1.0f - std::pow(c.beta_2, static_cast<float>(step));
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    case OptimizerKind::kAdafactor: {  // Keras's scalars in float32
      const float t = static_cast<float>(step), cap = 1.0f / std::sqrt(t);
      const bool constant = c.schedule.kind == LrSchedule::kConstant;
      a.rho_t = std::min(constant && c.relative_step ? std::min(lr, cap) : lr, cap);
      a.beta_2_t = 1.0f - std::pow(t, c.beta_2_decay);
      a.epsilon_1 = c.epsilon_1;
      a.epsilon_2 = c.epsilon_2;
      a.clip_threshold = c.clip_threshold;
      s.slot[0] = 0;
      s.slot[1] = 1;
      s.slot[2] = 2;
      break;
    }
    case OptimizerKind::kMuon: {  // Keras's scalars in float32
      const float t = static_cast<float>(step);
      const float lr_a = lr * c.adam_lr_ratio;
      a.alpha = lr_a * std::sqrt(1.0f - std::pow(c.beta_2, t)) / (1.0f - std::pow(c.beta_1, t));
      a.muon_a = c.muon_a;
      a.muon_b = c.muon_b;
      a.muon_c = c.muon_c;
      a.ns_steps = c.ns_steps;
      a.rms_rate = c.rms_rate;
      a.adam_decay = c.adam_weight_decay != 0.0f ? lr * c.adam_weight_decay : 0.0f;
      a.g_scale = std::isnan(c.adam_c1) ? 1.0f - c.beta_1 : c.adam_c1;
      a.v_scale = std::isnan(c.adam_c2) ? 1.0f - c.beta_2 : c.adam_c2;
      a.m_scale = std::isnan(c.momentum_m1) ? c.momentum - 1.0f : c.momentum_m1;
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    }
    case OptimizerKind::kScheduleFree: {  // slots: z, v; Keras's scalars in float32
      const float t = static_cast<float>(step);
      if (c.warmup_steps > 0)
        a.learning_rate = lr * std::min(t / static_cast<float>(c.warmup_steps), 1.0f);
      a.alpha = 1.0f - std::pow(c.beta_2, t);
      a.m_scale = 1.0f / t;
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
    }
    case OptimizerKind::kFtrl:  // slots: the accumulator, the linear term
      a.power = -c.lr_power;
      a.l1 = c.l1_strength;
      a.l2 = c.l2_strength + c.ftrl_beta / (2.0f * lr);
      a.shrinkage = c.l2_shrinkage;
      s.slot[0] = 0;
      s.slot[1] = 1;
      break;
  }
  return s;
}

void apply_optimizer_step(const OptimizerStep& s, float* w, const float* g, float* const* slots,
                          int64_t n) {
  Update u{&s, w, g, slots};
  update_chunk(&u, 0, n);
}

void optimizer_update(const OptimizerConfig& c, int64_t step, float* w, const float* g,
                      float* const* slots, int64_t n, NadamProduct* nadam) {
  const OptimizerStep s = prepare_optimizer_step(c, step, nadam);
  if (c.kind == OptimizerKind::kLamb) {  // one variable: its moments, norms, then its step
    std::vector<float> r(g, g + n);
    lamb_moments(s.args, w, r.data(), slots[0], slots[1], n);
    const float ratio = lamb_ratio(sum_of_squares(w, n), sum_of_squares(r.data(), n));
    lamb_apply(w, r.data(), n, ratio * s.args.learning_rate);
    return;
  }
  if (c.kind == OptimizerKind::kAdafactor) {  // one variable, its axes factor_dims[0..1]
    const int64_t d2 = c.factor_dims.size() >= 2 ? c.factor_dims[0] : 0;
    const int64_t d1 = c.factor_dims.size() >= 2 ? c.factor_dims[1] : n;
    adafactor_update(s.args, d2, d1, w, g, slots[0], slots[1], slots[2], n);
    return;
  }
  if (c.kind == OptimizerKind::kMuon) {  // one variable, a matrix when factor_dims[0] > 0
    const int64_t rows = c.factor_dims.size() >= 2 ? c.factor_dims[0] : 0;
    const int64_t cols = c.factor_dims.size() >= 2 ? c.factor_dims[1] : n;
    muon_update(s.args, rows, cols, w, g, slots[0], slots[1], n);
    return;
  }
  Update u{&s, w, g, slots};
  parallel_chunks(n, kMinChunk, update_chunk, &u);
}

}  // namespace densitron
