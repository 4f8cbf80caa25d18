"""The layers that a layer's own weights become in a traced call(): `ops.matmul(x, self.w)` is
a WeightMatMul (the engine's Dense op with that kernel, no bias), `x + self.b` a WeightAdd
(the engine's bias-add op) and `x * self.s` a WeightMultiply. They hold the calling layer's Variables (shared, not copies), so
training updates those; loaded from a file they make their own."""

import numpy as np

from densitron import initializers
from densitron.layers.layer import Layer, engine_node, node_spec
from densitron.variables import Variable


class _WeightOp(Layer):
    _weight_name = None
    _op_class = True  # (made by arithmetic with a layer's own weight in a traced call())

    def __init__(self, variable=None, shape=None, **kwargs):
        super().__init__(**kwargs)
        if variable is None:  # from a config: a weight of its own, filled by the file
            if shape is None:
                raise ValueError(f"{type(self).__name__} needs a variable or its shape. "
                                 "Received: neither")
            variable = self.add_weight(tuple(shape), initializers.get("zeros"),
                                       name=self._weight_name)
        elif not isinstance(variable, Variable):
            raise TypeError(f"{type(self).__name__} takes a layer's weight (a Variable). "
                            f"Received: {variable!r}")
        else:
            self._weights = [variable]
        self.variable = variable
        self.built = True

    def get_config(self):
        return {**super().get_config(), "shape": list(self.variable.shape)}


class WeightMatMul(_WeightOp):
    """x @ w along x's last axis, w a (features, units) weight of the calling layer."""

    _weight_name = "kernel"

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        shape = self.variable.shape
        if len(shape) != 2 or input_shape[-1] != shape[0]:
            raise ValueError(f"matmul of inputs of shape {tuple(input_shape)} with a weight of "
                             f"shape {shape}: the weight must be (features, units) with "
                             f"features = {input_shape[-1]}. Received: weight shape {shape}")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], int(self.variable.shape[1]))

    def _engine_node(self, node, param_index):
        return engine_node(1, node, params=[param_index[id(self.variable)], -1])


class _VectorWeightOp(_WeightOp):
    """x combined with a (features,) weight along x's last axis, by engine op `_op`."""

    _op = None
    _verb = None

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        if tuple(self.variable.shape) != (input_shape[-1],):
            raise ValueError(f"{self._verb} a weight of shape {self.variable.shape} and inputs "
                             f"of shape {tuple(input_shape)}: it must have the last axis's "
                             f"size. Received: weight shape {self.variable.shape}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _engine_node(self, node, param_index):
        return engine_node(self._op, node, params=[param_index[id(self.variable)]])


class WeightAdd(_VectorWeightOp):
    """x + b along x's last axis, b a (features,) weight of the calling layer, or b a weight
    of a sample's whole shape (a position embedding's table, added to every sample)."""

    _weight_name = "bias"
    _op = 22  # densitron::OpType::kBiasAdd
    _verb = "Adding"

    def _whole(self, input_shape):
        shape = tuple(self.variable.shape)
        return len(shape) >= 2 and shape == tuple(input_shape[1:])

    def _check_inputs(self, input_shape):
        if not (len(input_shape) >= 3 and self._whole(input_shape)):
            super()._check_inputs(input_shape)

    def _engine_subgraph(self, node, param_index):
        """One bias-add over the last axis; for a whole-sample weight, over the sample's
        values seen as one axis (reshapes around it, free in the engine)."""
        shape = node.inputs[0].shape
        if not self._whole(shape):
            return [([("in", 0)], self._engine_node(node, param_index))], [0]
        width = int(np.prod(shape[1:]))
        flat = node_spec(14, width, width)  # kReshape
        add = node_spec(self._op, width, width, params=[param_index[id(self.variable)]])
        back = node_spec(14, width, int(shape[-1]))
        return [([("in", 0)], flat), ([("node", 0)], add), ([("node", 1)], back)], [2]


class WeightMultiply(_VectorWeightOp):
    """x · s along x's last axis, s a (features,) weight of the calling layer (`x * self.s`)."""

    _weight_name = "scale"
    _op = 23  # densitron::OpType::kScaleBy
    _verb = "Multiplying"
