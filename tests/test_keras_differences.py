"""Behaviour that once differed from Keras 3.15, checked against Keras itself: metrics_names
and the order of evaluate's list, ... (Keras runs in this process on its numpy backend through
the `keras` fixture, or on JAX in a child process where it must train)."""
import json

import densitron
import numpy as np
import pytest
from keras_subprocess import keras_on_jax_json


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(11, 3)).astype("float32")
    y = (rng.random((11, 1)) > 0.5).astype("float32")
    z = rng.normal(size=(11, 2)).astype("float32")
    sw = np.linspace(0.1, 1.0, 11).astype("float32")
    return x, y, z, sw


def _with_weights(model):
    """The model with deterministic weights, the same in Keras and densitron."""
    shapes = [tuple(v.shape) for v in model.weights]
    model.set_weights([np.linspace(-0.7, 0.9, int(np.prod(s))).reshape(s).astype("float32")
                       for s in shapes])
    return model


# compile's arguments for a model of one output (sigmoid, binary_crossentropy) or of two
# ("a": sigmoid, binary_crossentropy; "b": linear of 2, mse)
_NAMES_CASES = {
    "single_plain": (1, {}),
    "single_metrics": (1, {"metrics": ["accuracy", "mae"]}),
    "single_weighted_only": (1, {"weighted_metrics": ["mae"]}),
    "single_both": (1, {"metrics": ["accuracy"], "weighted_metrics": ["accuracy"]}),
    "single_both_many": (1, {"metrics": ["mae", "accuracy"],
                             "weighted_metrics": ["accuracy", "mae", "mse"]}),
    "multi_plain": (2, {}),
    "multi_metrics": (2, {"metrics": [["accuracy"], ["mae"]]}),
    "multi_both": (2, {"metrics": {"a": ["accuracy"], "b": ["mae"]},
                       "weighted_metrics": {"a": ["accuracy"], "b": ["mae", "mse"]}}),
}


def names_scenario(k, case):
    """metrics_names after compile, after evaluate, after compile again; evaluate's list and
    dict (with and without sample weights) for one case, from `k` (keras or densitron)."""
    outputs, kwargs = _NAMES_CASES[case]
    x, y, z, sw = _data()
    inp = k.Input((3,))
    a = k.layers.Dense(1, activation="sigmoid", name="a")(inp)
    if outputs == 1:
        model, ys = k.Model(inp, a), y
        loss = "binary_crossentropy"
    else:
        model, ys = k.Model(inp, [a, k.layers.Dense(2, name="b")(inp)]), [y, z]
        loss = ["binary_crossentropy", "mse"]
    _with_weights(model)
    out = {"before_compile": model.metrics_names}
    model.compile("sgd", loss, **kwargs)
    out["compiled"] = model.metrics_names

    def floats(v):
        return np.asarray(v, dtype=np.float64).round(5).tolist()

    out["list"] = floats(model.evaluate(x, ys, verbose=0))
    out["weighted_list"] = floats(model.evaluate(x, ys, sample_weight=sw, verbose=0))
    logs = model.evaluate(x, ys, sample_weight=sw, verbose=0, return_dict=True)
    out["dict"] = {key: floats(v) for key, v in logs.items()}
    out["evaluated"] = model.metrics_names
    out["metrics"] = [m.name for m in model.metrics]
    model.compile("sgd", loss, **kwargs)
    out["compiled_again"] = model.metrics_names
    return out


@pytest.mark.parametrize("case", sorted(_NAMES_CASES))
def test_metrics_names_and_evaluate_order_as_keras(keras, case):
    # Keras 3: metrics_names are model.metrics' names ("loss", "compile_metrics" when compile
    # had metrics, the outputs' losses once built); evaluate's list takes the loss, then each
    # compiled metric's own name (a weighted namesake gives the plain one's value again), the
    # outputs' losses, then the other logs by name
    ours = json.loads(json.dumps(names_scenario(densitron, case)))
    theirs = json.loads(json.dumps(names_scenario(keras, case)))
    assert ours.keys() == theirs.keys()
    for key in ours:
        if key in ("list", "weighted_list", "dict"):
            np.testing.assert_allclose(np.asarray(ours[key] if key != "dict" else
                                                  list(ours[key].values()), dtype=float),
                                       np.asarray(theirs[key] if key != "dict" else
                                                  list(theirs[key].values()), dtype=float),
                                       rtol=2e-4, atol=2e-5, err_msg=key)
            if key == "dict":
                assert list(ours[key]) == list(theirs[key])
        else:
            assert ours[key] == theirs[key], key


