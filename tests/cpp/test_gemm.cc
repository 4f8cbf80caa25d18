// SGEMM against a float64 reference on every ISA path this CPU supports: size sweeps with
// MR±1, NR±1 and KC±1 tails, all transpose combinations, alpha/beta, leading dimensions wider
// than the matrix (the padding must stay untouched), fused epilogues, and 1 vs 2 threads
// bitwise equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cpu/openmp.h"
#include "densitron/cpu.h"
#include "densitron/gemm.h"
#include "gemm/kernel_info.h"

namespace densitron {
namespace {

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

// Restores the ISA and thread count a test changed.
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : saved_isa_(active_isa()), saved_threads_(get_num_threads()) {
    set_active_isa(isa);
  }
  ~IsaScope() {
    set_active_isa(saved_isa_);
    set_num_threads(saved_threads_);
  }

 private:
  Isa saved_isa_;
  int saved_threads_;
};

struct Case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha = 1.0f, beta = 0.0f;
  int64_t pad = 0;  // extra columns in every leading dimension
  bool bias = false;
  EpilogueAct act = EpilogueAct::kNone;
  EpilogueAct dact = EpilogueAct::kNone;  // backward epilogue: C · dact'(Y)
};

std::string describe(const Case& c) {
  return "ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) +
         " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         " pad=" + std::to_string(c.pad) + " bias=" + std::to_string(c.bias) +
         " act=" + std::to_string(static_cast<int>(c.act)) +
         " dact=" + std::to_string(static_cast<int>(c.dact)) + " isa=" + isa_name(active_isa());
}

double activate_ref(double x, EpilogueAct act) {
  switch (act) {
    case EpilogueAct::kRelu: return x > 0 ? x : 0;
    case EpilogueAct::kSigmoid: return 1.0 / (1.0 + std::exp(-x));
    case EpilogueAct::kTanh: return std::tanh(x);
    default: return x;
  }
}

double derivative_ref(double y, EpilogueAct act) {
  switch (act) {
    case EpilogueAct::kRelu: return y > 0 ? 1 : 0;
    case EpilogueAct::kSigmoid: return y * (1 - y);
    case EpilogueAct::kTanh: return 1 - y * y;
    default: return 1;
  }
}

constexpr float kSentinel = -12345.0f;

struct Operands {
  std::vector<float> a, b, c, bias, y;
  int64_t lda, ldb, ldc, ldy;
};

Operands make_operands(const Case& cs, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Operands op;
  const int64_t a_rows = cs.ta ? cs.k : cs.m, a_cols = cs.ta ? cs.m : cs.k;
  const int64_t b_rows = cs.tb ? cs.n : cs.k, b_cols = cs.tb ? cs.k : cs.n;
  op.lda = a_cols + cs.pad;
  op.ldb = b_cols + cs.pad;
  op.ldc = cs.n + cs.pad;
  op.a.assign(a_rows * op.lda, std::numeric_limits<float>::quiet_NaN());
  op.b.assign(b_rows * op.ldb, std::numeric_limits<float>::quiet_NaN());
  op.c.assign(cs.m * op.ldc, kSentinel);
  for (int64_t i = 0; i < a_rows; ++i)
    for (int64_t j = 0; j < a_cols; ++j) op.a[i * op.lda + j] = dist(rng);
  for (int64_t i = 0; i < b_rows; ++i)
    for (int64_t j = 0; j < b_cols; ++j) op.b[i * op.ldb + j] = dist(rng);
  for (int64_t i = 0; i < cs.m; ++i)
    for (int64_t j = 0; j < cs.n; ++j)
      op.c[i * op.ldc + j] = cs.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
  if (cs.bias) {
    op.bias.resize(cs.n);
    for (auto& v : op.bias) v = dist(rng);
  }
  // Y as the activation's output: relu's has exact zeros, sigmoid's lies in (0, 1).
  op.ldy = cs.n + cs.pad + 2;
  if (cs.dact != EpilogueAct::kNone) {
    op.y.assign(cs.m * op.ldy, std::numeric_limits<float>::quiet_NaN());
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < cs.n; ++j) {
        const float v = dist(rng);
        op.y[i * op.ldy + j] = cs.dact == EpilogueAct::kRelu      ? (v < 0.0f ? 0.0f : v)
                               : cs.dact == EpilogueAct::kSigmoid ? 0.5f + 0.5f * v
                                                                  : v;
      }
  }
  return op;
}

