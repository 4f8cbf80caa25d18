// Blocked SGEMM (BLIS loop order): for each NC block of columns, each KC block of k, pack the
// B panel; for each MC block of rows pack the A block; then run the microkernel over the
// MR × NR tiles. Operands already in a layout the kernels read (small ones) are not packed.
// Threads split C into disjoint row or column ranges; K is never split, so every element is
// summed in the same order whatever the thread count.

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu/openmp.h"
#include "cpu/prefetch.h"
#include "densitron/cpu.h"
#include "densitron/gemm.h"
#include "gemm/kernel_info.h"

namespace densitron {
namespace {

using gemm::KernelInfo;
using gemm::UkernelArgs;

struct Problem {
  int64_t m, n, k;
  float alpha, beta;
  // op(A)(i, p) = a[i·a_rs + p·a_cs]; op(B)(p, j) = b[p·b_rs + j·b_cs]
  const float* a;
  int64_t a_rs, a_cs;
  const float* b;
  int64_t b_rs, b_cs;
  float* c;
  int64_t ldc;
  GemmEpilogue ep;
};

// Grow-only, 64-byte aligned scratch owned by the calling thread (OpenMP's pool threads
// persist, so after the first call no product allocates).
class Scratch {
 public:
  ~Scratch() { std::free(ptr_); }
  float* get(size_t floats) {
    if (floats > cap_) {
      std::free(ptr_);
      const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
      ptr_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (ptr_ == nullptr) throw std::bad_alloc();
      cap_ = floats;
    }
    return ptr_;
  }

