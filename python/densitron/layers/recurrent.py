"""Keras's recurrent layers SimpleRNN, LSTM and GRU, and the Bidirectional wrapper, unrolled
over the steps onto the engine's nodes: each step's input is projected by a Dense node (x_t·
kernel + bias; GRU's two-row bias and per-gate dropout project every step at once), adds
h·recurrent_kernel (a Dense node without bias, the one recurrent kernel read by every step),
picks its gates with index maps and combines them with activations, products and sums.
Keras's weights (kernel (features, gates·units), recurrent_kernel (units, gates·units), bias;
gate order i, f, c, o for LSTM and z, r, h for GRU, whose reset_after bias is (2, 3·units)),
masks (a masked step keeps the previous state), go_backwards, initial states,
return_sequences and return_state as Keras 3's JAX backend computes them. RNN(cell) runs Keras's SimpleRNNCell,
LSTMCell and GRUCell (and StackedRNNCells of them) with those layers' own steps, and a cell
of the user's by its call() traced once on a step's symbolic tensors (_CustomStep);
ConvLSTM1D/2D/3D run LSTM's step with the convolution layers' engine nodes."""

import functools

import numpy as np

from densitron import activations, constraints, initializers, regularizers
from densitron.layers.layer import KerasTensor, Layer, defines_call, node_spec, with_mask
from densitron.utils.naming import to_snake_case

# densitron::OpType
_DENSE, _ACT, _ADD, _CONCAT, _SUB, _MUL, _AVERAGE, _DROPOUT = 1, 2, 3, 4, 5, 6, 7, 10
_RESHAPE = 14
_MATH, _INDEX_MAP, _BIAS_ADD = 25, 20, 22
_NOT_EQUAL = 15  # MathOp::kNotEqual
_LSTM, _GRU, _SIMPLE_RNN = 36, 37, 38  # OpType::kLSTM, kGRU, kSimpleRNN


class _Builder:
    """The engine nodes of one layer call: (sources, spec) items, a source ("in", k) the
    call's input k or ("node", j) the j-th item."""

    def __init__(self, param_index, items=None):
        self.items = [] if items is None else items
        self.param_index = param_index

    def add(self, spec, *sources):
        self.items.append(([s if isinstance(s, tuple) else ("node", s) for s in sources], spec))
        return len(self.items) - 1

    def param(self, var):
        return self.param_index[id(var)]

    def pick(self, src, index, last=None):
        """The values of src at `index` (an index map; -1 gives 0)."""
        index = [int(i) for i in index]
        return self.add(node_spec(_INDEX_MAP, len(index), last or len(index), iattrs=index),
                        src)

    def kept_steps(self, mask, steps):
        """1 where a step is kept, 0 where masked: the mask source's ids (or Masking's kept
        steps) other than 0."""
        return self.add(node_spec(_MATH, steps, steps, fattrs=[0.0, 0.0], iattrs=[_NOT_EQUAL]),
                        mask)

    def act(self, src, fn, width):
        return self.add(node_spec(_ACT, width, width, act=activations.engine_spec(fn)), src)

    def dense(self, src, kernel, width, bias=None, last=None):
        return self.add(node_spec(_DENSE, width, last or width, params=[
            self.param(kernel), -1 if bias is None else self.param(bias)]), src)

    def merge(self, op, a, b, width):
        return self.add(node_spec(op, width, width), a, b)

    def blend(self, m, new, old, width):
        """old + m·(new - old): new where the step is kept (m 1), old where masked (m 0);
        old None: zeros."""
        if old is None:
            return self.merge(_MUL, m, new, width)
        step = self.merge(_MUL, m, self.merge(_SUB, new, old, width), width)
        return self.merge(_ADD, old, step, width)


def _with_activity(layer, b, outputs):
    """The outputs, each through an identity node carrying the layer's activity regularizer
    (Keras's: on each output of the call)."""
    if layer.activity_regularizer is None:
        return outputs
    coefficients = regularizers.coefficients(layer.activity_regularizer)
    shaped = []
    for j in outputs:
        width, last = b.items[j][1][1], b.items[j][1][2]
        shaped.append(b.add(node_spec(_RESHAPE, width, last, activity=coefficients), j))
    return shaped


def _number(name, value, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number between 0 and 1. "
                        f"Received: {name}={value!r}")
    return min(1.0, max(float(minimum), float(value)))


def _cell_arguments(obj, units, activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, kernel_regularizer,
                    recurrent_regularizer, bias_regularizer, kernel_constraint,
                    recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed):
    """A cell's arguments (a recurrent layer's, or a cell's of RNN), checked, as obj's
    attributes."""
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ValueError("Received an invalid value for argument `units`, expected a "
                         f"positive integer. Received: units={units!r}")
    obj.units = int(units)
    obj.activation = _RNN._activation("activation", activation)
    obj.use_bias = bool(use_bias)
    obj.kernel_initializer = initializers.get(kernel_initializer)
    obj.recurrent_initializer = initializers.get(recurrent_initializer)
    obj.bias_initializer = initializers.get(bias_initializer)
    obj.kernel_regularizer = regularizers.get(kernel_regularizer)
    obj.recurrent_regularizer = regularizers.get(recurrent_regularizer)
    obj.bias_regularizer = regularizers.get(bias_regularizer)
    obj.kernel_constraint = constraints.get(kernel_constraint)
    obj.recurrent_constraint = constraints.get(recurrent_constraint)
    obj.bias_constraint = constraints.get(bias_constraint)
    # (Keras clips the rates to [0, 1] and drops only for 0 < rate < 1)
    obj.dropout = _number("dropout", dropout)
    obj.recurrent_dropout = _number("recurrent_dropout", recurrent_dropout)
    obj.seed = seed
    from densitron.layers.regularization import _seed

    obj._engine_seed = _seed(seed)
    obj.kernel = obj.recurrent_kernel = obj.bias = None


def _build_weights(obj, features):
    """A cell's kernel (features, gates·units), recurrent_kernel (units, gates·units) and bias
    on obj (a recurrent layer or a cell): the list of them."""
    width = obj._gates * obj.units
    obj.kernel = obj.add_weight((features, width), obj.kernel_initializer, name="kernel",
                                regularizer=obj.kernel_regularizer,
                                constraint=obj.kernel_constraint)
    obj.recurrent_kernel = obj.add_weight(
        (obj.units, width), obj.recurrent_initializer, name="recurrent_kernel",
        regularizer=obj.recurrent_regularizer, constraint=obj.recurrent_constraint)
    weights = [obj.kernel, obj.recurrent_kernel]
    if obj.use_bias:
        obj.bias = obj.add_weight(obj._bias_shape(), obj.bias_initializer, name="bias",
                                  regularizer=obj.bias_regularizer,
                                  constraint=obj.bias_constraint)
        obj._init_bias()
        weights.append(obj.bias)
    return weights