void run(const Case& cs, Operands& op) {
  GemmEpilogue ep;
  ep.bias = cs.bias ? op.bias.data() : nullptr;
  ep.act = cs.act;
  if (cs.dact != EpilogueAct::kNone) {
    ep.dact_y = op.y.data();
    ep.ldy = op.ldy;
    ep.dact = cs.dact;
  }
  sgemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, op.a.data(), op.lda, op.b.data(), op.ldb,
        cs.beta, op.c.data(), op.ldc, ep);
}

// Runs one case and checks every element against float64, and the padding of C untouched.
void check_case(const Case& cs, std::mt19937& rng) {
  Operands op = make_operands(cs, rng);
  const std::vector<float> c0 = op.c;
  run(cs, op);
  const float eps = std::numeric_limits<float>::epsilon();
  int failures = 0;
  for (int64_t i = 0; i < cs.m && failures < 5; ++i) {
    for (int64_t j = 0; j < cs.n; ++j) {
      double sum = 0, abs_sum = 0;
      for (int64_t p = 0; p < cs.k; ++p) {
        const double av = cs.ta ? op.a[p * op.lda + i] : op.a[i * op.lda + p];
        const double bv = cs.tb ? op.b[j * op.ldb + p] : op.b[p * op.ldb + j];
        sum += av * bv;
        abs_sum += std::fabs(av * bv);
      }
      double ref = cs.alpha * sum;
      double scale = std::fabs(cs.alpha) * abs_sum;
      if (cs.beta != 0.0f) {
        ref += cs.beta * static_cast<double>(c0[i * op.ldc + j]);
        scale += std::fabs(cs.beta * c0[i * op.ldc + j]);
      }
      if (cs.bias) {
        ref += op.bias[j];
        scale += std::fabs(op.bias[j]);
      }
      ref = activate_ref(ref, cs.act);
      if (cs.dact != EpilogueAct::kNone) {
        const double d = derivative_ref(op.y[i * op.ldy + j], cs.dact);
        ref *= d;
        scale *= std::fabs(d);
      }
      const double tol = 2.0 * (cs.k + 8) * eps * scale + 4 * eps;
      const float got = op.c[i * op.ldc + j];
      if (!(std::fabs(got - ref) <= tol)) {
        ADD_FAILURE() << describe(cs) << " at (" << i << ", " << j << "): got " << got
                      << ", want " << ref << " ± " << tol;
        if (++failures >= 5) break;
      }
    }
  }
  for (int64_t i = 0; i < cs.m; ++i)
    for (int64_t j = cs.n; j < op.ldc; ++j)
      ASSERT_EQ(op.c[i * op.ldc + j], kSentinel) << describe(cs) << " wrote padding";
}

std::vector<int64_t> tail_sizes(const gemm::KernelInfo& ki) {
  std::set<int64_t> s = {1, 2, 3, 7, 17, 64, 130};
  for (int64_t d : {ki.mr - 1, ki.mr, ki.mr + 1, ki.nr - 1, ki.nr, ki.nr + 1, 2 * ki.nr + 1}) {
    if (d >= 1 && d <= 130) s.insert(d);
  }
  return {s.begin(), s.end()};
}

class GemmIsaTest : public ::testing::TestWithParam<Isa> {};

TEST_P(GemmIsaTest, TailSweepAllTransposes) {
  IsaScope scope(GetParam());
  set_num_threads(1);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  ASSERT_STREQ(ki.name, isa_name(GetParam()));
  std::mt19937 rng(1234);
  const std::vector<int64_t> dims = tail_sizes(ki);
  for (int t = 0; t < 4; ++t) {
    for (int64_t m : dims)
      for (int64_t n : dims)
        for (int64_t k : {int64_t{1}, int64_t{5}, int64_t{33}, int64_t{130}}) {
          check_case({t & 1 ? true : false, t & 2 ? true : false, m, n, k}, rng);
          if (HasFailure()) return;
        }
  }
}

