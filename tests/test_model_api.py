"""The Keras model API around the engine: layers, weights, summary, calls, fit options,
History, progress output, callbacks."""

import sys

import numpy as np
import pytest

import densitron
from densitron import callbacks, layers
from densitron.layers import Dense, Input
from densitron.models import Model, Sequential


def lines_of(lines):
    """A summary print_fn that appends the lines of the text it is handed to `lines`."""
    return lambda text: lines.extend(text.splitlines())


def seed_model():
    inputs = Input(shape=(784,))
    x = Dense(64, activation="relu")(inputs)
    x = Dense(64, activation="relu")(x)
    return Model(inputs=inputs, outputs=Dense(10, activation="softmax")(x))


def toy(rows=64, width=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, width)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.argmax(x[:, :classes], axis=1)]
    return x, y


def toy_model(width=6, classes=3):
    inputs = Input(shape=(width,))
    h = Dense(16, activation="tanh")(inputs)
    model = Model(inputs, Dense(classes, activation="softmax")(h))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_layers_weights_and_counts_in_keras_order():
    model = seed_model()
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Dense", "Dense", "Dense"]
    assert [layer.name for layer in model.layers] == ["input_layer", "dense", "dense_1", "dense_2"]
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(784, 64), (64,), (64, 64), (64,), (64, 10), (10,)]
    assert model.count_params() == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10 == 55050
    assert model.get_layer("dense_1") is model.layers[2]
    assert model.get_layer(index=-1).units == 10
    with pytest.raises(ValueError, match="Received: name='nope'"):
        model.get_layer("nope")
    assert model.inputs[0].shape == (None, 784) and model.outputs[0].shape == (None, 10)
    seq = Sequential([Input(shape=(784,)), Dense(64), Dense(10)])
    assert [layer.name for layer in seq.layers] == ["dense_3", "dense_4"]  # no InputLayer


def test_glorot_uniform_and_zeros_initialization():
    model = seed_model()
    kernel, bias = model.get_weights()[:2]
    limit = np.sqrt(6.0 / (784 + 64))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.05 * limit
    assert not bias.any()


def test_set_weights_round_trip_and_changes_predictions():
    a, b = seed_model(), seed_model()
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    assert not np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    np.testing.assert_array_equal(a(x), a.predict(x, verbose=0))  # calling the model on arrays
    layer = a.layers[1]
    np.testing.assert_allclose(layer(x), np.maximum(x @ layer.kernel.numpy(), 0), rtol=1e-5,
                               atol=1e-5)


def test_summary_matches_keras_layout(capsys):
    seed_model().summary()
    out = capsys.readouterr().out
    assert out.startswith('Model: "functional"')
    assert "Connected to" not in out  # a chain: Keras leaves the column out
    for fragment in ["Layer (type)", "Output Shape", "Param #",
                     "input_layer (InputLayer)", "dense (Dense)", "(None, 64)", "50,240",
                     "4,160", "650", "Total params: 55,050 (215.04 KB)",
                     "Trainable params: 55,050 (215.04 KB)", "Non-trainable params: 0 (0.00 B)"]:
        assert fragment in out, fragment
    Sequential([Input(shape=(3,)), Dense(2)]).summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out and "Connected to" not in out
    inputs = Input(shape=(4,))  # branches: the column, each call's inputs
    a, b = Dense(3, name="a")(inputs), Dense(3, name="b")(inputs)
    Model(inputs, layers.Add(name="sum")([a, b])).summary()
    out = capsys.readouterr().out
    assert "Connected to" in out and "a[0][0], b[0][0]" in out


def test_summary_of_a_sequential_model_not_built_yet():
    # Keras 3.15's table, line for line: "?" shapes, "0 (unbuilt)" for a layer with weights
    calls = []
    Sequential([Dense(16, activation="relu", name="dense"), layers.Dropout(0.2, name="dropout"),
                Dense(3, name="dense_1")], name="s").summary(print_fn=calls.append)
    assert len(calls) == 1 and calls[0].endswith("\n")  # Keras 3: the whole text at once
    lines = calls[0].splitlines()
    assert lines == [
        'Model: "s"',
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓",
        "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
        "│ dense (Dense)                   │ ?                      │   0 (unbuilt) │",
        "├─────────────────────────────────┼────────────────────────┼───────────────┤",
        "│ dropout (Dropout)               │ ?                      │             0 │",
        "├─────────────────────────────────┼────────────────────────┼───────────────┤",
        "│ dense_1 (Dense)                 │ ?                      │   0 (unbuilt) │",
        "└─────────────────────────────────┴────────────────────────┴───────────────┘",
        " Total params: 0 (0.00 B)",
        " Trainable params: 0 (0.00 B)",
        " Non-trainable params: 0 (0.00 B)"]
    lines.clear()
    Sequential(name="e").summary(print_fn=lines_of(lines))
    assert lines[3:5] == [
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
        "└─────────────────────────────────┴────────────────────────┴───────────────┘"]
    with pytest.raises(TypeError, match="Received: print_fn=3"):
        Sequential([Dense(2)]).summary(print_fn=3)


