"""Models: Functional (`Model(inputs, outputs)`) and Sequential."""

from densitron.models.functional import Functional, Model
from densitron.models.sequential import Sequential
from densitron.saving import clone_model, load_model, model_from_json, save_model

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json",
           "save_model"]
