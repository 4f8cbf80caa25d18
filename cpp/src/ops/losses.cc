// Keras's losses on probabilities, per sample summed over a batch, with their gradients.
// Cross-entropies normalise p over the last axis, clip to [eps, 1-eps] (eps = 1e-7) and take
// -Σ y·log p; the elementwise losses are means over the last axis. Gradients are of
// (Σ_rows loss) / scale_rows, so a batch mean is scale_rows = batch size.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "densitron/ops.h"
#include "ops/elementwise_kernels.h"

namespace densitron {
namespace {

// Keras's label smoothing of a target, y·keep + add = y·(1 - s) + s/k, with k = classes for
// the categorical cross-entropies and k = 2 for the binary one (the kernels apply it). s = 0
// leaves y exactly as it is.
struct Smoothing {
  float keep = 1.0f, add = 0.0f;
  Smoothing(float s, int64_t k) : keep(1.0f - s), add(s / static_cast<float>(k)) {}
};

// x[0] + ... + x[n-1] in double, in eight interleaved sums (one chain of additions would wait
// on each one's latency), added pairwise at the end.
double sum_in_double(const float* x, int64_t n) {
  constexpr int kSums = 8;
  double s[kSums] = {};
  int64_t j = 0;
  for (; j + kSums <= n; j += kSums)
    for (int k = 0; k < kSums; ++k) s[k] += x[j + k];
  for (; j < n; ++j) s[0] += x[j];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// An elementwise loss (ElementwiseLoss) of rows × cols values: the terms and the gradient by
// the ISA's kernel a chunk at a time (targets y·keep + add), each row's loss the mean of its
// terms (the KL divergence's: their sum), summed in double. A row's sample weight
// (weights[r / rows_per_weight], when given) scales its gradient (scale·w, per value) and its
// loss.
double kernel_mean_rows(ElementwiseLoss kind, const float* p, const float* y, int64_t rows,
                        int64_t cols, float* grad, float scale, float keep, float add,
                        float param, bool fused, const float* weights,
                        int64_t rows_per_weight) {
  const ElementwiseKernels* k = elementwise_kernels();
  constexpr int64_t kChunk = 1024;
  float t[kChunk], c2s[kChunk];
  const bool sum = kind == kLossKLDivergence;  // (a division by 1 changes nothing)
  const float inv_cols = sum ? 1.0f : 1.0f / static_cast<float>(cols);
  const int64_t n = rows * cols;
  double total = 0.0, row = 0.0;
  // The position of the chunk's first value: its column, and its row's weight index and row
  // within that weight's rows (no division per value).
  int64_t col = 0, wi = 0, wr = 0;
  auto next_row = [&](int64_t& i, int64_t& r) {
    if (++r == rows_per_weight) r = 0, ++i;
  };
  // Each value a row with a weight of its own (the common binary classifier, or regression on
  // one value): the same scales and sums, without the bookkeeping.
  const bool own_weights = weights != nullptr && cols == 1 && rows_per_weight == 1;
  const bool scales = weights != nullptr && grad != nullptr;
  for (int64_t e0 = 0; e0 < n; e0 += kChunk) {
    const int64_t m = std::min(kChunk, n - e0);
    if (scales && own_weights) {
      for (int64_t j = 0; j < m; ++j) c2s[j] = scale * weights[e0 + j];
    } else if (scales) {
      for (int64_t j = 0, c = col, i = wi, r = wr; j < m; ++j) {
        c2s[j] = scale * weights[i];
        if (++c == cols) c = 0, next_row(i, r);
      }
    }
    k->elementwise_loss(kind, p + e0, y + e0, t, grad ? grad + e0 : nullptr, m, keep, add,
                        param, inv_cols, scale, scales ? c2s : nullptr, fused);
    if (cols == 1 && weights == nullptr) {  // each value a row: the same sums, undivided
      total += sum_in_double(t, m);
      continue;
    }
    if (own_weights) {
      for (int64_t j = 0; j < m; ++j) total += static_cast<double>(t[j]) * weights[e0 + j];
      continue;
    }
    for (int64_t j = 0; j < m;) {  // the chunk's runs of values of one row
      const int64_t run = std::min(m - j, cols - col);
      row += sum_in_double(t + j, run);
      j += run;
      col += run;
      if (col < cols) continue;
      const float w = weights != nullptr ? weights[wi] : 1.0f;
      const double mean = sum ? row : row / cols;
      total += weights != nullptr ? mean * w : mean;
      row = 0.0;
      col = 0;
      next_row(wi, wr);
    }
  }
  return total;
}

// The focal losses' arguments when none are given (Keras's gamma, alpha, balancing off), the
// clip of their probabilities, and their power: Keras's power of an integral exponent
// multiplies, x·x for the default 2.
constexpr float kFocalDefaults[3] = {2.0f, 0.25f, 0.0f};
constexpr float kFocalEps = 1e-7f;
inline float focal_clip(float p) { return std::min(std::max(p, kFocalEps), 1.0f - kFocalEps); }
// Whether p lies strictly inside the clip range (the log's gradient passes only there)
inline bool inside_focal_clip(float p) { return p > kFocalEps && p < 1.0f - kFocalEps; }
inline float focal_power(float x, float e) { return e == 2.0f ? x * x : std::pow(x, e); }
// d(x^gamma)/dx, gamma 0 and 1 without a power of 0 (Keras's autodiff gives 0 and 1 there)
inline float focal_power_grad(float x, float gamma) {
  return gamma == 0.0f ? 0.0f : gamma == 1.0f ? 1.0f : gamma * focal_power(x, gamma - 1.0f);
}

// Keras's binary focal cross-entropy (Lin et al. 2018) of rows × cols predictions p (or
// logits, through a sigmoid), per value, with y' = y·keep + add (label smoothing):
//   bce = -(y'·log pc + (1 - y')·log(1 - pc)), pc = p clipped to [eps, 1 - eps];
//   pt = y'·p + (1 - y')·(1 - p); f = (1 - pt)^gamma; b = y'·alpha + (1 - y')·(1 - alpha)
//   when balancing, else 1; term = b·f·bce, a row's loss the mean of its terms, weighted by
//   weights[r / rows_per_weight] when given. The gradient (scaled by scale and the weight):
//   b·(-gamma·(1 - pt)^(gamma - 1)·(2y' - 1)·bce + f·dbce/dp), dbce/dp = (1 - y')/(1 - pc) -
//   y'/pc strictly inside the clip range and 0 outside it, times p·(1 - p) for logits. In
//   float as Keras computes it, the terms summed in double.
double binary_focal_rows(const float* p, const float* y, int64_t rows, int64_t cols,
                         float* grad, float scale, float keep, float add, const float* extra,
                         bool logits, const float* weights, int64_t rows_per_weight) {
  const float gamma = extra[0], alpha = extra[1];
  const bool balance = extra[2] != 0.0f;
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float w = weights != nullptr ? weights[r / rows_per_weight] : 1.0f;
    double row = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t e = r * cols + j;
      const float yv = y[e] * keep + add;
      const float pv = logits ? 1.0f / (1.0f + std::exp(-p[e])) : p[e];
      const float pc = focal_clip(pv);
      const float bce = -(yv * std::log(pc) + (1.0f - yv) * std::log(1.0f - pc));
      const float q = 1.0f - (yv * pv + (1.0f - yv) * (1.0f - pv));  // 1 - pt
      const float f = focal_power(q, gamma);
      const float b = balance ? yv * alpha + (1.0f - yv) * (1.0f - alpha) : 1.0f;
      row += static_cast<double>(b * f * bce);
      if (grad == nullptr) continue;
      const float df = focal_power_grad(q, gamma);
      const float dbce = inside_focal_clip(pv) ? (1.0f - yv) / (1.0f - pc) - yv / pc : 0.0f;
      float d = b * (-df * (2.0f * yv - 1.0f) * bce + f * dbce);
      if (logits) d *= pv * (1.0f - pv);
      grad[e] = d * (scale * w / static_cast<float>(cols));
    }
    total += row / static_cast<double>(cols) * w;
  }
  return total;
}

// Keras's categorical focal cross-entropy of rows × cols predictions p (or logits, through a
// softmax), with y' = y·keep + add (label smoothing), per row:
//   o = p / Σp, oc = o clipped to [eps, 1 - eps];
//   loss = Σ_j -alpha·(1 - oc_j)^gamma·y'_j·log oc_j,
// weighted by weights[r / rows_per_weight] when given. The gradient in o_j, strictly inside
// the clip range (else 0): -alpha·y'_j·((1 - oc_j)^gamma / oc_j - gamma·(1 - oc_j)^(gamma - 1)·
// log oc_j); in p through the normalization, (g_k - Σ_j o_j·g_j) / Σp; in logits through the
// softmax. Each row in three passes, the gradient row holding the partial results (no scratch).
double categorical_focal_rows(const float* p, const float* y, int64_t rows, int64_t cols,
                              float* grad, float scale, float keep, float add,
                              const float* extra, bool logits, const float* weights,
                              int64_t rows_per_weight) {
  const float gamma = extra[0], alpha = extra[1];
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    const float* yr = y + r * cols;
    float* gr = grad != nullptr ? grad + r * cols : nullptr;
    const float w = weights != nullptr ? weights[r / rows_per_weight] : 1.0f;
    float m = 0.0f, z = 1.0f;  // a softmax's max and normalizer
    if (logits) {
      m = *std::max_element(pr, pr + cols);
      z = 0.0f;
      for (int64_t j = 0; j < cols; ++j) z += std::exp(pr[j] - m);
    }
    auto prob = [&](int64_t j) { return logits ? std::exp(pr[j] - m) / z : pr[j]; };
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) sum += prob(j);
    double row = 0.0, c1 = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const float o = prob(j) / sum;
      const float oc = focal_clip(o);
      const float yv = yr[j] * keep + add;
      const float lg = std::log(oc), q = 1.0f - oc, f = focal_power(q, gamma);
      row += static_cast<double>(alpha * f * (-yv * lg));
      if (gr == nullptr) continue;
      const float df = focal_power_grad(q, gamma);
      const float g = inside_focal_clip(o) ? -alpha * yv * (f / oc - df * lg) : 0.0f;
      gr[j] = g;
      c1 += static_cast<double>(o) * g;
    }
    total += row * w;
    if (gr == nullptr) continue;
    const float s = scale * w;
    if (!logits) {
      for (int64_t j = 0; j < cols; ++j) gr[j] = (gr[j] - static_cast<float>(c1)) / sum * s;
      continue;
    }
    double c2 = 0.0;  // Σ_j p_j·dp_j, then dz_j = p_j·(dp_j - c2)
    for (int64_t j = 0; j < cols; ++j) {
      gr[j] = (gr[j] - static_cast<float>(c1)) / sum;
      c2 += static_cast<double>(prob(j)) * gr[j];
    }
    for (int64_t j = 0; j < cols; ++j) gr[j] = prob(j) * (gr[j] - static_cast<float>(c2)) * s;
  }
  return total;
}

}  // namespace