def test_fit_verbose_modes(capsys):
    x, y = toy()
    model = toy_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "4/4 ━━━━━━━━━━━━━━━━━━━━" in out and "- accuracy: " in out and "- loss: " in out
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "4/4 - " in out and "━" not in out
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_history_validation_split_and_data():
    x, y = toy(rows=100)
    model = toy_model()
    h = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=0)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.params["steps"] == 8  # 80 training rows
    assert all(len(v) == 3 for v in h.history.values())
    # validation uses the last 20% of rows, unshuffled: evaluate reproduces it exactly
    val = model.evaluate(x[80:], y[80:], verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    h2 = model.fit(x[:80], y[:80], validation_data=(x[80:], y[80:]), epochs=1, verbose=0)
    assert "val_loss" in h2.history
    assert model.history is h2


def test_epoch_metrics_are_sample_weighted_means():
    x, y = toy(rows=50)
    model = toy_model()
    weights = model.get_weights()
    # no shuffle, one epoch with a partial last batch: the epoch loss is the mean over samples
    losses = []
    for start in range(0, 50, 16):
        losses.append(model.evaluate(x[start:start + 16], y[start:start + 16], verbose=0)[0])
    model.set_weights(weights)
    model.compile(optimizer=densitron.optimizers.SGD(learning_rate=0.0),
                  loss="categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    sizes = [16, 16, 16, 2]
    assert h.history["loss"][0] == pytest.approx(np.dot(losses, sizes) / 50, rel=1e-6)


def test_logs_in_keras_order():
    # Keras 3: logs (history, evaluate's dict) sorted by name, the validation ones after; the
    # evaluate list of a model of several outputs: loss, the outputs' losses, then the metrics
    # sorted by name (their unpacking order); metrics_names are model.metrics' names
    x, y = toy()
    h = toy_model().fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    inp = Input((x.shape[1],))
    hidden = Dense(4, activation="tanh")(inp)
    model = Model(inp, [Dense(1, name="price")(hidden),
                        Dense(3, activation="softmax", name="category")(hidden)])
    model.compile("sgd", ["mse", "categorical_crossentropy"], metrics=[["mae"], ["accuracy"]])
    logs = model.evaluate(x, [x[:, :1], y], verbose=0, return_dict=True)
    names = ["loss", "price_loss", "category_loss", "category_accuracy", "price_mae"]
    assert model.metrics_names == ["loss", "compile_metrics", "price_loss", "category_loss"]
    assert list(logs) == sorted(names)
    assert model.evaluate(x, [x[:, :1], y], verbose=0) == [logs[k] for k in names]


def test_evaluate_and_predict_return_shapes():
    x, y = toy()
    model = toy_model()
    loss, acc = model.evaluate(x, y, verbose=0)
    assert 0 <= acc <= 1 and loss > 0
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    # (Keras 3's logs come sorted by name; the list is loss first, then the metrics)
    assert list(d) == ["accuracy", "loss"] and d["loss"] == pytest.approx(loss)
    p = model.predict(x, batch_size=7, verbose=0)
    assert p.shape == (64, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(p, model.predict(x, batch_size=64, verbose=0))
    nometric = Model(model.inputs, model.outputs)
    nometric.compile(loss="categorical_crossentropy")
    assert isinstance(nometric.evaluate(x, y, verbose=0), float)


def test_accuracy_resolution_by_shapes():
    x, y = toy()
    labels = np.argmax(y, axis=1)
    for target, loss in ((y, "categorical_crossentropy"),
                         (labels, "sparse_categorical_crossentropy"),
                         (labels[:, None], "sparse_categorical_crossentropy")):
        model = toy_model()
        model.compile(loss=loss, metrics=["accuracy"])
        acc = model.evaluate(x, target, verbose=0)[1]
        expected = np.mean(np.argmax(model.predict(x, verbose=0), 1) == labels)
        assert acc == pytest.approx(expected)
    inputs = Input(shape=(6,))
    binary = Model(inputs, Dense(1, activation="sigmoid")(inputs))
    binary.compile(loss="binary_crossentropy", metrics=["accuracy"])
    yb = (x[:, 0] > 0).astype(np.float32)
    acc = binary.evaluate(x, yb, verbose=0)[1]
    assert acc == pytest.approx(np.mean((binary.predict(x, verbose=0)[:, 0] > 0.5) == yb))


def test_callbacks_see_batches_and_epochs_and_can_stop():
    x, y = toy(rows=40)
    seen = {"batches": [], "epochs": []}

    class Recorder(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batches"].append(batch)

        def on_epoch_end(self, epoch, logs=None):
            seen["epochs"].append((epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

    toy_model().fit(x, y, batch_size=10, epochs=5, callbacks=[Recorder()], verbose=0)
    assert seen["batches"] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert seen["epochs"] == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])]


def test_shuffle_changes_order_but_not_data():
    x, y = toy(rows=64)
    densitron.utils.set_random_seed(5)
    a = toy_model()
    w0 = a.get_weights()
    a.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    b = toy_model()
    b.set_weights(w0)
    b.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])
    c = toy_model()
    c.set_weights(w0)
    c.fit(x, y, batch_size=64, epochs=1, shuffle=True, verbose=0)  # one batch: order-free
    d = toy_model()
    d.set_weights(w0)
    d.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(c.get_weights()[0], d.get_weights()[0], rtol=1e-5, atol=1e-6)


def test_multi_input_multi_output_model_trains():
    a, b = Input(shape=(4,), name="a"), Input(shape=(3,), name="b")
    h = layers.Concatenate()([Dense(8, activation="relu")(a), Dense(8, activation="relu")(b)])
    out1 = Dense(2, activation="softmax", name="cls")(h)
    out2 = Dense(1, name="reg")(h)
    model = Model([a, b], [out1, out2])
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], []])
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(64, 4)), rng.normal(size=(64, 3))
    y1 = np.eye(2)[(xa[:, 0] > 0).astype(int)]
    y2 = xb[:, :1] * 2
    h = model.fit({"a": xa, "b": xb}, [y1, y2], epochs=20, batch_size=16, verbose=0)
    assert set(h.history) == {"loss", "cls_loss", "reg_loss", "cls_accuracy"}
    assert h.history["loss"][-1] < h.history["loss"][0]
    total = h.history["cls_loss"][-1] + 0.5 * h.history["reg_loss"][-1]
    assert h.history["loss"][-1] == pytest.approx(total, rel=1e-6)
    p1, p2 = model.predict([xa, xb], verbose=0)
    assert p1.shape == (64, 2) and p2.shape == (64, 1)


def test_num_threads_and_cpu_info():
    info = densitron.cpu_info()
    assert info["isa"] in ("generic", "avx2", "avx512")
    before = densitron.get_num_threads()
    densitron.set_num_threads(1)
    assert densitron.get_num_threads() == 1
    densitron.set_num_threads(before)
    with pytest.raises(ValueError):
        densitron.set_num_threads(0)