TEST_P(GemmIsaTest, KcTails) {
  IsaScope scope(GetParam());
  set_num_threads(1);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  std::mt19937 rng(99);
  for (int t = 0; t < 4; ++t)
    for (int64_t k : {ki.kc - 1, ki.kc, ki.kc + 1, 2 * ki.kc + 1}) {
      check_case({t & 1 ? true : false, t & 2 ? true : false, ki.mr + 1, ki.nr + 1, k, 1.0f, 0.5f,
                  0, true, EpilogueAct::kRelu},
                 rng);
    }
}

TEST_P(GemmIsaTest, RandomShapesUpTo130) {
  IsaScope scope(GetParam());
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 130);
  for (int it = 0; it < 150; ++it) {
    Case cs{(it & 1) != 0, (it & 2) != 0, dim(rng), dim(rng), dim(rng)};
    cs.pad = it % 3 == 0 ? 5 : 0;
    check_case(cs, rng);
  }
}

TEST_P(GemmIsaTest, AlphaBetaAndLeadingDimensions) {
  IsaScope scope(GetParam());
  std::mt19937 rng(42);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  for (int t = 0; t < 4; ++t)
    for (float alpha : {1.0f, -0.5f, 2.0f})
      for (float beta : {0.0f, 1.0f, 0.25f}) {
        check_case({t & 1 ? true : false, t & 2 ? true : false, ki.mr + 1, 2 * ki.nr - 1, 67,
                    alpha, beta, 7},
                   rng);
        check_case({t & 1 ? true : false, t & 2 ? true : false, 130, 3, 130, alpha, beta, 1}, rng);
      }
}

TEST_P(GemmIsaTest, LargePackedPathsAndNoAlphaK) {
  IsaScope scope(GetParam());
  std::mt19937 rng(5);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  // Shapes large enough that both operands are packed, with MC/NC tails.
  for (int t = 0; t < 4; ++t) {
    check_case({t & 1 ? true : false, t & 2 ? true : false, ki.mc + ki.mr + 1, 5 * ki.nr + 3,
                ki.kc + 3, 1.0f, 0.0f, 2},
               rng);
  }
  // k == 0 and alpha == 0: C = epilogue(beta·C).
  check_case({false, false, 9, 11, 0, 1.0f, 0.5f, 1, true, EpilogueAct::kRelu}, rng);
  check_case({true, true, 9, 11, 4, 0.0f, 0.0f, 0, true, EpilogueAct::kTanh}, rng);
  check_case({false, true, 9, 11, 0, 1.0f, 0.5f, 1, true, EpilogueAct::kNone,
              EpilogueAct::kSigmoid}, rng);  // and the backward epilogue
}

TEST_P(GemmIsaTest, FusedEpilogues) {
  IsaScope scope(GetParam());
  std::mt19937 rng(11);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  for (EpilogueAct act :
       {EpilogueAct::kNone, EpilogueAct::kRelu, EpilogueAct::kSigmoid, EpilogueAct::kTanh})
    for (bool bias : {false, true})
      for (int t = 0; t < 4; ++t) {
        for (int64_t n : {int64_t{10}, ki.nr + 1, int64_t{64}}) {
          Case cs{t & 1 ? true : false, t & 2 ? true : false, 33, n, 64, 1.5f, 0.0f, 3, bias, act};
          check_case(cs, rng);
          cs.beta = 0.5f;
          check_case(cs, rng);
        }
      }
}

TEST_P(GemmIsaTest, FusedBackwardEpilogue) {
  // dX = (dY·Wᵀ) ⊙ act'(Y): every derivative, transpose, tail, beta, several K blocks, k = 0.
  IsaScope scope(GetParam());
  std::mt19937 rng(12);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  for (EpilogueAct dact : {EpilogueAct::kRelu, EpilogueAct::kSigmoid, EpilogueAct::kTanh})
    for (int t = 0; t < 4; ++t)
      for (int64_t m : {int64_t{1}, ki.mr + 1, int64_t{33}})
        for (int64_t n : {int64_t{10}, ki.nr + 1, int64_t{64}})
          for (int64_t k : {int64_t{0}, int64_t{17}, ki.kc + 3})
            for (float beta : {0.0f, 0.5f}) {
              Case cs{t & 1 ? true : false, t & 2 ? true : false, m, n, k, 1.0f, beta, 2};
              cs.dact = dact;
              check_case(cs, rng);
            }
}

