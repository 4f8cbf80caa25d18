// Portable microkernel: a 6×8 register tile in plain C++ (GCC/Clang vector extensions, plain
// loops elsewhere) that the compiler maps onto the baseline ISA's 128-bit vectors: SSE on
// x86-64, NEON on AArch64. It is the reference twin of every SIMD kernel and the fallback on any
// CPU. 6×8 is the largest tile whose twelve accumulators, two B vectors, the broadcast A value
// and the product stay in x86-64's sixteen vector registers (SSE has no fused multiply-add).
#include <cmath>
#include <cstring>

#include "densitron/gemm.h"
#include "gemm/kernel_info.h"

namespace densitron {
namespace gemm {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 8;

float activate(float x, int act) {
  switch (act) {
    case static_cast<int>(EpilogueAct::kRelu): return x < 0.0f ? 0.0f : x;  // NaN stays NaN
    case static_cast<int>(EpilogueAct::kSigmoid): return 1.0f / (1.0f + std::exp(-x));
    case static_cast<int>(EpilogueAct::kTanh): return std::tanh(x);
    default: return x;
  }
}

// g · act'(y), act'(y) from the activation's output (see gemm.h).
float scale_by_derivative(float g, float y, int act) {
  switch (act) {
    case static_cast<int>(EpilogueAct::kRelu): return y > 0.0f ? g : 0.0f;
    case static_cast<int>(EpilogueAct::kSigmoid): return g * (y * (1.0f - y));
    case static_cast<int>(EpilogueAct::kTanh): return g * (1.0f - y * y);
    default: return g;
  }
}

}  // namespace

float epilogue_value(float x, int act, const float* dact_y, int dact) {
  x = activate(x, act);
  return dact_y != nullptr ? scale_by_derivative(x, *dact_y, dact) : x;
}

namespace {

void write_back(const UkernelArgs& p, const float (&acc)[kMr][kNr]) {
  for (int64_t i = 0; i < p.m; ++i) {
    float* c = p.c + i * p.ldc;
    for (int64_t j = 0; j < p.n; ++j) {
      float x = p.alpha * acc[i][j];
      if (p.beta != 0.0f) x = p.beta * c[j] + x;
      if (p.last_k_block) {
        if (p.bias != nullptr) x += p.bias[j];
        x = epilogue_value(x, p.act, p.dact_y ? p.dact_y + i * p.ldy + j : nullptr, p.dact);
      }
      c[j] = x;
    }
  }
}

#if defined(__GNUC__)
// Four floats; aligned(4) so that loads and stores through it may be unaligned.
typedef float Vec4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t Vec4i __attribute__((vector_size(16), aligned(4)));
constexpr int kNv = kNr / 4;

Vec4 load4(const float* p) { return *reinterpret_cast<const Vec4*>(p); }
// x where keep is true (all bits set), else +0.
Vec4 select_or_zero(Vec4i keep, Vec4 x) { return (Vec4)(keep & (Vec4i)x); }

// write_back of a full tile whose activation is none or relu, four columns at a time: the
// same operations in the same order as the scalar write_back.
void write_back_full(const UkernelArgs& p, const Vec4 (&acc)[kMr][kNv]) {
  const bool last = p.last_k_block != 0;
  const bool relu = last && p.act == static_cast<int>(EpilogueAct::kRelu);
  const float* dy = last ? p.dact_y : nullptr;
  const Vec4 zero = {};
  for (int i = 0; i < kMr; ++i) {
    float* c = p.c + i * p.ldc;
    for (int v = 0; v < kNv; ++v) {
      Vec4 x = p.alpha * acc[i][v];
      if (p.beta != 0.0f) x = p.beta * load4(c + 4 * v) + x;
      if (last && p.bias != nullptr) x += load4(p.bias + 4 * v);
      if (relu) x = select_or_zero(~(x < zero), x);  // NaN stays NaN
      if (dy != nullptr) {
        const Vec4 y = load4(dy + i * p.ldy + 4 * v);
        switch (p.dact) {
          case static_cast<int>(EpilogueAct::kRelu): x = select_or_zero(y > zero, x); break;
          case static_cast<int>(EpilogueAct::kSigmoid): x = x * (y * (1.0f - y)); break;
          case static_cast<int>(EpilogueAct::kTanh): x = x * (1.0f - y * y); break;
          default: break;
        }
      }
      *reinterpret_cast<Vec4*>(c + 4 * v) = x;
    }
  }
}

// Full tile: the accumulators are whole vectors with fixed trip counts, so they stay in
// registers; A's value is broadcast, B's row loaded as kNv vectors.
template <bool kRowMajorA>
void ukernel_full(const UkernelArgs& p) {
  Vec4 c[kMr][kNv] = {};
  const float* a = p.a;
  const float* b = p.b;
  for (int64_t q = 0; q < p.k; ++q) {
    Vec4 bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = load4(b + 4 * v);
    for (int i = 0; i < kMr; ++i) {
      const float ai = kRowMajorA ? a[i * p.a_rs + q] : a[q * p.a_cs + i];
      const Vec4 av = {ai, ai, ai, ai};
      for (int v = 0; v < kNv; ++v) c[i][v] += av * bv[v];
    }
    b += p.b_rs;
  }
  if (!p.last_k_block || p.act == static_cast<int>(EpilogueAct::kNone) ||
      p.act == static_cast<int>(EpilogueAct::kRelu)) {
    write_back_full(p, c);
  } else {
    float acc[kMr][kNr];
    std::memcpy(acc, c, sizeof(c));
    write_back(p, acc);
  }
}
#else
// Full tile: fixed trip counts so the compiler keeps acc in vector registers.
template <bool kRowMajorA>
void ukernel_full(const UkernelArgs& p) {
  float acc[kMr][kNr] = {};
  const float* a = p.a;
  const float* b = p.b;
  for (int64_t q = 0; q < p.k; ++q) {
    for (int i = 0; i < kMr; ++i) {
      const float ai = kRowMajorA ? a[i * p.a_rs + q] : a[q * p.a_cs + i];
      for (int j = 0; j < kNr; ++j) acc[i][j] += ai * b[j];
    }
    b += p.b_rs;
  }
  write_back(p, acc);
}
#endif

template <bool kRowMajorA>
void ukernel_tail(const UkernelArgs& p, float (&acc)[kMr][kNr]) {
  const float* b = p.b;
  for (int64_t q = 0; q < p.k; ++q) {
    for (int64_t i = 0; i < p.m; ++i) {
      const float ai = kRowMajorA ? p.a[i * p.a_rs + q] : p.a[q * p.a_cs + i];
      for (int64_t j = 0; j < p.n; ++j) acc[i][j] += ai * b[j];
    }
    b += p.b_rs;
  }
}

template <bool kRowMajorA>
void ukernel(const UkernelArgs* p) {
  if (p->m == kMr && p->n == kNr) {
    ukernel_full<kRowMajorA>(*p);
  } else {
    float acc[kMr][kNr] = {};
    ukernel_tail<kRowMajorA>(*p, acc);
    write_back(*p, acc);
  }
}

}  // namespace

void sgemm_ukernel_6x8_generic(const UkernelArgs* p) { ukernel<false>(p); }
void sgemm_ukernel_6x8_generic_rowa(const UkernelArgs* p) { ukernel<true>(p); }

// kc·nr·4 = 8 KiB of B in L1; mc·kc·4 = 120 KiB of A in L2; nc·kc·4 = 4 MiB of B in L3.
extern const KernelInfo kKernelInfoGeneric = {
    "generic", kMr, kNr, /*kc=*/256, /*mc=*/120, /*nc=*/4096,
    sgemm_ukernel_6x8_generic, sgemm_ukernel_6x8_generic_rowa, nullptr, nullptr,
    nullptr, /*store_trans=*/nullptr};

}  // namespace gemm
}  // namespace densitron
