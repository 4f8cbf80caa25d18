"""Functional models of ops on symbolic tensors (densitron.ops, Python's operators) in `.keras`
files as Keras 3 writes them: each op a node of its own (keras.src.ops.* module, its class, its
constructor's arguments as config, its tensors and constants as args). densitron writes its
op calls so and loads them back; it loads the files Keras 3.15 wrote of the same models
(tests/data/keras_op_nodes/, made by make_keras_op_nodes.py there) and predicts what Keras
predicted (Keras is not needed here)."""

import json
import os
import zipfile

import numpy as np
import pytest

import densitron
from densitron import layers, ops
from densitron.models import Model

DATA = os.path.join(os.path.dirname(__file__), "data", "keras_op_nodes")
RTOL, ATOL = 1e-5, 1e-6


def build_models(L, O, Input, Model):
    """The models, written once for Keras (L=keras.layers, O=keras.ops) and densitron: {name:
    (model, input shape)}."""
    models = {}

    inp = Input((6,), name="x")
    h = L.Dense(4, name="d")(inp)
    a = O.relu(h) + O.square(h)
    b = a * 2.0 + 1.0
    c = b[:, :2]
    d = O.sum(c, axis=-1, keepdims=True)
    out = L.Dense(1, name="o")(O.concatenate([c, d], axis=-1))
    models["brief"] = (Model(inp, out), (6,))

    inp = Input((6,), name="x")
    h = L.Dense(5, name="d")(inp)
    parts = [O.mean(h, axis=-1, keepdims=True), O.max(h, axis=1, keepdims=True),
             O.min(h, axis=-1, keepdims=True), O.log(O.abs(h) + 1.0),
             O.sqrt(O.square(h) + 0.5), O.exp(-abs(h)), O.absolute(h) * h]
    models["reductions"] = (Model(inp, O.concatenate(parts, axis=-1)), (6,))

    inp = Input((6,), name="x")
    h = L.Dense(4, name="d")(inp)
    parts = [2.0 - h, 1.0 / (O.abs(h) + 1.0), h / 4.0, h - 3.0, 3.0 * h, 0.5 + h,
             O.subtract(1.0, h), O.divide(h, 2.0), O.multiply(h, h), O.add(h, h) - h,
             h / (O.square(h) + 1.0)]
    models["constants"] = (Model(inp, L.Dense(2, name="o")(O.concatenate(parts, axis=-1))),
                           (6,))

    inp = Input((6,), name="x")
    h = L.Dense(6, name="d")(inp)
    parts = [h[:, ::2], O.expand_dims(h[:, 1], -1), h[..., 1:3], h[:, -2:], h[:, 1:5:3],
             O.expand_dims(h[..., -1], axis=-1)]
    models["slices"] = (Model(inp, O.concatenate(parts, axis=-1)), (6,))

    inp = Input((6,), name="x")
    h = L.Dense(8, name="d")(inp)
    left = O.reshape(h, (-1, 2, 4))
    right = O.reshape(O.tanh(h), (-1, 4, 2))
    product = O.reshape(O.matmul(left, right), (-1, 4))
    grid = O.squeeze(O.expand_dims(product, 1), axis=1)
    models["shapes"] = (Model(inp, L.Dense(3, name="o")(grid)), (6,))

    inp = Input((6,), name="x")
    h = L.Dense(4, name="d")(inp)
    parts = [O.tanh(h), O.sigmoid(h), O.softmax(h, axis=-1), O.leaky_relu(h, 0.1),
             O.gelu(h), O.silu(h), O.elu(h), O.clip(h, -0.5, 0.5), O.maximum(h, 0.1),
             O.minimum(h, O.tanh(h)), O.power(h, 3.0), h ** 2, O.negative(h),
             O.log_softmax(h), O.softplus(h), O.relu6(h)]
    models["activations"] = (Model(inp, O.concatenate(parts, axis=-1)), (6,))

    inp = Input((3, 4), name="x")
    h = L.Dense(4, name="d")(inp)
    parts = [O.mean(h, axis=1), O.max(h, axis=-1), O.expand_dims(O.sum(h, axis=(1, 2)), -1),
             O.reshape(O.mean(h, axis=-1, keepdims=True), (-1, 3))]
    models["rank3"] = (Model(inp, O.concatenate(parts, axis=-1)), (3, 4))
    # (densitron's comparisons are 1.0/0.0: files cast Keras's bools to float32 after them)
    inp = Input((5,), name="x")
    h = L.Dense(4, name="d")(inp)
    parts = [O.cast(O.not_equal(h, 0.0), "float32") * h,
             O.where(O.cast(h > 0.1, "float32"), h, 0.5 * h),
             O.cast(O.greater_equal(h, 0.0), "float32") + O.cast(h < 0.2, "float32"),
             O.stop_gradient(h), O.logsumexp(h, axis=-1, keepdims=True)]
    models["comparisons"] = (Model(inp, O.concatenate(parts, axis=-1)), (5,))
    return models