TEST_P(GemmIsaTest, ActivationsOnLargeInputs) {
  // Saturating inputs must give finite, correctly rounded-at-the-limit outputs.
  IsaScope scope(GetParam());
  for (EpilogueAct act : {EpilogueAct::kSigmoid, EpilogueAct::kTanh}) {
    std::vector<float> a = {1.0f}, c(40), bias(40);
    std::vector<float> b(40);
    for (int j = 0; j < 40; ++j) b[j] = (j - 20) * 6.0f;  // -120..114
    GemmEpilogue ep;
    ep.act = act;
    sgemm(false, false, 1, 40, 1, 1.0f, a.data(), 1, b.data(), 40, 0.0f, c.data(), 40, ep);
    for (int j = 0; j < 40; ++j) {
      const double ref = activate_ref(b[j], act);
      EXPECT_NEAR(c[j], ref, 1e-6) << "x=" << b[j] << " act=" << static_cast<int>(act);
    }
  }
}

TEST_P(GemmIsaTest, OneAndTwoThreadsBitwiseEqual) {
  IsaScope scope(GetParam());
  std::mt19937 rng(3);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  const int64_t shapes[][3] = {{300, 200, 300},
                               {ki.mr * 7 + 3, ki.nr * 9 + 5, ki.kc * 2 + 7},
                               {32, 784, 64},
                               {784, 64, 32},
                               {1000, 10, 100}};
  for (const auto& s : shapes) {
    for (int t = 0; t < 4; ++t) {
      // Forward (sigmoid) and backward (relu', tanh') epilogues in turn.
      Case cs{t & 1 ? true : false, t & 2 ? true : false, s[0], s[1], s[2], 1.0f, 0.5f, 1, true,
              t == 0 ? EpilogueAct::kSigmoid : EpilogueAct::kNone,
              t == 0 ? EpilogueAct::kNone : (t & 1 ? EpilogueAct::kRelu : EpilogueAct::kTanh)};
      Operands op1 = make_operands(cs, rng);
      Operands op2 = op1;
      set_num_threads(1);
      run(cs, op1);
      set_num_threads(2);
      run(cs, op2);
      ASSERT_EQ(std::memcmp(op1.c.data(), op2.c.data(), op1.c.size() * sizeof(float)), 0)
          << describe(cs);
    }
  }
}

TEST_P(GemmIsaTest, CalledFromInsideAParallelRegion) {
  // Each thread of an outer region runs its own product large enough to want two threads;
  // the nested region gets fewer threads than planned and must still compute all of C.
#if !defined(_OPENMP)
  GTEST_SKIP() << "built without OpenMP: there is no parallel region";
#endif
  IsaScope scope(GetParam());
  std::mt19937 rng(4);
  set_num_threads(2);
  Case cs{false, false, 300, 200, 300, 1.0f, 0.0f, 0, true, EpilogueAct::kNone};
  Operands ref = make_operands(cs, rng);
  run(cs, ref);
  std::vector<Operands> ops(2, ref);
  for (auto& op : ops) std::fill(op.c.begin(), op.c.end(), 0.0f);
#pragma omp parallel num_threads(2)
  run(cs, ops[omp_get_thread_num()]);
  for (const auto& op : ops) {
    ASSERT_EQ(std::memcmp(op.c.data(), ref.c.data(), ref.c.size() * sizeof(float)), 0);
  }
}

TEST_P(GemmIsaTest, AgreesWithGenericTwin) {
  // Every fast path against the portable kernel on the same inputs (tolerance, not bitwise:
  // FMA contraction differs).
  std::mt19937 rng(8);
  Case cs{false, true, 77, 93, 150, 1.0f, 0.0f, 0, true, EpilogueAct::kRelu};
  Operands ref = make_operands(cs, rng);
  Operands got = ref;
  {
    IsaScope scope(Isa::kGeneric);
    run(cs, ref);
  }
  IsaScope scope(GetParam());
  run(cs, got);
  for (size_t i = 0; i < ref.c.size(); ++i) ASSERT_NEAR(ref.c[i], got.c[i], 1e-4) << i;
}

