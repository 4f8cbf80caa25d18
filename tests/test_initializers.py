"""Initializers: Keras's formulas, seeds and errors."""

import math

import numpy as np
import pytest

from densitron import initializers


@pytest.mark.parametrize("name,scale,mode,uniform", [
    ("glorot_uniform", 1.0, "fan_avg", True), ("glorot_normal", 1.0, "fan_avg", False),
    ("he_uniform", 2.0, "fan_in", True), ("he_normal", 2.0, "fan_in", False),
    ("lecun_uniform", 1.0, "fan_in", True), ("lecun_normal", 1.0, "fan_in", False),
])
def test_variance_scaling_family(name, scale, mode, uniform):
    init = initializers.get(name)
    init.seed = 3
    w = init((400, 300))
    fan = {"fan_in": 400, "fan_avg": 350}[mode]
    var = scale / fan
    if uniform:
        limit = math.sqrt(3 * var)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    else:  # truncated at two standard deviations of the untruncated normal
        std = math.sqrt(var) / 0.87962566103423978
        assert np.abs(w).max() <= 2 * std + 1e-6
    assert w.var() == pytest.approx(var, rel=0.05)
    assert w.dtype == np.float32


def test_seeded_initializers_repeat():
    for cls in (initializers.RandomNormal, initializers.RandomUniform,
                initializers.TruncatedNormal, initializers.GlorotUniform,
                initializers.Orthogonal):
        a, b = cls(seed=5)((6, 4)), cls(seed=5)((6, 4))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, cls(seed=6)((6, 4)))


@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (2, 3, 4)])
def test_orthogonal(shape):
    w = initializers.Orthogonal(gain=2.0, seed=1)(shape).reshape(-1, shape[-1]).astype(np.float64)
    small = min(w.shape)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-5)
    with pytest.raises(ValueError, match="Received: shape=\\(3,\\)"):
        initializers.Orthogonal()((3,))


def test_identity_zeros_ones_constant():
    np.testing.assert_array_equal(initializers.get("identity")((3, 4)), np.eye(3, 4))
    np.testing.assert_array_equal(initializers.Identity(gain=0.5)((2, 2)), 0.5 * np.eye(2))
    with pytest.raises(ValueError, match="Received: shape"):
        initializers.Identity()((2, 2, 2))
    assert not initializers.get("zeros")((3,)).any()
    assert (initializers.get("ones")((3,)) == 1).all()
    assert (initializers.Constant(2.5)((2, 2)) == 2.5).all()


def test_unknown_initializer_and_round_trip():
    with pytest.raises(ValueError, match="Received: initializer='glorot'"):
        initializers.get("glorot")
    for name in ("orthogonal", "identity", "he_normal", "variance_scaling", "constant"):
        init = initializers.get(name)
        again = initializers.deserialize(initializers.serialize(init))
        assert type(again) is type(init) and again.get_config() == init.get_config()


def test_keras_alias_class_names():
    assert initializers.OrthogonalInitializer is initializers.Orthogonal
    assert initializers.IdentityInitializer is initializers.Identity
    init = initializers.get({"class_name": "OrthogonalInitializer",
                             "config": {"gain": 2.0, "seed": 1}})
    w = init((4, 3))
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(3), atol=1e-5)
    assert isinstance(initializers.get("IdentityInitializer"), initializers.Identity)


def test_snake_case_names_are_the_classes():
    # Keras exports every initializer class under its snake_case name too:
    # `kernel_initializer=keras.initializers.he_normal(seed=1)`.
    for name in ("zeros", "ones", "constant", "random_uniform", "random_normal",
                 "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
                 "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
                 "identity"):
        assert getattr(initializers, name) is type(initializers.get(name)), name
    a = initializers.he_normal(seed=3)((5, 4))
    b = initializers.HeNormal(seed=3)((5, 4))
    np.testing.assert_array_equal(a, b)
    assert initializers.constant(2.5).get_config() == {"value": 2.5}


def test_weights_drawn_a_chunk_at_a_time_are_the_one_draw_values(monkeypatch):
    # Initializers fill float32 weights a chunk of draws at a time (no float64 array of the
    # whole shape): the values are those of one float64 draw of the whole shape, cast.
    import densitron.initializers as init

    monkeypatch.setattr(init, "_CHUNK", 1000)
    shape = (1500, 7)
    for name, reference in [
        ("RandomUniform", lambda rng: rng.uniform(-0.05, 0.05, size=shape)),
        ("RandomNormal", lambda rng: rng.normal(0.0, 0.05, size=shape)),
        ("GlorotUniform", lambda rng: rng.uniform(-(6 / 1507) ** 0.5, (6 / 1507) ** 0.5,
                                                  size=shape)),
    ]:
        got = getattr(init, name)(seed=8)(shape)
        want = reference(np.random.default_rng(8)).astype(np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=name)
    # truncated: values beyond 2 standard deviations redrawn, round after round, in order
    rng = np.random.default_rng(8)
    z = rng.normal(0.0, 1.0, size=shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.normal(0.0, 1.0, size=int(bad.sum()))
        bad = np.abs(z) > 2.0
    np.testing.assert_array_equal(init.TruncatedNormal(stddev=0.3, seed=8)(shape),
                                  (0.3 * z).astype(np.float32))


def test_a_large_layer_is_built_and_used_holding_its_weights_once():
    # Dense(4000) on 4000 features: 64 MB of weights. Building the layer and the model and
    # predicting add them once to the process's peak memory (the initializer's float64 draw,
    # a copy of it and the gradient buffer made them three to four times as much).
    import subprocess
    import sys

    code = (
        "import resource, numpy as np, densitron as K\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "m = K.Sequential([K.Input((4000,)), K.layers.Dense(4000, use_bias=False)])\n"
        "m.predict(np.zeros((1, 4000), np.float32), verbose=0)\n"
        "base = peak()\n"
        "m2 = K.Sequential([K.Input((4000,)), K.layers.Dense(4000, use_bias=False)])\n"
        "m2.predict(np.zeros((1, 4000), np.float32), verbose=0)\n"
        "print((peak() - base) / 64e6)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert float(out.stdout) < 1.3, out.stdout