def test_threads_do_not_change_training_results():
    x = np.random.default_rng(0).random((256, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(256) % 10]
    results = []
    for threads in (1, 2):
        densitron.set_num_threads(threads)
        densitron.utils.set_random_seed(3)
        model = seed_model()
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


PROFILE_KEYS = ("gemm", "elementwise", "loss", "optimizer", "gather", "wait", "scheduling",
                "overhead")


def test_fit_profile_reports_every_category(capsys):
    x, y = toy(rows=256)
    model = toy_model()
    h = model.fit(x, y, batch_size=32, epochs=2, verbose=2, profile=True)
    p = h.profile
    for key in PROFILE_KEYS:
        assert p[key] >= 0.0, key
    assert p["steps"] == 16
    assert p["gemm"] > 0 and p["optimizer"] > 0 and p["loss"] > 0
    # The categories and the framework overhead share out the training loop's wall time, none
    # counted twice.
    assert sum(p[k] for k in PROFILE_KEYS) == pytest.approx(p["total"], rel=0.01)
    out = capsys.readouterr().out
    assert "Step profile: 16 steps" in out and "GEMM" in out and "optimizer" in out
    assert "waiting for the other threads" in out and "engine scheduling" in out
    # profiling is off again afterwards
    h2 = model.fit(x, y, epochs=1, verbose=0)
    assert not hasattr(h2, "profile")


def test_fit_profile_leaves_out_validation():
    # Validation runs outside the timed training loop, so the engine must not count them: with
    # 200 times more validation rows than training rows, the categories would exceed it.
    x, y = toy(rows=64)
    xv, yv = toy(rows=64 * 200, seed=1)
    h = toy_model().fit(x, y, batch_size=32, epochs=2, verbose=0, profile=True,
                        validation_data=(xv, yv))
    p = h.profile
    assert sum(p[k] for k in PROFILE_KEYS) == pytest.approx(p["total"], rel=0.01)
    assert p["overhead"] > 0.0


def test_dict_outputs_losses_weights_and_metrics():
    rng = np.random.default_rng(1)
    inp = Input(shape=(5,), name="features")
    h = Dense(8, activation="relu")(inp)
    model = Model({"features": inp},
                  {"kind": Dense(3, activation="softmax")(h), "size": Dense(1)(h)})
    model.compile(optimizer="adam",
                  loss={"kind": "sparse_categorical_crossentropy", "size": "mae"},
                  loss_weights={"kind": 2.0, "size": 1.0},
                  metrics={"kind": ["accuracy"], "size": ["mse"]})
    x = rng.normal(size=(40, 5))
    y = {"kind": rng.integers(0, 3, 40), "size": rng.normal(size=(40, 1))}
    h = model.fit({"features": x}, y, epochs=2, verbose=0)
    assert set(h.history) == {"loss", "kind_loss", "size_loss", "kind_accuracy", "size_mse"}
    total = 2.0 * h.history["kind_loss"][-1] + h.history["size_loss"][-1]
    assert h.history["loss"][-1] == pytest.approx(total, rel=1e-6)
    out = model.predict({"features": x}, verbose=0)
    assert set(out) == {"kind", "size"} and out["kind"].shape == (40, 3)
    with pytest.raises(ValueError, match="Received: loss="):
        model.compile(loss={"kind": "mse"})


def test_inference_results_do_not_depend_on_batch_size():
    rng = np.random.default_rng(2)
    inp = Input(shape=(30,))
    h = layers.BatchNormalization()(Dense(40, activation="gelu")(inp))
    h = layers.Dropout(0.5)(layers.LayerNormalization()(h))
    model = Model(inp, Dense(7, activation="softmax")(h))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    # 2500 rows: small batches run in passes of 1024 rows and a tail, the reference in one.
    x = rng.normal(size=(2500, 30)).astype(np.float32)
    y = np.eye(7)[rng.integers(0, 7, 2500)]
    ref = model.predict(x, batch_size=2500, verbose=0)
    for bs in (1, 7, 32, 999):
        np.testing.assert_array_equal(model.predict(x, batch_size=bs, verbose=0), ref)
        loss, acc = model.evaluate(x, y, batch_size=bs, verbose=0)
        assert acc == pytest.approx(np.mean(ref.argmax(1) == y.argmax(1)))
        assert loss == pytest.approx(model.evaluate(x, y, batch_size=2500, verbose=0)[0],
                                     rel=1e-12)


def test_inference_passes_of_a_wide_model_do_not_change_results():
    # A kernel of more than 2^19 values (900×600) makes the passes longer: 4096 rows and a
    # tail here, the reference in one pass of all 5000.
    rng = np.random.default_rng(3)
    inp = Input(shape=(900,))
    model = Model(inp, Dense(3, activation="softmax")(Dense(600, activation="relu")(inp)))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    assert model._inference_batch(32) == 4096
    assert Model(inp, Dense(3)(Dense(500)(inp)))._inference_batch(32) == 1024
    x = rng.normal(size=(5000, 900)).astype(np.float32)
    y = np.eye(3)[rng.integers(0, 3, 5000)]
    ref = model.predict(x, batch_size=5000, verbose=0)
    for bs in (32, 999):
        np.testing.assert_array_equal(model.predict(x, batch_size=bs, verbose=0), ref)
        assert model.evaluate(x, y, batch_size=bs, verbose=0)[0] == pytest.approx(
            model.evaluate(x, y, batch_size=5000, verbose=0)[0], rel=1e-12)


def test_weighted_metrics_in_fit_with_class_weight_and_multi_output_names():
    # class_weight becomes sample weights: the weighted accuracy is the weighted mean of the
    # per-sample hits. Two outputs: names carry the output's prefix.
    x, y = toy(rows=96)
    model = toy_model()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    h = model.fit(x, y, batch_size=32, epochs=1, class_weight=cw, shuffle=False, verbose=0)
    assert sorted(h.history) == ["accuracy", "loss", "weighted_accuracy"]
    # the weights and hits of the epoch's steps, recomputed: the model after the epoch is not
    # the one each batch saw, so check the relation on evaluate instead
    w = np.array([cw[c] for c in np.argmax(y, axis=1)], dtype=np.float32)
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    hits = np.argmax(model.predict(x, verbose=0), axis=1) == np.argmax(y, axis=1)
    assert logs["weighted_accuracy"] == pytest.approx((w * hits).sum() / w.sum(), rel=1e-6)
    assert logs["accuracy"] == pytest.approx(hits.mean(), rel=1e-6)
    with pytest.raises(ValueError, match="Received instead: weighted_metrics='accuracy'"):
        model.compile(optimizer="rmsprop", loss="mse", weighted_metrics="accuracy")

    a = Input(shape=(6,), name="a")
    h1 = Dense(8, activation="relu")(a)
    two = Model(a, {"p": Dense(3, activation="softmax", name="p")(h1),
                    "q": Dense(1, name="q")(h1)})
    two.compile(optimizer="rmsprop", loss={"p": "categorical_crossentropy", "q": "mse"},
                metrics={"p": ["accuracy"]}, weighted_metrics={"p": ["accuracy"], "q": ["mae"]})
    logs = two.evaluate(x, {"p": y, "q": x[:, :1]}, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "p_accuracy", "p_loss", "p_weighted_accuracy", "q_loss",
                            "q_mae"]


def test_clone_model_rebuilds_with_fresh_weights():
    inp = layers.Input(shape=(4,))
    h = layers.Dense(8, activation="relu")(inp)
    model = Model(inp, [layers.Dense(2)(h), layers.Dense(1)(h)])
    model.compile(optimizer="adam", loss="mse")
    clone = densitron.models.clone_model(model)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.output_shape == model.output_shape and not clone.compiled
    assert not np.allclose(clone.get_weights()[0], model.get_weights()[0])  # fresh
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for a, b in zip(model.predict(x, verbose=0), clone.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    clone.layers[1].kernel.assign(np.zeros((4, 8)))  # its own variables
    assert np.any(model.layers[1].kernel.numpy() != 0)
    seq = Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    assert isinstance(densitron.models.clone_model(seq), Sequential)
    with pytest.raises(ValueError, match="Received: clone_function="):
        densitron.models.clone_model(model, clone_function="copy")
    # (a clone_function giving the layers themselves: a model sharing their weights)
    shared = densitron.models.clone_model(model, clone_function=lambda layer: layer)
    assert shared.layers[1] is model.layers[1]
    with pytest.raises(ValueError, match="Received: model="):
        densitron.models.clone_model("model")


def test_model_from_json_round_trip_and_bad_strings():
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="tanh"),
                        layers.Dense(2)])
    again = densitron.models.model_from_json(model.to_json(indent=2))
    assert again.get_config() == model.get_config()
    for bad in ("{not json", "[1, 2]", 5):
        with pytest.raises(ValueError, match="Received: json_string="):
            densitron.models.model_from_json(bad)


def test_embedding_dot_recommender_trains():
    # Keras's matrix-factorisation recommender: user and item embeddings, their Dot as the
    # predicted rating; the rating loss falls well below the ratings' variance.
    rng = np.random.default_rng(11)
    users, items, k = 30, 40, 4
    true_u, true_i = rng.normal(size=(users, k)), rng.normal(size=(items, k))
    u = rng.integers(0, users, 3000)
    i = rng.integers(0, items, 3000)
    r = (true_u[u] * true_i[i]).sum(axis=1).astype(np.float32)
    ui, ii = layers.Input(shape=(1,)), layers.Input(shape=(1,))
    ue = layers.Flatten()(layers.Embedding(users, 8)(ui))
    ie = layers.Flatten()(layers.Embedding(items, 8)(ii))
    model = Model([ui, ii], layers.Dot(axes=1)([ue, ie]))
    model.compile(optimizer=densitron.optimizers.Adam(0.02), loss="mse")
    history = model.fit([u, i], r, epochs=30, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.1 * r.var()


def test_dot_refuses_batched_matrix_products_and_bad_axes():
    a, b = layers.Input(shape=(3, 4)), layers.Input(shape=(3, 4))
    with pytest.raises(ValueError, match="no batched matrix products"):
        layers.Dot(axes=2)([a, b])
    with pytest.raises(ValueError, match="Incompatible input shapes"):
        layers.Dot(axes=1)([layers.Input(shape=(4,)), layers.Input(shape=(5,))])
    with pytest.raises(ValueError, match="Received: axes=0"):
        layers.Dot(axes=0)([layers.Input(shape=(4,)), layers.Input(shape=(4,))])
    with pytest.raises(TypeError, match="Received: axes='last'"):
        layers.Dot(axes="last")


def test_batch_methods_match_their_full_counterparts():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    assert model.test_on_batch(x, y) == model.evaluate(x, y, batch_size=8, verbose=0)
    assert model.test_on_batch(x, y, return_dict=True) == model.evaluate(
        x, y, batch_size=8, verbose=0, return_dict=True)
    w = rng.random(8).astype(np.float32)
    assert model.test_on_batch(x, y, sample_weight=w) == model.evaluate(
        x, y, batch_size=8, sample_weight=w, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, verbose=0))
    # train_on_batch with sample weights: the step of fit on the same single batch
    twin = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="softmax")])
    twin.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    twin.set_weights(model.get_weights())
    logs = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
    history = twin.fit(x, y, batch_size=8, sample_weight=w, shuffle=False, verbose=0)
    assert logs["loss"] == pytest.approx(history.history["loss"][0])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    with pytest.raises(ValueError, match="Received: both"):
        model.train_on_batch(x, y, sample_weight=w, class_weight={0: 1.0})


