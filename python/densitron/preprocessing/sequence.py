"""keras.preprocessing.sequence."""

from densitron.utils import pad_sequences

__all__ = ["pad_sequences"]
