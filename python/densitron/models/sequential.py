"""Sequential: a stack of single-input layers, built into the same engine graph as the
equivalent functional model (on the first call with data when no input shape is given)."""

import numpy as np

from densitron.layers.input_layer import Input, InputLayer
from densitron.layers.layer import KerasTensor, Layer
from densitron.models.functional import Functional, _scope_new_weights, _variable_ids
from densitron.trainers import data as data_mod
from densitron.utils.naming import uniquify


class Sequential(Functional):
    def __init__(self, layers=None, trainable=True, name=None):
        Layer.__init__(self, name=name or uniquify("sequential"), trainable=trainable)
        self._init_trainer()
        self._eager_wrapper = False
        self._layers = []
        self._input_tensor = None
        self.built = False
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"`layers` must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    def add(self, layer, rebuild=True):
        if isinstance(layer, KerasTensor) and isinstance(layer._node.layer, InputLayer):
            layer = layer._node.layer
        if isinstance(layer, InputLayer):
            if self._layers or self._input_tensor is not None:
                raise ValueError("An Input can only be the first entry of a Sequential model. "
                                 f"Received: {layer!r} after other layers")
            self._input_tensor = layer.output
        elif isinstance(layer, Layer):
            if any(existing.name == layer.name for existing in self._layers):
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in this model. "
                    f"Received: layer={layer!r}"
                )
            self._layers.append(layer)
        else:
            raise ValueError(  # noqa: TRY004  (Keras's type of error here)
                "The added layer must be an instance of class Layer. "
                f"Received: layer={layer!r} of type {type(layer)}."
            )
        self.built = False
        self._engine_compiled = False
        self.__dict__.pop("_compiled_losses", None)
        if rebuild:
            self._maybe_build()

    def pop(self, rebuild=True):
        if not self._layers:
            raise IndexError("There are no layers in the model. Received: pop() on an empty model")
        layer = self._layers.pop()
        self.built = False
        self._engine_compiled = False
        self.__dict__.pop("_compiled_losses", None)
        if rebuild:
            self._maybe_build()
        return layer

    def _input_shape_known(self):
        if self._input_tensor is not None:
            return self._input_tensor.shape[1:]
        if not self._layers:
            return None
        first = self._layers[0]
        if first._input_shape_arg is not None:
            return first._input_shape_arg
        if isinstance(first, Functional) and first.inputs and len(first.inputs) == 1:
            return first.inputs[0].shape[1:]
        return None

    def _maybe_build(self, shape=None, batch=None):
        shape = shape if shape is not None else self._input_shape_known()
        if shape is None or not self._layers:
            return
        if self._input_tensor is None:
            self._input_tensor = Input(shape=tuple(shape), batch_size=batch)
        # A rebuild (after add or pop) drops the calls of the graph it replaces, so that a
        # layer's `output` is its call in this model's graph.
        stale = {id(n) for n in getattr(self, "_nodes", ())}
        for layer in self._layers:
            layer._inbound_nodes = [n for n in layer._inbound_nodes if id(n) not in stale]
        before = _variable_ids(self)
        x = self._input_tensor
        for layer in self._layers:
            x = layer(x)
        self._build_graph(self._input_tensor, x)
        # Keras's Sequential builds an inner Functional each time, which takes the next
        # default model name: a Model made after it is "functional_1" (its summary's title,
        # its name in files), as in Keras.
        uniquify("functional")
        _scope_new_weights(self, before)  # (Keras's "sequential/dense/kernel")

    def build(self, input_shape=None):
        """Keras's `Sequential.build((None, features, ...))`: builds the stack for inputs of
        that shape (with the batch axis)."""
        if self.built:
            return
        if input_shape is None:
            self._ensure_built()
        try:
            shape = tuple(input_shape)[1:]
        except TypeError:
            raise ValueError("`input_shape` must be a shape with the batch axis, such as "
                             f"(None, 784). Received: input_shape={input_shape!r}") from None
        if not shape:
            raise ValueError("`input_shape` must be a shape with the batch axis, such as "
                             f"(None, 784). Received: input_shape={input_shape!r}")
        # (a stateful recurrent layer's static batch size: Keras's InputLayer(batch_shape))
        batch = next(iter(input_shape)) if any(getattr(layer, "stateful", False) is True
                                             for layer in self._layers) else None
        self._maybe_build(shape, batch)

    def _symbolic_call(self, inputs, flat):
        # called on a tensor before it has an input shape (a Sequential nested in another
        # model): the tensor gives it one, as in Keras
        if not self.built and len(flat) == 1 and flat[0].shape is not None:
            self._maybe_build(flat[0].shape[1:])
        self._ensure_built()
        return super()._symbolic_call(inputs, flat)

    def _ensure_built(self):
        if not self.built:
            raise ValueError(
                f"Sequential model '{self.name}' has not been built yet: give its first layer an "
                "input (e.g. `Input(shape=(784,))` as the first entry) or call it on data. "
                "Received: a model with no input shape"
            )

    def _ensure_built_from(self, x):
        if self.built:
            self._follow_data(x)  # (Input((None, 8)): the graph at x's shapes)
            self._refresh_engine_graph()
            return
        if not self._layers:
            raise ValueError("A Sequential model needs at least one layer. Received: no layers")
        if x is None:
            raise ValueError("`x` is required. Received: x=None")
        a = x if data_mod.is_sparse(x) else data_mod._as_numeric_array(x, "x")
        if a.ndim < 2:
            raise ValueError(f"Expected `x` of shape (samples, features). "
                             f"Received: x with shape {np.shape(a)}")
        self._maybe_build(a.shape[1:])
        self._data_input = self._input_tensor

    def _built_from_data(self):
        """Whether the input shape is the one the first data had (no Input given)."""
        return self._input_tensor is not None and \
            self._input_tensor is self.__dict__.get("_data_input")

    _summary_when_unbuilt = True  # (Keras's "?" table before an input shape is known)

    @property
    def layers(self):
        return list(self._layers)

    def _keras_layers(self):
        return self.layers

    def _saved_as_graph(self):
        """Whether files keep it as its traced graph (a functional model's config): when a
        layer of it is made of layers (a Lambda, a Layer subclass) that files do not keep as
        itself (its class not registered)."""
        from densitron.layers.layer import _composite
        from densitron.models.functional import _saved_as_itself

        return self.built and any(_composite(layer) and not _saved_as_itself(layer)
                                  for layer in self._layers)

    def _graph_layers(self):
        if self._saved_as_graph():  # (its graph's layers, as its file holds them)
            return [layer for layer in self._all_layers if not isinstance(layer, InputLayer)]
        return self.layers

    @property
    def inputs(self):
        return self.__dict__.get("inputs")

    # Keras 3's Sequential keeps Layer's `input` and `output`: those of its first call on
    # tensors inside another model (so that Model(outer.input, outer.get_layer(seq).output)
    # takes the encoder out of an autoencoder), `inputs`/`outputs` its own graph's. Never
    # called, they are its own graph's (where Keras 3 raises; Keras 2 gave these).
    @property
    def input(self):
        if self._inbound_nodes:
            return Layer.input.fget(self)
        return Functional.input.fget(self)

    @property
    def output(self):
        if self._inbound_nodes and "_output" not in self.__dict__:
            return Layer.output.fget(self)
        return Functional.output.fget(self)

    @output.setter
    def output(self, value):
        Functional.output.fset(self, value)

    @inputs.setter
    def inputs(self, value):
        self.__dict__["inputs"] = value

    def get_config(self):
        """Keras 3's: name, trainable, dtype, the layers' entries after an InputLayer's (as in
        a `.keras` file), which from_config reads, as _own_config's densitron form."""
        if self._saved_as_graph():
            return self._own_config()
        from densitron import keras_format

        return keras_format.to_keras(self)["config"]

    def _own_config(self):
        from densitron.layers import serialize

        if self._saved_as_graph():
            # A layer made of layers (a Lambda, a Layer subclass) is stored as the layers it
            # made: the config is the traced graph's, and comes back as a functional model.
            return self._graph_config()
        shape = self._input_shape_known()
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize(layer) for layer in self._layers],
            "build_input_shape": [None, *shape] if shape is not None else None,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of get_config's config; `custom_objects` ({name: class}) holds the
        classes of the user's it names that are not registered."""
        from densitron.utils.serialization import custom_object_scope

        with custom_object_scope(custom_objects):
            return cls._from_config(config)

    @classmethod
    def _from_config(cls, config):
        from densitron import keras_format
        from densitron.layers import deserialize

        if any(isinstance(lc, dict) and "module" in lc for lc in config.get("layers", [])):
            # (Keras's get_config(), its InputLayer first: read as densitron's)
            config = keras_format.from_keras({
                "module": "keras.src.models.sequential", "class_name": "Sequential",
                "config": config, "registered_name": "Sequential"})["config"]
        if "input_layers" in config:  # the traced graph of one with composite layers
            return Functional.from_config(config)
        stack = [deserialize(c) for c in config["layers"]]
        shape = config.get("build_input_shape")
        if shape:
            stack.insert(0, InputLayer(shape=tuple(shape[1:]), name=config.get("input_name")))
        model = cls(stack, name=config.get("name"))
        model._trainable = bool(config.get("trainable", True))  # (Keras's: layers keep theirs)
        return model