 private:
  float* ptr_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch t_pack_a;
thread_local Scratch t_pack_b;
thread_local Scratch t_rows;  // the rows_done buffer: one MR-row panel of C
thread_local Scratch t_trans;  // a product computed transposed: its T

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// Rows of the row tile starting at ir of a block of mb rows: mr, except that a remainder of
// at most mr/2 rows is not left to a last thin tile but shared with the tile before it (8 rows
// of a 6-row kernel as 4 + 4, not 6 + 2). A tile of few rows has too few accumulators to cover
// the FMA latency and takes about as long per k as one of half the kernel's rows: batch 32 on
// the 6-row AVX2 kernel runs 6+6+6+6+4+4 rows, 32 instead of 34 tile-rows of time.
inline int64_t tile_rows(int64_t mb, int64_t mr, int64_t ir) {
  const int64_t rest = mb - ir;
  if (rest <= mr || rest >= 2 * mr || rest - mr > mr / 2) return std::min(mr, rest);
  return (rest + 1) / 2;
}

// Floats of the packed B block of an n-column range.
int64_t packed_b_floats(const KernelInfo& ki, const Problem& pr, int64_t n) {
  return std::min(ki.kc, pr.k) * round_up(std::min(ki.nc, n), ki.nr);
}

// A packed B block shared by the nth threads of a parallel region: each packs its share of
// the panels into buf, and barriers separate packing from use.
struct SharedB {
  float* buf;
  int ith, nth;
};

// Computes C[i0:i1, j0:j1] on the calling thread. With `shared`, every thread of the region
// calls this with the same j0, j1 and its own rows (possibly none), and B is packed jointly.
void gemm_block(const KernelInfo& ki, const Problem& pr, int64_t i0, int64_t i1, int64_t j0,
                int64_t j1, const SharedB* shared = nullptr) {
  const int64_t mr = ki.mr, nr = ki.nr;
  const int64_t m = i1 - i0, n = j1 - j0;
  // Pack an operand only when its tiles are re-read often enough to repay the copy, or when
  // the kernels cannot read it as stored (op(B) with strided columns). A B block whose rows
  // span at most 32 KiB stays in L1 as stored, without set conflicts: read in place. A larger
  // one is still read in place for up to 16 row tiles: each tile re-reads its panel from L2,
  // which costs less than the copy (row-major B, 64 to 128 rows: 0-11% faster than packed on
  // AVX-512, even on AVX2; from 256 rows packing is even or ahead).
  // Rows a multiple of 4 KiB apart all map to the same L1 sets, so such a panel read in
  // place evicts itself: packed from 9 row tiles (a 1024-wide Dense layer's forward,
  // 128×1024×1024 on AVX-512: one thread 188 -> 214 GFLOP/s, two 315-338 -> 396-406;
  // 128×2048×2048 308 -> 362; AVX2, 64×1024×1024: 158 -> 200; 64 to 512 wide, or fewer
  // rows, even or faster in place).
  const int64_t kc_max = std::min(ki.kc, pr.k);
  const bool b_fits_l1 = kc_max * pr.b_rs * static_cast<int64_t>(sizeof(float)) <= 32 * 1024;
  const bool b_aliases = pr.b_rs % 1024 == 0;
  const bool pack_b = shared != nullptr || pr.b_cs != 1 ||
                      (!b_fits_l1 && (m > 16 * mr || (b_aliases && m > 8 * mr)));
  // op(A) stored transposed (a kernel gradient's Xᵀ) is read in place by the k-major kernel:
  // its tile's k rows are each a short contiguous run. Packing it cost more than it saved
  // (the Dense kernel-gradient products of batch 32 to 512 5-12% faster unpacked), except
  // with rows a multiple of 2 KiB apart, whose runs pile up in a few L1 sets.
  const bool a_in_place = pr.a_rs == 1 && pr.a_cs % 512 != 0;
  const bool pack_a = n > 4 * nr && !a_in_place;
  float* bp = shared != nullptr ? shared->buf
                                : (pack_b ? t_pack_b.get(packed_b_floats(ki, pr, n)) : nullptr);
  // A gets 16 floats of slack for pack_a_rows's whole-vector stores.
  float* ap = pack_a ? t_pack_a.get(kc_max * round_up(std::min(ki.mc, m), mr) + 16) : nullptr;

  // rows_done: whole rows are handed over as they finish. With one k block, one column block
  // and beta == 0, C is never read, so each panel goes to a small per-thread buffer instead.
  const bool rows_done = pr.ep.rows_done != nullptr;
  const bool to_buffer = rows_done && pr.k <= ki.kc && n <= ki.nc && pr.beta == 0.0f;
  float* panel = to_buffer ? t_rows.get(mr * n) : nullptr;

  UkernelArgs args;
  args.alpha = pr.alpha;
  args.ldc = pr.ldc;
  args.ldy = pr.ep.ldy;
  args.dact = static_cast<int>(pr.ep.dact);
  for (int64_t jc = j0; jc < j1; jc += ki.nc) {
    const int64_t nb = std::min(ki.nc, j1 - jc);
    for (int64_t pc = 0; pc < pr.k; pc += ki.kc) {
      const int64_t kb = std::min(ki.kc, pr.k - pc);
      const bool last = pc + kb == pr.k;
      args.k = kb;
      args.beta = pc == 0 ? pr.beta : 1.0f;
      args.last_k_block = last;
      args.act = last ? static_cast<int>(pr.ep.act) : 0;
      const float* b_block = pr.b + pc * pr.b_rs + jc * pr.b_cs;
      if (pack_b) {
        const int64_t panels = (nb + nr - 1) / nr;
        int64_t q0 = 0, q1 = panels;
        if (shared != nullptr) {
          if (jc != j0 || pc != 0) {
#pragma omp barrier
          }
          q0 = panels * shared->ith / shared->nth;
          q1 = panels * (shared->ith + 1) / shared->nth;
        }
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t jr = q * nr, n_panel = std::min(nr, nb - jr);
          if (pr.b_rs == 1 && ki.pack_b_trans != nullptr) {
            ki.pack_b_trans(n_panel, kb, b_block + jr * pr.b_cs, pr.b_cs, bp + jr * kb);
          } else if (pr.b_cs == 1 && ki.pack_b_rows != nullptr) {
            ki.pack_b_rows(n_panel, kb, b_block + jr, pr.b_rs, bp + jr * kb);
          } else {
            gemm::pack_b_panel(n_panel, kb, b_block + jr * pr.b_cs, pr.b_rs, pr.b_cs, nr,
                               bp + jr * kb);
          }
        }
        if (shared != nullptr) {
#pragma omp barrier
        }
      }
      for (int64_t ic = i0; ic < i1; ic += ki.mc) {
        const int64_t mb = std::min(ki.mc, i1 - ic);
        const float* a_block = pr.a + ic * pr.a_rs + pc * pr.a_cs;
        if (pack_a) {
          // Tile t's panel at ap + t·mr·kb (tiles may be thinner than mr).
          int64_t rows;
          for (int64_t ir = 0, t = 0; ir < mb; ir += rows, ++t) {
            rows = tile_rows(mb, mr, ir);
            if (pr.a_cs == 1 && ki.pack_a_rows != nullptr) {
              ki.pack_a_rows(rows, kb, a_block + ir * pr.a_rs, pr.a_rs, ap + t * mr * kb);
            } else {
              gemm::pack_a_panel(rows, kb, a_block + ir * pr.a_rs, pr.a_rs, pr.a_cs, mr,
                                 ap + t * mr * kb);
            }
          }
        }
        gemm::UkernelFn kernel;
        if (pack_a) {
          kernel = ki.ukernel_a_kmajor;
          args.a_rs = 1;
          args.a_cs = mr;
        } else if (pr.a_rs == 1) {
          kernel = ki.ukernel_a_kmajor;
          args.a_rs = 1;
          args.a_cs = pr.a_cs;
        } else {
          kernel = ki.ukernel_a_rowmajor;
          args.a_rs = pr.a_rs;
          args.a_cs = 1;
        }
        args.b_rs = pack_b ? nr : pr.b_rs;
        // A read as stored, row by row, over many row tiles (inference over a large block of
        // input rows): the next tile's rows are requested while the kernel works on this one,
        // which the hardware prefetchers, following eight strided rows, do not do in time
        // (predict of 784-32-32-10 10% faster, of 784-64-64-10 3%).
        const bool prefetch_a = !pack_a && pr.a_cs == 1 && mb > 4 * mr;
        // Points args at row tile t (rows ir..) and columns jr.. of this block: its A rows, B
        // panel and, on the last k block, its bias and Y.
        auto place = [&](int64_t ir, int64_t t, int64_t jr) {
          args.m = tile_rows(mb, mr, ir);
          args.n = std::min(nr, nb - jr);
          args.a = pack_a ? ap + t * mr * kb : a_block + ir * pr.a_rs;
          args.b = pack_b ? bp + jr * kb : b_block + jr;
          args.bias = (last && pr.ep.bias != nullptr) ? pr.ep.bias + jc + jr : nullptr;
          args.dact_y = (last && pr.ep.dact_y != nullptr)
                            ? pr.ep.dact_y + (ic + ir) * pr.ep.ldy + jc + jr : nullptr;
        };
        if (rows_done && last) {
          // Row panel by row panel, each handed over once all its columns are done (in the
          // thread's panel buffer when C is not needed, else in C).
          for (int64_t ir = 0, t = 0; ir < mb; ir += args.m, ++t) {
            float* c_rows = to_buffer ? panel : pr.c + (ic + ir) * pr.ldc;
            args.ldc = to_buffer ? n : pr.ldc;
            for (int64_t jr = 0; jr < nb; jr += nr) {
              place(ir, t, jr);
              args.c = c_rows + (to_buffer ? jc - j0 : jc) + jr;
              kernel(&args);
            }
            if (jc + nb == j1) pr.ep.rows_done(pr.ep.rows_ctx, ic + ir, args.m, c_rows, args.ldc);
          }
          args.ldc = pr.ldc;
          continue;
        }
        for (int64_t jr = 0; jr < nb; jr += nr) {
          for (int64_t ir = 0, t = 0; ir < mb; ir += args.m, ++t) {
            place(ir, t, jr);
            args.c = pr.c + (ic + ir) * pr.ldc + jc + jr;
            if (prefetch_a && jr == 0 && ir + args.m < mb) {
              for (int64_t i = ir + args.m; i < std::min(ir + args.m + mr, mb); ++i)
                prefetch_floats(a_block + i * pr.a_rs, kb);
            }
            kernel(&args);
          }
        }
      }
    }
  }
}

// k == 0 or alpha == 0: C = epilogue(beta·C).
void scale_c(const Problem& pr) {
  for (int64_t i = 0; i < pr.m; ++i) {
    float* c = pr.c + i * pr.ldc;
    for (int64_t j = 0; j < pr.n; ++j) {
      float x = pr.beta == 0.0f ? 0.0f : pr.beta * c[j];
      if (pr.ep.bias != nullptr) x += pr.ep.bias[j];
      c[j] = gemm::epilogue_value(x, static_cast<int>(pr.ep.act),
                                  pr.ep.dact_y ? pr.ep.dact_y + i * pr.ep.ldy + j : nullptr,
                                  static_cast<int>(pr.ep.dact));
    }
  }
}

// Work below which one thread is faster than forking (multiply-adds): a 64³ product takes about
// a microsecond on one core, comparable to an OpenMP fork/join.
constexpr double kMinWorkPerThread = 64.0 * 64.0 * 64.0;

// The products computed transposed (computed_transposed): C of kMinTransposedRows to
// kMaxTransposedRows rows and at least kMinTransposedCols columns, k at least kMinTransposedK.
// On AVX-512, 1 thread, against packing Wᵀ: 32×1024×1024 30% faster, 32×512×512 26%,
// 32×256×256 11%, 16×256×256 12%, 32×128×128 5%; 64 rows the same; 8 rows (a quarter of each
// tile's columns) 8% slower, k = 10 30% slower, 32×64×64 7% slower. On AVX2 (whose Wᵀ is packed
// by the portable code): 32×512×512 24% faster, 32×256×256 23%, 16×256×256 35%, 32×128×128 21%.
constexpr int64_t kMinTransposedRows = 16, kMaxTransposedRows = 32, kMinTransposedCols = 128,
                  kMinTransposedK = 64;
// The narrow products computed transposed (computed_narrow): C of at least this many rows.
constexpr int64_t kMinNarrowRows = 128;

void check(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("sgemm: ") + what);
}

// How a product is shared: nt threads, each a contiguous range of MR-row (or NR-column) tiles.
struct Split {
  int nt;
  bool split_m;
  int64_t tiles, step, extent;
};

Split plan_split(const KernelInfo& ki, const Problem& pr, int max_threads,
                 double min_work = kMinWorkPerThread) {
  const double work =
      static_cast<double>(pr.m) * static_cast<double>(pr.n) * static_cast<double>(pr.k);
  int nt = static_cast<int>(std::min<double>(max_threads, std::max(1.0, work / min_work)));
  // Split along whichever of M (in MR steps) or N (in NR steps) gives more, evener parts.
  const int64_t m_tiles = (pr.m + ki.mr - 1) / ki.mr;
  const int64_t n_tiles = (pr.n + ki.nr - 1) / ki.nr;
  Split sp;
  sp.split_m = m_tiles >= n_tiles || pr.ep.rows_done != nullptr;  // rows_done: whole rows
  sp.tiles = sp.split_m ? m_tiles : n_tiles;
  sp.step = sp.split_m ? ki.mr : ki.nr;
  sp.extent = sp.split_m ? pr.m : pr.n;
  sp.nt = static_cast<int>(std::min<int64_t>(nt, sp.tiles));
  return sp;
}

// A product whose op(B) is stored transposed and whose C has few rows (a Dense layer's input
// gradient dY·Wᵀ at a small batch) is computed transposed, T = op(B)ᵀ·op(A)ᵀ into scratch, then
// written to C by the ISA's transposing write-back: W is read in place, row by row, and only
// dYᵀ (m columns) is packed, instead of all of Wᵀ. Only where that write-back is bitwise the
// tile kernels' (one k block, or beta == 0), so the choice changes no result.
bool computed_transposed(const KernelInfo& ki, const Problem& pr) {
  return ki.store_trans != nullptr && pr.b_rs == 1 && pr.b_cs != 1 &&
         pr.m >= kMinTransposedRows && pr.m <= kMaxTransposedRows &&
         pr.n >= kMinTransposedCols &&
         pr.k >= kMinTransposedK && pr.ep.rows_done == nullptr &&
         (pr.beta == 0.0f || pr.k <= ki.kc);
}

// A tall product of at most half a tile's columns whose op(A) is stored transposed (the kernel
// gradient Xᵀ·dY of a Dense layer of up to 16 units on AVX-512) is computed transposed too:
// T = dYᵀ·X fills whole tiles, where C's own tiles would use half their columns (and take a
// load for every FMA instead of one for every two). 784×32×16 on AVX-512, one thread: 5.0 µs
// as C, 3.6 µs as T, 4.3 µs with T's write-back. Both operands are then read in place. Threads
// split it by C's rows (T's columns), so rows_done still gets whole rows. The same condition
// on the k blocks as above. Measured on AVX-512 only (32-column tiles).
bool computed_narrow(const KernelInfo& ki, const Problem& pr) {
  return ki.store_trans != nullptr && ki.nr >= 32 && 2 * pr.n <= ki.nr && pr.a_rs == 1 &&
         pr.a_cs != 1 && pr.b_cs == 1 && pr.m >= kMinNarrowRows &&
         (pr.beta == 0.0f || pr.k <= ki.kc);
}

// Rows [i0, i1) and columns [j0, j1) of C by the transposed product, on the calling thread,
// the rows then handed to rows_done if set (only with all columns: computed_narrow).
void gemm_transposed(const KernelInfo& ki, const Problem& pr, int64_t i0, int64_t i1,
                     int64_t j0, int64_t j1) {
  if (j0 >= j1 || i0 >= i1) return;
  Problem tp;  // T[j][i] = alpha·Σ_p op(B)(p, j0 + j)·op(A)(i0 + i, p)
  tp.m = j1 - j0;
  tp.n = i1 - i0;
  tp.k = pr.k;
  tp.alpha = pr.alpha;
  tp.beta = 0.0f;
  tp.a = pr.b + j0 * pr.b_cs;
  tp.a_rs = pr.b_cs;
  tp.a_cs = pr.b_rs;
  tp.b = pr.a + i0 * pr.a_rs;
  tp.b_rs = pr.a_cs;
  tp.b_cs = pr.a_rs;
  tp.ldc = round_up(tp.n, 16);
  tp.c = t_trans.get(tp.m * tp.ldc);
  gemm_block(ki, tp, 0, tp.m, 0, tp.n);
  gemm::StoreTransArgs w;
  w.m = i1 - i0;
  w.n = j1 - j0;
  w.t = tp.c;
  w.ldt = tp.ldc;
  w.c = pr.c + i0 * pr.ldc + j0;
  w.ldc = pr.ldc;
  w.beta = pr.beta;
  w.bias = pr.ep.bias != nullptr ? pr.ep.bias + j0 : nullptr;
  w.act = static_cast<int>(pr.ep.act);
  w.dact_y = pr.ep.dact_y != nullptr ? pr.ep.dact_y + i0 * pr.ep.ldy + j0 : nullptr;
  w.ldy = pr.ep.ldy;
  w.dact = static_cast<int>(pr.ep.dact);
  ki.store_trans(&w);
  if (pr.ep.rows_done != nullptr)
    pr.ep.rows_done(pr.ep.rows_ctx, i0, i1 - i0, pr.c + i0 * pr.ldc, pr.ldc);
}

// The whole product on the calling thread.
void gemm_whole(const KernelInfo& ki, const Problem& pr) {
  if (computed_transposed(ki, pr) || computed_narrow(ki, pr)) {
    gemm_transposed(ki, pr, 0, pr.m, 0, pr.n);
  } else {
    gemm_block(ki, pr, 0, pr.m, 0, pr.n);
  }
}

// Thread t's share of the product under `sp` (nothing when t >= sp.nt). With `shared`, all
// sp.nt threads take part (row split only).
void run_share(const KernelInfo& ki, const Problem& pr, const Split& sp, int t,
               const SharedB* shared = nullptr) {
  if (t >= sp.nt) return;
  if (computed_transposed(ki, pr)) {  // columns, in whole vectors of the write-back
    const int64_t vecs = (pr.n + 15) / 16;
    gemm_transposed(ki, pr, 0, pr.m, std::min(vecs * t / sp.nt * 16, pr.n),
                    std::min(vecs * (t + 1) / sp.nt * 16, pr.n));
    return;
  }
  const int64_t lo = std::min(sp.tiles * t / sp.nt * sp.step, sp.extent);
  const int64_t hi = std::min(sp.tiles * (t + 1) / sp.nt * sp.step, sp.extent);
  if (computed_narrow(ki, pr)) {  // (split by rows: m_tiles >= n_tiles, as 2n <= nr)
    gemm_transposed(ki, pr, lo, hi, 0, pr.n);
    return;
  }
  if (shared != nullptr) {
    gemm_block(ki, pr, lo, hi, 0, pr.n, shared);
    return;
  }
  if (lo >= hi) return;
  if (sp.split_m) {
    gemm_block(ki, pr, lo, hi, 0, pr.n);
  } else {
    gemm_block(ki, pr, 0, pr.m, lo, hi);
  }
}

// Validates the arguments and fills *pr; false when there is nothing to compute.
bool make_problem(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                  int64_t ldc, const GemmEpilogue& epilogue, Problem* pr) {
  check(m >= 0 && n >= 0 && k >= 0, "m, n and k must be >= 0");
  check(ldc >= std::max<int64_t>(n, 1), "ldc must be >= max(n, 1)");
  check(lda >= std::max<int64_t>(trans_a ? m : k, 1), "lda too small for op(A)");
  check(ldb >= std::max<int64_t>(trans_b ? k : n, 1), "ldb too small for op(B)");
  check(epilogue.dact_y == nullptr || epilogue.ldy >= std::max<int64_t>(n, 1),
        "ldy must be >= max(n, 1)");
  check(epilogue.dact_y == nullptr || epilogue.act == EpilogueAct::kNone,
        "the backward epilogue (dact_y) excludes a forward activation");
  if (m == 0 || n == 0) return false;
  pr->m = m;
  pr->n = n;
  pr->k = k;
  pr->alpha = alpha;
  pr->beta = beta;
  pr->a = a;
  pr->a_rs = trans_a ? 1 : lda;
  pr->a_cs = trans_a ? lda : 1;
  pr->b = b;
  pr->b_rs = trans_b ? 1 : ldb;
  pr->b_cs = trans_b ? ldb : 1;
  pr->c = c;
  pr->ldc = ldc;
  pr->ep = epilogue;
  return true;
}

}  // namespace

