// Elementwise throughput in GB/s next to STREAM copy and triad measured in the same program:
// every activation's forward and backward, softmax/log_softmax rows, the SGD, RMSprop, Adam,
// Adamax, Adagrad, Lion and Adadelta updates, for arrays of 4 KB to 256 MB (per array), and
// the losses with their gradients (cross-entropies, MSE, the row losses) and the noise layers'
// kernels (Dropout, GaussianNoise; one thread) for arrays of 4 KB to 16 MB.
// Bytes are the arrays each op must touch once (forward: read x, write y; backward: read y or x
// and dy, write dx; Adam: read w, g, m, v and write w, m, v), the STREAM convention, so
// "bytes_per_second" is comparable to triad.
// Run: bench_elementwise --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//      [--benchmark_filter=...] with OMP_NUM_THREADS as wanted; DENSITRON_ISA picks the path.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/ops.h"
#include "densitron/optim.h"
#include "ops/elementwise_kernels.h"

namespace {

using densitron::Activation;

constexpr int64_t kMinBytes = 4 << 10;
constexpr int64_t kMaxBytes = 256 << 20;

// Uniform in [-4, 4) from a 32-bit LCG: cheap enough for 64M-element arrays.
std::vector<float> random_vector(int64_t n, unsigned seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) * (8.0f / 16777216.0f) - 4.0f;
  }
  return v;
}

void set_bytes(benchmark::State& state, int64_t n, int arrays) {
  state.SetBytesProcessed(state.iterations() * n * 4 * arrays);
  state.counters["array_KB"] = static_cast<double>(n) * 4 / 1024;
}

void stream_copy(benchmark::State& state) {
  const int64_t n = state.range(0) / 4;
  std::vector<float> a = random_vector(n, 1), b(n);
  const int nt = densitron::get_num_threads();
  for (auto _ : state) {
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) b[i] = a[i];
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 2);
}

