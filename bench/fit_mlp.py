"""End-to-end training benchmark: one epoch of the seed model (784-64-64-10, relu, softmax,
RMSprop, categorical cross-entropy, accuracy, verbose=0) on 60,000×784 float32 synthetic data,
and `predict` on all rows, for densitron next to the same training step in plain NumPy
(always), PyTorch (an idiomatic eager loop with torch.optim.RMSprop(lr=1e-3, alpha=0.9,
eps=1e-7)) and Keras 3 (on whichever backend is installed) when importable. Runs are interleaved
and repeated; medians and ratios are printed, then each library's `import` time (in fresh
interpreters) and densitron's peak RSS growth in fit. `--hidden` sets other widths and depths,
`--optimizer adam` trains every framework with Adam instead (Keras's Adam; torch.optim.Adam
with eps=1e-7).

Each framework runs in its own worker process (this script with --worker NAME), so the thread
pools of one (OpenBLAS, torch's OpenMP, XLA's Eigen pool) share no process with densitron's
OpenMP threads. The parent still interleaves the runs in time (per batch size, per repeat, one
timed epoch of each framework in turn, then `predict` the same way), sending one command a line
on the worker's stdin; the worker times only the epoch or predict call and replies with the
seconds (of the second of two calls in a row: see timed). --same-process keeps everything in
one process instead, for comparison. Every process
fixes glibc's malloc thresholds first (steady_malloc), so a peer's speed does not depend on the
order of runs.

Peers: `pip install torch==2.13.0` (a CPU build that lies on this machine's disk) and
`pip install keras jax` (Keras on JAX). Peak FLOP rate: `--peak-gflops`, or it is read from the
`fma_peak` program if a C++ benchmark build exists (cmake -DDENSITRON_BUILD_BENCH=ON). With
the peak known, a last table gives each ratio's ceiling: the ratio an engine running the
step's FLOPs at 100% of the peak would reach against the same peer time. Where a target ratio
exceeds its ceiling (wide layers, where the peers are GEMM-bound too), no engine can meet it.

    python bench/fit_mlp.py [--batch-sizes 32 128 512] [--repeats 3] [--rows 60000] [--threads 2]
                            [--hidden 64 64] [--optimizer rmsprop|adam] [--same-process]
"""

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HIDDEN = [64, 64]  # --hidden: the seed model's; other widths and depths for comparison
OPTIMIZER = ["rmsprop"]  # --optimizer: the seed model's, or adam (Keras's default choice)
TORCH_FLUSH = [False]  # --torch-flush-denormal


def layer_sizes():
    widths = [784, *HIDDEN, 10]
    return list(zip(widths[:-1], widths[1:]))


def flops_per_sample():
    layers = layer_sizes()
    fwd = sum(2 * i * o for i, o in layers)
    dw = fwd
    dx = sum(2 * i * o for i, o in layers[1:])  # no gradient into the input
    return fwd + dw + dx, fwd


def make_data(rows, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, rows)]
    return x, y


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for i, o in layer_sizes():
        limit = np.sqrt(6.0 / (i + o))
        params += [rng.uniform(-limit, limit, (i, o)).astype(np.float32), np.zeros(o, np.float32)]
    return params