def _densitron_models():
    return build_models(layers, ops, layers.Input, Model)


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(5, *shape)).astype(np.float32)


def _config(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


def _op_entries(config):
    return [e for e in config["config"]["layers"] if e["module"].startswith("keras.src.ops.")]


def _canonical(config):
    """Each op node of a functional config as the expression it computes, written with its
    producers' expressions (layer and op names left out): names and order may differ between
    files of the same model, the ops not."""
    entries = {e["name"]: e for e in config["config"]["layers"]}
    memo = {}

    def value(v):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            return expr(v["config"]["keras_history"][0])
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    def expr(name):
        if name not in memo:
            e = entries[name]
            config = {k: v for k, v in e["config"].items() if k != "name"}
            if not e["module"].startswith("keras.src.ops."):
                memo[name] = e["class_name"]  # (a layer: its class)
            else:
                memo[name] = json.dumps([e["module"], e["class_name"], value(config),
                                         value(e["inbound_nodes"][0]["args"])], sort_keys=True)
        return memo[name]

    return sorted(expr(e["name"]) for e in _op_entries(config))


# --- (a) densitron's files of ops, loaded back -------------------------------------------------

@pytest.mark.parametrize("name", sorted(_densitron_models()))
def test_ops_save_and_load_back(tmp_path, name):
    model, shape = build_models(layers, ops, layers.Input, Model)[name]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    back = densitron.saving.load_model(path)
    x = _inputs(shape)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in back.layers] == \
        [type(layer).__name__ for layer in model.layers]
    # the ops of the file are made again as ops: written again the same way
    back.save(str(tmp_path / "again.keras"))
    assert _canonical(_config(tmp_path / "again.keras")) == _canonical(_config(path))
    # and through JSON
    again = densitron.saving.model_from_json(model.to_json())
    again.set_weights(model.get_weights())
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_ops_of_a_loaded_model_train_on():
    model, shape = _densitron_models()["brief"]
    model.compile(optimizer="sgd", loss="mse")
    x, y = _inputs(shape), np.ones((5, 1), np.float32)
    back = densitron.saving.model_from_bytes(densitron.saving.model_to_bytes(model))
    model.fit(x, y, epochs=2, verbose=0, shuffle=False)
    back.fit(x, y, epochs=2, verbose=0, shuffle=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)


# --- (b) Keras's files ----------------------------------------------------------------------

FIXTURES = sorted(f[:-len(".keras")] for f in os.listdir(DATA) if f.endswith(".keras"))


def test_fixtures_cover_the_models():
    assert FIXTURES == sorted(_densitron_models())


@pytest.mark.parametrize("name", FIXTURES)
def test_keras_files_load_and_predict_as_keras(name):
    path = os.path.join(DATA, f"{name}.keras")
    expected = np.load(os.path.join(DATA, f"{name}.npz"))
    model = densitron.saving.load_model(path)
    np.testing.assert_allclose(model.predict(expected["x"], verbose=0), expected["y"],
                               rtol=RTOL, atol=ATOL)
    # Keras's config alone (model_from_json), with the file's weights
    again = densitron.saving.model_from_json(json.dumps(_config(path)))
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(expected["x"], verbose=0), expected["y"],
                               rtol=RTOL, atol=ATOL)


# --- (c) the nodes densitron writes are Keras's ------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_saved_op_nodes_are_keras_nodes(tmp_path, name):
    model, _ = _densitron_models()[name]
    model.save(str(tmp_path / "ours.keras"))
    ours = _config(tmp_path / "ours.keras")
    assert _canonical(ours) == _canonical(_config(os.path.join(DATA, f"{name}.keras")))


