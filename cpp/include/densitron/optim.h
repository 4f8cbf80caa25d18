// Optimizer updates over flat float32 buffers, exactly Keras's formulas (see KERAS_SEMANTICS.md).
// Slots start at optimizer_slot_initial_value (zero but Adagrad's accumulator) and are owned by
// the caller; step counts start at 1.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace densitron {

enum class OptimizerKind : int {
  kSgd = 0,
  kRmsprop = 1,
  kAdam = 2,
  kAdamax = 3,
  kAdagrad = 4,
  kLion = 5,
  kAdadelta = 6,
  kNadam = 7,
  kFtrl = 8,
  // Keras's Lamb: Adam's moments, then each variable's step scaled by ‖w‖/‖update‖ (see
  // lamb_moments, lamb_apply): the norms need the whole variable, so the graph updates it in
  // two passes.
  kLamb = 9,
  // Keras's Adafactor: a second moment factored into row and column averages for variables of
  // rank >= 2, the step scaled by the variable's RMS and clipped by the update's (see
  // adafactor_update): whole-variable reductions, so the graph updates it after the backward,
  // each variable whole on one thread.
  kAdafactor = 10,
  // Keras's Muon: the momentum of each 2-D kernel orthogonalized by Newton-Schulz iterations
  // (matrix products on the engine's sgemm), AdamW for the other variables (see muon_update);
  // whole variables, as Adafactor's.
  kMuon = 11,
  // Keras's ScheduleFreeAdamW (see schedule_free_update): elementwise; its z slot (Keras's
  // `momentum`) starts as a copy of the weight, which the graph makes when it compiles.
  kScheduleFree = 12,
};

// Keras's learning-rate schedules (keras.optimizers.schedules), by their arguments' names.
enum class LrSchedule : int {
  kConstant = 0,
  kExponentialDecay,        // initial·rate^(t/steps), floored exponent when staircase
  kInverseTimeDecay,        // initial / (1 + rate·t/steps), floored when staircase
  kPolynomialDecay,         // (initial - end)·(1 - t/steps)^power + end, cycle
  kPiecewiseConstantDecay,  // values[i] for t in (boundaries[i-1], boundaries[i]]
  kCosineDecay,             // cosine to alpha·initial, with an optional linear warmup
  kCosineDecayRestarts,     // SGDR: periods growing by t_mul, peaks scaled by m_mul
  // A schedule written in Python, evaluated there ahead of each run of steps: values[k] at
  // t = boundaries[0] + k (the first value before, the last after).
  kTable,
};

struct LrScheduleConfig {
  LrSchedule kind = LrSchedule::kConstant;
  float initial = 0.0f;  // initial_learning_rate
  float decay_steps = 1.0f;  // (first_decay_steps for the restarts)
  float decay_rate = 0.0f;
  float end = 0.0f;  // end_learning_rate
  float power = 1.0f;
  float alpha = 0.0f;
  bool staircase = false, cycle = false;
  bool warmup = false;  // CosineDecay with a warmup_target
  float warmup_target = 0.0f, warmup_steps = 0.0f;
  float t_mul = 2.0f, m_mul = 1.0f;
  std::vector<int64_t> boundaries;  // as Keras compares them with the integer step
  std::vector<float> values;
};

