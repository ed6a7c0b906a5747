import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def space():
    from nasq.spaces import create_space

    return create_space("mobilenet-mnist")


@pytest.fixture(scope="session")
def mnist():
    from nasq.data import load_mnist

    return load_mnist()