# --- peers ---------------------------------------------------------------------------------
class NumpyPeer:
    name = "numpy"

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.params = init_params()
        self.slots = [np.zeros_like(p) for p in self.params]
        self.moments = [np.zeros_like(p) for p in self.params]  # Adam's m (slots: v)
        self.steps = 0
        self.rng = np.random.default_rng(1)

    def epoch(self, batch):
        x, y = self.x, self.y
        ws, bs = self.params[0::2], self.params[1::2]
        perm = self.rng.permutation(len(x))
        lr, rho, eps = np.float32(1e-3), np.float32(0.9), np.float32(1e-7)
        for s in range(0, len(x), batch):
            idx = perm[s:s + batch]
            xb, yb = x[idx], y[idx]
            hs = [xb]
            for w, b in zip(ws[:-1], bs[:-1]):
                hs.append(np.maximum(hs[-1] @ w + b, 0))
            z = hs[-1] @ ws[-1] + bs[-1]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            dz = (p - yb) / np.float32(len(idx))
            grads = [None] * len(self.params)
            for k in range(len(ws) - 1, -1, -1):
                grads[2 * k], grads[2 * k + 1] = hs[k].T @ dz, dz.sum(0)
                if k > 0:
                    dz = (dz @ ws[k].T) * (hs[k] > 0)
            self.steps += 1
            if OPTIMIZER[0] == "adam":  # Keras's Adam
                b1, b2, t = 0.9, 0.999, self.steps
                alpha = np.float32(1e-3 * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
                for w, g, m, v in zip(self.params, grads, self.moments, self.slots):
                    m += (g - m) * np.float32(1 - b1)
                    v += (g * g - v) * np.float32(1 - b2)
                    w -= alpha * m / (np.sqrt(v) + eps)
                continue
            for w, g, v in zip(self.params, grads, self.slots):
                v *= rho
                v += (1 - rho) * g * g
                w -= lr * g / np.sqrt(v + eps)

    def predict(self):
        ws, bs = self.params[0::2], self.params[1::2]
        out = []
        for s in range(0, len(self.x), 32):
            h = self.x[s:s + 32]
            for w, b in zip(ws[:-1], bs[:-1]):
                h = np.maximum(h @ w + b, 0)
            z = h @ ws[-1] + bs[-1]
            e = np.exp(z - z.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(out)


class DensitronPeer:
    name = "densitron"

    def __init__(self, x, y):
        from densitron.layers import Dense, Input
        from densitron.models import Model

        inputs = Input(shape=(784,))
        h = inputs
        for units in HIDDEN:
            h = Dense(units, activation="relu")(h)
        self.model = Model(inputs, Dense(10, activation="softmax")(h))
        self.model.compile(optimizer=OPTIMIZER[0], loss="categorical_crossentropy",
                           metrics=["accuracy"])
        self.x, self.y = x, y

    def epoch(self, batch):
        self.model.fit(self.x, self.y, batch_size=batch, epochs=1, verbose=0)

    def predict(self):
        return self.model.predict(self.x, batch_size=32, verbose=0)


class TorchPeer:
    name = "pytorch"

    def __init__(self, x, y, threads):
        import torch

        torch.set_num_threads(threads)
        if TORCH_FLUSH[0]:
            torch.set_flush_denormal(True)
        self.torch = torch
        mods = []
        for i, o in layer_sizes()[:-1]:
            mods += [torch.nn.Linear(i, o), torch.nn.ReLU()]
        self.model = torch.nn.Sequential(*mods, torch.nn.Linear(*layer_sizes()[-1]))
        if OPTIMIZER[0] == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                        eps=1e-7)
        else:
            self.opt = torch.optim.RMSprop(self.model.parameters(), lr=1e-3, alpha=0.9,
                                           eps=1e-7)
        self.loss = torch.nn.CrossEntropyLoss()
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y.argmax(1).astype(np.int64))

    def epoch(self, batch):
        torch = self.torch
        perm = torch.randperm(len(self.x))
        correct = 0
        for s in range(0, len(self.x), batch):
            idx = perm[s:s + batch]
            xb, yb = self.x[idx], self.y[idx]
            self.opt.zero_grad()
            logits = self.model(xb)
            loss = self.loss(logits, yb)
            loss.backward()
            self.opt.step()
            correct += (logits.argmax(1) == yb).sum()  # the accuracy metric, as Keras tracks it

    def predict(self):
        torch = self.torch
        with torch.inference_mode():
            return torch.cat([torch.softmax(self.model(self.x[s:s + 32]), 1)
                              for s in range(0, len(self.x), 32)]).numpy()


class KerasPeer:
    name = "keras"

    def __init__(self, x, y):
        import keras

        self.backend = keras.backend.backend()
        inputs = keras.Input(shape=(784,))
        h = inputs
        for units in HIDDEN:
            h = keras.layers.Dense(units, activation="relu")(h)
        self.model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
        self.model.compile(optimizer=OPTIMIZER[0], loss="categorical_crossentropy",
                           metrics=["accuracy"])
        self.x, self.y = x, y
        self.model.fit(x[:256], y[:256], batch_size=32, epochs=1, verbose=0)  # compile/trace

    def epoch(self, batch):
        self.model.fit(self.x, self.y, batch_size=batch, epochs=1, verbose=0)

    def predict(self):
        return self.model.predict(self.x, batch_size=32, verbose=0)


def measure_peak(args):
    """The best of three runs of the fma_peak program (the machine is shared: a busy neighbour
    only ever lowers it), measured before any peer starts its thread pool."""
    if args.peak_gflops:
        return args.peak_gflops
    here = os.path.dirname(os.path.abspath(__file__))
    for exe in sorted(glob.glob(os.path.join(here, "..", "build", "*", "fma_peak"))):
        best = []
        for _ in range(3):
            try:
                out = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                                     check=False).stdout
            except (OSError, subprocess.SubprocessError):
                break
            best += [float(v) for v in re.findall(r"([0-9.]+)\s*GFLOP/s", out)]
        if best:
            return max(best)
    return None


