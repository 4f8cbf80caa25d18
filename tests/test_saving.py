"""model.save / load_model / save_weights / load_weights, and a failed save keeping the old
file intact."""

import os
import zipfile

import numpy as np
import pytest

import densitron
from densitron import layers
from densitron.models import Model, Sequential, load_model


def trained_model():
    rng = np.random.default_rng(0)
    a, b = layers.Input(shape=(5,), name="a"), layers.Input(shape=(3,), name="b")
    shared = layers.Dense(6, activation="relu", name="shared")
    h = layers.Concatenate()([shared(layers.Dense(6)(a)), shared(layers.Dense(6)(b))])
    h = layers.Dropout(0.2)(layers.BatchNormalization()(h))
    out = {"cls": layers.Dense(3, activation="softmax", name="cls")(h),
           "val": layers.Dense(1, name="val")(h)}
    model = Model({"a": a, "b": b}, out)
    model.compile(optimizer=densitron.optimizers.Adam(0.01),
                  loss={"cls": "sparse_categorical_crossentropy", "val": "mse"},
                  loss_weights={"cls": 1.0, "val": 0.5}, metrics={"cls": ["accuracy"]})
    x = {"a": rng.normal(size=(64, 5)), "b": rng.normal(size=(64, 3))}
    y = {"cls": rng.integers(0, 3, 64), "val": rng.normal(size=(64, 1))}
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


def test_save_and_load_model_round_trip(tmp_path):
    model, x, y = trained_model()
    path = tmp_path / "model.keras"
    model.save(path)
    assert zipfile.is_zipfile(path)
    clone = load_model(path)
    assert [lay.name for lay in clone.layers] == [lay.name for lay in model.layers]
    for p, q in zip(model.predict(x, verbose=0).values(), clone.predict(x, verbose=0).values()):
        np.testing.assert_array_equal(p, q)
    assert clone.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
    clone.fit(x, y, epochs=1, verbose=0)  # compiled and trainable again
    uncompiled = load_model(path, compile=False)
    assert not uncompiled.compiled


@pytest.mark.parametrize("loss", [
    densitron.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    densitron.losses.BinaryCrossentropy,  # a class, uninstantiated
    [densitron.losses.BinaryCrossentropy(label_smoothing=0.3)],
    densitron.losses.Huber(delta=0.25),  # Keras's own config leaves delta out
    densitron.losses.Hinge(name="h"),
])
def test_loss_objects_keep_their_arguments_through_save(tmp_path, loss):
    # A loss given as an object is saved with its config, not by name: from_logits and
    # label_smoothing would otherwise change the reloaded model's loss.
    rng = np.random.default_rng(3)
    inputs = layers.Input(shape=(4,))
    model = Model(inputs, layers.Dense(3)(inputs))
    model.compile(optimizer="rmsprop", loss=loss)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    model.save(tmp_path / "m.keras")
    clone = load_model(tmp_path / "m.keras")
    assert clone.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    first = clone.loss[0] if isinstance(clone.loss, list) else clone.loss
    want = densitron.losses.get(loss[0] if isinstance(loss, list) else loss)
    assert first.get_config() == want.get_config()


def test_optimizer_schedule_survives_save(tmp_path):
    rng = np.random.default_rng(4)
    inputs = layers.Input(shape=(4,))
    model = Model(inputs, layers.Dense(2)(inputs))
    schedule = densitron.optimizers.schedules.CosineDecay(0.1, 50, alpha=0.2, warmup_target=0.3,
                                                          warmup_steps=5)
    model.compile(optimizer=densitron.optimizers.Adam(schedule), loss="mse")
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 2))
    model.fit(x, y, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    clone = load_model(tmp_path / "m.keras")
    assert isinstance(clone.optimizer._schedule, densitron.optimizers.schedules.CosineDecay)
    assert clone.optimizer.get_config() == model.optimizer.get_config()


def test_weighted_metrics_survive_save(tmp_path):
    rng = np.random.default_rng(5)
    inputs = layers.Input(shape=(4,))
    model = Model(inputs, layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 30)]
    w = rng.random(30).astype(np.float32)
    model.save(tmp_path / "m.keras")
    clone = load_model(tmp_path / "m.keras")
    want = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert clone.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True) == want
    assert "weighted_accuracy" in want


