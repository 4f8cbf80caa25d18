import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# examples/: the Keras guides' models, written once for Keras and densitron
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples"))


@pytest.fixture(autouse=True)
def _fresh_session():
    import densitron

    threads = densitron.get_num_threads()
    densitron.utils.clear_session()
    densitron.utils.set_random_seed(1234)
    # Runs keep the threads they ask for even on a busy machine, so that the tests of how
    # steps are split do not depend on what else runs (test_oversubscription.py turns the
    # adaptation on; results are the same either way).
    densitron.set_adaptive_threads(False)
    yield
    densitron.set_num_threads(threads)  # tests set their own thread counts freely
    densitron.set_adaptive_threads(True)


@pytest.fixture
def keras():
    """Keras itself on its numpy backend (which imports jax), or the test is skipped. Its
    initial weights are drawn from one seed, as keras_subprocess's are (why: see there)."""
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    pytest.importorskip("jax", reason="Keras's numpy backend imports jax at import time")
    module = pytest.importorskip("keras", reason="the `keras` package is not installed")
    module.utils.set_random_seed(0)
    return module
