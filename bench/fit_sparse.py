"""Training on sparse features: a bag-of-words / TF-IDF classifier (a SciPy CSR x of 25,000
rows × 20,000 features, 0.5% non-zero, about 100 values a row; Dense(64, relu), Dense(1,
sigmoid), Adam, binary cross-entropy, accuracy), one epoch at batch 32 and 128, and `predict`
on all rows, for densitron next to the same training step in NumPy with SciPy's sparse
products (always), PyTorch (`torch.sparse.mm` on each batch's CSR tensor, torch.optim.Adam
with eps=1e-7) and Keras 3 (its own handling of SciPy matrices, on whichever backend is
installed; `keras-sparse`: with `Input(sparse=True)`, far slower on JAX) when importable.

Each framework runs in its own worker process, started once per repeat and framework in
turn (so runs interleave in time); a worker builds the data from the same seed, trains one
warm-up epoch on 2,000 rows, then times one epoch per batch size and one `predict`, and
reports the seconds and its peak RSS. Medians over the repeats; ratios are the peer's time
over densitron's.

    python bench/fit_sparse.py [--repeats 3] [--rows 25000] [--features 20000]
                               [--density 0.005] [--batch-sizes 32 128]
                               [--peers numpy torch keras keras-sparse]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

PEERS = ("densitron", "numpy", "torch", "keras", "keras-sparse")


def make_data(rows, features, density, seed=0):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    nnz = int(rows * features * density)
    r = rng.integers(0, rows, nnz)
    c = rng.integers(0, features, nnz)
    x = sp.csr_matrix((rng.random(nnz, dtype=np.float32), (r, c)), shape=(rows, features))
    x.sum_duplicates()
    # labels that depend on the features, so accuracy moves
    w = rng.normal(size=features).astype(np.float32)
    y = (x @ w > 0).astype(np.float32)
    return x, y


class Densitron:
    def __init__(self, x, y, features):
        import densitron
        from densitron.layers import Dense, Input

        inputs = Input((features,), sparse=True)
        h = Dense(64, activation="relu")(inputs)
        self.m = densitron.Model(inputs, Dense(1, activation="sigmoid")(h))
        self.m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        self.x, self.y = x, y

    def epoch(self, batch, x=None, y=None):
        self.m.fit(self.x if x is None else x, self.y if y is None else y, batch_size=batch,
                   epochs=1, verbose=0)

    def predict(self):
        self.m.predict(self.x, batch_size=1024, verbose=0)


class Keras(Densitron):
    sparse = False

    def __init__(self, x, y, features):
        import keras

        inputs = keras.Input((features,), sparse=self.sparse)
        h = keras.layers.Dense(64, activation="relu")(inputs)
        self.m = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
        self.m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        self.x, self.y = x, y


class KerasSparse(Keras):
    """Keras with `Input(sparse=True)` (JAX or TensorFlow backends): sparse tensors all the
    way into the first Dense layer."""

    sparse = True


class NumpyScipy:
    """The same step by hand: SciPy's sparse × dense products, NumPy for the rest, Keras's
    Adam (epsilon 1e-7) and glorot-uniform initialization."""

    def __init__(self, x, y, features):
        rng = np.random.default_rng(1)

        def glorot(i, o):
            lim = np.sqrt(6 / (i + o))
            return rng.uniform(-lim, lim, (i, o)).astype(np.float32)

        self.p = [glorot(features, 64), np.zeros(64, np.float32), glorot(64, 1),
                  np.zeros(1, np.float32)]
        self.m = [np.zeros_like(p) for p in self.p]
        self.v = [np.zeros_like(p) for p in self.p]
        self.t = 0
        self.x, self.y = x, y

    def step(self, xb, yb):
        w1, b1, w2, b2 = self.p
        h = np.maximum(xb @ w1 + b1, 0)
        z = h @ w2 + b2
        p = 1 / (1 + np.exp(-z))
        dz = (p - yb[:, None]) / len(yb)
        dh = (dz @ w2.T) * (h > 0)
        grads = [xb.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
        self.t += 1
        lr = 1e-3 * np.sqrt(1 - 0.999 ** self.t) / (1 - 0.9 ** self.t)
        for p_, g, m, v in zip(self.p, grads, self.m, self.v):
            g = np.asarray(g, dtype=np.float32)
            m += (g - m) * 0.1
            v += (g * g - v) * 0.001
            p_ -= lr * m / (np.sqrt(v) + 1e-7)

    def epoch(self, batch, x=None, y=None):
        x = self.x if x is None else x
        y = self.y if y is None else y
        order = np.random.default_rng(self.t).permutation(x.shape[0])
        for lo in range(0, x.shape[0], batch):
            idx = order[lo:lo + batch]
            self.step(x[idx], y[idx])

    def predict(self):
        w1, b1, w2, b2 = self.p
        for lo in range(0, self.x.shape[0], 1024):
            h = np.maximum(self.x[lo:lo + 1024] @ w1 + b1, 0)
            1 / (1 + np.exp(-(h @ w2 + b2)))


class Torch:
    def __init__(self, x, y, features):
        import torch

        torch.manual_seed(1)
        self.torch = torch
        self.net = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 1))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, eps=1e-7)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.x, self.y = x, y

    def batch_tensor(self, xb):
        t = self.torch
        return t.sparse_csr_tensor(t.from_numpy(xb.indptr.astype(np.int64)),
                                   t.from_numpy(xb.indices.astype(np.int64)),
                                   t.from_numpy(xb.data), size=xb.shape)

    def forward(self, xb):
        first, relu, last = self.net
        h = self.torch.sparse.mm(xb, first.weight.t()) + first.bias
        return last(relu(h))

    def epoch(self, batch, x=None, y=None):
        x = self.x if x is None else x
        y = self.torch.from_numpy(self.y if y is None else y)
        order = np.random.default_rng(0).permutation(x.shape[0])
        for lo in range(0, x.shape[0], batch):
            idx = order[lo:lo + batch]
            self.opt.zero_grad()
            out = self.forward(self.batch_tensor(x[idx]))
            self.loss(out[:, 0], y[idx]).backward()
            self.opt.step()

    def predict(self):
        with self.torch.inference_mode():
            for lo in range(0, self.x.shape[0], 1024):
                self.forward(self.batch_tensor(self.x[lo:lo + 1024]))


def worker(args):
    x, y = make_data(args.rows, args.features, args.density)
    cls = {"densitron": Densitron, "numpy": NumpyScipy, "torch": Torch, "keras": Keras,
           "keras-sparse": KerasSparse}[args.worker]
    fw = cls(x, y, args.features)
    fw.epoch(32, x[:2000], y[:2000])
    out = {}
    for b in args.batch_sizes:
        t = time.perf_counter()
        fw.epoch(b)
        out[str(b)] = time.perf_counter() - t
    t = time.perf_counter()
    fw.predict()
    out["predict"] = time.perf_counter() - t
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def importable(name):
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "jax")
    return subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                          env=env).returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=25000)
    ap.add_argument("--features", type=int, default=20000)
    ap.add_argument("--density", type=float, default=0.005)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--peers", nargs="+", default=["numpy", "torch", "keras"])
    ap.add_argument("--worker", choices=PEERS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    names = ["densitron"] + [p for p in args.peers
                             if p == "numpy" or importable(p.replace("-sparse", ""))]
    results = {n: [] for n in names}
    for r in range(args.repeats):
        for n in names:
            cmd = [sys.executable, __file__, "--worker", n, "--rows", str(args.rows),
                   "--features", str(args.features), "--density", str(args.density),
                   "--batch-sizes", *map(str, args.batch_sizes)]
            env = dict(os.environ)
            env.setdefault("KERAS_BACKEND", "jax")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{n} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                results.pop(n)
                names.remove(n)
                continue
            results[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}: {n} {results[n][-1]}", file=sys.stderr)
    keys = [str(b) for b in args.batch_sizes] + ["predict"]
    print(f"{args.rows} rows x {args.features} features, density {args.density}; "
          f"seconds, medians of {args.repeats}; peer / densitron in brackets")
    print("| framework | " + " | ".join(f"batch {k}" if k != "predict" else k for k in keys)
          + " | peak RSS MB |")
    print("|---" * (len(keys) + 2) + "|")
    base = {k: statistics.median(r[k] for r in results["densitron"]) for k in keys}
    for n in names:
        med = {k: statistics.median(r[k] for r in results[n]) for k in keys + ["rss_mb"]}
        cells = [f"{med[k]:.3f}" + ("" if n == "densitron" else f" ({med[k] / base[k]:.1f}x)")
                 for k in keys]
        print(f"| {n} | " + " | ".join(cells) + f" | {med['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
