"""saving.serialize_keras_object / deserialize_keras_object (also in utils): plain values, arrays,
built-in and registered classes and functions, both ways with Keras's own; and the use they
exist for, a custom layer's get_config/from_config holding objects, through save and load."""

import os
import warnings

import densitron
import numpy as np
import pytest
from densitron import activations, constraints, initializers, layers, losses, regularizers
from densitron.saving import deserialize_keras_object, serialize_keras_object


def test_plain_values_arrays_and_containers_round_trip():
    value = {"a": [1, 2.5, None, "s", True], "t": (1, 2), "b": b"xy",
             "arr": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.float64(0.5)}
    config = serialize_keras_object(value)
    assert config["arr"] == {"class_name": "__numpy__",
                             "config": {"value": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
                                        "dtype": "float32"}}
    assert config["b"] == {"class_name": "__bytes__", "config": {"value": "xy"}}
    assert config["scalar"] == 0.5  # (a float subclass, kept as Keras keeps it)
    assert type(serialize_keras_object(np.int64(3))) is int
    back = deserialize_keras_object(config)
    np.testing.assert_array_equal(back["arr"], value["arr"])
    assert back["arr"].dtype == np.float32
    assert back["b"] == b"xy" and back["a"] == value["a"] and back["t"] == [1, 2]
    assert densitron.utils.serialize_keras_object is serialize_keras_object
    assert densitron.utils.deserialize_keras_object is deserialize_keras_object


def test_builtin_objects_round_trip():
    for obj in (initializers.HeNormal(seed=3), initializers.Constant(2.0), regularizers.L1L2(
            l1=0.1, l2=0.2), constraints.MaxNorm(3.0), losses.Huber(delta=2.0),
            densitron.optimizers.Adam(learning_rate=0.01), densitron.metrics.AUC(
                num_thresholds=50)):
        config = serialize_keras_object(obj)
        assert config["module"].startswith("keras.") and config["registered_name"] is None
        assert config["class_name"] == type(obj).__name__
        back = deserialize_keras_object(config)
        assert type(back) is type(obj) and back.get_config() == obj.get_config()
    for fn in (activations.relu, activations.gelu, losses.mean_squared_error):
        config = serialize_keras_object(fn)
        assert config == {"module": "builtins", "class_name": "function",
                          "config": fn.__name__, "registered_name": "function"}
        assert deserialize_keras_object(config) is fn
    dense = layers.Dense(3, activation="tanh", kernel_initializer=initializers.HeNormal(seed=1),
                         kernel_regularizer="l2", name="ser_dense")
    config = serialize_keras_object(dense)
    assert config["config"]["kernel_initializer"]["module"] == "keras.initializers"
    back = deserialize_keras_object(config)
    assert isinstance(back, layers.Dense) and back.get_config() == dense.get_config()


def test_registered_and_custom_objects(monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))
    @densitron.saving.register_keras_serializable(package="KOTest")
    def scaled_tanh(x):
        return densitron.ops.tanh(x) * 2.0

    @densitron.saving.register_keras_serializable(package="KOTest")
    class Halve(regularizers.Regularizer):
        def __init__(self, factor=0.5):
            self.factor = factor

        def get_config(self):
            return {"factor": self.factor}

    config = serialize_keras_object(scaled_tanh)
    assert config["class_name"] == "function" and config["registered_name"] == \
        "KOTest>scaled_tanh"
    assert deserialize_keras_object(config) is scaled_tanh
    config = serialize_keras_object(Halve(0.25))
    assert config["registered_name"] == "KOTest>Halve" and config["class_name"] == "Halve"
    back = deserialize_keras_object(config)
    assert type(back) is Halve and back.factor == 0.25

    class Unregistered(initializers.Initializer):
        def get_config(self):
            return {}

    config = serialize_keras_object(Unregistered())
    with pytest.raises(TypeError, match="Could not locate class 'Unregistered'"):
        deserialize_keras_object(config)
    assert type(deserialize_keras_object(
        config, custom_objects={"Unregistered": Unregistered})) is Unregistered
    assert deserialize_keras_object("Unregistered",
                                    custom_objects={"Unregistered": Unregistered}) is Unregistered
    assert deserialize_keras_object("relu") == "relu"  # a plain string stays one, as in Keras


