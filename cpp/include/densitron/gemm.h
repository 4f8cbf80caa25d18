// Single-precision GEMM on row-major operands with arbitrary leading dimensions:
//   C[m×n] = epilogue(alpha · op(A) · op(B) + beta · C)
// op(A) is m×k: A is stored m×k (lda >= k), or k×m when trans_a (lda >= m).
// op(B) is k×n: B is stored k×n (ldb >= n), or n×k when trans_b (ldb >= k).
// beta == 0 means C is write-only (NaNs in C are not propagated). The epilogue adds bias[j] to
// every row and then applies the activation, fused into the write-back. For a backward
// product it can instead scale C by an activation's derivative taken from that activation's
// output Y (m×n, row stride ldy): C ⊙ act'(Y), with relu' = (Y > 0), sigmoid' = Y·(1 − Y),
// tanh' = 1 − Y², exactly as the engine's activation backward computes them.
#pragma once

#include <cstdint>

namespace densitron {

enum class EpilogueAct : int { kNone = 0, kRelu = 1, kSigmoid = 2, kTanh = 3 };

struct GemmEpilogue {
  const float* bias = nullptr;  // n values, or nullptr
  EpilogueAct act = EpilogueAct::kNone;
  const float* dact_y = nullptr;  // Y for the derivative, or nullptr (act must be kNone)
  int64_t ldy = 0;
  EpilogueAct dact = EpilogueAct::kNone;
  // When set, every finished block of whole rows of C, [row0, row0 + rows) × all n columns, is
  // handed to rows_done(rows_ctx, row0, rows, c, ldc) as soon as it is computed, on the thread
  // that computed it (threads then split C by rows only). c points to those rows, which the
  // callee may modify; they are in C itself or, when beta == 0 and the product allows it, in a
  // small buffer of the thread's that stays in L1, with C left unwritten. So a caller that
  // consumes the rows in rows_done (the graph's kernel-gradient products, consumed by the
  // optimizer) must not read C afterwards.
  void (*rows_done)(void* ctx, int64_t row0, int64_t rows, float* c, int64_t ldc) = nullptr;
  void* rows_ctx = nullptr;
};

// The k extent the active ISA's kernels sum in one pass: C = beta·C + A·B with k at most this
// adds each finished dot product to beta·C once (with beta = 1, exactly fl(C + A·B)).
int64_t sgemm_k_block();

// Threads: get_num_threads() from cpu.h; products too small to gain run on one thread.
// The K dimension is never split across threads, so results are bitwise identical for any
// thread count.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const GemmEpilogue& epilogue = GemmEpilogue());

// Thread ith's share (of nth) of the same product, for callers already inside a parallel
// region: every thread of the region calls it with the same arguments; shares are disjoint
// ranges of C, no thread is forked, and the caller synchronises before reading C. Products
// with less than min_work_per_thread multiply-adds per thread (0: sgemm's own threshold) are
// computed by the first threads only. Bitwise equal to sgemm.
void sgemm_share(int ith, int nth, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float beta, float* c, int64_t ldc,
                 const GemmEpilogue& epilogue = GemmEpilogue(),
                 double min_work_per_thread = 0.0);

}  // namespace densitron