def test_model_and_layer_input_and_output_tensors():
    # Keras's feature extraction: a model from another's `input` to a layer's `output`
    inputs = Input((4,))
    h = Dense(3, name="hidden")(inputs)
    m = Model(inputs, Dense(2)(h))
    assert m.input is inputs and m.output is m.outputs[0]
    assert m.get_layer("hidden").input is inputs and m.get_layer("hidden").output is h
    features = Model(m.input, m.get_layer("hidden").output)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    kernel, bias = m.get_layer("hidden").get_weights()
    np.testing.assert_allclose(features.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5,
                               atol=1e-6)
    # a Sequential rebuilt by add() and pop(): its layers' outputs are those of its graph
    s = Sequential([Input((4,)), Dense(3, name="a")])
    s.add(Dense(2))
    s.add(Dense(5))
    both = Model(s.input, [s.get_layer("a").output, s.output])
    assert [o.shape for o in both.predict(x, verbose=0)] == [(5, 3), (5, 5)]
    s.pop()
    assert s.output.shape == (None, 2)
    # several inputs and outputs come as lists, named ones as dicts
    a, b = Input((2,), name="a"), Input((3,), name="b")
    pair = Model({"a": a, "b": b}, [Dense(1)(a), Dense(1)(b)])
    assert pair.input == {"a": a, "b": b} and len(pair.output) == 2
    with pytest.raises(AttributeError, match="never been called.*Received"):
        Dense(2).output


def test_learning_rate_variable_idioms_and_normalize():
    import pickle

    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    y = np.zeros((20, 2), np.float32)
    inputs = Input((4,))
    m = Model(inputs, Dense(2)(inputs))
    m.compile(densitron.optimizers.SGD(0.1), "mse")
    m.fit(x, y, epochs=1, verbose=0)
    lr = m.optimizer.learning_rate
    assert lr == pytest.approx(0.1) and lr.numpy().dtype == np.float32
    # the Variable attributes callbacks read (Keras 3's learning_rate and iteration variables)
    assert (lr.name, lr.path, lr.shape, lr.dtype) == ("learning_rate", "sgd/learning_rate", (),
                                                      "float32")
    assert lr.value == np.float32(0.1)
    it = m.optimizer.iterations
    assert it == 1 and it.numpy() == 1 and it.numpy().dtype == np.int32
    assert (it.name, it.path, it.shape, it.dtype) == ("iteration", "sgd/iteration", (), "int32")
    assert type(pickle.loads(pickle.dumps(it))) is int
    m.optimizer.learning_rate.assign(0.05)  # Keras 3's variable idiom
    assert m.optimizer.learning_rate == pytest.approx(0.05)
    before = m.get_weights()[0].copy()
    grads = m._compute_gradients(x, y)[0]
    m.fit(x, y, epochs=1, batch_size=20, verbose=0, shuffle=False)
    np.testing.assert_allclose(m.get_weights()[0], before - 0.05 * grads, rtol=1e-5, atol=1e-7)
    assert pickle.loads(pickle.dumps(m.optimizer.learning_rate)) == pytest.approx(0.05)
    scheduled = densitron.optimizers.SGD(
        densitron.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="not settable.*Received"):
        scheduled.learning_rate.assign(1.0)
    a = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(densitron.utils.normalize(a),
                               [[0.6, 0.8], [0, 0], [2 ** -0.5, -(2 ** -0.5)]])
    np.testing.assert_allclose(densitron.utils.normalize(a, axis=0, order=1),
                               a / np.abs(a).sum(0))


