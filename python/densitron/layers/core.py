"""Dense, Activation and Identity. The engine runs Dense as one GEMM over the last axis with
bias and activation fused into the write-back."""

import functools
import inspect
import warnings

import numpy as np

from densitron import activations, constraints, initializers, regularizers
from densitron._checks import is_number
from densitron.layers.layer import Layer, engine_node


def set_kernel_bias_args(layer, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, kernel_constraint, bias_constraint):
    """A layer's Keras kernel and bias arguments, resolved (Dense, MultiHeadAttention)."""
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)
    layer.kernel_constraint = constraints.get(kernel_constraint)
    layer.bias_constraint = constraints.get(bias_constraint)


def kernel_bias_config(layer):
    """Those arguments in a layer's config, as Keras writes them."""
    return {
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
        "kernel_constraint": constraints.serialize(layer.kernel_constraint),
        "bias_constraint": constraints.serialize(layer.bias_constraint),
    }


class Dense(Layer):
    """output = activation(dot(input, kernel) + bias); kernel (in, units), bias (units,)."""
    _mask_rule = "pass"

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(
                "Received an invalid value for `units`, expected a positive integer. "
                f"Received: units={units!r}"
            )
        if units >= 2**61:  # (NumPy's "Maximum allowed dimension exceeded" otherwise)
            raise ValueError("Received an invalid value for `units`: its bias of float32 values "
                             f"would exceed an array's 2**63 bytes. Received: units={units}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.kernel = None
        self.bias = None

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Input 0 of layer \"{self.name}\" is incompatible with the layer: expected axis "
                f"-1 of input shape to have value {self.kernel.shape[0]}, but received input "
                f"with shape {tuple(input_shape)}. Received: input_shape={tuple(input_shape)}"
            )

    def _kernel_shape(self, in_features):
        return (in_features, self.units)

    def build(self, input_shape):
        in_features = input_shape[-1]  # (None: add_weight raises Keras's error)
        in_features = None if in_features is None else int(in_features)
        self.kernel = self.add_weight(self._kernel_shape(in_features), self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _engine_node(self, node, param_index):
        bias = param_index[id(self.bias)] if self.use_bias else -1
        traced = activations.is_traced(self.activation)
        return engine_node(1, node, activation=None if traced else self.activation,
                           params=[param_index[id(self.kernel)], bias])

    def _symbolic_call(self, inputs, flat):
        out = super()._symbolic_call(inputs, flat)
        if activations.is_traced(self.activation):  # a Python activation after the product
            return activations.apply_traced(self.activation, out, self.name)
        return out

    def save_own_variables(self, store):
        """Keras's Dense's: the kernel as "0" and the bias as "1" only (not another Variable a
        subclass tracks: the custom saving guide's writes its own entry for it)."""
        if self.built:
            for i, v in enumerate(w for w in (self.kernel, self.bias) if w is not None):
                store[f"{i}"] = v.numpy()

    def load_own_variables(self, store):
        """Keras's Dense's inverse: the store's entries counted against every weight the layer
        tracks (a subclass's own entry included), then the kernel and bias from "0" and "1"."""
        weights = self.weights
        if len(store) != len(weights):
            raise ValueError(f"Layer '{self.name}' expected {len(weights)} variables, but "
                             f"received {len(store)} variables during loading. "
                             f"Expected: {[w.name for w in weights]}")
        if self.built:
            for i, v in enumerate(w for w in (self.kernel, self.bias) if w is not None):
                v.assign(np.asarray(store[f"{i}"]))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                # (a Python activation is saved as the layers it traced into, after this one)
                "activation": "linear" if activations.is_traced(self.activation)
                else activations.serialize(self.activation),
                "use_bias": self.use_bias,
                **kernel_bias_config(self),
                "quantization_config": None,  # (Keras's key: densitron does not quantize)
            }
        )
        return config


class Activation(Layer):
    """Applies an activation function to its input."""
    _mask_rule = "pass"
    _single_input = True
    _vector_is_one_sample = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def _engine_node(self, node, param_index):
        return engine_node(2, node, activation=self.activation)

    def __call__(self, inputs, *args, **kwargs):
        from densitron.layers.layer import KerasTensor

        if activations.is_traced(self.activation) and isinstance(inputs, KerasTensor):
            # a Python activation: its traced densitron.ops in this layer's place
            return activations.apply_traced(self.activation, inputs, self.name)
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