float hinge_targets(const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (y[i] != 0.0f && y[i] != 1.0f) return 0.0f;
  return 1.0f;
}

double loss_forward_backward(Loss loss, const float* p, const float* y, int64_t rows,
                             int64_t cols, float* grad, double scale_rows, bool fused_logits,
                             const float* weights, int64_t rows_per_weight, float param,
                             const float* extra, float ignore_class) {
  const float base_scale = static_cast<float>(1.0 / scale_rows);
  const Smoothing classes(param, cols), binary(param, 2), none(0.0f, 1);
  // The losses the ISA's kernels compute (the sparse forms are not smoothed).
  const ElementwiseKernels* k = elementwise_kernels();
  auto mean_rows = [&](ElementwiseLoss kind, float keep = 1.0f, float add = 0.0f) {
    return kernel_mean_rows(kind, p, y, rows, cols, grad, base_scale, keep, add, param,
                            fused_logits, weights, rows_per_weight);
  };
  switch (loss) {
    case Loss::kNone:
      return 0.0;
    case Loss::kMeanOfValues: {
      double total = 0.0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* pr = p + r * cols;
        const float w = weights ? weights[r / rows_per_weight] : 1.0f;
        double sum = 0.0;
        for (int64_t j = 0; j < cols; ++j) sum += pr[j];
        total += sum / static_cast<double>(cols) * w;
        if (grad == nullptr) continue;
        const float g = base_scale * w / static_cast<float>(cols);
        std::fill(grad + r * cols, grad + (r + 1) * cols, g);
      }
      return total;
    }
    case Loss::kCategoricalCrossentropy:
    case Loss::kSparseCategoricalCrossentropy: {
      const Smoothing& sm = loss == Loss::kCategoricalCrossentropy ? classes : none;
      return k->crossentropy_rows(p, y, grad, rows, cols, sm.keep, sm.add, base_scale, weights,
                                  rows_per_weight, loss != Loss::kCategoricalCrossentropy,
                                  fused_logits, ignore_class);
    }
    case Loss::kCategoricalCrossentropyLogits:
    case Loss::kSparseCategoricalCrossentropyLogits: {
      const Smoothing& sm = loss == Loss::kCategoricalCrossentropyLogits ? classes : none;
      return k->crossentropy_logits_rows(p, y, grad, rows, cols, sm.keep, sm.add, base_scale,
                                         weights, rows_per_weight,
                                         loss != Loss::kCategoricalCrossentropyLogits,
                                         ignore_class);
    }
    case Loss::kBinaryCrossentropy:
      return mean_rows(kLossBce, binary.keep, binary.add);
    case Loss::kBinaryCrossentropyLogits:
      return mean_rows(kLossBceLogits, binary.keep, binary.add);
    case Loss::kMeanSquaredError:
      return mean_rows(kLossSquared);
    case Loss::kMeanAbsoluteError:
      return mean_rows(kLossAbsolute);
    case Loss::kMeanAbsolutePercentageError:
      return mean_rows(kLossPercentage);
    case Loss::kMeanSquaredLogarithmicError:
      return mean_rows(kLossSquaredLog);
    case Loss::kHuber:  // param: delta
      return mean_rows(kLossHuber);
    case Loss::kLogCosh:
      return mean_rows(kLossLogCosh);
    case Loss::kHinge:  // param != 0: {0, 1} targets read as {-1, 1}
    case Loss::kSquaredHinge:
      return mean_rows(loss == Loss::kHinge ? kLossHinge : kLossSquaredHinge,
                       param != 0.0f ? 2.0f : 1.0f, param != 0.0f ? -1.0f : 0.0f);
    case Loss::kPoisson:
      return mean_rows(kLossPoisson);
    case Loss::kKLDivergence:  // a sum over the last axis, not a mean
      return mean_rows(kLossKLDivergence);
    case Loss::kBinaryFocalCrossentropy:
    case Loss::kBinaryFocalCrossentropyLogits:
      return binary_focal_rows(p, y, rows, cols, grad, base_scale, binary.keep, binary.add,
                               extra != nullptr ? extra : kFocalDefaults,
                               loss == Loss::kBinaryFocalCrossentropyLogits, weights,
                               rows_per_weight);
    case Loss::kCategoricalFocalCrossentropy:
    case Loss::kCategoricalFocalCrossentropyLogits:
      return categorical_focal_rows(p, y, rows, cols, grad, base_scale, classes.keep,
                                    classes.add, extra != nullptr ? extra : kFocalDefaults,
                                    loss == Loss::kCategoricalFocalCrossentropyLogits, weights,
                                    rows_per_weight);
    default:
      break;
  }
  // The row-wise losses, one row at a time.
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    float* gr = grad ? grad + r * cols : nullptr;
    // A row's sample weight scales its loss and its gradient (Keras's sum_over_batch_size
    // still divides by the row count, not by the weights' sum).
    const float w = weights ? weights[r / rows_per_weight] : 1.0f;
    const float inv_scale = base_scale * w;
    const double row = (loss == Loss::kCosineSimilarity ? k->cosine_row
                                                        : k->categorical_hinge_row)(
        pr, y + r * cols, gr, cols, inv_scale);
    total += row * w;
  }
  return total;
}