def test_saved_op_node_form(tmp_path):
    model, _ = _densitron_models()["brief"]
    model.save(str(tmp_path / "m.keras"))
    entries = {e["class_name"]: e for e in _op_entries(_config(tmp_path / "m.keras"))}
    assert sorted(entries) == ["Add", "Concatenate", "GetItem", "Multiply", "Relu", "Square",
                               "Sum"]
    mul = entries["Multiply"]
    assert mul["module"] == "keras.src.ops.numpy" and mul["registered_name"] == "Multiply"
    assert mul["config"] == {"name": mul["name"]}
    tensor, constant = mul["inbound_nodes"][0]["args"]
    assert tensor["class_name"] == "__keras_tensor__" and constant == 2.0
    assert mul["inbound_nodes"][0]["kwargs"] == {}
    assert entries["Relu"]["module"] == "keras.src.ops.nn"
    total = entries["Sum"]
    assert total["config"] == {"name": total["name"], "axis": -1, "keepdims": True}
    item = entries["GetItem"]["inbound_nodes"][0]["args"]
    assert item[1] == [{"class_name": "__slice__", "config": {"start": None, "stop": None,
                                                              "step": None}},
                       {"class_name": "__slice__", "config": {"start": None, "stop": 2,
                                                              "step": None}}]
    joined = entries["Concatenate"]
    assert joined["config"]["axis"] == -1
    assert [t["class_name"] for t in joined["inbound_nodes"][0]["args"][0]] == \
        ["__keras_tensor__"] * 2


def test_constants_first_as_keras_writes_them(tmp_path):
    inp = layers.Input((3,))
    model = Model(inp, ops.concatenate([2.0 - inp, 1.0 / inp], axis=-1))
    model.save(str(tmp_path / "m.keras"))
    args = {e["class_name"]: e["inbound_nodes"][0]["args"]
            for e in _op_entries(_config(tmp_path / "m.keras"))}
    assert args["Subtract"][0] == 2.0 and args["TrueDivide"][0] == 1.0
    assert args["Subtract"][1]["class_name"] == "__keras_tensor__"


def test_layers_stay_layers(tmp_path):
    a, b = layers.Input((3,)), layers.Input((3,))
    h = layers.Activation("relu")(layers.Add()([a, b]))
    model = Model([a, b], layers.Rescaling(2.0, 1.0)(h) + ops.relu(h))
    model.save(str(tmp_path / "m.keras"))
    entries = _config(tmp_path / "m.keras")["config"]["layers"]
    assert sorted((e["module"], e["class_name"]) for e in entries
                  if e["class_name"] != "InputLayer") == [
        ("keras.layers", "Activation"), ("keras.layers", "Add"), ("keras.layers", "Rescaling"),
        ("keras.src.ops.nn", "Relu"), ("keras.src.ops.numpy", "Add")]


def test_an_op_densitron_cannot_build_is_refused():
    config = _config(os.path.join(DATA, "brief.keras"))
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "Square")
    entry["class_name"] = entry["registered_name"] = "Cumsum"
    with pytest.raises(ValueError, match="Cumsum.*Received"):
        densitron.saving.model_from_json(json.dumps(config))
    config = _config(os.path.join(DATA, "brief.keras"))
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "GetItem")
    entry["inbound_nodes"][0]["args"][1] = [0]  # (the batch axis)
    with pytest.raises(ValueError, match="GetItem.*Received"):
        densitron.saving.model_from_json(json.dumps(config))


@pytest.mark.parametrize("clone_function", [None, lambda layer: layer.__class__.from_config(
    layer.get_config())])
def test_a_clone_saves_its_ops_as_keras_nodes(tmp_path, clone_function):
    model, shape = _densitron_models()["comparisons"]
    clone = densitron.models.clone_model(model, clone_function=clone_function)
    clone.set_weights(model.get_weights())
    x = _inputs(shape)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(str(tmp_path / "model.keras"))
    clone.save(str(tmp_path / "clone.keras"))
    assert _canonical(_config(tmp_path / "clone.keras")) == \
        _canonical(_config(tmp_path / "model.keras"))
