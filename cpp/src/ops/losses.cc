// Keras's losses on probabilities, per sample summed over a batch, with their gradients.
// Cross-entropies normalise p over the last axis, clip to [eps, 1-eps] (eps = 1e-7) and take
// -Σ y·log p; the elementwise losses are means over the last axis. Gradients are of
// (Σ_rows loss) / scale_rows, so a batch mean is scale_rows = batch size.
#include <algorithm>
#include <cmath>

#include "densitron/ops.h"

namespace densitron {
namespace {

constexpr float kEps = 1e-7f;
constexpr float kOneMinusEps = 1.0f - kEps;

inline float clip_prob(float p) { return std::min(std::max(p, kEps), kOneMinusEps); }
inline bool in_clip_range(float p) { return p >= kEps && p <= kOneMinusEps; }

// Keras's label smoothing of a target: y·(1 - s) + s/k, with k = classes for the categorical
// cross-entropies and k = 2 for the binary one. s = 0 leaves y exactly as it is.
struct Smoothing {
  float keep = 1.0f, add = 0.0f;
  Smoothing(float s, int64_t k) : keep(1.0f - s), add(s / static_cast<float>(k)) {}
  float operator()(float y) const { return y * keep + add; }
};

// One row of categorical cross-entropy. `label` >= 0 selects the sparse form (y one-hot at
// label); otherwise y holds the row's targets, smoothed by `sm`.
double crossentropy_row(const float* p, const float* y, int64_t label, int64_t cols, float* g,
                        float inv_scale, bool fused_softmax, const Smoothing& sm) {
  float sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) sum += p[j];
  const float inv_sum = 1.0f / sum;
  double loss = 0.0;
  // float32 logarithms, as Keras computes; rows are summed in double.
  if (label >= 0) {
    loss = -std::log(clip_prob(p[label] * inv_sum));
  } else {
    for (int64_t j = 0; j < cols; ++j) {
      const float yj = sm(y[j]);
      if (yj != 0.0f) loss -= yj * std::log(clip_prob(p[j] * inv_sum));
    }
  }
  if (g == nullptr) return loss;
  if (fused_softmax) {
    // d/dz of -Σ y log softmax(z) = p·Σy - y.
    if (label >= 0) {
      for (int64_t j = 0; j < cols; ++j) g[j] = p[j] * inv_scale;
      g[label] -= inv_scale;
    } else {
      float ysum = 0.0f;
      for (int64_t j = 0; j < cols; ++j) ysum += sm(y[j]);
      for (int64_t j = 0; j < cols; ++j) g[j] = (p[j] * ysum - sm(y[j])) * inv_scale;
    }
    return loss;
  }
  // q = p / Σp, dL/dq_j = -y_j / q_j where q_j is not clipped; dL/dp = (dL/dq - <dL/dq, q>) / Σp.
  float dot = 0.0f;
  for (int64_t j = 0; j < cols; ++j) {
    const float yj = label >= 0 ? (j == label ? 1.0f : 0.0f) : sm(y[j]);
    const float q = p[j] * inv_sum;
    const float gq = (yj != 0.0f && in_clip_range(q)) ? -yj / q : 0.0f;
    g[j] = gq;
    dot += gq * q;
  }
  for (int64_t j = 0; j < cols; ++j) g[j] = (g[j] - dot) * inv_sum * inv_scale;
  return loss;
}

// Cross-entropy on logits z: -Σ y·log_softmax(z) (Keras's from_logits=True, no clipping);
// gradient softmax(z)·Σy - y. `label` >= 0 selects the sparse form; otherwise y is smoothed
// by `sm`.
double crossentropy_logits_row(const float* z, const float* y, int64_t label, int64_t cols,
                               float* g, float inv_scale, const Smoothing& sm) {
  float mx = z[0];
  for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, z[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
  const double lse = mx + std::log(sum);
  double loss = 0.0, ysum = 0.0;
  if (label >= 0) {
    loss = lse - z[label];
    ysum = 1.0;
  } else {
    for (int64_t j = 0; j < cols; ++j) {
      const float yj = sm(y[j]);
      if (yj == 0.0f) continue;
      loss -= yj * (z[j] - lse);
      ysum += yj;
    }
  }
  if (g == nullptr) return loss;
  for (int64_t j = 0; j < cols; ++j) {
    const double soft = std::exp(z[j] - lse);
    const double yj = label >= 0 ? (j == label ? 1.0 : 0.0) : sm(y[j]);
    g[j] = static_cast<float>(soft * ysum - yj) * inv_scale;
  }
  return loss;
}

}  // namespace

double loss_forward_backward(Loss loss, const float* p, const float* y, int64_t rows,
                             int64_t cols, float* grad, double scale_rows, bool fused_logits,
                             const float* weights, int64_t rows_per_weight,
                             float label_smoothing) {
  const float base_scale = static_cast<float>(1.0 / scale_rows);
  const float inv_cols = 1.0f / static_cast<float>(cols);
  const Smoothing classes(label_smoothing, cols), binary(label_smoothing, 2);
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    float* gr = grad ? grad + r * cols : nullptr;
    // A row's sample weight scales its loss and its gradient (Keras's sum_over_batch_size
    // still divides by the row count, not by the weights' sum).
    const float w = weights ? weights[r / rows_per_weight] : 1.0f;
    const float inv_scale = base_scale * w;
    const double before = total;
    switch (loss) {
      case Loss::kCategoricalCrossentropy:
        total += crossentropy_row(pr, y + r * cols, -1, cols, gr, inv_scale, fused_logits,
                                  classes);
        break;
      case Loss::kSparseCategoricalCrossentropy: {
        int64_t label = static_cast<int64_t>(y[r]);
        label = std::min<int64_t>(std::max<int64_t>(label, 0), cols - 1);  // validated upstream
        total += crossentropy_row(pr, nullptr, label, cols, gr, inv_scale, fused_logits,
                                  classes);
        break;
      }
      case Loss::kBinaryCrossentropy: {
        const float* yr = y + r * cols;
        double row = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const float pc = clip_prob(pr[j]), yj = binary(yr[j]);
          row -= yj * std::log(pc) + (1.0f - yj) * std::log(1.0f - pc);
          if (gr == nullptr) continue;
          if (fused_logits) {  // through a sigmoid: (p - y)
            gr[j] = (pr[j] - yj) * inv_cols * inv_scale;
          } else {
            const float pj = pr[j];
            gr[j] = in_clip_range(pj) ? (pj - yj) / (pj * (1.0f - pj)) * inv_cols * inv_scale
                                      : 0.0f;
          }
        }
        total += row / cols;
        break;
      }
      case Loss::kMeanSquaredError: {
        const float* yr = y + r * cols;
        double row = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const float d = pr[j] - yr[j];
          row += static_cast<double>(d) * d;
          if (gr) gr[j] = 2.0f * d * inv_cols * inv_scale;
        }
        total += row / cols;
        break;
      }
      case Loss::kMeanAbsoluteError: {
        const float* yr = y + r * cols;
        double row = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const float d = pr[j] - yr[j];
          row += std::fabs(static_cast<double>(d));
          if (gr) gr[j] = (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f)) * inv_cols * inv_scale;
        }
        total += row / cols;
        break;
      }
      case Loss::kCategoricalCrossentropyLogits:
        total += crossentropy_logits_row(pr, y + r * cols, -1, cols, gr, inv_scale, classes);
        break;
      case Loss::kSparseCategoricalCrossentropyLogits: {
        int64_t label = static_cast<int64_t>(y[r]);
        label = std::min<int64_t>(std::max<int64_t>(label, 0), cols - 1);  // validated upstream
        total += crossentropy_logits_row(pr, nullptr, label, cols, gr, inv_scale, classes);
        break;
      }
      case Loss::kBinaryCrossentropyLogits: {
        // max(z, 0) - z·y + log(1 + exp(-|z|)); gradient sigmoid(z) - y
        const float* yr = y + r * cols;
        double row = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const double z = pr[j];
          const float yj = binary(yr[j]);
          row += std::max(z, 0.0) - z * yj + std::log1p(std::exp(-std::fabs(z)));
          if (gr) gr[j] = static_cast<float>(1.0 / (1.0 + std::exp(-z)) - yj) * inv_cols * inv_scale;
        }
        total += row / cols;
        break;
      }
    }
    if (weights != nullptr) total = before + (total - before) * w;
  }
  return total;
}

double accuracy_sum(AccuracyKind kind, const float* p, const float* y, int64_t rows,
                    int64_t cols, float threshold, const float* weights,
                    int64_t rows_per_weight) {
  double correct = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    const double before = correct;
    switch (kind) {
      case AccuracyKind::kCategorical:
      case AccuracyKind::kSparseCategorical: {
        const int64_t pred = std::max_element(pr, pr + cols) - pr;
        int64_t truth;
        if (kind == AccuracyKind::kSparseCategorical) {
          truth = static_cast<int64_t>(y[r]);
        } else {
          const float* yr = y + r * cols;
          truth = std::max_element(yr, yr + cols) - yr;
        }
        correct += pred == truth ? 1.0 : 0.0;
        break;
      }
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
        for (int64_t j = 0; j < cols; ++j) {
          const bool predicted = pr[j] > threshold, actual = yr[j] != 0.0f;
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