void auc_buckets(const float* p, const float* y, int64_t rows, int64_t cols, int64_t n,
                 bool logits, double* out, const float* weights, int64_t rows_per_weight,
                 bool per_column, const float* thresholds, bool above_zero,
                 int64_t class_id) {
  const float scale = static_cast<float>(n - 1);
  double* negatives = out + (per_column ? cols * n : n);
  const int64_t j0 = class_id >= 0 ? class_id : 0, j1 = class_id >= 0 ? class_id + 1 : cols;
  for (int64_t r = 0; r < rows; ++r) {
    const double w = weights ? weights[r / rows_per_weight] : 1.0;
    for (int64_t j = j0; j < j1; ++j) {
      float v = p[r * cols + j];
      if (logits) v = 1.0f / (1.0f + std::exp(-v));
      v = std::min(std::max(v, 0.0f), 1.0f);
      int64_t bucket;
      if (thresholds != nullptr) {  // the last threshold strictly below v
        bucket = std::max<int64_t>(
            std::lower_bound(thresholds, thresholds + n, v) - thresholds - 1, 0);
      } else {
        const float b = std::ceil(v * scale) - (above_zero ? 0.0f : 1.0f);
        bucket = b >= 1.0f ? std::min(static_cast<int64_t>(b), n - 1) : 0;
      }
      bucket += per_column ? j * n : 0;
      (y[r * cols + j] != 0.0f ? out : negatives)[bucket] += w;
    }
  }
}

