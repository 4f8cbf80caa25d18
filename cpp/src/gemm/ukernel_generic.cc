// Portable microkernel: a 4×16 register tile in plain C++ that the compiler vectorizes for the
// baseline ISA. It is the reference twin of every SIMD kernel and the fallback on any CPU.
#include <cmath>

#include "densitron/gemm.h"
#include "gemm/kernel_info.h"

namespace densitron {
namespace gemm {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 16;

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

// Full tile: fixed trip counts so the compiler keeps acc in vector registers.
template <bool kRowMajorA>
void ukernel_full(const UkernelArgs& p, float (&acc)[kMr][kNr]) {
  const float* a = p.a;
  const float* b = p.b;
  for (int64_t q = 0; q < p.k; ++q) {
    for (int i = 0; i < kMr; ++i) {
      const float ai = kRowMajorA ? a[i * p.a_rs + q] : a[q * p.a_cs + i];
      for (int j = 0; j < kNr; ++j) acc[i][j] += ai * b[j];
    }
    b += p.b_rs;
  }
}

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
  float acc[kMr][kNr] = {};
  if (p->m == kMr && p->n == kNr) {
    ukernel_full<kRowMajorA>(*p, acc);
  } else {
    ukernel_tail<kRowMajorA>(*p, acc);
  }
  write_back(*p, acc);
}

}  // namespace

void sgemm_ukernel_4x16_generic(const UkernelArgs* p) { ukernel<false>(p); }
void sgemm_ukernel_4x16_generic_rowa(const UkernelArgs* p) { ukernel<true>(p); }

// kc·nr·4 = 16 KiB of B in L1; mc·kc·4 = 128 KiB of A in L2; nc·kc·4 = 4 MiB of B in L3.
extern const KernelInfo kKernelInfoGeneric = {
    "generic", kMr, kNr, /*kc=*/256, /*mc=*/128, /*nc=*/4096,
    sgemm_ukernel_4x16_generic, sgemm_ukernel_4x16_generic_rowa, nullptr, nullptr,
    nullptr, /*store_trans=*/nullptr};

}  // namespace gemm
}  // namespace densitron
