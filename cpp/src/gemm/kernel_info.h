// Private GEMM contract between the blocked loops (gemm.cc), the packing routines (pack.cc) and
// the per-ISA microkernels (ukernel_<isa>.cc). Plain C declarations and PODs only: this header is
// included by files compiled with AVX2/AVX-512 flags, so it must hold no inline or template code.
//
// A microkernel computes one tile of at most mr × nr elements of C:
//   acc[i][j] = Σ_{p<k} A(i, p) · B(p, j),  A(i, p) = a[i·a_rs + p·a_cs],  B(p, j) = b[p·b_rs + j]
//   C[i][j]   = alpha·acc + beta·C   (beta == 0: C is not read), then, when last_k_block:
//   C[i][j]   = act(C[i][j] + bias[j]) · dact'(Y[i][j]),  Y[i][j] = dact_y[i·ldy + j]
// for i < m (<= mr) and j < n (<= nr). B's columns are contiguous; columns j >= n are never read.
#pragma once

#include <cstddef>
#include <cstdint>

namespace densitron {
namespace gemm {

struct UkernelArgs {
  int64_t k;
  const float* a;
  int64_t a_rs;  // distance between rows of op(A) in the tile
  int64_t a_cs;  // distance between consecutive k of op(A)
  const float* b;
  int64_t b_rs;  // distance between consecutive k of op(B); columns are unit-stride
  float* c;
  int64_t ldc;
  int64_t m;  // rows of the tile to compute (1..mr)
  int64_t n;  // columns of the tile to compute (1..nr)
  float alpha;
  float beta;
  const float* bias;  // n values or nullptr; applied only when last_k_block
  int act;            // EpilogueAct as int; applied only when last_k_block
  int last_k_block;
  const float* dact_y;  // the tile's Y or nullptr; applied only when last_k_block
  int64_t ldy;
  int dact;             // EpilogueAct as int: whose derivative scales C
};

// The write-back of a product computed transposed, T = alpha·op(B)ᵀ·op(A)ᵀ (n × m, row stride
// ldt): C[i][j] = epilogue(T[j][i] + beta·C[i][j] + bias[j]) for i < m, j < n, with the
// epilogue fields meaning what they mean in UkernelArgs (beta == 0: C is not read).
struct StoreTransArgs {
  int64_t m, n;
  const float* t;
  int64_t ldt;
  float* c;
  int64_t ldc;
  float beta;
  const float* bias;
  int act;
  const float* dact_y;
  int64_t ldy;
  int dact;
};

typedef void (*UkernelFn)(const UkernelArgs* args);
typedef void (*StoreTransFn)(const StoreTransArgs* args);
typedef void (*PackBTransFn)(int64_t n, int64_t k, const float* b, int64_t ldb, float* dst);
typedef void (*PackBRowsFn)(int64_t n, int64_t k, const float* b, int64_t ldb, float* dst);
typedef void (*PackARowsFn)(int64_t m, int64_t k, const float* a, int64_t lda, float* dst);

// Blocking sizes and kernels of one ISA. mr × nr is the register tile; kc, mc, nc the cache
// blocks (kc·nr floats of B stay in L1, mc·kc floats of A in L2, kc·nc floats of B in L3).
struct KernelInfo {
  const char* name;
  int64_t mr, nr, kc, mc, nc;
  UkernelFn ukernel_a_kmajor;    // A packed or trans_a: a_rs == 1 (a_cs any)
  UkernelFn ukernel_a_rowmajor;  // A plain, unpacked: a_cs == 1 (a_rs any)
  // Optional SIMD packing of one B panel stored transposed (op(B)(p, j) = b[j·ldb + p]) into
  // dst[p·nr + j], zero for j >= n; nullptr: pack_b_panel.
  PackBTransFn pack_b_trans;
  // Optional SIMD packing of one B panel stored row-major (op(B)(p, j) = b[p·ldb + j]) into
  // dst[p·nr + j], zero for j >= n; nullptr: pack_b_panel.
  PackBRowsFn pack_b_rows;
  // Optional SIMD packing of one A panel stored row-major (op(A)(i, p) = a[i·lda + p]) into
  // dst[p·mr + i], zero for i >= m; may write up to 16 floats past dst[k·mr] (the caller leaves
  // that slack); nullptr: pack_a_panel.
  PackARowsFn pack_a_rows;
  // Optional: StoreTransArgs's write-back; nullptr: products are never computed transposed.
  StoreTransFn store_trans;
};

// One KernelInfo per ISA (ukernel_<isa>.cc); dispatch.cc picks the active one.
extern const KernelInfo kKernelInfoGeneric;
#if defined(DENSITRON_X86)
extern const KernelInfo kKernelInfoAvx2;
extern const KernelInfo kKernelInfoAvx512;
#endif

// The table of the ISA in use (cpu.h's active_isa()).
const KernelInfo* active_kernel_info();

// The scalar epilogue of one element after bias (ukernel_generic.cc): act(x), then times
// dact'(*dact_y) when dact_y is given. The portable kernel's write-back and sgemm's k == 0 path.
float epilogue_value(float x, int act, const float* dact_y, int dact);

// Packing (pack.cc). Packed panels are k-major with zero-padded tails:
//   A panel: dst[p·mr + i] = op(A)(i, p) for i < mr (zero for i >= m)
//   B panel: dst[p·nr + j] = op(B)(p, j) for j < nr (zero for j >= n)
// op(A)(i, p) = a[i·rs + p·cs]; op(B)(p, j) = b[p·rs + j·cs].
void pack_a_panel(int64_t m, int64_t k, const float* a, int64_t rs, int64_t cs, int64_t mr,
                  float* dst);
void pack_b_panel(int64_t n, int64_t k, const float* b, int64_t rs, int64_t cs, int64_t nr,
                  float* dst);

}  // namespace gemm
}  // namespace densitron
