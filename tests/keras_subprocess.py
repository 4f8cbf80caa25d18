"""Keras on JAX (which trains; the tests' own session runs Keras's numpy backend) in a child
process: the tests that compare densitron with it run their Keras side through here."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

# Keras's initial weights from one seed: from a random draw, now and then (1 run in 15 of
# test_conv_transpose_native's wide decoder) a ReLU's input lies within float32's rounding of 0
# in float64 too, float32 sums taken in another order put it on the other side, and a whole
# kernel column's Adam steps differ: chance, not an error, that a test should not see.
_PRELUDE = ("import sys, warnings; warnings.simplefilter('ignore'); "
            f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            "import keras; keras.utils.set_random_seed(0)\n")


def run_keras_on_jax(code, *args, timeout=600):
    """The standard output of Python `code` (given `args` as sys.argv[1:]) run with Keras on
    JAX on the CPU, warnings off and tests/ importable (`import test_x as t`); the test fails
    with the child's error when it does not exit 0, and is skipped without jax or keras."""
    return run_keras_on("jax", code, *args, timeout=timeout)


def run_keras_on(backend, code, *args, timeout=600):
    """run_keras_on_jax's on Keras's `backend` ("jax" or "torch": on torch, as on TensorFlow,
    a stateful recurrent layer's states are updated by its calls; on JAX they are not)."""
    if not all(importlib.util.find_spec(m) for m in (backend, "keras")):
        pytest.skip(f"Keras on {backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _PRELUDE + code, *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def keras_on_jax_json(code, timeout=600):
    """The JSON value that `code` run by run_keras_on_jax prints last."""
    return json.loads(run_keras_on_jax(code, timeout=timeout).strip().splitlines()[-1])


# The end of the scripts of assert_trains_as_keras.
_TRAINS_AS_KERAS = """
for opt in (lambda ns: ns.optimizers.SGD(0.05), lambda ns: ns.optimizers.Adam(1e-3)):
    theirs, ours = build(keras, opt), build(densitron, opt)
    ours.set_weights(theirs.get_weights())
    a = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(b, a, rtol=1e-5)
    for u, v in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
print("same")
"""


def assert_trains_as_keras(script):
    """Runs `script` (its `build(ns, opt)` makes one model in densitron's or Keras's namespace;
    x, y its data) with Keras on JAX, then trains both models 2 epochs from Keras's initial
    weights under SGD and under Adam: the losses within 1e-5, the weights within 1e-4."""
    out = run_keras_on_jax(textwrap.dedent(script) + _TRAINS_AS_KERAS)
    assert out.strip().endswith("same"), out[-3000:]


def stateful_files_both_ways(model, x, script, tmp_path):
    """A stateful recurrent model's .keras files with Keras on JAX: `script` (run with tmp_path)
    loads densitron.keras, predicts x into keras_on_densitron.npy, and writes keras.keras and
    its predict's keras.npy. densitron's predict from fresh states must match Keras's of its
    file (the states, moved on by a second predict first, are not saved); the model loaded from
    Keras's file predicts as Keras and moves on from there. Returns it and its first predict."""
    import densitron
    import numpy as np

    expected = model.predict(x, batch_size=len(x), verbose=0)
    model.predict(x, batch_size=len(x), verbose=0)  # (states moved on: not saved)
    model.save(tmp_path / "densitron.keras")
    run_keras_on_jax(script, str(tmp_path))
    np.testing.assert_allclose(np.load(tmp_path / "keras_on_densitron.npy"), expected,
                               rtol=1e-5, atol=1e-6)
    theirs = densitron.saving.load_model(tmp_path / "keras.keras")
    first = theirs.predict(x, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(first, np.load(tmp_path / "keras.npy"), rtol=1e-5, atol=1e-5)
    assert np.abs(theirs.predict(x, batch_size=len(x), verbose=0) - first).max() > 1e-4
    return theirs, first