class Softmax(Layer):
    """Softmax over `axis` (any axis but the batch's)."""
    _mask_rule = "refuse"
    _call_takes_mask = True
    _vector_is_one_sample = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)
        self.activation = functools.partial(activations.softmax, axis=self.axis)

    def __call__(self, inputs, *args, **kwargs):
        mask = kwargs.get("mask")
        shape = getattr(inputs, "shape", None)
        if mask is None or shape is None or tuple(getattr(mask, "shape", ())) != tuple(shape):
            return super().__call__(inputs, *args, **kwargs)
        # Keras's Softmax(inputs, mask=m), m of the inputs' shape: the masked values -1e9 (m
        # above 0.5 keeps one), the softmax, then 0 where masked (a row masked whole too)
        from densitron import ops

        del kwargs["mask"]
        keep = ops.cast(ops.greater(mask, 0.5), "float32")
        logits = inputs * keep + (keep - 1.0) * 1e9
        return super().__call__(logits, *args, **kwargs) * keep

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        rank = len(input_shape)
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Layer \"{self.name}\" cannot normalise over axis {self.axis} of "
                             f"inputs of rank {rank} (the batch axis included). "
                             f"Received: input_shape={tuple(input_shape)}")

    def _engine_node(self, node, param_index):
        return engine_node(2, node, activation=self.activation)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _ActivationLayer(Layer):
    """A layer that applies one parameterised activation (Keras's ReLU, LeakyReLU, ELU)."""
    _mask_rule = "pass"
    _single_input = True
    _vector_is_one_sample = True

    def _engine_node(self, node, param_index):
        return engine_node(2, node, activation=self.activation)


class ReLU(_ActivationLayer):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("max_value", max_value), ("negative_slope", negative_slope),
                           ("threshold", threshold)):
            if not (is_number(value) or (arg == "max_value" and value is None)):
                raise ValueError(f"`{arg}` of a ReLU layer must be a number. "
                                 f"Received: {arg}={value!r}")
        if max_value is not None and max_value < 0:
            raise ValueError("max_value of a ReLU layer cannot be a negative value. "
                             f"Received: max_value={max_value}")
        if negative_slope < 0:
            raise ValueError("negative_slope of a ReLU layer cannot be a negative value. "
                             f"Received: negative_slope={negative_slope}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        self.activation = functools.partial(activations.relu, negative_slope=negative_slope,
                                            max_value=max_value, threshold=threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_ActivationLayer):
    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # (Keras 2's name, which Keras 3 still takes)
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          stacklevel=2)
        super().__init__(**kwargs)
        if not is_number(negative_slope) or negative_slope < 0:
            raise ValueError("The negative_slope value of a Leaky ReLU layer cannot be None or "
                             f"negative. Received: negative_slope={negative_slope}")
        self.negative_slope = negative_slope
        self.activation = functools.partial(activations.leaky_relu,
                                            negative_slope=negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationLayer):
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.activation = functools.partial(activations.elu, alpha=alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """Keras's parametric ReLU: x where x > 0, else alpha·x, alpha a trainable weight of shape
    input_shape[1:] with the `shared_axes` set to 1. densitron takes the alpha shapes whose
    axes of size 1 all come first (all axes, or every axis but the last one or ones shared);
    others are refused."""

    _mask_rule = "pass"

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (list, tuple)):
            self.shared_axes = list(shared_axes)
        else:
            self.shared_axes = [shared_axes]
        for axis in self.shared_axes or []:
            if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis < 1:
                raise ValueError("`shared_axes` holds axes of the input after the batch axis "
                                 f"(1, 2, ...). Received: shared_axes={shared_axes!r}")
        self.alpha = None

    def _alpha_shape(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis >= len(input_shape):
                raise ValueError(f"Layer \"{self.name}\" shares axis {axis} of an input of rank "
                                 f"{len(input_shape)}. Received: shared_axes={self.shared_axes}")
            shape[axis - 1] = 1
        # the engine's rule: alpha is the input's last axes, shared over the leading ones
        sample = tuple(int(d) for d in input_shape[1:])
        if not any(tuple(shape) == (1,) * k + sample[k:] for k in range(len(sample) + 1)):
            raise ValueError("densitron's PReLU shares alpha over leading axes only (the alpha "
                             "values of a sample are its last axes'). Received: "
                             f"shared_axes={self.shared_axes} for inputs of shape "
                             f"{tuple(input_shape)}")
        return tuple(int(d) for d in shape)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        want = self._alpha_shape(input_shape)
        if self.built and tuple(self.alpha.shape) != want:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"its alpha has shape {tuple(self.alpha.shape)}. Received: "
                             f"input_shape={tuple(input_shape)}")

    def build(self, input_shape):
        self.alpha = self.add_weight(self._alpha_shape(input_shape), self.alpha_initializer,
                                     name="alpha", regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _engine_node(self, node, param_index):
        return engine_node(24, node, params=[param_index[id(self.alpha)]],
                           iattrs=[int(np.prod(self.alpha.shape))])

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        })
        return config