def memory_probe(rows, batch, dtype):
    """Peak RSS growth of one epoch of fit beyond the arrays themselves, in a fresh process:
    the peak is reset (Linux clear_refs) once the data exist, then read after fit."""
    code = f"""
import numpy as np, densitron
from densitron.layers import Dense, Input
from densitron.models import Model
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
rng = np.random.default_rng(0)
x = rng.random(({rows}, 784), dtype=np.float32).astype('{dtype}')
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, {rows})]
i = Input(shape=(784,)); h = Dense(64, activation='relu')(i); h = Dense(64, activation='relu')(h)
m = Model(i, Dense(10, activation='softmax')(h))
m.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
m.predict(x[:64].astype('float32'), verbose=0)
before = status('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')
m.fit(x, y, batch_size={batch}, epochs=2, verbose=0)
print(status('VmHWM') - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# --- running the peers ----------------------------------------------------------------------
MISSING = {"pytorch": "pytorch: not installed (pip install torch==2.13.0)",
           "keras": "keras: not installed (pip install keras jax)"}


def make_peer(name, x, y, threads):
    """Build one framework's model and warm it up; ImportError if the framework is missing."""
    if name == "densitron":
        import densitron

        densitron.set_num_threads(threads)
        peer = DensitronPeer(x, y)
    elif name == "numpy":
        peer = NumpyPeer(x, y)
    elif name == "pytorch":
        peer = TorchPeer(x, y, threads)
    else:
        peer = KerasPeer(x, y)
    if name != "numpy":
        peer.epoch(4096)  # warm-up: caches, thread pools, lazy compilation
    return peer


def peer_info(peer):
    """What the header reports about a peer, as plain data a worker can send as JSON."""
    if peer.name == "densitron":
        import densitron

        cpu = densitron.cpu_info()
        return {"version": densitron.__version__, "isa": cpu["isa"],
                "num_threads": cpu["num_threads"]}
    if peer.name == "keras":
        return {"backend": peer.backend}
    return {}


def timed(run, *args):
    """Seconds of run(*args), the second of two calls in a row (the first untimed).

    The parent sleeps before each run so that the previous peer's spinning threads go idle,
    and on this VM two cores idle that long come back slowly: for some 50 ms after 0.1-0.3 s
    idle, a two-thread run goes at about one thread's speed (predict of 60,000 rows after
    0.3 s idle: 0.022-0.046 s; after one untimed predict, 0.017-0.019 s; one thread is not
    slowed). That ramp would land in the timed run of whichever peer runs next, as a share
    that grows the faster the peer is; after one untimed call of the same kind every peer is
    timed in the steady state."""
    run(*args)
    t0 = time.perf_counter()
    run(*args)
    return time.perf_counter() - t0


class InProcess:
    """A peer in this process (--same-process), timed the way a worker times it."""

    def __init__(self, name, data, threads):
        self.name = name
        self.peer = make_peer(name, *data, threads)
        self.info = peer_info(self.peer)

    def epoch(self, batch):
        return timed(self.peer.epoch, batch)

    def predict(self):
        return timed(self.peer.predict)

    def close(self):
        pass


def worker_env(name, threads):
    env = dict(os.environ)
    if name == "numpy":  # OpenBLAS sizes its pool when numpy is imported: only the env reaches it
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    # Keras/JAX keeps its defaults: no XLA_FLAGS, as we know of no flag for an N-thread pool.
    return env


class Worker:
    """A peer in its own process, driven one command a line: 'epoch B', 'predict', 'quit'.

    The worker replies 'ready {info}' (or 'missing {error}') once built and warmed up, then the
    seconds of each timed run. Its stderr is ours, so its tracebacks show up here."""

    def __init__(self, name, args):
        self.name = name
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
               "--rows", str(args.rows), "--threads", str(args.threads),
               "--hidden", *map(str, args.hidden), "--optimizer", args.optimizer]
        if args.torch_flush_denormal:
            cmd.append("--torch-flush-denormal")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=worker_env(name, args.threads))
        status, _, rest = self._reply().partition(" ")
        if status == "missing":
            self.close()
            raise ImportError(rest)
        self.info = json.loads(rest)

    def epoch(self, batch):
        return self._ask(f"epoch {batch}")

    def predict(self):
        return self._ask("predict")

    def close(self):
        if self.proc.poll() is None:
            self._send("quit")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _ask(self, command):
        self._send(command)
        return float(self._reply())

    def _send(self, command):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; _reply reports it

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:  # EOF: the worker exited instead of answering
            code = self.proc.wait()
            raise RuntimeError(f"{self.name} worker exited with code {code} "
                               "(its error, if any, is above)")
        return line.strip()


