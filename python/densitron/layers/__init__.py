"""Layers with Keras's names and arguments."""

from densitron.layers.convolutional import (Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose,
                                            Conv3D, Conv3DTranspose, Convolution1D,
                                            Convolution1DTranspose, Convolution2D,
                                            Convolution2DTranspose, Convolution3D,
                                            Convolution3DTranspose, DepthwiseConv1D,
                                            DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
                                            SeparableConvolution1D, SeparableConvolution2D)
from densitron.layers.core import (ELU, PReLU, Activation, Dense, Identity, Lambda, LeakyReLU,
                                   ReLU, Softmax, TimeDistributed)
from densitron.layers.embedding import Embedding
from densitron.layers.input_layer import Input, InputLayer
from densitron.layers.layer import KerasTensor, Layer, takes_name
from densitron.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum,
                                      Multiply, Subtract, add, average, concatenate, dot,
                                      maximum, minimum, multiply, subtract)
from densitron.layers.normalization import (BatchNormalization, GroupNormalization,
                                            LayerNormalization,
                                            RMSNormalization, UnitNormalization)
from densitron.layers.preprocessing import (CategoryEncoding, Discretization, Normalization,
                                           Rescaling)
from densitron.layers.hashing import HashedCrossing, Hashing
from densitron.layers.image_preprocessing import (CenterCrop, RandomBrightness, RandomContrast,
                                                  RandomCrop, RandomFlip, RandomRotation,
                                                  RandomTranslation, RandomZoom, Resizing)
from densitron.layers.lookup import IntegerLookup, StringLookup, TextVectorization
from densitron.layers.pooling import (AdaptiveAveragePooling1D, AdaptiveAveragePooling2D,
                                      AdaptiveAveragePooling3D, AdaptiveMaxPooling1D,
                                      AdaptiveMaxPooling2D, AdaptiveMaxPooling3D,
                                      AveragePooling1D, AveragePooling2D, AveragePooling3D,
                                      AvgPool1D, AvgPool2D, AvgPool3D, GlobalAveragePooling1D,
                                      GlobalAveragePooling2D, GlobalAveragePooling3D,
                                      GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D,
                                      GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D,
                                      GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D,
                                      MaxPool1D, MaxPool2D, MaxPool3D, MaxPooling1D,
                                      MaxPooling2D, MaxPooling3D)
