"""Keras's "Save, serialize, and export models" and "Customizing saving and serialization"
guides: layers of the user's through from_config (custom_objects), clone_model,
layers.serialize / deserialize, save_assets / load_assets, and save's and load_weights'
keyword arguments."""

import densitron
import numpy as np
import pytest
from densitron import layers, ops


class ScaledDense(layers.Layer):
    """The functional guide's CustomDense: no name argument, get_config of its own only."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal")

    def call(self, inputs):
        return ops.matmul(inputs, self.w)

    def get_config(self):
        return {"units": self.units}


class WiderDense(layers.Dense):
    """A built-in layer's subclass, not registered."""


def test_sequential_from_config_takes_custom_objects():
    model = densitron.Sequential([layers.Input((4,)), WiderDense(3), layers.Dense(2)])
    config = model.get_config()
    with pytest.raises(ValueError, match="WiderDense"):
        densitron.Sequential.from_config(config)
    again = densitron.Sequential.from_config(config, custom_objects={"WiderDense": WiderDense})
    assert [type(layer) for layer in again.layers] == [WiderDense, layers.Dense]
    assert type(layers.deserialize(layers.serialize(WiderDense(2)),
                                   custom_objects={"WiderDense": WiderDense})) is WiderDense


def test_a_layer_without_a_name_argument_clones_and_comes_from_config(tmp_path, monkeypatch):
    from densitron.utils import serialization

    monkeypatch.setattr(serialization, "_registered", dict(serialization._registered))

    @densitron.saving.register_keras_serializable(package="MyLayers")
    class CustomLayer(layers.Layer):  # the saving guide's: get_config without name
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    inputs = layers.Input((4,))
    model = densitron.Model(inputs, layers.Dense(1)(CustomLayer(0.5)(inputs)))
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    path = str(tmp_path / "custom.keras")
    model.save(path)
    clone = densitron.models.clone_model(model)
    rebuilt = densitron.Model.from_config(model.get_config())
    # (as in Keras, a layer built without a name gets a new one)
    assert clone.layers[1].name == "custom_layer_1" and rebuilt.layers[1].name == \
        "custom_layer_2"
    for again in (clone, rebuilt, densitron.models.load_model(path)):
        assert [type(layer) for layer in again.layers[1:]] == [CustomLayer, layers.Dense]
        assert again.layers[1].factor == 0.5
        again.set_weights(model.get_weights())
        np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(TypeError, match="name"):  # a layer of its own: the name is its config's
        layers.deserialize({"class_name": "CustomLayer",
                            "config": {"factor": 0.5, "name": "c"}})