int64_t sgemm_k_block() { return gemm::active_kernel_info()->kc; }

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const GemmEpilogue& epilogue) {
  Problem pr;
  if (!make_problem(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue,
                    &pr))
    return;
  if (k == 0 || alpha == 0.0f) {
    scale_c(pr);
    if (epilogue.rows_done != nullptr) epilogue.rows_done(epilogue.rows_ctx, 0, m, c, ldc);
    return;
  }
  const KernelInfo& ki = *gemm::active_kernel_info();
  const Split sp = plan_split(ki, pr, get_num_threads());
  if (sp.nt <= 1) {
    gemm_whole(ki, pr);
    return;
  }
  // Row shares of a product whose B is worth packing pack it once, jointly, instead of each
  // thread packing all of it.
  const bool share_b = !computed_transposed(ki, pr) && !computed_narrow(ki, pr) && sp.split_m &&
                       pr.n > 4 * ki.nr && pr.k > ki.kc / 4 &&
                       (pr.b_cs != 1 || pr.m / sp.nt > 4 * ki.mr);
  float* shared_buf = share_b ? t_pack_b.get(packed_b_floats(ki, pr, pr.n)) : nullptr;
#pragma omp parallel num_threads(sp.nt)
  {
    const int t = omp_get_thread_num();
    if (omp_get_num_threads() != sp.nt) {  // fewer threads granted (nested region): one does all
      if (t == 0) gemm_whole(ki, pr);
    } else if (share_b) {
      const SharedB shared{shared_buf, t, sp.nt};
      run_share(ki, pr, sp, t, &shared);
    } else {
      run_share(ki, pr, sp, t);
    }
  }
}

void sgemm_share(int ith, int nth, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float beta, float* c, int64_t ldc, const GemmEpilogue& epilogue,
                 double min_work_per_thread) {
  Problem pr;
  if (!make_problem(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue,
                    &pr))
    return;
  if (k == 0 || alpha == 0.0f) {
    if (ith != 0) return;
    scale_c(pr);
    if (epilogue.rows_done != nullptr) epilogue.rows_done(epilogue.rows_ctx, 0, m, c, ldc);
    return;
  }
  const KernelInfo& ki = *gemm::active_kernel_info();
  run_share(ki, pr,
            plan_split(ki, pr, nth,
                       min_work_per_thread > 0.0 ? min_work_per_thread : kMinWorkPerThread),
            ith);
}

}  // namespace densitron
