"""Callbacks: hooks into the fit loop, with Keras's names and call order."""

from densitron.callbacks.callback import Callback, CallbackList, History, ProgbarLogger

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger"]
