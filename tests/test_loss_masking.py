"""Keras's mask on a model output weighs its loss and metrics (Keras 3.15's Loss.__call__ with
apply_mask, MeanMetricWrapper.update_state): the sequence-tagging models of Keras's tutorials
(Embedding(mask_zero=True) or Masking, return_sequences recurrent layers, Bidirectional,
per-step Dense) on padded sequences of varying lengths, against Keras 3.15 on JAX (evaluate,
fit's history and weights, predict), a float64 NumPy reference of the masked loss and
accuracy, finite differences of the masked loss's gradient, 1 vs 2 threads, refusals."""

import os
import subprocess
import sys

import densitron
import numpy as np
import pytest
from densitron import layers
from keras_subprocess import run_keras_on_jax
from test_gradients_fd import fd_check

V, T, C, F = 11, 7, 4, 3
N, BATCH = 13, 4
# rows 4-7 are a batch of padding only; rows of one step; a 0 id inside a sequence
LENGTHS = np.array([T, 1, 3, 5, 0, 0, 0, 0, 2, 4, 6, 1, 3])
CASES = ["lstm", "gru", "bidirectional", "masking", "multi", "sum", "over_weights",
         "nested", "nested_outer", "nested_in"]


def data(case):
    """(x, y, per-step sample weights) of a case: padded at the end to LENGTHS."""
    rng = np.random.default_rng(5)
    pad = np.arange(T)[None, :] >= LENGTHS[:, None]
    sw = rng.uniform(0.2, 2.0, (N, T)).astype(np.float32)
    if case == "masking":
        x = rng.standard_normal((N, T, F)).astype(np.float32)
        x[pad] = 0.0
        return x, rng.standard_normal((N, T, 2)).astype(np.float32), sw
    ids = rng.integers(1, V, (N, T))
    ids[pad] = 0
    ids[3, 1] = 0  # (masked too)
    tags = rng.integers(0, C, (N, T))
    if case == "multi":
        return ids, [tags, rng.standard_normal((N, 1)).astype(np.float32)], sw
    return ids, tags, sw


def build(lib, case):
    """The case's model on `lib` (keras or densitron) with weights set from a seed, and its
    compile arguments."""
    ly = lib.layers
    sce = "sparse_categorical_crossentropy"
    args = {"optimizer": lib.optimizers.Adam(0.02), "loss": sce, "metrics": ["accuracy"]}
    if case == "masking":
        inp = ly.Input((T, F))
        h = ly.SimpleRNN(5, return_sequences=True)(ly.Masking(0.0)(inp))
        out = ly.Dense(2)(h)
        args = {"optimizer": lib.optimizers.SGD(0.1), "loss": "mse", "metrics": ["mae"],
                "weighted_metrics": ["mse"]}
    elif case.startswith("nested"):
        # Keras's mask comes out of a nested model: the loss on an output of it is weighed
        # by it ("nested"); a layer after it applies it, through one that passes it on
        # ("nested_outer", whose nested model holds a nested model of its own); it goes into
        # a nested model inside the nested one, whose LSTM applies it ("nested_in")
        inner_in = ly.Input((T,))
        h = ly.Embedding(V, 5, mask_zero=True)(inner_in)
        if case == "nested":
            inner = lib.Model(inner_in, ly.LSTM(6, return_sequences=True)(h))
        elif case == "nested_in":  # made outside, applied by the nested model's LSTM
            enc_in = ly.Input((T, 5))
            enc = lib.Model(enc_in, ly.LSTM(6, return_sequences=True)(ly.Dropout(0.0)(enc_in)))
            inner = lib.Model(inner_in, enc(h))
        else:
            inner = lib.Model(inner_in, ly.Dropout(0.0)(h))
            middle_in = ly.Input((T,))
            inner = lib.Model(middle_in, inner(middle_in))
        inp = ly.Input((T,))
        h = inner(inp)
        if case == "nested_outer":
            h = ly.GRU(6, return_sequences=True)(ly.Dropout(0.0)(h))
        out = ly.Dense(C, activation="softmax")(h)
    else:
        inp = ly.Input((T,))
        h = ly.Embedding(V, 5, mask_zero=True)(inp)
        if case == "gru":
            h = ly.GRU(6, return_sequences=True)(h)
            h = ly.Dense(8, activation="tanh")(ly.Dropout(0.0)(h))
            out = ly.TimeDistributed(ly.Dense(C, activation="softmax"))(h)
            args["weighted_metrics"] = ["accuracy"]
        elif case == "bidirectional":
            h = ly.Bidirectional(ly.LSTM(4, return_sequences=True))(h)
            out = ly.Dense(C)(h)
            args["loss"] = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
            args["metrics"] = ["sparse_categorical_accuracy"]
        elif case == "multi":
            h = ly.LSTM(6, return_sequences=True)(h)
            out = [ly.Dense(C, activation="softmax", name="tags")(h),
                   ly.Dense(1, name="score")(ly.GlobalAveragePooling1D()(h))]
            args.update(loss=[sce, "mse"], loss_weights=[1.0, 0.5],
                        metrics=[["accuracy"], ["mae"]])
        else:
            h = ly.LSTM(6, return_sequences=True)(h)
            out = ly.Dense(C, activation="softmax")(h)
            if case in ("sum", "over_weights"):
                reduction = "sum" if case == "sum" else "mean_with_sample_weight"
                args["loss"] = lib.losses.SparseCategoricalCrossentropy(reduction=reduction)
                args["optimizer"] = lib.optimizers.SGD(0.01)
    model = lib.Model(inp, out)
    rng = np.random.default_rng(11)
    model.set_weights([(rng.standard_normal(w.shape) * 0.4).astype(np.float32)
                       for w in model.get_weights()])
    return model, args


