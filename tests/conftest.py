import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _fresh_session():
    import densitron

    densitron.utils.clear_session()
    densitron.utils.set_random_seed(1234)
    yield
