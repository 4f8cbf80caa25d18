"""Bad input to the convolutions, poolings and lookup layers (found by fuzzing them against
Keras 3.15): a ValueError or TypeError naming the argument and what was received, never a
crash, an absurd allocation or a silently wrong result."""

import numpy as np
import pytest
from densitron import layers
from densitron.layers import Input
from densitron.models import Model


def raises(exc, *fragments):
    """pytest.raises that also checks the message says what was received and names it."""
    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *a):
            handled = self.ctx.__exit__(*a)
            msg = str(self.info.value)
            assert "Received" in msg, msg
            for f in fragments:
                assert f in msg, (f, msg)
            return handled

    return _Ctx()


# --- IntegerLookup's engine lookup: OOV ids of any value stay in range ----------------------

def floormod_ids(x, n_oov, start=0):
    """Keras's OOV ids of float inputs: cast to int64 as x86 does (NaN and values beyond
    int64's range its minimum), floormod n_oov."""
    x = np.asarray(x, np.float64)
    inside = (x >= -2.0**63) & (x < 2.0**63)
    v = np.where(inside, np.trunc(np.where(inside, x, 0)), 0).astype(np.int64)
    v = np.where(inside, v, np.iinfo(np.int64).min)
    return start + np.mod(v, n_oov)


@pytest.mark.parametrize("n_oov", [3, 7])
def test_lookup_oov_ids_of_huge_inf_and_nan_values_stay_in_range(n_oov):
    # found by fuzzing: the engine's floormod in doubles gave id -4 for 3.3376e16 (7 OOV
    # indices) and NaN for inf: an Embedding after the lookup read memory before its table
    values = np.array([[3.337631970623488e16, -3.294010135281664e16, np.inf, -np.inf,
                        3e38, -1e30, 2.0**40, -2.0**63, 12.0, -7.0]], np.float32)
    vocab = [12, 36, 1138, 42]
    inp = Input(shape=(values.shape[1],), dtype="int64")
    lookup = layers.IntegerLookup(vocabulary=vocab, num_oov_indices=n_oov)
    ids = Model(inp, lookup(inp)).predict(values, verbose=0)
    want = floormod_ids(values.astype(np.float64), n_oov)
    want[0, 8] = n_oov  # 12: the first token, after the OOV indices
    np.testing.assert_array_equal(ids, want)
    assert ids.min() >= 0 and ids.max() < n_oov + len(vocab)
    # the same ids on arrays (float64: exact)
    np.testing.assert_array_equal(lookup(values.astype(np.float64)), want)
    # and an Embedding reads its own rows for them
    embed = layers.Embedding(n_oov + len(vocab), 3, embeddings_initializer="uniform")
    out = Model(inp, embed(lookup(inp))).predict(values, verbose=0)
    np.testing.assert_array_equal(out, embed.get_weights()[0][want])


def test_lookup_nan_in_a_model_is_the_oov_id_of_int64_minimum():
    inp = Input(shape=(2,), dtype="int64")
    lookup = layers.IntegerLookup(vocabulary=[5, 6], num_oov_indices=3, mask_token=0)
    out = Model(inp, lookup(inp)).predict(np.array([[np.nan, 0.0]]), verbose=0)
    # (-2**63 floormod 3 is 1; the mask token 0 is id 0; OOV ids start at 1)
    np.testing.assert_array_equal(out, [[1 + 1, 0]])
    np.testing.assert_array_equal(lookup(np.array([[np.nan, 0.0]])), [[2, 0]])