def run(lib, case):
    """predict, evaluate (without and with per-step weights), fit over 2 epochs (with per-step
    weights and validation data) and the weights after it."""
    x, y, sw = data(case)
    model, args = build(lib, case)
    model.compile(**args)
    result = {"predict": model.predict(x, batch_size=BATCH, verbose=0)}
    weights = None if case == "multi" else sw
    result["evaluate"] = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    if weights is not None:
        result["evaluate_weighted"] = model.evaluate(x, y, sample_weight=weights,
                                                     batch_size=BATCH, verbose=0,
                                                     return_dict=True)
    history = model.fit(x, y, sample_weight=weights, batch_size=BATCH, epochs=2, shuffle=False,
                        validation_data=(x, y), verbose=0)
    result["history"] = history.history
    result["weights"] = model.get_weights()
    return result


_KERAS = """
import pickle, sys
import keras
import numpy as np
import test_loss_masking as t
out = {}
for case in t.CASES:
    r = t.run(keras, case)
    r["predict"] = [np.asarray(p) for p in r["predict"]] if isinstance(r["predict"], list) \\
        else np.asarray(r["predict"])
    r["weights"] = [np.asarray(w) for w in r["weights"]]
    out[case] = r
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
"""


def _keras_on(backend, tmp_path_factory):
    import pickle

    path = tmp_path_factory.mktemp("keras") / "results.pkl"
    if backend == "jax":
        run_keras_on_jax(_KERAS, str(path))
    else:
        pytest.importorskip("torch", reason="Keras on torch needs torch")
        env = dict(os.environ, KERAS_BACKEND="torch")
        code = ("import sys, warnings; warnings.simplefilter('ignore'); "
                f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n" + _KERAS)
        done = subprocess.run([sys.executable, "-c", code, str(path)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    return _keras_on("jax", tmp_path_factory)


@pytest.fixture(scope="module")
def keras_torch_results(tmp_path_factory):
    # Keras 3.15 on JAX loses the output's mask between its training step's loss and its
    # metrics (y_pred comes back through jax.value_and_grad's aux), so that fit's training
    # metrics count the padded steps; on torch (and TensorFlow) they are masked, as in
    # evaluate and in the validation logs on every backend: densitron's fit logs are those.
    return _keras_on("torch", tmp_path_factory)


def _training_metric(name):
    return not name.startswith("val_") and not name.endswith("loss")


# (the weighted metrics' logs: Keras 3.15 on torch multiplies the batch's sample weights by
# the loss's mask in place (apply_mask's `sample_weight *= float_mask`, in place on a torch
# tensor), so that its weighted metrics weigh by sw·mask·total/valid; see
# test_weighted_training_metrics_are_evaluates)
WEIGHTED_LOGS = {"gru": "weighted_accuracy", "masking": "mse"}


def _close(a, b, what):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("case", CASES)
def test_training_metrics_as_kerass_on_torch(keras_torch_results, case):
    expected = keras_torch_results[case]["history"]
    got = run(densitron, case)["history"]
    assert sorted(got) == sorted(expected)
    for name in filter(_training_metric, expected):
        if name != WEIGHTED_LOGS.get(case):
            _close(got[name], expected[name], f"history {name}")


@pytest.mark.parametrize("case", ["gru", "masking"])
def test_weighted_training_metrics_are_evaluates(case):
    # without updates (a learning rate of 0), fit's logs are evaluate's on the same batches:
    # the weighted metrics weigh each kept step by its sample weight (evaluate's agree with
    # Keras on JAX, test_same_as_keras)
    x, y, sw = data(case)
    model, args = build(densitron, case)
    model.compile(**{**args, "optimizer": densitron.optimizers.SGD(0.0)})
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=BATCH, verbose=0,
                          return_dict=True)
    history = model.fit(x, y, sample_weight=sw, batch_size=BATCH, epochs=1, shuffle=False,
                        verbose=0).history
    assert sorted(history) == sorted(logs)
    for name, value in logs.items():
        np.testing.assert_allclose(history[name][0], value, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_same_as_keras(keras_results, case):
    expected = keras_results[case]
    got = run(densitron, case)
    if isinstance(expected["predict"], list):
        for a, b in zip(got["predict"], expected["predict"]):
            _close(a, b, "predict")
    else:
        _close(got["predict"], expected["predict"], "predict")
    for key in ("evaluate", "evaluate_weighted"):
        if key in expected:
            assert sorted(got[key]) == sorted(expected[key])
            for name in expected[key]:
                _close(got[key][name], expected[key][name], f"{key} {name}")
    assert sorted(got["history"]) == sorted(expected["history"])
    for name, values in expected["history"].items():
        if not _training_metric(name):  # (those of Keras on torch: see keras_torch_results)
            _close(got["history"][name], values, f"history {name}")
    for a, b in zip(got["weights"], expected["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _masked_reference(p, tags, ids, weights=None):
    """Keras's masked sparse cross-entropy and accuracy over batches of BATCH rows, in
    float64: each batch's Σ(loss·weight·mask)/Σmask, their mean weighted by the batch sizes;
    the accuracy weighted by the mask over all the kept steps."""
    p = p.astype(np.float64)
    mask = (ids != 0).astype(np.float64)
    w = mask if weights is None else mask * weights
    rows = np.arange(len(ids))[:, None]
    loss = -np.log(p[rows, np.arange(T)[None, :], tags])
    correct = (p.argmax(-1) == tags).astype(np.float64)
    batch_losses, sizes = [], []
    for b in range(0, len(ids), BATCH):
        s = slice(b, b + BATCH)
        valid = mask[s].sum()
        batch_losses.append((loss[s] * w[s]).sum() / valid if valid else 0.0)
        sizes.append(len(ids[s]))
    return (np.dot(batch_losses, sizes) / sum(sizes), (correct * mask).sum() / mask.sum(),
            (correct * w).sum() / w.sum())


def test_evaluate_is_the_masked_formula():
    ids, tags, sw = data("lstm")
    model, _ = build(densitron, "lstm")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    p = model.predict(ids, verbose=0)
    for weights in (None, sw, sw[:, 0]):
        logs = model.evaluate(ids, tags, sample_weight=weights, batch_size=BATCH, verbose=0,
                              return_dict=True)
        per_step = None if weights is None else (weights if weights.ndim == 2
                                                 else np.repeat(weights[:, None], T, 1))
        loss, accuracy, weighted = _masked_reference(p, tags, ids, per_step)
        np.testing.assert_allclose(logs["loss"], loss, rtol=1e-6)
        np.testing.assert_allclose(logs["accuracy"], accuracy, rtol=1e-6)
        np.testing.assert_allclose(logs["weighted_accuracy"], weighted, rtol=1e-6)


def test_per_sample_weights_weigh_every_step():
    # (Keras 3.15 fails to broadcast a (samples,) weight against the (samples, steps) mask;
    # densitron weighs each step by its sample's weight, as its per-step weights)
    ids, tags, sw = data("lstm")
    results = []
    for weights in (sw[:, 2], np.repeat(sw[:, 2:3], T, 1)):
        model, args = build(densitron, "lstm")
        model.compile(**args)
        logs = model.evaluate(ids, tags, sample_weight=weights, batch_size=BATCH, verbose=0,
                              return_dict=True)
        model.fit(ids, tags, sample_weight=weights, batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0)
        results.append((logs, model.get_weights()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_batch_of_padding_only_has_no_loss_and_no_gradient():
    ids, tags, _ = data("lstm")
    model, _ = build(densitron, "lstm")
    model.compile(optimizer=densitron.optimizers.SGD(0.5),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_weights()
    logs = model.evaluate(ids[4:8], tags[4:8], verbose=0, return_dict=True)
    assert logs == {"loss": 0.0, "accuracy": 0.0}
    model.train_on_batch(ids[4:8], tags[4:8])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(ids[:4], tags[:4])
    assert any(np.abs(a - b).max() > 0 for a, b in zip(model.get_weights(), before))


def test_padding_changes_nothing():
    # the loss of the kept steps only: other targets at the padded steps change nothing
    ids, tags, _ = data("lstm")
    other = np.where(ids == 0, (tags + 1) % C, tags)
    logs = []
    for y in (tags, other):
        model, args = build(densitron, "lstm")
        model.compile(**args)
        model.fit(ids, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        logs.append((model.evaluate(ids, y, verbose=0), model.get_weights()))
    assert logs[0][0] == logs[1][0]
    for a, b in zip(logs[0][1], logs[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["lstm", "masking"])
def test_gradient_is_the_masked_losss(case):
    x, y, _ = data(case)
    model, args = build(densitron, case)
    x, y = x[:4], y[:4]
    fd_check(model, x, y, args["loss"], h=2e-3)


def test_one_and_two_threads_bitwise():
    ids, tags, sw = data("bidirectional")
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        model, args = build(densitron, "bidirectional")
        model.compile(**args)
        history = model.fit(ids, tags, sample_weight=sw, batch_size=8, epochs=2, shuffle=False,
                            verbose=0)
        results.append((history.history, model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_refusals():
    ids, tags, _ = data("lstm")
    model, _ = build(densitron, "lstm")
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="class_weight.*Received: "):
        model.fit(ids, tags, class_weight={0: 1.0, 1: 2.0}, epochs=1, verbose=0)
    checks = [
        ("lstm", {"loss": densitron.losses.SparseCategoricalCrossentropy(ignore_class=1)},
         "ignore_class"),
        ("masking", {"loss": "mse", "metrics": ["mae", densitron.metrics.RootMeanSquaredError()]},
         "root_mean_squared_error"),
        ("lstm", {"loss": lambda y_true, y_pred: densitron.ops.mean(y_pred)}, "loss="),
    ]
    for case, args, what in checks:
        x, y, _ = data(case)
        model, _ = build(densitron, case)
        model.compile(**args)
        with pytest.raises(ValueError, match=f"mask.*Received: .*{what}"):
            model.evaluate(x, y, verbose=0)


def _nested_and_flat(variant):
    """Two models of the same layers (so the same weights): one with a nested model that
    Keras's mask comes out of (or, "into_...", goes into), one without the nested model."""
    emb = layers.Embedding(V, 5, mask_zero=True)
    gru_a, gru_b = layers.GRU(4, return_sequences=True), layers.GRU(3)
    dense, score = layers.Dense(C, activation="softmax", name="tags"), layers.Dense(1)
    steps = None if variant.endswith("any_length") else T

    def head(h_a, h_b=None):  # the layers after the embedding, in both models
        tags = dense(gru_a(layers.Dropout(0.0)(h_a)))
        return tags if h_b is None else [tags, score(gru_b(h_b))]

    if variant.startswith("into"):  # the mask made by `emb`, outside the nested model
        enc_in, a, b = layers.Input((steps, 5)), layers.Input((steps,)), layers.Input((T,))
        a2, b2 = layers.Input((steps,)), layers.Input((T,))
        if variant == "into_through":  # a per-step layer inside passes it on
            step = layers.Dense(5, activation="tanh")
            enc = densitron.Model(enc_in, step(enc_in))
            return densitron.Model(a, head(enc(emb(a)))), densitron.Model(a2, head(step(emb(a2))))
        if variant == "into_two":  # two masked inputs (query, value), into attention, and
            # a nested Bidirectional after it
            q_in, v_in, v = layers.Input((T, 5)), layers.Input((T - 2, 5)), layers.Input((T - 2,))
            attention, bi = layers.Attention(), layers.Bidirectional(gru_a)
            enc = densitron.Model([q_in, v_in], attention([q_in, v_in]))
            bi_in = layers.Input((T, 5))
            bi_model = densitron.Model(bi_in, bi(bi_in))
            v2 = layers.Input((T - 2,))
            return (densitron.Model([a, v], dense(bi_model(enc([emb(a), emb(v)])))),
                    densitron.Model([a2, v2], dense(bi(attention([emb(a2), emb(v2)])))))
        if variant == "into_twice":  # each call its own
            enc = densitron.Model(enc_in, layers.Dropout(0.0)(enc_in))
            return (densitron.Model([a, b], head(enc(emb(a)), enc(emb(b)))),
                    densitron.Model([a2, b2], head(emb(a2), emb(b2))))
        enc = densitron.Model(enc_in, gru_a(layers.Dropout(0.0)(enc_in)))  # applied inside
        if variant == "into_sequential":
            return (densitron.Sequential([layers.Input((T,)), emb, enc, dense]),
                    densitron.Sequential([layers.Input((T,)), emb, gru_a, dense]))
        src = layers.Reshape((T,))(a) if variant == "into_cut" else a
        return (densitron.Model(src, dense(enc(emb(src)))),
                densitron.Model(a2, dense(gru_a(emb(a2)))))
    inner_in = layers.Input((steps,))
    inner = densitron.Model(inner_in, emb(inner_in))
    if variant == "twice":  # one nested model called on two inputs, each its own mask
        a, b = layers.Input((T,)), layers.Input((T,))
        nested = densitron.Model([a, b], head(inner(a), inner(b)))
        a2, b2 = layers.Input((T,)), layers.Input((T,))
        return nested, densitron.Model([a2, b2], head(emb(a2), emb(b2)))
    if variant == "sequential":
        nested = densitron.Sequential([layers.Input((T,)), inner, gru_a, dense])
        flat = densitron.Sequential([layers.Input((T,)), emb, gru_a, dense])
        return nested, flat
    inp = layers.Input((steps,))
    if variant == "cut":  # the model's input made by a layer: Keras clones the calls after it
        cut = layers.Reshape((T,))(inp)
        return densitron.Model(cut, head(inner(cut))), densitron.Model(inp, head(emb(inp)))
    flat_in = layers.Input((steps,))
    return densitron.Model(inp, head(inner(inp))), densitron.Model(flat_in, head(emb(flat_in)))


@pytest.mark.parametrize("variant", ["once", "twice", "sequential", "cut", "any_length", "into",
                                     "into_through", "into_twice", "into_two", "into_cut",
                                     "into_sequential", "into_any_length"])
def test_masks_cross_nested_models(variant):
    # Keras's mask made inside a nested model comes out on its outputs and is applied by the
    # layers after it (through those that pass it on) and weighs the loss; one made outside
    # goes into the nested model's layers: as the same layers' mask does in a model without
    # the nested one ("nested", "nested_outer" and "nested_in" above check against Keras); a
    # nested model called twice carries each call's own mask
    ids, tags, sw = data("lstm")
    x, y, loss, metrics = ids, tags, "sparse_categorical_crossentropy", ["accuracy"]
    if variant.endswith("twice"):  # (the second input padded otherwise: a mask mixed up shows)
        x = [ids, np.where(np.arange(T)[None, :] < 2, 0, ids[::-1])]
        y = [tags, np.linspace(-1.0, 1.0, N, dtype=np.float32)[:, None]]
        loss, metrics, sw = [loss, "mse"], [metrics, []], None
    if variant == "into_two":  # values of T - 2 steps, padded otherwise
        x = [ids, np.where(np.arange(T - 2)[None, :] >= 1 + np.arange(N)[:, None] % 4, 0,
                           ids[::-1, :T - 2])]
    nested, flat = _nested_and_flat(variant)
    rng = np.random.default_rng(3)
    start = [(rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in flat.get_weights()]
    results = []
    for model in (nested, flat):
        flat.set_weights(start)  # (the nested model's too: they share their layers)
        model.compile(optimizer=densitron.optimizers.Adam(0.02), loss=loss, metrics=metrics)
        r = [model.predict(x, batch_size=BATCH, verbose=0),
             model.evaluate(x, y, sample_weight=sw, batch_size=BATCH, verbose=0)]
        r.append(model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False,
                           verbose=0).history["loss"])
        results.append(r + [flat.get_weights()])
    for got, expected in zip(*results):
        for g, e in zip(got if isinstance(got, list) else [got],
                        expected if isinstance(expected, list) else [expected]):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    # (the mask is applied: a sequence of one step keeps its state over the padding; in both
    # directions of the Bidirectional, whose backward one has not started there)
    tags_out = results[0][0][0] if variant.endswith("twice") else results[0][0]
    one = int(np.argmax(LENGTHS == 1))
    if variant == "into_two":
        assert np.all(tags_out[one, 2:] == tags_out[one, 1:2])
    else:
        assert np.all(tags_out[one, 1:] == tags_out[one, :1])


def test_refuses_a_mask_from_elsewhere():
    # a mask set by hand from another graph (Keras's own masks come from the model's layers,
    # nested models' included): refused where it would be applied or weigh a loss
    inp = layers.Input((T, F))
    other = layers.Masking(0.0)(layers.Input((T, F)))
    out = layers.Dense(2)(inp)
    out._mask = other._mask
    model = densitron.Model(inp, out)
    model.compile(loss="mse")
    x, y, _ = data("masking")
    with pytest.raises(ValueError, match=r"^The mask on output 'dense.*' was made by no layer of "
                                         r"the model, so densitron cannot weigh the loss by it. "
                                         r"Received: an output with a mask from elsewhere$"):
        model.evaluate(x, y, verbose=0)
    # (a mask a layer applies is part of the graph, as Keras's mask argument: that of another
    # graph is a disconnected input)
    with pytest.raises(ValueError, match=r"^Graph disconnected: cannot obtain value for tensor "
                                         r".* it is an Input that is not among the model's "
                                         r"inputs"):
        densitron.Model(inp, layers.LSTM(2, name="late")(out)).predict(x, verbose=0)


def test_refuses_a_mask_whose_shape_is_not_the_outputs():
    # A mask weighs the rows of an output's last axis: one entry a row. No layer of densitron
    # hands an output another mask today (this guard is checked on a tensor given one by hand,
    # as a layer of one's own setting a mask of other steps would).
    inp = layers.Input((T, F))
    out = layers.Dense(2)(layers.Masking(0.0)(inp))
    other = layers.Masking(0.0)(layers.Input((T + 1, F)))
    out._mask = other._mask
    with pytest.raises(ValueError, match=r"^A Keras mask weighs the loss values of a model "
                                         r"output, one a row of its last axis: the mask's shape "
                                         r"must be the output's without it, \(None, 7\). "
                                         r"Received: output .* with a mask of shape "
                                         r"\(None, 8\)$"):
        densitron.Model(inp, out)

def test_masks_reach_the_outputs():
    inp = layers.Input((T,))
    emb = layers.Embedding(V, 4, mask_zero=True)(inp)
    seq = layers.LSTM(3, return_sequences=True)(emb)
    assert seq._mask is inp
    assert layers.LSTM(3)(emb)._mask is None
    assert layers.Bidirectional(layers.GRU(2, return_sequences=True))(emb)._mask is inp
    assert layers.TimeDistributed(layers.Dense(2))(layers.Dropout(0.2)(seq))._mask is inp
    x = layers.Input((T, F))
    masked = layers.Masking()(x)
    assert layers.SimpleRNN(2, return_sequences=True)(masked)._mask is masked._mask


def test_sequential_on_any_length_as_the_fixed_model():
    # Sequential with Input((None,)): one engine graph per length, each with its output's mask
    ids, tags, _ = data("lstm")
    fixed, args = build(densitron, "lstm")
    seq = densitron.Sequential([layers.Input((None,)), layers.Embedding(V, 5, mask_zero=True),
                                layers.LSTM(6, return_sequences=True),
                                layers.Dense(C, activation="softmax")])
    seq.set_weights(fixed.get_weights())
    results = []
    for model in (fixed, seq):
        model.compile(**{**args, "optimizer": densitron.optimizers.Adam(0.02)})
        results.append((model.evaluate(ids, tags, batch_size=BATCH, verbose=0),
                        model.fit(ids, tags, batch_size=BATCH, epochs=2, shuffle=False,
                                  verbose=0).history))
    assert results[0] == results[1]
    short = seq.evaluate(ids[:, :3], tags[:, :3], batch_size=BATCH, verbose=0,
                         return_dict=True)
    p = seq.predict(ids[:, :3], verbose=0).astype(np.float64)
    mask = ids[:, :3] != 0
    assert short["accuracy"] == pytest.approx((p.argmax(-1) == tags[:, :3])[mask].mean(),
                                              rel=1e-6)


def test_each_output_its_own_mask():
    # two outputs masked by two id inputs: each loss and metric is its single model's
    ids, tags, sw = data("lstm")
    other = np.roll(ids, 3, axis=0)
    singles = []
    for x in (ids, other):
        model, _ = build(densitron, "lstm")
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        singles.append((model, model.evaluate(x, tags, sample_weight=sw, batch_size=BATCH,
                                              verbose=0, return_dict=True)))
    inputs, outputs = [], []
    for name, (single, _) in zip("ab", singles):
        inp = layers.Input((T,), name=f"ids_{name}")
        branch = [layers.Embedding(V, 5, mask_zero=True), layers.LSTM(6, return_sequences=True),
                  layers.Dense(C, activation="softmax", name=f"tags_{name}")]
        h = inp
        for layer, own in zip(branch, single.layers[1:], strict=True):
            h = layer(h)
            layer.set_weights(own.get_weights())
        inputs.append(inp)
        outputs.append(h)
    model = densitron.Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy", "accuracy"])
    logs = model.evaluate([ids, other], [tags, tags], sample_weight=[sw, sw],
                          batch_size=BATCH, verbose=0, return_dict=True)
    for name, (_, single) in zip("ab", singles):
        assert logs[f"tags_{name}_loss"] == pytest.approx(single["loss"], rel=1e-6)
        assert logs[f"tags_{name}_accuracy"] == pytest.approx(single["accuracy"], rel=1e-6)
    assert logs["loss"] == pytest.approx(singles[0][1]["loss"] + singles[1][1]["loss"],
                                         rel=1e-6)
