"""densitron.ops.matmul against a float64 NumPy reference on every ISA path this CPU supports,
plus the argument validation, thread and ISA controls of densitron._core."""

import os
import subprocess
import sys

import numpy as np
import pytest

import densitron
from densitron import _core, ops

SUPPORTED = _core.cpu_info()["supported_isas"]


@pytest.fixture(params=SUPPORTED)
def isa(request):
    saved_isa = _core.cpu_info()["isa"]
    saved_threads = densitron.get_num_threads()
    _core._set_isa(request.param)
    yield request.param
    _core._set_isa(saved_isa)
    densitron.set_num_threads(saved_threads)


def reference(a, b, transpose_a, transpose_b):
    a64 = a.astype(np.float64).T if transpose_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if transpose_b else b.astype(np.float64)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


def operands(rng, m, n, k, transpose_a, transpose_b):
    a = rng.uniform(-1, 1, (k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if transpose_b else (k, n)).astype(np.float32)
    return a, b


def assert_close(got, a, b, transpose_a=False, transpose_b=False):
    want, scale = reference(a, b, transpose_a, transpose_b)
    k = a.shape[0] if transpose_a else a.shape[1]
    tol = 2.0 * (k + 8) * np.finfo(np.float32).eps * scale + 1e-7
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_array_less(np.abs(got - want), tol)


DIMS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 65, 130]


@pytest.mark.parametrize("threads", [1, 2])
def test_tall_narrow_transposed_a_products_bitwise_as_computed_untransposed(isa, threads):
    # Xᵀ·dY with up to 16 columns is computed as its transpose on AVX-512 (the kernel gradient
    # of a narrow Dense layer): the same sums in the same order as with X copied row-major.
    rng = np.random.default_rng(3)
    densitron.set_num_threads(threads)
    for m, n, k in [(784, 16, 32), (784, 10, 32), (130, 1, 7), (1000, 16, 600), (257, 9, 33),
                    (128, 15, 512), (784, 17, 32)]:
        x, dy = operands(rng, m, n, k, True, False)
        got = ops.matmul(x, dy, transpose_a=True)
        assert_close(got, x, dy, transpose_a=True)
        np.testing.assert_array_equal(got, ops.matmul(np.ascontiguousarray(x.T), dy))


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_tail_sweep(isa, transpose_a, transpose_b):
    rng = np.random.default_rng(0)
    for m in DIMS:
        for n in DIMS:
            for k in (1, 6, 33, 130):
                a, b = operands(rng, m, n, k, transpose_a, transpose_b)
                got = ops.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
                assert_close(got, a, b, transpose_a, transpose_b)


# Wide products with a transposed A read it in place (rows 100 or 255 floats apart) or pack it
# (512 floats apart, where reading in place would crowd a few L1 sets); a row-major B whose rows
# lie a multiple of 4 KiB apart (1024 or 2048 wide) is packed from 9 row tiles, in place below.
@pytest.mark.parametrize("shape", [(255, 257, 300), (32, 64, 784), (784, 64, 32), (300, 10, 64),
                                   (100, 300, 33), (512, 160, 40), (100, 1024, 300),
                                   (75, 2048, 40), (40, 1024, 70)])
def test_matmul_larger_shapes(isa, shape):
    m, n, k = shape
    rng = np.random.default_rng(1)
    for transpose_a in (False, True):
        for transpose_b in (False, True):
            a, b = operands(rng, m, n, k, transpose_a, transpose_b)
            got = ops.matmul(a, b, transpose_a, transpose_b)
            assert_close(got, a, b, transpose_a, transpose_b)


def test_matmul_one_and_two_threads_bitwise_equal(isa):
    rng = np.random.default_rng(2)
    for m, n, k in [(300, 200, 300), (32, 784, 64), (784, 64, 32), (1000, 10, 100)]:
        a, b = operands(rng, m, n, k, False, True)
        densitron.set_num_threads(1)
        one = ops.matmul(a, b, transpose_b=True)
        densitron.set_num_threads(2)
        two = ops.matmul(a, b, transpose_b=True)
        assert np.array_equal(one, two)