def test_metrics_names_after_fit_as_keras_on_jax():
    code = ("import json, keras, test_keras_differences as t\n"
            "m = t.fit_names_scenario(keras)\nprint(json.dumps(m))")
    theirs = keras_on_jax_json(code)
    assert fit_names_scenario(densitron) == theirs


def fit_names_scenario(k):
    x, y, z, _ = _data()
    inp = k.Input((3,))
    model = k.Model(inp, [k.layers.Dense(1, activation="sigmoid", name="a")(inp),
                          k.layers.Dense(2, name="b")(inp)])
    model.compile("sgd", ["binary_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]])
    history = model.fit(x, [y, z], epochs=1, verbose=0, validation_split=0.3)
    return {"names": model.metrics_names, "history": list(history.history)}


_CATEGORICAL_CASES = [([0, 2, 1], None), ([[1], [0], [3]], None), ([[0, 1], [2, 0]], 4),
                      (np.array([1.0, 2.0]), None), (np.array(2), 0), ([4, 0, 4, 1, 3], 7)]


def categorical_scenario(k):
    return [[str(r.dtype), list(r.shape), r.tolist()]
            for r in (k.utils.to_categorical(np.asarray(x), n) for x, n in _CATEGORICAL_CASES)]


def test_to_categorical_is_float64_as_keras_on_jax():
    # Keras 3.15 builds the one-hot rows of an array or list in NumPy: float64 (its numpy
    # backend, whose tensors are arrays, gives float32; the backends that train give float64)
    code = ("import json, keras, test_keras_differences as t\n"
            "print(json.dumps(t.categorical_scenario(keras)))")
    theirs = keras_on_jax_json(code)
    ours = categorical_scenario(densitron)
    assert ours == theirs and ours[0][0] == "float64"


def test_training_takes_float64_one_hot_targets_as_float32_ones():
    x, _, _, _ = _data()
    ids = np.arange(11) % 3
    y64 = densitron.utils.to_categorical(ids)
    results = []
    for y in (y64, y64.astype("float32")):
        densitron.utils.set_random_seed(5)
        inp = densitron.Input((3,))
        model = densitron.Model(inp, densitron.layers.Dense(3, activation="softmax")(inp))
        model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=0).history
        results.append((history, model.evaluate(x, y, verbose=0), model.get_weights()))
    assert results[0][0] == results[1][0] and results[0][1] == results[1][1]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)


