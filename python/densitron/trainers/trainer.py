"""compile / fit / evaluate / predict. Python owns the loop over epochs and the callbacks; the
engine runs whole runs of batches per call (forward, loss, backward, update, metrics) with the
GIL released, so Python's cost is per call, not per batch."""

import collections
import math
import time

import numpy as np

from densitron import _core
from densitron._checks import is_number
from densitron import losses as losses_mod
from densitron import config as config_mod
from densitron import metrics as metrics_mod
from densitron import optimizers as optimizers_mod
from densitron.optimizers import schedules as schedules_mod
from densitron.callbacks import Callback, CallbackList
from densitron.callbacks.callback import TRAIN_BATCH_HOOKS
from densitron.trainers import data as data_mod
from densitron.trainers import sources
from densitron.utils.dataset import unpack
from densitron.utils.io_utils import print_msg
from densitron.utils.progbar import Progbar
from densitron.utils.rng import global_generator

# Batches are grouped into engine calls of about this long: the progress bar refreshes at most
# every 0.05 s; silent runs use longer calls, still short enough for Ctrl-C to stop promptly.
_CALL_SECONDS_VERBOSE = 0.05
_CALL_SECONDS_SILENT = 0.25
# Weights and optimizer slots up to this many values are copied before fit's first step, to
# be restored if the engine meets a NaN in the inputs partway (64 MB).
_SNAPSHOT_FLOATS = 16 << 20
# An output's Keras mask that no layer of the model (nor of a model nested in it) made (set by
# hand), among Functional's engine output masks (a node index, or -1 for none): refused by the
# loss and metrics it would weigh.
_FOREIGN_MASK = -2


# One output spec of the engine, in the order the binding's compile reads it (bind_graph.cc):
# the node, loss id, loss weight, target values a sample, metric specs, the loss's argument,
# the focal losses' extra arguments, ignore_class, and for a loss or metric function's values
# the model output they belong to (else -1), whether its sample weights apply, and the MathOps
# applied to the batch's scalar of a function that reduced the batch itself, the loss's
# reduction, and the engine node of Keras's mask on the output (or -1).
_EngineOutput = collections.namedtuple(
    "_EngineOutput", "node loss weight target_width metrics param extra ignore_class loss_of "
                     "weighted tail reduction mask", defaults=(0, -1))


# (model class, Keras step hooks) -> the hooks the class's own code defines
_CUSTOM_STEPS = {}


def _losses_per_output(loss, names):
    """One loss object per output from a single loss, a list (one per output) or a dict; an
    entry None is an output that takes no loss (Keras's: its targets may be None)."""
    def get(v):
        return losses_mod._NoLoss() if v is None else losses_mod.get(v)

    if isinstance(loss, dict):
        unknown = [k for k in loss if k not in names]
        missing = [k for k in names if k not in loss]
        if unknown or missing:
            raise ValueError(f"`loss` as a dict needs exactly one entry per output {names}. "
                             f"Received: loss={loss!r}")
        out = [get(loss[k]) for k in names]
    elif isinstance(loss, (list, tuple)):
        if len(loss) != len(names):
            raise ValueError(f"`loss` as a list must have one entry per output ({len(names)}). "
                             f"Received: loss={loss!r}")
        out = [get(v) for v in loss]
    else:
        return [losses_mod.get(loss) for _ in names]
    if all(isinstance(v, losses_mod._NoLoss) for v in out):
        raise ValueError("At least one output needs a loss (or give the losses by add_loss "
                         f"with compile(loss=None)). Received: loss={loss!r}")
    return out


_PROFILE_ROWS = [
    ("gemm", "GEMM (Dense and convolutions, forward and backward)"),
    ("elementwise", "elementwise ops and activations"),
    ("loss", "loss and metrics"),
    ("optimizer", "optimizer and regularization"),
    ("gather", "data gathering (batch rows, targets)"),
    ("wait", "waiting for the other threads (load imbalance)"),
    ("scheduling", "engine scheduling (barriers, prefetch, set-up)"),
    ("overhead", "framework overhead (Python, bindings, callbacks)"),
]


def _profile_report(engine, wall, steps, print_it):
    """Seconds per category over the training loop, as thread 0 spent them. scheduling = the
    engine's runs less their categories; overhead = wall time outside the engine's runs."""
    report = dict(engine)
    waits = report.pop("barrier_waits")
    barriers = report.pop("barriers")
    run = report.pop("run")
    report["scheduling"] = max(0.0, run - sum(report.values()))
    report["overhead"] = max(0.0, wall - run)
    report["barrier_waits"] = [w for w in waits if w > 0.0]
    report["barriers"] = barriers
    report["total"] = wall
    report["steps"] = steps
    if print_it:
        print_msg(f"Step profile: {steps} steps, {wall:.3f} s "
                  f"({wall / max(steps, 1) * 1e6:.1f} us/step)")
        for key, label in _PROFILE_ROWS:
            sec = report[key]
            print_msg(f"  {label:<50} {sec:8.4f} s {100 * sec / max(wall, 1e-12):5.1f}% "
                      f"{sec / max(steps, 1) * 1e6:8.1f} us/step")
        if report["barrier_waits"]:
            waits = ", ".join(f"{w / max(steps, 1) * 1e6:.1f}" for w in report["barrier_waits"])
            print_msg(f"  (threads waiting for each other, us/step per thread: {waits}; thread 0's "
                      f"is the waiting row above; {barriers / max(steps, 1):.1f} barriers a step)")
    return report


def _validates(epoch, validation_freq):
    """Whether fit validates after `epoch` (0-based): every validation_freq epochs, or after
    the epochs a list names (1-based), as Keras's _should_eval."""
    if isinstance(validation_freq, (list, tuple)):
        return epoch + 1 in validation_freq
    return (epoch + 1) % validation_freq == 0


def _check_output_keys(value, names, arg):
    """Keras's error for a dict by output name holding a key no output has."""
    extra = [k for k in value if k not in names]
    if extra:
        missing = [k for k in names if k not in value]
        raise ValueError(f"dictionary key mismatch; expected key(s): {sorted(names)}, got "
                         f"key(s): {sorted(map(str, value))}, missing key(s): {missing}, "
                         f"extra key(s): {extra}. Received: {arg}={value!r}")


def _check_steps_per_execution(value):
    """compile's steps_per_execution: an int >= 1 (a bool as its int, as Keras's range()
    takes it)."""
    if isinstance(value, (int, np.integer)) and value >= 1:
        return int(value)
    raise ValueError("`steps_per_execution` must be a positive integer. "
                     f"Received: steps_per_execution={value!r}")


def _joined(parts):
    """predict's outputs of several batches (arrays, lists or dicts of them) joined by rows."""
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if isinstance(parts[0], list):
        return [np.concatenate(o) for o in zip(*parts)]
    return np.concatenate(parts)


def _user_callbacks(callbacks):
    """The `callbacks` argument as a new list, each checked to be a Callback (a single
    Callback is a list of it, as Keras's CallbackList flattens it)."""
    if isinstance(callbacks, Callback):
        return [callbacks]
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError("`callbacks` must be a list of densitron.callbacks.Callback instances. "
                        f"Received: callbacks={callbacks!r}")
    cbs = list(callbacks or [])
    for c in cbs:
        if not isinstance(c, Callback):
            raise TypeError("`callbacks` must be a list of densitron.callbacks.Callback "
                            f"instances. Received: {c!r} of type {type(c).__name__}")
    return cbs


def _check_one_weighting(class_weight, sample_weight):
    if class_weight is not None and sample_weight is not None:
        raise ValueError("You cannot use `class_weight` and `sample_weight` at the same time. "
                         "Received: both")


