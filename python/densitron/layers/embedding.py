"""Embedding: integer ids to rows of a trainable table."""

import numpy as np

from densitron import constraints, initializers, regularizers
from densitron.layers.layer import Layer, engine_node


class Embedding(Layer):
    """(batch, ...) integer ids in [0, input_dim) → (batch, ..., output_dim)."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, **kwargs):
        kwargs.pop("input_length", None)
        super().__init__(**kwargs)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Received an invalid value for `{arg}`, expected a positive "
                                 f"integer. Received: {arg}={value!r}")
        # mask_zero: id 0 is padding, masked out of the steps that GlobalAveragePooling1D averages
        # (the mask goes through per-step layers, as in Keras)
        self.mask_zero = bool(mask_zero)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        if embeddings_initializer == "uniform":
            embeddings_initializer = initializers.RandomUniform(-0.05, 0.05)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.embeddings = None
        if weights is not None:  # Keras's pretrained table: (input_dim, output_dim) or [it]
            self.build(None)
            self.set_weights(weights if isinstance(weights, list) and len(weights) == 1
                             else [weights])

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Layer \"{self.name}\" expects a single input. "
                             f"Received: input_shape={input_shape}")

    def build(self, input_shape):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim),
                                          self.embeddings_initializer, name="embeddings",
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        """Keras's: the ids that are not 0 (mask_zero), of ids given as an array; None for
        symbolic ids (the embedding's output carries its mask on to the layers after it)."""
        from densitron.layers.layer import KerasTensor

        if not self.mask_zero or isinstance(inputs, KerasTensor):
            return None
        return np.asarray(inputs) != 0

    def _eager_call(self, inputs, training=False, positional=False):
        """On ids given as an array. Inside a traced call(), the ids 0..input_dim-1 in order
        (keras.io's position embedding: self.pos_emb(ops.arange(maxlen))) give the table
        itself, a trainable weight that `x + positions` adds to every sample; other constant
        ids there are refused (their rows would be frozen values)."""
        from densitron.layers.layer import tracing

        if not tracing():
            return super()._eager_call(inputs, training, positional)
        ids = np.asarray(inputs)
        if ids.shape != (self.input_dim,) or not np.array_equal(ids, np.arange(self.input_dim)):
            raise ValueError(
                f"Layer \"{self.name}\": in a traced call(), an Embedding of constant ids takes "
                f"all of them in order, ops.arange({self.input_dim}), and gives its table (a "
                f"position embedding). Received: ids of shape {ids.shape}")
        if not self.built:
            self.build(None)
        return self.embeddings

    def _output_mask(self, node):
        return node.inputs[0] if self.mask_zero else None

    def _engine_node(self, node, param_index):
        return engine_node(15, node, params=[param_index[id(self.embeddings)]],
                           iattrs=[self.input_dim])

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            # (Keras's keys, set or not: densitron does not quantize)
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "quantization_config": None,
        }
