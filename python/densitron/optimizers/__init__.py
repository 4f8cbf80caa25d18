"""Optimizers with Keras's names, arguments and update formulas (run by the C++ engine)."""

from densitron.optimizers import schedules
from densitron.optimizers.optimizer import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Ftrl,
                                            Lamb, Lion, Nadam, Optimizer, RMSprop, deserialize,
                                            get, serialize)

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "Adamax", "AdamW", "Ftrl", "Lamb", "Lion", "Nadam",
           "Optimizer", "RMSprop", "deserialize", "get", "schedules", "serialize"]
