"""Keras's "Save, serialize, and export models" and "Customizing saving and serialization"
guides: layers of the user's through from_config (custom_objects), clone_model,
layers.serialize / deserialize, save_assets / load_assets, and save's and load_weights'
keyword arguments."""

import densitron
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
