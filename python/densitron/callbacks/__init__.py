"""Callbacks: hooks into the fit loop, with Keras's names and call order."""

from densitron.callbacks.callback import Callback, CallbackList, History, ProgbarLogger
from densitron.callbacks.training import (EarlyStopping, LambdaCallback, LearningRateScheduler,
                                          ReduceLROnPlateau, TerminateOnNaN)

__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ProgbarLogger", "ReduceLROnPlateau", "TerminateOnNaN"]
