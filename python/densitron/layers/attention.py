"""Keras's MultiHeadAttention (Vaswani et al., 2017) on the engine: the query, key and value
projections are Dense ops over the last axis with Keras's (features, heads, dim) kernels, the
heads are separated by index maps, the scores and the mixing are batched matrix products per
sample and head, and the softmax, dropout and output projection are the engine's ops."""

import math

import numpy as np

from densitron import regularizers
from densitron._op_marks import makes_op_layers
from densitron.layers.core import kernel_bias_config, set_kernel_bias_args
from densitron.layers.layer import Layer, node_spec
from densitron.layers.reshaping import _positions


def _number_of(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def step_masks(layer, node, roles):
    """The masks the inputs carry (from Embedding(mask_zero=True) or Masking), one per
    (role, tensor) of `roles` (None where a tensor has none), each checked to have one entry a
    step of its tensor; node.masks keeps them for the engine (None when there are none)."""
    masks = []
    for role, tensor in roles:
        mask = getattr(tensor, "_mask", None) if tensor is not None else None
        steps = tensor.shape[1] if tensor is not None else None
        if mask is not None and tuple(mask.shape[1:]) != (steps,):
            raise ValueError(
                f"Layer \"{layer.name}\": the {role}'s mask must have one entry a step "
                f"({steps}). Received: a mask of shape {tuple(mask.shape)}")
        masks.append(mask)
    node.masks = tuple(masks) if any(m is not None for m in masks) else None
    return masks


def _merged_mask(layer, query, value, attention_mask, given):
    """Keras's attention mask of a call given mask tensors (query_mask (batch, T), value_mask
    and key_mask (batch, S)): attention_mask AND each mask spread over the (T, S) plane, as a
    product of layers (RepeatVector, Permute, Multiply) on symbolic tensors, or of arrays."""
    from densitron.layers.layer import KerasTensor

    t_len, s_len = query.shape[1], value.shape[1]
    for role, mask in given.items():
        steps = t_len if role == "query" else s_len
        if len(mask.shape) != 2 or mask.shape[1] != steps:
            raise ValueError(f"Layer \"{layer.name}\": {role}_mask must have the shape "
                             f"(batch, {steps}). Received: {role}_mask of shape "
                             f"{tuple(mask.shape)}")
    symbolic = [isinstance(t, KerasTensor) for t in (query, value, *given.values())]
    if not any(symbolic):  # arrays: Keras's AND of the masks, in 1.0 and 0.0
        keep = np.ones((len(query), t_len, s_len), bool)
        if attention_mask is not None:
            keep &= np.asarray(attention_mask) != 0
        for role, mask in given.items():
            mask = np.asarray(mask) != 0
            keep &= mask[:, :, None] if role == "query" else mask[:, None, :]
        return keep.astype(np.float32)
    if not all(symbolic) or not isinstance(attention_mask, (KerasTensor, type(None))):
        raise TypeError(f"Layer \"{layer.name}\" takes mask tensors of the same kind as its "
                        f"inputs (symbolic tensors or arrays). Received: masks "
                        f"{sorted(given)}")
    from densitron.layers.merging import Multiply

    parts = [] if attention_mask is None else [attention_mask]
    parts += [_over_plane(mask, role, t_len, s_len) for role, mask in given.items()]
    return parts[0] if len(parts) == 1 else Multiply()(parts)


def _over_plane(mask, role, t_len, s_len):
    """A symbolic mask of the query steps, (batch, T), or of the value steps, (batch, S),
    spread over the (T, S) plane (RepeatVector, and Permute for the query's)."""
    from densitron.layers.reshaping import Permute, RepeatVector

    if role == "query":
        return Permute((2, 1))(RepeatVector(s_len)(mask))
    return RepeatVector(t_len)(mask)


@makes_op_layers
def _spread_mask(query, value, attention_mask):
    """An attention_mask of shape (batch, 1, S) or (batch, T, 1) spread over the (T, S) plane,
    as Keras broadcasts it (the keras.io translation example's padding_mask,
    mask[:, None, :]); others as they are."""
    from densitron.layers.layer import KerasTensor

    shape = tuple(getattr(attention_mask, "shape", ()))
    t_len, s_len = query.shape[1], value.shape[1]
    if len(shape) != 3 or shape[1:] == (t_len, s_len) or shape[1:] not in (
            (1, s_len), (t_len, 1)):
        return attention_mask
    if not isinstance(attention_mask, KerasTensor):
        return np.broadcast_to(np.asarray(attention_mask), (shape[0], t_len, s_len))
    from densitron.layers.reshaping import Reshape

    if shape[1:] == (1, s_len):
        return _over_plane(Reshape((s_len,))(attention_mask), "value", t_len, s_len)
    return _over_plane(Reshape((t_len,))(attention_mask), "query", t_len, s_len)


def _permutation(rows, groups, dim, repeats=1):
    """The index map that turns (rows, groups, dim) values into (groups, rows, dim): the map
    Permute((2, 1, 3)) takes; with `repeats`, each group `repeats` times in a row (Keras's
    ops.repeat of grouped-query attention's key and value heads)."""
    grid = _positions((rows, groups, dim)).transpose(1, 0, 2)
    return np.repeat(grid, repeats, axis=0).ravel().tolist()


class MultiHeadAttention(Layer):
    """Keras's MultiHeadAttention: `layer(query, value, key=None)` on (batch, T, features)
    and (batch, S, features) tensors, each head's softmax(q·kᵀ/√key_dim)·v, projected back to
    `output_shape` (the query's last axis by default). Keras's weights and their shapes: the
    query, key and value kernels (features, num_heads, key_dim or value_dim) and biases
    (num_heads, dim), the output kernel (num_heads, value_dim, output) and bias.
    `attention_mask` (batch, T, S: a value not 0 attends, as Keras's cast to bool),
    `use_causal_mask` and the inputs' own masks (from
    Embedding(mask_zero=True) or Masking: query steps × value and key steps) set masked
    scores to -1e9 before the softmax (and, with dropout or returned scores, its masked
    weights to 0 after it), as Keras 3 does, and the output keeps the query's mask;
    `return_attention_scores=True` also gives the softmax's weights; value_mask and key_mask
    (batch, S) tensors passed to the call join attention_mask (its product with them spread
    over (T, S), layers of the model); a query_mask passed is ignored, as Keras's
    MultiHeadAttention reads its query's own mask (GroupQueryAttention applies it);
    `sliding_window` masks
    the value steps that far or farther from the query step, `use_gate` multiplies the heads'
    mix by sigmoid of a gate projection of the query (Keras's "gate" weights). Attention
    over other axes is not supported (a ValueError says so)."""

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, sliding_window=None,
                 flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 use_gate=False, seed=None, **kwargs):
        kwargs_signature = kwargs.pop("call_signature", None)
        if kwargs_signature is not None:
            kwargs_signature = tuple(bool(v) for v in kwargs_signature)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.num_heads = _number_of("num_heads", num_heads)
        self.key_dim = _number_of("key_dim", key_dim)
        self.value_dim = _number_of("value_dim", value_dim) if value_dim is not None \
            else self.key_dim
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a number in [0, 1). Received: "
                             f"dropout={dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if output_shape is not None:
            dims = output_shape if isinstance(output_shape, (list, tuple)) else [output_shape]
            if len(dims) != 1:
                raise ValueError("densitron's MultiHeadAttention projects to one last axis. "
                                 f"Received: output_shape={output_shape!r}")
            output_shape = _number_of("output_shape", dims[0])
        self._output_dim = output_shape
        if attention_axes in (1, (1,), [1], -2, (-2,), [-2]):
            attention_axes = None  # the sequence axis of (batch, steps, features): Keras's
            # default, which it writes out once built
        if attention_axes is not None:
            raise ValueError("densitron's MultiHeadAttention attends over the sequence axis "
                             "(attention_axes=None). Received: "
                             f"attention_axes={attention_axes!r}")
        self.flash_attention = flash_attention
        if sliding_window is not None and (
                isinstance(sliding_window, bool) or not isinstance(sliding_window, int)
                or sliding_window <= 0):
            raise ValueError("`sliding_window` must be `None` or a positive integer. "
                             f"Received: sliding_window={sliding_window}")
        self.sliding_window, self.use_gate = sliding_window, bool(use_gate)
        set_kernel_bias_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                             bias_regularizer, kernel_constraint, bias_constraint)
        self.seed = seed
        # (key given, attention_mask given, use_causal_mask) of its calls, fixed by the first
        self._signature = kwargs_signature
        from densitron.layers.regularization import _seed

        self._engine_seed = _seed(seed)

    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 training=None, use_causal_mask=False):
        given = {role: m for role, m in (("query", query_mask), ("value", value_mask),
                                         ("key", key_mask)) if m is not None}
        if not self._takes_query_mask:  # (Keras's MultiHeadAttention reads its query's own)
            given.pop("query", None)
        if given and value is not None:
            attention_mask = _merged_mask(self, query, value, attention_mask, given)
        self._explicit_masks = set(given)
        if value is None and isinstance(query, (list, tuple)) and 2 <= len(query) <= 4:
            # (a saved model's call: one list, read by the signature of the layer's call)
            has_key, has_mask, use_causal_mask, return_attention_scores = (
                self._signature or (len(query) == 3, False, False, False))
            parts = list(query)
            query, value = parts[0], parts[1]
            key = parts[2] if has_key else None
            attention_mask = parts[-1] if has_mask else None
        if value is None:
            raise ValueError(f"{type(self).__name__} is called as layer(query, value, "
                             "key=None). Received: value=None")
        attention_mask = _spread_mask(query, value, attention_mask)
        signature = (key is not None, attention_mask is not None, bool(use_causal_mask),
                     bool(return_attention_scores))
        if self._signature is not None and signature != self._signature:
            raise ValueError(
                f"Layer \"{self.name}\" is called with the key, attention_mask, "
                f"use_causal_mask and return_attention_scores of its first call (densitron's "
                f"engine fixes them). Received: (key, attention_mask, use_causal_mask, "
                f"return_attention_scores) given {signature}, first {self._signature}")
        self._signature = signature
        inputs = [query, value] + ([key] if key is not None else []) + (
            [attention_mask] if attention_mask is not None else [])
        out = super().__call__(inputs, training=training)
        if not return_attention_scores:
            return out
        if isinstance(out, list):  # (called on arrays: its model's two outputs)
            return tuple(out)
        from densitron.layers.layer import KerasTensor

        node = out._node  # a second output: the softmax's weights (batch, heads, T, S)
        t_len, s_len = out.shape[1], inputs[1].shape[1]
        scores = KerasTensor((None, self.num_heads, t_len, s_len), name=f"{self.name}_scores",
                             node=node, index=1)
        scores._mask = None
        node.outputs.append(scores)
        return out, scores

    def _output_mask(self, node):
        """Keras's masks from the inputs' own: the query's ids mask the query steps (and stay on
        the output), the value's and key's the value steps. A mask is an ids tensor (zeros
        masked) or Masking's kept steps (1 or 0); node.masks keeps (query's, value's, key's),
        each None when absent, for the engine."""
        query, value, key, _ = self._parts(node.inputs)
        # (Keras: key defaults to value, whose mask is already in; a mask passed to the call
        # takes the place of its input's own)
        explicit = getattr(self, "_explicit_masks", ())
        roles = [("query", query), ("value", value), ("key", None if key is value else key)]
        return step_masks(self, node, [(role, None if role in explicit else tensor)
                                       for role, tensor in roles])[0]

    def _parts(self, inputs):
        """query, value, key (value when not given), attention_mask (or None) of a call's
        inputs (shapes or tensors)."""
        has_key, has_mask = self._signature[:2] if self._signature else (len(inputs) == 3,
                                                                            False)
        return (inputs[0], inputs[1], inputs[2] if has_key else inputs[1],
                inputs[-1] if has_mask else None)

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list) or not 2 <= len(input_shape) <= 4 or \
                any(len(s) != 3 for s in input_shape):
            raise ValueError(f"Layer \"{self.name}\" attends over (batch, steps, features) "
                             f"tensors: query, value and key. Received: input shapes "
                             f"{input_shape}")
        query, value, key, mask = self._parts(input_shape)
        if key[1] != value[1]:
            raise ValueError(f"Layer \"{self.name}\": the value and the key must have as many "
                             f"steps. Received: input shapes {input_shape}")
        if mask is not None and tuple(mask[1:]) != (query[1], value[1]):
            raise ValueError(f"Layer \"{self.name}\": attention_mask must have the shape "
                             f"(batch, {query[1]}, {value[1]}) (query steps, value steps). "
                             f"Received: attention_mask of shape {tuple(mask)}")

    def build(self, input_shape):
        query, value, key, _ = self._parts(input_shape)
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        out = self._output_dim or int(query[-1])

        def weight(shape, name, kernel):
            return self.add_weight(
                shape, self.kernel_initializer if kernel else self.bias_initializer, name=name,
                regularizer=self.kernel_regularizer if kernel else self.bias_regularizer,
                constraint=self.kernel_constraint if kernel else self.bias_constraint)

        self._kernels = {}
        parts = [("query", query[-1], dk), ("key", key[-1], dk)]
        parts += [("gate", query[-1], dv)] if self.use_gate else []
        for part, features, dim in [*parts, ("value", value[-1], dv)]:
            heads = self._kv_heads() if part in ("key", "value") else h
            kernel = weight((int(features), heads, dim), f"{part}/kernel", True)
            bias = weight((heads, dim), f"{part}/bias", False) if self.use_bias else None
            self._kernels[part] = (kernel, bias)
        kernel = weight((h, dv, out), "attention_output/kernel", True)
        bias = weight((out,), "attention_output/bias", False) if self.use_bias else None
        self._kernels["output"] = (kernel, bias)
        self.built = True

    def _keras_sublayers(self):
        """Where Keras's weight files keep the variables: its EinsumDense sublayers (and its
        weightless dropout and softmax sublayers), as (subpath, name, variables)."""
        names = [("query", "query"), ("key", "key")] + (
            [("gate", "gate")] if self.use_gate else []) + [
            ("value", "value"), ("output", "attention_output")]  # (the weights' order)
        # (Keras's MultiHeadAttention names them by its properties, query_dense, ...: the
        # gate, which has none, and grouped-query attention's by their attributes)
        return [(f"{self._sublayer_prefix if part != 'gate' else '_'}{part}_dense", name,
                 [v for v in self._kernels[part] if v is not None]) for part, name in names] + [
            ("_dropout_layer", "dropout", []), ("_softmax", "softmax", [])]

    _sublayer_prefix = ""

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self._output_dim or int(input_shape[0][-1]))

    def _engine_subgraph(self, node, param_index):
        from densitron import activations
        from densitron.layers.math_ops import _BATCH_MATMUL, _MATH, MATH_OPS

        shapes = [t.shape for t in node.inputs]
        t_len, s_len = int(shapes[0][1]), int(shapes[1][1])
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        hk = self._kv_heads()  # (grouped-query attention's key and value heads)
        out = self._output_dim or int(shapes[0][-1])
        activity = self._activities()
        has_key, has_mask, causal, scores_out = (self._signature or
                                                  (len(shapes) == 3, False, False, False))
        key_in = 2 if has_key else 1
        mask_in = len(shapes) - 1

        def dense(part, rows, units, act=None):
            kernel, bias = self._kernels[part]
            return node_spec(1, rows * units, units, act=act, params=[
                param_index[id(kernel)], param_index[id(bias)] if bias is not None else -1],
                activity=activity.get(part, (0.0, 0.0)))

        items = []

        def add(spec, *sources):
            """Appends a node reading `sources` (("in", k): the layer's input k; an int: an
            earlier node here); returns its index."""
            items.append(([s if isinstance(s, tuple) else ("node", s) for s in sources], spec))
            return len(items) - 1

        width, plane = h * t_len * s_len, t_len * s_len
        q = add(dense("query", t_len, h * dk), ("in", 0))
        k = add(dense("key", s_len, hk * dk), ("in", key_in))
        v = add(dense("value", s_len, hk * dv), ("in", 1))
        q = add(node_spec(_MATH, t_len * h * dk, h * dk, fattrs=[1.0 / math.sqrt(float(dk)), 0.0],
                          iattrs=[MATH_OPS["multiply_by"]]), q)                   # q / √dk
        q = add(node_spec(20, h * t_len * dk, dk, iattrs=_permutation(t_len, h, dk)), q)
        k = add(node_spec(20, h * s_len * dk, dk,
                          iattrs=_permutation(s_len, hk, dk, h // hk)), k)
        v = add(node_spec(20, h * s_len * dv, dv,
                          iattrs=_permutation(s_len, hk, dv, h // hk)), v)
        scores = add(node_spec(_BATCH_MATMUL, width, s_len, iattrs=[h, t_len, dk, s_len, 0, 1]),
                     q, k)
        t_i, s_i = np.meshgrid(np.arange(t_len), np.arange(s_len), indexing="ij")
        keep = None  # the causal mask (a value step that follows masked) and the sliding
        if causal:   # window's (a value step `sliding_window` or more away masked)
            keep = s_i <= t_i
        if self.sliding_window is not None:
            band = np.abs(t_i - s_i) < self.sliding_window
            keep = band if keep is None else keep & band
        if keep is not None:  # Keras's where(mask, scores, -1e9)
            keep = np.tile(keep.ravel(), h)
            scores = add(node_spec(20, width, s_len,
                                   iattrs=np.where(keep, np.arange(width), -2).tolist()), scores)
        # The (T, S) mask of a sample: attention_mask not 0 (Keras casts it to bool, so 0.5,
        # -1 and NaN attend), and the inputs' own masks (not 0) of the query steps by the
        # value (and key) steps, multiplied: Keras's AND.
        plane_masks = []
        if has_mask:
            plane_masks.append(add(node_spec(_MATH, plane, s_len, fattrs=[0.0, 0.0],
                                             iattrs=[MATH_OPS["not_equal"]]), ("in", mask_in)))
        extra = len(shapes)  # the ids of node.masks follow the layer's inputs
        for j, ids in enumerate(getattr(node, "masks", None) or ()):
            if ids is None:
                continue
            steps = t_len if j == 0 else s_len
            kept = add(node_spec(_MATH, steps, steps, fattrs=[0.0, 0.0],
                                 iattrs=[MATH_OPS["not_equal"]]), ("in", extra))
            extra += 1
            spread = (t_i if j == 0 else s_i).ravel().tolist()
            plane_masks.append(add(node_spec(20, plane, s_len, iattrs=spread), kept))
        m = plane_masks[0] if plane_masks else None
        for other in plane_masks[1:]:
            m = add(node_spec(6, plane, s_len), m, other)                          # kMultiply
        if m is not None:  # scores·m + (m·1e9 - 1e9) for each head: where(m, scores, -1e9)
            m = add(node_spec(20, width, s_len, iattrs=(np.arange(width) % plane).tolist()), m)
            kept = add(node_spec(6, width, s_len), scores, m)                     # kMultiply
            low = add(node_spec(_MATH, width, s_len, fattrs=[1e9, 0.0],
                                iattrs=[MATH_OPS["multiply_by"]]), m)
            low = add(node_spec(_MATH, width, s_len, fattrs=[-1e9, 0.0],
                                iattrs=[MATH_OPS["add"]]), low)
            scores = add(node_spec(3, width, s_len), kept, low)                   # kAdd
        probs = softmax = add(node_spec(2, width, s_len, act=activations.engine_spec(
            activations.softmax)), scores)
        if (m is not None or self.sliding_window is not None) and (
                self.dropout > 0.0 or scores_out):
            # Keras's Softmax(mask) path (taken with dropout or returned scores) sets masked
            # weights to 0, a wholly masked row's too; its fused dot_product_attention (taken
            # otherwise) leaves such a row uniform, as the -1e9 scores give.
            if m is not None:
                probs = softmax = add(node_spec(6, width, s_len), softmax, m)
            if keep is not None:  # (and the causal and window masks, which Keras ANDs in)
                probs = softmax = add(node_spec(20, width, s_len, iattrs=np.where(
                    keep, np.arange(width), -1).tolist()), softmax)
        if self.dropout > 0.0:
            probs = add(node_spec(10, width, s_len, fattrs=[self.dropout],
                                  iattrs=[self._engine_seed]), probs)
        mixed = add(node_spec(_BATCH_MATMUL, h * t_len * dv, dv,
                              iattrs=[h, t_len, s_len, dv, 0, 0]), probs, v)
        mixed = add(node_spec(20, t_len * h * dv, h * dv, iattrs=_permutation(h, t_len, dv)),
                    mixed)                                                        # heads back
        if self.use_gate:  # Keras's gated attention: the mix times sigmoid(a query projection)
            gate = add(dense("gate", t_len, h * dv, act=activations.engine_spec(
                activations.sigmoid)), ("in", 0))
            mixed = add(node_spec(6, t_len * h * dv, h * dv), mixed, gate)       # kMultiply
        result = add(dense("output", t_len, out), mixed)
        if scores_out and "scores" in activity:
            items[softmax] = (items[softmax][0], (*items[softmax][1][:-1], activity["scores"]))
        return items, [result] + ([softmax] if scores_out else [])

    def _kv_heads(self):
        return self.num_heads

    _takes_query_mask = False

    def _activities(self):
        """The activity penalty's (l1, l2) on each projection's output, as Keras's: each of
        its EinsumDense sublayers takes the layer's activity_regularizer."""
        coefficients = regularizers.coefficients(self.activity_regularizer)
        return {part: coefficients for part in ("query", "key", "value", "gate", "output")}

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": self._output_dim,
            "attention_axes": None,
            "sliding_window": self.sliding_window,
            **kernel_bias_config(self),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "seed": self.seed,
            # (densitron's: how its calls pass key and masks, so a saved model calls it alike)
            **({"call_signature": list(self._signature)}
               if self._signature is not None and any(self._signature[1:]) else {}),
        }


class GroupQueryAttention(MultiHeadAttention):
    """Keras's GroupQueryAttention (Ainslie et al., 2023): MultiHeadAttention's computation
    with `num_query_heads` query heads of `head_dim` and `num_key_value_heads` key and value
    heads, each key and value head repeated over its group of query heads; the output has the
    query's features. Keras's weights: query (features, num_query_heads, head_dim), key and
    value (features, num_key_value_heads, head_dim), their biases, the output projection
    (num_query_heads, head_dim, features) and bias. The call, masks and scores are
    MultiHeadAttention's, `use_gate` and `sliding_window` too. flash_attention=True is refused
    (Keras's needs a GPU's cuDNN)."""

    _keras_path_name = "grouped_query_attention"  # (Keras's class's, in weight files)
    _takes_query_mask = True
    _sublayer_prefix = "_"

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0,
                 use_bias=True, sliding_window=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None,
                 **kwargs):
        head_dim = _number_of("head_dim", head_dim)
        num_query_heads = _number_of("num_query_heads", num_query_heads)
        num_key_value_heads = _number_of("num_key_value_heads", num_key_value_heads)
        if num_query_heads % num_key_value_heads != 0:
            raise ValueError("`num_query_heads` must be divisible by `num_key_value_heads`. "
                             f"Received: num_query_heads={num_query_heads}, "
                             f"num_key_value_heads={num_key_value_heads}")
        if flash_attention and dropout > 0.0:
            raise ValueError("Dropout is not supported when flash attention is enabled. "
                             "Please set dropout to 0.0 to use flash attention. Received: "
                             f"flash_attention={flash_attention!r}, dropout={dropout!r}")
        if flash_attention:  # (Keras's on a CPU: "cuDNN is not detected" when called)
            raise ValueError("Flash attention needs a GPU (Keras's needs cuDNN); densitron "
                             "runs attention on the CPU. Received: "
                             f"flash_attention={flash_attention!r}")
        if kwargs.get("name") is None:  # (Keras's class is GroupedQueryAttention)
            from densitron.utils.naming import uniquify

            kwargs["name"] = uniquify("grouped_query_attention")
        super().__init__(num_query_heads, head_dim, dropout=dropout, use_bias=use_bias,
                         sliding_window=sliding_window, flash_attention=flash_attention,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         use_gate=use_gate, seed=seed, **kwargs)
        self.head_dim, self.num_query_heads = self.key_dim, self.num_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads

    def _kv_heads(self):
        return self.num_key_value_heads

    def _check_inputs(self, input_shape):
        super()._check_inputs(input_shape)
        query, value, _, _ = self._parts(input_shape)
        if query[-1] != value[-1]:
            raise ValueError("The last dimension of `query_shape` and `value_shape` must be "
                             f"equal, but are {query[-1]}, {value[-1]}. Received: "
                             f"query_shape={tuple(query)}, value_shape={tuple(value)}")

    def _activities(self):
        """As Keras's: the penalty on each projection's output (its EinsumDense sublayers'),
        and on the layer's outputs (the output projection's again, the scores returned)."""
        activities = super()._activities()
        l1, l2 = activities["output"]
        return {**activities, "output": (2 * l1, 2 * l2), "scores": (l1, l2)}

    def get_config(self):
        config = super().get_config()
        keras_keys = ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                      "bias_regularizer")
        return {**{k: config[k] for k in ("name", "trainable", "dtype")},
                "head_dim": self.head_dim,
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "use_bias": self.use_bias,
                "use_gate": self.use_gate,
                "sliding_window": self.sliding_window,
                "dropout": self.dropout,
                **{k: config[k] for k in keras_keys},
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": config["kernel_constraint"],
                "bias_constraint": config["bias_constraint"],
                "seed": self.seed,
                **({"call_signature": config["call_signature"]}
                   if "call_signature" in config else {})}
