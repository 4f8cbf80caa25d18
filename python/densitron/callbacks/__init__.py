"""Callbacks: hooks into the fit loop, with Keras's names and call order."""

from densitron.callbacks.callback import Callback, CallbackList, History, ProgbarLogger
from densitron.callbacks.files import BackupAndRestore, CSVLogger, ModelCheckpoint
from densitron.callbacks.tensorboard import TensorBoard
from densitron.callbacks.training import (EarlyStopping, LambdaCallback, LearningRateScheduler,
                                          ReduceLROnPlateau, SwapEMAWeights, TerminateOnNaN)

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History",
           "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint", "ProgbarLogger",
           "ReduceLROnPlateau", "SwapEMAWeights", "TensorBoard", "TerminateOnNaN"]