def test_refusals():
    with pytest.raises(ValueError, match="lambda"):
        serialize_keras_object(lambda x: x)
    with pytest.raises(ValueError, match="lambda"):
        deserialize_keras_object({"class_name": "__lambda__", "config": {"value": "..."}})
    with pytest.raises(TypeError, match="Received: "):
        serialize_keras_object(object())
    with pytest.raises(TypeError, match="Could not locate function 'no_such_fn'"):
        deserialize_keras_object({"module": "builtins", "class_name": "function",
                                  "config": "no_such_fn", "registered_name": "function"})
    with pytest.raises(TypeError, match="Could not locate class 'NoSuchLayer'"):
        deserialize_keras_object({"module": "keras.layers", "class_name": "NoSuchLayer",
                                  "config": {}, "registered_name": None})
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        deserialize_keras_object({}, bogus=1)


class ScaledDense(layers.Layer):
    """The Keras guide's pattern: objects held by a custom layer, serialized in get_config."""

    def __init__(self, units, activation=None, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.initializer = initializers.get(initializer)
        self.inner = layers.Dense(units, kernel_initializer=self.initializer)

    def call(self, x):
        return self.activation(self.inner(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": serialize_keras_object(self.activation),
                "initializer": serialize_keras_object(self.initializer)}

    @classmethod
    def from_config(cls, config):
        config["activation"] = deserialize_keras_object(config["activation"])
        config["initializer"] = deserialize_keras_object(config["initializer"])
        return cls(**config)


def test_a_custom_layer_holding_objects(tmp_path):
    layer = ScaledDense(3, activation=activations.tanh,
                        initializer=initializers.HeNormal(seed=2), name="scaled")
    config = layer.get_config()
    assert config["activation"]["config"] == "tanh"
    assert config["initializer"]["class_name"] == "HeNormal"
    again = ScaledDense.from_config(dict(config))
    assert again.activation is activations.tanh and again.units == 3
    assert again.initializer.get_config() == layer.initializer.get_config()
    # its call() applies a densitron.activations function to a symbolic tensor, as Keras's do
    inputs = densitron.Input((4,))
    model = densitron.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.tanh(x @ kernel + bias),
                               rtol=1e-5, atol=1e-6)
    path = os.path.join(tmp_path, "custom.keras")
    model.save(path)
    loaded = densitron.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_both_ways_with_keras(keras):
    def quiet(fn):  # Keras's optimizers warn under NumPy 2 on its numpy backend
        def call(*args):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return fn(*args)
        return call

    ks = quiet(keras.saving.serialize_keras_object)
    kd = quiet(keras.saving.deserialize_keras_object)
    pairs = [(initializers.HeNormal(seed=1), keras.initializers.HeNormal(seed=1)),
             (regularizers.L2(0.01), keras.regularizers.L2(0.01)),
             (constraints.MaxNorm(2.0), keras.constraints.MaxNorm(2.0)),
             (losses.Huber(), keras.losses.Huber()),
             (densitron.optimizers.SGD(momentum=0.5), keras.optimizers.SGD(momentum=0.5))]
    for ours, theirs in pairs:
        mine = deserialize_keras_object(ks(theirs))
        # (Keras names its SGD "SGD" and stores the learning rate rounded to float32)
        assert type(mine) is type(ours)
        drop = {"name", "learning_rate"}
        assert {k: v for k, v in mine.get_config().items() if k not in drop} == \
            {k: v for k, v in ours.get_config().items() if k not in drop}
        back = kd(serialize_keras_object(ours))
        assert type(back).__name__ == type(theirs).__name__
    for ours, theirs in ((activations.relu, keras.activations.relu),
                         (losses.mean_squared_error, keras.losses.mean_squared_error)):
        assert serialize_keras_object(ours) == ks(theirs)
        assert deserialize_keras_object(ks(theirs)) is ours
        assert kd(serialize_keras_object(ours)) is theirs
    dense = keras.layers.Dense(3, activation="relu", name="kd")
    mine = deserialize_keras_object(ks(dense))
    assert isinstance(mine, layers.Dense) and mine.units == 3 and mine.name == "kd"
    theirs = kd(serialize_keras_object(layers.Dense(2, activation="sigmoid", name="dk")))
    assert theirs.units == 2 and theirs.name == "dk"
    arr = np.arange(4.0)
    np.testing.assert_array_equal(deserialize_keras_object(ks(arr)), arr)
    np.testing.assert_array_equal(kd(serialize_keras_object(arr)), arr)


def test_module_serialize_and_deserialize(monkeypatch):
    from densitron import metrics, optimizers

    adam = optimizers.Adam(learning_rate=0.01, beta_1=0.8)
    config = optimizers.serialize(adam)
    assert config["module"] == "keras.optimizers" and config["class_name"] == "Adam"
    again = optimizers.deserialize(config)
    assert type(again) is optimizers.Adam and again.get_config() == adam.get_config()
    assert optimizers.get({"class_name": "SGD", "config": {"momentum": 0.9}}).momentum == 0.9
    assert isinstance(optimizers.deserialize("rmsprop"), optimizers.RMSprop)
    with pytest.raises(ValueError, match="Received: use_legacy_format=True"):
        optimizers.deserialize(config, use_legacy_format=True)
    with pytest.raises(ValueError, match="Received: class_name='Nope'"):
        optimizers.deserialize({"class_name": "Nope", "config": {}})
    auc = metrics.deserialize(serialize_keras_object(metrics.AUC(num_thresholds=20)))
    assert isinstance(auc, metrics.AUC) and auc.num_thresholds == 20
    assert type(regularizers.deserialize({"class_name": "L2", "config": {"l2": 0.1}})) is \
        regularizers.L2
    assert type(constraints.deserialize("non_neg")) is constraints.NonNeg
    assert activations.deserialize(serialize_keras_object(activations.relu)) is activations.relu
    assert activations.deserialize("tanh") is activations.tanh

    class MyAdam(optimizers.Adam):
        pass

    config = {"class_name": "MyAdam", "config": adam.get_config()}
    with pytest.raises(ValueError, match="MyAdam"):
        optimizers.deserialize(config)
    assert type(optimizers.deserialize(config, custom_objects={"MyAdam": MyAdam})) is MyAdam


def test_module_deserialize_reads_keras(keras):
    import warnings

    from densitron import metrics, optimizers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = keras.saving.serialize_keras_object(keras.optimizers.Adam(beta_2=0.9))
    assert optimizers.deserialize(opt).beta_2 == 0.9
    auc = metrics.deserialize(keras.saving.serialize_keras_object(keras.metrics.AUC(
        num_thresholds=30)))
    assert auc.num_thresholds == 30
    assert activations.deserialize(keras.saving.serialize_keras_object(
        keras.activations.gelu)) is activations.gelu
    assert regularizers.deserialize(keras.saving.serialize_keras_object(
        keras.regularizers.L1(0.2))).l1 == pytest.approx(0.2)


_W = np.array([[3.0, -4.0, 0.5], [0.0, 1.0, -2.0]], np.float32)


def _col_norms(w, axis):
    return np.sqrt(np.sum(np.asarray(w, np.float64) ** 2, axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_constraints_called_on_arrays_give_kerass_values(axis):
    eps = 1e-7  # Keras's backend.epsilon()
    norms = _col_norms(_W, axis)
    cases = [
        (constraints.MaxNorm(1.0, axis=axis), _W * np.clip(norms, 0, 1.0) / (eps + norms)),
        (constraints.MinMaxNorm(1.0, 2.0, rate=0.5, axis=axis),
         _W * (0.5 * np.clip(norms, 1.0, 2.0) + 0.5 * norms) / (eps + norms)),
        (constraints.UnitNorm(axis=axis), _W / (eps + norms)),
        (constraints.NonNeg(), np.maximum(_W, 0.0)),
    ]
    for constraint, want in cases:
        out = constraint(_W)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(constraint(_W.tolist()), want, rtol=1e-6, atol=1e-7)
    assert constraints.MaxNorm(2.0, axis=axis).get_config()["axis"] == axis
    np.testing.assert_allclose(constraints.get("max_norm")(np.array([3.0, 4.0])), [1.2, 1.6],
                               rtol=1e-6)


def test_constraint_call_refuses_an_axis_the_array_lacks():
    with pytest.raises(ValueError, match=r"out of bounds.*Received: w with shape \(2,\)"):
        constraints.UnitNorm(axis=1)(np.array([3.0, 4.0]))
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10  # Keras's axis: the array's own
    np.testing.assert_allclose(constraints.UnitNorm(axis=-1)(w),
                               w / (1e-7 + _col_norms(w, -1)), rtol=1e-6)


def test_a_constrained_kernel_is_its_constraint_applied():
    model = densitron.Sequential([layers.Input((3,)), layers.Dense(
        2, kernel_initializer="ones", kernel_constraint=constraints.MaxNorm(0.5))])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    kernel = model.get_weights()[0]
    np.testing.assert_allclose(constraints.MaxNorm(0.5)(kernel), kernel, rtol=1e-5)
    np.testing.assert_allclose(_col_norms(kernel, 0), 0.5, rtol=1e-5)


def test_regularizers_called_on_arrays_and_kerass_names():
    penalty = regularizers.L1L2(l1=0.01, l2=0.02)(_W)
    assert isinstance(penalty, np.float32)
    assert penalty == pytest.approx(0.01 * np.abs(_W).sum() + 0.02 * np.square(_W).sum())
    assert regularizers.L2(0.01)(_W.tolist()) == pytest.approx(0.01 * np.square(_W).sum())
    # Keras 3's strings: class names and their snake case ('l1l2'); no 'l1_l2'
    reg = regularizers.get("l1l2")
    assert type(reg) is regularizers.L1L2 and (reg.l1, reg.l2) == (0.0, 0.0)
    assert type(layers.Dense(2, kernel_regularizer="L1L2").kernel_regularizer) is \
        regularizers.L1L2
    with pytest.raises(ValueError, match=r"no 'l1_l2' name.*Received: regularizer='l1_l2'"):
        layers.Dense(2, kernel_regularizer="l1_l2")
    assert regularizers.l1_l2 is regularizers.L1L2


def test_keras_2_optimizer_decay_and_float_class_weight_keys_and_auc_thresholds():
    # SGD(..., decay=1e-6) of older tutorials: Keras 3's warning, then ignored; class_weight
    # keys that are whole floats (sklearn's compute_class_weight over float labels);
    # AUC.thresholds as Keras lists them
    import numpy as np

    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        sgd = densitron.optimizers.SGD(learning_rate=0.01, decay=1e-6, momentum=0.9)
    assert sgd.momentum == 0.9
    inp = densitron.Input((3,))
    model = densitron.Model(inp, densitron.layers.Dense(2, activation="softmax")(inp))
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.ones((4, 3), np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    weights = model.get_weights()
    a = model.fit(x, y, class_weight={0.0: 1.0, 1.0: 3.0}, shuffle=False, verbose=0)
    model.set_weights(weights)
    b = model.fit(x, y, class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    assert a.history == b.history
    auc = densitron.metrics.AUC(num_thresholds=5)
    np.testing.assert_allclose(auc.thresholds, [-1e-7, 0.25, 0.5, 0.75, 1 + 1e-7])
    given = densitron.metrics.AUC(thresholds=[0.3, 0.6])
    assert given.num_thresholds == 4 and given.get_config()["thresholds"] == [0.3, 0.6]


def test_optimizer_config_keeps_loss_scale_factor_as_keras():
    # Keras 3.15's optimizer config lists loss_scale_factor (None by default); a Keras file's
    # optimizer with one loads and keeps it.
    config = densitron.optimizers.Adam().get_config()
    assert "loss_scale_factor" in config and config["loss_scale_factor"] is None
    scaled = densitron.optimizers.Adam(loss_scale_factor=128.0)
    again = densitron.optimizers.Adam.from_config(scaled.get_config())
    assert again.get_config() == scaled.get_config()
    assert again.loss_scale_factor == 128.0
