"""Shared fixtures: the real data in ../shared/data when present, seeded torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psplava.data import SHARED_DATA

NMNIST_SMALL = SHARED_DATA / "nmnist_small"
FMNIST_DIR = SHARED_DATA / "fashion_mnist"


@pytest.fixture
def nmnist_root() -> Path:
    if not (NMNIST_SMALL / "train" / "labels.csv").is_file():
        pytest.skip("../shared/data/nmnist_small not present")
    return NMNIST_SMALL


@pytest.fixture
def fmnist_root() -> Path:
    if not (FMNIST_DIR / "fashion_mnist.npz").is_file():
        pytest.skip("../shared/data/fashion_mnist not present")
    return FMNIST_DIR


@pytest.fixture(autouse=True)
def _seed() -> None:
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def encode_nmnist_events(x, y, p, t) -> bytes:
    """Inverse of the N-MNIST decoder (for writing small test files); no overflow markers."""
    x, y, p, t = (np.asarray(a, dtype=np.int64) for a in (x, y, p, t))
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1)
    return raw.astype(np.uint8).tobytes()
