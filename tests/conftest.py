import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture
def fixtures_dir():
    return FIXTURES


def load_fixture(name):
    """Loads tests/fixtures/<name> (an .npz written by tests/tools/make_reference.py)."""
    return np.load(os.path.join(FIXTURES, name), allow_pickle=False)