def test_weights_h5_of_the_first_densitron_layout_still_load(tmp_path):
    h5py = pytest.importorskip("h5py")
    seq = Sequential([layers.Input(shape=(4,)), layers.Dense(3), layers.Dense(2)])
    weights = [np.random.rand(*w.shape).astype(np.float32) for w in seq.get_weights()]
    with h5py.File(tmp_path / "old.weights.h5", "w") as h:  # one dataset per weight, numbered
        for i, w in enumerate(weights):
            h.create_dataset(f"{i:04d}", data=w)
    seq.load_weights(tmp_path / "old.weights.h5")
    for a, b in zip(seq.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_model_files_of_the_first_densitron_layout_still_load(tmp_path):
    # densitron's own config and a .npz of get_weights(), as model.save wrote them before the
    # Keras layout.
    import io
    import json

    model, x, y = trained_model()
    config = {"class_name": "Functional", "config": model.get_config(),
              "compile_config": {"optimizer": {"class_name": "Adam",
                                               "config": model.optimizer.get_config()},
                                 "loss": {"cls": "sparse_categorical_crossentropy",
                                          "val": "mse"},
                                 "loss_weights": {"cls": 1.0, "val": 0.5},
                                 "metrics": {"cls": ["accuracy"]}}}
    buf = io.BytesIO()
    np.savez(buf, **{f"w{i:04d}": w for i, w in enumerate(model.get_weights())})
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.npz", buf.getvalue())
    clone = load_model(tmp_path / "old.keras")
    for p, q in zip(model.predict(x, verbose=0).values(), clone.predict(x, verbose=0).values()):
        np.testing.assert_array_equal(p, q)
    assert clone.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))


@pytest.mark.parametrize("make", [
    lambda: densitron.optimizers.RMSprop(0.01),
    lambda: densitron.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: densitron.optimizers.Adam(0.01, amsgrad=True),
    lambda: densitron.optimizers.SGD(0.05, momentum=0.9),
    lambda: densitron.optimizers.Adamax(0.01),
    lambda: densitron.optimizers.Adagrad(0.05),
    lambda: densitron.optimizers.Lion(0.001),
    lambda: densitron.optimizers.Adadelta(1.0),
    lambda: densitron.optimizers.Nadam(0.01),
    lambda: densitron.optimizers.Ftrl(0.05, l1_regularization_strength=0.001),
    lambda: densitron.optimizers.Lamb(0.01, weight_decay=0.01),
])
def test_training_resumes_exactly_after_save_and_load(tmp_path, make):
    # The file keeps the optimizer's step count and slots: two epochs, a save and a load, then
    # a third equals three epochs in one go, bit for bit.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]

    def build():
        densitron.utils.set_random_seed(8)
        inputs = layers.Input(shape=(5,))
        h = layers.Dense(6, activation="relu")(inputs)
        m = Model(inputs, layers.Dense(3, activation="softmax")(h))
        m.compile(optimizer=make(), loss="categorical_crossentropy")
        return m

    _assert_resumes_exactly(build, x, y, tmp_path / "m.keras")


def _assert_resumes_exactly(build, x, y, path):
    """Two epochs of build()'s model, a save to `path` and a load, then a third epoch: the
    same weights, bit for bit, as three epochs in one go (and the step count restored).
    Returns the model saved and the one loaded."""
    straight = build()
    straight.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    first = build()
    first.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    first.save(path)
    resumed = load_model(path)
    assert resumed.optimizer.iterations == 8
    resumed.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    return first, load_model(path)


def test_bad_serialized_loss_raises():
    with pytest.raises(ValueError, match="Received: class_name='Circle'"):
        densitron.losses.get({"class_name": "Circle", "config": {}})
    with pytest.raises(ValueError, match="Received"):
        densitron.losses.get({"class_name": "MeanSquaredError", "config": 3})


