"""Layers with Keras's names and arguments."""

from densitron.layers.core import Activation, Dense
from densitron.layers.input_layer import Input, InputLayer
from densitron.layers.layer import KerasTensor, Layer
from densitron.layers.merging import Add, Concatenate

__all__ = ["Activation", "Add", "Concatenate", "Dense", "Input", "InputLayer", "KerasTensor",
           "Layer"]
