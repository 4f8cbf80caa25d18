"""More behaviour that once differed from Keras 3.15, checked against Keras itself (its numpy
backend in this process through the `keras` fixture, or JAX in a child process where it must
train): the layers' build_config and the models' compile_config in configs and files, a
Sequential's InputLayer names, losses of targets of another shape, ..."""
import json
import warnings
import zipfile

import densitron
import numpy as np
import pytest


def _built_layers_model(k):
    """A functional model of most layer kinds, each named, called as Keras's build sees them:
    one tensor, a list, a recurrent layer with and without initial states, attention with
    and without a key."""
    L = k.layers
    i2, i3 = k.Input((4,), name="i2"), k.Input((5, 4), name="i3")
    i4, ii, s = k.Input((6, 6, 2), name="i4"), k.Input((5,), name="ii", dtype="int32"), \
        k.Input((2,), name="st")
    d = L.Dense(3, name="dense")(i2)
    outs = [d, L.Concatenate(name="cat")([d, d]), L.Add(name="add")([d, d]),
            L.Dot(axes=1, name="dot")([d, d]), L.Dropout(0.1, name="drop")(d),
            L.BatchNormalization(name="bn")(d), L.LayerNormalization(name="ln")(d),
            L.LSTM(2, name="lstm")(i3), L.GRU(2, name="gru")(i3),
            L.SimpleRNN(2, name="srnn")(i3), L.LSTM(2, name="lstm_init")(i3, initial_state=[s, s]),
            L.Bidirectional(L.LSTM(2), name="bi")(i3),
            L.MultiHeadAttention(2, 3, name="mha")(i3, i3),
            L.MultiHeadAttention(2, 3, name="mhak")(i3, i3, key=i3),
            L.Attention(name="att")([i3, i3]),
            L.Flatten(name="flat")(L.Embedding(10, 3, name="emb")(ii)),
            L.Conv1D(2, 3, name="conv")(i3), L.Flatten(name="fl4")(i4),
            L.GlobalAveragePooling1D(name="gap")(i3), L.Rescaling(0.5, name="resc")(d),
            L.PReLU(name="prelu")(d), L.EinsumDense("ab,bc->ac", 3, name="ed")(d),
            L.GroupNormalization(2, name="gn")(i4), L.Normalization(name="norm")(d),
            L.Activation("relu", name="act")(d), L.Reshape((3, 1), name="resh")(d),
            L.CategoryEncoding(10, output_mode="multi_hot", name="ce")(ii),
            L.UnitNormalization(name="un")(d), L.RNN(L.LSTMCell(2), name="rnn")(i3),
            L.DepthwiseConv2D(3, name="dw")(i4), L.SeparableConv1D(2, 3, name="sep")(i3),
            L.Conv2DTranspose(2, 3, name="c2t")(i4), L.Softmax(name="smax")(d),
            L.MaxPooling1D(name="mp")(i3), L.AveragePooling1D(2, name="ap")(i3),
            L.RepeatVector(2, name="rv")(d), L.AdditiveAttention(name="aatt")([i3, i3]),
            L.RMSNormalization(name="rms")(d), L.Average(name="avg")([d, d]),
            L.GroupQueryAttention(4, 2, 2, name="gqa")(i3, i3)]
    return k.Model([i2, i3, i4, ii, s], outs, name="many")


def _build_configs(config):
    return {e["name"]: e.get("build_config", "absent") for e in config["layers"]}


def test_layers_build_configs_as_keras(keras):
    # Keras writes each layer's build_config (the shapes its first call built it with): one
    # input's shape, a list's shapes, shapes_dict for a recurrent layer given initial states
    # and for attention's query, value and key; none for a layer Keras builds when made
    # (Dropout, Activation, Reshape, poolings, ...) nor for an InputLayer
    with np.errstate(all="ignore"):
        theirs = _build_configs(_built_layers_model(keras).get_config())
    model = _built_layers_model(densitron)
    ours = _build_configs(model.get_config())
    assert ours == json.loads(json.dumps(theirs))
    assert ours["lstm_init"] == {"shapes_dict": {"sequences_shape": [None, 5, 4],
                                                 "initial_state_shape": [[None, 2], [None, 2]]}}
    assert ours["drop"] == "absent" and ours["cat"] == {"input_shape": [[None, 3], [None, 3]]}
    again = densitron.Model.from_config(model.get_config())
    assert _build_configs(again.get_config()) == ours


def _nested_models(k):
    L = k.layers
    i = k.Input((4,), name="i")
    inner = k.Model(i, L.Dense(2, name="di")(i), name="inner")
    seq = k.Sequential([L.Dense(2, name="ds")], name="seq")
    seq2 = k.Sequential([k.Input((2,)), L.Dense(2, name="ds2")], name="seq2")
    o = k.Input((4,), name="o")
    return k.Model(o, seq2(seq(inner(o))), name="outer")