def test_strided_views_and_out(isa):
    rng = np.random.default_rng(3)
    big_a = rng.uniform(-1, 1, (40, 50)).astype(np.float32)
    big_b = rng.uniform(-1, 1, (80, 80)).astype(np.float32)
    a = big_a[3:36, 5:45]  # leading dimension 50 > 40 columns: read in place
    b = big_b[::2, 1:30]  # row stride 140 floats
    out_big = np.full((40, 40), 7.0, np.float32)
    out = out_big[2:35, 4:33]
    result = _core.matmul(a, b, out=out)
    assert result is out
    assert_close(out, a, b)
    mask = np.ones_like(out_big, bool)
    mask[2:35, 4:33] = False
    assert np.all(out_big[mask] == 7.0)  # nothing outside the view is written
    # Column-strided inputs (unusable layout) are copied once.
    a_cols = big_a[:30, ::2]  # (30, 25)
    b_cols = big_b[:24, ::3][:, :25]  # (24, 25), stored n × k
    got = _core.matmul(a_cols, b_cols, transpose_b=True)
    assert_close(got, a_cols, b_cols, False, True)
    assert_close(ops.matmul(b_cols, a_cols, transpose_b=True), b_cols, a_cols, False, True)


def test_ops_matmul_converts_array_likes():
    a = [[1, 2, 3], [4, 5, 6]]
    b = np.arange(6, dtype=np.float64).reshape(3, 2)
    got = ops.matmul(a, b)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(a, np.float64) @ b)
    np.testing.assert_array_equal(ops.matmul(b, a, True, True), (np.array(a) @ b).T)


def test_empty_and_zero_k():
    a = np.zeros((4, 0), np.float32)
    b = np.zeros((0, 3), np.float32)
    np.testing.assert_array_equal(ops.matmul(a, b), np.zeros((4, 3), np.float32))
    assert ops.matmul(np.zeros((0, 5), np.float32), np.ones((5, 2), np.float32)).shape == (0, 2)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: _core.matmul(np.ones((2, 2)), np.ones((2, 2), np.float32)), TypeError, "`a`"),
        (lambda: _core.matmul(np.ones((2, 2), np.float32), [[1.0]]), TypeError, "`b`"),
        (lambda: ops.matmul(np.ones(3, np.float32), np.ones((3, 1), np.float32)), ValueError, "`a`"),
        (lambda: ops.matmul(np.ones((2, 3), np.float32), np.ones((2, 3, 1))), ValueError, "`b`"),
        (lambda: ops.matmul(np.ones((2, 3)), np.ones((2, 3))), ValueError, "incompatible"),
        (lambda: ops.matmul(np.ones((2, 3)), np.ones((3, 2)), True), ValueError, "b.shape"),
        (lambda: ops.matmul(np.array(["x"]), np.ones((1, 1))), TypeError, "`a`"),
        (lambda: ops.matmul(np.ones((2, 2)), "abc"), TypeError, "`b`"),
        (
            lambda: ops.matmul(np.ones((2, 3)), np.ones((3, 4)), out=np.empty((2, 5), np.float32)),
            ValueError,
            "`out`",
        ),
        (
            lambda: ops.matmul(np.ones((2, 3)), np.ones((3, 4)), out=np.empty((2, 4))),
            TypeError,
            "`out`",
        ),
        (
            lambda: ops.matmul(
                np.ones((2, 3)), np.ones((3, 4)), out=np.empty((4, 2), np.float32).T
            ),
            ValueError,
            "`out`",
        ),
        (lambda: densitron.set_num_threads(0), ValueError, "Received: n=0"),
        (lambda: _core._set_isa("sse9"), ValueError, "Received: name='sse9'"),
    ],
)
def test_bad_arguments_raise(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert words in message
    assert "Received:" in message


def test_out_overlapping_input_is_rejected():
    buf = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        ops.matmul(buf, buf, out=buf)
    with pytest.raises(ValueError, match="writeable"):
        out = np.empty((4, 4), np.float32)
        out.flags.writeable = False
        ops.matmul(buf, buf, out=out)


def test_cpu_info_and_threads():
    info = densitron.cpu_info()
    assert info["isa"] in info["supported_isas"]
    assert "generic" in info["supported_isas"]
    assert info["num_threads"] == densitron.get_num_threads() >= 1
    saved = densitron.get_num_threads()
    try:
        densitron.set_num_threads(1)
        assert densitron.cpu_info()["num_threads"] == 1
    finally:
        densitron.set_num_threads(saved)


def _run_python(code, **env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_environment_forces_isa_and_threads():
    code = "import densitron; i = densitron.cpu_info(); print(i['isa'], i['num_threads'])"
    res = _run_python(code, DENSITRON_ISA="generic", OMP_NUM_THREADS="1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["generic", "1"]
    res = _run_python(code, DENSITRON_ISA="avx3000")
    assert res.returncode != 0
    assert "DENSITRON_ISA=avx3000" in res.stderr
    for name in ("avx2", "avx512"):
        if name not in SUPPORTED:
            res = _run_python(code, DENSITRON_ISA=name)
            assert res.returncode != 0
            assert "not supported" in res.stderr