def serve(args):
    """The worker side of Worker: build one peer, then time runs on command until 'quit' (or
    EOF, so a worker never outlives its parent by more than the run in progress)."""
    # Replies go to a private copy of stdout; stdout itself becomes stderr so that whatever a
    # framework prints cannot be mistaken for a reply.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        peer = make_peer(args.worker, *make_data(args.rows), args.threads)
    except ImportError as e:
        print(f"missing {e}".replace("\n", " "), file=replies)
        return
    print("ready " + json.dumps(peer_info(peer)), file=replies)
    while line := sys.stdin.readline():
        command, *operands = line.split()
        if command == "quit":
            break
        if command == "epoch":
            seconds = timed(peer.epoch, int(operands[0]))
        elif command == "predict":
            seconds = timed(peer.predict)
        else:
            raise ValueError(f"unknown command {line!r}")
        print(repr(seconds), file=replies)


def start_peers(args):
    """densitron first, then the requested peers in the usual order; missing ones dropped."""
    data = make_data(args.rows) if args.same_process else None  # one copy, shared in-process
    peers = []
    for name in ["densitron"] + [n for n in ("numpy", "pytorch", "keras") if n in args.peers]:
        try:
            peers.append(InProcess(name, data, args.threads) if args.same_process
                         else Worker(name, args))
        except ImportError:
            if name not in MISSING:
                raise
            print(MISSING[name])
    return peers


def run_interleaved(peers, args):
    """Median seconds per peer: of an epoch per batch size, and of predict."""
    results = {}
    for batch in args.batch_sizes:
        times = {p.name: [] for p in peers}
        for _ in range(args.repeats):
            for p in peers:
                time.sleep(0.1)  # let the previous library's spinning worker threads go idle
                times[p.name].append(p.epoch(batch))
        results[batch] = {k: statistics.median(v) for k, v in times.items()}
    pred = {p.name: [] for p in peers}
    for _ in range(args.repeats):
        for p in peers:
            time.sleep(0.1)
            pred[p.name].append(p.predict())
    return results, {k: statistics.median(v) for k, v in pred.items()}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", nargs="+", default=["numpy", "pytorch", "keras"],
                        choices=["numpy", "pytorch", "keras"])
    parser.add_argument("--peak-gflops", type=float, default=None)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-import-time", action="store_true")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64],
                        help="hidden layer widths (default: the seed model's 64 64)")
    parser.add_argument("--optimizer", choices=["rmsprop", "adam"], default="rmsprop",
                        help="every framework's optimizer (default: the seed model's RMSprop;"
                             " adam: Keras's Adam, torch.optim.Adam with eps=1e-7)")
    parser.add_argument("--torch-flush-denormal", action="store_true",
                        help="PyTorch treats subnormals as zero (torch.set_flush_denormal), as"
                             " densitron's and TensorFlow's threads do; off by default, as in"
                             " an idiomatic PyTorch script")
    parser.add_argument("--same-process", action="store_true",
                        help="run all frameworks in this process (the old way, for comparison)")
    parser.add_argument("--worker", choices=["densitron", "numpy", "pytorch", "keras"],
                        help=argparse.SUPPRESS)  # internal: serve one framework to the parent
    return parser.parse_args()


