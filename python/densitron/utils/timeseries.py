"""Keras's timeseries_dataset_from_array as a PyDataset of NumPy batches: sliding windows over
an array, gathered batch by batch (no copy of every window up front)."""

import math

import numpy as np

from densitron.utils.dataset import PyDataset


def _whole(name, value, least):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"`{name}` must be an integer >= {least}. Received: {name}={value!r}")
    return int(value)


class _Windows(PyDataset):
    """Batches of windows: batch i holds the windows that start at starts[i·b:(i+1)·b], each
    the rows start, start + rate, ... (length of them), with the target of its first row."""

    def __init__(self, data, targets, starts, length, rate, batch_size):
        super().__init__()
        self._data, self._targets, self._starts = data, targets, starts
        self._offsets = np.arange(length) * rate
        self._batch_size = batch_size

    def __len__(self):
        if self._batch_size is None:
            return len(self._starts)
        return math.ceil(len(self._starts) / self._batch_size)

    def __getitem__(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch index out of range. Received: index={index}")
        index %= len(self)
        size = self._batch_size or 1
        starts = self._starts[index * size:(index + 1) * size]
        windows = self._data[starts[:, None] + self._offsets]
        if self._batch_size is None:  # (one window, without a batch axis, as Keras's)
            windows, starts = windows[0], starts[0]
        if self._targets is None:
            return windows
        return windows, self._targets[starts]


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Keras's sliding windows over `data` (rows in time order): windows of `sequence_length`
    rows `sampling_rate` apart, starting every `sequence_stride` rows from `start_index` to
    `end_index`; each with `targets[start]` (the row's own index from start_index on) when
    targets are given. `shuffle` orders the windows as NumPy's RandomState(seed) does (Keras
    shuffles with tf.data, in another order). Returns a densitron.utils.PyDataset of
    (windows, targets) batches for fit/evaluate/predict; batch_size None gives one window
    at a time."""
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"`data` must be an array of rows. Received: data={data!r}")
    n = len(data)
    sequence_length = _whole("sequence_length", sequence_length, 1)
    sequence_stride = _whole("sequence_stride", sequence_stride, 1)
    sampling_rate = _whole("sampling_rate", sampling_rate, 1)
    if batch_size is not None:
        batch_size = _whole("batch_size", batch_size, 1)
    for name, value in (("sampling_rate", sampling_rate), ("sequence_stride", sequence_stride)):
        if value >= n:
            raise ValueError(f"`{name}` must be lower than the length of the data. Received: "
                             f"{name}={value}, for data of length {n}")
    start = 0 if start_index is None else _whole("start_index", start_index, 0)
    if start >= n:
        raise ValueError("`start_index` must be lower than the length of the data. Received: "
                         f"start_index={start_index}, for data of length {n}")
    end = n if end_index is None else _whole("end_index", end_index, 1)
    if end_index is not None and (end <= start or end >= n):
        raise ValueError("`end_index` must be higher than `start_index` and lower than the "
                         f"length of the data. Received: start_index={start_index}, "
                         f"end_index={end_index}, for data of length {n}")
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:  # (as Keras: at most len(targets) windows, their targets from
        targets = np.asarray(targets)  # start_index on)
        count = min(count, len(targets))
        targets = targets[start:]
    if count <= 0:
        raise ValueError("No window fits: the data from start_index to end_index is shorter "
                         f"than a window ({sequence_length} rows {sampling_rate} apart). "
                         f"Received: data of length {n}")
    starts = np.arange(0, count, sequence_stride)
    if shuffle:
        np.random.RandomState(np.random.randint(1e6) if seed is None else seed).shuffle(starts)
    return _Windows(data[start:end], targets, starts, sequence_length, sampling_rate,
                    batch_size)
