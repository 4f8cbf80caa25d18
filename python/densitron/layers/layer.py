"""Layer base class, symbolic tensors and the nodes that link them into a graph.

Calling a layer on KerasTensors records a Node (layer, input tensors, output tensors); a Model
walks these nodes back from its outputs. Calling a layer on arrays runs it through the engine."""

import warnings

import numpy as np

from densitron.utils.naming import to_snake_case, uniquify
from densitron.variables import Variable


class KerasTensor:
    """A symbolic tensor: a shape with a free batch dimension, and the node that made it."""

    def __init__(self, shape, name=None, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = "float32"
        self.name = name
        self._node = node
        self._index = index
        # the ids tensor whose non-zero entries mark this tensor's kept steps (Keras's mask of
        # Embedding(mask_zero=True)), or None
        self._mask = None

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype=float32, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A symbolic KerasTensor cannot be converted to a NumPy array: it has no value until "
            f"a model runs. Received: {self!r}"
        )


class Node:
    """One call of a layer: its input tensors and output tensors."""

    def __init__(self, layer, inputs, outputs):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = list(outputs)


def _is_array_like(x):
    return isinstance(x, (np.ndarray, list, tuple, float, int, np.generic)) or hasattr(
        x, "__array__"
    )


class Layer:
    """Base of every layer: naming, weights, building on first call, symbolic and eager calls."""

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, input_dim=None,
                 activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}. "
                f"Received: kwargs={kwargs}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or uniquify(to_snake_case(type(self).__name__))
        # Keras's activity regularization, on any layer: reg(output) / batch size joins the loss
        from densitron import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._trainable = bool(trainable)
        self.built = False
        self._weights = []
        self._inbound_nodes = []
        self._eager_models = {}
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None

    # --- weights -------------------------------------------------------------------------
    def add_weight(self, shape, initializer, name, trainable=True, regularizer=None,
                   constraint=None):
        value = initializer(tuple(shape))
        var = Variable(value, name=name, trainable=trainable, path=f"{self.name}/{name}",
                       regularizer=regularizer, constraint=constraint)
        self._weights.append(var)
        return var

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable and self._trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self._weights if not (w.trainable and self._trainable)]

    def get_weights(self):
        return [w.numpy() for w in self._weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                f"of length {len(weights)}, but the layer was expecting {len(self._weights)} "
                f"weights. Received: weights of length {len(weights)}"
            )
        for var, value in zip(self._weights, weights):
            value = np.asarray(value)
            if value.shape != var.shape:
                raise ValueError(
                    f"Layer {self.name} weight shape {var.shape} is not compatible with "
                    f"provided weight shape {value.shape}. Received: weight of shape {value.shape}"
                )
        for var, value in zip(self._weights, weights):
            var.assign(value)

    def count_params(self):
        return int(sum(int(np.prod(w.shape)) for w in self._weights))

    # --- building and calling ------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _check_inputs(self, inputs):
        """Validates the symbolic input shapes; raises ValueError naming the layer."""

    def __call__(self, inputs, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"Layer {self.name} takes only its inputs when called on tensors. "
                f"Received: args={args}, kwargs={kwargs}"
            )
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if flat and all(isinstance(t, KerasTensor) for t in flat):
            return self._symbolic_call(inputs, flat)
        if any(isinstance(t, KerasTensor) for t in flat):
            raise TypeError(
                f"Layer {self.name} was called on a mix of symbolic tensors and other values. "
                f"Received: inputs={inputs!r}"
            )
        if flat and all(_is_array_like(t) and not isinstance(t, Layer) for t in flat):
            return self._eager_call(inputs)
        raise TypeError(
            f"Layer {self.name} must be called on a KerasTensor (from `Input()` or another "
            f"layer) or on an array. Received: inputs={inputs!r} (of type "
            f"{type(inputs).__name__})"
        )

    def _symbolic_call(self, inputs, flat):
        shapes = [t.shape for t in flat]
        arg = shapes if isinstance(inputs, (list, tuple)) else shapes[0]
        self._check_inputs(arg)
        if not self.built:
            self.build(arg)
            self.built = True
        out_shape = self.compute_output_shape(arg)
        node = Node(self, flat, [])
        node.is_list = isinstance(inputs, (list, tuple))
        out = KerasTensor(out_shape, name=self.name, node=node, index=0)
        out._mask = self._output_mask(node)
        node.outputs.append(out)
        self._inbound_nodes.append(node)
        return out

    # What a layer does with a mask on its input (from Embedding(mask_zero=True)), as Keras's
    # supports_masking and call(mask=) decide: "pass" it on unchanged, "drop" it (with Keras's
    # warning), "consume" it (the layer applies it), or "refuse" (the layer would use it in a
    # way densitron does not run yet).
    _mask_rule = "drop"

    def _output_mask(self, node):
        masks = [t._mask for t in node.inputs if getattr(t, "_mask", None) is not None]
        if not masks:
            return None
        if self._mask_rule == "pass" and len(node.inputs) == 1:
            return masks[0]
        if self._mask_rule == "consume" and len(node.inputs) == 1:
            node.mask = masks[0]
            return None
        if self._mask_rule == "drop":
            warnings.warn(f"Layer '{self.name}' (of type {type(self).__name__}) was passed an "
                          "input with a mask attached to it. However, this layer does not "
                          "support masking and will therefore destroy the mask information. "
                          "Downstream layers will not see the mask.", stacklevel=4)
            return None
        raise ValueError(
            f"Layer \"{self.name}\" ({type(self).__name__}) would use the mask of "
            "Embedding(mask_zero=True) in its computation, which densitron does not support "
            "yet (masks go through per-step layers to GlobalAveragePooling1D). "
            f"Received: a masked input to {type(self).__name__}")

    def _eager_call(self, inputs):
        from densitron.layers.input_layer import Input
        from densitron.models.functional import Functional

        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        arrays = [np.asarray(t, dtype=np.float32) for t in flat]
        for a in arrays:
            if a.ndim != 2:
                raise ValueError(
                    f"Layer {self.name} expects 2-D inputs (batch, features) when called on "
                    f"arrays. Received: input with shape {a.shape}"
                )
        key = tuple(a.shape[1:] for a in arrays)
        model = self._eager_models.get(key)
        if model is None:
            tensors = [Input(shape=a.shape[1:]) for a in arrays]
            out = self(tensors if isinstance(inputs, (list, tuple)) else tensors[0])
            model = Functional(tensors, out, name=f"{self.name}_eager", _is_eager_wrapper=True)
            self._eager_models[key] = model
        return model.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)

    # --- config --------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self.activity_regularizer is not None:  # as Keras: the key only when set
            from densitron import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def shape_width(shape):
    """Values per sample of a (None, ...) shape."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def engine_node(op, node, activation=None, params=(), fattrs=(), iattrs=()):
    """The engine's description of one layer call: (op, width, last_dim, activation id,
    activation params, params, fattrs, iattrs, (activity l1, l2)); the executor adds the input
    indices."""
    from densitron import activations

    out = node.outputs[0].shape
    activation = activation or activations.linear
    act_id, act_params = activations.engine_spec(activation, allow_axis=op == 2)
    iattrs = [int(i) for i in iattrs]
    axis = activations.softmax_axis(activation)
    if axis is not None:
        rank = len(out)
        axis = axis + rank if axis < 0 else axis
        if not 1 <= axis < rank:
            raise ValueError(f"Invalid softmax axis for an output of rank {rank} (the batch axis "
                             f"cannot be normalised over). Received: axis={axis}")
        if axis != rank - 1:  # the engine normalises over a middle axis as (outer, len, inner)
            iattrs = [int(np.prod(out[1:axis])), int(out[axis]), int(np.prod(out[axis + 1:]))]
    reg = getattr(node.layer, "activity_regularizer", None)
    activity = (reg.l1, reg.l2) if reg is not None else (0.0, 0.0)
    return (op, shape_width(out), int(out[-1]) if len(out) > 1 else 1, act_id, act_params,
            list(params), [float(f) for f in fattrs], iattrs,
            (float(activity[0]), float(activity[1])))
