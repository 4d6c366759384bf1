import pytest

from utils.data import prepare_data


@pytest.fixture(scope="session")
def mnist_root():
    """The project's data/ folder with the four verified MNIST files (rebuilt offline if needed)."""
    return prepare_data()
