"""Models: Functional (`Model(inputs, outputs)`) and Sequential."""

from densitron.models.functional import Functional, Model
from densitron.models.sequential import Sequential

__all__ = ["Functional", "Model", "Sequential"]