def steady_malloc():
    """Fixes glibc's mmap and trim thresholds in this process (a no-op elsewhere).

    By default glibc raises its mmap threshold as mmapped blocks are freed, so whether a step's
    temporaries of a few hundred KB come from the heap or from fresh, page-faulted mmaps each
    step depends on what ran before: the NumPy step at batch 128 took 0.17 s an epoch on
    784-128-10 when run first and 0.32-0.36 s after a batch-32 run. Fixed thresholds keep every
    framework's temporaries on the heap, each at its best whatever the order of runs
    (densitron allocates nothing per step)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 64 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):
        pass


def main():
    args = parse_args()
    HIDDEN[:] = args.hidden
    OPTIMIZER[0] = args.optimizer
    TORCH_FLUSH[0] = args.torch_flush_denormal
    steady_malloc()
    if args.worker:
        serve(args)
        return

    peak = measure_peak(args)
    peers = start_peers(args)
    try:
        report(peers, args, peak)
    finally:
        for p in peers:
            p.close()


def report(peers, args, peak):
    info = peers[0].info
    where = "all in one process" if args.same_process else "one process per framework"
    print(f"densitron {info['version']}: ISA {info['isa']}, {info['num_threads']} threads; "
          f"{args.rows}x784 float32, layers 784-{'-'.join(map(str, HIDDEN))}-10, "
          f"{OPTIMIZER[0]}, "
          f"median of {args.repeats} interleaved runs ({where})")
    for p in peers:
        if p.name == "keras":
            print(f"keras backend: {p.info['backend']}")
    train_flops, fwd_flops = flops_per_sample()
    results, pred = run_interleaved(peers, args)

    names = [p.name for p in peers]
    print()
    print(f"{'batch':>6} " + " ".join(f"{n + ' s':>12}" for n in names)
          + " " + " ".join(f"{n + '/densitron':>18}" for n in names[1:])
          + f" {'samples/s':>11} {'GFLOP/s':>8}" + (f" {'%peak':>6}" if peak else ""))
    for batch, r in results.items():
        d = r["densitron"]
        gflops = train_flops * args.rows / d / 1e9
        line = f"{batch:>6} " + " ".join(f"{r[n]:>12.4f}" for n in names)
        line += " " + " ".join(f"{r[n] / d:>18.2f}" for n in names[1:])
        line += f" {args.rows / d:>11.0f} {gflops:>8.1f}"
        if peak:
            line += f" {100 * gflops / peak:>5.1f}%"
        print(line)
    d = pred["densitron"]
    line = f"{'pred':>6} " + " ".join(f"{pred[n]:>12.4f}" for n in names)
    line += " " + " ".join(f"{pred[n] / d:>18.2f}" for n in names[1:])
    line += f" {args.rows / d:>11.0f} {fwd_flops * args.rows / d / 1e9:>8.1f}"
    print(line)
    print(f"\ntraining step: {train_flops * args.rows / 1e9:.2f} GFLOP per epoch"
          + (f"; FMA peak {peak:.0f} GFLOP/s" if peak else "; FMA peak unknown (--peak-gflops)"))
    if peak and len(names) > 1:
        # The hardware's bound on each ratio: what an engine doing nothing but FMAs at the
        # peak rate would reach against the same peer time.
        print("\nceiling: the peer/densitron ratio at 100% of the FMA peak (peer s / floor s)")
        print(f"{'batch':>6} {'floor s':>12} " + " ".join(f"{n + '/floor':>18}" for n in names[1:]))
        floors = [(batch, train_flops * args.rows / 1e9 / peak, r) for batch, r in results.items()]
        floors.append(("pred", fwd_flops * args.rows / 1e9 / peak, pred))
        for batch, floor, r in floors:
            print(f"{batch:>6} {floor:>12.4f} " + " ".join(f"{r[n] / floor:>18.2f}" for n in names[1:]))
    if not args.no_import_time:
        import_times(names)
    if not args.no_memory:
        for dtype in ("float32", "float64"):
            grow = memory_probe(args.rows, args.batch_sizes[0], dtype)
            print(f"peak RSS growth during 2 epochs of fit on {dtype} x "
                  f"({args.rows * 784 * np.dtype(dtype).itemsize / 1e6:.0f} MB): {grow:.1f} MB")


IMPORTS = {"densitron": "densitron", "numpy": "numpy", "pytorch": "torch", "keras": "keras"}


def import_times(names, runs=7):
    """`import X` timed inside fresh interpreters (interleaved, median of `runs`): the import
    statement alone, without the interpreter's own start-up and site hooks."""
    code = ("import time; t = time.perf_counter(); import {}; "
            "print(time.perf_counter() - t)")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (stale bytecode would be compiled each time)
    times = {n: [] for n in names}
    for _ in range(runs):
        for n in names:
            out = subprocess.run([sys.executable, "-c", code.format(IMPORTS[n])], env=env,
                                 capture_output=True, text=True, check=False)
            if out.returncode == 0:
                times[n].append(float(out.stdout.strip().splitlines()[-1]))
    print(f"\nimport time, median of {runs} fresh interpreters: " + ", ".join(
        f"{IMPORTS[n]} {statistics.median(t):.3f} s" for n, t in times.items() if t))


if __name__ == "__main__":
    main()
