import pytest

from utils.data import prepare_data


@pytest.fixture(scope="session")
def mnist_root():
    """The project's data/ folder with the four verified MNIST files (rebuilt offline if needed)."""
    return prepare_data()


def without_timings(history):
    """A training history without its seconds fields: what must repeat exactly between runs."""
    return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in history]
