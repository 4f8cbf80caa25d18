"""keras.utils.pad_sequences: lists of sequences to one padded NumPy array."""

import numpy as np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Keras's pad_sequences: a (num_samples, maxlen, ...) array of `dtype` filled with `value`,
    each sequence truncated (`truncating`: "pre" drops its start, "post" its end) and placed at
    the end ("pre" padding) or the start ("post")."""
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood. Received: padding='
                         f"{padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood. Received: '
                         f"truncating={truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable. Received: sequences of type "
                         f"{type(sequences).__name__}")
    lengths, sample_shape = [], ()
    for s in sequences:
        try:
            lengths.append(len(s))
        except TypeError:
            raise ValueError("`sequences` must be a list of iterables. Received: a "
                             f"non-iterable entry {s!r}") from None
        if len(s) and not sample_shape:
            sample_shape = np.asarray(s).shape[1:]
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"`maxlen` must be a non-negative integer or None. Received: "
                         f"maxlen={maxlen!r}")
    out = np.full((len(lengths), int(maxlen)) + tuple(sample_shape), value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s) or maxlen == 0:
            continue
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {i} is "
                             f"different from expected shape {tuple(sample_shape)}. Received: "
                             f"sequence {i}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out
