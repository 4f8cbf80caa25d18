"""densitron.ops.matmul next to numpy.matmul (OpenBLAS) on the same shapes, in one run.

Squares 64..2048 and the seed model's Dense training products (m×k×n) at batch 32 and 256:
forward X·W, dW = Xᵀ·dY (X passed as stored, transpose_a) and dX = dY·Wᵀ (W passed as stored,
transpose_b). Both sides write into a preallocated `out`; runs are interleaved and repeated,
and the medians are compared.

This machine's environment pins OpenBLAS to its Haswell kernels (OPENBLAS_CORETYPE,
OPENBLAS_L2_SIZE), which slows a current NumPy. Compare against NumPy at its best with both
unset, in that one command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_vs_numpy.py

`pip install threadpoolctl` to report the OpenBLAS kernel and to limit NumPy's threads.
"""

import argparse
import os
import statistics
import time

import numpy as np

import densitron

try:
    import threadpoolctl
except ImportError:  # the comparison still runs, with NumPy's default thread count
    threadpoolctl = None


def shapes(quick):
    out = []
    for d in (64, 128, 256, 512, 1024) + (() if quick else (2048,)):
        out.append((f"square {d}", d, d, d, False, False))
    for bsz in (32, 256):
        out += [
            (f"fwd  X·W   {bsz}x784x64", bsz, 784, 64, False, False),
            (f"dW   Xᵀ·dY 784x{bsz}x64", 784, bsz, 64, True, False),
            (f"dX   dY·Wᵀ {bsz}x64x784", bsz, 64, 784, False, True),
            (f"fwd  X·W   {bsz}x64x64", bsz, 64, 64, False, False),
            (f"dW   Xᵀ·dY 64x{bsz}x64", 64, bsz, 64, True, False),
            (f"dX   dY·Wᵀ {bsz}x64x64", bsz, 64, 64, False, True),
            (f"fwd  X·W   {bsz}x64x10", bsz, 64, 10, False, False),
        ]
    return out


def time_calls(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def settled_time(fn, calls):
    # Both libraries keep their worker threads spinning for a while after a call (OpenBLAS for
    # about 0.1 s); on two cores those spinners would steal the other side's cores. Let them go
    # idle, warm this side up, then time it.
    time.sleep(SETTLE_SECONDS)
    time_calls(fn, min(calls, 20))
    return time_calls(fn, calls)


SETTLE_SECONDS = 0.15


def measure(name, m, k, n, ta, tb, repeats, budget):
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(np.float32)
    out_d = np.empty((m, n), np.float32)
    out_n = np.empty((m, n), np.float32)
    a_op = a.T if ta else a
    b_op = b.T if tb else b

    def run_densitron():
        densitron.ops.matmul(a, b, ta, tb, out=out_d)

    def run_numpy():
        np.matmul(a_op, b_op, out=out_n)

    run_densitron()
    run_numpy()
    np.testing.assert_allclose(out_d, out_n, rtol=1e-3, atol=1e-3 * np.sqrt(k))
    est = min(time_calls(run_densitron, 3), time_calls(run_numpy, 3))
    calls = max(1, int(budget / max(est, 1e-7)))
    td, tn = [], []
    for _ in range(repeats):  # interleaved so both sides see the same machine state
        td.append(settled_time(run_densitron, calls))
        tn.append(settled_time(run_numpy, calls))
    flops = 2.0 * m * n * k
    return flops / statistics.median(td) * 1e-9, flops / statistics.median(tn) * 1e-9


def numpy_threads(n):
    if threadpoolctl is None:
        return None
    return threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per timed batch")
    parser.add_argument("--quick", action="store_true", help="skip 2048³")
    args = parser.parse_args()

    print(f"densitron.cpu_info(): {densitron.cpu_info()}")
    coretype = os.environ.get("OPENBLAS_CORETYPE", "<unset>")
    l2_size = os.environ.get("OPENBLAS_L2_SIZE", "<unset>")
    print(f"OPENBLAS_CORETYPE={coretype} OPENBLAS_L2_SIZE={l2_size}")
    if threadpoolctl is not None:
        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                print(
                    f"numpy BLAS: {info.get('internal_api')} {info.get('version')} "
                    f"kernel={info.get('architecture')} threads={info.get('num_threads')}"
                )
    else:
        print("threadpoolctl not installed: OpenBLAS kernel unknown, NumPy threads not limited")

    saved = densitron.get_num_threads()
    for threads in args.threads:
        densitron.set_num_threads(threads)
        limiter = numpy_threads(threads)
        print(f"\nthreads={threads}")
        print(f"{'shape (m×k×n)':<26}{'densitron':>12}{'numpy':>12}{'ratio':>8}   GFLOP/s")
        try:
            for name, m, k, n, ta, tb in shapes(args.quick):
                gd, gn = measure(name, m, k, n, ta, tb, args.repeats, args.budget)
                print(f"{name:<26}{gd:>12.1f}{gn:>12.1f}{gd / gn:>8.2f}", flush=True)
        finally:
            if limiter is not None:
                limiter.restore_original_limits()
    densitron.set_num_threads(saved)


if __name__ == "__main__":
    main()