// The schedule's learning rate at `iterations` steps done (Keras calls it with the optimizer's
// iteration count before the update), computed in float32 as Keras does.
float scheduled_learning_rate(const LrScheduleConfig& s, int64_t iterations);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kRmsprop;
  float learning_rate = 0.001f;
  float momentum = 0.0f;  // SGD, RMSprop
  bool nesterov = false;  // SGD
  float rho = 0.9f;       // RMSprop, Adadelta (whose Keras default is 0.95)
  bool centered = false;  // RMSprop
  float epsilon = 1e-7f;  // RMSprop, Adam, Adamax, Adagrad
  float initial_accumulator = 0.1f;  // Adagrad, Ftrl: the accumulator slot's first value
  // Ftrl: learning_rate_power, l1/l2/l2-shrinkage regularization strengths, beta
  float lr_power = -0.5f, l1_strength = 0.0f, l2_strength = 0.0f, l2_shrinkage = 0.0f;
  float ftrl_beta = 0.0f;
  float beta_1 = 0.9f;    // Adam, Adamax, Lion, Nadam
  float beta_2 = 0.999f;  // Adam, Adamax, Lion (whose Keras default is 0.99), Nadam
  bool amsgrad = false;   // Adam
  float weight_decay = 0.0f;  // decoupled (AdamW-style): w -= lr·wd·w before the step
  // Keras's exclude_from_weight_decay: the graph's parameters (by index) that take no decay.
  std::vector<int> no_decay;
  // Keras's gradient clipping, of the gradients the graph hands to the step (at most one set;
  // 0: off). clipvalue clamps each element to [-v, v]; clipnorm scales each parameter's
  // gradient g to g·c / max(‖g‖, c); global_clipnorm scales all of them by
  // c·min(1/N, 1/c), N the norm of all gradients together. Only the graph applies them.
  float clipvalue = 0.0f;
  float clipnorm = 0.0f;
  float global_clipnorm = 0.0f;
  // A schedule other than kConstant replaces learning_rate, step by step.
  LrScheduleConfig schedule;
  // Keras's use_ema: a moving average of each weight after every step (the last slot, see
  // ema_slot), ema·m + w·(1 - m), m = 0 at the first step; every ema_overwrite_frequency
  // steps (0: never) the weights take their averages. Only the graph keeps it.
  bool use_ema = false;
  float ema_momentum = 0.99f;
  int64_t ema_overwrite_frequency = 0;
  // Keras's gradient_accumulation_steps N (0 or 1: off): each step adds its gradients to an
  // accumulator slot (see accumulator_slot); every Nth steps with (g + sum)/N and resets it.
  // The update count (schedules, bias corrections) is then the step count / N.
  int64_t accumulation_steps = 0;
  // Adafactor: Keras's beta_2_decay, epsilon_1, epsilon_2, clip_threshold, relative_step;
  // factor_dims holds, per graph parameter, Keras's last two axes (d2, d1) of its shape
  // (d2 = 0 for a variable of rank < 2, which keeps its own second moment).
  float beta_2_decay = -0.8f, epsilon_1 = 1e-30f, epsilon_2 = 1e-3f, clip_threshold = 1.0f;
  bool relative_step = true;
  std::vector<int64_t> factor_dims;
  // Muon: factor_dims (rows, cols) for its matrices, (0, size) for AdamW's variables; Keras's
  // muon_a/b/c, ns_steps, rms_rate (< 0: None), adam_lr_ratio, adam_weight_decay (momentum,
  // nesterov, beta_1/2 as adam_beta_1/2, epsilon above).
  float muon_a = 3.4445f, muon_b = -4.775f, muon_c = 2.0315f;
  int ns_steps = 5;
  float rms_rate = 0.2f, adam_lr_ratio = 1.0f, adam_weight_decay = 0.0f;
  int64_t warmup_steps = 0;  // ScheduleFreeAdamW: the rate times min(t / warmup_steps, 1)
  // Muon's AdamW takes 1 - adam_beta_1, 1 - adam_beta_2 and momentum - 1 as Keras does, in
  // double before float32 (NaN: from the float32 betas)
  float adam_c1 = NAN, adam_c2 = NAN, momentum_m1 = NAN;
  // Keras's LossScaleOptimizer around this optimizer (float32 training: scaling the loss by a
  // power of two and the gradients back is exact, so only its decisions are kept): a step
  // whose gradients times the scale are not all finite is skipped (no update, no count) and
  // the scale halved; after growth_steps finite steps in a row it doubles.
  bool loss_scale = false;
  float initial_scale = 32768.0f;
  int64_t growth_steps = 2000;
};

// Optimizer constants for one update; decay = learning_rate·weight_decay (0 for none).
// Nadam's step: m_hat = m_scale·m + g_scale·g, v_hat = v_scale·v. Ftrl's: power = -lr_power,
// l1, l2 (with beta / (2·lr) added), shrinkage.
struct OptimArgs {
  float learning_rate, momentum, rho, epsilon, beta_1, beta_2, alpha, decay;
  float m_scale, g_scale, v_scale;
  float power, l1, l2, shrinkage;
  int nesterov, centered, amsgrad;
  // Adafactor: beta_2_t = 1 - t^beta_2_decay, rho_t = min(lr, 1/sqrt(t)) (the learning rate
  // first capped by 1/sqrt(t) when relative_step with a constant rate: the same), epsilon_1,
  // epsilon_2, clip_threshold.
  float beta_2_t, rho_t, epsilon_1, epsilon_2, clip_threshold;
  // Muon: its coefficients, steps and rms_rate; adam_decay = learning_rate·adam_weight_decay
  // (AdamW's variables' decay; decay is the matrices'); alpha: AdamW's step size.
  float muon_a, muon_b, muon_c, rms_rate, adam_decay;
  int ns_steps;
};

// Keras's Nadam keeps the product of its momentum schedule as a variable of its own:
// u_t = beta_1·(1 - 0.5·0.96^t), multiplied in step by step in float32. The product after
// `steps` updates, continued from `cache` when it holds an earlier count (else from 1) and
// left there.
struct NadamProduct {
  int64_t steps = 0;
  float beta_1 = 0.0f;
  float value = 1.0f;
};
float nadam_u_product(float beta_1, int64_t steps, NadamProduct* cache = nullptr);

