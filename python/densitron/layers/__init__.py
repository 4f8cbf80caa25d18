"""Layers with Keras's names and arguments."""

from densitron.layers.core import (ELU, PReLU, Activation, Conv1D, Dense, Identity, Lambda,
                                   LeakyReLU, ReLU, Softmax, TimeDistributed)
from densitron.layers.embedding import Embedding
from densitron.layers.input_layer import Input, InputLayer
from densitron.layers.layer import KerasTensor, Layer
from densitron.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum,
                                      Multiply, Subtract, add, average, concatenate, dot,
                                      maximum, minimum, multiply, subtract)
from densitron.layers.normalization import (BatchNormalization, LayerNormalization,
                                            RMSNormalization, UnitNormalization)
from densitron.layers.preprocessing import (CategoryEncoding, Discretization, Normalization,
                                           Rescaling)
from densitron.layers.pooling import (GlobalAveragePooling1D, GlobalAveragePooling2D,
                                      GlobalAveragePooling3D, GlobalAvgPool1D, GlobalAvgPool2D,
                                      GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D,
                                      GlobalMaxPool3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                                      GlobalMaxPooling3D)
from densitron.layers.regularization import (ActivityRegularization, AlphaDropout, Dropout,
                                             GaussianDropout, GaussianNoise, RandomNormalSample,
                                             SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from densitron.layers.math_ops import (AddedLoss, ArgReduce, BatchMatMul, BatchReduce, Divide,
                                       Masking, MathOp, ModeSelect, Reduce,
                                       RowBroadcast, Slice)
from densitron.layers.weight_ops import WeightAdd, WeightMatMul, WeightMultiply
from densitron.layers.attention import MultiHeadAttention
from densitron.layers.reshaping import (Cropping1D, Cropping2D, Flatten, Permute, RepeatVector,
                                        Reshape, UpSampling1D, UpSampling2D, ZeroPadding1D,
                                        ZeroPadding2D)



def __getattr__(name):
    if name == "InputSpec":  # (loaded on first use)
        from densitron.layers.input_spec import InputSpec

        return InputSpec
    raise AttributeError(f"module 'densitron.layers' has no attribute {name!r}")


def deserialize(config):
    """A layer (or model) from {"class_name": ..., "config": {...}}."""
    from densitron import models

    registry = {name: globals()[name] for name in __all__
                if name not in ("Input", "KerasTensor", "InputSpec")
                and isinstance(globals()[name], type)}
    registry.update({"Functional": models.Functional, "Model": models.Functional,
                     "Sequential": models.Sequential})
    cls = registry.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown layer class: {config.get('class_name')!r}. "
                         f"Received: config={config!r}")
    return cls.from_config(config["config"])


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


__all__ = ["AddedLoss", "ArgReduce", "BatchReduce", "Masking", "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply",
           "subtract", "CategoryEncoding", "Discretization", "Cropping1D", "Cropping2D", "ELU", "Permute", "RepeatVector", "UpSampling1D",
           "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D", "Activation", "ActivityRegularization", "Add", "AlphaDropout", "Average", "BatchNormalization", "Concatenate", "Dense", "Dot",
           "Dropout", "Embedding", "Flatten", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D",
           "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Identity", "Input",
           "InputLayer", "InputSpec",
           "KerasTensor", "Lambda", "Layer", "LayerNormalization", "LeakyReLU", "Maximum", "Minimum",
           "Multiply", "Normalization", "PReLU", "ReLU", "Reshape", "Rescaling", "Softmax", "SpatialDropout1D",
           "SpatialDropout2D", "SpatialDropout3D", "Subtract", "TimeDistributed",
           "RMSNormalization", "UnitNormalization", "WeightAdd", "WeightMatMul", "WeightMultiply", "MathOp", "Divide",
           "Reduce", "RowBroadcast", "Slice", "RandomNormalSample", "ModeSelect", "BatchMatMul",
           "MultiHeadAttention", "Conv1D"]