def test_sequential_and_weights_files(tmp_path):
    seq = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="tanh"),
                      layers.Dense(2)])
    seq.save(tmp_path / "seq.keras")
    clone = load_model(tmp_path / "seq.keras")
    data = np.random.rand(5, 4)
    np.testing.assert_array_equal(clone.predict(data, verbose=0), seq.predict(data, verbose=0))
    other = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="tanh"),
                        layers.Dense(2)])
    seq.save_weights(tmp_path / "w.weights.npz")
    other.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(other.predict(data, verbose=0), seq.predict(data, verbose=0))
    pytest.importorskip("h5py")
    third = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="tanh"),
                        layers.Dense(2)])
    seq.save_weights(tmp_path / "w.weights.h5")
    third.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(third.predict(data, verbose=0), seq.predict(data, verbose=0))


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    model, _, _ = trained_model()
    path = tmp_path / "model.keras"
    model.save(path)
    before = path.read_bytes()
    real = zipfile.ZipFile.writestr

    def failing(self, name, data, *args, **kwargs):
        if name == "model.weights.h5":
            raise OSError("disk full")
        return real(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [f for f in os.listdir(tmp_path) if f != "model.keras"] == []  # no temp left


def test_saving_errors(tmp_path):
    model, _, _ = trained_model()
    for save, name in ((model.save, "m.keras"), (model.save_weights, "w.weights.h5")):
        missing = tmp_path / "no_such_dir" / name  # named by its own path, not a temporary's
        with pytest.raises(FileNotFoundError, match="Received: filepath=.*no_such_dir"):
            save(missing)
    with pytest.raises(ValueError, match="`.keras` extension .* `.h5` extension. Received"):
        model.save(tmp_path / "model.pb")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 model file"):
        load_model(tmp_path / "junk.h5")
    with pytest.raises(ValueError, match="Received: filepath="):
        model.save_weights(tmp_path / "w.bin")
    with pytest.raises(ValueError, match="Received: filepath="):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a Keras or densitron model file"):
        load_model(tmp_path / "junk.keras")
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)


def test_legacy_h5_model_files_resume_training_exactly(tmp_path):
    # Keras's legacy model.save("m.h5"): architecture, compile arguments, weights and the
    # optimizer's state; two epochs, a save and a load, then a third equals three in one go.
    rng = np.random.default_rng(16)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.normal(size=(64, 2)).astype(np.float32)

    def build():
        densitron.utils.set_random_seed(4)
        inputs = layers.Input(shape=(5,))
        h = layers.BatchNormalization()(layers.Dense(8, activation="relu")(inputs))
        model = Model(inputs, layers.Dense(2)(h))
        model.compile(optimizer=densitron.optimizers.Adam(0.01), loss="mean_squared_error",
                      metrics=["mae"])
        return model

    first, loaded = _assert_resumes_exactly(build, x, y, tmp_path / "m.h5")
    assert loaded.evaluate(x, y, verbose=0) == first.evaluate(x, y, verbose=0)
    assert not load_model(tmp_path / "m.h5", compile=False).compiled


def test_keras_configs_densitron_cannot_honour_are_refused():
    from densitron import keras_format

    bn = {"module": "keras.layers", "class_name": "BatchNormalization",
          "config": {"name": "bn", "synchronized": True}}
    with pytest.raises(ValueError, match="`synchronized`=True. Received: config="):
        keras_format.from_keras(bn)
    init = {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": "d", "units": 2, "kernel_initializer": {
                "module": "keras.initializers", "class_name": "GlorotUniform",
                "config": {"seed": None, "input_axes": [0], "output_axes": [1]}}}}
    # (Keras's fan axes are honoured now: the initializer takes them)
    config = keras_format.from_keras(init)["config"]["kernel_initializer"]["config"]
    assert config["input_axes"] == [0] and config["output_axes"] == [1]
    init["config"]["kernel_initializer"]["config"]["input_axes"] = "rows"
    with pytest.raises(ValueError, match="`input_axes`.*Received: input_axes='rows'"):
        densitron.layers.deserialize(keras_format.from_keras(init))
    # use_ema and gradient accumulation are honoured, a loss scale taken (no change in float32)
    opt = {"optimizer": {"class_name": "Adam", "config": {
        "use_ema": True, "ema_momentum": 0.9, "gradient_accumulation_steps": 4,
        "loss_scale_factor": 128.0}}, "loss": "mse"}
    config = keras_format.compile_from_keras(opt)["optimizer"]["config"]
    assert config["use_ema"] is True and config["ema_momentum"] == 0.9
    assert config["gradient_accumulation_steps"] == 4