class _RNN(Layer):
    """What SimpleRNN, LSTM and GRU share: their arguments, weights, calls (initial_state,
    masks, return_state) and the unrolled graph around each cell's step."""

    _gates = 1
    _states = 1
    _cell_name = "rnn_cell"
    _mask_rule = "consume"

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _cell_arguments(self, units, activation, use_bias, kernel_initializer,
                        recurrent_initializer, bias_initializer, kernel_regularizer,
                        recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed)
        self._loop_arguments(return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)

    # Whether the layer takes stateful=True (SimpleRNN's, LSTM's and GRU's engine node keeps
    # the states; RNN(cell) and the ConvLSTMs unroll their steps as nodes, which do not)
    _stateful_ok = False

    def _loop_arguments(self, return_sequences, return_state, go_backwards, stateful, unroll,
                        zero_output_for_mask):
        if stateful and not self._stateful_ok:
            raise ValueError(f"densitron's {type(self).__name__} is not stateful (SimpleRNN, "
                             "LSTM and GRU are). Received: stateful=True")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self._state_vars = None  # (stateful: the state variables, made by build)
        self.unroll = bool(unroll)  # (the engine's graph is always unrolled)
        self.zero_output_for_mask = bool(zero_output_for_mask)

    @staticmethod
    def _activation(name, value):
        fn = activations.get(value)
        if activations.is_traced(fn):
            raise ValueError(f"densitron's recurrent layers take the engine's activations (by "
                             f"name or from densitron.activations). Received: {name}={value!r}")
        activations.engine_spec(fn)  # (raises for one the engine cannot run)
        return fn

    # --- calls -----------------------------------------------------------------------------
    def __call__(self, inputs, initial_state=None, mask=None, training=None, **kwargs):
        inputs, initial_state = _call_arguments(self, inputs, initial_state, mask, kwargs)
        sizes = self._state_sizes()
        if initial_state is not None:
            states = _flat(initial_state)
            if len(states) != len(sizes):
                shapes = "of the convolution's output shape" if sizes[0] is None else \
                    f"of shape (batch, {sizes[0]})" if len(set(sizes)) == 1 else \
                    "of shapes " + ", ".join(f"(batch, {n})" for n in sizes)
                raise ValueError(
                    f"Layer \"{self.name}\" ({type(self).__name__}) takes {len(sizes)} "
                    f"initial state tensor(s) {shapes}. Received: "
                    f"initial_state with {len(states)} tensor(s)")
            out = super().__call__([inputs, *states], training=training)
        else:
            out = super().__call__(inputs, training=training)
        if isinstance(out, KerasTensor) and self.return_state:
            node = out._node
            for k, size in enumerate(self._state_sizes()):  # (a ConvLSTM's: now known)
                state = KerasTensor(_batched(size), name=f"{self.name}_state_{k}",
                                    node=node, index=k + 1)
                node.outputs.append(state)
            return (out, *_nested_unless_eager(self, node.outputs[1:]))
        return out

    def _state_sizes(self):
        """The sizes of the states, in the order of initial_state and return_state."""
        return [self.units] * self._states

    def _nested_states(self, states):
        """The states as the call returns them (Keras's structure of them)."""
        return states

    def _features(self):
        """The features a step's input has (the layer built)."""
        return self.kernel.shape[0]

    def _check_inputs(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        seq = tuple(shapes[0])
        if len(seq) != 3:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected ndim=3, found ndim={len(seq)}. Full shape received: "
                             f"{seq}")
        if seq[2] is None:  # (steps of None: the data's, the engine unrolled at them)
            raise ValueError(f"densitron's {type(self).__name__} unrolls the steps on its "
                             "engine, so it needs the number of features (Input((steps, "
                             f"features)))). Received: input shape {seq}")
        for k, (state, size) in enumerate(zip(shapes[1:], self._state_sizes())):
            if tuple(state)[1:] != (size,):
                raise ValueError(f"Layer \"{self.name}\": initial state {k} must have shape "
                                 f"(batch, {size}). Received: shape {tuple(state)}")
        if self.stateful and self.states is not None and seq[0] is not None and \
                seq[0] != self.states[0].shape[0]:  # (Keras's message)
            raise ValueError(
                "If an RNN is stateful, the batch size of the input sequences must be the same "
                "as the batch size of the initial state. \n- Expected batch size: "
                f"{self.states[0].shape[0]}\n- Received batch size: {seq[0]}")
        if self.built and int(seq[2]) != self._features():
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected axis -1 of input shape to have value "
                             f"{self._features()}. Received: input shape {seq}")

    def compute_output_shape(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self.return_sequences:
            return (seq[0], seq[1], self.units)
        return (seq[0], self.units)

    def _output_mask(self, node):
        """Keras's: the input's mask is applied (a masked step keeps the previous state) when
        the call has no initial state (Keras fills `mask` for a call of one tensor argument
        only), and stays on the output when it returns sequences."""
        mask = getattr(node.inputs[0], "_mask", None)
        if mask is None:
            return None
        steps = node.inputs[0].shape[1]
        if tuple(mask.shape[1:]) != (steps,):
            raise ValueError(f"Layer \"{self.name}\": the input's mask must have one entry a "
                             f"step ({steps}). Received: a mask of shape {tuple(mask.shape)}")
        if len(node.inputs) == 1:
            node.masks = (mask,)
        return mask if self.return_sequences else None

    # --- Keras's stateful=True ---------------------------------------------------------------
    # The states (batch × units each: h, and LSTM's c) are non-trainable variables that are not
    # the layer's weights (Keras's, made outside its tracking: not in weights nor in files).
    # The engine's node starts each batch from them and writes its final states back (every
    # forward: fit's steps, evaluate, predict, direct calls), so row i of a batch continues row
    # i of the one before; nothing resets them but reset_state(). As Keras on TensorFlow and
    # torch: Keras 3.15 on JAX never updates them (its states stay zeros), a JAX limitation.
    _state_vars = None

    @property
    def states(self):
        """Keras's: a stateful layer's state variables once built (h, and LSTM's c), else
        None."""
        return self._state_vars

    def reset_state(self):
        """Keras's: sets a stateful layer's states to zeros (nothing to do otherwise)."""
        for v in self.states or ():
            v.assign(np.zeros(v.shape, np.float32))

    def reset_states(self):
        """Keras's alias of reset_state."""
        self.reset_state()

    def _create_state_variables(self, seq):
        """(stateful) the states, zeros, for the batch size of the input shape `seq` (Keras's
        build: a static one needed; a layer built again resets the states it has)."""
        if self.states is not None:
            self.reset_state()
            return
        if seq[0] is None:
            raise ValueError("When using `stateful=True` in a RNN, the batch size must be "
                             f"static. Found dynamic batch size: sequence.shape={tuple(seq)}")
        from densitron.variables import Variable

        self._state_vars = [  # (private: not tracked as weights)
            Variable(np.zeros((int(seq[0]), size), np.float32), trainable=False,
                     name="rnn_state") for size in self._state_sizes()]

    def _engine_state_variables(self):
        """The variables the engine's graph takes besides the weights (non-trainable)."""
        return list(self.states or ()) if self.stateful else []

    def _eager_call(self, inputs, training=False, positional=False):
        call = (functools.partial(_stateful_eager_call, self) if self.stateful else
                super()._eager_call)
        return _eager_nested(self, call, inputs, training, positional, 1)

    @property
    def cell(self):
        """Keras's cell (lstm_cell, ...) as a view of this layer's attributes: its units,
        state_size, activations, weights."""
        import types

        names = ("units", "activation", "recurrent_activation", "use_bias", "kernel",
                 "recurrent_kernel", "bias", "dropout", "recurrent_dropout", "seed",
                 "reset_after", "unit_forget_bias")
        view = types.SimpleNamespace(**{n: getattr(self, n) for n in names if hasattr(self, n)})
        view.name = self._cell_name
        view.state_size = [self.units] * self._states if self._states > 1 else self.units
        view.output_size = self.units
        return view

    # --- weights ---------------------------------------------------------------------------
    def build(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self.stateful:
            self._create_state_variables(seq)
        for w in _build_weights(self, int(seq[-1])):  # (Keras's paths: the cell's)
            w.path = f"{self.name}/{self._cell_name}/{w.name}"
        self.built = True

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _init_bias(self):
        pass

    def _keras_sublayers(self):
        """Keras keeps the weights in the layer's cell (layers/<name>/cell/vars)."""
        return [("cell", self._cell_name, [w for w in (self.kernel, self.recurrent_kernel,
                                                       self.bias) if w is not None])]

    # --- the engine's graph ----------------------------------------------------------------
    def _engine_subgraph(self, node, param_index):
        b = _Builder(param_index)
        outputs = self._emit(b, node, ("in", 0), [("in", 1 + k)
                                                  for k in range(len(node.inputs) - 1)],
                             ("in", len(node.inputs)) if getattr(node, "masks", None) else None)
        return b.items, self._with_activity(b, outputs)

    def _with_activity(self, b, outputs):
        return _with_activity(self, b, outputs)

    def _emit(self, b, node, x, states, mask):
        """The call's nodes in `b`: x the (steps, features) input, states the initial states'
        sources (or none: zeros), mask the source of the ids (or Masking's kept steps), None
        without one. Returns the sources of the output and (with return_state) the states.
        The engine's LSTM, GRU or SimpleRNN node where it applies (see _native_emit), else
        the steps unrolled as nodes."""
        if self._native(states):
            return self._native_emit(b, node, x, states, mask)
        if self.stateful:
            raise ValueError(
                f"densitron's stateful {type(self).__name__} runs on the engine's recurrent "
                "node, which takes Keras's default activations (tanh and sigmoid; SimpleRNN's "
                f"relu too) and initial states of every state. Received: layer \"{self.name}\" "
                f"with stateful=True and activation={activations.serialize(self.activation)!r}"
                + (f", recurrent_activation="
                   f"{activations.serialize(self.recurrent_activation)!r}"
                   if hasattr(self, "recurrent_activation") else ""))
        shape = node.inputs[0].shape
        return self._unroll(b, int(shape[1]), int(shape[2]), x, states, mask)

    def _unroll(self, b, steps, features, x, states, mask):
        """_emit's nodes for an input of `steps` steps of `features` values."""
        u = self.units
        if not self._per_gate_dropout():
            x = self._input_dropout(b, x, steps, features)
        ctx = self._prepare(b, x, steps, features)
        kept = None if mask is None else b.kept_steps(mask, steps)
        state = list(states) if states else [None] * self._states
        outs, out = [], None
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        for t in order:
            new = self._step(b, ctx, t, state)
            if kept is None:
                state = new
                out = new[0]
            else:  # (a call with initial states takes no mask: the state starts at zeros)
                m = b.pick(kept, [t] * u)
                state = [b.blend(m, n, s, u) for n, s in zip(new, state)]
                # a masked step's output: the state kept, or zeros with zero_output_for_mask
                # (which Keras's unrolled loop ignores: its previous output, the state here)
                out = b.merge(_MUL, m, new[0], u) if (
                    self.zero_output_for_mask and not self.unroll) else state[0]
            outs.append(out)
        if self.return_sequences:
            out = b.add(node_spec(_CONCAT, steps * u, u, iattrs=[1]), *outs)
        results = [out]
        if self.return_state:
            results += state
        return results

    def _input_dropout(self, b, x, steps, features):
        """x with Keras's input dropout in training, one mask a sample for every step (a
        noise shape (batch, 1, features)); x as is without one."""
        if not self._drops(self.dropout):
            return x
        return b.add(node_spec(_DROPOUT, steps * features, features, fattrs=[self.dropout],
                               iattrs=[self._engine_seed, 0, 1, 0, steps, features]), x)

    @staticmethod
    def _drops(rate):
        """Whether a dropout rate drops values in training (LSTM's and GRU's: 0 < rate < 1,
        as their cells test; SimpleRNN's cell drops for any rate above 0, every value at 1)."""
        return 0.0 < rate < 1.0

    def _per_gate_dropout(self):
        """Whether the input dropout takes one mask a gate (Keras's implementation 1, which a
        recurrent dropout selects in LSTM and GRU)."""
        return False

    def _rec_dropout(self, b, h, copies=1):
        """h with Keras's recurrent dropout in training (one mask a sample for every step:
        every step's Dropout node draws the same values with one seed), `copies` masks of it
        side by side; h as is without one."""
        u = self.units
        if not self._drops(self.recurrent_dropout):
            return h
        if copies > 1:
            h = b.pick(h, list(range(u)) * copies)
        return b.add(node_spec(_DROPOUT, copies * u, copies * u,
                               fattrs=[self.recurrent_dropout], iattrs=[self._rec_seed()]), h)

    def _rec_seed(self):
        """The recurrent dropout masks' seed (the unrolled steps' Dropout nodes', the native
        node's)."""
        return (self._engine_seed + 1) % 2**62

    def _projection(self, b, x, steps, features, bias=True):
        """x·kernel (+ bias) for every step: (steps, gates·units); with per-gate input dropout
        each gate's columns from its own dropped copy of x."""
        width = self._gates * self.units
        use = self.bias if (bias and self.use_bias) else None
        if not (self._per_gate_dropout() and 0.0 < self.dropout < 1.0):
            return b.dense(x, self.kernel, steps * width, use, last=width)
        g, u = self._gates, self.units
        copies = self._gate_copies(b, x, steps, features)
        parts = []
        for q in range(g):
            xq = b.pick(copies, [t * g * features + q * features + f for t in range(steps)
                                 for f in range(features)], last=features)
            full = b.dense(xq, self.kernel, steps * width, use, last=width)
            parts.append(b.pick(full, [t * width + q * u + j for t in range(steps)
                                       for j in range(u)], last=u))
        return b.add(node_spec(_CONCAT, steps * width, width, iattrs=[steps]), *parts)

    def _gate_copies(self, b, x, steps, features):
        """(per-gate input dropout) each step's features once a gate, (steps, gates·features),
        each copy through its own mask (one a sample for every step)."""
        g = self._gates
        copies = b.pick(x, [t * features + f for t in range(steps) for _ in range(g)
                            for f in range(features)], last=g * features)
        return b.add(node_spec(_DROPOUT, steps * g * features, g * features,
                               fattrs=[self.dropout],
                               iattrs=[self._engine_seed, 0, 1, 0, steps, g * features]),
                     copies)

    def _recurrent(self, b, h, gates=None):
        """h·recurrent_kernel (gates·units values); with per-gate recurrent dropout each gate's
        columns from its own dropped copy of h. `gates`: the gates wanted (all by default)."""
        g, u = self._gates, self.units
        width = g * u
        if not (self._per_gate_dropout() and 0.0 < self.recurrent_dropout < 1.0):
            return b.dense(self._rec_dropout(b, h), self.recurrent_kernel, width)
        copies = self._rec_dropout(b, h, g)
        parts = []
        for q in range(g):
            if gates is not None and q not in gates:
                parts.append(b.pick(h, [-1] * u))
                continue
            full = b.dense(b.pick(copies, range(q * u, (q + 1) * u)), self.recurrent_kernel,
                           width)
            parts.append(b.pick(full, range(q * u, (q + 1) * u)))
        return b.add(node_spec(_CONCAT, width, width, iattrs=[1]), *parts)

    def _prepare(self, b, x, steps, features):
        if self._per_gate_dropout() and 0.0 < self.dropout < 1.0:
            return {"x": self._projection(b, x, steps, features)}
        # each step's x_t·kernel + bias by its own Dense node (on the step's features, fewer
        # values to pick than its gates)
        width = self._gates * self.units
        return {"steps": [b.dense(b.pick(x, range(t * features, (t + 1) * features)),
                                  self.kernel, width, self.bias if self.use_bias else None)
                          for t in range(steps)]}

    def _x_at(self, b, ctx, t):
        """Step t's x_t·kernel + bias."""
        if "steps" in ctx:
            return ctx["steps"][t]
        width = self._gates * self.units
        return b.pick(ctx["x"], range(t * width, (t + 1) * width))

    def _step(self, b, ctx, t, state):
        raise NotImplementedError

    # --- the engine's LSTM, GRU and SimpleRNN nodes ------------------------------------------
    _native_op = None  # (a class's engine node, and the _step it stands for)
    _native_step = None

    def _native_emit(self, b, node, x, states, mask):
        """The engine's LSTM, GRU or SimpleRNN node (Keras's default activations, relu too for
        SimpleRNN; see _native): every step in one node, each thread running its samples
        through the steps; a mask and initial states are its further inputs, the returned
        states the end of its row, the input's dropout a node before it (with a recurrent
        dropout, LSTM's and GRU's one copy of the features a gate, each with its own mask:
        the node then reads gates·features a step). The recurrent dropout's masks the node
        draws itself, in training, as the unrolled steps' Dropout node of the same seed
        (_rec_dropout: one a gate, or SimpleRNN's one)."""
        steps, features = (int(d) for d in node.inputs[0].shape[1:])
        u = self.units
        gate_inputs = self._per_gate_dropout() and 0.0 < self.dropout < 1.0
        sources = [self._gate_copies(b, x, steps, features) if gate_inputs
                   else self._input_dropout(b, x, steps, features)]
        if mask is not None:
            sources.append(b.kept_steps(mask, steps))
        sources += list(states or [])  # (h, and LSTM's c)
        zero = int(self.zero_output_for_mask and not self.unroll)
        main = (steps if self.return_sequences else 1) * u
        n_states = self._states if self.return_state else 0
        extra, fattrs = self._native_extra(), []
        rate = self.recurrent_dropout if self._drops(self.recurrent_dropout) else 0.0
        if gate_inputs or rate:  # (the variant, then the copies' flag and the masks' seed)
            extra = [*(extra or [0]), int(gate_inputs), self._rec_seed()]
            fattrs = [rate]
        out = b.add(node_spec(self._native_op, main + n_states * u, u,
                              params=[b.param(self.kernel), b.param(self.recurrent_kernel),
                                      b.param(self.bias) if self.use_bias else -1,
                                      *[b.param(v) for v in self._engine_state_variables()]],
                              fattrs=fattrs,
                              iattrs=[steps, features, u, int(self.return_sequences),
                                      int(self.go_backwards), zero, int(mask is not None),
                                      int(bool(states)), int(self.return_state), *extra]),
                    *sources)
        if not self.return_state:
            return [out]
        # the output, then each state, picked out of the node's row
        return [b.pick(out, range(main), last=u)] + [
            b.pick(out, range(main + k * u, main + (k + 1) * u)) for k in range(n_states)]

    def _native(self, states):
        return (self._native_op is not None and type(self)._step is type(self)._native_step and
                self._native_cell() and (not states or len(states) == self._states))

    def _native_cell(self):
        return False

    def _native_extra(self):
        return []

    # --- config ----------------------------------------------------------------------------
    def get_config(self):
        config = {**super().get_config(), "return_sequences": self.return_sequences,
                  "return_state": self.return_state, "go_backwards": self.go_backwards,
                  "stateful": self.stateful, "unroll": self.unroll,
                  "zero_output_for_mask": self.zero_output_for_mask, "units": self.units,
                  "activation": activations.serialize(self.activation)}
        config.update(self._own_config())
        config.update({
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout})
        return config

    def _own_config(self):
        return {}


def _call_arguments(layer, inputs, initial_state, mask, kwargs):
    """A recurrent layer's (or Bidirectional's) call's sequences and initial states, the
    sequences carrying `mask` when one is given (Keras's call(sequences, mask=...), the
    masking guide's self.lstm(x, mask=mask)); other keywords refused; [sequences, *states]
    (densitron's own config of a call with initial states) taken apart."""
    if kwargs:
        raise TypeError(f"Layer {layer.name} takes its inputs, initial_state, mask and "
                        f"training when called. Received: kwargs={kwargs}")
    if initial_state is None and isinstance(inputs, (list, tuple)):
        inputs, initial_state = inputs[0], list(inputs[1:]) or None
    return with_mask(layer, inputs, mask), initial_state


def _nested_unless_eager(layer, states):
    """The states as the call returns them, flat while _eager_nested builds the layer's
    model (its outputs a flat list)."""
    return states if getattr(layer, "_flat_states", False) else layer._nested_states(states)


def _eager_nested(layer, eager_call, inputs, training, positional, first):
    """The layer called on arrays (eager_call: Layer's, through a model of the layer whose
    outputs are flat), its states then nested as its symbolic call returns them."""
    layer._flat_states = True
    try:
        out = eager_call(inputs, training=training, positional=positional)
    finally:
        layer._flat_states = False
    if not isinstance(out, (list, tuple)) or len(out) <= first:
        return out
    return [*out[:first], *layer._nested_states(list(out[first:]))]


def _stateful_eager_call(layer, inputs, training=False, positional=False):
    """A stateful layer (a recurrent one, a Bidirectional of them) called on arrays: through a
    model of the layer on Inputs of the arrays' batch size, the whole batch in one pass (its
    states then written back)."""
    from densitron.layers.input_layer import Input
    from densitron.models.functional import Functional

    flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    arrays = [np.asarray(t, dtype=np.float32) for t in flat]
    key = ("stateful", positional, *(a.shape for a in arrays))
    model = layer._eager_models.get(key)
    if model is None:
        tensors = [Input(batch_shape=a.shape) for a in arrays]
        out = (layer(*tensors) if positional else
               layer(tensors if isinstance(inputs, (list, tuple)) else tensors[0]))
        model = Functional(tensors, out, name=f"{layer.name}_eager", _is_eager_wrapper=True)
        layer._eager_models[key] = model
    data = arrays if len(arrays) > 1 else arrays[0]
    if training:
        return model._noisy_call(data, len(arrays[0]))
    return model.predict(data, batch_size=len(arrays[0]), verbose=0)


def _batched(size):
    """A state's shape with the batch axis: (None, size), or (None, *size) for a shape."""
    return (None, *size) if isinstance(size, tuple) else (None, size)


def _flat(states):
    """Initial states given as a tensor or (nested, a stack of cells') lists: a flat list."""
    if not isinstance(states, (list, tuple)):
        return [states]
    return [t for s in states for t in _flat(s)]


def _base_arguments(values, *own):
    """A recurrent layer's constructor's arguments, from its locals(), for its base class's
    constructor (by name): all but `own` (the ones it keeps itself), its **kwargs spread."""
    skip = ("self", "__class__", "kwargs", *own)
    return {**{k: v for k, v in values.items() if k not in skip}, **values["kwargs"]}


class SimpleRNN(_RNN):
    """Keras's SimpleRNN: h_t = activation(x_t·kernel + bias + h_{t-1}·recurrent_kernel)."""

    _cell_name = "simple_rnn_cell"
    _stateful_ok = True

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        # (Keras's order of the arguments: seed last)
        super().__init__(**_base_arguments(locals()))

    @staticmethod
    def _drops(rate):
        return rate > 0.0

    def _step(self, b, ctx, t, state):
        u = self.units
        z = self._x_at(b, ctx, t)
        if state[0] is not None:
            z = b.merge(_ADD, z, self._recurrent(b, state[0]), u)
        return [b.act(z, self.activation, u)]

    _native_op = _SIMPLE_RNN
    _native_step = _step

    def _native_cell(self):
        return self.activation in (activations.tanh, activations.relu)

    def _native_extra(self):
        return [int(self.activation is activations.relu)]


class _Gated(_RNN):
    """LSTM's and GRU's recurrent_activation, use_cudnn and implementation."""

    def __init__(self, recurrent_activation="sigmoid", use_cudnn="auto", **kwargs):
        kwargs.pop("implementation", None)  # (Keras's: chosen by recurrent_dropout)
        super().__init__(**kwargs)
        self.recurrent_activation = self._activation("recurrent_activation",
                                                     recurrent_activation)
        if use_cudnn not in ("auto", True, False):
            raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of "
                             f"{{'auto', True, False}}. Received: use_cudnn={use_cudnn}")
        self.use_cudnn = use_cudnn

    def _check_inputs(self, input_shape):
        super()._check_inputs(input_shape)
        if self.use_cudnn is True:
            raise ValueError("use_cudnn=True was specified, but cuDNN is not supported for this "
                             "layer configuration with this backend. Pass use_cudnn='auto' to "
                             "fallback to a non-cuDNN implementation. Received: use_cudnn=True")

    def _per_gate_dropout(self):
        return self.recurrent_dropout != 0.0

    def _own_config(self):
        return {"recurrent_activation": activations.serialize(self.recurrent_activation)}

    def _native_cell(self):
        return (self.activation is activations.tanh and
                self.recurrent_activation is activations.sigmoid)


class LSTM(_Gated):
    """Keras's LSTM: gates i, f, c, o (the kernels' and bias's column blocks in that order);
    c_t = f·c_{t-1} + i·activation(c̃), h_t = o·activation(c_t). unit_forget_bias sets the
    forget gate's initial bias to 1."""

    _gates = 4
    _states = 2
    _cell_name = "lstm_cell"
    _stateful_ok = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", **kwargs):
        super().__init__(**_base_arguments(locals(), "unit_forget_bias"))
        self.unit_forget_bias = bool(unit_forget_bias)

    def _init_bias(self):
        if self.unit_forget_bias:  # (Keras's: the initializer's values, ones for f)
            u = self.units
            init = self.bias_initializer
            self.bias.assign(np.concatenate([
                np.asarray(init((u,), dtype="float32")), np.ones(u, np.float32),
                np.asarray(init((2 * u,), dtype="float32"))]))

    def _step(self, b, ctx, t, state):
        u = self.units
        h, c = state
        z = self._x_at(b, ctx, t)
        if h is not None:
            z = b.merge(_ADD, z, self._recurrent(b, h), 4 * u)
        gates = b.act(z, self.recurrent_activation, 4 * u)
        i = b.pick(gates, range(u))
        o = b.pick(gates, range(3 * u, 4 * u))
        g = b.act(b.pick(z, range(2 * u, 3 * u)), self.activation, u)
        c_new = b.merge(_MUL, i, g, u)
        if c is not None:
            f = b.pick(gates, range(u, 2 * u))
            c_new = b.merge(_ADD, b.merge(_MUL, f, c, u), c_new, u)
        h_new = b.merge(_MUL, o, b.act(c_new, self.activation, u), u)
        return [h_new, c_new]

    _native_op = _LSTM
    _native_step = _step

    def _own_config(self):
        return {**super()._own_config(), "unit_forget_bias": self.unit_forget_bias,
                "seed": self.seed}


class GRU(_Gated):
    """Keras's GRU: gates z, r, h; h_t = z·h_{t-1} + (1 - z)·activation(x_h + r·(h_{t-1}·R_h
    + b_rh)) with reset_after (the default; bias (2, 3·units): the input's and the
    recurrent's), or activation(x_h + (r·h_{t-1})·R_h) without (bias (3·units,))."""

    _gates = 3
    _cell_name = "gru_cell"
    _stateful_ok = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn="auto", **kwargs):
        super().__init__(**_base_arguments(locals(), "reset_after"))
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    _native_op = _GRU

    def _native_extra(self):
        return [int(not self.reset_after)]  # (the node's variant: reset before the product)

    def _prepare(self, b, x, steps, features):
        u = self.units
        if not (self.reset_after and self.use_bias):
            return super()._prepare(b, x, steps, features)
        # The (2, 3u) bias as one vector of 6u added to [x·kernel, 0] a step: [x·W + b_i,
        # b_r]; the steps' inputs then take b_rz and b_rh's z and r parts, and b_rh is kept
        # for r·(h·R_h + b_rh).
        p = self._projection(b, x, steps, features, bias=False)
        wide = b.pick(p, [t * 3 * u + j if j < 3 * u else -1 for t in range(steps)
                          for j in range(6 * u)], last=6 * u)
        wide = b.add(node_spec(_BIAS_ADD, steps * 6 * u, 6 * u,
                               params=[b.param(self.bias)]), wide)
        own = b.pick(wide, [t * 6 * u + j for t in range(steps) for j in range(3 * u)],
                     last=3 * u)
        rec = b.pick(wide, [t * 6 * u + 3 * u + j if j < 2 * u else -1 for t in range(steps)
                            for j in range(3 * u)], last=3 * u)
        return {"x": b.merge(_ADD, own, rec, steps * 3 * u),
                "b_rh": b.pick(wide, range(5 * u, 6 * u))}

    def _step(self, b, ctx, t, state):
        u = self.units
        h = state[0]
        x = self._x_at(b, ctx, t)
        x_h = b.pick(x, range(2 * u, 3 * u))
        b_rh = ctx.get("b_rh")
        if h is None:
            gates = b.act(b.pick(x, range(2 * u)), self.recurrent_activation, 2 * u)
            rec_h = b_rh if self.reset_after else None
        else:
            rec = self._recurrent(b, h, gates=(0, 1) if not self.reset_after else None)
            s = b.merge(_ADD, b.pick(x, range(2 * u)), b.pick(rec, range(2 * u)), 2 * u)
            gates = b.act(s, self.recurrent_activation, 2 * u)
            if self.reset_after:
                rec_h = b.pick(rec, range(2 * u, 3 * u))
                if b_rh is not None:
                    rec_h = b.merge(_ADD, rec_h, b_rh, u)
        z = b.pick(gates, range(u))
        r = b.pick(gates, range(u, 2 * u))
        if self.reset_after:
            pre = x_h if rec_h is None else b.merge(_ADD, x_h, b.merge(_MUL, r, rec_h, u), u)
        elif h is None:
            pre = x_h
        else:
            rh = self._recurrent_h(b, b.merge(_MUL, r, self._h_dropped(b, h), u))
            pre = b.merge(_ADD, x_h, rh, u)
        hh = b.act(pre, self.activation, u)
        # z·h + (1 - z)·hh = hh + z·(h - hh)
        if h is None:
            return [b.merge(_SUB, hh, b.merge(_MUL, z, hh, u), u)]
        return [b.merge(_ADD, hh, b.merge(_MUL, z, b.merge(_SUB, h, hh, u), u), u)]

    _native_step = _step

    def _h_dropped(self, b, h):
        """(reset_after=False) the h that r multiplies: its own recurrent dropout mask (the
        third of Keras's per-gate masks) in training."""
        if not 0.0 < self.recurrent_dropout < 1.0:
            return h
        copies = self._rec_dropout(b, h, 3)
        return b.pick(copies, range(2 * self.units, 3 * self.units))

    def _recurrent_h(self, b, rh):
        """(r·h)·R_h: the h columns of (r·h)·recurrent_kernel."""
        u = self.units
        return b.pick(b.dense(rh, self.recurrent_kernel, 3 * u), range(2 * u, 3 * u))

    def _own_config(self):
        return {**super()._own_config(), "reset_after": self.reset_after, "seed": self.seed}