class Identity(Layer):
    """Returns its input unchanged."""
    _mask_rule = "pass"
    _single_input = True
    _vector_is_one_sample = True

    def _engine_node(self, node, param_index):
        return engine_node(14, node)


class Lambda(Layer):
    """Keras's Lambda: `function(inputs, **arguments)` as a layer. densitron runs the function
    on the symbolic tensors the layer is called on, so it may combine densitron layers and
    +, -, * between tensors and with numbers (and / by a number); the layers it makes join the
    graph in the Lambda's place (a saved model holds those layers, not the function). Other
    math in the function is refused with a clear error."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"`function` must be callable. Received: function={function!r}")
        if mask is not None:
            raise ValueError(f"densitron's Lambda does not take a `mask`. Received: mask={mask!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"`arguments` must be a dict. Received: arguments={arguments!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.output_shape_arg = output_shape

    def call(self, inputs, mask=None):
        kwargs = dict(self.arguments)
        if mask is not None:  # (Keras's: to a function that takes a `mask`)
            try:
                if "mask" in inspect.signature(self.function).parameters:
                    kwargs["mask"] = mask
            except (TypeError, ValueError):
                pass
        return self.function(inputs, **kwargs)

    @classmethod
    def from_config(cls, config):
        raise ValueError("A Lambda layer's function is not stored in configs: densitron saves "
                         "the layers the function makes instead. Received: a Lambda config "
                         f"{config!r}")


class TimeDistributed(Layer):
    """Keras's TimeDistributed(layer): the layer applied to every step of (batch, steps, ...).
    densitron's per-step layers (Dense, Activation and the activation layers, Dropout and the
    noise layers, LayerNormalization, BatchNormalization, UnitNormalization) already act on
    the last axis of inputs of any rank, so the wrapper calls the layer itself (the layer, not
    the wrapper, joins the graph and saved files). Other layers are refused."""

    _mask_rule = "pass"  # (Keras's: the mask it is given passes on to its output)

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError("Please initialize `TimeDistributed` layer with a `Layer` instance. "
                             f"Received: layer={layer!r}")
        from densitron.layers import (BatchNormalization, Dropout, GaussianDropout,
                                      GaussianNoise, LayerNormalization, UnitNormalization)

        per_step = (Dense, Activation, ReLU, LeakyReLU, ELU, Softmax, Identity, Dropout,
                    GaussianNoise, GaussianDropout, LayerNormalization, BatchNormalization,
                    UnitNormalization)
        if not isinstance(layer, per_step) or (isinstance(layer, Softmax)
                                               and layer.axis not in (-1,)):
            raise ValueError(
                "densitron's TimeDistributed takes layers that act on the last axis of each "
                f"step ({', '.join(c.__name__ for c in per_step)}). Received: "
                f"layer={layer!r}")
        self.layer = layer

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, tuple) or len(input_shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at "
                             f"least 3 dimensions. Received: input_shape={input_shape!r}")

    def call(self, inputs, mask=None):
        # (a mask, Keras's argument or the input's own, is carried by the input to the layer)
        self._check_inputs(getattr(inputs, "shape", None))
        return self.layer(inputs)

    @classmethod
    def from_config(cls, config):
        from densitron.layers import deserialize

        config = dict(config)
        config.pop("dtype", None)
        wrapper = cls(deserialize(config.pop("layer")), **config)
        # (a Keras file keeps the layer's weights below the wrapper's path: see saving.py)
        wrapper.layer._keras_wrapper = "time_distributed"
        return wrapper

    def get_config(self):
        from densitron.layers import serialize

        return {**super().get_config(), "layer": serialize(self.layer)}
