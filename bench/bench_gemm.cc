// SGEMM throughput (GFLOP/s) per ISA and thread count: square sizes 64..2048, the seed
// model's Dense training products at batch 32 and 256 (m×k×n):
//   fwd  X·W      B×784×64, B×64×64, B×64×10
//   dW   Xᵀ·dY    784×B×64 (X passed as stored, trans_a)
//   dX   dY·Wᵀ    B×64×784 (W passed as stored, trans_b)
// and one row block of a 784×256 kernel cut in four (what each thread computes of
// 784-256-256-10's first layer): fwd B×196×256, dW 196×B×256 (Xᵀ read in place); and half of
// 784-128-10's first layer at batch 128.
// Run: bench_gemm [--benchmark_filter=...]; GFLOPS is the "FLOPS" counter.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "densitron/cpu.h"
#include "densitron/gemm.h"

namespace {

struct Shape {
  std::string name;
  int64_t m, k, n;
  bool ta, tb;
  densitron::EpilogueAct act;
  bool bias;
};

std::vector<float> random_vector(size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(size);
  for (auto& x : v) x = dist(rng);
  return v;
}

void bench_sgemm(benchmark::State& state, densitron::Isa isa, int threads, Shape s) {
  densitron::set_active_isa(isa);
  densitron::set_num_threads(threads);
  const auto a = random_vector(s.m * s.k, 1);
  const auto b = random_vector(s.k * s.n, 2);
  const auto bias = random_vector(s.n, 3);
  std::vector<float> c(s.m * s.n);
  const int64_t lda = s.ta ? s.m : s.k, ldb = s.tb ? s.k : s.n;
  densitron::GemmEpilogue ep;
  ep.act = s.act;
  ep.bias = s.bias ? bias.data() : nullptr;
  for (auto _ : state) {
    densitron::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f,
                     c.data(), s.n, ep);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * s.m * s.n * s.k,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

std::vector<Shape> shapes() {
  using densitron::EpilogueAct;
  std::vector<Shape> out;
  for (int64_t d : {64, 128, 256, 512, 1024, 2048}) {
    const std::string dim = std::to_string(d);
    out.push_back({"square_" + dim, d, d, d, false, false, EpilogueAct::kNone, false});
  }
  for (int64_t bsz : {32, 256}) {
    const std::string bs = std::to_string(bsz);
    out.push_back({"fwd_" + bs + "x784x64", bsz, 784, 64, false, false, EpilogueAct::kNone, false});
    out.push_back({"fwd_relu_bias_" + bs + "x784x64", bsz, 784, 64, false, false,
                   EpilogueAct::kRelu, true});
    out.push_back({"dW_" + bs + "_784x" + bs + "x64", 784, bsz, 64, true, false,
                   EpilogueAct::kNone, false});
    out.push_back({"dX_" + bs + "x64x784", bsz, 64, 784, false, true, EpilogueAct::kNone, false});
    out.push_back({"fwd_" + bs + "x64x64", bsz, 64, 64, false, false, EpilogueAct::kNone, false});
    out.push_back({"dW_" + bs + "_64x" + bs + "x64", 64, bsz, 64, true, false,
                   EpilogueAct::kNone, false});
    out.push_back({"dX_" + bs + "x64x64", bsz, 64, 64, false, true, EpilogueAct::kNone, false});
    out.push_back({"fwd_" + bs + "x64x10", bsz, 64, 10, false, false, EpilogueAct::kNone, false});
    out.push_back({"fwd_block_" + bs + "x196x256", bsz, 196, 256, false, false,
                   EpilogueAct::kNone, false});
    out.push_back({"dW_block_" + bs + "_196x" + bs + "x256", 196, bsz, 256, true, false,
                   EpilogueAct::kNone, false});
  }
  // What each thread computes of 784-128-10's first layer at batch 128 (the kernel cut in
  // two): fwd 128×392×128, dW 392×128×128 (Xᵀ read in place).
  out.push_back({"fwd_block_128x392x128", 128, 392, 128, false, false, EpilogueAct::kNone,
                 false});
  out.push_back({"dW_block_128_392x128x128", 392, 128, 128, true, false, EpilogueAct::kNone,
                 false});
  // What each thread computes of 784-32-32-10's first layer at batch 32 (the kernel cut in
  // four blocks, two a thread): fwd 32×392×32, dW 392×32×32.
  out.push_back({"fwd_block_32x392x32", 32, 392, 32, false, false, EpilogueAct::kNone, false});
  out.push_back({"dW_block_32_392x32x32", 392, 32, 32, true, false, EpilogueAct::kNone,
                 false});
  // 784-16-16-10's first layer at batch 32 (too small a kernel to cut): fwd 32×784×16,
  // dW 784×32×16 (computed transposed, see computed_narrow in gemm.cc), and that product's
  // transpose alone, dYᵀ·X, 16×32×784 (without the transposing write-back).
  out.push_back({"fwd_32x784x16", 32, 784, 16, false, false, EpilogueAct::kNone, false});
  out.push_back({"dW_32_784x32x16", 784, 32, 16, true, false, EpilogueAct::kNone, false});
  out.push_back({"dWT_16_32x784", 16, 32, 784, true, false, EpilogueAct::kNone, false});
  // One 1024-row inference pass (predict groups small batches so) of a 128-wide first layer.
  out.push_back({"pred_1024x784x128", 1024, 784, 128, false, false, EpilogueAct::kRelu, true});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = densitron::get_num_threads();
  for (densitron::Isa isa :
       {densitron::Isa::kAvx512, densitron::Isa::kAvx2, densitron::Isa::kGeneric}) {
    if (!densitron::isa_supported(isa)) continue;
    for (int threads : {1, 2}) {
      if (threads > max_threads && threads > 1) continue;
      for (const Shape& s : shapes()) {
        const std::string name = std::string(densitron::isa_name(isa)) + "/t" +
                                 std::to_string(threads) + "/" + s.name;
        benchmark::RegisterBenchmark(name.c_str(), bench_sgemm, isa, threads, s)
            ->UseRealTime()
            ->MinTime(0.2);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