void r2_sums(const float* p, const float* y, int64_t rows, int64_t cols, double* out,
             const float* weights, int64_t rows_per_weight) {
  double *sum = out, *squares = out + cols, *residual = out + 2 * cols, *count = out + 3 * cols;
  for (int64_t r = 0; r < rows; ++r) {
    const double w = weights ? weights[r / rows_per_weight] : 1.0;
    for (int64_t c = 0; c < cols; ++c) {
      const double yv = y[r * cols + c], e = yv - p[r * cols + c];
      sum[c] += w * yv;
      squares[c] += w * yv * yv;
      residual[c] += w * e * e;
      count[c] += w;
    }
  }
}

void f_score_sums(const float* p, const float* y, int64_t rows, int64_t cols, float threshold,
                  double* out, const float* weights, int64_t rows_per_weight) {
  double *tp = out, *fp = out + cols, *fn = out + 2 * cols, *positives = out + 3 * cols;
  for (int64_t r = 0; r < rows; ++r) {
    const double w = weights ? weights[r / rows_per_weight] : 1.0;
    const float* pr = p + r * cols;
    const float cut = threshold > 0.0f ? threshold : *std::max_element(pr, pr + cols);
    for (int64_t c = 0; c < cols; ++c) {
      const bool on = threshold > 0.0f ? pr[c] > cut : pr[c] >= cut && std::fabs(pr[c]) > 1e-9f;
      const double yv = y[r * cols + c], yhat = on ? 1.0 : 0.0;
      tp[c] += w * yhat * yv;
      fp[c] += w * yhat * (1.0 - yv);
      fn[c] += w * (1.0 - yhat) * yv;
      positives[c] += w * yv;
    }
  }
}

