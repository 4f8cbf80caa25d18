"""BatchNormalization and LayerNormalization over one axis (LayerNormalization over several
too): the last natively; others by the engine's index-map op moving them last before the
normalization and back after."""

import numpy as np

from densitron import constraints, initializers, regularizers
from densitron.layers.layer import Layer, engine_node, node_spec
from densitron.layers.reshaping import _positions

_INDEX_MAP = 20  # densitron::OpType::kIndexMap


def _positive_float(name, value, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}") from None
    if v < 0 or (v == 0 and not allow_zero) or v != v:
        raise ValueError(f"`{name}` must be {'>= 0' if allow_zero else '> 0'}. "
                         f"Received: {name}={value!r}")
    return v


def _check_axis(layer, axis, input_shape):
    rank = len(input_shape)
    if not -rank < axis < rank or axis % rank == 0:
        raise ValueError(f"Invalid axis for {type(layer).__name__} on inputs of rank {rank} "
                         f"(the batch axis cannot be normalised over). Received: axis={axis}")


def axis_last_chain(spec, shape, axis):
    """The engine nodes of a layer that works over the last axis, applied over `axis` of
    inputs of non-batch `shape`: the spec alone for the last axis; otherwise an index map
    moving that axis last, the spec on that layout, and the map back."""
    axis = axis % (len(shape) + 1) - 1  # among the non-batch axes
    if axis == len(shape) - 1:
        return [spec]
    order = [a for a in range(len(shape)) if a != axis] + [axis]
    grid = _positions(shape)
    forward = grid.transpose(order).ravel()
    back = np.argsort(forward)
    spec = list(spec)
    spec[1:3] = [int(grid.size), shape[axis]]  # (width, last_dim) of the axis-last layout
    return [_index_map_spec(forward, shape[axis]), tuple(spec),
            _index_map_spec(back, shape[-1])]


def _index_map_spec(index_map, last_dim):
    """An engine index-map node picking the values `index_map` names (no activation)."""
    return node_spec(_INDEX_MAP, len(index_map), last_dim, iattrs=index_map)


class _Normalization(Layer):
    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"densitron normalizes over one axis. Received: axis={axis}")
        self.axis = axis
        self.epsilon = _positive_float("epsilon", epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    def _check_inputs(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Layer \"{self.name}\" expects a single input. "
                             f"Received: input_shape={input_shape}")
        if len(input_shape) < 2:
            raise ValueError(f"Layer \"{self.name}\" expects inputs of rank >= 2. "
                             f"Received: input_shape={input_shape}")
        _check_axis(self, self.axis, input_shape)

    def _build_affine(self, dim):
        shape = tuple(dim) if isinstance(dim, tuple) else (dim,)
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)

    def _axis_size(self, input_shape):
        return int(input_shape[self.axis % len(input_shape)])

    def _engine_chain(self, node, param_index):
        return axis_last_chain(self._engine_node(node, param_index),
                               tuple(node.inputs[0].shape[1:]), self.axis)

    def _affine_params(self, param_index):
        return [param_index[id(self.gamma)] if self.scale else -1,
                param_index[id(self.beta)] if self.center else -1]

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


class BatchNormalization(_Normalization):
    """Batch statistics in training (moving averages updated with `momentum`), the moving
    statistics in inference. Weights: gamma, beta, moving_mean, moving_variance."""
    _mask_rule = "refuse"  # Keras's masked moments
    _call_takes_mask = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint,
                         **kwargs)
        if renorm:  # (its clipping and momentum change nothing without it, as in Keras)
            raise ValueError("densitron's BatchNormalization has no batch renormalization. "
                             f"Received: renorm={renorm!r}")
        self.synchronized = bool(synchronized)  # (one device: nothing to synchronize)
        self.renorm_clipping, self.renorm_momentum = renorm_clipping, renorm_momentum
        self.momentum = _positive_float("momentum", momentum, allow_zero=True)
        if self.momentum > 1.0:
            raise ValueError(f"`momentum` must be in [0, 1]. Received: momentum={momentum!r}")
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        dim = self._axis_size(input_shape)
        self._build_affine(dim)
        self.moving_mean = self.add_weight((dim,), self.moving_mean_initializer, name="moving_mean",
                                           trainable=False)
        self.moving_variance = self.add_weight((dim,), self.moving_variance_initializer,
                                               name="moving_variance", trainable=False)
        self.built = True

    def _engine_node(self, node, param_index):
        params = self._affine_params(param_index) + [param_index[id(self.moving_mean)],
                                                     param_index[id(self.moving_variance)]]
        # frozen (trainable=False): inference mode in training too, as Keras's
        return engine_node(12, node, params=params, fattrs=[self.momentum, self.epsilon],
                           iattrs=[0 if self.trainable else 1])

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer),
            "synchronized": self.synchronized,  # (Keras's keys)
            "renorm": False,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }


class LayerNormalization(_Normalization):
    """Normalizes each sample over its last axis, or over several (axis a list, as Keras's:
    gamma and beta then of those axes' shape); weights gamma, beta."""
    _mask_rule = "pass"

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        if rms_scaling:
            raise ValueError("`rms_scaling` is not supported by densitron yet. "
                             f"Received: rms_scaling={rms_scaling!r}")
        axes = None
        if isinstance(axis, (list, tuple)) and len(axis) > 1:
            axes = list(axis)
            if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
                raise TypeError("Expected an int or a list/tuple of ints for the argument "
                                f"'axis'. Received: axis={axis!r}")
            axis = int(axes[0])  # (the base class's checks of one axis; all checked in build)
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint,
                         **kwargs)
        if axes is not None:
            self.axis = [int(a) for a in axes]

    def get_config(self):
        return {**super().get_config(), "rms_scaling": False}  # (Keras's key; refused if set)

    def _check_inputs(self, input_shape):
        if not isinstance(self.axis, list):
            return super()._check_inputs(input_shape)
        axis = self.axis
        try:  # (the base class's checks: a single input of rank >= 2, the first axis)
            self.axis = axis[0]
            super()._check_inputs(input_shape)
        finally:
            self.axis = axis
        rank = len(input_shape)
        for a in self.axis:
            _check_axis(self, a, input_shape)
        if len({a % rank for a in self.axis}) != len(self.axis):
            raise ValueError(f"Duplicate axis for {type(self).__name__}. "
                             f"Received: axis={self.axis}")

    def build(self, input_shape):
        if isinstance(self.axis, list):  # (sorted, as Keras's build leaves them)
            self.axis = sorted(self.axis)
            self._build_affine(tuple(int(input_shape[a]) for a in self.axis))
        else:
            self._build_affine(self._axis_size(input_shape))
        self.built = True

    def _engine_chain(self, node, param_index):
        if not isinstance(self.axis, list):
            return super()._engine_chain(node, param_index)
        # Several axes: moved last in their order (gamma's layout), normalized as one row of
        # their values, and moved back.
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        rank = len(shape) + 1
        axes = sorted(a % rank - 1 for a in self.axis)  # among the non-batch axes
        row = int(np.prod([shape[a] for a in axes]))
        order = [a for a in range(len(shape)) if a not in axes] + axes
        grid = _positions(shape)
        spec = list(self._engine_node(node, param_index))
        spec[1:3] = [int(grid.size), row]
        if order == list(range(len(shape))):
            return [tuple(spec)]
        forward = grid.transpose(order).ravel()
        return [_index_map_spec(forward, row), tuple(spec),
                _index_map_spec(np.argsort(forward), shape[-1])]

    def _engine_node(self, node, param_index):
        return engine_node(13, node, params=self._affine_params(param_index),
                           fattrs=[self.epsilon])