def test_shuffle_batch_shuffles_within_batch_sized_chunks():
    # Keras's shuffle="batch": each batch holds the rows of its own chunk, in a random order.
    # Training so equals training unshuffled on the rows in that order.
    from densitron.utils.rng import global_generator

    rows, batch = 50, 16
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 3)).astype(np.float32), rng.normal(size=(rows, 1))

    def build():
        densitron.utils.set_random_seed(4)
        inputs = Input((3,))
        m = Model(inputs, Dense(1)(Dense(4, activation="tanh")(inputs)))
        m.compile("adam", "mse")
        return m

    a, b = build(), build()
    densitron.utils.set_random_seed(5)
    a.fit(x, y, batch_size=batch, epochs=1, shuffle="batch", verbose=0)
    densitron.utils.set_random_seed(5)
    perm = np.lexsort((global_generator().random(rows), np.arange(rows) // batch))
    for lo in range(0, rows, batch):
        assert sorted(perm[lo:lo + batch]) == list(range(lo, min(rows, lo + batch)))
    assert not np.array_equal(perm, np.arange(rows))
    b.fit(x[perm], y[perm], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_config_settings_densitron_runs_are_accepted():
    cfg = densitron.config
    assert cfg.floatx() == "float32" and cfg.image_data_format() == "channels_last"
    assert cfg.backend() == "densitron" and cfg.epsilon() == 1e-7
    cfg.set_floatx("float32")
    cfg.set_image_data_format("channels_last")
    cfg.enable_unsafe_deserialization()
    for call in (lambda: cfg.set_floatx("float64"), lambda: cfg.set_epsilon(1e-5),
                 lambda: cfg.set_image_data_format("channels_first")):
        with pytest.raises(ValueError, match="Received"):
            call()


def test_backend_namespace_as_keras_exports_it():
    backend = densitron.backend
    for name in ("floatx", "epsilon", "image_data_format", "backend", "set_floatx",
                 "set_epsilon", "set_image_data_format"):
        assert getattr(backend, name) is getattr(densitron.config, name)
    with pytest.raises(ValueError, match="Received: value='float16'"):
        backend.set_floatx("float16")
    assert backend.standardize_dtype(None) == "float32"
    assert backend.standardize_dtype(np.float64) == "float64"
    assert backend.standardize_dtype(np.dtype("uint8")) == "uint8"
    assert backend.standardize_dtype(int) == "int32" and backend.standardize_dtype(bool) == "bool"
    assert backend.standardize_dtype("int16") == "int16"
    for bad in ("float128", "dense", 3, [1]):
        with pytest.raises(ValueError, match="Invalid dtype.*Received: dtype="):
            backend.standardize_dtype(bad)
    assert backend.is_float_dtype("float16") and backend.is_float_dtype(np.float64)
    assert not backend.is_float_dtype("int8") and backend.is_int_dtype(np.uint16)
    assert not backend.is_int_dtype(float)
    # get_uid counts on the automatic names' counter, as Keras's does
    densitron.utils.clear_session()
    Dense(2)
    assert backend.get_uid("dense") == 2 and backend.get_uid("dense") == 3
    assert Dense(2).name == "dense_3"
    assert backend.get_uid("my_prefix") == 1
    densitron.utils.clear_session()
    assert backend.get_uid("dense") == 1
    assert backend.is_keras_tensor(Input((3,))) and not backend.is_keras_tensor(np.ones(3))


def test_source_inputs_and_batch_packing():
    utils = densitron.utils
    a, b = Input((3,), name="src_a"), Input((4,), name="src_b")
    mixed = layers.Concatenate()([Dense(2)(a), b])
    out = Dense(1)(layers.Add()([Dense(1)(b), Dense(1)(mixed)]))
    assert [t.name for t in utils.get_source_inputs(out)] == ["src_b", "src_a"]  # as Keras
    assert utils.get_source_inputs(a) == [a]
    assert utils.is_keras_tensor(out) and not utils.is_keras_tensor([out])
    with pytest.raises(ValueError, match="Received: tensor=3"):
        utils.get_source_inputs(3)
    x, y, w = np.ones((2, 3)), np.zeros(2), np.ones(2)
    assert utils.pack_x_y_sample_weight(x) is x
    assert utils.pack_x_y_sample_weight((x, x)) == ((x, x),)  # a tuple x stays one input
    assert utils.pack_x_y_sample_weight(x, y) == (x, y)
    assert utils.pack_x_y_sample_weight(x, y, w) == (x, y, w)
    assert utils.unpack_x_y_sample_weight(x) == (x, None, None)
    assert utils.unpack_x_y_sample_weight((x,)) == (x, None, None)
    assert utils.unpack_x_y_sample_weight([x, y]) == (x, y, None)
    assert utils.unpack_x_y_sample_weight((x, y, w)) == (x, y, w)
    for packed in ((x,), (x, y), (x, y, w)):
        assert utils.unpack_x_y_sample_weight(packed)[:len(packed)] == packed
    with pytest.raises(ValueError, match="Received: a tuple of 4 items"):
        utils.unpack_x_y_sample_weight((x, y, w, w))


def test_interactive_logging_off_sends_progress_and_messages_to_the_log(capsys, caplog):
    x, y = np.ones((64, 3)), np.ones(64)
    inputs = Input((3,))
    model = Model(inputs, Dense(1)(inputs))
    model.compile("sgd", "mse")
    stop = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, verbose=1)
    assert densitron.config.is_interactive_logging_enabled()
    densitron.config.disable_interactive_logging()
    try:
        assert not densitron.utils.is_interactive_logging_enabled()
        with caplog.at_level("INFO", logger="densitron"):
            model.fit(x, y, epochs=3, batch_size=32, callbacks=[stop], verbose=1)
        assert capsys.readouterr().out == ""
        logged = [r.getMessage() for r in caplog.records if r.name == "densitron"]
        assert logged[0] == "Epoch 1/3" and logged[1].startswith("2/2 ")
        assert "loss:" in logged[1] and "\r" not in logged[1]
        assert "Epoch 2: early stopping" in logged
    finally:
        densitron.utils.enable_interactive_logging()
    caplog.clear()
    model.fit(x, y, epochs=1, batch_size=32, verbose=1)
    assert capsys.readouterr().out.startswith("2/2 ")  # (one epoch: no "Epoch 1/1", as Keras)
    assert not [r for r in caplog.records if r.name == "densitron"]


def test_sequential_build_with_an_input_shape():
    s = Sequential([Dense(4, activation="relu"), Dense(2)])
    s.build((None, 8))
    assert s.built and s.count_params() == 8 * 4 + 4 + 4 * 2 + 2
    assert s.predict(np.ones((3, 8)), verbose=0).shape == (3, 2)
    lines = []
    s.summary(print_fn=lines_of(lines))
    assert any("Total params: 46" in line for line in lines)
    for bad in (784, (None,)):
        with pytest.raises(ValueError, match="input_shape.*Received"):
            Sequential([Dense(2)]).build(bad)
    with pytest.raises(ValueError, match="not been built.*Received"):
        Sequential([Dense(2)]).build()


def test_plot_model_writes_dot_and_renders_with_graphviz(tmp_path, monkeypatch):
    import shutil

    i = Input((4,), name="x")
    h = Dense(3, activation="relu", name="h")(i)
    m = Model(i, Dense(1, name="o")(layers.Concatenate(name="c")([h, i])))
    dot = densitron.utils.model_to_dot(m, show_shapes=True, show_layer_activations=True)
    for piece in ("x (InputLayer)", "h (Dense)", "activation: relu", "output: (None, 7)",
                  "n0 -> n1;", "n0 -> n2;", "n1 -> n2;", "n2 -> n3;"):
        assert piece in dot, piece
    path = densitron.utils.plot_model(m, to_file=tmp_path / "m.dot", rankdir="LR")
    with open(path) as f:
        text = f.read()
    assert text.startswith('digraph "') and "rankdir=LR" in text
    if shutil.which("dot"):
        png = densitron.utils.plot_model(m, to_file=str(tmp_path / "m.png"))
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delitem(sys.modules, "IPython.core.magics.namespace", raising=False)
    with pytest.raises(ImportError, match="Graphviz.*Received"):
        densitron.utils.plot_model(m, to_file=str(tmp_path / "m.png"))
    # (in a notebook, as Keras: the message, and the cell runs on)
    monkeypatch.setitem(sys.modules, "IPython.core.magics.namespace", object())
    assert densitron.utils.plot_model(m, to_file=str(tmp_path / "m.png")) is None
    with pytest.raises(ValueError, match="rankdir.*Received"):
        densitron.utils.model_to_dot(m, rankdir="BT")


def test_input_layer_takes_keras_2_input_shape_and_batch_shape():
    with pytest.warns(UserWarning, match="input_shape.*deprecated"):
        a = Sequential([layers.InputLayer(input_shape=(3,)), Dense(1)])
    b = Sequential([layers.InputLayer(batch_shape=(None, 3)), Dense(1)])
    assert a.count_params() == b.count_params() == 4
    assert a.input_shape == b.input_shape == (None, 3)


def test_metrics_names_reset_metrics_and_compile_config():
    i = Input((3,))
    m = Model(i, [Dense(2, name="a")(i), Dense(1, name="b")(i)])
    assert m.metrics_names == [] and m.get_compile_config() is None
    m.compile("sgd", ["mse", "mae"], metrics=[["mae"], ["mse"]])
    assert m.metrics_names == ["loss", "compile_metrics"]
    x, ys = np.ones((4, 3)), [np.zeros((4, 2)), np.zeros((4, 1))]
    values = m.evaluate(x, ys, verbose=0)
    assert m.metrics_names == ["loss", "compile_metrics", "a_loss", "b_loss"]
    names = ["loss", "a_loss", "b_loss", "a_mae", "b_mse"]
    assert dict(zip(names, values)) == m.evaluate(x, ys, verbose=0, return_dict=True)
    m.reset_metrics()
    other = densitron.models.clone_model(m)
    other.set_weights(m.get_weights())
    other.compile_from_config(m.get_compile_config())
    assert other.evaluate(x, ys, verbose=0) == values
    with pytest.raises(ValueError, match="config.*Received"):
        other.compile_from_config({"loss": "mse"})


def test_keras_3_variable_names():
    model = densitron.Sequential([densitron.layers.Input((3,)), densitron.layers.Dense(2),
                                  densitron.layers.BatchNormalization()])
    assert model.variables == model.weights and len(model.variables) == 6
    assert model.trainable_variables == model.trainable_weights
    assert model.non_trainable_variables == model.non_trainable_weights
    assert len(model.non_trainable_variables) == 2
    assert model.layers[0].trainable_variables == model.layers[0].trainable_weights


def test_metrics_as_a_list_per_output_for_one_output():
    model = densitron.Sequential([densitron.layers.Input((3,)), densitron.layers.Dense(2)])
    model.compile("adam", ["mse"], metrics=[["mae", "mse"]])
    logs = model.evaluate(np.ones((4, 3)), np.zeros((4, 2)), verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "mae", "mse"]


def test_keras_top_level_names_and_registry_helpers():
    # keras.Layer & co. (Keras 3's top-level names) and the registry lookups of
    # keras.saving / keras.utils.
    assert densitron.Layer is densitron.layers.Layer
    assert densitron.Loss is densitron.losses.Loss and densitron.Metric is densitron.metrics.Metric
    assert densitron.Optimizer is densitron.optimizers.Optimizer
    assert densitron.version() == densitron.__version__

    @densitron.saving.register_keras_serializable(package="tests_api")
    class Twice(densitron.Layer):
        def call(self, x):
            return x * 2.0

    assert densitron.saving.get_registered_name(Twice) == "tests_api>Twice"
    assert densitron.utils.get_registered_object("tests_api>Twice") is Twice
    assert densitron.saving.get_registered_object("nothing_here") is None
    with densitron.saving.CustomObjectScope({"Halve": Twice}):
        assert densitron.saving.get_registered_object("Halve") is Twice
    assert densitron.saving.get_registered_object("Halve") is None
    inp = densitron.Input((3,))
    model = densitron.Model(inp, Twice()(inp))
    np.testing.assert_array_equal(model.predict(np.ones((2, 3), np.float32), verbose=0),
                                  np.full((2, 3), 2.0))


def test_input_spec_of_a_custom_layer():
    # Keras's InputSpec: a custom layer states what it accepts, checked at every call
    from densitron.layers import InputSpec

    class Pairwise(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.input_spec = InputSpec(ndim=2, axes={-1: 4})
            self.inner = Dense(2)

        def call(self, x):
            return self.inner(x)

    out = Pairwise()(Input((4,)))
    assert out.shape == (None, 2)
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=3"):
        Pairwise()(Input((3, 4)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        Pairwise()(Input((5,)))
    layer = Pairwise()
    assert layer(np.ones((3, 4), np.float32)).shape == (3, 2)  # eager calls are checked too
    with pytest.raises(ValueError, match="expected axis -1"):
        layer(np.ones((3, 5), np.float32))
    spec = InputSpec(shape=(None, 3))
    assert spec.ndim == 2 and InputSpec.from_config(spec.get_config()).shape == (None, 3)
    from densitron.layers.input_spec import assert_input_compatibility

    assert_input_compatibility(spec, Input((3,)), "ok")
    with pytest.raises(ValueError, match="expected shape=\\(None, 3\\), found shape=\\(None, 2\\)"):
        assert_input_compatibility(spec, Input((2,)), "shape")
    with pytest.raises(ValueError, match="expected min_ndim=3"):
        assert_input_compatibility(InputSpec(min_ndim=3), Input((2,)), "min")
    with pytest.raises(ValueError, match="expected max_ndim=2"):
        assert_input_compatibility(InputSpec(max_ndim=2), Input((2, 2)), "max")
    with pytest.raises(ValueError, match="expects 2 input\\(s\\), but it received 1"):
        assert_input_compatibility([spec, spec], Input((3,)), "two")
    for bad, match in (({"ndim": -1}, "Received: ndim=-1"), ({"axes": "x"}, "Received: axes"),
                       ({"shape": "x"}, "Received: shape='x'"),
                       ({"ndim": 2, "axes": {3: 1}}, "Axis 3 is greater"),
                       ({"dtype": "nope"}, "Received: dtype='nope'")):
        with pytest.raises(ValueError, match=match):
            InputSpec(**bad)


def test_dtype_policies_are_float32():
    # densitron computes in float32: that policy is accepted everywhere Keras takes one, any
    # other is refused naming it (a layer's dtype was ignored before, silently)
    assert densitron.mixed_precision.global_policy() == densitron.DTypePolicy("float32")
    densitron.mixed_precision.set_global_policy("float32")
    densitron.config.set_dtype_policy(densitron.dtype_policies.DTypePolicy())
    assert densitron.config.dtype_policy().compute_dtype == "float32"
    for bad in ("mixed_float16", "mixed_bfloat16", "float64"):
        with pytest.raises(ValueError, match=f"Received: name='{bad}'"):
            densitron.mixed_precision.set_global_policy(bad)
        with pytest.raises(ValueError, match=f"Received: dtype='{bad}'"):
            Dense(2, dtype=bad)
    for ok in ("float32", None, np.float32, densitron.DTypePolicy("float32"),
               {"class_name": "DTypePolicy", "config": {"name": "float32"}}):
        Dense(2, dtype=ok)
    assert densitron.InputSpec is densitron.layers.InputSpec
    # a Keras file of a mixed-precision model loads and runs in float32
    from densitron import keras_format

    entry = keras_format._densitron_layer_config(
        "Dense", {"units": 2, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                        "config": {"name": "mixed_float16"}}})
    assert Dense.from_config(entry).units == 2


def test_an_input_no_output_depends_on_is_kept_as_keras_keeps_it(tmp_path, keras):
    """Keras builds a model with an unused input (a loss or metric may read it): its rows
    are taken and not read; it sits at depth 0 of `layers`, before the output layers."""
    def build(ns, Input_, Model_, order):
        a, b = Input_((6,), name="a"), Input_((4,), name="unused")
        h = ns.layers.Dense(5, name="h")(a)
        return Model_([a, b] if order else [b, a], ns.layers.Dense(3, name="d")(h))

    rng = np.random.default_rng(1)
    for order in (True, False):
        ours = build(densitron, Input, Model, order)
        theirs = build(keras, keras.Input, keras.Model, order)
        assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
        assert ours.get_config()["input_layers"] == theirs.get_config()["input_layers"]
        x = [rng.random((12, 6)).astype(np.float32), rng.random((12, 4)).astype(np.float32)]
        if not order:
            x = x[::-1]
        ours.compile("adam", "mse")
        ours.fit(x, rng.random((12, 3)), epochs=2, verbose=0)
        path = str(tmp_path / f"unused_{order}.keras")
        ours.save(path)
        again = densitron.models.load_model(path)
        np.testing.assert_array_equal(again.predict(x, verbose=0), ours.predict(x, verbose=0))
        changed = [a if a.shape[1] == 6 else a + 1.0 for a in x]  # the unused input's values
        np.testing.assert_array_equal(ours.predict(changed, verbose=0),
                                      ours.predict(x, verbose=0))
        with pytest.raises(ValueError, match="2 inputs"):
            ours.predict(x[0], verbose=0)


def test_model_metrics_as_keras_lists_them():
    """Keras 3's model.metrics: [] before compile, the loss tracker, and "compile_metrics"
    (holding one per compiled metric once a run has logged them), with the latest results."""
    model = Sequential([Input((3,)), Dense(1)])
    assert model.metrics == []
    model.compile("sgd", "mse")
    assert [m.name for m in model.metrics] == ["loss"]
    model.compile("sgd", "mse", metrics=["mae", densitron.metrics.RootMeanSquaredError()])
    loss, compiled = model.metrics
    assert (loss.name, compiled.name, compiled.metrics) == ("loss", "compile_metrics", [])
    with pytest.raises(ValueError, match="not yet been built"):
        compiled.result()
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3)).astype(np.float32), rng.random((16, 1)).astype(np.float32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert [m.name for m in compiled.metrics] == ["mae", "root_mean_squared_error"]
    assert loss.result() == np.float32(logs["loss"])
    assert compiled.result() == {k: np.float32(v) for k, v in logs.items() if k != "loss"}
    model.reset_metrics()  # (Keras's metrics stay, their results at 0)
    assert loss.result() == 0.0 and compiled.result() == {"mae": 0.0,
                                                           "root_mean_squared_error": 0.0}
    assert model.get_metrics_result() == {"loss": 0.0, "mae": 0.0,
                                          "root_mean_squared_error": 0.0}


def test_a_compile_that_raises_leaves_the_model_as_it_was():
    model = Sequential([Input((5,)), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 5)).astype(np.float32), rng.integers(0, 3, 20)
    model.fit(x, y, verbose=0)
    optimizer, steps = model.optimizer, int(model.optimizer.iterations)
    config = model.get_compile_config()
    for bad in ({"optimizer": "adam", "loss": "categorical_crossentropyy"},
                {"optimizer": "adamm", "loss": "mse"},
                {"optimizer": "sgd", "loss": "mse", "loss_weights": "x"},
                {"optimizer": "sgd", "loss": "mse", "metrics": "accuracy"}):
        with pytest.raises(ValueError, match="Received"):
            model.compile(**bad)
        assert model.optimizer is optimizer and int(optimizer.iterations) == steps
        assert model.get_compile_config() == config
    model.fit(x, y, verbose=0)  # trains on with its optimizer's state
    assert int(optimizer.iterations) == 2 * steps


def test_output_names_are_keras_s():
    inputs = Input(shape=(4,))
    h = Dense(3, name="h")(inputs)
    model = Model(inputs, {"out": Dense(1, name="head")(h), "aux": Dense(2, name="side")(h)})
    assert model.output_names == ["side", "head"]  # (a dict's outputs by sorted keys)
    model.output_names = ["a", "b"]  # an attribute in Keras: assignable
    assert model.output_names == ["a", "b"]
    assert Sequential([Input(shape=(2,)), Dense(1, name="only")]).output_names == ["only"]


def test_summary_counts_the_optimizers_variables_once_it_has_run():
    # Keras 3.15's lines (on JAX and NumPy): Adam's iterations (int32), learning rate and two
    # slots a weight
    model = Sequential([Input(shape=(3,)), Dense(4), Dense(1)])
    model.compile("adam", "mse")
    lines = []
    model.summary(print_fn=lines_of(lines))
    assert lines[-1] == " Non-trainable params: 0 (0.00 B)"
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    lines.clear()
    model.summary(print_fn=lines_of(lines))
    assert lines[-4:] == [" Total params: 65 (260.00 B)", " Trainable params: 21 (84.00 B)",
                          " Non-trainable params: 0 (0.00 B)",
                          " Optimizer params: 44 (176.00 B)"]


def test_get_metrics_result_is_keras_s():
    model = Sequential([Input(shape=(5,)), Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    assert model.get_metrics_result() == {"loss": 0.0}
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="not yet been built"):
        model.get_metrics_result()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 5)), rng.integers(0, 2, 20)
    h = model.fit(x, y, verbose=0, validation_data=(x[:4], y[:4])).history
    got = model.get_metrics_result()  # the latest run's: the validation's
    assert list(got) == ["loss", "accuracy"] and all(isinstance(v, float) for v in got.values())
    assert got["loss"] == pytest.approx(h["val_loss"][0])
    assert got["accuracy"] == pytest.approx(h["val_accuracy"][0])


def test_layers_leave_out_the_layers_of_ops_as_keras_lists_only_layers():
    # keras.io's Deep & Cross style arithmetic and densitron.ops between layers: Keras's
    # operations, not among model.layers (nor do they shift model.layers[i] or get_layer(index))
    inp = Input((4,), name="x")
    h = Dense(4, name="d1")(inp)
    y = densitron.ops.sigmoid(inp * h + inp) * 2.0
    model = Model(inp, Dense(1, name="out")(y[:, :3]))
    assert [layer.name for layer in model.layers] == ["x", "d1", "out"]
    assert model.get_layer(index=2) is model.layers[-1]
    assert len(model.weights) == 4 and model.count_params() == 4 * 4 + 4 + 3 + 1
    model.compile("sgd", "mse")
    x = np.ones((2, 4), np.float32)
    model.fit(x, np.ones((2, 1)), verbose=0)
    assert model.predict(x, verbose=0).shape == (2, 1)
    assert model.count_params() == 24


def test_a_model_of_named_inputs_called_on_a_dict():
    # The structured-data examples' preprocessing model of dict inputs, called on arrays and
    # inside the end-to-end model on the dict of its Inputs; a dict with other keys too is
    # taken with Keras's warning (missing keys are refused)
    a, b = Input((1,), name="a"), Input((2,), name="b")
    inner = Model({"a": a, "b": b}, densitron.layers.Concatenate()([a, b]))
    A, B = np.ones((3, 1), np.float32), np.full((3, 2), 2.0, np.float32)
    np.testing.assert_array_equal(inner({"a": A, "b": B}), [[1, 2, 2]] * 3)
    listed = Model([a, b], densitron.layers.Concatenate()([a, b]))
    np.testing.assert_array_equal(listed({"b": B, "a": A}), [[1, 2, 2]] * 3)
    feats = {"a": Input((1,), name="a"), "b": Input((2,), name="b")}
    outer = Model(feats, Dense(1, kernel_initializer="ones")(inner(feats)))
    np.testing.assert_allclose(outer.predict({"a": A, "b": B}, verbose=0), [[5.0]] * 3)
    with pytest.warns(UserWarning, match=r"keys \['c'\].*left out"):
        np.testing.assert_allclose(outer.predict({"a": A, "b": B, "c": A}, verbose=0),
                                   [[5.0]] * 3)
    with pytest.raises(ValueError, match="Received: keys"):
        outer.predict({"a": A}, verbose=0)


def test_an_activation_set_anew_after_building_takes_effect():
    # The "get the logits" idiom (Grad-CAM): model.layers[-1].activation = None, then predict;
    # it was silently ignored. The optimizer's state goes on through the rebuilt graph.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]

    def trained():
        densitron.utils.set_random_seed(3)
        inputs = Input((4,))
        model = Model(inputs, Dense(3, activation="softmax")(Dense(5, activation="relu")(inputs)))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        return model

    model, twin = trained(), trained()
    probs = model.predict(x, verbose=0)
    head = model.layers[-1]
    head.activation = None
    logits = model.predict(x, verbose=0)
    expected = np.maximum(x @ model.get_weights()[0] + model.get_weights()[1], 0) @ \
        model.get_weights()[2] + model.get_weights()[3]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x[:2]), logits[:2], rtol=1e-6)
    head.activation = densitron.activations.softmax
    np.testing.assert_allclose(model.predict(x, verbose=0), probs, rtol=1e-6)
    for m in (model, twin):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    head.activation = lambda t: densitron.ops.relu(t) * 2.0
    with pytest.raises(ValueError, match="activation written in Python.*Received"):
        model.predict(x, verbose=0)