def source_hooks_scenario(k):
    """Every batch and epoch hook call (and the history) of fit, evaluate and predict on
    generators and a PyDataset at steps_per_execution 1, 2 and 3: steps_per_epoch None, more
    than the generator holds, exactly what it holds, over several epochs."""
    import warnings

    warnings.simplefilter("ignore")
    x = (np.arange(30, dtype="float32").reshape(10, 3) / 30)
    y = np.linspace(0, 1, 10, dtype="float32").reshape(10, 1)

    def gen(n=4, xy=True):
        for i in range(n):
            yield (x[3 * i:3 * i + 3], y[3 * i:3 * i + 3]) if xy else (x[3 * i:3 * i + 3],)

    class Batches(k.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[3 * i:3 * i + 3], y[3 * i:3 * i + 3]

    class Recorder(k.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

    def recording(name):
        def hook(self, i, logs=None):
            self.calls.append(f"{name}:{i}")
        return hook

    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                 "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
                 "on_epoch_begin", "on_epoch_end"):
        setattr(Recorder, hook, recording(hook[3:]))
    out = []
    for spe in (1, 2, 3):
        for label, source, kwargs in (
                ("gen", gen, {}), ("gen_epochs", gen, {"epochs": 2}),
                ("dataset", Batches, {}), ("gen_steps_3", gen, {"steps_per_epoch": 3}),
                ("gen_steps_6", gen, {"steps_per_epoch": 6, "epochs": 3}),
                ("gen_steps_4", gen, {"steps_per_epoch": 4, "epochs": 3}),
                ("gen_validation", Batches, {"validation_data": gen(), "epochs": 2})):
            inp = k.Input((3,))
            model = k.Model(inp, k.layers.Dense(1, kernel_initializer="ones")(inp))
            model.compile("sgd", "mse", steps_per_execution=spe)
            rec = Recorder()
            history = model.fit(source(), verbose=0, callbacks=[rec], shuffle=False,
                                **kwargs).history
            out.append([spe, label, rec.calls,
                        {key: np.round(v, 5).tolist() for key, v in history.items()}])
            if label in ("gen", "dataset"):
                rec = Recorder()
                loss = model.evaluate(source(), verbose=0, callbacks=[rec])
                out.append([spe, label, "evaluate", rec.calls, round(float(loss), 5)])
                rec = Recorder()
                pred = model.predict(gen(xy=False) if label == "gen" else source(), verbose=0,
                                     callbacks=[rec])
                out.append([spe, label, "predict", rec.calls, np.round(pred, 5).tolist()])
    return out


def test_source_batch_hooks_as_keras_on_jax():
    # Keras 3.15 (JAX) calls on_*_batch_begin for the run that meets a generator's end, before
    # it pulls from it (not when the end comes inside the epoch's last run); an epoch whose
    # generator the last one spent begins its first run, trains nothing and logs the last
    # epoch's logs again
    code = ("import json, keras, test_keras_differences as t\n"
            "print(json.dumps(t.source_hooks_scenario(keras)))")
    theirs = keras_on_jax_json(code)
    ours = json.loads(json.dumps(source_hooks_scenario(densitron)))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a[:-1] == b[:-1]
        np.testing.assert_allclose(np.asarray(a[-1] if not isinstance(a[-1], dict) else
                                              list(a[-1].values()), dtype=float),
                                   np.asarray(b[-1] if not isinstance(b[-1], dict) else
                                              list(b[-1].values()), dtype=float),
                                   rtol=1e-4, atol=1e-5, err_msg=str(a[:2]))


_AUGMENTATIONS = {
    "RandomFlip": {},
    "RandomBrightness": {"factor": 0.3, "value_range": (0, 1)},
    "RandomContrast": {"factor": 0.5},
    "RandomTranslation": {"height_factor": 0.3, "width_factor": 0.3},
    "RandomZoom": {"height_factor": 0.3},
}


def augmentation_scenario(k, name):
    """For a model of the augmentation layer (Functional, and Sequential with it inside another
    model, beside a Dropout): the share of samples each call changes, and the mean and spread
    of the samples' mean absolute change under model(x)."""
    k.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.35, 0.65, size=(512, 7, 5, 3)).astype("float32")
    inp = k.Input((7, 5, 3))
    functional = k.Model(inp, getattr(k.layers, name)(**_AUGMENTATIONS[name])(inp))
    block = k.Sequential([k.Input((7, 5, 3)), getattr(k.layers, name)(**_AUGMENTATIONS[name])])
    outer_in = k.Input((7, 5, 3))
    nested = k.Model(outer_in, k.layers.Dropout(0.5)(block(outer_in)))
    out = {}
    for label, model in (("functional", functional), ("nested", nested)):
        model.compile("sgd", "mse")

        def change(a):
            return np.abs(np.asarray(a, dtype=np.float64) - x).mean(axis=(1, 2, 3))

        calls = {"call": model(x), "call_training_none": model(x, training=None),
                 "call_training_false": model(x, training=False),
                 "call_training_true": model(x, training=True),
                 "predict": model.predict(x, verbose=0), "predict_on_batch":
                 model.predict_on_batch(x)}
        if label == "nested":  # (Keras's Dropout takes training=True here: not compared)
            del calls["call_training_true"]
        out[label] = {key: float(np.mean(change(v) > 1e-6)) for key, v in calls.items()}
        per_sample = change(calls["call"])
        out[label]["mean_change"] = float(per_sample.mean())
        out[label]["spread_change"] = float(per_sample.std())
        out[label]["evaluate"] = float(model.evaluate(x, x, verbose=0))
    return out


