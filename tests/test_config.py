"""get_config / from_config: plain JSON-able configs that rebuild the same layers and graphs."""

import json

import numpy as np
import pytest

from densitron import layers
from densitron.models import Model, Sequential

LAYERS = [
    lambda: layers.Dense(3, activation="tanh", use_bias=False, kernel_initializer="he_normal",
                         kernel_regularizer="l1", bias_constraint="non_neg"),
    lambda: layers.Activation("sigmoid"),
    lambda: layers.Dropout(0.3, seed=4),
    lambda: layers.GaussianNoise(0.2, seed=1),
    lambda: layers.GaussianDropout(0.2, seed=1),
    lambda: layers.AlphaDropout(0.2, noise_shape=(None, 1), seed=1),
    lambda: layers.ActivityRegularization(l1=0.1, l2=0.2),
    lambda: layers.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False),
    lambda: layers.LayerNormalization(epsilon=1e-5),
    lambda: layers.Reshape((2, 3)),
    lambda: layers.Flatten(),
    lambda: layers.Identity(),
    lambda: layers.Embedding(10, 4),
    lambda: layers.Concatenate(axis=1),
    lambda: layers.Add(),
    lambda: layers.Softmax(axis=1),
    lambda: layers.PReLU(alpha_initializer="ones", alpha_regularizer="l2",
                         alpha_constraint="non_neg", shared_axes=[1]),
]


@pytest.mark.parametrize("make", LAYERS)
def test_layer_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config  # plain JSON
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_functional_config_round_trip_rebuilds_same_graph():
    a = layers.Input(shape=(4,), name="a")
    b = layers.Input(shape=(3,), name="b")
    shared = layers.Dense(5, activation="relu", name="shared")
    h = layers.Concatenate()([shared(layers.Dense(5)(a)), shared(layers.Dense(5)(b))])
    h = layers.BatchNormalization()(layers.Dropout(0.1)(h))
    out1 = layers.Dense(2, activation="softmax", name="cls")(h)
    out2 = layers.Dense(1, name="reg")(h)
    model = Model({"a": a, "b": b}, [out1, out2], name="two_heads")
    config = model.get_config()
    clone = Model.from_config(json.loads(json.dumps(config)))
    assert clone.name == "two_heads"
    assert [lay.name for lay in clone.layers] == [lay.name for lay in model.layers]
    assert [type(lay) for lay in clone.layers] == [type(lay) for lay in model.layers]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x = {"a": np.random.rand(6, 4), "b": np.random.rand(6, 3)}
    for p, q in zip(model.predict(x, verbose=0), clone.predict(x, verbose=0)):
        np.testing.assert_array_equal(p, q)


def test_nested_and_sequential_config_round_trip():
    inner_in = layers.Input(shape=(3,))
    inner = Model(inner_in, layers.Dense(4, name="enc")(inner_in), name="encoder")
    x = layers.Input(shape=(3,))
    model = Model(x, layers.Dense(1, name="head")(inner(x)))
    clone = Model.from_config(json.loads(json.dumps(model.get_config())))
    assert [type(lay).__name__ for lay in clone.layers] == ["InputLayer", "Functional", "Dense"]
    clone.set_weights(model.get_weights())
    data = np.random.rand(4, 3)
    np.testing.assert_array_equal(clone.predict(data, verbose=0), model.predict(data, verbose=0))

    seq = Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                      layers.Dense(2)], name="stack")
    seq_clone = Sequential.from_config(json.loads(json.dumps(seq.get_config())))
    assert seq_clone.name == "stack" and len(seq_clone.layers) == 2
    seq_clone.set_weights(seq.get_weights())
    data = np.random.rand(3, 5)
    np.testing.assert_array_equal(seq_clone.predict(data, verbose=0), seq.predict(data, verbose=0))


def test_max_epochs_and_steps_cap_fit_evaluate_and_predict_as_keras():
    # Keras's debugging caps: fit's epochs, and the steps of an epoch of fit, evaluate and
    # predict (None: every batch, capped too), each with Keras's warning.
    import warnings

    import densitron

    model = Sequential([layers.Input((4,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    try:
        densitron.config.set_max_epochs(2)
        densitron.config.set_max_steps_per_epoch(3)
        assert densitron.config.max_epochs() == 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, x[:, :1], epochs=5, batch_size=10, verbose=0)
        assert len(history.history["loss"]) == 2
        assert {str(w.message) for w in caught} == {"Limiting epochs to 2",
                                                    "Limiting steps_per_epoch to 3"}
        with pytest.warns(UserWarning, match="Limiting steps to 3"):
            assert model.predict(x, batch_size=10, verbose=0).shape == (30, 1)
        with pytest.raises(ValueError, match="Received: max_epochs=0"):
            densitron.config.set_max_epochs(0)
    finally:
        densitron.config.set_max_epochs(None)
        densitron.config.set_max_steps_per_epoch(None)
    assert model.predict(x, batch_size=10, verbose=0).shape == (100, 1)
    assert densitron.utils.standardize_dtype(np.float32) == "float32"
