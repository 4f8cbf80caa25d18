"""PyDataset: Keras's base class for datasets written in Python."""


class PyDataset:
    """Subclass it with `__len__` (batches per epoch) and `__getitem__(index)` (batch `index`:
    (x, y) or (x, y, sample_weight)); `on_epoch_begin` / `on_epoch_end` run around each epoch.
    `fit`, `evaluate` and `predict` take it as `x`. `workers`, `use_multiprocessing` and
    `max_queue_size` are Keras's arguments, accepted and not used: densitron reads the batches
    on the calling thread, one engine call per batch."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for arg, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        self.workers = workers
        self.use_multiprocessing = bool(use_multiprocessing)
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__`.")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement `__len__`.")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """A batch as Keras packs one: x alone (a tuple x as (x,), so it stays one input), (x, y), or
    (x, y, sample_weight)."""
    if y is None:
        return (x,) if isinstance(x, tuple) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) of a batch given as x, (x,), (x, y) or (x, y, sample_weight) (a
    list or a tuple), the missing ones None."""
    return unpack(data, "data")


def unpack(batch, arg):
    """unpack_x_y_sample_weight of the batch of argument `arg` (named in the error)."""
    if isinstance(batch, (list, tuple)):
        if not 1 <= len(batch) <= 3:
            raise ValueError(f"A batch of `{arg}` must be (x,), (x, y) or (x, y, sample_weight)"
                             f". Received: a {type(batch).__name__} of {len(batch)} items")
        return tuple(batch) + (None,) * (3 - len(batch))
    return batch, None, None