class GroupNormalization(_Normalization):
    """Keras's GroupNormalization: the channels of `axis` (the last by default) in `groups`
    groups (-1: one a channel, instance normalization), each sample's group normalized over
    its channels and every other axis, then gamma and beta per channel. On the engine: index
    maps put each group's values in one row, the layer-normalization op normalizes the rows,
    the maps put them back, and the scale-by and bias-add ops apply gamma and beta."""
    _mask_rule = "pass"

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        if isinstance(groups, bool) or not isinstance(groups, int) or (
                groups <= 0 and groups != -1):
            raise ValueError("Received an invalid value for argument `groups`, expected a "
                             "positive integer (or `-1` for instance normalization). "
                             f"Received: groups={groups}")
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint,
                         **kwargs)
        self.groups = groups

    def build(self, input_shape):
        dim = self._axis_size(input_shape)
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number "
                             f"of channels ({dim}). Received: input_shape={tuple(input_shape)}")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number "
                             f"of channels ({dim}). Received: input_shape={tuple(input_shape)}")
        self._build_affine(dim)
        self.built = True

    def _engine_subgraph(self, node, param_index):
        """The chain below, each node reading the one before it."""
        chain = self._group_chain(node, param_index)
        items = [([("in", 0)] if k == 0 else [("node", k - 1)], spec)
                 for k, spec in enumerate(chain)]
        return items, [len(items) - 1]

    def _group_chain(self, node, param_index):
        shape = tuple(int(d) for d in node.inputs[0].shape[1:])
        rank = len(shape) + 1
        axis = self.axis % rank - 1  # among the non-batch axes
        channels = shape[axis]
        width, per_group = int(np.prod(shape)), channels // self.groups
        steps = width // channels
        # (steps, groups, per_group) -> (groups, steps, per_group): a group's values a row
        grid = _positions((steps, self.groups, per_group))
        forward = grid.transpose(1, 0, 2).ravel()
        row = steps * per_group
        chain = [_index_map_spec(forward, row),
                 node_spec(13, width, row, params=[-1, -1], fattrs=[self.epsilon]),
                 _index_map_spec(np.argsort(forward), channels)]
        if self.scale:
            chain.append(node_spec(23, width, channels, params=[param_index[id(self.gamma)]]))
        if self.center:
            chain.append(node_spec(22, width, channels, params=[param_index[id(self.beta)]]))
        if axis == len(shape) - 1:
            return chain
        # (another axis: moved last first, and back after)
        moved = axis_last_chain(node_spec(14, width, channels), shape, self.axis)
        return [moved[0], *chain, moved[2]]

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


class UnitNormalization(Layer):
    """Scales each sample's vector along the last axis to unit l2 norm (Keras's
    ops.normalize with epsilon 1e-12: x·min(1/‖x‖, 1e12))."""
    _mask_rule = "pass"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = list(axis)
        elif isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError("Invalid value for `axis` argument: expected an int or a list/tuple "
                            f"of ints. Received: axis={axis!r}")
        self.axis = axis

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        rank = len(input_shape)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -rank <= a < rank for a in axes):
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape "
                             f"{tuple(input_shape)}. Received: axis={self.axis!r}")
        if [a % rank for a in axes] != [rank - 1]:
            raise ValueError("densitron's UnitNormalization normalizes over the last axis. "
                             f"Received: axis={self.axis!r}")

    def _engine_node(self, node, param_index):
        return engine_node(19, node, fattrs=[1e12])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class RMSNormalization(Layer):
    """Keras's RMSNormalization: x·scale/sqrt(mean(x²) + epsilon) over one axis (the last by
    default; another through index maps, as LayerNormalization), a `scale` weight of ones."""
    _mask_rule = "pass"
    _single_input = True

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if len(axes) != 1 or isinstance(axes[0], bool) or not isinstance(axes[0], int):
            raise ValueError("densitron's RMSNormalization normalizes over one axis. "
                             f"Received: axis={axis!r}")
        self.axis = axis
        self._axis = axes[0]
        self.epsilon = _positive_float("epsilon", epsilon)

    def _check_inputs(self, input_shape):
        self._check_single(input_shape)
        _check_axis(self, self._axis, input_shape)

    def build(self, input_shape):
        dim = int(input_shape[self._axis % len(input_shape)])
        self.scale = self.add_weight((dim,), "ones", name="scale")
        self.built = True

    def _engine_node(self, node, param_index):
        return engine_node(13, node, params=[param_index[id(self.scale)], -1],
                           fattrs=[self.epsilon], iattrs=[1])

    def _engine_chain(self, node, param_index):
        return axis_last_chain(self._engine_node(node, param_index),
                               tuple(node.inputs[0].shape[1:]), self._axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