def test_small_keras_signatures():
    # Sequential.pop(rebuild=False), clear_session(free_memory=True), count_params of a layer
    # not built (Keras's ValueError)
    seq = Sequential([Input((3,)), Dense(2), Dense(1)])
    seq.pop(rebuild=False)
    assert len(seq.layers) == 1
    densitron.backend.clear_session(free_memory=True)
    with pytest.raises(ValueError, match="isn't built.*Received"):
        Dense(2).count_params()
    assert densitron.layers.Flatten().count_params() == 0


def test_summary_show_trainable_expand_nested_and_layer_range():
    inner = Sequential([Input((3,)), Dense(4, name="f1")], name="inner")
    inputs = Input((3,))
    frozen = Dense(2, name="b")
    frozen.trainable = False
    model = Model(inputs, Dense(1, name="c")(frozen(inner(inputs))))
    lines = []
    model.summary(print_fn=lines_of(lines), show_trainable=True, expand_nested=True,
                  line_length=130)
    table = "\n".join(lines)
    assert "Trainable" in lines[2]
    rows = [line for line in lines if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == [
        f"{model.inputs[0]._node.layer.name} (InputLayer)", "inner (Sequential)",
        "└ f1 (Dense)", "b (Dense)", "c (Dense)"]  # (Keras: three spaces a level first)
    assert [row.split("│")[-2].strip() for row in rows] == ["-", "Y", "Y", "N", "Y"]
    assert "Trainable params: 19" in table
    lines.clear()
    model.summary(print_fn=lines_of(lines), layer_range=["b", "c"])
    assert [line.split("│")[1].strip() for line in lines if line.startswith("│")] == [
        "b (Dense)", "c (Dense)"]
    with pytest.raises(ValueError, match="layer_range.*Received"):
        model.summary(layer_range=["x", "y"])
    with pytest.raises(TypeError):
        model.summary(bogus=1)


def test_compile_metrics_of_a_multi_output_model_as_keras_reads_them():
    # Keras 3.15: a list of one entry per output maps by position; a dict by output name may
    # leave outputs out but names no other; a list of another length is an error; for one
    # output every metric applies, whatever a dict's keys.
    inp = densitron.Input((4,))
    model = Model(inp, [layers.Dense(1, name="a")(inp), layers.Dense(1, name="b")(inp)])
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)

    def keys(**kwargs):
        model.compile("sgd", "mse", **kwargs)
        return sorted(model.evaluate(x, [y, y], verbose=0, return_dict=True))

    assert keys(metrics=["mae", "mse"]) == ["a_loss", "a_mae", "b_loss", "b_mse", "loss"]
    assert keys(metrics=[["mae"], ["mse", "mae"]]) == ["a_loss", "a_mae", "b_loss", "b_mae",
                                                       "b_mse", "loss"]
    assert keys(metrics={"a": "mae"}) == ["a_loss", "a_mae", "b_loss", "loss"]
    for bad in (["mae"], ["mae", "mse", "mape"]):
        with pytest.raises(ValueError, match=r"one entry per output.*Received: metrics="):
            keys(metrics=bad)
    with pytest.raises(ValueError, match=r"dictionary key mismatch.*extra key\(s\): \['zz'\]"):
        keys(metrics={"a": "mae", "zz": "mse"})
    with pytest.raises(ValueError, match=r"extra key\(s\): \['typo'\]. Received: weighted_m"):
        keys(weighted_metrics={"typo": ["mae"]})
    with pytest.raises(ValueError, match=r"extra key\(s\): \['typo'\]. Received: loss_weig"):
        keys(loss_weights={"a": 1.0, "typo": 2.0})
    single = Sequential([densitron.Input((4,)), layers.Dense(1)])
    single.compile("sgd", "mse", metrics={"typo": ["mae"]})
    assert sorted(single.evaluate(x, y, verbose=0, return_dict=True)) == ["loss", "mae"]