void iou_sums(AccuracyKind kind, const float* p, const float* y, int64_t rows, int64_t cols,
              int64_t num_classes, float threshold, int64_t ignore, double* out,
              const float* weights, int64_t rows_per_weight) {
  const int64_t n = num_classes;
  // a value's class id, or -1 when it truncates to no class (NaN included)
  auto id = [n](float v) -> int64_t {
    return v > -1.0f && v < static_cast<float>(n) ? static_cast<int64_t>(v) : -1;
  };
  auto add = [&](int64_t t, int64_t q, double w) {
    if (t < 0 || q < 0 || q >= n || t >= n || t == ignore) return;
    if (t == q) out[t] += w;
    out[n + q] += w;
    out[2 * n + t] += w;
  };
  const ElementwiseKernels* k = elementwise_kernels();
  for (int64_t r = 0; r < rows; ++r) {
    const double w = weights ? weights[r / rows_per_weight] : 1.0;
    const float *pr = p + r * cols, *yr = y + r * cols;
    switch (kind) {
      case AccuracyKind::kIoUSums:
        for (int64_t j = 0; j < cols; ++j) add(id(yr[j]), id(pr[j]), w);
        break;
      case AccuracyKind::kBinaryIoUSums:
        for (int64_t j = 0; j < cols; ++j) add(id(yr[j]), pr[j] >= threshold ? 1 : 0, w);
        break;
      case AccuracyKind::kIoUSumsArgmaxPred:
        add(id(y[r]), k->first_max(pr, cols), w);
        break;
      default:  // kIoUSumsArgmax
        add(k->first_max(yr, cols), k->first_max(pr, cols), w);
        break;
    }
  }
}

