"""Keras's InputSpec: what a layer accepts as input (rank, a fixed size of some axes, a whole
shape, a dtype), set by a custom layer as `self.input_spec` and checked at each call."""

import numpy as np


class InputSpec:
    """Keras's InputSpec(dtype, shape, ndim, max_ndim, min_ndim, axes, allow_last_axis_squeeze,
    name, optional). Shapes include the batch axis (None for any size)."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None,
                 axes=None, allow_last_axis_squeeze=False, name=None, optional=False):
        from densitron.backend import standardize_dtype

        self.dtype = standardize_dtype(dtype) if dtype is not None else None
        if shape is not None:
            if not isinstance(shape, (list, tuple)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool))
                    for d in shape):
                raise ValueError("`shape` must be a tuple of dimensions (integers or None). "
                                 f"Received: shape={shape!r}")
            self.shape = tuple(shape)
            self.ndim = len(shape)
        else:
            self.shape = None
            self.ndim = _count("ndim", ndim)
        self.max_ndim = _count("max_ndim", max_ndim)
        self.min_ndim = _count("min_ndim", min_ndim)
        self.name = name
        self.optional = bool(optional)
        self.allow_last_axis_squeeze = bool(allow_last_axis_squeeze)
        try:
            self.axes = {int(k): v for k, v in (axes or {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise ValueError("`axes` must be a dict of axis -> size. "
                             f"Received: axes={axes!r}") from None
        limit = self.ndim if self.ndim is not None else self.max_ndim
        if self.axes and limit is not None and max(self.axes) > limit - 1:
            raise ValueError(f"Axis {max(self.axes)} is greater than the maximum allowed value: "
                             f"{limit - 1}. Received: axes={axes!r}")

    def __repr__(self):
        fields = [f"{k}={getattr(self, k)}" for k in ("dtype", "shape", "ndim", "max_ndim",
                                                       "min_ndim", "axes")
                  if getattr(self, k)]
        return f"InputSpec({', '.join(fields)})"

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _count(name, value):
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                         and value >= 0):
        return value
    raise ValueError(f"`{name}` must be a non-negative integer or None. "
                     f"Received: {name}={value!r}")


def assert_input_compatibility(input_spec, inputs, layer_name):
    """ValueError, as Keras's, when `inputs` (a tensor or array, or a list of them) do not
    meet the layer's input_spec (one InputSpec, or a list of them, one per input). The dtype
    is not checked: densitron's tensors are float32 whatever the Input's dtype."""
    if not input_spec:
        return
    specs = list(input_spec) if isinstance(input_spec, (list, tuple)) else [input_spec]
    flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if len(flat) != len(specs):
        raise ValueError(f'Layer "{layer_name}" expects {len(specs)} input(s), but it received '
                         f"{len(flat)} input tensors. Received: inputs={inputs!r}")
    for index, (x, spec) in enumerate(zip(flat, specs)):
        if spec is None or (x is None and spec.optional):
            continue
        shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
        ndim = len(shape)
        where = f'Input {index} of layer "{layer_name}" is incompatible with the layer'
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ValueError(f"{where}: expected ndim={spec.ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={spec.max_ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={spec.min_ndim}, found ndim={ndim}. "
                             f"Full shape received: {shape}")
        for axis, value in spec.axes.items():
            if value is not None and -ndim <= axis < ndim and shape[axis] not in (value, None):
                raise ValueError(f"{where}: expected axis {axis} of input shape to have value "
                                 f"{value}, but received input with shape {shape}")
        if spec.shape is not None:
            for want, got in zip(spec.shape, shape):
                if want is not None and got is not None and want != got:
                    raise ValueError(f"{where}: expected shape={spec.shape}, found shape="
                                     f"{shape}")