def test_dict_outputs_and_inputs_in_keras_order_of_sorted_keys():
    # Keras flattens a dict of outputs (or inputs) by its sorted keys: a list of targets or
    # losses, the layers' and weights' order and predict's dict follow that order, whatever
    # the order the dict was written in.
    inp = densitron.Input((4,))
    h = layers.Dense(3, name="h")(inp)
    model = Model(inp, {"z": layers.Dense(1, kernel_initializer="zeros", name="z")(h),
                        "a": layers.Dense(1, kernel_initializer="zeros", name="a")(h)})
    assert [layer.name for layer in model.layers][1:] == ["h", "a", "z"]
    assert list(model.predict(np.ones((2, 4)), verbose=0)) == ["a", "z"]
    x = np.ones((4, 4), np.float32)
    model.compile("sgd", "mse")
    logs = model.evaluate(x, [np.full((4, 1), 100.0), np.zeros((4, 1))], verbose=0,
                          return_dict=True)
    assert logs["a_loss"] == pytest.approx(10000.0) and logs["z_loss"] == 0.0
    model.compile("sgd", ["mse", "mae"])
    logs = model.evaluate(x, {"z": np.full((4, 1), 10.0), "a": np.full((4, 1), 10.0)},
                          verbose=0, return_dict=True)
    assert logs["a_loss"] == pytest.approx(100.0) and logs["z_loss"] == pytest.approx(10.0)
    b, a = densitron.Input((2,), name="b"), densitron.Input((3,), name="a")
    two = Model({"b": b, "a": a}, layers.Dense(1)(layers.Concatenate()([b, a])))
    assert [t.shape[1] for t in two.inputs] == [3, 2]  # a, then b
    assert two.predict([np.ones((1, 3)), np.ones((1, 2))], verbose=0).shape == (1, 1)


