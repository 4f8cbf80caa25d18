"""End-to-end recurrent training benchmark: one epoch of LSTM(64) -> Dense(10, softmax) on
10,000 × 28 × 28 random float32 sequences (28 steps of 28 features), batch 128, RMSprop and
sparse categorical cross-entropy, verbose=0, in densitron, Keras 3 (on the backend KERAS_BACKEND
names, JAX by default) and PyTorch's nn.LSTM (an idiomatic eager loop with
torch.optim.RMSprop(lr=1e-3, alpha=0.9, eps=1e-7)) when importable. `--cell gru` runs GRU(64)
instead (Keras's reset_after GRU, PyTorch's nn.GRU, the same formula).

Each framework runs in its own worker process (this script with --worker NAME), so their thread
pools share no process (with --threads 1, XLA's Eigen pool is turned off for Keras on JAX;
otherwise it takes the cores it finds). A first epoch (compilation, JIT tracing) is run untimed; then the
parent interleaves the timed epochs (one of each framework in turn, `--repeats` times) and
prints each framework's median and its ratio to densitron's.

    python bench/fit_rnn.py [--repeats 3] [--rows 10000] [--units 64] [--threads 2]
                            [--cell lstm|gru]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

STEPS, FEATURES, CLASSES, BATCH = 28, 28, 10, 128
CELL = ["LSTM"]  # --cell: LSTM or GRU (Keras's reset_after, PyTorch's nn.GRU)


def make_data(rows, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, STEPS, FEATURES), dtype=np.float32)
    return x, rng.integers(0, CLASSES, rows)


class DensitronPeer:
    def __init__(self, x, y, units, threads):
        import densitron

        densitron.set_num_threads(threads)
        inp = densitron.Input((STEPS, FEATURES))
        out = densitron.layers.Dense(CLASSES, activation="softmax")(
            getattr(densitron.layers, CELL[0])(units)(inp))
        self.model = densitron.Model(inp, out)
        self.model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        self.x, self.y = x, y

    def epoch(self):
        self.model.fit(self.x, self.y, batch_size=BATCH, epochs=1, verbose=0)


class KerasPeer:
    def __init__(self, x, y, units, threads):
        if threads == 1:  # (XLA's CPU pool otherwise takes every core)
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       " --xla_cpu_multi_thread_eigen=false"
                                       " intra_op_parallelism_threads=1").strip()
        import keras

        inp = keras.Input((STEPS, FEATURES))
        out = keras.layers.Dense(CLASSES, activation="softmax")(
            getattr(keras.layers, CELL[0])(units)(inp))
        self.model = keras.Model(inp, out)
        self.model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
        self.x, self.y = x, y

    def epoch(self):
        self.model.fit(self.x, self.y, batch_size=BATCH, epochs=1, verbose=0)


class TorchPeer:
    def __init__(self, x, y, units, threads):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = getattr(torch.nn, CELL[0])(FEATURES, units, batch_first=True)
                self.dense = torch.nn.Linear(units, CLASSES)

            def forward(self, seq):
                _, state = self.rnn(seq)
                h = state[0] if isinstance(state, tuple) else state  # (LSTM's (h, c))
                return self.dense(h[-1])

        self.net = Net()
        self.opt = torch.optim.RMSprop(self.net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        self.loss = torch.nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(self):
        perm = self.torch.randperm(len(self.x))
        for start in range(0, len(self.x), BATCH):
            rows = perm[start:start + BATCH]
            self.opt.zero_grad()
            self.loss(self.net(self.x[rows]), self.y[rows]).backward()
            self.opt.step()


PEERS = {"densitron": DensitronPeer, "keras": KerasPeer, "torch": TorchPeer}


def worker(name, rows, units, threads):
    """Builds the peer, runs its untimed first epoch, then times one epoch a line read."""
    x, y = make_data(rows)
    peer = PEERS[name](x, y, units, threads)
    peer.epoch()
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        peer.epoch()
        print(time.perf_counter() - start, flush=True)


def available(name):
    module = {"densitron": "densitron", "keras": "keras", "torch": "torch"}[name]
    check = subprocess.run([sys.executable, "-c", f"import {module}"], check=False,
                           capture_output=True)
    return check.returncode == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--worker")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")  # (the workers' and the import check's)
    CELL[0] = args.cell.upper()
    if args.worker:
        worker(args.worker, args.rows, args.units, args.threads)
        return
    names = [n for n in PEERS if available(n)]
    procs = {}
    for name in names:
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--rows", str(args.rows), "--units",
             str(args.units), "--threads", str(args.threads), "--cell", args.cell],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if procs[name].stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {name} worker failed to start")
    times = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            procs[name].stdin.write("epoch\n")
            procs[name].stdin.flush()
            times[name].append(float(procs[name].stdout.readline()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"{CELL[0]}({args.units}) on {args.rows} x {STEPS} x {FEATURES}, batch {BATCH}, "
          f"{args.threads} threads; one epoch, median of {args.repeats}:")
    base = statistics.median(times["densitron"])
    for name in names:
        med = statistics.median(times[name])
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:<10} {med:7.2f} s  ({runs})  densitron's time / {name}'s: "
              f"{base / med:.2f}")


if __name__ == "__main__":
    main()
