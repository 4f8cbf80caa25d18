"""Optimizers with Keras's names, arguments and update formulas (run by the C++ engine)."""

from densitron.optimizers import schedules
from densitron.optimizers.optimizer import (SGD, Adadelta, Adafactor, Adagrad, Adam, Adamax,
                                            AdamW, Ftrl, Lamb, Lion, LossScaleOptimizer, Muon,
                                            Nadam, Optimizer, RMSprop, ScheduleFreeAdamW,
                                            deserialize, get, serialize)

__all__ = ["SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "Ftrl", "Lamb",
           "Lion", "LossScaleOptimizer", "Muon", "Nadam", "Optimizer", "RMSprop",
           "ScheduleFreeAdamW", "deserialize", "get", "schedules", "serialize"]