def test_validation_freq_lists_and_upper_case_metric_names():
    # Keras: validation_freq=[1, 3] validates after epochs 1 and 3 only; "MSE", "MAE",
    # "MAPE" and "MSLE" are metric names, logged under those names
    model = Sequential([Input((4,)), Dense(1, kernel_initializer="zeros")])
    model.compile("sgd", "mse", metrics=["MSE", "MAE", "MAPE", "MSLE"])
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)
    history = model.fit(x, y, verbose=0, validation_split=0.5, validation_freq=[1, 3],
                        epochs=3).history
    assert {k: len(v) for k, v in history.items()} == {
        "MAE": 3, "MAPE": 3, "MSE": 3, "MSLE": 3, "loss": 3, "val_MAE": 2, "val_MAPE": 2,
        "val_MSE": 2, "val_MSLE": 2, "val_loss": 2}
    assert history["MSE"] == history["loss"]
    with pytest.raises(ValueError, match="Expected `validation_freq` to be a list or int"):
        model.fit(x, y, verbose=0, validation_split=0.5, validation_freq=0)


def test_an_output_without_a_loss():
    # Keras: loss=[..., None] or {"b": None} trains the other outputs; that output's targets
    # may be None (or anything); the outputs' losses are logged apart when two have one
    inp = densitron.Input((4,))
    outs = [layers.Dense(1, name="a")(inp), layers.Dense(2, name="b")(inp),
            layers.Dense(1, name="c")(inp)]
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)
    model = Model(inp, outs[:2])
    model.compile("sgd", {"a": "mse", "b": None})
    b_kernel = model.get_layer("b").get_weights()[0].copy()
    history = model.fit(x, [y, None], epochs=2, verbose=0).history
    assert sorted(history) == ["loss"]
    np.testing.assert_array_equal(model.get_layer("b").get_weights()[0], b_kernel)
    a = model.predict(x, verbose=0)[0].astype(np.float64)
    assert model.evaluate(x, [y, None], verbose=0) == pytest.approx(((a - 1) ** 2).mean())
    assert model.evaluate(x, [y, np.zeros((8, 2))], verbose=0) == pytest.approx(
        ((a - 1) ** 2).mean())
    three = Model(inp, outs)
    three.compile("sgd", ["mse", None, "mae"])
    logs = three.evaluate(x, [y, None, y], verbose=0, return_dict=True)
    assert sorted(logs) == ["a_loss", "c_loss", "loss"]
    assert three.metrics_names == ["loss", "a_loss", "c_loss"]
    with pytest.raises(ValueError, match="At least one output needs a loss"):
        three.compile("sgd", [None, None, None])


def test_logs_are_float32_results_as_python_floats():
    # Keras's logs are its float32 metric results as Python floats: 23/48 shows as
    # 0.4791666567325592, not 0.4791666666666667.
    import densitron as dt

    rng = np.random.default_rng(0)
    x = rng.random((48, 5), dtype=np.float32)
    y = (x.sum(1) > 2.5).astype(np.float32)
    model = dt.Sequential([dt.Input((5,)), dt.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25)
    values = [v for vs in history.history.values() for v in vs]
    values += model.evaluate(x, y, verbose=0)
    values += list(model.evaluate(x, y, verbose=0, return_dict=True).values())
    assert values and all(type(v) is float and float(np.float32(v)) == v for v in values)
    accuracy = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    hits = ((model.predict(x, verbose=0)[:, 0] > 0.5) == (y > 0.5)).sum()
    assert accuracy == float(np.float32(hits / 48))