def test_augmentation_in_a_model_call_as_keras_on_jax():
    # Keras's augmentation layers default to training=True in their call: model(x) (and
    # training=None) augments while its Dropout does not; training=False, predict,
    # predict_on_batch and evaluate leave the images as they are. The changes' mean and spread
    # over 512 samples follow Keras's (other random numbers)
    code = ("import json, keras, test_keras_differences as t\n"
            "print(json.dumps({name: t.augmentation_scenario(keras, name) "
            "for name in t._AUGMENTATIONS}))")
    every = keras_on_jax_json(code)
    for name in _AUGMENTATIONS:
        ours, theirs = augmentation_scenario(densitron, name), every[name]
        for label in ours:
            for key in ("call_training_false", "predict", "predict_on_batch", "evaluate"):
                assert ours[label][key] == theirs[label][key] == 0.0, (name, label, key)
            for key in ("call", "call_training_none", "call_training_true"):
                if key in ours[label]:
                    assert ours[label][key] == pytest.approx(theirs[label][key], abs=0.08)
                    assert ours[label][key] > 0.4, (name, label, key)
            for key in ("mean_change", "spread_change"):
                assert ours[label][key] == pytest.approx(theirs[label][key], rel=0.2), (
                    name, label, key)


def test_augmenting_call_draws_anew_and_follows_the_weights():
    # Each model(x) draws new augmentations (as Keras's seed generator moves on); the graph
    # behind it reads the model's weights as they are after fit or set_weights
    x = np.random.default_rng(2).uniform(0.3, 0.7, size=(40, 6, 4, 2)).astype("float32")
    inp = densitron.Input((6, 4, 2))
    hidden = densitron.layers.RandomBrightness(0.2, value_range=(0, 1))(inp)
    model = densitron.Model(inp, densitron.layers.Dense(3)(densitron.layers.Flatten()(hidden)))
    first, second = model(x), model(x)
    assert not np.allclose(first, second)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 0, bias + 2.5])
    np.testing.assert_allclose(model(x), np.full((40, 3), 2.5), rtol=1e-6)
    model.compile("sgd", "mse")
    model.fit(x, np.ones((40, 3)), epochs=2, verbose=0)
    kernel, bias = model.layers[-1].get_weights()
    assert not np.allclose(bias, 2.5)
    # Dense's weights as fit left them: model(x) is the Dense of the brightened images, each
    # sample shifted by one delta of at most 0.2 (the range's 0.2) and clipped to [0, 1]
    out = model(x)
    flat = x.reshape(40, -1).astype(np.float64)
    delta = np.linalg.lstsq(kernel.sum(axis=0)[:, None].astype(np.float64),
                            (out - flat @ kernel - bias).T, rcond=None)[0].ravel()
    np.testing.assert_allclose(out, flat @ kernel + bias + delta[:, None] * kernel.sum(axis=0),
                               rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(delta) <= 0.2 + 1e-5) and delta.std() > 0.05


def test_augmenting_call_refuses_random_rotation_in_the_model():
    inp = densitron.Input((6, 4, 2))
    model = densitron.Model(inp, densitron.layers.RandomRotation(0.2)(inp))
    x = np.zeros((3, 6, 4, 2), np.float32)
    with pytest.raises(ValueError, match="without `training`.*Received: a model containing "
                                         "RandomRotation"):
        model(x)
    np.testing.assert_array_equal(model(x, training=False), x)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def _configured_layers(k):
    L = k.layers
    return [L.Dense(3, activation="relu", kernel_regularizer=k.regularizers.L1L2(0.01, 0.02),
                    bias_constraint=k.constraints.MaxNorm(2.0), name="d"),
            L.Dropout(0.3, name="dr"), L.BatchNormalization(name="bn"),
            L.Embedding(10, 4, embeddings_initializer=k.initializers.HeNormal(seed=3),
                        name="emb"),
            L.LayerNormalization(name="ln"), L.Flatten(name="fl"), L.Activation("tanh"),
            L.MaxPooling2D(name="mp"), L.Concatenate(name="cat"), L.Reshape((2, 3), name="rs"),
            L.RandomFlip(name="rf"), L.Rescaling(0.5, name="resc"),
            L.GlobalAveragePooling1D(name="gap"),
            L.MultiHeadAttention(2, 4, kernel_initializer=k.initializers.VarianceScaling(
                2.0, "fan_avg", "uniform", seed=1, input_axes=[0], output_axes=[1, 2]),
                name="mha")]