from densitron.layers.regularization import (ActivityRegularization, AlphaDropout, Dropout,
                                             GaussianDropout, GaussianNoise, RandomNormalSample,
                                             SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from densitron.layers.math_ops import (AddedLoss, ArgReduce, BatchFill, BatchMatMul, BatchReduce,
                                       Divide, Masking, MathOp, ModeSelect, Reduce,
                                       RowBroadcast, Slice)
from densitron.layers.weight_ops import WeightAdd, WeightMatMul, WeightMultiply
from densitron.layers.attention import GroupQueryAttention, MultiHeadAttention
from densitron.layers.einsum_dense import EinsumDense
from densitron.layers.dot_attention import AdditiveAttention, Attention
from densitron.layers.recurrent import (GRU, LSTM, RNN, Bidirectional, ConvLSTM1D, ConvLSTM2D,
                                        ConvLSTM3D, GRUCell, LSTMCell, SimpleRNN,
                                        SimpleRNNCell, StackedRNNCells)
from densitron.layers.reshaping import (Cropping1D, Cropping2D, Flatten, Permute, RepeatVector,
                                        Reshape, UpSampling1D, UpSampling2D, ZeroPadding1D,
                                        ZeroPadding2D)



def __getattr__(name):
    if name == "InputSpec":  # (loaded on first use)
        from densitron.layers.input_spec import InputSpec

        return InputSpec
    kind = _missing_keras_kind(name)
    if kind:
        raise AttributeError(
            f"module 'densitron.layers' has no attribute {name!r}: densitron does not provide "
            f"Keras's {kind} (its engine runs Dense, convolutions and their poolings, "
            "Embedding, attention, normalization and the layers in densitron.layers.__all__). "
            f"Received: densitron.layers.{name}")
    raise AttributeError(f"module 'densitron.layers' has no attribute {name!r}")


def _missing_keras_kind(name):
    """What kind of Keras layer a name missing here is, or None."""
    import re

    if re.fullmatch(r"Random(?!(Flip|Rotation|Zoom|Translation|Contrast|Brightness|Crop)$)"
                    r"[A-Z]\w*|AugMix|AutoContrast|CutMix|MixUp|"
                    r"Equalization|Solarization|RandAugment|ContrastLimitedAdaptive\w*|"
                    r"MaxNumBoundingBoxes|MelSpectrogram|STFTSpectrogram|Pipeline", name):
        return f"image or audio preprocessing layer {name}"
    if name in ("JaxLayer", "FlaxLayer", "TorchModuleWrapper", "TFSMLayer"):
        return f"wrapper of another framework's model, {name}"
    if name in ("Cropping3D", "UpSampling3D", "ZeroPadding3D"):
        return f"volumetric layer {name}"
    if name in ("ReversibleEmbedding", "SpectralNormalization", "Wrapper"):
        return f"layer {name} (not implemented yet)"
    return None


def deserialize(config, custom_objects=None):
    """A layer (or model) from {"class_name": ..., "config": {...}}; `custom_objects`
    ({name: class}) holds classes of the user's that are not registered."""
    from densitron.utils.serialization import custom_object_scope

    with custom_object_scope(custom_objects):
        return _deserialize(config)


def _deserialize(config):
    from densitron import keras_format, models

    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError("A serialized layer is a dict with 'class_name' and 'config'. "
                         f"Received: config={config!r}")
    build_config = config.get("build_config")
    if "module" in config:  # Keras's form (serialize's, a .keras file's)
        config = keras_format.from_keras(config)

    registry = {name: globals()[name] for name in __all__
                if name not in ("Input", "KerasTensor", "InputSpec")
                and isinstance(globals()[name], type)}
    registry.update({"Functional": models.Functional, "Model": models.Functional,
                     "Sequential": models.Sequential})
    from densitron.utils.serialization import get_registered_object

    registered = config.get("registered_name")
    cls = None
    # a layer class of the user's: registered ("package>name"), or in custom_objects
    keys = [registered] if isinstance(registered, str) and ">" in registered else []
    keys += [config["class_name"]] if config["class_name"] not in registry else []
    keys += [registered] if isinstance(registered, str) and ">" not in registered else []
    for key in keys:
        found = get_registered_object(key)
        if isinstance(found, type) and issubclass(found, Layer):
            cls = found
            break
    cls = cls or registry.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown layer class: {config.get('class_name')!r}. "
                         f"Received: config={config!r}")
    inner = config["config"]
    if "inbound_nodes" in config:  # a functional model's entry: its config as Keras's holds it
        from densitron.utils.keras_objects import serialize_config

        # the objects get_config gave (a layer given to a layer of the user's) serialized,
        # and no name for a class that takes none (its get_config leaves it out: the entry
        # names the layer beside the config)
        inner = serialize_config(inner)
        if "name" in inner and not takes_name(cls):
            del inner["name"]
    layer = cls.from_config(inner)
    if build_config and not layer.built:  # (Keras's: built as it was when serialized)
        layer.build_from_config(build_config)
    return layer


def serialize(layer):
    """The layer in Keras's serialized form: {"module", "class_name", "config",
    "registered_name"}, the objects its config holds serialized too (see
    densitron.utils.keras_objects)."""
    from densitron.utils.keras_objects import serialize_keras_object

    return serialize_keras_object(layer)


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
           "HashedCrossing", "Hashing", "IntegerLookup", "StringLookup", "TextVectorization",
           "MultiHeadAttention", "Conv1D", "BatchFill", "Attention", "AdditiveAttention",
           "GroupQueryAttention", "EinsumDense",
           "GRU", "LSTM", "SimpleRNN", "Bidirectional",
           "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
           "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
           "GroupNormalization", "Conv2D", "Convolution1D", "Convolution2D", "MaxPooling1D",
           "MaxPooling2D", "MaxPool1D", "MaxPool2D", "AveragePooling1D", "AveragePooling2D",
           "AvgPool1D", "AvgPool2D", "Conv3D", "Convolution3D", "MaxPooling3D", "MaxPool3D",
           "AveragePooling3D", "AvgPool3D", "DepthwiseConv1D", "DepthwiseConv2D",
           "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
           "SeparableConvolution2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
           "Convolution1DTranspose", "Convolution2DTranspose", "Convolution3DTranspose",
           "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
           "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
           "Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
           "RandomTranslation", "RandomContrast", "RandomBrightness", "RandomCrop"]
