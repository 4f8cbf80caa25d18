"""keras.preprocessing: Keras 3's names for utilities that live in densitron.utils
(`from keras.preprocessing.sequence import pad_sequences` ports unchanged)."""

from densitron.preprocessing import sequence
from densitron.utils import timeseries_dataset_from_array

__all__ = ["sequence", "timeseries_dataset_from_array"]
