"""Layers with Keras's names and arguments."""

from densitron.layers.core import Activation, Dense, Identity
from densitron.layers.embedding import Embedding
from densitron.layers.input_layer import Input, InputLayer
from densitron.layers.layer import KerasTensor, Layer
from densitron.layers.merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply,
                                      Subtract)
from densitron.layers.normalization import BatchNormalization, LayerNormalization
from densitron.layers.regularization import Dropout, GaussianNoise
from densitron.layers.reshaping import Flatten, Reshape

__all__ = ["Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Dense",
           "Dropout", "Embedding", "Flatten", "GaussianNoise", "Identity", "Input", "InputLayer",
           "KerasTensor", "Layer", "LayerNormalization", "Maximum", "Minimum", "Multiply",
           "Reshape", "Subtract"]