def test_metric_objects_survive_a_second_save(tmp_path):
    # A loaded model holds its metrics in their serialized form; saving it again must keep
    # them (it failed on the threshold's value before), and a metric class given uninstantiated
    # is named once ("precision", not "precision_1").
    densitron.utils.clear_session()
    inputs = densitron.Input(shape=(4,))
    model = densitron.Model(inputs, densitron.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[densitron.metrics.Precision(thresholds=0.3, name="p"),
                           densitron.metrics.Recall])
    rng = np.random.default_rng(9)
    x, y = rng.random((16, 4)).astype(np.float32), rng.integers(0, 2, (16, 1))
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "p", "recall"]
    model.save(tmp_path / "a.keras")
    densitron.models.load_model(tmp_path / "a.keras").save(tmp_path / "b.keras")
    again = densitron.models.load_model(tmp_path / "b.keras")
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(logs)


def test_pickle_and_deepcopy_resume_training_exactly():
    import copy
    import pickle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    inputs = layers.Input((5,))
    m = Model(inputs, layers.Dense(3, activation="softmax")(layers.Dense(4, activation="relu")(
        inputs)))
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    copies = [pickle.loads(pickle.dumps(m)), copy.deepcopy(m)]
    densitron.utils.set_random_seed(3)
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for c in copies:
        assert c is not m and c.optimizer.iterations == 4
        densitron.utils.set_random_seed(3)
        c.fit(x, y, epochs=1, batch_size=16, verbose=0)
        for a, b in zip(c.get_weights(), m.get_weights()):
            np.testing.assert_array_equal(a, b)
    # an unbuilt model is pickled as its Python objects and builds later
    s = Sequential([layers.Dense(2)])
    s.compile("sgd", "mse")
    t = pickle.loads(pickle.dumps(s))
    assert not t.built and t.compiled
    t.fit(np.ones((3, 4)), np.zeros((3, 2)), verbose=0)
    assert t.built


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_a_keras_file_with_time_distributed_loads_and_saves_again(tmp_path):
    # Keras keeps a TimeDistributed's layer below the wrapper (its config with Keras 3.15's
    # initializer arguments); densitron's graph holds the layer itself and writes it so.
    import os

    os.environ.setdefault("KERAS_BACKEND", "numpy")  # (not TensorFlow, absent here)
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    inp = keras.Input((5, 3))
    h = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")(
        keras.layers.Dense(4)(inp))
    kmodel = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    kmodel.save(tmp_path / "k.keras")
    x = np.random.default_rng(1).normal(size=(6, 5, 3)).astype(np.float32)
    model = load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "d.keras")
    model.load_weights(tmp_path / "d.keras")  # its own file, in densitron's layout
    again = load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "d.keras").predict(
        x, verbose=0), kmodel.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_export_is_refused_with_what_to_do_instead(tmp_path):
    from densitron.layers import Dense, Input
    from densitron.models import Model

    i = Input((3,))
    model = Model(i, Dense(2)(i))
    for fmt in ("tf_saved_model", "onnx"):
        with pytest.raises(NotImplementedError, match=f"model.save.*Received: export.*{fmt}"):
            model.export(str(tmp_path / "exported"), format=fmt)
    assert not (tmp_path / "exported").exists()


