"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# scikit-learn's array-API estimator check needs SciPy imported in array-API mode.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
import torch

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def find_mnist_dir() -> Path | None:
    """Return the folder holding the four MNIST ``.gz`` files, or None.

    Looks in ``$CONTRACTIVE_DATA_DIR`` (the folder itself, then its ``mnist`` subfolder), then
    in ``../shared/data/mnist`` relative to the repository root.
    """
    candidates: list[Path] = []
    env = os.environ.get("CONTRACTIVE_DATA_DIR", "")
    if env:
        candidates += [Path(env), Path(env) / "mnist"]
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
    for folder in candidates:
        if all((folder / name).is_file() for name in MNIST_FILES):
            return folder
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder with the real MNIST IDX files; skips the test when they are not available."""
    folder = find_mnist_dir()
    if folder is None:
        pytest.skip("MNIST IDX files not found (set CONTRACTIVE_DATA_DIR or use ../shared/data)")
    return folder


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Make every test start from the same global random state."""
    torch.manual_seed(0)
    # Legacy global seeding is the point here: code under test may use np.random.* directly.
    np.random.seed(0)  # noqa: NPY002


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: intra-op threads only add synchronisation (and spin when CPUs are busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