class Trainer:
    """Mixed into Functional: the Keras training API."""

    def _init_trainer(self):
        self.compiled = False
        self.run_eagerly, self.jit_compile, self.steps_per_execution = False, True, 1
        self.optimizer = None
        self.loss = None
        self.history = None
        self.stop_training = False
        self._compile_metrics = None
        self._engine_compiled = False

    # --- compile -------------------------------------------------------------------------
    def _refuse_custom_steps(self, names):
        """A ValueError when a Model subclass of the user's defines any of these Keras hooks
        (train_step, ...): densitron's engine runs whole steps, so they would not run."""
        key = (type(self), names)
        own = _CUSTOM_STEPS.get(key)
        if own is None:  # (once a class: predict on a row takes microseconds)
            own = _CUSTOM_STEPS[key] = [
                name for name in names
                if any(name in cls.__dict__ for cls in type(self).__mro__
                       if not cls.__module__.startswith("densitron"))]
        if own:
            raise ValueError(
                "densitron runs each training, evaluation and prediction step whole in its "
                "engine, so a Model subclass's own step methods would not run: write the loss "
                "as a loss function or Loss subclass, extra terms with add_loss in a layer's "
                "call(), metrics as metric functions. Received: "
                f"{type(self).__name__} defining {', '.join(own)}")

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Keras's compile. One that raises (an unknown loss, optimizer or metric, bad loss
        weights) leaves the model as it was: its previous compile, optimizer and state."""
        before = dict(self.__dict__)
        try:
            self._compile(optimizer, loss, loss_weights, metrics, weighted_metrics)
            # (recorded as Keras does; densitron's engine runs every step either way)
            self.run_eagerly = bool(run_eagerly)
            self.jit_compile = True if jit_compile == "auto" else bool(jit_compile)
            self.steps_per_execution = _check_steps_per_execution(steps_per_execution)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _compile(self, optimizer, loss, loss_weights, metrics, weighted_metrics):
        self._refuse_custom_steps(("train_step", "test_step", "predict_step", "compute_loss",
                                   "compute_metrics"))
        for arg, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple, dict)):
                raise ValueError(f"Expected `{arg}` argument to be a list, tuple, or dict. "
                                 f"Received instead: {arg}={value!r} of type {type(value)}")
        optimizer = optimizers_mod.get(optimizer)
        # The same optimizer object again (compile(optimizer=model.optimizer), or the instance
        # given before) keeps its state, as Keras's variables do: its step count and slots go
        # on in the new compile. Another one starts afresh.
        same = optimizer is self.optimizer and self.optimizer is not None
        if same:
            self._compile_engine_again()  # (stashes the state for the next engine compile)
        else:
            self.__dict__.pop("_pending_optimizer_state", None)
        self.optimizer = optimizer
        self.loss = loss
        self._pending_loss_weights = loss_weights
        # a Metric class is instantiated here, once: the logs and a saved config then name the
        # same object
        def instantiate(m):  # (and a metric function's name looked up now, as load_model's
            # custom_objects are in scope only while it compiles)
            return metrics_mod.get(m) if isinstance(m, type) or metrics_mod.is_custom(m) else m

        self._compile_metrics = metrics_mod.map_structure(metrics, instantiate)
        self._compile_weighted_metrics = metrics_mod.map_structure(weighted_metrics, instantiate)
        self.compiled = True
        self._engine_compiled = False
        self.__dict__.pop("_compiled_losses", None)
        self.__dict__.pop("_metric_logs", None)  # (Keras's compiled loss and metrics: unbuilt)
        if self.built:
            self._resolve_losses()

    def _resolve_losses(self):
        names = self._output_names
        if self.loss is None:  # every loss from add_loss (checked when the engine compiles)
            losses = [losses_mod._NoLoss() for _ in names]
        else:
            losses = _losses_per_output(self.loss, names)
        weights = self._pending_loss_weights
        if weights is None:
            weights = [1.0] * len(names)
        elif isinstance(weights, dict):
            _check_output_keys(weights, names, "loss_weights")
            weights = [weights.get(k, 1.0) for k in names]
        else:
            weights = list(weights) if isinstance(weights, (list, tuple)) else [weights]
            if len(weights) != len(names):
                raise ValueError(f"`loss_weights` must have one entry per output ({len(names)}). "
                                 f"Received: loss_weights={self._pending_loss_weights!r}")
        if not all(is_number(w) for w in weights):
            raise ValueError("`loss_weights` must be numbers, one per output (a list or a dict "
                             "by output name; compile's third argument: pass metrics=[...] by "
                             f"name). Received: loss_weights={self._pending_loss_weights!r}")
        self._compiled_losses = losses
        self._loss_weights = [float(w) for w in weights]

    def _metrics_per_output(self, metrics, arg="metrics"):
        """Keras 3's reading of compile's metrics: for one output, every metric given (a
        dict's values whatever their keys); for several, a dict by output name (some may be
        left out) or a list or tuple of one entry per output (a metric or a list of them)."""
        names = self._output_names
        if not metrics:
            return [[] for _ in names]
        if len(names) == 1:
            def flat(m):  # (Keras's tree.flatten: nested lists and dicts' values)
                if metrics_mod.is_one(m):
                    return [m]
                if isinstance(m, dict):
                    return [x for v in m.values() for x in flat(v)]
                if isinstance(m, (list, tuple)):
                    return [x for v in m for x in flat(v)]
                return [] if m is None else [m]

            return [flat(metrics)]
        if isinstance(metrics, dict):
            _check_output_keys(metrics, names, arg)
            per_output = [metrics.get(k) or [] for k in names]
        elif isinstance(metrics, (list, tuple)) and len(metrics) == len(names):
            per_output = [m or [] for m in metrics]
        else:
            raise ValueError(
                f"For a model of {len(names)} outputs, `{arg}` is a dict by output name "
                f"({names}) or a list with one entry per output (a metric or a list of "
                f"metrics), as Keras reads it. Received: {arg}={metrics!r}")
        return [[m] if metrics_mod.is_one(m) else list(m) for m in per_output]

    def _resolve_metrics(self, ys_raw_shapes):
        """Resolves metric names against the first targets seen, as Keras does. Weighted
        metrics (sample weights applied, divided by their sum) take their plain name unless a
        metric has it, then "weighted_" before it, as Keras names them."""
        names = self._output_names
        plain = self._metrics_per_output(self._compile_metrics)
        weighted = self._metrics_per_output(getattr(self, "_compile_weighted_metrics", None),
                                             "weighted_metrics")
        prefix = [f"{n}_" if len(names) > 1 else "" for n in names]
        taken = {prefix[k] + metrics_mod.display_name(m)
                 for k in range(len(names)) for m in plain[k]}
        # per logged metric: (name, output, weighted, its first engine sum, Metric._post)
        self._metric_logs = []
        self._metric_object_names = []  # (per log, its metric's own name, as Keras's objects)
        self._metric_directions = {}  # (the monitors' mode="auto": see metrics.direction)
        self._traced_metrics = []  # (output, weighted, MeanMetricWrapper): traced into nodes
        specs = []
        engine_index = 0  # the engine's metric sums run over every output's specs in order
        for k in range(len(names)):
            shape = ys_raw_shapes[k]
            ndim = len(shape)
            last = shape[-1] if ndim > 1 else 1
            out_specs = []
            for is_weighted, out_metrics in ((False, plain[k]), (True, weighted[k])):
                for m in out_metrics:
                    display, engine_specs, post = metrics_mod.resolve(
                        m, self._compiled_losses[k], ndim, last, len(self._output_shapes[k]) + 1,
                        self._output_last[k])
                    name = prefix[k] + display
                    target_values = math.prod(shape[1:])
                    if (any(metrics_mod.reads_dense_targets(s) for s in engine_specs)
                            and target_values != math.prod(self._output_shapes[k])):
                        raise ValueError(
                            f"Metric {display!r} compares targets and predictions value by "
                            f"value: they must have the same shape. target.shape={shape}, "
                            f"output.shape={(None, *self._output_shapes[k])}. Received: y "
                            f"with shape {shape}")
                    ids = math.prod(self._output_shapes[k]) // self._output_last[k]
                    if (not all(metrics_mod.reads_dense_targets(s) for s in engine_specs)
                            and target_values != ids):
                        raise ValueError(
                            f"Metric {display!r} reads one integer class id per row: targets of "
                            f"shape {(None, *self._output_shapes[k][:-1])}, or with a last "
                            f"axis of 1, for an output of shape "
                            f"{(None, *self._output_shapes[k])}. Received: y with shape {shape}")
                    if is_weighted and name in taken:
                        name = prefix[k] + "weighted_" + display
                    if name in (entry[0] for entry in self._metric_logs):
                        raise ValueError(f"The metric {name!r} is listed twice. Received: "
                                         f"metrics={self._compile_metrics!r}, weighted_metrics="
                                         f"{getattr(self, '_compile_weighted_metrics', None)!r}")
                    if isinstance(post, metrics_mod.MeanMetricWrapper):
                        self._traced_metrics.append((k, is_weighted, post))
                        post = ("traced", len(self._traced_metrics) - 1)
                    elif isinstance(post, metrics_mod.Metric):  # its own update_state
                        if is_weighted:
                            raise ValueError(
                                f"Metric {display!r} updates its own state, which densitron "
                                "traces without sample weights: list it in `metrics`. "
                                "Received: it among weighted_metrics")
                        trace = metrics_mod.StatefulTrace(
                            post, (None, *shape[1:]), (None, *self._output_shapes[k]))
                        post = ("state", trace, len(self._traced_metrics))
                        self._traced_metrics.extend((k, False, part) for part in trace.parts)
                    self._metric_logs.append((name, k, is_weighted, engine_index, post))
                    self._metric_object_names.append(display)
                    self._metric_directions[name] = metrics_mod.direction(m)
                    full = [metrics_mod.engine_spec(spec, is_weighted) for spec in engine_specs]
                    engine_index += sum(_core._metric_sums(s, self._output_last[k])
                                        for s in full)
                    out_specs.extend(full)
            specs.append(out_specs)
        return specs

    def _output_mask_node(self, k, traced, loss):
        """The engine node of Keras's mask on output k (-1 for none), which weighs its loss
        and its metrics as Keras's Loss.__call__ and MeanMetricWrapper do; what Keras 3.15
        computes otherwise is refused."""
        name = self._output_names[k]
        masks = self.__dict__.get("_engine_output_masks") or ()
        if k < len(masks) and masks[k] == _FOREIGN_MASK:
            if isinstance(loss, losses_mod._NoLoss) and \
                    all(j != k for _, j, *_ in self._metric_logs):
                return -1  # (nothing the mask would weigh)
            raise ValueError(
                f"The mask on output {name!r} was made by no layer of the model, so densitron "
                "cannot weigh the loss by it. Received: an output with a mask from elsewhere")
        if not self._masked_output(k):
            return -1
        if k in traced:
            raise ValueError(
                f"Output {name!r} carries a Keras mask, which weighs its loss; densitron "
                "weighs the losses of keras.losses by it, not a loss function written in "
                f"Python. Received: loss={loss!r}")
        if loss._ignored() is not None:
            raise ValueError(
                f"Output {name!r} carries a Keras mask, which densitron does not combine "
                f"with a loss's ignore_class yet. Received: ignore_class={loss._ignored()}")
        for log_name, j, _, _, post in self._metric_logs:
            if j == k and (callable(post) or isinstance(post, tuple) or post == "sqrt"):
                raise ValueError(
                    f"Output {name!r} carries a Keras mask, which Keras applies to the metrics "
                    "built on MeanMetricWrapper (accuracies, the losses as metrics); densitron "
                    "does not weigh other metrics by it yet. Received: metric "
                    f"{log_name!r}")
        return self._engine_output_masks[k]

    def _ensure_engine(self, y_parts):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model for training or "
                             "evaluation. Received: a model that is not compiled")
        self._ensure_built()
        if self._engine_compiled and self._param_trainable_flags() != self._compiled_trainable:
            # A layer frozen or unfrozen since the engine compiled (Keras asks for compile()
            # again; densitron compiles its engine again itself)
            self._compile_engine_again()
        if self._engine_compiled:
            return
        if not hasattr(self, "_compiled_losses"):
            self._resolve_losses()
        shapes = [np.shape(p) for p in y_parts]
        metric_specs = self._resolve_metrics(shapes)
        # Losses written in Python: traced into the engine's graph, rebuilt with their nodes
        # (and without them again after a compile with densitron's own losses).
        traced = {k: loss for k, loss in enumerate(self._compiled_losses)
                  if losses_mod.traced_function(loss) is not None}
        traced_metrics = [(k, m) for k, _, m in self._traced_metrics]
        # (and when a BatchNormalization was frozen or unfrozen since the graph was built)
        if traced or traced_metrics or getattr(self, "_loss_nodes", None) or \
                getattr(self, "_metric_nodes", None) or self._engine_modes() != self._graph_modes:
            self._make_engine_graph(traced, shapes, traced_metrics)
        outputs, loss_outputs = [], []
        for k, node in enumerate(self._engine_outputs):
            loss = self._compiled_losses[k]
            width = self._output_widths[k]
            if isinstance(loss, losses_mod.SparseCategoricalCrossentropy):
                width //= self._output_last[k]  # one class id per row of the last axis
            engine_id = loss._engine_id
            if k in traced:  # the output keeps its metrics; its loss node follows the outputs
                engine_id, width = losses_mod._NO_LOSS, math.prod(shapes[k][1:])
                loss_node, batch_reduced, tail = self._loss_nodes[k]
                loss_outputs.append(_EngineOutput(
                    loss_node, losses_mod._MEAN_OF_VALUES, self._loss_weights[k], 0, [],
                    float(batch_reduced), loss._extra, None, k, True, tail,
                    loss._engine_reduction()))
            elif any(m[0] == k for m in self._traced_metrics) or \
                    isinstance(loss, losses_mod._NoLoss):  # targets of any shape, or none
                width = math.prod(shapes[k][1:])
            mask = self._output_mask_node(k, traced, loss)
            outputs.append(_EngineOutput(node, engine_id, self._loss_weights[k], width,
                                         metric_specs[k], loss._param, loss._extra,
                                         loss._ignored(), -1, False, (),
                                         0 if k in traced else loss._engine_reduction(), mask))
        # where each output's loss sum, and each metric function's sum, comes back among the
        # engine's outputs (a metric function's values: loss weight 0, no gradient)
        self._loss_sum_index = list(range(len(outputs)))
        for j, spec in enumerate(loss_outputs):
            self._loss_sum_index[spec.loss_of] = len(outputs) + j
        outputs += loss_outputs
        # the losses layers gave to add_loss: added to the total loss, not weighted by samples
        self._added_loss_sum_index = []
        for node, batch_reduced, tail in getattr(self, "_added_loss_nodes", ()):
            self._added_loss_sum_index.append(len(outputs))
            outputs.append(_EngineOutput(node, losses_mod._MEAN_OF_VALUES, 1.0, 0, [],
                                         float(batch_reduced), losses_mod._FOCAL_DEFAULTS,
                                         None, 0, False, tail))
        self._metric_sum_index = []
        for j, (k, weighted, metric) in enumerate(self._traced_metrics):
            node, batch_reduced, tail = self._metric_nodes[j]
            if batch_reduced and weighted:
                raise ValueError(
                    f"Metric {metric.name!r} reduces the batch itself (one "
                    "value a batch, averaged over the batches as Keras's metric does); it cannot "
                    "be weighted by samples. Received: it among weighted_metrics")
            self._metric_sum_index.append(len(outputs))
            outputs.append(_EngineOutput(node, losses_mod._MEAN_OF_VALUES, 0.0, 0, [],
                                         float(batch_reduced), losses_mod._FOCAL_DEFAULTS,
                                         None, k, weighted, tail))
        # Keras's hinge losses, a loss with ignore_class and a loss function reducing the batch
        # itself look at each batch as a whole: evaluate keeps the user's batches.
        self._batch_dependent = getattr(self, "_batch_values", False) or any(
            losses_mod.depends_on_batch(o.loss) or o.ignore_class is not None or
            o.reduction != 0 or o.mask >= 0 or
            (o.loss == losses_mod._MEAN_OF_VALUES and o.param != 0.0) or
            any(not spec[0] and losses_mod.depends_on_batch(spec[3]) for spec in o.metrics)
            for o in outputs)
        if self.loss is None and not getattr(self, "_added_loss_nodes", None):
            raise ValueError(
                "No loss to compute: pass a `loss` to compile() (e.g. "
                "loss='categorical_crossentropy'), or give the losses with add_loss in a "
                "layer's call(). Received: loss=None and no add_loss")
        trainable = self._compiled_trainable = self._param_trainable_flags()
        self._graph.compile(outputs, self.optimizer._engine_config(self._params), trainable)
        self.optimizer._attach(self._graph, self._params, owner=self)
        self._engine_compiled = True
        state = self.__dict__.pop("_pending_optimizer_state", None)
        if state is not None:  # from a model file (saving.py)
            self._apply_optimizer_state(*state)

    def _compile_engine_again(self):
        """The engine compiles again at the next fit or evaluate (a layer frozen, unfrozen or
        given a new activation): the optimizer's state of the weights that trained goes on
        (_pending_optimizer_state, applied after that compile); a weight that starts training
        starts from zero slots, as Keras's would."""
        if not self._engine_compiled:
            return
        self._pending_optimizer_state = (self._graph.iterations, {
            (s, p): self._graph.get_slot(s, p).copy() for s, p, _, _ in self._slot_order()
            if self._compiled_trainable[p]})
        self._engine_compiled = False

    def _slot_order(self):
        """(engine slot, engine parameter, weight, Keras's slot name) of every optimizer slot
        array in Keras's order of the optimizer's variables (after iterations and the learning
        rate)."""
        self._ensure_built()
        index = {id(v): p for p, v in enumerate(self._params)}
        return [(s, index[id(v)], v, name) for block in self.optimizer._keras_slot_order()
                for v in self._graph_weights(trainable=True) for s, name in block
                if self.optimizer._slot_kept(s, v)]

    def _apply_optimizer_state(self, iterations, slots):
        """slots: {(engine slot, parameter): values} copied in, or the engine graph of
        another shape of this model, whose slot buffer this graph's becomes (no copy)."""
        self._graph.iterations = iterations
        if not isinstance(slots, dict):
            self._graph.share_optimizer_state(slots)
            return
        for (s, p), values in slots.items():
            self._graph.set_slot(s, p, values)

    def _optimizer_slots(self):
        """The optimizer's state as Keras orders its variables: (iterations, [arrays]) with the
        slots of each trainable weight (zeros before the engine first runs)."""
        pending = getattr(self, "_pending_optimizer_state", (0, {}))[1]

        def get(s, p, v):
            shape = self.optimizer._slot_shape(s, v.shape)  # (None: Keras's unused int32 0)
            if shape is None:
                return np.asarray(0, np.int32)
            size = int(np.prod(shape))
            if self._engine_compiled:
                return self._graph.get_slot(s, p)[:size].reshape(shape)
            values = (pending.get((s, p)) if isinstance(pending, dict)
                      else pending.get_slot(s, p))  # (another shape's graph)
            return (self.optimizer._slot_start(s, v, shape)
                    if values is None else values[:size].reshape(shape).copy())

        return (self.optimizer._steps_taken(),
                [get(s, p, v) for s, p, v, _ in self._slot_order()])

    def _set_optimizer_slots(self, iterations, arrays=None):
        """The inverse of _optimizer_slots (arrays None: every slot at its initial value),
        applied when the engine is compiled (now, if it is). Raises ValueError when the arrays
        do not fit this model and optimizer."""
        order = self._slot_order()
        # Keras's shape of each (an optimizer's factored slots are smaller than their weight;
        # None: a scalar Keras keeps and no update reads)
        shapes = [self.optimizer._slot_shape(s, v.shape) for s, _, v, _ in order]
        if arrays is None:
            arrays = [self.optimizer._slot_start(s, v, () if shape is None else shape)
                      for shape, (s, _, v, _) in zip(shapes, order)]
        if len(arrays) != len(order) or any(
                np.shape(a) != (() if shape is None else tuple(shape))
                for a, shape in zip(arrays, shapes)):
            raise ValueError(f"The saved optimizer state does not fit this model and optimizer: "
                             f"expected {len(order)} slot arrays. Received: {len(arrays)}")
        slots = {}
        for a, shape, (s, p, v, _) in zip(arrays, shapes, order):
            if shape is None:
                continue
            full = np.full(int(np.prod(v.shape)), self.optimizer._slot_initial_value(s),
                           np.float32)
            flat = np.asarray(a, np.float32).ravel()
            full[:flat.size] = flat
            slots[(s, p)] = full
        self.optimizer._iterations = int(iterations)
        if self._engine_compiled:
            self._apply_optimizer_state(int(iterations), slots)
        else:
            self._pending_optimizer_state = (int(iterations), slots)

    # --- logs ----------------------------------------------------------------------------
    def _masked_output(self, k):
        """Whether the compiled engine weighs output k by a Keras mask."""
        masks = self.__dict__.get("_engine_output_masks") or ()
        return k < len(masks) and masks[k] >= 0

    def _logs_from_totals(self, rows, loss_sum, output_loss_sums, metric_sums, weight_sums):
        logs = {"loss": float(loss_sum / rows)}
        for name, i in zip(self._logged_loss_names(), self._loss_sum_index):
            if name is not None:
                logs[f"{name}_loss"] = float(output_loss_sums[i] / rows)
        for name, k, weighted, i, post in self._metric_logs:
            if callable(post):  # Precision, AUC, R2Score...: from their own sums
                logs[name] = post(metric_sums[i:], rows)
                continue
            if isinstance(post, tuple) and post[0] == "state":  # a Metric's own update_state:
                # its result() from each traced assign_add's sum over the batches
                trace, first = post[1], post[2]
                sums = [self._metric_sum_index[first + j] for j in range(len(trace.parts))]
                logs[name] = trace.log([output_loss_sums[j] for j in sums], weight_sums[sums[0]])
                continue
            if isinstance(post, tuple):  # a metric function's values, summed by the engine over
                # the samples (or their weights), or over the batches for a batch's scalar
                i = self._metric_sum_index[post[1]]
                total = weight_sums[i]
                logs[name] = float(output_loss_sums[i] / total) if total != 0 else 0.0
                continue
            s = metric_sums[i]
            # A weighted metric is a weighted mean (0 when the weights sum to 0, as Keras);
            # on a masked output, weighted by the mask too (its sum after the outputs').
            total = weight_sums[k] if weighted else rows
            if not weighted and self._masked_output(k):
                total = weight_sums[len(weight_sums) // 2 + k]
            mean = float(s / total) if total != 0 else 0.0
            logs[name] = (math.sqrt(mean) if post == "sqrt" else 0.0 - mean if post == "neg"
                          else mean)  # (0.0 - mean: no -0.0 for a mean of 0)
        # (Keras 3's logs come sorted by name: history.history's keys too; its values are
        # float32 results as Python floats, 0.4791666567325592 where the sums give 23/48)
        logs = self._latest_logs = {k: float(np.float32(v)) if isinstance(v, float) else v
                                    for k, v in sorted(logs.items())}
        return logs

    @property
    def metrics_names(self):
        """Keras 3's: the names of model.metrics, [] before compile; "loss", then
        "compile_metrics" when compile was given metrics or weighted_metrics, then, once a run
        has met targets, the outputs' losses logged apart ("{name}_loss")."""
        if not self.compiled:
            return []
        names = ["loss"]
        if self._compile_metrics is not None or self._compile_weighted_metrics is not None:
            names.append("compile_metrics")
        if getattr(self, "_metric_logs", None) is not None:
            names += [f"{name}_loss" for name in self._logged_loss_names() if name is not None]
        return names

    def _logged_loss_names(self):
        """Per output, the name its loss is logged under (`{name}_loss`), or None: Keras logs
        the outputs' losses apart when two or more outputs have one (a loss None for an
        output gives it none)."""
        names = self._output_names
        losses = getattr(self, "_compiled_losses", None) or []
        has = [not isinstance(v, losses_mod._NoLoss) for v in losses] or [True] * len(names)
        if len(names) < 2 or (self.loss is not None and sum(has) < 2):
            return [None] * len(names)
        return [n if h or self.loss is None else None for n, h in zip(names, has)]

    @property
    def metrics(self):
        """Keras 3's model.metrics: [] before compile; then the loss tracker ("loss") and, when
        compile was given metrics, "compile_metrics" holding one per log (its `metrics`, empty
        until a run), then the outputs' losses logged apart (after a run). Their results are the latest run's logs (a fit epoch's, its validation's,
        an evaluate's): densitron's engine sums each run afresh and keeps no metric state."""
        if not self.compiled:
            return []
        return [CompileMetrics(self) if name == "compile_metrics" else LoggedMetric(self, name)
                for name in self.metrics_names]

    def get_metrics_result(self):
        """Keras's: each of model.metrics' latest results as Python floats ({"loss": 0.0}
        before a run; a ValueError then when compile was given metrics, as Keras's)."""
        out = {}
        for metric in self.metrics:
            if isinstance(metric, CompileMetrics):
                out.update({k: float(v) for k, v in metric.result().items()})
            else:
                out[metric.name] = float(metric.result())
        return out

    def reset_metrics(self):
        """Keras's reset_metrics: densitron's metrics start afresh with every fit, evaluate or
        batch call; the latest logs that model.metrics report go to zero (as Keras's reset
        metrics' results; before any run there are none)."""
        _zero_logs(self)

    def get_compile_config(self):
        """The arguments of `compile` in serializable form (Keras's get_compile_config), or
        None before compile."""
        from densitron import saving

        return saving._compile_config(self)

    def compile_from_config(self, config):
        """Compiles the model from `get_compile_config()`'s form."""
        from densitron import saving

        if not isinstance(config, dict) or "optimizer" not in config:
            raise ValueError("`config` must be a dict from get_compile_config(). "
                             f"Received: config={config!r}")
        saving._compile_saved(self, config, True, "the compile config")

    # --- fit -----------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None,
            validation_steps=None, validation_batch_size=None, validation_freq=1,
            profile=False):
        """Keras's fit. `profile=True` (densitron's own) measures where the training steps'
        time goes — GEMM, elementwise ops and activations, loss and metrics, optimizer, data
        gathering, waiting between threads, engine scheduling, framework overhead — and stores
        it in `history.profile` (printed unless verbose=0)."""
        epochs, verbose, initial_epoch = data_mod.bools_as_ints(epochs, verbose, initial_epoch)
        (batch_size, steps_per_epoch, validation_steps, validation_batch_size,
         validation_freq) = data_mod.bools_as_ints(batch_size, steps_per_epoch, validation_steps,
                                                   validation_batch_size, validation_freq,
                                                   false=False)
        epochs = config_mod.capped_epochs(epochs)
        steps_per_epoch = config_mod.capped_steps(steps_per_epoch)
        if sources.is_batch_source(x):
            return self._fit_source(x, y, epochs, verbose, callbacks, validation_split,
                                    validation_data, class_weight, sample_weight, initial_epoch,
                                    steps_per_epoch, validation_steps, validation_batch_size,
                                    validation_freq, profile, shuffle)
        _check_one_weighting(class_weight, sample_weight)
        self._check_fit_args(epochs, initial_epoch, validation_freq)
        data_mod.check_batch_size(batch_size)
        if validation_batch_size is None:  # (Keras's default: the training batch size)
            validation_batch_size = batch_size
        data_mod.check_batch_size(validation_batch_size, "validation_batch_size")
        steps_per_epoch = data_mod.check_steps(steps_per_epoch, "steps_per_epoch")
        validation_steps = data_mod.check_steps(validation_steps, "validation_steps")
        verbose = data_mod.check_verbose(verbose)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, np.floating)) or not 0 <= validation_split < 1:
            raise ValueError("`validation_split` must be a float in [0, 1). "
                             f"Received: validation_split={validation_split!r}")
        # The engine checks x for NaN as it gathers each batch's rows (stopping before a batch
        # that holds one) instead of a pass over all of x per call; unshuffled epochs gather
        # their rows in order, which costs less than that pass (784-64-64-10 at batch 32: an
        # epoch 10% faster than reading the rows in place after the pass).
        xs, ys, rows = self._prepare_xy(x, y, reject_x_nan=False)
        repeated = epochs - initial_epoch >= 2  # (sparse inputs pay off from two epochs)
        if repeated:
            xs = data_mod.sparsify_inputs(self, xs)
        sws = self._training_weights(class_weight, sample_weight, ys, rows)

        val = None
        if validation_data is not None:
            val = self._validation_arrays(validation_data, validation_steps)
            if repeated and not isinstance(val, sources.BatchSource):
                val = (data_mod.sparsify_inputs(self, val[0], "validation_data[0]"), *val[1:])
        elif validation_split:
            split_at = int(math.floor(rows * (1.0 - validation_split)))
            if split_at == 0 or split_at == rows:
                raise ValueError(
                    f"`validation_split` leaves no {'training' if split_at == 0 else 'validation'}"
                    f" samples. Received: validation_split={validation_split} with {rows} samples"
                )
            def cut(arrays, lo, hi):
                return None if arrays is None else [
                    a if a is None else a[lo:hi] for a in arrays]

            # (Keras's class weights weigh the training samples only; the held-out ones keep
            # their sample weights)
            split_sws = sws if class_weight is None else self._training_weights(
                None, sample_weight, ys, rows)
            val = (cut(xs, split_at, rows), cut(ys, split_at, rows),
                   cut(split_sws, split_at, rows))
            for k, a in enumerate(val[0]):
                data_mod._check_finite(a, data_mod.input_name(k, len(val[0])), split_at)
            xs, ys, sws = cut(xs, 0, split_at), cut(ys, 0, split_at), cut(sws, 0, split_at)
            rows = split_at
        val_batch = None
        if val is not None and not isinstance(val, sources.BatchSource):
            # Keras validates on the first `validation_steps` batches only, the same each time
            vrows = val[0][0].shape[0]
            val_batch = data_mod.batch_for_steps(validation_batch_size, validation_steps, vrows,
                                                 "validation_batch_size")
            val, _ = data_mod.head_for_steps(list(val), vrows, val_batch, validation_steps)

        # With steps_per_epoch, a pass over the (shuffled) rows runs on over the epochs, as
        # Keras's epoch iterator does: each epoch takes the next steps_per_epoch batches of it,
        # and ends early, with Keras's warning, where the pass runs out.
        batch_size = data_mod.batch_for_steps(batch_size, steps_per_epoch, rows)
        pass_batches = -(-rows // batch_size)
        steps = steps_per_epoch or pass_batches
        cb, history = self._callback_list(callbacks, verbose, epochs, steps)
        per_batch = cb.wants_batches()
        # (TerminateOnNaN: each run of batches ends after one whose loss is not finite)
        stops_on_nan = any(getattr(c, "_stops_on_nan", False) for c in cb.callbacks)
        if profile:
            self._graph.reset_profile()
            self._graph.set_profiling(True)
        train_seconds = 0.0
        total_steps = 0
        chunk = 8  # batches per engine call, adapted to the measured step time below
        spe = self.steps_per_execution
        in_order = None if shuffle else np.arange(rows, dtype=np.int64)
        pass_done = 0  # batches of the current pass trained
        perm = in_order

        def train_epoch(epoch):
            nonlocal train_seconds, total_steps, chunk, pass_done, perm
            epoch_start = time.perf_counter()
            if pass_done == 0:
                if isinstance(shuffle, str) and shuffle == "batch":
                    # Keras's shuffle="batch": the rows shuffled within batch-sized chunks
                    # of the data, the chunks in order (for data read in blocks).
                    keys = global_generator().random(rows)
                    perm = np.lexsort((keys, np.arange(rows) // batch_size)).astype(
                        np.int64, copy=False)
                elif shuffle:  # by the engine (NumPy's permutation took 0.5 ms of 60,000)
                    perm = _core._permutation(rows, int(global_generator().integers(2**63)))
            # (Keras runs whole executions of steps_per_execution batches: an epoch of
            # steps_per_epoch=5 at 3 a run trains 6, the pass permitting)
            limit = min(-(-steps // spe) * spe, pass_batches - pass_done)
            done, logs = 0, {}
            self._graph.stop_on_nonfinite_loss = stops_on_nan
            while done < limit:
                # (a stop asked before the epoch's first batch: Keras trains that one run)
                n = min(spe if per_batch or self.stop_training else chunk, limit - done)
                first = done
                if per_batch:
                    cb.on_train_batch_begin(done)
                t0 = time.perf_counter()
                self._schedule_ahead(n)
                *totals, nan = self._graph.train_batches(xs, ys, perm, batch_size,
                                                         pass_done + done, n, sws, done > 0)
                elapsed = time.perf_counter() - t0
                if nan is not None:
                    raise data_mod.engine_nan_error(xs, nan)
                if stops_on_nan:  # (the run stopped after a batch of NaN or infinite loss)
                    n = self._graph.last_batches_run
                done += n
                logs = self._logs_from_totals(*totals)  # the epoch's running totals
                # (a run's last batch as Keras numbers it, first + steps_per_execution - 1
                # also where the epoch ends sooner)
                cb.on_train_batch_end(first + spe - 1 if per_batch else done - 1, logs)
                target = _CALL_SECONDS_VERBOSE if verbose == 1 else _CALL_SECONDS_SILENT
                chunk = max(1, int(target / max(elapsed / n, 1e-7)))
                if self.stop_training:
                    break
            train_seconds += time.perf_counter() - epoch_start
            total_steps += done
            if done == limit < steps:
                data_mod.warn_ran_out()
            pass_done += done
            if pass_done >= pass_batches:
                pass_done = 0
            return logs, False

        self._train_epochs_or_restore(cb, initial_epoch, epochs, train_epoch, val, val_batch,
                           validation_freq, profile)
        if profile:
            self._graph.set_profiling(False)
            history.profile = _profile_report(self._graph.profile(), train_seconds, total_steps,
                                              print_it=verbose != 0)
        self.history = history
        return history

    def _train_epochs_or_restore(self, cb, initial_epoch, epochs, train_epoch, val, val_batch,
                                 validation_freq, profile=False):
        """_train_epochs; when the engine meets a NaN in the inputs partway (it checks each
        batch's rows as it gathers them, not the whole of x first), the weights and the
        optimizer's state go back to what they were before the first step, so a refused fit
        leaves the model as it found it. Kept only for models up to _SNAPSHOT_FLOATS values
        of weights and slots; a larger one keeps its training and the error says so."""
        snapshot = None  # (none for a model its first batch builds: nothing to go back to)
        if self.built and self._fit_state_floats() <= _SNAPSHOT_FLOATS:
            snapshot = (self.get_weights(), self._optimizer_slots())
        try:
            self._train_epochs(cb, initial_epoch, epochs, train_epoch, val, val_batch,
                               validation_freq, profile)
        except data_mod.EngineNaNError as e:
            if snapshot is None:
                raise data_mod.EngineNaNError(
                    f"{e.args[0]} (the model kept the training of the batches before it)"
                ) from None
            weights, (iterations, slots) = snapshot
            self.set_weights(weights)
            self._set_optimizer_slots(iterations, slots)
            raise

    def _fit_state_floats(self):
        """Values of the weights and of the optimizer's slots (of every weight, at most)."""
        size = sum(int(np.prod(w.shape)) for w in self.weights)
        return size * (1 + _core._optimizer_slot_count(self.optimizer._engine_config()))

    def _train_epochs(self, cb, initial_epoch, epochs, train_epoch, val, val_batch,
                      validation_freq, profile=False):
        """fit's epochs, for arrays and for batch sources alike: the callbacks' train and
        epoch hooks around train_epoch(epoch) -> (logs, last) (logs None: no batch was left to
        train, last: end after this epoch), and validation every validation_freq epochs (not
        profiled)."""
        self.stop_training = False
        cb.on_train_begin()
        logs = {}
        try:
            for epoch in range(self._restored_initial_epoch(initial_epoch), epochs):
                cb.on_epoch_begin(epoch)
                epoch_logs, last = train_epoch(epoch)
                if epoch_logs is None:
                    break
                logs = epoch_logs
                if val is not None and _validates(epoch, validation_freq):
                    if profile:  # the profile covers the training steps only
                        self._graph.set_profiling(False)
                    val_logs = self._validate(val, val_batch, cb)
                    if profile:
                        self._graph.set_profiling(True)
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                cb.on_epoch_end(epoch, logs)
                if self.stop_training or last:
                    break
        finally:  # (as Keras's: the weights take use_ema's averages, an error or not; not
            # before a first step, when there are none)
            if epochs > 0 and self.optimizer.iterations > 0:
                self.optimizer.finalize_variable_values(self.trainable_weights)
        cb.on_train_end(logs)

    def _schedule_ahead(self, steps):
        """A learning-rate schedule written in Python: its rates for the next `steps` updates
        (Keras calls it with the update count before each update), handed to the engine
        before the run that makes them."""
        schedule = getattr(self.optimizer, "_schedule", None)
        if schedule is None or not schedule._in_python:
            return
        first = self._graph.iterations
        self._graph.set_lr_table(first, schedules_mod.python_rates(schedule, first, steps))

    def _training_weights(self, class_weight, sample_weight, ys, rows):
        """The per-output sample weights of a training call: from class_weight or
        sample_weight (see _check_one_weighting), or None."""
        if class_weight is not None:
            return data_mod.class_weights_to_sample_weights(self, class_weight, ys)
        return data_mod.standardize_sample_weight(self, sample_weight, rows)

    def _restored_initial_epoch(self, initial_epoch):
        """The epoch fit starts from: a BackupAndRestore callback's restored epoch, set in its
        on_train_begin (Keras's model._initial_epoch), else `initial_epoch`; used once."""
        restored = self.__dict__.pop("_initial_epoch", None)
        return restored if restored else initial_epoch

    def _check_losses_train(self):
        """ValueError for a compiled loss that training cannot take (per-sample values);
        compile's losses as given (a model built on its first data has not resolved them)."""
        from densitron.layers.image_preprocessing import refuse_training

        refuse_training(self)  # (a random layer the engine cannot train with)
        given = self.loss
        parts = (list(given.values()) if isinstance(given, dict)
                 else list(given) if isinstance(given, (list, tuple)) else [given])
        for loss in parts:
            if hasattr(loss, "_check_trainable"):
                loss._check_trainable()

    def _check_fit_args(self, epochs, initial_epoch, validation_freq):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model for training. "
                             "Received: fit() on a model that is not compiled")
        self._check_losses_train()
        for arg, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{arg}` must be a non-negative integer. "
                                 f"Received: {arg}={value!r}")
        # Keras's validation_freq: validate every n epochs, or after the epochs listed
        # (1-based), a list or tuple of them
        freq = validation_freq
        every = not isinstance(freq, bool) and isinstance(freq, (int, np.integer))
        listed = isinstance(freq, (list, tuple)) and all(
            not isinstance(e, bool) and isinstance(e, (int, np.integer)) for e in freq)
        if not (every and freq >= 1 or listed):
            raise ValueError("Expected `validation_freq` to be a list or int >= 1. Received: "
                             f"validation_freq={validation_freq!r} of the type "
                             f"{type(validation_freq)}.")

    def _callback_list(self, callbacks, verbose, epochs, steps):
        """fit's callbacks in Keras's order, and its History: the user's callbacks, then a
        History and (when verbose) a ProgbarLogger unless the list holds its own, so the bar
        shows what the user's callbacks put in the logs (ReduceLROnPlateau's learning_rate)
        and prints after their messages."""
        cbs = CallbackList(_user_callbacks(callbacks), add_history=True,
                           add_progbar=bool(verbose), model=self, verbose=verbose,
                           epochs=epochs, steps=steps)
        return cbs, cbs._history

    def _validation_arrays(self, validation_data, validation_steps):
        """(x, y, sample_weight) arrays of `validation_data`, or a BatchSource of it."""
        if sources.is_batch_source(validation_data):
            return sources.BatchSource(validation_data, validation_steps, "validation_data",
                                       "validation_steps",
                                       steps_per_execution=self.steps_per_execution)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, "
                             "y_val, sample_weight_val), a PyDataset or a generator. Received: "
                             f"validation_data of type {type(validation_data).__name__}")
        vx = data_mod.standardize_x(self, validation_data[0], "validation_data[0]")
        vy = data_mod.standardize_y(self, validation_data[1], "validation_data[1]")
        vrows = data_mod.check_cardinality(vx, vy)
        vw = data_mod.standardize_sample_weight(
            self, validation_data[2] if len(validation_data) == 3 else None, vrows,
            "validation_data[2]")
        return (vx, vy, vw)

    def _validate(self, val, val_batch, cb):
        """Validation logs of arrays or of a BatchSource's batches, with the callbacks'
        on_test_* hooks around them, as Keras's fit runs its validation through evaluate."""
        cb.on_test_begin()
        if isinstance(val, sources.BatchSource):
            logs = self._evaluate_source(val, cb)
        elif cb.overrides("on_test_batch_begin", "on_test_batch_end"):
            rows = val[0][0].shape[0]
            logs = self._evaluate_by_batch(val[0], val[1], val[2], val_batch,
                                           -(-rows // val_batch), cb)
        else:
            logs = self._run_evaluate(val[0], val[1], val_batch, val[2])
        cb.on_test_end(logs)
        return logs

    def _batch_arrays(self, batch, arg, index, class_weight=None, engine_ready=False):
        """One batch of a source, batch `index` of its epoch, as the engine's arrays: xs, ys,
        sample weights, rows. x is not checked for NaN here: the engine checks its rows as it
        reads them. With `engine_ready` (an epoch's batches after its first), the model's
        build and engine are not checked again (a layer frozen or given another activation by
        a batch callback takes effect from the next epoch): 15-20 µs less a batch."""
        bx, by, bw = unpack(batch, arg)
        if by is None:
            raise ValueError(f"Each batch of `{arg}` must hold targets: (x, y) or (x, y, "
                             f"sample_weight). Received: a batch of x alone")
        if engine_ready and self._follows_data():
            # (a model with None dimensions follows each batch's lengths: a batch of other
            # lengths than the last runs the engine graph of those, compiled on first use)
            key = self.__dict__.get("_shape_key")
            self._follow_data(bx, arg)
            engine_ready = self.__dict__.get("_shape_key") == key
        try:
            xs, ys, rows = self._prepare_xy(bx, by, reject_x_nan=False,
                                            engine_ready=engine_ready)
            if class_weight is not None:
                if bw is not None:
                    raise ValueError("You cannot use `class_weight` with batches that hold "
                                     "sample weights. Received: both")
                sws = data_mod.class_weights_to_sample_weights(self, class_weight, ys)
            else:
                sws = data_mod.standardize_sample_weight(self, bw, rows)
        except ValueError as e:
            if not hasattr(e, "nan_at"):
                raise
            # A NaN in the targets or weights: named with its batch, and an EngineNaNError as
            # the engine's for x, so fit restores the model's state from before its first step
            raise data_mod.nan_error(*e.nan_at, data_mod.EngineNaNError, index) from None
        return xs, ys, sws, rows

    def _fit_source(self, x, y, epochs, verbose, callbacks, validation_split, validation_data,
                    class_weight, sample_weight, initial_epoch, steps_per_epoch,
                    validation_steps, validation_batch_size, validation_freq, profile,
                    shuffle):
        """fit on batches from a PyDataset or a generator: one engine call per batch (a
        PyDataset's in a new order each epoch with `shuffle`, as Keras; batch_size, which
        its batches hold, is left unused, as Keras leaves it)."""
        sources.reject_beside(y=y, sample_weight=sample_weight)
        if validation_split:
            raise ValueError("`validation_split` is only supported for arrays, not for a "
                             "PyDataset or a generator. Received: "
                             f"validation_split={validation_split!r}")
        self._check_fit_args(epochs, initial_epoch, validation_freq)
        if profile:
            raise ValueError("`profile=True` is supported for arrays only. Received: "
                             "profile=True with a PyDataset or a generator")
        verbose = data_mod.check_verbose(verbose)
        source = sources.BatchSource(x, steps_per_epoch, "x", "steps_per_epoch",
                                     shuffle=shuffle, stream=True,
                                     steps_per_execution=self.steps_per_execution)
        spe = self.steps_per_execution
        steps = source.steps
        if source.stream:  # (whole runs of steps_per_execution batches an epoch, as Keras)
            source.steps = -(-steps // spe) * spe
        val = None if validation_data is None else self._validation_arrays(validation_data,
                                                                           validation_steps)
        val_batch = data_mod.check_batch_size(validation_batch_size, "validation_batch_size")
        cb, history = self._callback_list(callbacks, verbose, epochs, steps)
        in_order = np.arange(0, dtype=np.int64)
        previous = None  # (the last epoch's training logs)

        def train_epoch(epoch):
            nonlocal in_order, previous
            totals, done, summing = None, 0, None
            # (the per-batch hooks and their logs only when a callback has them)
            hooks = cb.overrides(*TRAIN_BATCH_HOOKS)
            for batch in source.batches():
                xs, ys, sws, rows = self._batch_arrays(batch, "x", done, class_weight,
                                                       engine_ready=done > 0)
                if hooks and done % spe == 0:  # (hooks a run of steps_per_execution batches)
                    cb.on_train_batch_begin(done)
                self._schedule_ahead(1)
                # A model with None dimensions may run batches of several lengths, each on
                # its own engine graph: the epoch's totals are summed here rather than
                # continued by one graph.
                summed = self.__dict__.get("_dynamic", False)
                # Given a row order, the engine copies the batch's rows, checking them for
                # NaN on the way: less than a NaN pass over the batch before the engine reads
                # it in place (one read of x instead of two).
                if in_order.shape[0] != rows:
                    in_order = np.arange(rows, dtype=np.int64)
                # (the engine sums the epoch's totals, continuing them after its first batch)
                *step, nan = self._graph.train_batches(xs, ys, in_order, rows, 0, 1, sws,
                                                       done > 0 and not summed)
                if nan is not None:
                    raise data_mod.engine_nan_error(xs, nan, done)
                if summed:  # (from the totals one graph continued before, if any)
                    if summing is None and totals is not None:
                        summing = sources.add_totals(None, totals)
                    totals = summing = sources.add_totals(summing, step)
                else:
                    totals = step
                done += 1
                if done % spe == 0:  # (Keras stops between runs)
                    if hooks:
                        cb.on_train_batch_end(done - 1, self._logs_from_totals(*totals))
                    if self.stop_training:
                        break
            last = source.run_that_found_the_end(done)
            if totals is None:
                source.warn_ran_out()
                if source.iterator is None or previous is None:  # (a sequence fell to 0)
                    return None, True
                # Keras's epoch on an iterator that the last one spent: its first run begun,
                # nothing trained, the last epoch's logs again; the next epoch a new pass
                if hooks:
                    cb.on_train_batch_begin(last)
                return dict(previous), False
            logs = previous = self._logs_from_totals(*totals)
            if hooks and done % spe:  # (a last run cut short, numbered as a whole one)
                cb.on_train_batch_end(done - done % spe + spe - 1, logs)
            if hooks and last is not None:
                cb.on_train_batch_begin(last)
            cb.params["steps"] = cb.params["steps"] or done
            source.end_epoch()
            if source.short:  # (warned before the epoch's validation, as the arrays' fit)
                source.warn_ran_out()
            return logs, False

        self._train_epochs_or_restore(cb, initial_epoch, epochs, train_epoch, val, val_batch,
                           validation_freq)
        self.history = history
        return history

    def _evaluate_source(self, source, cb=None):
        """Logs of evaluate over a BatchSource's batches (with the callbacks' per-batch hooks
        when given)."""
        totals, spe, b = None, self.steps_per_execution, -1
        for b, batch in enumerate(source.batches()):
            xs, ys, sws, rows = self._batch_arrays(batch, source.arg, b)
            if cb is not None and b % spe == 0:  # (hooks a run of steps_per_execution)
                cb.on_test_batch_begin(b)
            *step, nan = self._graph.evaluate(xs, ys, self._inference_batch(rows), sws, True)
            if nan is not None:
                raise data_mod.engine_nan_error(xs, nan, b)
            totals = sources.add_totals(totals, step)
            if cb is not None and (b + 1) % spe == 0:
                cb.on_test_batch_end(b, self._logs_from_totals(*totals))
        if cb is not None and totals is not None and (b + 1) % spe:  # (a run cut short)
            cb.on_test_batch_end(b - b % spe + spe - 1, self._logs_from_totals(*totals))
        last = source.run_that_found_the_end(b + 1)
        if cb is not None and last is not None:
            cb.on_test_batch_begin(last)
        source.end_epoch()
        if source.short and totals is not None:
            source.warn_ran_out()
        if totals is None:
            raise ValueError(f"`{source.arg}` gave no batches to evaluate. Received: an "
                             "exhausted generator")
        return self._logs_from_totals(*totals)

    def _prepare_xy(self, x, y, reject_x_nan=True, engine_ready=False):
        """Validates and converts x and y once; compiles the engine on first use (or, with
        `engine_ready`, takes it as it is: an engine the same fit call checked)."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model for training or "
                             "evaluation. Received: a model that is not compiled")
        if not engine_ready:
            self._ensure_built_from(x)
        xs = data_mod.standardize_x(self, x, reject_nan=reject_x_nan)
        if not hasattr(self, "_compiled_losses"):
            self._resolve_losses()
        if self.loss is None and not getattr(self, "_compile_metrics", None) and \
                not getattr(self, "_compile_weighted_metrics", None):
            # add_loss's losses only: no targets to read (given ones are left unread, as
            # Keras leaves them when nothing compiled reads them)
            rows = data_mod.check_cardinality(xs, [])
            ys = [np.zeros((rows, 0), np.float32) for _ in self._output_names]
            if not engine_ready:
                self._ensure_engine(list(ys))
            return xs, ys, rows
        ys = data_mod.standardize_y(self, y)
        rows = data_mod.check_cardinality(xs, ys)
        if not engine_ready:  # (the engine compiles from the targets as given)
            y_parts = (data_mod._split_structure(y, self._output_names, "y")
                       if y is not None else [])
            # (the targets of an output without a loss, left out or unread: zeros of its
            # shape)
            unread = data_mod.unread_targets(self)
            self._ensure_engine([ys[k] if p is None or k in unread else p
                                 for k, p in enumerate(y_parts)])
        return xs, ys, rows

    def _added_loss_values(self, x):
        """Each loss the model's layers gave to add_loss, its value on x as one batch, in the
        order the layers added them (Keras's layer.losses after a call on arrays); the model
        is compiled for it (loss=None) if it was not."""
        if not getattr(self, "_added_loss_nodes", None):
            return []
        if not self.compiled:
            self.compile(optimizer="sgd", loss=None)
        xs, ys, rows = self._prepare_xy(x, None, reject_x_nan=False)
        rows, _, output_loss_sums, _, _, _ = self._graph.evaluate(xs, ys, max(rows, 1), None,
                                                                  False)
        return [float(output_loss_sums[i] / max(rows, 1)) for i in self._added_loss_sum_index]

    def _compute_gradients(self, x, y, return_loss=False):
        """The gradient of the training-mode loss on (x, y) as one batch, per weight; no
        update, and BatchNormalization's moving statistics stay as they are."""
        xs, ys, _ = self._prepare_xy(x, y)
        (rows, loss_sum, _, _, _), grads = self._graph.gradients(xs, ys)
        return (grads, loss_sum / rows) if return_loss else grads

    # --- evaluate ------------------------------------------------------------------------
    def _inference_batch(self, batch_size, targets=True):
        """Rows per engine pass in evaluate/predict. Inference treats every row on its own
        (no batch statistics, no dropout, each output summed in a fixed order), so results do
        not depend on how rows are grouped: small user batches are grouped into larger passes,
        which run the GEMMs far more efficiently, within ~32 MB of activations. 1024 rows, not
        512: predict 3-6% faster from 64 to 512 units wide (each pass packs every kernel once),
        neutral at 32; 2048 gains no more. Up to 4096 with a kernel of more than 2^19 values,
        whose packing reads it from beyond L2 every pass: 784-1024-1024-10 (2944 rows) 1-8%
        faster, 0.495-0.502 s against 0.502-0.546 s. Not for a hinge loss or metric, which
        reads each batch's targets as a whole (with `targets`: evaluate, not predict), a
        batch's mean or sum in a loss or metric function (evaluate) or in the model itself
        (predict too)."""
        if (targets and getattr(self, "_batch_dependent", False)) or \
                getattr(self, "_batch_values_in_model", False):
            return batch_size
        values_per_row = sum(math.prod(n.outputs[0].shape[1:]) for n in self._run_nodes())
        cap = max(1, (32 << 20) // (4 * max(values_per_row, 1)))
        wide = any(len(w.shape) == 2 and math.prod(w.shape) > 1 << 19 for w in self.weights)
        return max(batch_size, min(4096 if wide else 1024, cap))

    def _run_evaluate(self, xs, ys, batch_size, sample_weights=None, check_x_nan=False):
        """check_x_nan: the engine checks x's rows for NaN as it reads them (ValueError)."""
        *totals, nan = self._graph.evaluate(xs, ys, self._inference_batch(batch_size),
                                            sample_weights, check_x_nan)
        if nan is not None:
            raise data_mod.engine_nan_error(xs, nan)
        return self._logs_from_totals(*totals)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model for evaluation. "
                             "Received: evaluate() on a model that is not compiled")
        (verbose,) = data_mod.bools_as_ints(verbose)
        batch_size, steps = data_mod.bools_as_ints(batch_size, steps, false=False)
        verbose = data_mod.check_verbose(verbose)
        steps = config_mod.capped_steps(steps, "steps")
        if sources.is_batch_source(x):
            sources.reject_beside(y=y, sample_weight=sample_weight, batch_size=batch_size)
            source = sources.BatchSource(x, steps, "x", "steps",
                                         steps_per_execution=self.steps_per_execution)
            cb = self._inference_callbacks(callbacks, verbose, source.steps)
            cb.on_test_begin()
            bar = Progbar(None, verbose=verbose)
            logs = self._evaluate_source(source, cb)
        else:
            data_mod.check_batch_size(batch_size)
            steps = data_mod.check_steps(steps, "steps")
            xs, ys, rows = self._prepare_xy(x, y, reject_x_nan=False)
            sws = data_mod.standardize_sample_weight(self, sample_weight, rows)
            batch_size = data_mod.batch_for_steps(batch_size, steps, rows)
            (xs, ys, sws), batches = data_mod.head_for_steps([xs, ys, sws], rows, batch_size,
                                                             steps)
            cb = self._inference_callbacks(callbacks, verbose, batches)
            cb.on_test_begin()
            bar = Progbar(batches, verbose=verbose)
            if cb.overrides("on_test_batch_begin", "on_test_batch_end"):
                logs = self._evaluate_by_batch(xs, ys, sws, batch_size, batches, cb)
            else:
                logs = self._run_evaluate(xs, ys, batch_size, sws, check_x_nan=True)
        cb.on_test_end(logs)
        bar.update(bar.target or 1, sorted(logs.items()), finalize=True)
        return self._batch_result(logs, return_dict)

    def _inference_callbacks(self, callbacks, verbose, steps):
        """evaluate's and predict's callbacks (Keras calls their on_test_* and on_predict_*
        hooks), as a CallbackList with Keras's params: the call's verbose, one epoch of
        `steps` batches (None: a source of unknown length)."""
        return CallbackList(_user_callbacks(callbacks), model=self, verbose=verbose, epochs=1,
                            steps=steps)

    def _evaluate_by_batch(self, xs, ys, sws, batch_size, batches, cb):
        """evaluate one engine call a run of steps_per_execution batches, for callbacks with
        per-batch hooks: the running logs after each run, as Keras passes them (the run's last
        batch numbered first + steps_per_execution - 1)."""
        totals, logs = None, {}
        spe = self.steps_per_execution
        for b in range(0, batches, spe):
            lo, hi = b * batch_size, min(b + spe, batches) * batch_size
            cut = [a[lo:hi] for a in xs], [a[lo:hi] for a in ys]
            w = None if sws is None else [None if a is None else a[lo:hi] for a in sws]
            cb.on_test_batch_begin(b)
            *step, nan = self._graph.evaluate(*cut, batch_size, w, True)
            if nan is not None:
                raise data_mod.engine_nan_error(xs, (nan[0], lo + nan[1]))
            totals = sources.add_totals(totals, step)
            logs = self._logs_from_totals(*totals)
            cb.on_test_batch_end(b + spe - 1, logs)
        return logs

    # --- predict -------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        self._refuse_custom_steps(("predict_step",))
        (verbose,) = data_mod.bools_as_ints(verbose)
        batch_size, steps = data_mod.bools_as_ints(batch_size, steps, false=False)
        if config_mod._MAX_STEPS_PER_EPOCH:
            steps = config_mod.capped_steps(steps, "steps")
        if callbacks is None or (isinstance(callbacks, list) and not callbacks):
            # (the common case, kept quick: predict on one row takes ~5 us)
            return self._predict(x, batch_size, verbose, steps, None)
        cb = self._inference_callbacks(callbacks, data_mod.check_verbose(verbose), None)
        outs = self._predict(x, batch_size, verbose, steps, cb)  # (calls on_predict_begin)
        cb.on_predict_end()
        return outs

    def _predict(self, x, batch_size, verbose, steps, cb, training=False):
        batch_hooks = cb is not None and cb.overrides("on_predict_batch_begin",
                                                        "on_predict_batch_end")

        def begin(batches):  # (Keras's params, the batches known, before on_predict_begin)
            if cb is not None:
                cb.set_params({**cb.params, "steps": batches})
                cb.on_predict_begin()
        if sources.is_batch_source(x):
            sources.reject_beside(batch_size=batch_size)
            source = sources.BatchSource(x, steps, "x", "steps",
                                         steps_per_execution=self.steps_per_execution)
            begin(source.steps)
            parts, spe, run = [], self.steps_per_execution, 0  # (run: the current run's parts)
            for b, batch in enumerate(source.batches()):
                if cb is not None and b % spe == 0:  # (hooks a run of steps_per_execution)
                    cb.on_predict_batch_begin(b)
                parts.append(self.predict(unpack(batch, "x")[0], batch_size=None,
                                          verbose=0))
                run += 1
                if cb is not None and (run == spe or b + 1 == source.steps):
                    cb.on_predict_batch_end(b - b % spe + spe - 1,
                                            {"outputs": _joined(parts[-run:])})
                    run = 0
            if cb is not None and run:  # (an iterator's last run, cut short)
                cb.on_predict_batch_end(b - b % spe + spe - 1, {"outputs": _joined(parts[-run:])})
            last = source.run_that_found_the_end(len(parts))
            if cb is not None and last is not None:
                cb.on_predict_batch_begin(last)
            source.end_epoch()
            if source.short and parts:
                source.warn_ran_out()
            if not parts:
                raise ValueError("`x` gave no batches to predict. Received: an exhausted "
                                 "generator")
            return _joined(parts)
        data_mod.check_batch_size(batch_size)
        steps = data_mod.check_steps(steps, "steps")
        verbose = data_mod.check_verbose(verbose)
        self._ensure_built_from(x)
        xs = data_mod.standardize_x(self, x, reject_nan=False, predicting=True)  # NaN → NaN
        rows = xs[0].shape[0]
        if any(a.shape[0] == 0 for a in xs):
            # Keras's model(x) and predict_on_batch of no rows: outputs of no rows
            data_mod.check_cardinality(xs, [])
            begin(0)
            return self._structured([np.zeros((0, math.prod(shape)), np.float32)
                                     for shape in self._output_shapes])
        batch_size = data_mod.batch_for_steps(batch_size, steps, rows)
        (xs,), batches = data_mod.head_for_steps([xs], rows, batch_size, steps)
        begin(batches)
        bar = Progbar(batches, verbose=verbose)
        if batch_hooks:  # one engine call a run of steps_per_execution batches, its outputs
            pieces = []  # to the hooks (numbered as Keras, see _evaluate_by_batch)
            spe = self.steps_per_execution
            for b in range(0, batches, spe):
                lo, hi = b * batch_size, min(b + spe, batches) * batch_size
                cb.on_predict_batch_begin(b)
                pieces.append(self._graph.predict([a[lo:hi] for a in xs], batch_size))
                cb.on_predict_batch_end(b + spe - 1, {"outputs": self._structured(pieces[-1])})
            outs = [np.concatenate(parts) for parts in zip(*pieces)]
        else:
            outs = self._graph.predict(xs, self._inference_batch(batch_size, targets=False),
                                       training)
        bar.update(bar.target, finalize=True)
        return self._structured(outs)

    def _structured(self, outs):
        """The engine's output arrays (rows, values) in the model's output shapes and
        structure."""
        return self._output_structure(
            [o.reshape((o.shape[0], *shape)) for o, shape in zip(outs, self._output_shapes)])

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One training step on the given batch; returns the loss (and metrics), or their
        dict with `return_dict`."""
        _check_one_weighting(class_weight, sample_weight)
        if self.compiled:
            self._check_losses_train()
        xs, ys, rows = self._prepare_xy(x, y)
        sws = self._training_weights(class_weight, sample_weight, ys, rows)
        self._schedule_ahead(1)
        *totals, _ = self._graph.train_batches(xs, ys, None, rows, 0, 1, sws)
        return self._batch_result(self._logs_from_totals(*totals), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) of the given batch as one batch, without training; their
        dict with `return_dict`."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model for evaluation. "
                             "Received: test_on_batch() on a model that is not compiled")
        xs, ys, rows = self._prepare_xy(x, y)
        sws = data_mod.standardize_sample_weight(self, sample_weight, rows)
        return self._batch_result(self._run_evaluate(xs, ys, rows, sws), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for x as one batch (inference treats each row on its own, so
        this is predict's result)."""
        if sources.is_batch_source(x):
            raise ValueError("predict_on_batch takes arrays (one batch). Received: x of type "
                             f"{type(x).__name__}")
        return self.predict(x, verbose=0)

    def _batch_result(self, logs, return_dict):
        """evaluate's (train_on_batch's...) result: the logs as Keras 3 gives them, a dict by
        name in sorted order, or a list in Keras's order (its _flatten_metrics_in_order): the
        loss, then a log per compiled metric's own name (unprefixed, so that those of a model
        of several outputs match none, and a weighted metric renamed "weighted_..." gives its
        plain namesake's value again), the outputs' losses, then the logs not yet given, by
        name."""
        if return_dict:
            return dict(sorted(logs.items()))
        names = ["loss", *getattr(self, "_metric_object_names", ()), *[
            name for name in self.metrics_names[1:] if name != "compile_metrics"]]
        values = [logs[k] for k in names if k in logs]
        values += [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values

class LoggedMetric:
    """One log of a model's latest run (model.metrics): its name and value."""

    def __init__(self, model, name):
        self._model, self.name = model, name

    def result(self):
        logs = getattr(self._model, "_latest_logs", None) or {}
        return np.float32(logs.get(self.name, 0.0))

    def reset_state(self):
        self._model.__dict__.pop("_latest_logs", None)

    def __repr__(self):
        return f"<LoggedMetric name={self.name}>"


class CompileMetrics:
    """Keras 3's "compile_metrics": the compiled metrics' logs of the model's latest run,
    `metrics` one LoggedMetric each (empty before a run, as Keras's before it is built)."""

    name = "compile_metrics"

    def __init__(self, model):
        self._model = model

    @property
    def metrics(self):
        logs = getattr(self._model, "_metric_logs", None)
        if getattr(self._model, "_latest_logs", None) is None or logs is None:
            return []
        return [LoggedMetric(self._model, entry[0]) for entry in logs]

    def result(self):
        metrics = self.metrics
        if not metrics:
            raise ValueError("Cannot get result() since the metric has not yet been built "
                             "(the model has not run fit or evaluate). Received: no logs")
        return {m.name: m.result() for m in metrics}

    def reset_state(self):
        _zero_logs(self._model)

    def __repr__(self):
        return "<CompileMetrics name=compile_metrics>"


def _zero_logs(model):
    logs = getattr(model, "_latest_logs", None)
    if logs is not None:
        model._latest_logs = {k: (np.zeros_like(v) if np.ndim(v) else 0.0)
                              for k, v in logs.items()}