// One step's update prepared once (its constants computed, the active ISA's kernel chosen)
// and then applied piece by piece on the calling thread, without forking: the graph executor
// updates each block of rows of a kernel as soon as its gradient is computed. A plain
// aggregate, as is OptimArgs: the ISA-flagged kernel files include this header.
struct OptimizerStep {
  OptimizerKind kind;
  OptimArgs args;
  const void* kernels;  // the ISA's elementwise kernel table
  int slot[3];          // which of the caller's slot arrays each kernel slot reads, or -1
};
// step: 1-based (the update's own number). Nadam's product continues from `nadam` (see
// nadam_u_product) when given. The learning-rate schedule is read at schedule_step when it is
// given (>= 0), else at step - 1: with gradient accumulation Keras reads it at the count of
// micro-batches before this one, not of updates.
OptimizerStep prepare_optimizer_step(const OptimizerConfig& config, int64_t step,
                                     NadamProduct* nadam = nullptr, int64_t schedule_step = -1);
// As optimizer_update with the prepared step, on the calling thread only.
void apply_optimizer_step(const OptimizerStep& s, float* w, const float* g, float* const* slots,
                          int64_t n);

// Keras's Lamb for n values of one variable, in two passes. lamb_moments: w decays (w -=
// decay·w), m += (g - m)(1 - beta_1), v += (g² - v)(1 - beta_2), and g is overwritten with the
// update r = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon) (alpha: 1 - beta_1^t,
// m_scale: 1 - beta_2^t in the step's args). Then, with the variable's norms ‖w‖ and ‖r‖ in
// hand, lamb_apply: w -= (ratio·lr)·r, ratio = ‖w‖/‖r‖ when both are > 0, else 1
// (lamb_ratio).
void lamb_moments(const OptimArgs& a, float* w, float* g, float* m, float* v, int64_t n);
float lamb_ratio(double w_squares, double r_squares);
void lamb_apply(float* w, const float* r, int64_t n, float scale);

// Keras's Adafactor for one whole variable of n values, its shape (..., d2, d1) (d2 = 0: rank
// < 2). w decays (w -= decay·w); q = g² + epsilon_1; rank >= 2: r (n/d1 values, the shape
// without its last axis) = beta_2_t·r + (1 - beta_2_t)·mean(q, last axis), c (n/d2 values,
// the shape without its axis -2) likewise over axis -2, v = (r / mean(r, last axis))·c;
// rank < 2: v = beta_2_t·v + (1 - beta_2_t)·q. Then u = g / sqrt(v) and
// w -= max(epsilon_2, rms(w))·rho_t · u / max(1, rms(u) / clip_threshold), rms(w) taken
// after the decay. Means and RMS are summed in double, in index order.
void adafactor_update(const OptimArgs& a, int64_t d2, int64_t d1, float* w, const float* g,
                      float* v, float* r, float* c, int64_t n);

// Keras's Muon for one whole variable of n values: a rows×cols matrix when rows > 0, else
// AdamW. Matrix: w -= decay·w; m += g + m·(momentum - 1); G = nesterov ? g + momentum·m : m;
// X = G (transposed when rows > cols) / (‖G‖ + 1e-7), then ns_steps times A = X·Xᵀ,
// X = muon_a·X + (muon_b·A + (muon_c·A)·A)·X; w -= lr·X·sqrt(max(rows, cols))·rms_rate (rms_rate
// < 0: unscaled). AdamW: w -= adam_decay·w; Keras's Adam step of size alpha on m and v.
// Single-threaded (sgemm's share 0 of 1), so it may run inside a parallel region.
void muon_update(const OptimArgs& a, int64_t rows, int64_t cols, float* w, const float* g,
                 float* m, float* v, int64_t n);

// Keras's ScheduleFreeAdamW over n values (a.learning_rate warmed up, a.alpha = 1 - beta_2^t,
// a.m_scale = 1/t): w -= decay·w; v += (g² - v)(1 - beta_2); z_old = z;
// z -= lr·g / (sqrt(v / alpha) + epsilon); x = (w - (1 - beta_1)·z_old) / beta_1;
// x = (1 - 1/t)·x + z/t; w = (1 - beta_1)·z + beta_1·x, in Keras's float32 order.
void schedule_free_update(const OptimArgs& a, float* w, const float* g, float* z, float* v,
                          int64_t n);

// Number of float slots per parameter element the optimizer needs (the moving average's
// included).
int optimizer_slot_count(const OptimizerConfig& config);
// The slot of use_ema's moving average (after the step's own), or -1.
int ema_slot(const OptimizerConfig& config);
// The slot of gradient accumulation's sums (after the average), or -1.
int accumulator_slot(const OptimizerConfig& config);
// The value slot s starts from (Adagrad's accumulator: initial_accumulator; else 0).
float optimizer_slot_initial_value(const OptimizerConfig& config, int s);

// Updates n weights w from gradients g; slots points at slot_count(config) arrays of n floats.
// step is the 1-based iteration number; nadam as for prepare_optimizer_step.
void optimizer_update(const OptimizerConfig& config, int64_t step, float* w, const float* g,
                      float* const* slots, int64_t n, NadamProduct* nadam = nullptr);

}  // namespace densitron
