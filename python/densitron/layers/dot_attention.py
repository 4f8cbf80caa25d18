"""Keras's Attention (Luong-style dot-product attention, or with score_mode="concat"
Bahdanau's additive scores) and AdditiveAttention on the engine: dot-product scores are a
batched matrix product per sample (query · keyᵀ); additive scores sum tanh(query + key) over
the features of each (query step, key step) pair, index maps spreading the two over the pairs.
The scores are masked as Keras masks them, and the softmax's weights mix the value steps in a
second batched product."""

import numpy as np

from densitron.layers.layer import KerasTensor, Layer, node_spec, with_mask

_BATCH_MATMUL = 32  # densitron::OpType::kBatchMatMul
_INDEX_MAP = 20  # kIndexMap
_MASKED = -2  # an index map's entry for Keras's masked score (-1e9)


def _pairs_summed(add, t_len, s_len, dim, key_in):
    """q + k for each (query step, key step) pair: index maps spread the query and the key
    over the pairs (Tq·Tv·dim values a sample), then one add."""
    t_i, s_i, d_i = (a.ravel() for a in np.meshgrid(np.arange(t_len), np.arange(s_len),
                                                      np.arange(dim), indexing="ij"))
    pairs = t_len * s_len * dim
    q = add(node_spec(_INDEX_MAP, pairs, dim, iattrs=(t_i * dim + d_i).tolist()), ("in", 0))
    k = add(node_spec(_INDEX_MAP, pairs, dim, iattrs=(s_i * dim + d_i).tolist()),
            ("in", key_in))
    return add(node_spec(3, pairs, dim), q, k)                                     # kAdd


def _tanh(add, source, width, last):
    from densitron import activations

    return add(node_spec(2, width, last, act=activations.engine_spec(activations.tanh)), source)


def _feature_sums(add, source, t_len, s_len, dim):
    """Σ over each pair's features: the (Tq, Tv) scores (the engine's pooling by sum)."""
    plane = t_len * s_len
    return add(node_spec(16, plane, s_len, iattrs=[plane, dim, 1, 2]), source)