void stream_triad(benchmark::State& state) {
  const int64_t n = state.range(0) / 4;
  std::vector<float> a(n), b = random_vector(n, 1), c = random_vector(n, 2);
  const float s = 3.0f;
  const int nt = densitron::get_num_threads();
  for (auto _ : state) {
#pragma omp parallel for num_threads(nt) schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 3);
}

struct ActCase {
  const char* name;
  Activation act;
  densitron::ActivationParams p;
};

densitron::ActivationParams leaky() {
  densitron::ActivationParams p;
  p.negative_slope = 0.2f;
  return p;
}

const std::vector<ActCase>& act_cases() {
  static const std::vector<ActCase> c = {
      {"relu", Activation::kRelu, {}},
      {"leaky_relu", Activation::kLeakyRelu, leaky()},
      {"relu6", Activation::kRelu6, {}},
      {"elu", Activation::kElu, {}},
      {"selu", Activation::kSelu, {}},
      {"gelu", Activation::kGelu, {}},
      {"gelu_approx", Activation::kGeluApprox, {}},
      {"silu", Activation::kSilu, {}},
      {"softplus", Activation::kSoftplus, {}},
      {"softsign", Activation::kSoftsign, {}},
      {"sigmoid", Activation::kSigmoid, {}},
      {"hard_sigmoid", Activation::kHardSigmoid, {}},
      {"hard_silu", Activation::kHardSilu, {}},
      {"tanh", Activation::kTanh, {}},
      {"exponential", Activation::kExponential, {}},
      {"mish", Activation::kMish, {}},
      {"softmax", Activation::kSoftmax, {}},
      {"log_softmax", Activation::kLogSoftmax, {}},
  };
  return c;
}

constexpr int64_t kCols = 1024;  // row length for the softmaxes

int64_t rows_of(int64_t n) { return n >= kCols ? n / kCols : 1; }
int64_t cols_of(int64_t n) { return n >= kCols ? kCols : n; }

void act_forward(benchmark::State& state, ActCase c) {
  const int64_t n = state.range(0) / 4;
  const std::vector<float> x = random_vector(n, 1);
  std::vector<float> y(n);
  for (auto _ : state) {
    densitron::activation_forward(c.act, c.p, x.data(), y.data(), rows_of(n), cols_of(n));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 2);
}

void act_backward(benchmark::State& state, ActCase c) {
  const int64_t n = state.range(0) / 4;
  const std::vector<float> x = random_vector(n, 1), dy = random_vector(n, 2);
  std::vector<float> y(n), dx(n);
  densitron::activation_forward(c.act, c.p, x.data(), y.data(), rows_of(n), cols_of(n));
  const float* xin = densitron::activation_needs_input(c.act, c.p) ? x.data() : nullptr;
  for (auto _ : state) {
    densitron::activation_backward(c.act, c.p, xin, y.data(), dy.data(), dx.data(), rows_of(n),
                                   cols_of(n));
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 3);
}

void optimizer(benchmark::State& state, densitron::OptimizerConfig c, int arrays) {
  const int64_t n = state.range(0) / 4;
  std::vector<float> w = random_vector(n, 1), g = random_vector(n, 2);
  std::vector<std::vector<float>> slots;
  for (int s = 0; s < densitron::optimizer_slot_count(c); ++s)
    slots.emplace_back(n, densitron::optimizer_slot_initial_value(c, s));
  std::vector<float*> sp;
  for (auto& s : slots) sp.push_back(s.data());
  int64_t step = 1;
  densitron::NadamProduct nadam;  // Nadam's product continues step by step, as in training
  for (auto _ : state) {
    densitron::optimizer_update(c, step++, w.data(), g.data(), sp.data(), n, &nadam);
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, arrays);
}

// A loss and its gradient over rows of `cols` values (the batch's rows: arrays of n floats),
// on one thread as the executor computes it. Bytes: p and y read, g written (a sparse loss
// reads one label a row instead of y).
struct LossCase {
  const char* name;
  densitron::Loss loss;
  int64_t cols;
  bool fused;   // through a fused softmax or sigmoid
  bool sparse;  // y holds one class label a row
};

void loss(benchmark::State& state, LossCase c) {
  const int64_t n = state.range(0) / 4, cols = std::min(c.cols, n), rows = n / cols;
  std::vector<float> p = random_vector(rows * cols, 1), y(rows * cols), g(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    p[i] = p[i] * 0.12f + 0.5f;  // in (0, 1), for the losses on probabilities
    y[i] = c.sparse ? static_cast<float>(i % cols) : static_cast<float>(i % 3 == 0);
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(densitron::loss_forward_backward(
        c.loss, p.data(), y.data(), rows, cols, g.data(), static_cast<double>(rows), c.fused));
    benchmark::ClobberMemory();
  }
  set_bytes(state, rows * cols, c.sparse ? 2 : 3);
}

// The noise layers' kernels on one thread: Dropout (rate 0.5: each value's mask hashed from
// its index, the value scaled or zeroed; read x, write y) and GaussianNoise's normal values
// (write only).
void dropout(benchmark::State& state) {
  const int64_t n = state.range(0) / 4;
  std::vector<float> x = random_vector(n, 1), y(n);
  const densitron::ElementwiseKernels* k = densitron::elementwise_kernels();
  for (auto _ : state) {
    k->dropout(x.data(), y.data(), n, 7, 3, 0, 0.5f, 2.0f, false);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 2);
}

void gaussian_noise(benchmark::State& state) {
  const int64_t n = state.range(0) / 4;
  std::vector<float> y(n);
  const densitron::ElementwiseKernels* k = densitron::elementwise_kernels();
  for (auto _ : state) {
    k->gaussian_noise(y.data(), n, 7, 3, 0);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n, 1);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->RangeMultiplier(8)->Range(kMinBytes, kMaxBytes)->UseRealTime();
}

void register_all() {
  benchmark::RegisterBenchmark("stream_copy", stream_copy)->Apply(sizes);
  benchmark::RegisterBenchmark("stream_triad", stream_triad)->Apply(sizes);
  for (const ActCase& c : act_cases()) {
    benchmark::RegisterBenchmark((std::string(c.name) + "/forward").c_str(), act_forward, c)
        ->Apply(sizes);
    benchmark::RegisterBenchmark((std::string(c.name) + "/backward").c_str(), act_backward, c)
        ->Apply(sizes);
  }
  densitron::OptimizerConfig sgd;
  sgd.kind = densitron::OptimizerKind::kSgd;
  benchmark::RegisterBenchmark("sgd", optimizer, sgd, 3)->Apply(sizes);
  sgd.momentum = 0.9f;
  benchmark::RegisterBenchmark("sgd_momentum", optimizer, sgd, 5)->Apply(sizes);
  // name, kind, arrays touched (w and g read, w and every slot written: the STREAM count)
  const struct {
    const char* name;
    densitron::OptimizerKind kind;
    int arrays;
  } updates[] = {
      {"rmsprop", densitron::OptimizerKind::kRmsprop, 5},
      {"adam", densitron::OptimizerKind::kAdam, 7},
      {"adamax", densitron::OptimizerKind::kAdamax, 7},
      {"adagrad", densitron::OptimizerKind::kAdagrad, 5},
      {"lion", densitron::OptimizerKind::kLion, 5},
      {"adadelta", densitron::OptimizerKind::kAdadelta, 7},
      {"nadam", densitron::OptimizerKind::kNadam, 7},
      {"ftrl", densitron::OptimizerKind::kFtrl, 7},
  };
  using densitron::Loss;
  const LossCase losses[] = {
      {"categorical_crossentropy/10", Loss::kCategoricalCrossentropy, 10, true, false},
      {"categorical_crossentropy/1000", Loss::kCategoricalCrossentropy, 1000, true, false},
      {"sparse_categorical_crossentropy_logits/10",
       Loss::kSparseCategoricalCrossentropyLogits, 10, false, true},
      {"sparse_categorical_crossentropy_logits/1000",
       Loss::kSparseCategoricalCrossentropyLogits, 1000, false, true},
      {"binary_crossentropy/784", Loss::kBinaryCrossentropy, 784, true, false},
      {"binary_crossentropy_logits/784", Loss::kBinaryCrossentropyLogits, 784, false, false},
      {"mean_squared_error/784", Loss::kMeanSquaredError, 784, false, false},
      {"cosine_similarity/128", Loss::kCosineSimilarity, 128, false, false},
      {"categorical_hinge/10", Loss::kCategoricalHinge, 10, false, false},
  };
  benchmark::RegisterBenchmark("dropout", dropout)
      ->RangeMultiplier(8)->Range(kMinBytes, 16 << 20)->UseRealTime();
  benchmark::RegisterBenchmark("gaussian_noise", gaussian_noise)
      ->RangeMultiplier(8)->Range(kMinBytes, 16 << 20)->UseRealTime();
  for (const LossCase& c : losses) {  // batch-sized arrays: up to 16 MB
    benchmark::RegisterBenchmark(c.name, loss, c)
        ->RangeMultiplier(8)->Range(kMinBytes, 16 << 20)->UseRealTime();
  }
  for (const auto& u : updates) {
    densitron::OptimizerConfig c;
    c.kind = u.kind;
    benchmark::RegisterBenchmark(u.name, optimizer, c, u.arrays)->Apply(sizes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("isa", densitron::isa_name(densitron::active_isa()));
  benchmark::AddCustomContext("threads", std::to_string(densitron::get_num_threads()));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