class Bidirectional(Layer):
    """Keras's Bidirectional(layer, merge_mode="concat", backward_layer=None): the layer (a
    copy named forward_<name>) over the steps and a copy with go_backwards=True (or
    `backward_layer`) over them in reverse, its sequence flipped back to the input's order,
    the two merged by "concat", "sum", "mul", "ave" or None (both returned). With
    return_state, the forward layer's states then the backward layer's follow. Of stateful
    layers, each keeps its own states (the backward layer's: where its reversed pass ended)."""

    _mask_rule = "consume"

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(  # noqa: TRY004  (Keras's type of error here)
                "Please initialize `Bidirectional` layer with a `keras.layers.Layer` "
                f"instance. Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError("`backward_layer` need to be a `keras.layers.Layer` instance. "
                             f"Received: {backward_layer}")
        if merge_mode not in ["sum", "mul", "ave", "concat", None]:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should "
                             'be one of {"sum", "mul", "ave", "concat", None}')
        if weights is not None:
            raise ValueError("densitron's Bidirectional takes its weights by set_weights once "
                             f"built. Received: weights of length {len(weights)}")
        for role, given in (("layer", layer), ("backward_layer", backward_layer)):
            if given is not None and (not isinstance(given, _RNN) or
                                      isinstance(given, _ConvLSTM)):
                raise ValueError("densitron's Bidirectional wraps SimpleRNN, LSTM, GRU and RNN. "
                                 f"Received: {role}={given!r}")
        super().__init__(**kwargs)
        config = layer.get_config()
        self.forward_layer = type(layer).from_config(
            {**config, "name": "forward_" + layer.name.removeprefix("forward_")})
        if backward_layer is None:
            backward_layer = type(layer).from_config(
                {**config, "go_backwards": True,
                 "name": "backward_" + layer.name.removeprefix("backward_")})
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. "
                f"Received: forward_layer.go_backwards {self.forward_layer.go_backwards}, "
                f"backward_layer.go_backwards={self.backward_layer.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            forward_value = getattr(self.forward_layer, a)
            backward_value = getattr(self.backward_layer, a)
            if forward_value != backward_value:
                raise ValueError(
                    "Forward layer and backward layer are expected to have the same value for "
                    f'attribute "{a}", got "{forward_value}" for forward layer and '
                    f'"{backward_value}" for backward layer')
        for sub in (self.forward_layer, self.backward_layer):  # (Keras's: zeros when masked)
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.stateful = self.forward_layer.stateful
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state

    def _all_weights(self):
        return self.forward_layer.weights + self.backward_layer.weights

    def _keras_sublayers(self):
        return [(f"{role}/{path}", name, variables)
                for role, sub in (("forward_layer", self.forward_layer),
                                  ("backward_layer", self.backward_layer))
                for path, name, variables in sub._keras_sublayers()]

    def __call__(self, inputs, initial_state=None, mask=None, training=None, **kwargs):
        inputs, initial_state = _call_arguments(self, inputs, initial_state, mask, kwargs)
        count = self.forward_layer._states + self.backward_layer._states
        if initial_state is not None:
            states = _flat(initial_state)
            if len(states) != count:
                raise ValueError(f"Layer \"{self.name}\" (Bidirectional) takes {count} initial "
                                 "state tensors, the forward layer's then the backward "
                                 f"layer's. Received: initial_state with {len(states)}")
            out = super().__call__([inputs, *states], training=training)
        else:
            out = super().__call__(inputs, training=training)
        if not isinstance(out, KerasTensor):
            return out
        node = out._node
        if self.merge_mode is None:
            second = KerasTensor(out.shape, name=f"{self.name}_backward", node=node, index=1)
            second._mask = out._mask
            node.outputs.append(second)
        if self.return_state:
            for sub in (self.forward_layer, self.backward_layer):
                for size in sub._state_sizes():
                    node.outputs.append(KerasTensor(_batched(size),
                                                    name=f"{self.name}_state", node=node,
                                                    index=len(node.outputs)))
        if len(node.outputs) == 1:
            return out
        first = 2 if self.merge_mode is None else 1
        return (*node.outputs[:first], *_nested_unless_eager(self, node.outputs[first:]))

    # --- Keras's stateful=True: each layer keeps its own states (the backward layer's: where
    # its pass over the reversed steps ended, at the first step), both started from and
    # written back by every forward, as Keras on TensorFlow and torch
    @property
    def states(self):
        """Keras's: the forward layer's states then the backward layer's, when stateful."""
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def reset_state(self):
        """Keras's: sets both layers' states to zeros (a stateful Bidirectional only)."""
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self):
        """Keras's alias of reset_state."""
        self.reset_state()

    def _engine_state_variables(self):
        return (self.forward_layer._engine_state_variables() +
                self.backward_layer._engine_state_variables())

    def _eager_call(self, inputs, training=False, positional=False):
        call = (functools.partial(_stateful_eager_call, self) if self.stateful else
                super()._eager_call)
        return _eager_nested(self, call, inputs, training, positional,
                             2 if self.merge_mode is None else 1)

    def _nested_states(self, states):
        """The states as the call returns them: the forward layer's, then the backward's (a
        stack of cells' a list a cell)."""
        n = self.forward_layer._states
        return [*self.forward_layer._nested_states(states[:n]),
                *self.backward_layer._nested_states(states[n:])]

    def _check_inputs(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        n = self.forward_layer._states
        self.forward_layer._check_inputs([shapes[0], *shapes[1:1 + n]])
        self.backward_layer._check_inputs([shapes[0], *shapes[1 + n:]])

    def build(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(seq)
            for w in sub.weights:  # (Keras's paths: below the wrapper's)
                if not w.path.startswith(f"{self.name}/"):
                    w.path = f"{self.name}/{w.path}"
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            shape = (*shape[:-1], shape[-1] + self.backward_layer.units)
        return shape

    def _output_mask(self, node):
        mask = self.forward_layer._output_mask(node)
        return mask

    def _engine_subgraph(self, node, param_index):
        b = _Builder(param_index)
        n = self.forward_layer._states
        states = [("in", 1 + k) for k in range(len(node.inputs) - 1)]
        mask = ("in", len(node.inputs)) if getattr(node, "masks", None) else None
        fwd = self.forward_layer
        bwd = self.backward_layer
        y = _with_activity(fwd, b, fwd._emit(b, node, ("in", 0), states[:n], mask))
        y_rev = _with_activity(bwd, b, bwd._emit(b, node, ("in", 0), states[n:], mask))
        states_out = y[1:] + y_rev[1:]
        y, y_rev = y[0], y_rev[0]
        steps = int(node.inputs[0].shape[1])
        u, ub = fwd.units, bwd.units
        if self.return_sequences:  # (the backward layer's sequence back in the input's order)
            y_rev = b.pick(y_rev, [(steps - 1 - t) * ub + j for t in range(steps)
                                   for j in range(ub)], last=ub)
        blocks = steps if self.return_sequences else 1
        width = blocks * u
        if self.merge_mode == "concat":
            outs = [b.add(node_spec(_CONCAT, blocks * (u + ub), u + ub, iattrs=[blocks]),
                          y, y_rev)]
        elif self.merge_mode is None:
            outs = [y, y_rev]
        else:
            if u != ub:
                raise ValueError(f"Layer \"{self.name}\": merge_mode={self.merge_mode!r} "
                                 "needs the forward and backward layers of one size. "
                                 f"Received: units {u} and {ub}")
            op = {"sum": _ADD, "mul": _MUL, "ave": _AVERAGE}[self.merge_mode]
            outs = [b.add(node_spec(op, width, u), y, y_rev)]
        return b.items, _with_activity(self, b, outs + states_out)

    def get_config(self):
        from densitron.layers import serialize

        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        from densitron.layers import deserialize

        config = dict(config)
        config.pop("dtype", None)
        layer = deserialize(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = deserialize(backward)
        return cls(layer, backward_layer=backward, **config)


# --- Keras's RNN(cell) and its cells ---------------------------------------------------------
class _Cell(Layer):
    """What SimpleRNNCell, LSTMCell and GRUCell share: a cell's arguments and weights (Keras's
    names, shapes and order), unrolled by RNN with the per-step nodes of `_layer` (the
    recurrent layer of the same cell). A cell runs inside RNN (or StackedRNNCells) only."""

    _layer = None

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        _cell_arguments(self, units, activation, use_bias, kernel_initializer,
                        recurrent_initializer, bias_initializer, kernel_regularizer,
                        recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed)

    @property
    def _gates(self):
        return self._layer._gates

    @property
    def _states(self):
        return self._layer._states

    @property
    def state_size(self):
        return [self.units] * self._states if self._states > 1 else self.units

    @property
    def output_size(self):
        return self.units

    def __call__(self, *args, **kwargs):
        raise TypeError(f"densitron runs {type(self).__name__} {self.name!r} inside "
                        "keras.layers.RNN (its steps unrolled on the engine), not called on "
                        f"its own. Received: a call with {len(args)} argument(s)")

    def build(self, input_shape):
        _build_weights(self, int(input_shape[-1]))
        self.built = True

    def _bias_shape(self):
        return self._layer._bias_shape(self)

    def _init_bias(self):
        self._layer._init_bias(self)

    def _unrolled(self, **flags):
        """The cell as its recurrent layer with the loop's `flags` (return_sequences, ...),
        for that layer's _unroll: a view of the cell's attributes (its weights the cell's)."""
        view = object.__new__(self._layer)
        view.__dict__.update(vars(self), **flags)
        return view

    def get_config(self):
        config = {**super().get_config(), "units": self.units,
                  "activation": activations.serialize(self.activation)}
        if hasattr(self, "recurrent_activation"):
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        if hasattr(self, "unit_forget_bias"):
            config["unit_forget_bias"] = self.unit_forget_bias
        config.update({
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout})
        if hasattr(self, "reset_after"):
            config["reset_after"] = self.reset_after
        config["seed"] = self.seed
        return config


class SimpleRNNCell(_Cell):
    """Keras's SimpleRNNCell: SimpleRNN's step, h_t = activation(x_t·kernel + bias +
    h_{t-1}·recurrent_kernel)."""

    _layer = SimpleRNN


class LSTMCell(_Cell):
    """Keras's LSTMCell: LSTM's step (gates i, f, c, o; states h and c)."""

    _layer = LSTM

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        kwargs.pop("implementation", None)  # (Keras's: chosen by recurrent_dropout)
        super().__init__(**_base_arguments(locals(), "recurrent_activation",
                                           "unit_forget_bias"))
        self.recurrent_activation = _RNN._activation("recurrent_activation",
                                                     recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)


class GRUCell(_Cell):
    """Keras's GRUCell: GRU's step (gates z, r, h; reset_after's bias (2, 3·units))."""

    _layer = GRU

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(**_base_arguments(locals(), "recurrent_activation", "reset_after"))
        self.recurrent_activation = _RNN._activation("recurrent_activation",
                                                     recurrent_activation)
        self.reset_after = bool(reset_after)


def _check_cell(cell, stacked=False):
    """Keras's checks of a cell (a `call` method, a `state_size`), then densitron's: one of
    Keras's cells, a StackedRNNCells of them given to RNN, or (given to RNN) a cell of the
    user's whose call() is traced step by step."""
    where = "All cells must have" if stacked else "Argument `cell` should have"
    if "call" not in dir(cell):
        raise ValueError(f"{where} a `call` method. Received: cell={cell}")
    if "state_size" not in dir(cell):
        raise ValueError("The RNN cell should have a `state_size` attribute (single integer "
                         "or list of integers, one integer per RNN state). "
                         f"Received: cell={cell}")
    if isinstance(cell, _Cell) and not defines_call(type(cell)):
        return
    if isinstance(cell, StackedRNNCells) and not stacked:
        return
    if isinstance(cell, Layer) and defines_call(type(cell)):
        _custom_state_sizes(cell)
        return
    raise ValueError(
        "densitron's RNN unrolls Keras's SimpleRNNCell, LSTMCell and GRUCell (and "
        "StackedRNNCells of them), or cells of one's own (Layers with `state_size` and "
        f"call(inputs, states)), not class {type(cell).__name__}. Received: cell={cell!r}")


def _own_cell(cell):
    """Whether a cell is one of the user's (its call() traced), not one of Keras's cells."""
    return not isinstance(cell, (_Cell, StackedRNNCells)) or (
        isinstance(cell, _Cell) and defines_call(type(cell)))


def _cell_output_size(cell):
    """Keras's output size of a cell: its output_size, else its (first) state's size."""
    size = getattr(cell, "output_size", None)
    if size is None:
        size = cell.state_size
        size = size[0] if isinstance(size, (list, tuple)) else size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(  # noqa: TRY004  (Keras's type of error here)
            f"output_size must be an integer. Received: output_size={size!r}")
    return int(size)


def _custom_state_sizes(cell):
    """A cell of the user's state_size as Keras's RNN reads it: an int (one state) or a list
    or tuple of ints; the list of the sizes."""
    size = cell.state_size
    sizes = [size] if not isinstance(size, (list, tuple)) else list(size)
    if not isinstance(size, (list, tuple, int, np.integer)) or isinstance(size, bool) or \
            not sizes or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                 and n > 0 for n in sizes):
        raise ValueError("state_size must be an integer, or a list/tuple of integers (one "
                         f"for each state tensor). Received: state_size={size!r}")
    return [int(n) for n in sizes]


class StackedRNNCells(Layer):
    """Keras's StackedRNNCells(cells): the cells one after the other within each step (a
    cell's output the next one's input); its states the cells', in order."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError("StackedRNNCells takes a non-empty list of cells. "
                             f"Received: cells={cells!r}")
        for cell in cells:
            _check_cell(cell, stacked=True)
        own = [_own_cell(c) for c in cells]
        if any(own) and not all(own):
            raise ValueError(
                "densitron's StackedRNNCells holds either Keras's cells (SimpleRNNCell, "
                "LSTMCell, GRUCell) or cells of one's own, not both (its step runs either "
                "the recurrent layers' nodes or the cells' traced calls). Received: cells="
                f"{[type(c).__name__ for c in cells]}")
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        return _cell_output_size(self.cells[-1])

    def __call__(self, *args, **kwargs):
        raise TypeError(f"densitron runs StackedRNNCells {self.name!r} inside "
                        "keras.layers.RNN, not called on its own. Received: a call with "
                        f"{len(args)} argument(s)")

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        for cell in self.cells:
            if not cell.built:
                cell.build((None, *shape))
                cell.built = True
            shape = (_cell_output_size(cell),)
        self.built = True

    def _all_weights(self):
        return [w for cell in self.cells for w in cell.weights]

    def get_config(self):
        from densitron.layers import serialize

        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config):
        from densitron.layers import deserialize

        config = dict(config)
        config.pop("dtype", None)
        return cls([deserialize(c) for c in config.pop("cells")], **config)


class RNN(_RNN):
    """Keras's RNN(cell, return_sequences=False, return_state=False, go_backwards=False,
    stateful=False, unroll=False, zero_output_for_mask=False): the cell (Keras's SimpleRNNCell,
    LSTMCell, GRUCell, or StackedRNNCells of them, a list of cells standing for one) over the
    steps. A stack runs cell by cell over all the steps: the same values as Keras's step by
    step loop, since a masked step keeps every cell's states."""

    cell = None  # (the cell given; _RNN's `cell` is a view of a layer's own attributes)

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        _check_cell(cell)
        Layer.__init__(self, **kwargs)
        self._loop_arguments(return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)
        self.cell = cell
        # a cell of the user's: its call() traced once on a step's symbolic input and states,
        # the traced step's engine nodes repeated each step (see _CustomStep)
        self._custom = _own_cell(cell) or (isinstance(cell, StackedRNNCells) and
                                           _own_cell(cell.cells[0]))
        if self._custom:
            # each cell's states' sizes, and all of them in order (a stack's states)
            self._cell_sizes = [_custom_state_sizes(c) for c in self._cells()]
            self._sizes = [n for sizes in self._cell_sizes for n in sizes]
            self.state_size = _custom_state_sizes(cell) if _own_cell(cell) else \
                list(cell.state_size)
            self._step = None
        else:
            self.state_size = [cell.state_size] if isinstance(cell.state_size, int) \
                else list(cell.state_size)

    def _cells(self):
        return self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]

    @property
    def units(self):
        if self._custom:  # (Keras's: the cell's output_size, else its first state's size)
            return _cell_output_size(self.cell)
        return self._cells()[-1].units

    @property
    def _states(self):
        if self._custom:
            return len(self._sizes)
        return sum(c._states for c in self._cells())

    def _state_sizes(self):
        if self._custom:
            return list(self._sizes)
        return [c.units for c in self._cells() for _ in range(c._states)]

    def _nested_states(self, states):
        if not isinstance(self.cell, StackedRNNCells):
            return states
        if self._custom:  # (Keras's: a list for a cell whose state_size is a list)
            nested = []
            for c, sizes in zip(self._cells(), self._cell_sizes):
                part, states = states[:len(sizes)], states[len(sizes):]
                nested.append(part if isinstance(c.state_size, (list, tuple)) else part[0])
            return nested
        nested = []
        for c in self._cells():  # (Keras's: a list for a cell of several states)
            nested.append(states[:c._states] if c._states > 1 else states[0])
            states = states[c._states:]
        return nested

    def _features(self):
        if self._custom:
            return self._step_shape[-1]
        return self._cells()[0].kernel.shape[0]

    def _all_weights(self):
        return list(self.cell.weights)

    def _check_inputs(self, input_shape):
        if not self._custom:
            super()._check_inputs(input_shape)
            return
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        seq = tuple(shapes[0])
        if len(seq) < 3 or any(d is None for d in seq[1:]):
            raise ValueError(f"densitron's RNN unrolls the steps on its engine, so it needs a "
                             f"sequence of a known number of steps and step shape (Input(("
                             f"steps, features)))). Received: input shape {seq}")
        for k, (state, size) in enumerate(zip(shapes[1:], self._sizes)):
            if tuple(state)[1:] != (size,):
                raise ValueError(f"Layer \"{self.name}\": initial state {k} must have shape "
                                 f"(batch, {size}). Received: shape {tuple(state)}")
        if self.built and tuple(seq[2:]) != self._step_shape:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected steps of shape {self._step_shape}. Received: input "
                             f"shape {seq}")

    def compute_output_shape(self, input_shape):
        if self._custom:
            self._step_graph()  # (the cell's call traced: its output checked now)
        return super().compute_output_shape(input_shape)

    def _step_graph(self):
        """The cell's call traced on one step (built once)."""
        if self._step is None:
            self._step = _CustomStep(self)
        return self._step

    def build(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self._custom:
            self._step_shape = tuple(int(d) for d in seq[2:])
            if not self.cell.built:  # (Keras's: the cell built on a step's shape)
                self.cell.build((None, *self._step_shape))
                self.cell.built = True
            # (Keras's paths: rnn/[stacked_rnn_cells/]<cell's name>/kernel, a sublayer's
            # below its name)
            stack = f"{self.cell.name}/" if isinstance(self.cell, StackedRNNCells) else ""
            for c in self._cells():
                prefix = f"{self.name}/{stack}{c.name}"
                for w in c._weights:
                    w.path = f"{prefix}/{w.name}"
                for sub in c._sublayers():
                    for w in sub.weights:
                        w.path = f"{prefix}/{sub.name}/{w.name}"
            self.built = True
            return
        if not self.cell.built:
            self.cell.build((None, int(seq[-1])))
        prefix = f"{self.name}/" + (f"{self.cell.name}/" if len(self._cells()) > 1 or
                                    isinstance(self.cell, StackedRNNCells) else "")
        for c in self._cells():  # (Keras's paths: rnn/[stacked_rnn_cells/]lstm_cell/kernel)
            for w in c.weights:
                w.path = f"{prefix}{c.name}/{w.name}"
        self.built = True

    def _keras_sublayers(self):
        """Keras keeps the weights in the cell (layers/<name>/cell/vars), a stack's in its
        cells (layers/<name>/cell/cells/lstm_cell/vars, lstm_cell_1, ...: by class, numbered
        within the stack)."""
        if not isinstance(self.cell, StackedRNNCells):
            return self._cell_parts("cell", self.cell)
        parts, seen = [("cell", self.cell.name, [])], {}
        for c in self.cell.cells:
            kind = to_snake_case(type(c).__name__)
            seen[kind] = seen.get(kind, -1) + 1
            path = f"cell/cells/{kind}" + (f"_{seen[kind]}" if seen[kind] else "")
            parts += self._cell_parts(path, c)
        return parts

    def _cell_parts(self, path, cell):
        """_keras_sublayers's parts of one cell at `path`: a cell of one's own keeps its own
        weights there and its layers' below it (by attribute, as Keras saves them)."""
        if not self._custom:
            return [(path, cell.name, cell.weights)]
        from densitron.saving import _composite_paths, _OwnWeights

        return [(f"{path}/{sub}".rstrip("/"), part.name,
                 part._weights if isinstance(part, _OwnWeights) else part.weights)
                for sub, part in _composite_paths(cell, "")]

    def _emit(self, b, node, x, states, mask):
        if self._custom:
            return self._step_graph().unroll(b, node, x, states, mask)
        steps, features = int(node.inputs[0].shape[1]), int(node.inputs[0].shape[2])
        if self.go_backwards:  # (every cell then runs forward over the reversed steps)
            x = b.pick(x, [t * features + f for t in range(steps - 1, -1, -1)
                           for f in range(features)], last=features)
            if mask is not None:
                mask = b.pick(mask, range(steps - 1, -1, -1))
        cells = self._cells()
        states = list(states)
        finals = []
        for k, cell in enumerate(cells):
            last = k == len(cells) - 1
            view = cell._unrolled(
                return_sequences=self.return_sequences or not last, return_state=True,
                go_backwards=False, unroll=self.unroll,
                zero_output_for_mask=self.zero_output_for_mask and last)
            own, states = states[:cell._states], states[cell._states:]
            out = view._unroll(b, steps, features, x, own, mask)
            x, features = out[0], cell.units
            finals += out[1:]
        return [x, *finals] if self.return_state else [x]

    def get_config(self):
        from densitron.layers import serialize

        return {**Layer.get_config(self), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
                "cell": serialize(self.cell)}

    @classmethod
    def from_config(cls, config):
        from densitron.layers import deserialize

        config = dict(config)
        config.pop("dtype", None)
        cell = config.pop("cell")
        return cls(cell if isinstance(cell, Layer) else deserialize(cell), **config)


class _CustomStep:
    """A cell of the user's (a Layer with `state_size` and call(inputs, states) returning
    (output, new_states), as Keras's RNN runs it): its call() traced once on a step's
    symbolic input (batch, *step shape) and states (batch, size) into a model of one step,
    whose engine nodes `unroll` repeats for every step (the same weights each step), with
    Keras 3's JAX loop around them: a masked step keeps the states, and outputs the previous
    first state (zeros with zero_output_for_mask; with unroll=True, the previous output,
    zeros at the first step); initial states from initial_state, the cell's
    get_initial_state(batch_size) when it defines one, else zeros."""

    def __init__(self, rnn):
        from densitron.layers.input_layer import Input

        self.rnn = rnn
        self.cells, self.cell_sizes = rnn._cells(), rnn._cell_sizes
        self.sizes = list(rnn._sizes)
        x = Input(rnn._step_shape, name=f"{rnn.name}_step_input")
        states = [Input((n,), name=f"{rnn.name}_step_state_{k}")
                  for k, n in enumerate(self.sizes)]
        inp, new_states, k = x, [], 0
        for cell, sizes in zip(self.cells, self.cell_sizes):  # (a stack's: one by one)
            own, k = states[k:k + len(sizes)], k + len(sizes)
            inp, new = self._checked(cell, self._traced(cell, [inp, list(own)]), sizes)
            new_states += new
        self.model = self._model([x, *states], [inp, *new_states], "step")
        self.initial = None
        if any(callable(getattr(c, "get_initial_state", None)) for c in self.cells):
            self.initial = self._initial_model()
        # Keras's JAX loop outputs at a masked step the previous states[0]: the first state,
        # or with a stack whose first cell has a list of states, the last cell's first
        # (None: a tensor's first row there, which densitron refuses)
        self.masked_output = 0
        nested = [isinstance(c.state_size, (list, tuple)) for c in self.cells]
        if isinstance(rnn.cell, StackedRNNCells) and nested[0]:
            self.masked_output = len(self.sizes) - len(self.cell_sizes[-1]) \
                if nested[-1] else None

    def _checked(self, cell, out, sizes):
        """A cell's call's (output, new_states), checked: output, [states]."""
        if not isinstance(out, (list, tuple)) or len(out) != 2:
            raise ValueError(f"The call() of RNN cell \"{cell.name}\" must return (output, "
                             f"new_states). Received: {out!r}")
        output, new = out
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        width = _cell_output_size(cell)
        if not isinstance(output, KerasTensor) or tuple(output.shape) != (None, width):
            raise ValueError(f"The call() of RNN cell \"{cell.name}\" must return an output of "
                             f"shape (batch, {width}) (its output_size). Received: "
                             f"output={output!r}")
        shapes = [(None, n) for n in sizes]
        if len(new) != len(shapes) or not all(
                isinstance(t, KerasTensor) and tuple(t.shape) == shape
                for t, shape in zip(new, shapes)):
            raise ValueError(f"The call() of RNN cell \"{cell.name}\" must return "
                             f"{len(shapes)} new state(s) of shapes {shapes} (its state_size). "
                             f"Received: new_states={new!r}")
        return output, new

    def _traced(self, cell, inputs, method=None):
        """cell.call(*inputs) (or `method`) on symbolic tensors, as densitron traces a
        layer's call() (training passed as the run's mode), outside any composite call."""
        from densitron.layers import layer as base

        saved = base._COMPOSITE_CALLS[:]
        del base._COMPOSITE_CALLS[:]
        try:
            if method is not None:
                base._TRACING.append(True)
                try:
                    return method()
                finally:
                    base._TRACING.pop()
            return base.traced_call(cell, inputs, positional=True)
        except (TypeError, AttributeError) as e:
            raise TypeError(
                f"RNN cell \"{cell.name}\" ({type(cell).__name__}): densitron runs the cell's "
                "call() on a step's symbolic tensors, so it may only call densitron layers and "
                "densitron.ops on them (and use arithmetic between tensors or with numbers). "
                f"Received: {type(e).__name__}: {e}") from e
        finally:
            base._COMPOSITE_CALLS[:] = saved

    def _model(self, inputs, outputs, what):
        """A model of inputs to outputs, and where each output is: ("in", k) an input passed
        through, ("out", k) the model's k-th output (each tensor once)."""
        from densitron.layers.layer import _same_tensor
        from densitron.models.functional import Functional

        distinct, where = [], []
        for t in outputs:
            k = next((k for k, i in enumerate(inputs) if _same_tensor(i, t)), None)
            if k is not None:
                where.append(("in", k))
                continue
            k = next((k for k, d in enumerate(distinct) if _same_tensor(d, t)), None)
            if k is None:
                distinct.append(t)
                k = len(distinct) - 1
            where.append(("out", k))
        model = Functional(inputs, distinct, name=f"{self.rnn.name}_{what}",
                           _is_eager_wrapper=True) if distinct else None
        model_weights = model.weights if model is not None else []
        own = {id(w) for w in self.rnn.cell.weights}
        stray = [w.name for w in model_weights if id(w) not in own]
        if stray:
            raise ValueError(f"RNN cell \"{self.rnn.cell.name}\": its call() reads weights "
                             f"that are not the cell's own. Received: weights {stray}")
        return model, where

    def _initial_model(self):
        """The get_initial_state(batch_size) (ops.shape(sequences)[0], as Keras calls it) of
        the cells that define one, as a model of the sequences: their states in order."""
        from densitron import ops
        from densitron.layers.input_layer import Input

        seq = Input((1, *self.rnn._step_shape), name=f"{self.rnn.name}_sequences")
        outputs = []
        for cell, sizes in zip(self.cells, self.cell_sizes):
            if not callable(getattr(cell, "get_initial_state", None)):
                continue
            states = self._traced(cell, None, lambda c=cell: c.get_initial_state(
                batch_size=ops.shape(seq)[0]))
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            shapes = [(None, n) for n in sizes]
            if len(states) != len(shapes) or not all(
                    isinstance(t, KerasTensor) and tuple(t.shape) == shape
                    for t, shape in zip(states, shapes)):
                raise ValueError(
                    f"The get_initial_state(batch_size) of RNN cell \"{cell.name}\" must "
                    f"return {len(shapes)} tensor(s) of shapes {shapes} made from batch_size "
                    f"(ops.zeros((batch_size, size)), ...). Received: {states!r}")
            outputs += states
        return self._model([seq], outputs, "initial_state")

    @staticmethod
    def _splice(b, model_where, sources):
        """The model's engine nodes appended to b, its inputs read from `sources`: the
        sources of its outputs."""
        model, where = model_where
        sources = [_source(s) for s in sources]
        if model is None:
            return [sources[k] for _, k in where]
        n = len(sources)
        specs, added = [None] * n, []
        outs = model._emit_engine_nodes(specs, list(range(n)), b.param_index, added)
        if added:
            raise ValueError(f"densitron's RNN takes no add_loss in a cell's call(). Received: "
                             f"a loss added by the call of \"{model.name}\"")
        base = len(b.items)

        def source(i):
            return sources[i] if i < n else ("node", base + i - n)

        for op, ins, *rest in specs[n:]:
            b.items.append(([source(i) for i in ins], (op, *rest)))
        return [sources[k] if kind == "in" else source(outs[k]) for kind, k in where]

    def unroll(self, b, node, x, states, mask):
        rnn = self.rnn
        shape = node.inputs[0].shape
        steps, size, u = int(shape[1]), int(np.prod(shape[2:])), rnn.units
        last = int(shape[-1])
        if states:
            state = list(states)
        else:  # (the cells' get_initial_state, or zeros)
            given = self._splice(b, self.initial, [b.pick(x, range(size), last=last)]) \
                if self.initial is not None else []
            state = []
            for cell, sizes in zip(self.cells, self.cell_sizes):
                if callable(getattr(cell, "get_initial_state", None)):
                    state, given = state + given[:len(sizes)], given[len(sizes):]
                else:
                    state += [b.pick(x, [-1] * n) for n in sizes]
        kept = None
        if mask is not None:
            kept = b.kept_steps(mask, steps)
            at = self.masked_output
            if not rnn.unroll and not rnn.zero_output_for_mask and (
                    at is None or self.sizes[at] != u):
                raise ValueError(
                    f"Layer \"{rnn.name}\": a masked step outputs the cell's previous first "
                    f"state (Keras's loop; a stack's whose first cell has a list of states: its "
                    f"last cell's first), which needs a state of the output's size {u} there. "
                    f"Received: state_size={rnn.state_size!r}")
        outs, prev = [], None
        order = range(steps - 1, -1, -1) if rnn.go_backwards else range(steps)
        for t in order:
            x_t = b.pick(x, range(t * size, (t + 1) * size), last=last)
            out, *new = self._splice(b, self.model, [x_t, *state])
            if kept is not None:
                if rnn.unroll:  # (Keras's unrolled loop: the previous output, zeros first)
                    out = b.blend(b.pick(kept, [t] * u), out, prev, u)
                elif rnn.zero_output_for_mask:
                    out = b.merge(_MUL, b.pick(kept, [t] * u), out, u)
                else:
                    out = b.blend(b.pick(kept, [t] * u), out, state[self.masked_output], u)
                new = [b.blend(b.pick(kept, [t] * n), a, s, n)
                       for a, s, n in zip(new, state, self.sizes)]
            state, prev = new, out
            outs.append(out)
        out = outs[-1]
        if rnn.return_sequences:
            out = b.add(node_spec(_CONCAT, steps * u, u, iattrs=[1]), *outs)
        results = [out, *state] if rnn.return_state else [out]
        # (each an engine node of the call's own: an input passed through, copied)
        return [s if isinstance(s, int) else s[1] if s[0] == "node" else
                b.add(node_spec(_RESHAPE, w, w), s)
                for s, w in zip(results, [steps * u if rnn.return_sequences else u,
                                          *self.sizes])]


# --- Keras's ConvLSTM1D, ConvLSTM2D and ConvLSTM3D --------------------------------------------
class _Spliced(_Builder):
    """A _Builder that also takes another layer's _engine_subgraph items as a black box."""

    def splice(self, subgraph, src):
        """The items of (items, outputs) (an _engine_subgraph's, its input ("in", 0) read
        from `src`) appended: the source of its output."""
        items, outputs = subgraph
        base = len(self.items)
        for sources, spec in items:
            self.items.append(([src if s == ("in", 0) else ("node", s[1] + base)
                                for s in sources], spec))
        return ("node", outputs[0] + base)


class _ConvLSTM(_RNN):
    """What ConvLSTM1D/2D/3D share: LSTM's step (gates i, f, c, o) with convolutions: each
    step's input by kernel (kernel_size + (channels, 4·filters), with strides, padding and
    dilation; plus bias), the state h by recurrent_kernel (kernel_size + (filters,
    4·filters), strides 1, "same" padding), both run by the convolution layers' own engine
    nodes (Conv1D/2D/3D's _engine_subgraph); states h and c of the convolution's output
    shape. Masks and Bidirectional are refused."""

    rank = None
    _gates = 4
    _states = 2
    _cell_name = "conv_lstm_cell"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, **kwargs):
        from densitron.layers import convolutional as conv

        unroll = kwargs.pop("unroll", False)
        zero_output_for_mask = kwargs.pop("zero_output_for_mask", False)
        Layer.__init__(self, activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or \
                filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly "
                             f"positive value. Received: filters={filters!r}")
        _cell_arguments(self, int(filters), activation, use_bias, kernel_initializer,
                        recurrent_initializer, bias_initializer, kernel_regularizer,
                        recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed)
        self.filters = self.units
        self.kernel_size = conv.standardize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = conv.standardize_tuple(strides, self.rank, "strides")
        self.dilation_rate = conv.standardize_tuple(dilation_rate, self.rank, "dilation_rate")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError("The `padding` argument must be one of {'valid', 'same'}. "
                             f"Received: padding={padding!r}")
        self.padding = padding.lower()
        self.data_format = conv.standardize_data_format(data_format)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("Specifying `strides > 1` is not compatible with "
                             "`dilation_rate > 1`. Please provide `strides=1` or "
                             f"`dilation_rate=1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.recurrent_activation = self._activation("recurrent_activation",
                                                     recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self._loop_arguments(return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)

    # --- shapes ------------------------------------------------------------------------------
    def _step_conv(self, recurrent=False):
        """The convolution layer (never built: its weights are this layer's) whose engine
        nodes compute a step's input's (or, `recurrent`, the state's) product, 4·filters
        channels."""
        from densitron.layers import convolutional as conv

        layer = getattr(conv, f"Conv{self.rank}D")(
            4 * self.filters, self.kernel_size, strides=1 if recurrent else self.strides,
            padding="same" if recurrent else self.padding, data_format=self.data_format,
            dilation_rate=1 if recurrent else self.dilation_rate,
            use_bias=self.use_bias and not recurrent, name=f"{self.name}_step")
        layer.kernel = self.recurrent_kernel if recurrent else self.kernel
        layer.bias = None if recurrent else self.bias
        return layer

    def _state_shape(self, step_shape):
        """The states' shape (without the batch axis) for a step's input's shape."""
        from densitron.layers import convolutional as conv

        layer = getattr(conv, f"Conv{self.rank}D")(
            self.filters, self.kernel_size, strides=self.strides, padding=self.padding,
            data_format=self.data_format, dilation_rate=self.dilation_rate, name="shape")
        return tuple(layer.compute_output_shape((None, *step_shape))[1:])

    def _channels(self, step_shape):
        return int(step_shape[-1] if self.data_format == "channels_last" else step_shape[0])

    def _state_sizes(self):
        return [self._shape_of_states] * 2 if getattr(self, "_shape_of_states", None) \
            else [None] * 2

    def _check_inputs(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        seq = tuple(shapes[0])
        if len(seq) != self.rank + 3:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected ndim={self.rank + 3}, found ndim={len(seq)}. Full "
                             f"shape received: {seq}")
        if any(d is None for d in seq[1:]):
            raise ValueError(f"densitron's {type(self).__name__} unrolls the steps on its "
                             "engine, so it needs the number of steps and the steps' shape. "
                             f"Received: input shape {seq}")
        step = tuple(int(d) for d in seq[2:])
        self._shape_of_states = self._state_shape(step)
        if self.built and self._channels(step) != self.kernel.shape[-2]:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected {self.kernel.shape[-2]} channels. Received: input "
                             f"shape {seq}")
        for k, state in enumerate(shapes[1:]):
            if tuple(state)[1:] != self._shape_of_states:
                raise ValueError(f"Layer \"{self.name}\": initial state {k} must have shape "
                                 f"{_batched(self._shape_of_states)}. Received: shape "
                                 f"{tuple(state)}")

    def compute_output_shape(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        state = self._state_shape(tuple(int(d) for d in seq[2:]))
        return (seq[0], seq[1], *state) if self.return_sequences else (seq[0], *state)

    def _output_mask(self, node):
        if any(getattr(t, "_mask", None) is not None for t in node.inputs):
            raise ValueError(f"densitron's {type(self).__name__} takes no mask. Received: a "
                             f"masked input to layer \"{self.name}\"")

    # --- weights -----------------------------------------------------------------------------
    def build(self, input_shape):
        seq = input_shape[0] if isinstance(input_shape, list) else input_shape
        channels, f = self._channels(tuple(seq[2:])), self.filters
        self.kernel = self.add_weight((*self.kernel_size, channels, 4 * f),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            (*self.kernel_size, f, 4 * f), self.recurrent_initializer, name="recurrent_kernel",
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint)
        weights = [self.kernel, self.recurrent_kernel]
        if self.use_bias:
            self.bias = self.add_weight((4 * f,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
            LSTM._init_bias(self)  # (unit_forget_bias: ones for f)
            weights.append(self.bias)
        for w in weights:  # (Keras's paths: the cell's)
            w.path = f"{self.name}/{self._cell_name}/{w.name}"
        self.built = True

    # --- the engine's graph ------------------------------------------------------------------
    def _engine_subgraph(self, node, param_index):
        b = _Spliced(param_index)
        outputs = self._emit(b, node, ("in", 0), [("in", 1 + k)
                                                  for k in range(len(node.inputs) - 1)], None)
        return b.items, self._with_activity(b, outputs)

    def _emit(self, b, node, x, states, mask):
        step_shape = tuple(int(d) for d in node.inputs[0].shape[2:])
        steps, size = int(node.inputs[0].shape[1]), int(np.prod(step_shape))
        state_shape = self._state_shape(step_shape)
        width = int(np.prod(state_shape))
        f = self.filters
        # each gate's values in a (4·filters)-channel output, in the data format's layout
        full = np.arange(4 * width).reshape(
            (*state_shape[:-1], 4 * f) if self.data_format == "channels_last"
            else (4 * f, *state_shape[1:]))
        gate = [(full[..., q * f:(q + 1) * f] if self.data_format == "channels_last"
                 else full[q * f:(q + 1) * f]).ravel() for q in range(4)]
        x_conv, h_conv = self._step_conv(), self._step_conv(recurrent=True)
        x_node = _conv_node(step_shape, x_conv)
        h_node = _conv_node(state_shape, h_conv)
        drop_x = 0.0 < self.dropout < 1.0
        drop_h = 0.0 < self.recurrent_dropout < 1.0

        def product(conv, conv_node, src, n, rate, seed):
            """conv's 4·filters channels of src (n values); with dropout (one mask a gate
            and a sample, the same every step), each gate's from its own dropped copy."""
            last = int(conv_node.inputs[0].shape[-1])  # (the layout the convolution reads)
            if not 0.0 < rate < 1.0:
                src = b.add(node_spec(_RESHAPE, n, last), src)
                return b.splice(conv._engine_subgraph(conv_node, b.param_index), ("node", src))
            copies = b.add(node_spec(_DROPOUT, 4 * n, 4 * n, fattrs=[rate], iattrs=[seed]),
                           b.pick(src, list(range(n)) * 4))
            parts = [b.splice(conv._engine_subgraph(conv_node, b.param_index),
                              ("node", b.pick(copies, range(q * n, (q + 1) * n), last=last)))
                     for q in range(4)]
            order = np.empty(4 * width, np.int64)  # gate q's values from part q
            for q in range(4):
                order[gate[q]] = q * 4 * width + gate[q]
            joined = b.add(node_spec(_CONCAT, 16 * width, 16 * width, iattrs=[1]), *parts)
            return b.pick(joined, order, last=4 * width)

        h, c = (list(states) if states else [None, None])
        outs = []
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        for t in order:
            x_t = b.pick(x, range(t * size, (t + 1) * size))
            z = product(x_conv, x_node, ("node", x_t), size, self.dropout if drop_x else 0.0,
                        self._engine_seed)
            if h is not None:
                z = b.merge(_ADD, z, product(h_conv, h_node, _source(h), width,
                                             self.recurrent_dropout if drop_h else 0.0,
                                             (self._engine_seed + 1) % 2**62), 4 * width)
            gates = b.act(z, self.recurrent_activation, 4 * width)
            i, o = b.pick(gates, gate[0]), b.pick(gates, gate[3])
            g = b.act(b.pick(z, gate[2]), self.activation, width)
            c_new = b.merge(_MUL, i, g, width)
            if c is not None:
                c_new = b.merge(_ADD, b.merge(_MUL, b.pick(gates, gate[1]), c, width), c_new,
                                width)
            h = b.merge(_MUL, o, b.act(c_new, self.activation, width), width)
            c = c_new
            outs.append(h)
        out = b.add(node_spec(_CONCAT, steps * width, width, iattrs=[1]), *outs) \
            if self.return_sequences else h
        return [out, h, c] if self.return_state else [out]

    # --- config ------------------------------------------------------------------------------
    def get_config(self):
        return {**Layer.get_config(self), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
                "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}


def _source(s):
    return s if isinstance(s, tuple) else ("node", s)


def _conv_node(in_shape, layer):
    """The node a convolution layer's _engine_subgraph reads: its input's and output's
    shapes (with the batch axis)."""
    import types

    shape = (None, *in_shape)
    return types.SimpleNamespace(
        inputs=[types.SimpleNamespace(shape=shape)],
        outputs=[types.SimpleNamespace(shape=tuple(layer.compute_output_shape(shape)))])


class ConvLSTM1D(_ConvLSTM):
    """Keras's ConvLSTM1D: steps of (steps, channels) (channels_last)."""

    rank = 1


class ConvLSTM2D(_ConvLSTM):
    """Keras's ConvLSTM2D: steps of (rows, cols, channels) (channels_last)."""

    rank = 2


class ConvLSTM3D(_ConvLSTM):
    """Keras's ConvLSTM3D: steps of (dim1, dim2, dim3, channels) (channels_last)."""

    rank = 3
