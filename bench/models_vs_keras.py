"""Other models than the seed, against Keras 3 (on whichever backend is installed; JAX here):
seconds per epoch (median of three timed epochs after one warm-up epoch) of the models Keras
users build besides dense MLPs on MNIST: tabular classifiers and regressors, BatchNormalization,
LayerNormalization, Dropout, a text classifier (Embedding + GlobalAveragePooling1D), residual
adds, deep narrow stacks, a 1000-class output, a recommender (two Embeddings and a Dot), the
Keras imbalanced-data tutorial (ten metrics, validation every epoch), a classic regularized
MLP (weight penalty, max-norm constraint, Dropout, gradient clipping), Keras's IMDB example
on multi-hot vectors (a fit of 20 epochs, timed per epoch), a quantile regression whose
loss is a Python function, and, as written in Keras's guides, the subclassing guide's VAE,
keras.io's collaborative-filtering RecommenderNet, a Metric subclass of one's own (F1) and
keras.io's text classification with Transformer.

Each run is its own process (this script with --worker FRAMEWORK MODEL), so the frameworks'
thread pools never share a process; the parent alternates densitron's and Keras's runs model by
model and prints seconds and Keras ÷ densitron.

    KERAS_BACKEND=jax python bench/models_vs_keras.py [--models tab text ...] [--repeats 1]
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from keras_guides import (
    metric_classes,
    recommender_net,
    text_transformer,
    timeseries_transformer,
    vae_classes,
)

MODELS = {
    "tab": "20 features, 64-64-1 sigmoid, Adam, binary cross-entropy, batch 32, 100k rows",
    "reg": "13 features, 64-64-1, Adam, MSE (MAE metric), batch 32, 100k rows",
    "tanh": "784-128 tanh-10 softmax, SGD momentum, sparse cross-entropy, batch 64",
    "bn": "784-256 relu, Dropout(0.2), BatchNormalization, 128 relu, 10 logits, Adam, batch 128",
    "ln": "256-256 relu, LayerNormalization, 10 softmax, Adam, batch 128",
    "text": "200 ids, Embedding(10000, 16), GlobalAveragePooling1D, 16 relu, 1 sigmoid, Adam, "
            "batch 32, 25k rows",
    "resid": "128-128-128 relu with an Add, Dropout(0.1), 10 softmax, AdamW, batch 64",
    "deep": "20 features, eight Dense(32, relu), 1 sigmoid, Adam, batch 32, 100k rows",
    "wideout": "64-256 relu-1000 softmax, Adam, sparse cross-entropy, batch 64, 50k rows",
    "multi": "30-128 selu-128 selu-8, Nadam, Huber (MAE metric), batch 64, 100k rows",
    "recsys": "user and movie Embedding(50) + biases, Dot, Add, sigmoid, Adam, batch 64, 90k",
    "imbalanced": "29-16 relu, Dropout(0.5), 1 sigmoid, ten metrics, validation, batch 2048",
    "regularized": "784-256 relu with L2(1e-4) and MaxNorm(3), Dropout(0.5), 10 softmax, "
                   "RMSprop(clipnorm=1), batch 32",
    "imdb": "Keras's IMDB multi-hot example: 10000 features (1.5% ones), 16-16-1 sigmoid, "
            "RMSprop, batch 512, validation_split 0.4; a fit of 20 epochs, per epoch",
    "quantile": "a loss function written in Python: 30-64-64-3 relu, the pinball loss of "
                "three quantiles (broadcasting, a constant array, ops.maximum, ops.mean), "
                "Adam, batch 64, 100k rows",
    "vae": "the VAE of Keras's subclassing guide as written: 784-64-(32, 32) sampled-64-784, "
           "an Encoder and a Decoder layer, KL by add_loss, Adam, MSE, batch 64, 60k rows",
    "cf": "keras.io's collaborative-filtering RecommenderNet as written (a Model subclass, "
          "two id columns, four Embeddings, tensordot), Adam, batch 64, 90k rows",
    "f1": "a Metric subclass of one's own in compile (precision, recall, F1 from three "
          "assign_add counts): 20 features, 64-64-1 sigmoid, Adam, batch 32, 100k rows",
    "tstransformer": "keras.io's timeseries classification with a Transformer as written: "
                     "(500, 1) series, four blocks of MultiHeadAttention (4 heads of 256) and "
                     "pointwise Conv1D, Adam(1e-4), batch 64, 512 rows (FordA has 3601)",
    "transformer": "keras.io's text classification with Transformer as written: 200 ids "
                   "(20000 words), token and position embeddings (32), MultiHeadAttention (2 "
                   "heads), feed-forward 32, pooling, Adam, batch 32, 25k rows",
}


def build(fw, name, rng):
    """The model, x, y, batch size and fit keywords of `name` in framework module fw."""
    layers, Input, Model, Sequential = fw.layers, fw.Input, fw.Model, fw.Sequential
    kw = {}
    if name == "tab":
        x = rng.standard_normal((100000, 20)).astype("float32")
        y = (x[:, 0] + x[:, 1] > 0).astype("float32")
        m = Sequential([Input((20,)), layers.Dense(64, activation="relu"),
                        layers.Dense(64, activation="relu"), layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return m, x, y, 32, kw
    if name == "reg":
        x = rng.standard_normal((100000, 13)).astype("float32")
        y = x @ rng.standard_normal(13).astype("float32")
        m = Sequential([Input((13,)), layers.Dense(64, activation="relu"),
                        layers.Dense(64, activation="relu"), layers.Dense(1)])
        m.compile(optimizer="adam", loss="mse", metrics=["mae"])
        return m, x, y, 32, kw
    if name in ("tanh", "bn"):
        x = rng.random((60000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 60000)
        if name == "tanh":
            m = Sequential([Input((784,)), layers.Dense(128, activation="tanh"),
                            layers.Dense(10, activation="softmax")])
            m.compile(optimizer=fw.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return m, x, y, 64, kw
        m = Sequential([Input((784,)), layers.Dense(256, activation="relu"), layers.Dropout(0.2),
                        layers.BatchNormalization(), layers.Dense(128, activation="relu"),
                        layers.Dense(10)])
        m.compile(optimizer="adam",
                  loss=fw.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
        return m, x, y, 128, kw
    if name == "ln":
        x = rng.standard_normal((60000, 256)).astype("float32")
        y = rng.integers(0, 10, 60000)
        m = Sequential([Input((256,)), layers.Dense(256, activation="relu"),
                        layers.LayerNormalization(), layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, x, y, 128, kw
    if name == "text":
        x = rng.integers(1, 10000, (25000, 200)).astype("int32")
        y = rng.integers(0, 2, 25000).astype("float32")
        m = Sequential([Input((200,)), layers.Embedding(10000, 16),
                        layers.GlobalAveragePooling1D(), layers.Dense(16, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return m, x, y, 32, kw
    if name == "resid":
        x = rng.standard_normal((60000, 128)).astype("float32")
        y = rng.integers(0, 10, 60000)
        i = Input((128,))
        h = layers.Dense(128, activation="relu")(i)
        h = layers.Add()([h, layers.Dense(128, activation="relu")(h)])
        o = layers.Dense(10, activation="softmax")(layers.Dropout(0.1)(h))
        m = Model(i, o)
        m.compile(optimizer="adamw", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, x, y, 64, kw
    if name == "deep":
        x = rng.standard_normal((100000, 20)).astype("float32")
        y = (x[:, 0] > 0).astype("float32")
        m = Sequential([Input((20,))] + [layers.Dense(32, activation="relu") for _ in range(8)]
                       + [layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return m, x, y, 32, kw
    if name == "wideout":
        x = rng.standard_normal((50000, 64)).astype("float32")
        y = rng.integers(0, 1000, 50000)
        m = Sequential([Input((64,)), layers.Dense(256, activation="relu"),
                        layers.Dense(1000, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, x, y, 64, kw
    if name == "multi":
        x = rng.standard_normal((100000, 30)).astype("float32")
        y = x[:, :8] * 2
        m = Sequential([Input((30,)), layers.Dense(128, activation="selu"),
                        layers.Dense(128, activation="selu"), layers.Dense(8)])
        m.compile(optimizer="nadam", loss="huber", metrics=["mae"])
        return m, x, y, 64, kw
    if name == "recsys":
        users, movies, rows = 610, 9724, 90000
        ui, mi = Input((1,)), Input((1,))
        ue, me = layers.Embedding(users, 50)(ui), layers.Embedding(movies, 50)(mi)
        ub, mb = layers.Embedding(users, 1)(ui), layers.Embedding(movies, 1)(mi)
        z = layers.Add()([layers.Dot(axes=2)([ue, me]), ub, mb])
        m = Model([ui, mi], layers.Activation("sigmoid")(layers.Flatten()(z)))
        m.compile(optimizer=fw.optimizers.Adam(0.001), loss="binary_crossentropy")
        x = [rng.integers(0, users, (rows, 1)).astype("int32"),
             rng.integers(0, movies, (rows, 1)).astype("int32")]
        return m, x, rng.random(rows).astype("float32"), 64, kw
    if name == "imbalanced":
        x = rng.standard_normal((182276, 29)).astype("float32")
        y = (rng.random(182276) < 0.002).astype("float32")[:, None]
        mt = fw.metrics
        metrics = [mt.BinaryCrossentropy(name="cross entropy"),
                   mt.MeanSquaredError(name="Brier score"), mt.TruePositives(name="tp"),
                   mt.FalsePositives(name="fp"), mt.TrueNegatives(name="tn"),
                   mt.FalseNegatives(name="fn"), mt.BinaryAccuracy(name="accuracy"),
                   mt.Precision(name="precision"), mt.Recall(name="recall"),
                   mt.AUC(name="auc"), mt.AUC(name="prc", curve="PR")]
        m = Sequential([Input((29,)), layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                        layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer=fw.optimizers.Adam(1e-3), loss=fw.losses.BinaryCrossentropy(),
                  metrics=metrics)
        kw["validation_data"] = (x[:45000], y[:45000])
        return m, x, y, 2048, kw
    if name == "regularized":
        x = rng.random((60000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 60000)
        m = Sequential([Input((784,)),
                        layers.Dense(256, activation="relu",
                                     kernel_regularizer=fw.regularizers.L2(1e-4),
                                     kernel_constraint=fw.constraints.MaxNorm(3)),
                        layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
        m.compile(optimizer=fw.optimizers.RMSprop(clipnorm=1.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, x, y, 32, kw
    if name == "imdb":
        x = (rng.random((25000, 10000)) < 0.015).astype("float32")
        y = rng.integers(0, 2, 25000).astype("float32")
        m = Sequential([Input((10000,)), layers.Dense(16, activation="relu"),
                        layers.Dense(16, activation="relu"), layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        kw.update(validation_split=0.4, epochs=20)  # (a fit of several epochs, as the example)
        return m, x, y, 512, kw
    if name == "quantile":
        x = rng.standard_normal((100000, 30)).astype("float32")
        y = x[:, :1] + 0.5 * rng.standard_normal((100000, 1))
        q = np.array([[0.1, 0.5, 0.9]], dtype="float32")
        o = fw.ops

        def pinball(y_true, y_pred):  # each output column a quantile of the target (N, 1)
            e = y_true - y_pred
            return o.mean(o.maximum(e * q, e * (q - 1.0)), axis=-1)

        m = Sequential([Input((30,)), layers.Dense(64, activation="relu"),
                        layers.Dense(64, activation="relu"), layers.Dense(3)])
        m.compile(optimizer="adam", loss=pinball)
        return m, x, y.astype("float32"), 64, kw
    if name == "vae":
        x = rng.random((60000, 784), dtype=np.float32)
        m = vae_classes(fw, fw.layers, fw.ops)[1](784, 64, 32)
        m.compile(fw.optimizers.Adam(learning_rate=1e-3), loss=fw.losses.MeanSquaredError())
        return m, x, x, 64, kw
    if name == "cf":
        x = np.stack([rng.integers(0, 610, 90000), rng.integers(0, 9724, 90000)], 1)
        y = rng.random(90000).astype("float32")
        m = recommender_net(fw, fw.layers, fw.ops, 610, 9724, 50)
        m.compile(loss=fw.losses.BinaryCrossentropy(),
                  optimizer=fw.optimizers.Adam(learning_rate=0.001))
        return m, x, y, 64, kw
    if name == "f1":
        x = rng.standard_normal((100000, 20)).astype("float32")
        y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
        m = Sequential([Input((20,)), layers.Dense(64, activation="relu"),
                        layers.Dense(64, activation="relu"), layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=[metric_classes(fw.metrics, fw.ops)[2]()])
        return m, x, y, 32, kw
    if name == "tstransformer":
        x = rng.standard_normal((512, 500, 1)).astype("float32")
        y = rng.integers(0, 2, 512)
        m = timeseries_transformer(fw)
        m.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fw.optimizers.Adam(learning_rate=1e-4),
                  metrics=["sparse_categorical_accuracy"])
        return m, x, y, 64, kw
    if name == "transformer":
        x = rng.integers(0, 20000, (25000, 200))
        y = rng.integers(0, 2, 25000)
        m = text_transformer(fw)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, x, y, 32, kw
    raise ValueError(f"unknown model {name!r}")


def worker(framework, name):
    if framework == "keras":
        import keras as fw
    else:
        import densitron as fw
    m, x, y, batch, kw = build(fw, name, np.random.default_rng(0))
    epochs = kw.pop("epochs", 1)  # timed as one fit of that many epochs, per epoch
    m.fit(x, y, batch_size=batch, epochs=1, verbose=0, **kw)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        m.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, **kw)
        times.append((time.perf_counter() - t) / epochs)
    print(f"{statistics.median(times):.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--repeats", type=int, default=1, help="processes per framework and model")
    ap.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    frameworks = ["densitron"]
    if importlib.util.find_spec("keras") is not None:
        frameworks.append("keras")
    else:
        print("Keras is not installed: densitron alone (pip install keras jax)")
    print(f"{'model':11s} {'densitron s':>12s} {'Keras s':>9s} {'ratio':>6s}  what")
    for name in args.models:
        secs = {f: [] for f in frameworks}
        for _ in range(args.repeats):
            for f in frameworks:  # alternating, one process each
                out = subprocess.run([sys.executable, __file__, "--worker", f, name],
                                     check=False, capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{f} {name} failed:\n{out.stderr[-2000:]}")
                secs[f].append(float(out.stdout.split()[-1]))
        d = statistics.median(secs["densitron"])
        if "keras" in secs:
            k = statistics.median(secs["keras"])
            print(f"{name:11s} {d:12.4f} {k:9.4f} {k / d:5.1f}×  {MODELS[name]}")
        else:
            print(f"{name:11s} {d:12.4f}  {MODELS[name]}")


if __name__ == "__main__":
    main()
