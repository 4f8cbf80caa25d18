"""Optimizer objects: hyperparameters and the step count. The update itself runs in C++ over
the parameters in place, as the formulas in Keras 3 define it."""

import inspect
import math
import numbers
import re
import warnings

import numpy as np

from densitron import _core
from densitron.optimizers import schedules
from densitron.utils.naming import to_snake_case, uniquify
from densitron.variables import assign_value

# densitron::OptimizerKind
(_SGD, _RMSPROP, _ADAM, _ADAMAX, _ADAGRAD, _LION, _ADADELTA, _NADAM, _FTRL, _LAMB,
 _ADAFACTOR, _MUON, _SCHEDULE_FREE) = range(13)


def _check_number(name, value, lo=0.0, lo_inclusive=True, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    ok = value >= lo if lo_inclusive else value > lo
    if hi is not None:
        ok = ok and value <= hi
    if not ok:
        bound = f"{'>=' if lo_inclusive else '>'} {lo}"
        if hi is not None:
            bound += f" and <= {hi}"
        raise ValueError(f"Argument `{name}` must be {bound}. Received: {name}={value!r}")
    return float(value)


def _schedule_of(learning_rate):
    """The schedule a `learning_rate` argument names (an object or its serialized form), or
    None for a number."""
    if isinstance(learning_rate, dict):
        return schedules.deserialize(learning_rate)
    if isinstance(learning_rate, schedules.LearningRateSchedule):
        if not learning_rate._in_python and \
                type(learning_rate) not in schedules._CLASSES.values():
            raise ValueError("A LearningRateSchedule subclass must define `__call__(step)` or be "
                             f"one of {sorted(schedules._CLASSES)}. Received: "
                             f"learning_rate={learning_rate!r}")
        return learning_rate
    if callable(learning_rate):
        try:
            inspect.signature(learning_rate).bind()
        except (TypeError, ValueError):
            raise ValueError("A learning rate must be a number, a "
                             "densitron.optimizers.schedules.LearningRateSchedule (subclass it "
                             "to write your own) or a function of no arguments. Received: "
                             f"learning_rate={learning_rate!r}") from None
        return _CallableRate(learning_rate)
    return None


class _CallableRate(schedules.LearningRateSchedule):
    """Keras's callable learning rate (`learning_rate=lambda: 0.01`, say one reading a
    variable a callback sets): called for every step, as a schedule written in Python is,
    ahead of each engine run. A config holds its value at the time."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, step):
        return self.fn()


class _ScalarVariable:
    """Keras 3's scalar optimizer variables (learning_rate, iterations) as Python numbers with
    the Variable attributes code reads off them: name, path, shape, dtype, value, numpy()."""

    shape = ()

    @property
    def path(self):
        return f"{self._optimizer.name}/{self.name}"

    def numpy(self):
        return np.asarray(self, dtype=self.dtype)[()]

    @property
    def value(self):
        return self.numpy()

    def __reduce__(self):  # (pickled and deep-copied as the plain number)
        return self._number, (self._number(self),)


class _LearningRate(_ScalarVariable, float):
    """An optimizer's learning rate as a float; `assign` sets the optimizer's rate (as
    `optimizer.learning_rate = value` does)."""

    name, dtype, _number = "learning_rate", "float32", float

    def __new__(cls, value, optimizer):
        # (Keras's rate is a float32 variable: float() of it reads 0.001 as 0.0010000000474...)
        obj = float.__new__(cls, np.float32(value))
        obj._optimizer = optimizer
        return obj

    def assign(self, value):
        self._optimizer.learning_rate = value
        return _LearningRate(self._optimizer._learning_rate, self._optimizer)


class _Iterations(_ScalarVariable, int):
    """An optimizer's update count as an int (Keras's `iteration` variable)."""

    name, dtype, _number = "iteration", "int32", int

    def __new__(cls, value, optimizer):
        obj = int.__new__(cls, value)
        obj._optimizer = optimizer
        return obj


class OptimizerVariable:
    """One of optimizer.variables: a view of the optimizer's state in the engine, with
    Keras's Variable idioms (name, path, shape, dtype, numpy(), value, assign)."""

    def __init__(self, path, shape, dtype, read, write):
        self.path, self.name = path, path.rsplit("/", 1)[-1]
        self.shape, self.dtype = tuple(shape), dtype
        self._read, self._write = read, write

    def numpy(self):
        return np.array(self._read())

    @property
    def value(self):
        return self.numpy()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def assign(self, value):
        self._write(assign_value(value, self.shape, self.path))

    def __repr__(self):
        return f"<OptimizerVariable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def read_slot(graph, s, p, shape):
    """Engine slot s of parameter p as Keras's variable of `shape` (its first values)."""
    return graph.get_slot(s, p)[:int(np.prod(shape))].reshape(shape)


def write_slot(graph, s, p, v, value, shape):
    """The inverse of read_slot (the slot's values past the shape's unchanged)."""
    full = graph.get_slot(s, p)
    flat = np.asarray(value, np.float32).reshape(shape).ravel()
    full[:flat.size] = flat
    graph.set_slot(s, p, full)