def _composite_classes(mod, register):
    """The same layers of the user's (made of layers) written against Keras or densitron:
    sublayers as attributes and in a list, a weight of its own."""
    L = mod.layers

    @register(package="densitron_test")
    class ScaledPair(L.Layer):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.second = L.Dense(units)
            self.rest = [L.Dense(units, activation="tanh"), L.Dense(units)]

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

        def call(self, x):
            return self.second(self.rest[1](self.rest[0](x))) * self.scale + x

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return ScaledPair


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend's own)
def test_a_keras_file_with_layers_of_the_users_loads(tmp_path):
    # A registered Layer subclass made of layers: densitron builds it from Keras's config
    # (its own class, registered too), reads its weights from below its path (its own, its
    # attributes', a list's by class), and its sublayers' names may repeat the model's.
    import os

    os.environ.setdefault("KERAS_BACKEND", "numpy")  # (not TensorFlow, absent here)
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    import densitron

    theirs = _composite_classes(keras, keras.saving.register_keras_serializable)
    ours = _composite_classes(densitron, densitron.saving.register_keras_serializable)
    inp = keras.Input((4,))
    kmodel = keras.Model(inp, keras.layers.Dense(2, name="dense")(theirs(4)(theirs(4)(inp))))
    rng = np.random.default_rng(3)
    kmodel.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in kmodel.weights])
    kmodel.save(tmp_path / "k.keras")
    x = rng.normal(size=(5, 4)).astype(np.float32)
    model = load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "ScaledPair", "ScaledPair", "Dense"]
    assert isinstance(model.layers[1], ours)
    np.testing.assert_allclose(model.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in kmodel.weights]
    model.save(tmp_path / "d.keras")  # (the registered class kept as itself, as Keras does)
    again = load_model(tmp_path / "d.keras")
    assert isinstance(again.layers[1], ours)
    np.testing.assert_allclose(again.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    back = keras.models.load_model(tmp_path / "d.keras")  # and Keras reads it
    assert isinstance(back.layers[1], theirs)
    np.testing.assert_allclose(back.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    y = rng.normal(size=(5, 2)).astype(np.float32)  # training resumes alike from the file
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "t.keras")
    resumed = load_model(tmp_path / "t.keras")
    for m in (model, resumed):
        m.fit(x, y, epochs=2, verbose=0, shuffle=False)
    np.testing.assert_array_equal(resumed.predict(x, verbose=0), model.predict(x, verbose=0))
    fresh = densitron.models.Model(inputs := densitron.Input((4,)),
                                   densitron.layers.Dense(2)(ours(4)(ours(4)(inputs))))
    fresh.load_weights(tmp_path / "k.keras")  # Keras's weights by their paths
    np.testing.assert_allclose(fresh.predict(x, verbose=0), kmodel.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_optimizer_variables_read_and_write_the_engines_state():
    # Keras's optimizer.variables: iteration, learning_rate, then each trainable weight's
    # slots in Keras's order and names; assigning them to another model's optimizer makes its
    # training continue exactly as the first's.
    from densitron import optimizers
    from densitron.layers import Dense, Input
    from densitron.models import Model
    from densitron.saving import _optimizer_values

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 2))

    def build(opt):
        inputs = Input((4,))
        m = Model(inputs, Dense(2)(Dense(3, activation="tanh")(inputs)))
        m.compile(opt, "mse")
        return m

    a = build(optimizers.Adam(0.01))
    assert [v.name for v in a.optimizer.variables] == ["iteration", "learning_rate"]
    a.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    variables = a.optimizer.variables
    assert [v.name.rsplit("_", 1)[-1] for v in variables[2:]] == ["momentum", "velocity"] * 4
    assert variables[2].name == a.trainable_weights[0].path.replace("/", "_") + "_momentum"
    for v, want in zip(variables, _optimizer_values(a), strict=True):
        np.testing.assert_array_equal(v.numpy(), want)
    b = build(optimizers.Adam(0.01))
    b.set_weights(a.get_weights())
    b.fit(x[:8], y[:8], epochs=1, batch_size=8, verbose=0)  # (its optimizer runs: slots exist)
    b.set_weights(a.get_weights())
    for theirs, mine in zip(a.optimizer.variables, b.optimizer.variables, strict=True):
        mine.assign(theirs.numpy())
    assert b.optimizer.iterations == a.optimizer.iterations
    for m in (a, b):
        m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="must match.*Received: value.shape=\\(2,\\)"):
        b.optimizer.variables[2].assign(np.zeros(2))
    rms = build(optimizers.RMSprop(momentum=0.9, centered=True))
    rms.fit(x, y, verbose=0)
    assert [v.name.endswith(f"{w}_velocity") for v, w in zip(
        rms.optimizer.variables[2:6], ["kernel", "bias"] * 2)] == [True] * 4
    assert rms.optimizer.variables[-1].name.endswith("_average_gradient")
    nadam = build(optimizers.Nadam())
    nadam.fit(x, y, verbose=0)
    assert nadam.optimizer.variables[-1].name == "u_product"


