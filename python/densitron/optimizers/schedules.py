"""Keras's learning-rate schedules. The engine evaluates them at every step, in C++ (in float32,
as Keras does), so a schedule runs inside the batches of one engine call; a schedule object
called with a step count gives the same value."""

import numbers

import numpy as np

from densitron import _core
from densitron.utils import serialization

# Engine ids: must match densitron::LrSchedule in cpp/include/densitron/optim.h.
_EXPONENTIAL, _INVERSE_TIME, _POLYNOMIAL, _PIECEWISE, _COSINE, _COSINE_RESTARTS = 1, 2, 3, 4, 5, 6


def _number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    if positive and not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return float(value)


def _whole_steps(step):
    """`step` as an int64 array of steps >= 0, or Keras's ValueError."""
    values = None
    if not isinstance(step, (bool, np.bool_, str)):
        try:
            values = np.asarray(step)
        except (TypeError, ValueError):
            values = None
    if values is None or values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) \
            or np.any(values < 0) or np.any(values != np.floor(values)):
        raise ValueError("`step` must be an integer >= 0 (or a whole number, or an array of "
                         f"them: the engine evaluates schedules at whole steps). Received: "
                         f"step={step!r}")
    return values.astype(np.int64)


class LearningRateSchedule:
    """Base of the schedules. densitron's own are computed by the engine at every step; a
    subclass with its own `__call__(step)` (Keras's way to write a schedule) is evaluated in
    Python for the steps of each engine run ahead of it (step: the int count of updates done,
    as Keras passes it; it returns a number)."""

    _kind = None

    @property
    def _in_python(self):
        return type(self).__call__ is not LearningRateSchedule.__call__

    def __call__(self, step):
        """The rate at `step` as Keras's schedules give it, float32: an int, or a whole
        number or an array of them (Keras's step tensor; an array gives one rate each)."""
        steps = _whole_steps(step)
        config = self._engine_config()
        rates = [_core._scheduled_learning_rate(config, int(s)) for s in steps.ravel()]
        return np.asarray(rates, np.float32).reshape(steps.shape)[()]

    def _engine_config(self):
        if self._in_python:  # LrSchedule::kTable, filled before each run (python_rates)
            first = float(python_rate(self, 0))
            return {"kind": 8, "initial": first, "decay_steps": 1.0, "decay_rate": 0.0,
                    "end": 0.0, "power": 1.0, "alpha": 0.0, "staircase": False,
                    "cycle": False, "warmup": False, "warmup_target": 0.0,
                    "warmup_steps": 0.0, "t_mul": 2.0, "m_mul": 1.0, "boundaries": [0],
                    "values": [first]}
        config = {"kind": self._kind, "initial": 0.0, "decay_steps": 1.0, "decay_rate": 0.0,
                  "end": 0.0, "power": 1.0, "alpha": 0.0, "staircase": False, "cycle": False,
                  "warmup": False, "warmup_target": 0.0, "warmup_steps": 0.0, "t_mul": 2.0,
                  "m_mul": 1.0, "boundaries": [], "values": []}
        config.update(self._engine_extra())
        return config

    def _engine_extra(self):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError(
            f"{type(self).__name__} must define get_config() to be saved (and from_config, "
            "unless its config holds its constructor's arguments). Received: a schedule "
            "without get_config")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate · decay_rate ^ (step / decay_steps) (the exponent floored when
    staircase)."""

    _kind = _EXPONENTIAL

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.decay_rate = _number("decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def _engine_extra(self):
        return {"initial": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    """initial_learning_rate / (1 + decay_rate · step / decay_steps) (floored when
    staircase)."""

    _kind = _INVERSE_TIME

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)


class PolynomialDecay(LearningRateSchedule):
    """From initial_learning_rate to end_learning_rate over decay_steps along
    (1 - step/decay_steps) ^ power; with cycle, decay_steps grows to the next multiple."""

    _kind = _POLYNOMIAL

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _number("end_learning_rate", end_learning_rate)
        self.power = _number("power", power)
        self.cycle = bool(cycle)
        self.name = name

    def _engine_extra(self):
        return {"initial": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end": self.end_learning_rate, "power": self.power, "cycle": self.cycle}

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to boundaries[0] (inclusive), values[i] up to boundaries[i], then
    values[-1]."""

    _kind = _PIECEWISE

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        for arg, value in (("boundaries", boundaries), ("values", values)):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise TypeError(f"`{arg}` must be a list of numbers. Received: {arg}={value!r}")
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        self.boundaries = [_number("boundaries", b) for b in boundaries]
        self.values = [_number("values", v) for v in values]
        self.name = name

    def _engine_extra(self):
        # Keras compares the integer step with the boundaries cast to its integer type.
        return {"boundaries": [int(b) for b in self.boundaries], "values": self.values,
                "initial": self.values[0]}

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """A half cosine from initial_learning_rate (or, after a linear warmup of warmup_steps,
    from warmup_target) down to alpha times it, over decay_steps."""

    _kind = _COSINE

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.alpha = _number("alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number("warmup_target",
                                                                         warmup_target)
        self.warmup_steps = _number("warmup_steps", warmup_steps)
        if self.warmup_target is not None and not self.warmup_steps > 0:
            raise ValueError("A warmup needs `warmup_steps` > 0. "
                             f"Received: warmup_steps={warmup_steps!r}")

    def _engine_extra(self):
        return {"initial": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup": self.warmup_target is not None,
                "warmup_target": self.warmup_target or 0.0, "warmup_steps": self.warmup_steps}

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods of first_decay_steps · t_mul^i, each
    starting from m_mul^i times the initial rate."""

    _kind = _COSINE_RESTARTS

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _number("first_decay_steps", first_decay_steps, positive=True)
        self._t_mul = _number("t_mul", t_mul, positive=True)
        self._m_mul = _number("m_mul", m_mul)
        self.alpha = _number("alpha", alpha)
        self.name = name

    def _engine_extra(self):
        return {"initial": self.initial_learning_rate, "decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha}

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


def python_rate(schedule, step):
    """A Python schedule's rate at `step` as a float, with a Keras-style error for anything
    else."""
    value = schedule(int(step))
    try:
        rate = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"A learning-rate schedule must return a number. Received: "
                        f"{type(schedule).__name__}({step}) = {value!r}") from None
    return rate


def python_rates(schedule, first, count):
    """float32 rates of a Python schedule for steps first .. first + count - 1."""
    return np.array([python_rate(schedule, first + k) for k in range(count)], dtype=np.float32)


_CLASSES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PolynomialDecay,
                                     PiecewiseConstantDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule):
    """Keras's {"class_name", "config"} form of a schedule."""
    return serialization.serialize(schedule)


def deserialize(config):
    return serialization.deserialize(config, _CLASSES, "learning rate schedule")


__all__ = ["CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
           "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "deserialize",
           "serialize"]