class Attention(Layer):
    """Keras's Attention: `layer([query, value])` or `layer([query, value, key])` on (batch,
    Tq, dim), (batch, Tv, dim_v) and (batch, Tv, dim) tensors gives softmax(query·keyᵀ)·value
    of shape (batch, Tq, dim_v); `use_scale` multiplies the scores by a trained scalar
    ("scale", initially 1), `dropout` drops attention weights in training. score_mode="concat"
    scores each pair as concat_score_weight·Σ tanh(scale·(query + key)) (two trained scalars,
    initially 1; scale with use_scale). As Keras: the
    value's mask (from Embedding(mask_zero=True) or Masking) lowers the masked scores by 1e9,
    `use_causal_mask=True` masks the value steps after each query step, the query's mask
    zeroes the output's masked steps and stays on the output, and
    `return_attention_scores=True` also gives the (batch, Tq, Tv) weights. Masks passed as
    the `mask` argument are refused (a ValueError says so)."""

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        signature = kwargs.pop("call_signature", None)
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError("Invalid value for argument score_mode. Expected one of "
                             f"{{'dot', 'concat'}}. Received: score_mode={score_mode}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a number in [0, 1). Received: "
                             f"dropout={dropout!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = seed
        from densitron.layers.regularization import _seed

        self._engine_seed = _seed(seed)
        # (use_causal_mask, return_attention_scores) of its calls, fixed by the first
        self._signature = tuple(bool(v) for v in signature) if signature else None

    def __call__(self, inputs, mask=None, training=None, return_attention_scores=None,
                 use_causal_mask=None):
        """(The flags not given: those of the layer's first call, or of its saved call.)"""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(  # noqa: TRY004  (Keras's type of error here)
                             f"{type(self).__name__} layer must be called on a list of inputs, "
                             "namely [query, value] or [query, value, key]. "
                             f"Received: inputs={inputs}.")
        if not 2 <= len(inputs) <= 3:
            raise ValueError(f"{type(self).__name__} layer accepts inputs list of length 2 or "
                             "3, namely [query, value] or [query, value, key]. "
                             f"Received length: {len(inputs)}.")
        first = self._signature or (False, False)
        signature = (first[0] if use_causal_mask is None else bool(use_causal_mask),
                     first[1] if return_attention_scores is None
                     else bool(return_attention_scores))
        return_attention_scores = signature[1]
        if self._signature is not None and signature != self._signature:
            raise ValueError(
                f"Layer \"{self.name}\" is called with the use_causal_mask and "
                f"return_attention_scores of its first call (densitron's engine fixes them). "
                f"Received: {signature}, first {self._signature}")
        self._signature = signature
        if mask is not None:  # Keras's [query_mask, value_mask]: each carried by its input
            if not isinstance(mask, (list, tuple)) or len(mask) != 2:
                raise ValueError(f"{type(self).__name__} takes mask=[query_mask, value_mask]. "
                                 f"Received: mask={mask!r}")
            inputs = with_mask(self, list(inputs), list(mask))
        out = super().__call__(list(inputs), training=training)
        if not return_attention_scores or not isinstance(out, KerasTensor):
            return out
        node = out._node  # a second output: the softmax's weights (batch, Tq, Tv)
        scores = KerasTensor((None, out.shape[1], inputs[1].shape[1]),
                             name=f"{self.name}_scores", node=node, index=1)
        scores._mask = None
        node.outputs.append(scores)
        return out, scores

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list) or any(len(s) != 3 for s in input_shape):
            raise ValueError(f"Layer \"{self.name}\" attends over (batch, steps, features) "
                             f"tensors: [query, value] or [query, value, key]. Received: input "
                             f"shapes {input_shape}")
        query, value = input_shape[0], input_shape[1]
        key = input_shape[2] if len(input_shape) > 2 else value
        if key[1] != value[1]:
            raise ValueError(f"Layer \"{self.name}\": the value and the key must have as many "
                             f"steps. Received: input shapes {input_shape}")
        if query[-1] != key[-1]:
            raise ValueError(f"Layer \"{self.name}\": the scores need the query and the key "
                             f"of one last axis. Received: input shapes {input_shape}")

    def build(self, input_shape):
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight((), "ones", name="scale")
        self.concat_score_weight = None
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", name="concat_score_weight")
        self.built = True

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], input_shape[1][-1])

    def _output_mask(self, node):
        """Keras's: the query's mask stays on the output; the engine reads the query's and
        the value's (node.masks; a key's own mask is not read, as Keras's call ignores it)."""
        from densitron.layers.attention import step_masks

        return step_masks(self, node, [("query", node.inputs[0]), ("value", node.inputs[1])])[0]

    def _engine_subgraph(self, node, param_index):
        from densitron import activations
        from densitron.layers.math_ops import _MATH, MATH_OPS

        shapes = [t.shape for t in node.inputs]
        t_len, dim = int(shapes[0][1]), int(shapes[0][2])
        s_len, dv = int(shapes[1][1]), int(shapes[1][2])
        key_in = 2 if len(shapes) > 2 else 1
        causal, scores_out = self._signature or (False, False)
        plane = t_len * s_len
        items = []

        def add(spec, *sources):
            """Appends a node reading `sources` (("in", k): the layer's input k; an int: an
            earlier node here); returns its index."""
            items.append(([s if isinstance(s, tuple) else ("node", s) for s in sources], spec))
            return len(items) - 1

        def times_scalar(source, width, last, weight):
            """source · a trained scalar: the engine's scale-by over a last axis of one."""
            flat = add(node_spec(14, width, 1), source)
            flat = add(node_spec(23, width, 1, params=[param_index[id(weight)]]), flat)
            return add(node_spec(14, width, last), flat)

        if self.score_mode == "dot":
            scores = add(node_spec(_BATCH_MATMUL, plane, s_len,
                                   iattrs=[1, t_len, dim, s_len, 0, 1]),
                         ("in", 0), ("in", key_in))                               # q·kᵀ
            if self.scale is not None:
                scores = times_scalar(scores, plane, s_len, self.scale)
        else:
            scores = self._additive_scores(add, times_scalar, param_index, t_len, s_len, dim,
                                           key_in)
        masks = getattr(node, "masks", None) or (None, None)
        extra = len(shapes)  # (the masks' ids follow the layer's inputs)
        kept = {}
        for j, mask in enumerate(masks):
            if mask is not None:
                steps = t_len if j == 0 else s_len
                kept[j] = add(node_spec(_MATH, steps, steps, fattrs=[0.0, 0.0],
                                        iattrs=[MATH_OPS["not_equal"]]), ("in", extra))
                extra += 1
        t_i, s_i = np.meshgrid(np.arange(t_len), np.arange(s_len), indexing="ij")
        t_i, s_i = t_i.ravel(), s_i.ravel()
        if 1 in kept:
            # Keras's where(mask, scores, scores - 1e9): scores + (m - 1)·1e9 for the value
            # steps' mask m, spread over the query steps (0 after each step when causal)
            spread = np.where(s_i <= t_i, s_i, -1) if causal else s_i
            m = add(node_spec(_INDEX_MAP, plane, s_len, iattrs=spread.tolist()), kept[1])
            low = add(node_spec(_MATH, plane, s_len, fattrs=[1e9, 0.0],
                                iattrs=[MATH_OPS["multiply_by"]]), m)
            low = add(node_spec(_MATH, plane, s_len, fattrs=[-1e9, 0.0],
                                iattrs=[MATH_OPS["add"]]), low)
            scores = add(node_spec(3, plane, s_len), scores, low)                   # kAdd
        elif causal:  # (a causal row always keeps its first step: -1e9 is Keras's value)
            keep = np.where(s_i <= t_i, np.arange(plane), _MASKED)
            scores = add(node_spec(_INDEX_MAP, plane, s_len, iattrs=keep.tolist()), scores)
        weights = add(node_spec(2, plane, s_len,
                                act=activations.engine_spec(activations.softmax)), scores)
        if self.dropout > 0.0:
            weights = add(node_spec(10, plane, s_len, fattrs=[self.dropout],
                                    iattrs=[self._engine_seed]), weights)
        mixed = add(node_spec(_BATCH_MATMUL, t_len * dv, dv, iattrs=[1, t_len, s_len, dv, 0, 0]),
                    weights, ("in", 1))                                           # w·v
        if 0 in kept:  # where(query mask, output, 0)
            spread = np.repeat(np.arange(t_len), dv).tolist()
            m = add(node_spec(_INDEX_MAP, t_len * dv, dv, iattrs=spread), kept[0])
            mixed = add(node_spec(6, t_len * dv, dv), mixed, m)                    # kMultiply
        return items, [mixed] + ([weights] if scores_out else [])

    def _additive_scores(self, add, times_scalar, param_index, t_len, s_len, dim, key_in):
        """Keras's concat scores: Σ_d tanh(scale·(q + k)) for each (query step, key step)
        pair, times concat_score_weight."""
        summed = _pairs_summed(add, t_len, s_len, dim, key_in)
        if self.scale is not None:
            summed = times_scalar(summed, t_len * s_len * dim, dim, self.scale)
        scores = _feature_sums(add, _tanh(add, summed, t_len * s_len * dim, dim), t_len, s_len,
                               dim)
        return times_scalar(scores, t_len * s_len, s_len, self.concat_score_weight)

    def get_config(self):
        config = {**super().get_config(), "use_scale": self.use_scale,
                  "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}
        if self._signature is not None and any(self._signature):
            config["call_signature"] = list(self._signature)
        return config


class AdditiveAttention(Attention):
    """Keras's AdditiveAttention (Bahdanau-style): `layer([query, value])` or `layer([query,
    value, key])`, each (query step, key step) pair scored Σ_d scale_d·tanh(q_d + k_d), with
    `scale` a trained vector of the features (glorot_uniform, as Keras) when use_scale (the
    default); the masks, causal mask, dropout and returned weights as Attention's."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, score_mode="concat", dropout=dropout, **kwargs)

    def build(self, input_shape):
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight((int(input_shape[0][-1]),), "glorot_uniform",
                                         name="scale")
        self.concat_score_weight = None
        self.built = True

    def _additive_scores(self, add, times_scalar, param_index, t_len, s_len, dim, key_in):
        """Σ_d scale_d·tanh(q_d + k_d) for each pair (the scale vector over the features)."""
        pairs = t_len * s_len * dim
        summed = _tanh(add, _pairs_summed(add, t_len, s_len, dim, key_in), pairs, dim)
        if self.scale is not None:
            summed = add(node_spec(23, pairs, dim, params=[param_index[id(self.scale)]]), summed)
        return _feature_sums(add, summed, t_len, s_len, dim)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