def test_clone_model_with_a_clone_function_and_input_tensors():
    # Keras's clone_model(model, clone_function=..., input_tensors=...): each layer replaced by
    # the function's (once, a shared layer shared again), called as the model called it
    from densitron.layers import Concatenate, Dense, Dropout, Identity, Input

    seq = Sequential([Input((4,)), Dense(3), Dropout(0.5), Dense(1)])

    def no_dropout(layer):
        if isinstance(layer, Dropout):
            return Identity()
        return type(layer).from_config(layer.get_config())

    clone = densitron.models.clone_model(seq, clone_function=no_dropout)
    assert [type(layer).__name__ for layer in clone.layers] == ["Dense", "Identity", "Dense"]
    assert clone.count_params() == seq.count_params() == 19
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = Dense(2, name="shared")
    out = Dense(1, name="dense")(Concatenate()([shared(a), shared(b) * 2.0]))
    model = Model([a, b], out)
    seen = []

    def copy(layer):
        seen.append(layer.name)
        return type(layer).from_config(layer.get_config())

    new_a, new_b = Input((4,)), Input((4,))
    again = densitron.models.clone_model(model, clone_function=copy,
                                         input_tensors=[new_a, new_b])
    assert seen.count("shared") == 1 and again.inputs == [new_a, new_b]
    assert [layer.name for layer in again.layers[2:]] == ["shared", "concatenate", "dense"]
    again.set_weights(model.get_weights())
    x = [np.ones((2, 4), np.float32), np.full((2, 4), 2.0, np.float32)]
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="input_tensors.*Received"):
        densitron.models.clone_model(model, input_tensors=[Input((3,)), Input((4,))])


def test_saves_write_through_links_with_the_modes_a_plain_write_gives(tmp_path):
    # found by fuzzing: the atomic rename replaced a symbolic link with a plain file (the
    # link's target kept the old model) and left mkstemp's mode 0600 on every saved file.
    m = densitron.Sequential([densitron.Input((3,)), densitron.layers.Dense(2)])
    real = tmp_path / "run42.keras"
    m.save(real)
    link = tmp_path / "latest.keras"
    link.symlink_to(real)
    m.layers[0].set_weights([np.ones((3, 2), np.float32), np.zeros(2, np.float32)])
    m.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(densitron.saving.load_model(real).get_weights()[0], 1.0)
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.weights.h5"
        m.save_weights(fresh)
        assert fresh.stat().st_mode & 0o777 == 0o644
        os.chmod(real, 0o640)
        m.save(real)
        assert real.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    # a directory save leaves the directory's other files alone, as Keras
    (tmp_path / "proj" / "assets").mkdir(parents=True)
    (tmp_path / "proj" / "assets" / "logo.png").write_text("x")
    m.save(tmp_path / "proj", zipped=False)
    assert (tmp_path / "proj" / "assets" / "logo.png").read_text() == "x"
    np.testing.assert_array_equal(
        densitron.saving.load_model(tmp_path / "proj").get_weights()[0], 1.0)
