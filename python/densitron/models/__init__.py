"""Models: Functional (`Model(inputs, outputs)`) and Sequential."""

from densitron.models.functional import Functional, Model
from densitron.models.sequential import Sequential
from densitron.saving import load_model

__all__ = ["Functional", "Model", "Sequential", "load_model"]