namespace {

// A row's top-k threshold: its k-th largest non-NaN value, and how many entries equal to it
// are in the top k (k less those above it); -inf and k when fewer than k values are not NaN
// (every entry is in).
struct TopK {
  float value = -std::numeric_limits<float>::infinity();
  int64_t equal_in = 0;
};

TopK top_k_of(const float* p, int64_t n, int64_t k) {
  thread_local std::vector<float> v;
  v.clear();
  for (int64_t j = 0; j < n; ++j)
    if (!std::isnan(p[j])) v.push_back(p[j]);
  TopK t;
  if (static_cast<int64_t>(v.size()) < k) {
    t.equal_in = n;  // every entry is in: above -inf, or -inf itself
    return t;
  }
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), std::greater<float>());
  t.value = v[k - 1];
  int64_t above = 0;
  for (float x : v) above += x > t.value;
  t.equal_in = k - above;
  return t;
}

// accuracy_sum's count over n values taken alike: true positives (p > threshold and y != 0),
// predicted positives, actual positives, or binary hits ((p > threshold) == y).
int64_t count_all(AccuracyKind kind, const float* p, const float* y, int64_t n,
                  float threshold) {
  int64_t count = 0;
  switch (kind) {
    case AccuracyKind::kTruePositives:
      for (int64_t i = 0; i < n; ++i) count += (p[i] > threshold) & (y[i] != 0.0f);
      break;
    case AccuracyKind::kPredictedPositives:
      for (int64_t i = 0; i < n; ++i) count += p[i] > threshold;
      break;
    case AccuracyKind::kActualPositives:
      for (int64_t i = 0; i < n; ++i) count += y[i] != 0.0f;
      break;
    default:  // kBinary
      for (int64_t i = 0; i < n; ++i) count += (p[i] > threshold ? 1.0f : 0.0f) == y[i];
      break;
  }
  return count;
}

}  // namespace

