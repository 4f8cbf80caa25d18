"""Writes the Keras files test_keras_op_nodes.py loads: each model of its build_models, built by
Keras 3 (random weights), saved as <name>.keras, with <name>.npz holding an input `x` and
Keras's predictions `y`. Run once with Keras installed:

    KERAS_BACKEND=jax python tests/data/keras_op_nodes/make_keras_op_nodes.py
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # tests/

import keras  # noqa: E402
from test_keras_op_nodes import build_models  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    for name, (model, shape) in build_models(keras.layers, keras.ops, keras.Input,
                                             keras.Model).items():
        x = np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32)
        if name in ("reductions", "constants"):  # (away from log's and 1/x's poles)
            x = np.abs(x) + 0.5
        model.save(os.path.join(HERE, f"{name}.keras"))
        np.savez(os.path.join(HERE, f"{name}.npz"), x=x,
                 y=np.asarray(model.predict(x, verbose=0), np.float32))
        print(name, keras.__version__, keras.backend.backend())


if __name__ == "__main__":
    main()