def _model_keys(entry):
    """A model's serialized form less its layers' configs: keys, build and compile configs,
    those of the models it holds."""
    out = {"keys": sorted(entry), "build_config": entry.get("build_config", "absent"),
           "compile_config": entry.get("compile_config", "absent")}
    out["layers"] = [_model_keys(e) if "layers" in e["config"] else
                     [e["config"]["name"], e.get("build_config", "absent")]
                     for e in entry["config"]["layers"]]
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (Keras's numpy backend saving)
def test_nested_models_and_files_hold_build_and_compile_configs(keras, tmp_path):
    # a model in another's config, as in a `.keras` file, holds its build_config (a functional
    # model's {"input_shape": None}, a Sequential's input shape) and its compile_config ({}
    # when not compiled; the file's model its compile arguments)
    found = []
    for lib in (keras, densitron):
        lib.utils.clear_session()
        model = _nested_models(lib)
        entry = json.loads(model.to_json())
        model.compile(lib.optimizers.SGD(0.5), "mse", metrics=["mae"])
        model.save(tmp_path / f"{lib.__name__}.keras")
        with zipfile.ZipFile(tmp_path / f"{lib.__name__}.keras") as z:
            saved = json.loads(z.read("config.json"))
        found.append([_model_keys(entry), _model_keys({**saved, "compile_config": "checked"}),
                      saved["compile_config"]["loss"], saved["compile_config"]["metrics"]])
    assert found[1] == found[0]
    assert found[1][0]["compile_config"] == {}
    assert found[1][0]["layers"][1]["build_config"] == {"input_shape": None}
    back = keras.saving.load_model(tmp_path / "densitron.keras")
    own = keras.saving.load_model(tmp_path / "keras.keras")
    assert [w.path for w in back.weights] == [w.path for w in own.weights]
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    np.testing.assert_allclose(np.asarray(back(x)), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    mine = densitron.saving.load_model(tmp_path / "densitron.keras")
    assert mine.get_config() == model.get_config() and mine.loss == "mse"


def test_legacy_h5_files_hold_no_build_config(tmp_path):
    # (Keras's legacy .h5 model_config has none)
    import h5py

    inp = densitron.Input((3,))
    densitron.Model(inp, densitron.layers.Dense(2)(inp)).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5") as h:
        config = json.loads(h.attrs["model_config"])
    assert all("build_config" not in e for e in config["config"]["layers"])


def _sequential_names(k):
    """The layer names of Sequential models built each way, in model.layers and in their
    configs (the InputLayer first)."""
    k.utils.clear_session()
    L = k.layers
    m1 = k.Sequential([k.Input((4,)), L.Dense(2)])
    m2 = k.Sequential([L.Dense(2)])
    m2.build((None, 3))
    m3 = k.Sequential([L.Dense(2, input_shape=(5,))])
    m4 = k.Sequential()
    m4.add(k.Input((2,)))
    m4.add(L.Dense(3))
    m4.add(L.Dense(1))
    m5 = k.Sequential([L.Dense(2)])  # (never built: no InputLayer)
    i = k.Input((7,))
    m6 = k.Model(i, L.Dense(1)(i))
    out = {}
    for name, m in [("m1", m1), ("m2", m2), ("m3", m3), ("m4", m4), ("m5", m5), ("m6", m6)]:
        config = m.get_config()
        out[name] = {"layers": [layer.name for layer in m.layers],
                     "config": [e["config"]["name"] for e in config["layers"]],
                     "build_input_shape": config.get("build_input_shape", "absent")}
    return out


def test_sequential_input_layer_names_as_keras(keras):
    # A Sequential's InputLayer is Input()'s ("input_layer"), or the one it makes when built
    # ("input_layer_1", ... counted with Input()'s); it is in the config, not in
    # model.layers; an unbuilt Sequential's config has no build_input_shape
    with warnings.catch_warnings():  # (input_shape= on a layer: Keras's warning)
        warnings.simplefilter("ignore")
        theirs = _sequential_names(keras)
    ours = _sequential_names(densitron)
    assert ours == json.loads(json.dumps(theirs))
    assert ours["m2"]["config"] == ["input_layer_1", "dense_1"]


def test_sequential_config_keeps_its_input_layer_name(keras):
    model = densitron.Sequential([densitron.Input((4,), name="pixels"), densitron.layers.Dense(2)])
    config = model.get_config()
    assert config["layers"][0]["config"]["name"] == "pixels"
    again = densitron.Sequential.from_config(config)
    assert again.get_config() == config
    theirs = keras.Sequential.from_config(config)
    assert theirs.get_config()["layers"][0]["config"]["name"] == "pixels"
