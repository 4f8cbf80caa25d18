"""densitron.ops' NumPy-like ops on arrays (Keras's keras.ops names computed by NumPy: the
trigonometry, nan-reductions, stacking and splitting, set and index ops, linear algebra,
top_k, erf and the control flow): against Keras's own ops, and refused on symbolic tensors."""

import densitron
import numpy as np
import pytest
from densitron import ops

RNG = np.random.default_rng(4)
A = RNG.normal(size=(4, 5)).astype(np.float32)
B = RNG.normal(size=(4, 5)).astype(np.float32)
U = RNG.uniform(-0.9, 0.9, size=(4, 5)).astype(np.float32)
SPD = (A[:, :4].T @ A[:, :4] + 4 * np.eye(4)).astype(np.float32)
INTS = RNG.integers(0, 7, size=(3, 4))

# (op, args, kwargs) computed alike by densitron and Keras's numpy backend
CASES = [("cos", (A,), {}), ("sin", (A,), {}), ("tan", (U,), {}), ("arcsin", (U,), {}),
         ("arccos", (U,), {}), ("arctan", (A,), {}), ("arctan2", (A, B), {}),
         ("arctanh", (U,), {}), ("arcsinh", (A,), {}), ("cbrt", (A,), {}),
         ("trunc", (A * 3,), {}), ("fmod", (A, B + 3), {}), ("logaddexp2", (A, B), {}),
         ("signbit", (A,), {}), ("median", (A,), {"axis": 1}), ("ptp", (A,), {"axis": 0}),
         ("quantile", (A, 0.3), {"axis": 1}), ("percentile", (A, 70.0), {}),
         ("nanmean", (np.where(A > 1, np.nan, A),), {"axis": 1}),
         ("nansum", (np.where(A > 1, np.nan, A),), {}), ("average", (A,), {"axis": 0}),
         ("diff", (A,), {"axis": 1}), ("cross", (A[:, :3], B[:, :3]), {}),
         ("inner", (A[0], B[0]), {}), ("vdot", (A, B), {}), ("kron", (A[:2, :2], B[:2, :2]), {}),
         ("hstack", ([A, B],), {}), ("vstack", ([A, B],), {}), ("dstack", ([A, B],), {}),
         ("append", (A, B), {"axis": 0}), ("repeat", (A, 2), {"axis": 1}),
         ("roll", (A, 2), {"axis": 1}), ("moveaxis", (A, 0, 1), {}),
         ("swapaxes", (A, 0, 1), {}), ("ravel", (A,), {}), ("diagonal", (A,), {}),
         ("fliplr", (A,), {}), ("flipud", (A,), {}), ("rot90", (A,), {}),
         ("pad", (A, [[1, 0], [0, 2]]), {}), ("tri", (3,), {}), ("vander", (A[0],), {}),
         ("count_nonzero", (INTS,), {}), ("bincount", (INTS.ravel(),), {}),
         ("digitize", (A, np.array([-1.0, 0.0, 1.0])), {}), ("isin", (INTS, [1, 2]), {}),
         ("searchsorted", (np.sort(A[0]), B[0]), {}), ("gcd", (INTS, INTS + 2), {}),
         ("lcm", (INTS + 1, INTS + 2), {}), ("bitwise_and", (INTS, INTS + 1), {}),
         ("bitwise_xor", (INTS, 3), {}), ("left_shift", (INTS, 1), {}),
         ("logical_xor", (A > 0, B > 0), {}), ("isclose", (A, A + 1e-9), {}),
         ("det", (SPD,), {}), ("inv", (SPD,), {}), ("cholesky", (SPD,), {}),
         ("solve", (SPD, A[:, 0]), {}), ("logdet", (SPD,), {}), ("erf", (A,), {}),
         ("erfc", (A,), {}), ("rsqrt", (np.abs(SPD) + 1,), {}), ("corrcoef", (A,), {}),
         ("hamming", (5,), {}), ("logspace", (0.0, 2.0, 5), {})]


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[c[0] for c in CASES])
def test_on_arrays_as_keras(keras, name, args, kwargs):
    ours = getattr(ops, name)(*args, **kwargs)
    theirs = getattr(keras.ops, name)(*args, **kwargs)
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64),
                               rtol=2e-5, atol=1e-5, err_msg=name)


def test_top_k_control_flow_and_more(keras):
    values, indices = ops.top_k(A, 2)
    theirs = keras.ops.top_k(A, 2)
    np.testing.assert_allclose(values, theirs[0])
    np.testing.assert_array_equal(indices, theirs[1])
    targets = np.array([0, 1, 2, 3])
    np.testing.assert_array_equal(ops.in_top_k(targets, A, 2), keras.ops.in_top_k(targets, A, 2))
    np.testing.assert_array_equal(ops.slice(A, (1, 2), (2, 3)), A[1:3, 2:5])
    assert ops.is_tensor(A) and not ops.is_tensor(3.0)
    assert ops.cond(True, lambda: 1, lambda: 2) == 1
    assert ops.switch(5, [lambda x: x + 1, lambda x: x * 10], 3) == 30  # clamped, as Keras's
    assert ops.while_loop(lambda i, s: i < 4, lambda i, s: (i + 1, s + i), (0, 0)) == (4, 6)
    assert ops.while_loop(lambda i: True, lambda i: i + 1, 0, maximum_iterations=3) == 3
    assert ops.fori_loop(0, 5, lambda i, v: v + i, 0) == 10
    carry, ys = ops.scan(lambda c, x: (c + x, c * x), 0, np.arange(4))
    k_carry, k_ys = keras.ops.scan(lambda c, x: (c + x, c * x), 0, np.arange(4))
    assert int(carry) == int(k_carry)
    np.testing.assert_array_equal(ys, k_ys)
    np.testing.assert_allclose(ops.map(lambda r: r * 2, A), A * 2)
    np.testing.assert_array_equal(ops.get_item(A, (1, 2)), A[1, 2])


def test_refused_on_symbolic_tensors():
    x = densitron.Input((5,))
    for name in ("cos", "median", "det", "top_k", "erf"):
        with pytest.raises(TypeError, match=f"no engine node for ops.{name}.*Received"):
            getattr(ops, name)(x)
    with pytest.raises(TypeError, match="symbolic KerasTensor cannot be converted.*Received"):
        ops.hstack([x, x])  # (tensors inside a list: NumPy's conversion refuses them)
    assert ops.rsqrt(x).shape == (None, 5)  # composed of engine ops: it traces


def test_activation_ops_on_values_of_any_shape_and_keras_ops_defaults():
    # keras.ops activations on a scalar, a list or a 1-D array (they went through a layer,
    # which wants a batch axis), ops.gelu's approximate=True default (activations.gelu's is
    # the exact form) and ops.normalize
    from densitron import activations

    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(ops.relu(x), [1.0, 0.0, 0.5])
    assert ops.sigmoid(0.0) == np.float32(0.5) and ops.sigmoid([0.0, 1.0]).dtype == np.float32
    e = np.exp(x - x.max())
    np.testing.assert_allclose(ops.softmax(x), e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(ops.gelu(x), activations.gelu(x, approximate=True), rtol=1e-6)
    np.testing.assert_allclose(ops.gelu(x, approximate=False), activations.gelu(x), rtol=1e-6)
    np.testing.assert_allclose(ops.normalize(np.array([[3.0, 4.0], [0.0, 0.0]])),
                               [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(ops.normalize([[3.0, 1.0]], order=1), [[0.75, 0.25]])
