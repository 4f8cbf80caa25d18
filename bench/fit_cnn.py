"""End-to-end convolution benchmark: one epoch of a small MNIST-shaped CNN (Conv2D(32, 3,
relu) - MaxPooling2D - Conv2D(64, 3, relu) - MaxPooling2D - Flatten - Dense(10, softmax), Adam,
sparse categorical cross-entropy) on random 28×28×1 float32 rows, batch 128, in densitron and,
when importable, Keras (on whichever backend KERAS_BACKEND names, JAX by default) and PyTorch
(an idiomatic eager loop, NCHW, torch.optim.Adam(eps=1e-7)). Each framework runs in its own
process (this script with --worker NAME) after one untimed warm-up epoch on a slice (Keras's
and PyTorch's compilations, densitron's buffers); the medians of the timed epochs and their
ratios are printed.

    python bench/fit_cnn.py [--rows 6144] [--batch 128] [--repeats 3] [--threads 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def make_data(rows, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((rows, 28, 28, 1), dtype=np.float32),
            rng.integers(0, 10, rows).astype(np.int64))


def keras_like(ns):
    """The model in densitron's or Keras's namespace (the same code)."""
    L = ns.layers
    inputs = ns.Input((28, 28, 1))
    h = L.MaxPooling2D()(L.Conv2D(32, 3, activation="relu")(inputs))
    h = L.MaxPooling2D()(L.Conv2D(64, 3, activation="relu")(h))
    model = ns.Model(inputs, L.Dense(10, activation="softmax")(L.Flatten()(h)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def run_keras_like(ns, x, y, batch, repeats):
    model = keras_like(ns)
    model.fit(x[:batch * 4], y[:batch * 4], batch_size=batch, epochs=1, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return times


def run_torch(x, y, batch, repeats, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64 * 5 * 5, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)

    def epoch(rows):
        perm = torch.randperm(rows)
        for s in range(0, rows, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    epoch(batch * 4)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch(len(xt))
        times.append(time.perf_counter() - start)
    return times


def worker(name, args):
    x, y = make_data(args.rows)
    if name == "densitron":
        import densitron

        densitron.set_num_threads(args.threads)
        times = run_keras_like(densitron, x, y, args.batch, args.repeats)
    elif name == "keras":
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        times = run_keras_like(keras, x, y, args.batch, args.repeats)
        name = f"keras ({keras.backend.backend()})"
    else:
        times = run_torch(x, y, args.batch, args.repeats, args.threads)
    print(json.dumps({"name": name, "times": times}))


def importable(module, env):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          env=env, check=False)
    return done.returncode == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6144)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return
    env = {"KERAS_BACKEND": "jax", **os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = {}
    for name, module in (("densitron", "densitron"), ("keras", "keras"), ("torch", "torch")):
        if not importable(module, env):
            print(f"{name}: not importable, skipped")
            continue
        done = subprocess.run([sys.executable, __file__, "--worker", name, "--rows",
                               str(args.rows), "--batch", str(args.batch), "--repeats",
                               str(args.repeats), "--threads", str(args.threads)],
                              capture_output=True, text=True, env=env, check=False)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"{name}: failed\n{done.stderr[-2000:]}")
            continue
        result = json.loads(lines[-1])
        results[result["name"]] = statistics.median(result["times"])
    print(f"one epoch of {args.rows} rows 28x28x1, batch {args.batch}, {args.threads} threads, "
          f"median of {args.repeats}:")
    ours = results.get("densitron")
    for name, seconds in results.items():
        ratio = f"   densitron / {name}: {ours / seconds:.2f}" if ours and name != \
            "densitron" else ""
        print(f"  {name:16s} {seconds:8.3f} s/epoch{ratio}")


if __name__ == "__main__":
    main()