class Optimizer:
    _kind = None

    def __init__(self, learning_rate, name, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **kwargs):
        # Keras's moving average of the weights (use_ema): kept by the engine after every
        # step, copied into the weights every ema_overwrite_frequency steps and when fit ends
        # (finalize_variable_values).
        self.use_ema = bool(kwargs.pop("use_ema", False))
        ema_momentum = kwargs.pop("ema_momentum", 0.99)
        ema_overwrite_frequency = kwargs.pop("ema_overwrite_frequency", None)
        if self.use_ema:
            if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real) \
                    or not 0 <= ema_momentum <= 1:
                raise ValueError("`ema_momentum` must be in the range [0, 1]. "
                                 f"Received: ema_momentum={ema_momentum!r}")
            if ema_overwrite_frequency and (
                    isinstance(ema_overwrite_frequency, bool)
                    or not isinstance(ema_overwrite_frequency, numbers.Integral)
                    or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                                 f"Received: ema_overwrite_frequency={ema_overwrite_frequency!r}")
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        # Keras's gradient accumulation: the engine sums the gradients of N steps and updates
        # on every Nth with their mean; `iterations` counts the updates.
        steps = kwargs.pop("gradient_accumulation_steps", None)
        if steps and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)
                      or steps < 2):
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. "
                             f"Received: gradient_accumulation_steps={steps!r}")
        self.gradient_accumulation_steps = int(steps) if steps else None
        # (a loss scale factor multiplies the loss and divides the gradients: no change in
        # float32). Keras trains to NaN with 0, an infinity or NaN (0/0, inf/inf): refused.
        scale = kwargs.pop("loss_scale_factor", None)
        if scale is not None:
            if not isinstance(scale, numbers.Real):  # (True is 1, as Keras multiplies by it)
                raise TypeError("Argument `loss_scale_factor` must be a number or None. "
                                f"Received: loss_scale_factor={scale!r}")
            if scale == 0 or not math.isfinite(scale):
                raise ValueError("Argument `loss_scale_factor` must be a finite number other "
                                 "than 0 (the loss times it, the gradients divided by it: Keras's "
                                 f"weights become NaN). Received: loss_scale_factor={scale!r}")
        self.loss_scale_factor = scale  # (kept for the config, as Keras's)
        if "decay" in kwargs:  # (Keras 2's argument, which Keras 3 takes and ignores)
            kwargs.pop("decay")
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          stacklevel=3)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}. "
                            f"Received: kwargs={kwargs}")
        # Keras's gradient clipping, applied to each step's gradients (regularization
        # included) before the update: at most one of the three; None or 0 leaves it off.
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.clipnorm = None if clipnorm is None else _check_number("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _check_number("clipvalue", clipvalue)
        self.global_clipnorm = (None if global_clipnorm is None
                                else _check_number("global_clipnorm", global_clipnorm))
        # (None: Keras's automatic name, the class's in snake case made unique: sgd, sgd_1,
        # rm_sprop, adam_w)
        self.name = uniquify(to_snake_case(type(self).__name__)) if name is None else name
        self._schedule = _schedule_of(learning_rate)
        if self._schedule is not None and self._schedule._in_python:
            self._learning_rate = schedules.python_rate(self._schedule, 0)  # checks it
        else:
            self._learning_rate = (self._schedule(0) if self._schedule is not None
                                   else _check_number("learning_rate", learning_rate))
        self.weight_decay = None if weight_decay is None else _check_number("weight_decay",
                                                                            weight_decay)
        self._graphs = []  # compiled engine graphs that use this optimizer
        self._owner_of = {}  # id(graph): the model that attached it
        self._params_of = {}  # id(graph): its parameters (see _attach)
        self._iterations = 0

    @property
    def learning_rate(self):
        """The rate of the next step (with a schedule: its value at the steps taken, which
        with gradient accumulation count its micro-batches, as Keras's): a float that also
        takes Keras's variable idioms, `.assign(value)` and `.numpy()`."""
        if self._schedule is not None:
            return _LearningRate(self._schedule(self._steps_taken()), self)
        return _LearningRate(self._learning_rate, self)

    @learning_rate.setter
    def learning_rate(self, value):
        if self._schedule is not None:
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as "
                            "its `learning_rate` constructor argument, hence its learning rate "
                            f"is not settable. Received: learning_rate={value!r}")
        self._learning_rate = _check_number("learning_rate", value)
        for g in self._graphs:
            g.learning_rate = self._learning_rate

    @property
    def iterations(self):
        """The updates made (Keras's: steps / gradient_accumulation_steps)."""
        return _Iterations(self._steps_taken() // (self.gradient_accumulation_steps or 1),
                           self)

    def _steps_taken(self):
        """The steps taken, accumulating ones included (Keras's saved `iteration`)."""
        if self._graphs:
            return self._graphs[-1].iterations
        return self._iterations

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's: the variables of `var_list`, and those whose name holds one of the strings
        of `var_names` (var_names=['bias'] for every bias), take no weight decay. Before the
        optimizer first trains."""
        if self._graphs:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the "
                             "optimizer is built.")
        if var_names is not None and (isinstance(var_names, str) or
                                      not all(isinstance(n, str) for n in var_names)):
            raise ValueError(f"`var_names` must be a list of strings. Received: "
                             f"var_names={var_names!r}")
        self._exclude_ids = {id(v) for v in var_list or ()}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, variable):
        if id(variable) in getattr(self, "_exclude_ids", ()):
            return False
        pattern = getattr(self, "_exclude_pattern", None)
        return pattern is None or pattern.search(variable.name) is None

    def _engine_config(self, params=()):
        """The engine's optimizer dict; with the graph's parameters, those excluded from
        weight decay (by index)."""
        if self._kind is None:  # a subclass of the user's, with its own update_step
            raise ValueError(
                "densitron runs the optimizer's update inside its engine, so it takes its own "
                "optimizers (SGD, RMSprop, Adam, AdamW, Adamax, Adagrad, Adadelta, Lion, Nadam, "
                "Ftrl, Lamb, Adafactor, Muon, ScheduleFreeAdamW, LossScaleOptimizer, with their "
                "arguments and schedules), not an Optimizer subclass with "
                f"an update_step in Python. Received: optimizer {type(self).__name__}"
                f"(name={self.name!r})")
        config = {
            "kind": self._kind,
            "learning_rate": self._learning_rate,
            "momentum": 0.0,
            "nesterov": False,
            "rho": 0.9,
            "centered": False,
            "epsilon": 1e-7,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "amsgrad": False,
            "weight_decay": self.weight_decay or 0.0,
            "clipnorm": self.clipnorm or 0.0,
            "clipvalue": self.clipvalue or 0.0,
            "global_clipnorm": self.global_clipnorm or 0.0,
        }
        if self._schedule is not None:
            config["schedule"] = self._schedule._engine_config()
        if self.use_ema:
            config.update(use_ema=True, ema_momentum=float(self.ema_momentum),
                          ema_overwrite_frequency=int(self.ema_overwrite_frequency or 0))
        if self.gradient_accumulation_steps:
            config["accumulation_steps"] = self.gradient_accumulation_steps
        config.update(self._engine_extra())
        if self.weight_decay:
            config["no_decay"] = [i for i, v in enumerate(params)
                                  if not self._use_weight_decay(v)]
        return config

    def _engine_extra(self):
        return {}

    def _keras_slots(self):
        """Keras's order of the update's own variables after iterations and the learning rate:
        blocks of (engine slot index, Keras's name), each block taken variable by variable (a
        block of two interleaves them, as Keras's Adam does)."""
        return []

    def _slot_shape(self, slot, shape):
        """The shape Keras gives engine slot `slot` of a weight of `shape` (the engine's slot
        holds as many values or more: its first ones), or None where Keras keeps a scalar
        int32 0 that no update uses (Adafactor's factors of a vector)."""
        return tuple(shape)

    def _slot_kept(self, slot, variable):
        """Whether Keras lists slot `slot` of `variable` among its variables."""
        return True

    def _slot_start(self, slot, variable, shape):
        """Slot `slot` of `variable` (Keras's `shape`) as the optimizer builds it."""
        return np.full(shape, self._slot_initial_value(slot), np.float32)

    def _keras_leading_values(self):
        """Keras's variables before `iteration` (a LossScaleOptimizer's own), as saved."""
        return []

    def _set_keras_leading_values(self, values):
        """The inverse of _keras_leading_values, from a file."""

    def _keras_slot_order(self):
        """_keras_slots after use_ema's averages and gradient accumulation's sums, which Keras
        builds first (in that order) and the engine keeps in its last slots."""
        ema, accumulator = self._extra_slots()
        return (([[(ema, "average")]] if ema >= 0 else []) +
                ([[(accumulator, "gradient_accumulator")]] if accumulator >= 0 else []) +
                self._keras_slots())

    @property
    def variables(self):
        """Keras's optimizer.variables: `iteration`, the learning rate (unless a schedule
        gives it) and, once the optimizer has run, each trainable weight's slots in Keras's
        order and names ("<weight path>_momentum", ...), then any variable Keras keeps after
        them (Nadam's u_product). Views of the engine's state: numpy() reads it, assign()
        writes it (u_product, derived from `iteration`, is not written)."""
        name = self.name
        out = [OptimizerVariable(f"{name}/iteration", (), "int64",
                                 lambda: np.asarray(self._steps_taken(), np.int64),
                                 self._set_steps)]
        if self._schedule is None:
            out.append(OptimizerVariable(
                f"{name}/learning_rate", (), "float32",
                lambda: np.asarray(self._learning_rate, np.float32),
                lambda v: setattr(self, "learning_rate", float(v))))
        graph = self._graphs[-1] if self._graphs else None
        owner = self._owner_of.get(id(graph)) if graph is not None else None
        if owner is None or not getattr(owner, "_engine_compiled", False):
            return out
        for slot, p, v, slot_name in owner._slot_order():  # (Keras's order)
            shape = self._slot_shape(slot, v.shape)
            if shape is None:  # (Keras's unused int32 0)
                out.append(OptimizerVariable(v.name, (), "int32",
                                             lambda: np.asarray(0, np.int32), lambda value: None))
                continue
            out.append(OptimizerVariable(
                f"{name}/{v.path.replace('/', '_')}_{slot_name}", shape, "float32",
                lambda s=slot, p=p, v=v, shape=shape: read_slot(graph, s, p, shape),
                lambda value, s=slot, p=p, v=v, shape=shape: write_slot(graph, s, p, v, value,
                                                                       shape)))
        for k, value in enumerate(self._keras_trailing_variables(self._steps_taken())):
            out.append(OptimizerVariable(
                f"{name}/u_product" if k == 0 else f"{name}/variable_{k}", np.shape(value),
                "float32", lambda k=k: self._keras_trailing_variables(self._steps_taken())[k],
                lambda value: None))
        return out

    def _set_steps(self, value):
        steps = int(np.asarray(value))
        self._iterations = steps
        for g in self._graphs:
            g.iterations = steps

    def _extra_slots(self):
        """The engine slots of use_ema's averages and of gradient accumulation's sums, after
        the update's own (-1 for one that is off)."""
        last = _core._optimizer_slot_count(self._engine_config()) - 1
        accumulator = last if self.gradient_accumulation_steps else -1
        ema = last - (accumulator >= 0) if self.use_ema else -1
        return ema, accumulator

    def _for_each_average(self, var_list, fn):
        """fn(graph, slot, engine parameter, variable) for each trainable variable of var_list
        and use_ema's average of it in each engine graph using this optimizer."""
        slot = self._extra_slots()[0]
        for graph in self._graphs:
            index = {id(v): p for p, v in enumerate(self._params_of.get(id(graph), ()))}
            for v in var_list:
                p = index.get(id(v))
                if p is not None and v.trainable:
                    fn(graph, slot, p, v)

    def finalize_variable_values(self, var_list):
        """Keras's end of training: with use_ema, each variable of var_list takes its moving
        average (fit calls it when it ends)."""
        if not self.use_ema:
            return

        def take(graph, slot, p, v):  # (in place: the engine holds the array)
            v._value[...] = graph.get_slot(slot, p).reshape(v.shape)

        self._for_each_average(var_list, take)

    def _swap_averages(self, var_list):
        """use_ema's averages and the variables of var_list trade values (SwapEMAWeights)."""
        def swap(graph, slot, p, v):
            held = v._value.copy()
            v._value[...] = graph.get_slot(slot, p).reshape(v.shape)
            graph.set_slot(slot, p, held.ravel())

        self._for_each_average(var_list, swap)

    def _averages_take_values(self, var_list):
        """use_ema's averages take the variables' values (Keras's _finalize_ema_values)."""
        self._for_each_average(
            var_list, lambda graph, slot, p, v: graph.set_slot(slot, p, v._value.ravel()))

    def _slot_initial_value(self, slot):
        """The value engine slot `slot` starts from (as the engine's
        optimizer_slot_initial_value)."""
        return 0.0

    def _keras_trailing_variables(self, iterations):
        """Keras's variables after the slots (Nadam's product), as saved after `iterations`
        steps; the engine derives them from the step count, so loading skips them."""
        return []

    def _attach(self, graph, params=(), owner=None):
        """Records a compiled engine graph that uses this optimizer, and its parameters (the
        model's variables in the engine's order); it replaces one the same owner (the model)
        attached before, which that model no longer runs (a graph rebuilt with a loss
        function's nodes)."""
        stale = [g for g in self._graphs
                 if g is graph or (owner is not None and self._owner_of.get(id(g)) is owner)]
        for g in stale:
            self._params_of.pop(id(g), None)
            self._owner_of.pop(id(g), None)
        self._graphs = [g for g in self._graphs if not any(g is d for d in stale)] + [graph]
        self._params_of[id(graph)] = list(params)
        self._owner_of[id(graph)] = owner

    def get_config(self):
        lr = (float(self.learning_rate) if isinstance(self._schedule, _CallableRate)
              else schedules.serialize(self._schedule) if self._schedule is not None
              else self._learning_rate)
        return {"name": self.name, "learning_rate": lr,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SGD(Optimizer):
    """velocity = momentum * velocity - lr * g; w += velocity (nesterov: w += m*v - lr*g)."""

    _kind = _SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.momentum = _check_number("momentum", momentum, 0.0, True, 1.0)
        self.nesterov = bool(nesterov)

    def _engine_extra(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _keras_slots(self):
        return [[(0, "momentum")]] if self.momentum else []

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras's RMSprop: epsilon inside the square root."""

    _kind = _RMSPROP

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _check_number("rho", rho, 0.0, True, 1.0)
        self.momentum = _check_number("momentum", momentum, 0.0, True, 1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        self.centered = bool(centered)

    def _engine_extra(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}

    def _keras_slots(self):
        # engine: velocity, then the centered average, then momentum; Keras: velocities,
        # momentums, average gradients
        momentum = 2 if self.centered else 1
        return ([[(0, "velocity")]] + ([[(momentum, "momentum")]] if self.momentum else [])
                + ([[(1, "average_gradient")]] if self.centered else []))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class _Moments(Optimizer):
    """The optimizers with Adam's hyperparameters beta_1, beta_2 and epsilon, and two slots
    that Keras keeps variable by variable."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, name, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _check_number("beta_1", beta_1, 0.0, True, 1.0)
        self.beta_2 = _check_number("beta_2", beta_2, 0.0, True, 1.0)
        self.epsilon = _check_number("epsilon", epsilon)

    def _engine_extra(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    _moment_names = ("momentum", "velocity")

    def _keras_slots(self):
        return [list(enumerate(self._moment_names))]

    def get_config(self):
        return {**super().get_config(), **self._engine_extra()}


class Adam(_Moments):
    _kind = _ADAM

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)
        self.amsgrad = bool(amsgrad)

    def _engine_extra(self):
        return {**super()._engine_extra(), "amsgrad": self.amsgrad}

    def _keras_slots(self):
        return super()._keras_slots() + ([[(2, "velocity_hat")]] if self.amsgrad else [])


class Lamb(_Moments):
    """Keras's Lamb: Adam's moments (without the epsilon-scaled bias correction of Adam's
    learning rate: m̂/(sqrt(v̂) + epsilon)), each variable's step scaled by its trust ratio
    ‖w‖/‖update‖ (1 when either is 0). The norms need whole variables: the engine updates
    after the backward pass, in two passes."""

    _kind = _LAMB

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)


class AdamW(Adam):
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name,
                         weight_decay=weight_decay, **kwargs)


class Adamax(_Moments):
    """Keras's Adamax: Adam with the infinity norm, m / ((1 - beta_1^t)(u + epsilon)); Keras's
    slots: momentum and norm."""

    _kind = _ADAMAX
    _moment_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)


class Adagrad(Optimizer):
    """Keras's Adagrad: the squared gradients summed from initial_accumulator_value,
    w -= lr·g / sqrt(accumulator + epsilon)."""

    _kind = _ADAGRAD

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value = _check_number("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.epsilon = _check_number("epsilon", epsilon)

    def _engine_extra(self):
        return {"epsilon": self.epsilon, "initial_accumulator": self.initial_accumulator_value}

    def _keras_slots(self):
        return [[(0, "accumulator")]]

    def _slot_initial_value(self, slot):
        return self.initial_accumulator_value if slot == 0 else 0.0  # (use_ema's average: 0)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Lion(Optimizer):
    """Keras's Lion: w -= lr·sign(beta_1·m + (1 - beta_1)·g), then
    m = beta_2·m + (1 - beta_2)·g."""

    _kind = _LION

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, (int, float)) or not 0 < beta_1 <= 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the "
                             f"optimizer degenerates to SignSGD. Received: beta_1={beta_1!r}.")
        self.beta_1 = float(beta_1)
        self.beta_2 = _check_number("beta_2", beta_2, 0.0, True, 1.0)

    def _engine_extra(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2}

    def _keras_slots(self):
        return [[(0, "momentum")]]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Adadelta(Optimizer):
    """Keras's Adadelta: steps of -sqrt(acc_delta + eps)·g / sqrt(acc_grad + eps), both
    accumulators decaying by rho."""

    _kind = _ADADELTA

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _check_number("rho", rho, 0.0, True, 1.0)
        self.epsilon = _check_number("epsilon", epsilon)

    def _engine_extra(self):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _keras_slots(self):  # (Keras's two, variable by variable)
        return [[(0, "accumulated_grad"), (1, "accumulated_delta_var")]]

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Nadam(_Moments):
    """Keras's Nadam: Adam's moments with Nesterov momentum on the schedule
    u_t = beta_1·(1 - 0.5·0.96^t), whose running product Keras keeps as a variable after the
    slots (momentum and velocity)."""

    _kind = _NADAM

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)

    def _keras_trailing_variables(self, iterations):
        return [np.asarray(_core._nadam_u_product(self.beta_1, int(iterations)), np.float32)]


class Ftrl(Optimizer):
    """Keras's Ftrl (follow the regularized leader): an accumulator of squared gradients from
    initial_accumulator_value and a linear term, with L1, L2 and L2-shrinkage strengths and
    `beta`; the weight is their closed-form minimiser, exactly 0 where |linear| <= l1."""

    _kind = _FTRL

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        for arg, value, sign in (
                ("initial_accumulator_value", initial_accumulator_value, "positive or zero"),
                ("learning_rate_power", learning_rate_power, "negative or zero"),
                ("l1_regularization_strength", l1_regularization_strength, "positive or zero"),
                ("l2_regularization_strength", l2_regularization_strength, "positive or zero"),
                ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
                 "positive or zero"), ("beta", beta, "a number")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"`{arg}` must be a number. Received: {arg}={value!r}")
            if value != value:
                raise ValueError(f"`{arg}` must be a number. Received: {arg}={value!r}")
            if (sign == "negative or zero" and value > 0) or (
                    sign == "positive or zero" and value < 0):
                raise ValueError(f"`{arg}` needs to be {sign}. Received: {arg}={value!r}")
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.l1_regularization_strength = float(l1_regularization_strength)
        self.l2_regularization_strength = float(l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = float(l2_shrinkage_regularization_strength)
        self.beta = float(beta)

    def _engine_extra(self):
        return {"initial_accumulator": self.initial_accumulator_value,
                "lr_power": self.learning_rate_power,
                "l1_strength": self.l1_regularization_strength,
                "l2_strength": self.l2_regularization_strength,
                "l2_shrinkage": self.l2_shrinkage_regularization_strength,
                "ftrl_beta": self.beta}

    def _keras_slots(self):  # (Keras's two, variable by variable)
        return [[(0, "accumulator"), (1, "linear")]]

    def _slot_initial_value(self, slot):
        return self.initial_accumulator_value if slot == 0 else 0.0

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Adafactor(Optimizer):
    """Keras's Adafactor: the second moment of a variable of rank >= 2 kept as its row and
    column averages (r: the shape without its last axis, c: without its axis -2), of a vector
    whole (v); the step is u = g / sqrt(v) clipped by rms(u) / clip_threshold and scaled by
    max(epsilon_2, rms(w))·min(lr, 1/sqrt(t)). Run by the engine after the backward, each
    variable whole on one thread."""

    _kind = _ADAFACTOR

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                 clip_threshold=1.0, relative_step=True, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        for arg, value in (("beta_2_decay", beta_2_decay), ("epsilon_1", epsilon_1),
                           ("epsilon_2", epsilon_2), ("clip_threshold", clip_threshold)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise TypeError(f"Argument `{arg}` must be a finite number. "
                                f"Received: {arg}={value!r}")
        self.epsilon_1 = _check_number("epsilon_1", epsilon_1)
        self.epsilon_2 = _check_number("epsilon_2", epsilon_2)
        self.clip_threshold = _check_number("clip_threshold", clip_threshold, 0.0, False)
        self.beta_2_decay = float(beta_2_decay)
        self.relative_step = bool(relative_step)

    def _engine_config(self, params=()):
        config = super()._engine_config(params)
        dims = []
        for v in params:  # Keras's last two axes, d2 = 0 below rank 2
            shape = tuple(v.shape)
            dims += [shape[-2], shape[-1]] if len(shape) >= 2 else [0, int(np.prod(shape))]
        return {**config, "factor_dims": dims}

    def _engine_extra(self):
        return {"beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}

    def _keras_slots(self):  # engine: v, r, c; Keras: r, c, then v, variable by variable
        return [[(1, "r"), (2, "c"), (0, "velocity")]]

    def _slot_shape(self, slot, shape):
        shape = tuple(shape)
        if slot in (1, 2) and len(shape) < 2:
            return None
        if slot == 1:
            return shape[:-1]
        if slot == 2:
            return shape[:-2] + shape[-1:]
        return shape

    def get_config(self):
        return {**super().get_config(), **self._engine_extra()}


class Muon(Optimizer):
    """Keras's Muon: each 2-D kernel (not an embedding's when exclude_embeddings, nor one whose
    path matches a regex of exclude_layers) steps by its momentum orthogonalized with ns_steps
    Newton-Schulz iterations (coefficients muon_a, muon_b, muon_c; matrix products on the
    engine's sgemm), scaled by sqrt(max(rows, cols))·rms_rate, and decays by weight_decay;
    the other variables take AdamW (adam_beta_1, adam_beta_2, epsilon, the rate times
    adam_lr_ratio, adam_weight_decay). Keras's slots: momentum for every variable, velocity
    for AdamW's."""

    _kind = _MUON

    def __init__(self, learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999,
                 adam_weight_decay=0.004, epsilon=1e-7, weight_decay=0.004, name=None,
                 exclude_layers=None, exclude_embeddings=True, muon_a=3.4445, muon_b=-4.7750,
                 muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5, nesterov=True,
                 rms_rate=0.2, **kwargs):
        super().__init__(learning_rate, name, weight_decay=weight_decay, **kwargs)
        self.adam_beta_1 = _check_number("adam_beta_1", adam_beta_1, 0.0, True, 1.0)
        self.adam_beta_2 = _check_number("adam_beta_2", adam_beta_2, 0.0, True, 1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        for arg, value in (("muon_a", muon_a), ("muon_b", muon_b), ("muon_c", muon_c),
                           ("adam_lr_ratio", adam_lr_ratio)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise TypeError(f"Argument `{arg}` must be a finite number. "
                                f"Received: {arg}={value!r}")
        self.muon_a, self.muon_b, self.muon_c = muon_a, muon_b, muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = _check_number("momentum", momentum, 0.0, True, 1.0)
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, numbers.Integral) \
                or ns_steps < 0:
            raise ValueError("Argument `ns_steps` must be an integer >= 0. "
                             f"Received: ns_steps={ns_steps!r}")
        self.ns_steps = int(ns_steps)
        self.nesterov = bool(nesterov)
        self.exclude_embeddings = bool(exclude_embeddings)
        if isinstance(exclude_layers, str) or not all(
                isinstance(k, str) for k in exclude_layers or ()):
            raise ValueError("Argument `exclude_layers` must be a list of strings (regular "
                             f"expressions). Received: exclude_layers={exclude_layers!r}")
        self.exclude_layers = list(exclude_layers or [])
        self.adam_weight_decay = (None if adam_weight_decay is None else
                                  _check_number("adam_weight_decay", adam_weight_decay))
        self.rms_rate = None if rms_rate is None else _check_number("rms_rate", rms_rate)

    def _should_use_adamw(self, variable):
        """Keras's choice: AdamW for a variable not of rank 2, an embedding's (when
        exclude_embeddings) or one whose path matches an exclude_layers regex."""
        if len(variable.shape) != 2:
            return True
        path = getattr(variable, "path", variable.name)
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(k, path) for k in self.exclude_layers)

    def _engine_config(self, params=()):
        config = super()._engine_config(params)
        dims = []
        for v in params:
            dims += [0, int(np.prod(v.shape))] if self._should_use_adamw(v) else list(v.shape)
        config.update(factor_dims=dims, no_decay=[i for i, v in enumerate(params)
                                                  if not self._use_weight_decay(v)])
        return config

    def _engine_extra(self):
        return {"beta_1": self.adam_beta_1, "beta_2": self.adam_beta_2, "epsilon": self.epsilon,
                "momentum": self.momentum, "nesterov": self.nesterov,
                "muon_a": float(self.muon_a), "muon_b": float(self.muon_b),
                "muon_c": float(self.muon_c), "ns_steps": self.ns_steps,
                "rms_rate": -1.0 if self.rms_rate is None else self.rms_rate,
                "adam_lr_ratio": float(self.adam_lr_ratio),
                "adam_weight_decay": self.adam_weight_decay or 0.0,
                # (as Keras computes them, in double)
                "adam_c1": 1 - self.adam_beta_1, "adam_c2": 1 - self.adam_beta_2,
                "momentum_m1": self.momentum - 1}

    def _keras_slots(self):
        return [[(0, "momentum"), (1, "velocity")]]

    def _slot_kept(self, slot, variable):
        return slot != 1 or self._should_use_adamw(variable)

    def get_config(self):
        return {**super().get_config(), "adam_beta_1": self.adam_beta_1,
                "adam_beta_2": self.adam_beta_2, "epsilon": self.epsilon,
                "exclude_layers": self.exclude_layers, "muon_a": self.muon_a,
                "muon_b": self.muon_b, "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio, "momentum": self.momentum,
                "ns_steps": self.ns_steps, "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings,
                "adam_weight_decay": self.adam_weight_decay, "rms_rate": self.rms_rate}


class ScheduleFreeAdamW(_Moments):
    """Keras's ScheduleFreeAdamW: Adam's second moment with its bias correction, the
    gradient steps taken on z (Keras's `momentum`, which starts as a copy of the weight), the
    weight y the interpolation (1 - beta_1)·z + beta_1·x of z and the running average x of
    the z's (weight 1/t); the rate ramps up linearly over warmup_steps."""

    _kind = _SCHEDULE_FREE

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 warmup_steps=0, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) \
                or warmup_steps < 0:
            raise ValueError("Argument `warmup_steps` must be an integer >= 0. "
                             f"Received: warmup_steps={warmup_steps!r}")
        if self.beta_1 == 0:
            raise ValueError("Argument `beta_1` must be > 0 (the weight is divided by it). "
                             f"Received: beta_1={beta_1!r}")
        self.warmup_steps = int(warmup_steps)

    def _engine_extra(self):
        return {**super()._engine_extra(), "warmup_steps": self.warmup_steps}

    def _slot_start(self, slot, variable, shape):  # (z: Keras's copy of the weight)
        if slot == 0:
            return np.array(variable.numpy(), np.float32).reshape(shape)
        return super()._slot_start(slot, variable, shape)

    def get_config(self):
        return {**super().get_config(), "warmup_steps": self.warmup_steps}


# Keras's base-optimizer arguments a LossScaleOptimizer takes only at their defaults (as older
# configs hold them).
_LSO_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                      "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                      "ema_overwrite_frequency": None, "loss_scale_factor": None,
                      "gradient_accumulation_steps": None}


class LossScaleOptimizer(Optimizer):
    """Keras's LossScaleOptimizer(inner_optimizer, initial_scale=2**15,
    dynamic_growth_steps=2000). The engine trains in float32, where multiplying the loss by a
    power of two and dividing the gradients by it changes nothing: it keeps Keras's decisions.
    A step whose gradients times the scale are not all finite is skipped (no update, the
    inner optimizer's `iterations` unchanged) and the scale halved; after
    dynamic_growth_steps finite steps in a row the scale doubles. Its variables, as Keras's:
    its own iteration and learning rate (0, unused), step_counter, dynamic_scale, then the
    inner optimizer's."""

    def __init__(self, inner_optimizer, initial_scale=2.0**15, dynamic_growth_steps=2000,
                 name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, "
                             "simply set `loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in _LSO_BASE_DEFAULTS.items():
            if arg not in kwargs:
                continue
            value = kwargs.pop(arg)
            if (default is None and value is not None) or value != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set "
                                 f"`{arg}` on the `inner_optimizer`.")
        if kwargs:
            raise ValueError("LossScaleOptimizer does not support arguments: "
                             f"`{'`, `'.join(kwargs.keys())}`.")
        if not isinstance(inner_optimizer, Optimizer) or \
                isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError("Argument `inner_optimizer` must be a densitron optimizer instance "
                            "(not a LossScaleOptimizer). "
                            f"Received: inner_optimizer={inner_optimizer!r}")
        if inner_optimizer.gradient_accumulation_steps:
            raise ValueError("densitron's LossScaleOptimizer takes no inner optimizer with "
                             "gradient accumulation. Received: inner_optimizer with "
                             "gradient_accumulation_steps="
                             f"{inner_optimizer.gradient_accumulation_steps}")
        if isinstance(initial_scale, bool) or not isinstance(initial_scale, numbers.Real) \
                or not math.isfinite(initial_scale) or initial_scale <= 0:
            raise ValueError("Argument `initial_scale` must be a finite number > 0. "
                             f"Received: initial_scale={initial_scale!r}")
        if isinstance(dynamic_growth_steps, bool) or \
                not isinstance(dynamic_growth_steps, numbers.Integral) or dynamic_growth_steps < 1:
            raise ValueError("Argument `dynamic_growth_steps` must be an integer >= 1. "
                             f"Received: dynamic_growth_steps={dynamic_growth_steps!r}")
        self.inner_optimizer = inner_optimizer
        super().__init__(0.0, name)
        self._built = True  # (now _iterations is the inner optimizer's)
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        inner_optimizer.loss_scale_factor = None  # (Keras's: not scaled twice)
        self._scale_state = (float(initial_scale), 0)  # before the engine runs

    @property
    def _kind(self):
        return self.inner_optimizer._kind

    @property
    def _schedule(self):
        return self.inner_optimizer._schedule

    @_schedule.setter
    def _schedule(self, value):  # (the base class's __init__: the inner's is used)
        pass

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def _steps_taken(self):
        return self.inner_optimizer._steps_taken()

    @property
    def _iterations(self):
        return self.inner_optimizer._iterations

    @_iterations.setter
    def _iterations(self, value):
        if getattr(self, "_built", False):
            self.inner_optimizer._iterations = value

    def _set_steps(self, value):
        self.inner_optimizer._set_steps(value)

    @property
    def dynamic_scale(self):
        """The loss scale (Keras's variable's value)."""
        if self._graphs:
            return float(self._graphs[-1].loss_scale)
        return self._scale_state[0]

    @property
    def step_counter(self):
        """The finite steps since the scale last changed."""
        if self._graphs:
            return int(self._graphs[-1].scale_counter)
        return self._scale_state[1]

    def scale_loss(self, loss):
        """Keras's: the loss times the scale."""
        return loss * self.dynamic_scale

    def _engine_config(self, params=()):
        return {**self.inner_optimizer._engine_config(params), "loss_scale": True,
                "initial_scale": float(self.initial_scale),
                "growth_steps": int(self.dynamic_growth_steps)}

    def _attach(self, graph, params=(), owner=None):
        fresh = not any(g is graph for g in self._graphs)
        super()._attach(graph, params, owner)
        self.inner_optimizer._attach(graph, params, owner)
        if fresh:  # (a graph compiled again takes the state it had)
            graph.loss_scale, graph.scale_counter = self._scale_state

    def _detach_state(self):
        if self._graphs:
            self._scale_state = (self.dynamic_scale, self.step_counter)

    def _keras_slots(self):
        return self.inner_optimizer._keras_slots()

    def _keras_slot_order(self):
        return self.inner_optimizer._keras_slot_order()

    def _extra_slots(self):
        return self.inner_optimizer._extra_slots()

    def _slot_shape(self, slot, shape):
        return self.inner_optimizer._slot_shape(slot, shape)

    def _slot_initial_value(self, slot):
        return self.inner_optimizer._slot_initial_value(slot)

    def _slot_start(self, slot, variable, shape):
        return self.inner_optimizer._slot_start(slot, variable, shape)

    def _slot_kept(self, slot, variable):
        # (Keras builds the inner optimizer untracked: Adafactor's unused scalars of a
        # vector are not among its variables then)
        return self.inner_optimizer._slot_kept(slot, variable) and \
            self.inner_optimizer._slot_shape(slot, variable.shape) is not None

    def _keras_trailing_variables(self, iterations):
        return self.inner_optimizer._keras_trailing_variables(iterations)

    def _keras_leading_values(self):
        return [np.asarray(0, np.int64), np.asarray(0.0, np.float32),
                np.asarray(self.step_counter, np.int64),
                np.asarray(self.dynamic_scale, np.float32)]

    def _set_keras_leading_values(self, values):
        counter, scale = int(np.asarray(values[2])), float(np.asarray(values[3]))
        self._scale_state = (scale, counter)
        for g in self._graphs:
            g.loss_scale, g.scale_counter = scale, counter

    @property
    def variables(self):
        own = [("iteration", "int64", lambda: np.asarray(0, np.int64), lambda v: None),
               ("learning_rate", "float32", lambda: np.asarray(0.0, np.float32),
                lambda v: None),
               ("step_counter", "int64", lambda: np.asarray(self.step_counter, np.int64),
                lambda v: self._set_keras_leading_values(
                    [0, 0, v, self.dynamic_scale])),
               ("dynamic_scale", "float32", lambda: np.asarray(self.dynamic_scale, np.float32),
                lambda v: self._set_keras_leading_values(
                    [0, 0, self.step_counter, v]))]
        return [OptimizerVariable(f"{self.name}/{n}", (), d, r, w) for n, d, r, w in own] + \
            self.inner_optimizer.variables

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def get_config(self):
        from densitron.utils.keras_objects import serialize_keras_object

        return {"name": self.name, "inner_optimizer": serialize_keras_object(self.inner_optimizer),
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = deserialize(config.pop("inner_optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adamax": Adamax,
            "adagrad": Adagrad, "lion": Lion, "adadelta": Adadelta, "nadam": Nadam,
            "ftrl": Ftrl, "lamb": Lamb, "adafactor": Adafactor, "muon": Muon,
            "schedulefreeadamw": ScheduleFreeAdamW}
CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}
CLASSES["LossScaleOptimizer"] = LossScaleOptimizer


def serialize(optimizer):
    """Keras's {"module", "class_name", "config", "registered_name"} form of an optimizer."""
    from densitron.utils.keras_objects import serialize_keras_object

    return serialize_keras_object(get(optimizer))


def deserialize(config, custom_objects=None, use_legacy_format=False):
    """The optimizer of a serialized form (a name, or a {"class_name", "config"} dict, Keras's
    included); classes of `custom_objects` found too."""
    from densitron.utils import serialization

    if use_legacy_format:
        raise ValueError("densitron reads Keras 3's optimizer configs only. "
                         f"Received: use_legacy_format={use_legacy_format!r}")
    return serialization.deserialize_with(get, config, custom_objects)


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        from densitron.utils import serialization

        return serialization.deserialize(identifier, CLASSES, "optimizer")
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Could not interpret optimizer identifier. Expected one of {sorted(_BY_NAME)}. "
                f"Received: optimizer={identifier!r}"
            )
        return cls()
    raise ValueError(
        "Could not interpret optimizer identifier: pass a name or a densitron.optimizers "
        f"instance. Received: optimizer={identifier!r}"
    )
