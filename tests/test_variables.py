"""densitron.Variable with Keras's signature: Variable(initializer, shape=None, dtype=None,
trainable=True, autocast=True, aggregation="none", synchronization="auto", name=None), its
values float32; the old Variable(value, name, trainable) form still works."""

import densitron
import numpy as np
import pytest
from densitron import initializers


def test_variable_from_an_array_a_name_or_an_initializer():
    v = densitron.Variable(np.random.default_rng(0).random(10), name="special_arr",
                           dtype="float32")
    assert (v.name, v.path, v.shape, v.dtype, v.trainable) == (
        "special_arr", "special_arr", (10,), "float32", True)
    assert v.numpy().dtype == np.float32
    assert densitron.Variable(np.zeros(3), trainable=False).trainable is False
    zeros = densitron.Variable(initializer="zeros", shape=(2, 3))
    assert zeros.shape == (2, 3) and not zeros.numpy().any()
    np.testing.assert_array_equal(densitron.Variable(initializers.Constant(2.0), [2]).numpy(),
                                  [2.0, 2.0])
    made = densitron.Variable(lambda shape, dtype=None: np.full(shape, 5.0), shape=(2,))
    np.testing.assert_array_equal(made.numpy(), [5.0, 5.0])
    assert densitron.Variable("ones", (2,), "float32", False).trainable is False
    assert densitron.Variable(3.0).shape == ()
    assert densitron.Variable([1, 2]).dtype == "float32"  # (integers converted)
    # Keras's names when none is given: "variable", then numbered
    densitron.utils.clear_session()
    assert [densitron.Variable(1.0).name for _ in range(2)] == ["variable", "variable_1"]
    v = densitron.Variable(1.0, aggregation="sum", synchronization="on_read")
    assert (v.aggregation, v.synchronization) == ("sum", "on_read")


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16", np.float64, "float"])
def test_variable_takes_a_float_dtype_as_float32(dtype):
    v = densitron.Variable(np.arange(3.0), dtype=dtype)
    assert v.dtype == "float32" and v.numpy().dtype == np.float32
    np.testing.assert_array_equal(v.numpy(), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("kwargs,match", [
    ({"initializer": np.zeros(3), "dtype": "int32"}, r"float dtype. Received: dtype='int32'"),
    ({"initializer": np.zeros(3), "dtype": "bool"}, r"Received: dtype='bool'"),
    ({"initializer": "zeros"}, r"`shape` argument should be specified. Received: "),
    ({"initializer": "zeros", "shape": (2, -1)}, r"Received: shape=\(2, -1\)"),
    ({"initializer": np.zeros(3), "shape": (2,)}, r"Received: shape=\(2,\)"),
    ({"initializer": 1.0, "name": "a/b"}, r"cannot contain character `/`. Received: name='a/b'"),
    ({"initializer": 1.0, "aggregation": "max"}, r"Received: aggregation='max'"),
    ({"initializer": 1.0, "synchronization": "x"}, r"Received: synchronization='x'"),
    ({"initializer": "no_such_initializer", "shape": (2,)}, r"Received: "),
])
def test_variable_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        densitron.Variable(**kwargs)


def test_variable_old_positional_form():
    v = densitron.Variable(np.ones(2), "w", False)
    assert (v.name, v.trainable, v.shape) == ("w", False, (2,))
    v = densitron.Variable(np.ones((2, 2)), "kernel", path="dense/kernel")
    assert (v.name, v.path, v.trainable) == ("kernel", "dense/kernel", True)