// Products with op(B) transposed and 16 to 32 rows (a Dense input gradient at a small batch)
// are computed transposed where the ISA has the transposing write-back: against float64, and
// bitwise against the same rows computed one at a time by the tile kernels (one row is never
// computed transposed), on one and two threads, with every epilogue, row and column tails, and
// one or several k blocks (beta != 0 with several k blocks stays on the tile kernels).
TEST_P(GemmIsaTest, TransposedProductsMatchTheTileKernels) {
  IsaScope scope(GetParam());
  std::mt19937 rng(21);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  int variant = 0;
  for (int64_t m : {int64_t{16}, int64_t{17}, int64_t{31}, int64_t{32}})
    for (int64_t n : {int64_t{128}, int64_t{129}, int64_t{515}})
      for (int64_t k : {int64_t{64}, ki.kc, ki.kc + 1, 2 * ki.kc + 5})
        for (float beta : {0.0f, 1.0f}) {
          const int v = variant++;
          Case cs{v % 3 == 0, true, m, n, k, v % 4 == 1 ? 0.5f : 1.0f, beta, v % 2 ? 3 : 0};
          if (v % 3 == 1) {
            cs.dact = v % 2 ? EpilogueAct::kRelu : EpilogueAct::kTanh;
          } else {
            cs.bias = true;
            cs.act = v % 2 ? EpilogueAct::kSigmoid : EpilogueAct::kRelu;
          }
          check_case(cs, rng);
          Operands whole = make_operands(cs, rng);
          Operands rows = whole, two = whole;
          set_num_threads(1);
          run(cs, whole);
          set_num_threads(2);
          run(cs, two);
          GemmEpilogue ep;
          ep.bias = cs.bias ? rows.bias.data() : nullptr;
          ep.act = cs.act;
          for (int64_t i = 0; i < m; ++i) {
            if (cs.dact != EpilogueAct::kNone) {
              ep.dact_y = rows.y.data() + i * rows.ldy;
              ep.ldy = rows.ldy;
              ep.dact = cs.dact;
            }
            const float* a = cs.ta ? rows.a.data() + i : rows.a.data() + i * rows.lda;
            sgemm(cs.ta, cs.tb, 1, n, k, cs.alpha, a, rows.lda, rows.b.data(), rows.ldb, beta,
                  rows.c.data() + i * rows.ldc, rows.ldc, ep);
          }
          ASSERT_EQ(std::memcmp(whole.c.data(), rows.c.data(), whole.c.size() * sizeof(float)), 0)
              << describe(cs);
          ASSERT_EQ(std::memcmp(whole.c.data(), two.c.data(), whole.c.size() * sizeof(float)), 0)
              << describe(cs);
        }
}

// rows_done hands over every row of C exactly once, whole and bitwise equal to what the same
// product writes into C: from the per-thread panel buffer (one k block, beta 0; C untouched)
// or from C itself (several k blocks, beta != 0, or more columns than one column block), on
// one or two threads (also packing B jointly), with a row tail and the backward epilogue.
struct RowsSink {
  int64_t n;
  std::vector<float> rows;  // m × n, filled by rows_done
  std::vector<int> seen;    // per row, how many times it was handed over
};

void collect_rows(void* ctx, int64_t row0, int64_t rows, float* c, int64_t ldc) {
  RowsSink& sink = *static_cast<RowsSink*>(ctx);
  for (int64_t i = 0; i < rows; ++i) {
#pragma omp atomic
    sink.seen[row0 + i]++;
    std::memcpy(sink.rows.data() + (row0 + i) * sink.n, c + i * ldc, sink.n * sizeof(float));
  }
}

