"""Keras on JAX (which trains; the tests' own session runs Keras's numpy backend) in a child
process: the tests that compare densitron with it run their Keras side through here."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

_PRELUDE = ("import sys, warnings; warnings.simplefilter('ignore'); "
            f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n")


def run_keras_on_jax(code, *args, timeout=600):
    """The standard output of Python `code` (given `args` as sys.argv[1:]) run with Keras on
    JAX on the CPU, warnings off and tests/ importable (`import test_x as t`); the test fails
    with the child's error when it does not exit 0, and is skipped without jax or keras."""
    if not all(importlib.util.find_spec(m) for m in ("jax", "keras")):
        pytest.skip("Keras on JAX is not installed")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _PRELUDE + code, *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def keras_on_jax_json(code, timeout=600):
    """The JSON value that `code` run by run_keras_on_jax prints last."""
    return json.loads(run_keras_on_jax(code, timeout=timeout).strip().splitlines()[-1])