def test_layer_configs_write_keras_dtype_policies_and_objects(keras):
    # Keras 3 serializes a layer's dtype as its DTypePolicy and its initializers, regularizers
    # and constraints with their module and registered_name (VarianceScaling's fan axes too):
    # every value densitron writes that is a dict (or the dtype) is Keras's
    checked = 0
    for ours, theirs in zip(_configured_layers(densitron), _configured_layers(keras)):
        a, b = ours.get_config(), theirs.get_config()
        for key, value in a.items():
            if isinstance(value, dict) or key == "dtype":
                assert value == b[key], (type(ours).__name__, key)
                checked += 1
    assert checked >= 20


def test_layer_configs_of_the_older_form_still_load():
    # densitron's configs before (dtype "float32", objects without module) load as they did;
    # their layers write Keras's form
    old = {"name": "d", "trainable": True, "dtype": "float32", "units": 2,
           "activation": "linear", "use_bias": True,
           "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": 4}},
           "bias_initializer": {"class_name": "Zeros", "config": {}},
           "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.5}},
           "bias_regularizer": None, "kernel_constraint": None,
           "bias_constraint": {"class_name": "NonNeg", "config": {}}}
    layer = densitron.layers.Dense.from_config(old)
    config = layer.get_config()
    assert config["dtype"]["config"] == {"name": "float32"}
    assert config["kernel_initializer"] == {
        "module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": 4, "input_axes": None, "output_axes": None},
        "registered_name": None}
    assert config["kernel_regularizer"]["module"] == "keras.regularizers"
    assert config["bias_constraint"]["module"] == "keras.constraints"
    again = densitron.layers.Dense.from_config(config)
    assert again.get_config() == config


def test_variance_scaling_fan_axes_as_keras(keras):
    # input_axes and output_axes (both given) choose the fans' axes, as Keras's compute_fans;
    # one alone is ignored, as Keras ignores it
    shape = (6, 5, 40, 50)
    for axes, fans in ((([0, 1], [2, 3]), (30, 2000)), (([3], [0]), (50, 6)),
                       (([2], None), (6 * 5 * 40, 6 * 5 * 50))):
        for distribution in ("uniform", "untruncated_normal"):
            init = densitron.initializers.VarianceScaling(
                1.5, "fan_avg", distribution, seed=2, input_axes=axes[0], output_axes=axes[1])
            values = np.asarray(init(shape), dtype=np.float64)
            variance = 1.5 / ((fans[0] + fans[1]) / 2)
            np.testing.assert_allclose(values.var(), variance, rtol=0.02)
            if distribution == "uniform":
                assert np.abs(values).max() <= np.sqrt(3 * variance)
            theirs = keras.initializers.VarianceScaling(
                1.5, "fan_avg", distribution, seed=2, input_axes=axes[0],
                output_axes=axes[1])
            np.testing.assert_allclose(np.asarray(theirs(shape)).var(), variance, rtol=0.02)
    with pytest.raises(ValueError, match="`output_axes`.*Received: output_axes=3"):
        densitron.initializers.GlorotUniform(input_axes=[0], output_axes=3)


def _config_models(k):
    inp = k.Input((4,), name="inp")
    hidden = k.layers.Dense(3, name="h")(inp)
    other = k.Input((3,), name="other")
    merged = k.layers.Concatenate(name="cat")([k.layers.Dropout(0.2, name="dr")(hidden), other])
    functional = k.Model([inp, other], [k.layers.Dense(1, name="o")(merged),
                                        k.layers.Dense(2, name="p")(merged)], name="m")
    single = k.Model(inp, k.layers.Dense(1, name="q")(inp), name="one")
    sequential = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="s1"),
                               k.layers.Dense(2, name="s2")], name="s")
    return functional, single, sequential


def _without_noise(config):
    """A model config less what densitron does not write yet: the layers' build_config, the
    training flag a call recorded."""
    config = json.loads(json.dumps(config))
    for entry in config["layers"]:
        entry.pop("build_config", None)
        if entry["class_name"] == "InputLayer" and "input_layers" not in config:
            entry["config"].pop("name")  # (a Sequential's input: named by each its own way)
        for node in entry.get("inbound_nodes", []):
            node.get("kwargs", {}).pop("training", None)
    return config