double accuracy_sum(AccuracyKind kind, const float* p, const float* y, int64_t rows,
                    int64_t cols, float threshold, const float* weights,
                    int64_t rows_per_weight, int64_t class_id, int64_t top_k) {
  const bool counts = kind == AccuracyKind::kTruePositives ||
                      kind == AccuracyKind::kPredictedPositives ||
                      kind == AccuracyKind::kActualPositives;
  if (weights == nullptr && ((counts && class_id < 0 && top_k <= 0) ||
                             (kind == AccuracyKind::kBinary && cols == 1))) {
    // Every value counts alike (no weight, filter or division by the columns): one count over
    // them all, the same whole number the rows' counts add up to.
    return static_cast<double>(count_all(kind, p, y, rows * cols, threshold));
  }
  const ElementwiseKernels* k = elementwise_kernels();
  double correct = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    const double before = correct;
    switch (kind) {
      case AccuracyKind::kCategorical:
      case AccuracyKind::kSparseCategorical: {
        const int64_t pred = k->first_max(pr, cols);
        int64_t truth;
        if (kind == AccuracyKind::kSparseCategorical) {
          truth = static_cast<int64_t>(y[r]);
        } else {
          truth = k->first_max(y + r * cols, cols);
        }
        correct += pred == truth ? 1.0 : 0.0;
        break;
      }
      case AccuracyKind::kTopKCategorical:
      case AccuracyKind::kSparseTopKCategorical: {
        int64_t truth;
        if (kind == AccuracyKind::kSparseTopKCategorical) {
          truth = static_cast<int64_t>(y[r]);
        } else {
          truth = k->first_max(y + r * cols, cols);
        }
        if (truth < 0 || truth >= cols) break;  // a class id out of range is never a hit
        const float at = pr[truth];
        const int64_t higher = k->count_above(pr, cols, at);
        correct += !std::isnan(at) && static_cast<float>(higher) < threshold ? 1.0 : 0.0;
        break;
      }
      case AccuracyKind::kAucBuckets:
      case AccuracyKind::kAucBucketsLogits:
      case AccuracyKind::kR2Sums:
      case AccuracyKind::kFScoreSums:
      case AccuracyKind::kAucColumnBuckets:
      case AccuracyKind::kAucColumnBucketsLogits:
      case AccuracyKind::kThresholdBuckets:
      case AccuracyKind::kIoUSums:
      case AccuracyKind::kIoUSumsArgmaxPred:
      case AccuracyKind::kIoUSumsArgmax:
      case AccuracyKind::kBinaryIoUSums:
        break;  // not one sum: auc_buckets, r2_sums, f_score_sums, iou_sums
      case AccuracyKind::kBinary: {
        const float* yr = y + r * cols;
        int64_t hits = 0;
        for (int64_t j = 0; j < cols; ++j) hits += ((pr[j] > threshold ? 1.0f : 0.0f) == yr[j]);
        correct += static_cast<double>(hits) / cols;
        break;
      }
      case AccuracyKind::kTruePositives:
      case AccuracyKind::kPredictedPositives:
      case AccuracyKind::kActualPositives: {
        const float* yr = y + r * cols;
        int64_t count = 0;
        const int64_t j0 = class_id >= 0 ? std::min(class_id, cols) : 0;
        const int64_t j1 = class_id >= 0 ? std::min(class_id + 1, cols) : cols;
        // Keras's top_k filter: k entries, ties to the lower index. Entry j is in when fewer
        // than k entries are ahead of it (greater, or equal at a lower index; NaN is never
        // ahead, nor behind). For a whole row, the k-th largest value v decides at once:
        // entries above v are in, and of those equal to v the first k - (count above v).
        const TopK top = top_k > 0 && j1 - j0 > 1 ? top_k_of(pr, cols, top_k) : TopK{};
        int64_t equal_left = top.equal_in;
        for (int64_t j = j0; j < j1; ++j) {
          bool in_top = true;
          if (top_k > 0 && j1 - j0 > 1) {
            in_top = !(pr[j] <= top.value) || (pr[j] == top.value && equal_left-- > 0);
          } else if (top_k > 0) {
            int64_t ahead = 0;
            for (int64_t i = 0; i < cols; ++i) ahead += pr[i] > pr[j] || (i < j && pr[i] == pr[j]);
            in_top = ahead < top_k;
          }
          const bool predicted = in_top && pr[j] > threshold, actual = yr[j] != 0.0f;
          count += kind == AccuracyKind::kTruePositives        ? (predicted && actual)
                   : kind == AccuracyKind::kPredictedPositives ? predicted
                                                               : actual;
        }
        correct += static_cast<double>(count);
        break;
      }
    }
    if (weights != nullptr) correct = before + (correct - before) * weights[r / rows_per_weight];
  }
  return correct;
}

}  // namespace densitron