TEST_P(GemmIsaTest, RowsDoneHandsOverEveryRowOnce) {
  IsaScope scope(GetParam());
  std::mt19937 rng(9);
  const gemm::KernelInfo& ki = *gemm::active_kernel_info();
  struct Shape { int64_t m, n, k; float beta; bool into_c; };
  const Shape shapes[] = {{ki.mr * 5 + 3, 2 * ki.nr + 5, 32, 0.0f, false},
                          {196, 256, 32, 0.0f, false},
                          {300, 200, 100, 0.0f, false},  // two threads pack B jointly
                          {ki.mr * 3 + 1, 70, ki.kc + 9, 0.0f, true},
                          {37, 41, 20, 0.5f, true},
                          {9, ki.nc + 3, 5, 0.0f, true},
                          {5, 7, 0, 0.5f, true}};
  for (const Shape& sh : shapes) {
    for (int threads : {1, 2}) {
      for (bool dact : {false, true}) {
        set_num_threads(threads);
        Case cs{true, false, sh.m, sh.n, sh.k, 1.0f, sh.beta, 1, false, EpilogueAct::kNone,
                dact ? EpilogueAct::kRelu : EpilogueAct::kNone};
        Operands ref = make_operands(cs, rng);
        Operands got = ref;
        run(cs, ref);
        RowsSink sink{sh.n, std::vector<float>(sh.m * sh.n), std::vector<int>(sh.m, 0)};
        GemmEpilogue ep;
        if (dact) {
          ep.dact_y = got.y.data();
          ep.ldy = got.ldy;
          ep.dact = EpilogueAct::kRelu;
        }
        ep.rows_done = collect_rows;
        ep.rows_ctx = &sink;
        sgemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, got.a.data(), got.lda, got.b.data(),
              got.ldb, cs.beta, got.c.data(), got.ldc, ep);
        for (int64_t i = 0; i < sh.m; ++i) {
          ASSERT_EQ(sink.seen[i], 1) << describe(cs) << " row " << i;
          ASSERT_EQ(std::memcmp(sink.rows.data() + i * sh.n, ref.c.data() + i * ref.ldc,
                                sh.n * sizeof(float)), 0)
              << describe(cs) << " row " << i;
        }
        // The panel buffer path leaves C as it was (its NaNs: beta == 0 does not read them).
        if (!sh.into_c)
          for (int64_t i = 0; i < sh.m * got.ldc; ++i)
            ASSERT_TRUE(std::isnan(got.c[i]) || got.c[i] == kSentinel) << describe(cs);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SupportedIsas, GemmIsaTest, ::testing::ValuesIn(supported_isas()),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });

TEST(Gemm, RejectsBadArguments) {
  std::vector<float> a(4), b(4), c(4);
  EXPECT_THROW(sgemm(false, false, -1, 2, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2),
               std::invalid_argument);
  EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1, a.data(), 1, b.data(), 2, 0, c.data(), 2),
               std::invalid_argument);
  EXPECT_THROW(sgemm(false, true, 2, 2, 2, 1, a.data(), 2, b.data(), 1, 0, c.data(), 2),
               std::invalid_argument);
  EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 1),
               std::invalid_argument);
  GemmEpilogue ep;  // the backward epilogue: Y's stride, and no forward activation with it
  ep.dact_y = a.data();
  ep.dact = EpilogueAct::kRelu;
  ep.ldy = 1;
  EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2, ep),
               std::invalid_argument);
  ep.ldy = 2;
  ep.act = EpilogueAct::kTanh;
  EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1, a.data(), 2, b.data(), 2, 0, c.data(), 2, ep),
               std::invalid_argument);
}

TEST(Cpu, IsaReportAndThreads) {
  EXPECT_TRUE(isa_supported(Isa::kGeneric));
  EXPECT_TRUE(isa_supported(best_supported_isa()));
  EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
  const int saved = get_num_threads();
  EXPECT_GE(saved, 1);
  set_num_threads(3);
#if defined(_OPENMP)
  EXPECT_EQ(get_num_threads(), 3);
#else
  EXPECT_EQ(get_num_threads(), 1);  // built without OpenMP: always one
#endif
  EXPECT_THROW(set_num_threads(0), std::invalid_argument);
  set_num_threads(saved);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) EXPECT_THROW(set_active_isa(isa), std::invalid_argument);
  }
}

// Subnormal inputs and results are zero inside a FlushDenormals scope, and the thread's mode
// is back as it was after it (nested scopes restore in turn).
TEST(Cpu, FlushDenormalsScopeFlushesAndRestores) {
  volatile float tiny = 1e-30f, scale = 1e-10f, subnormal = 1e-40f;
  const float before = tiny * scale;
  ASSERT_GT(before, 0.0f);  // IEEE: a subnormal product
  {
    FlushDenormals flush;
    EXPECT_EQ(tiny * scale, 0.0f);          // flushed result
    EXPECT_EQ(subnormal * 1e30f, 0.0f);     // subnormal input read as zero
    {
      FlushDenormals again;
      EXPECT_EQ(tiny * scale, 0.0f);
    }
    EXPECT_EQ(tiny * scale, 0.0f);
  }
  EXPECT_EQ(tiny * scale, before);
  EXPECT_GT(subnormal * 1e30f, 0.0f);
}

}  // namespace
}  // namespace densitron