def test_model_configs_are_keras_form(keras):
    # model.get_config() is Keras's: each layer's entry with module and registered_name, the
    # calls' tensors as __keras_tensor__ with their shapes and keyword arguments, one input or
    # output unlisted, a Sequential's dtype policy and InputLayer first; from_config reads it
    x = [np.linspace(-1, 1, 20, dtype="float32").reshape(5, 4),
         np.linspace(0, 1, 15, dtype="float32").reshape(5, 3)]
    for ours, theirs in zip(_config_models(densitron), _config_models(keras)):
        config = ours.get_config()
        assert _without_noise(config) == _without_noise(theirs.get_config()), ours.name
        _with_weights(ours)
        again = type(ours).from_config(config)
        again.set_weights(ours.get_weights())
        data = x if len(ours.inputs) == 2 else x[0]
        first, second = ours.predict(data, verbose=0), again.predict(data, verbose=0)
        first, second = (first, second) if isinstance(first, list) else ([first], [second])
        assert len(first) == len(second)
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)


def test_configs_hold_keras_keys_at_their_defaults(keras):
    # Dense's, EinsumDense's and Embedding's quantization_config (None), Embedding's and
    # MultiHeadAttention's activity_regularizer (None when unset), LayerNormalization's
    # rms_scaling (False), BatchNormalization's synchronized and renorm arguments, InputLayer's
    # ragged and optional (False): Keras's configs exactly; MultiHeadAttention writes no
    # flash_attention, as Keras's
    def configured(k):
        L = k.layers
        return [L.Dense(3, name="d"), L.EinsumDense("ab,bc->ac", 3, bias_axes="c", name="e"),
                L.Embedding(10, 4, mask_zero=True, name="emb"), L.LayerNormalization(name="ln"),
                L.MultiHeadAttention(2, 3, value_dim=5, name="mha"),
                L.BatchNormalization(renorm_momentum=0.9, name="bn"),
                L.InputLayer(shape=(3, 2), name="inp")]

    for ours, theirs in zip(configured(densitron), configured(keras)):
        config = ours.get_config()
        assert config == theirs.get_config(), type(ours).__name__
        assert type(ours).from_config(config).get_config() == config
    with pytest.raises(ValueError, match="Received: renorm=True"):
        densitron.layers.BatchNormalization(renorm=True)


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_flatten_data_format_as_keras(keras, data_format):
    # Keras's Flatten moves a channels_first sample's channels last before flattening
    x = np.random.default_rng(5).normal(size=(3, 2, 4, 5)).astype("float32")
    want = np.asarray(keras.layers.Flatten(data_format=data_format)(x))
    layer = densitron.layers.Flatten(data_format=data_format)
    assert np.array_equal(layer(x), want)
    model = densitron.Sequential([densitron.Input((2, 4, 5)), layer])
    assert np.array_equal(model.predict(x, verbose=0), want)
    assert layer.get_config()["data_format"] == data_format
    clone = densitron.Sequential.from_config(model.get_config())
    assert np.array_equal(clone.predict(x, verbose=0), want)
    with pytest.raises(ValueError, match="Received: data_format='nchw'"):
        densitron.layers.Flatten(data_format="nchw")


def _scale_layer(lib):
    class Scale(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.s = lib.Variable(np.full((3,), 2.0, "float32"), name="s")
            self.frozen = [lib.Variable(np.ones((3,), "float32"), name="f", trainable=False)]

        def call(self, x):
            return x * self.s + self.frozen[0]

    return Scale()


def test_a_variable_set_as_an_attribute_is_a_weight_as_keras(keras, tmp_path):
    # Keras tracks a Variable (or a list of them) set on a layer: in its weights, trained,
    # saved (densitron's engine failed with a KeyError on it)
    x = np.random.default_rng(6).normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    names = []
    for lib in (keras, densitron):
        layer = _scale_layer(lib)
        assert [w.name for w in layer.weights] == ["s", "f"]
        assert [w.name for w in layer.trainable_weights] == ["s"]
        inp = lib.Input((3,))
        with np.errstate(all="ignore"):  # (Keras's numpy backend calls it on empty arrays)
            model = lib.Model(inp, lib.layers.Dense(1)(layer(inp)))
        names.append([w.name for w in model.weights])
    assert names[0] == names[1]
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=2, verbose=0)
    s = model.layers[1].s.numpy()
    assert not np.allclose(s, 2.0) and np.array_equal(model.layers[1].frozen[0].numpy(),
                                                       np.ones(3))
    model.save(tmp_path / "m.keras")
    again = densitron.saving.load_model(tmp_path / "m.keras", custom_objects={
        "Scale": type(model.layers[1])})
    assert any(np.array_equal(w, s) for w in again.get_weights())
    assert np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
