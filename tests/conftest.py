"""Shared fixtures: the real data in ../shared/data when present, seeded torch."""

from __future__ import annotations

import os
from pathlib import Path

if "TRITON_INTERPRET" not in os.environ:
    # without a GPU, the Triton kernels run on CPU tensors through Triton's interpreter
    # (read when the kernels are defined, so before psplava.train.kernels_triton loads)
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

import numpy as np
import pytest

from psplava.data import SHARED_DATA

NMNIST_SMALL = SHARED_DATA / "nmnist_small"


def as_older_format(f, version: int) -> None:
    """Rewrite an open ``.net`` file (h5py, writable) as an older format held it: that
    version, and the SRM decays stored beside the time constants (formats 2-4;
    docs/netfile.md)."""
    import math

    f.attrs["psplava_format"] = version
    for g in f["layer"].values():
        if "neuron" in g and "tauS" in g["neuron"]:
            for key, tau in (("psDecay", "tauS"), ("refDecay", "tauR")):
                g.create_dataset(f"neuron/{key}", data=int(round(
                    4096 * (1 - math.exp(-1 / float(g[f"neuron/{tau}"][()]))))))
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


def lava_dl_netfile(tmp_path):
    """A netx file written by lava-dl's own slayer blocks (conv, conv, flatten, dense)."""
    import h5py
    import torch

    from psplava.lavadl import slayer

    torch.manual_seed(2)
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
    blocks = [slayer.block.cuba.Conv(params, 2, 4, 3, padding=1, stride=2, weight_scale=2),
              slayer.block.cuba.Conv(params, 4, 6, 3, padding=1, stride=2, weight_scale=2),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(params, 6 * 9 * 9, 10, weight_scale=4)]
    x = (torch.rand(1, 2, 34, 34, 5) < 0.2).float()
    for b in blocks:
        x = b(x)
    path = tmp_path / "lava_dl.net"
    with h5py.File(path, "w") as h:
        inp = h.create_group("layer/0")
        inp.create_dataset("type", (1,), "S10", [b"input"])
        inp.create_dataset("shape", data=np.array([2, 34, 34]))
        for i, b in enumerate(blocks):
            b.export_hdf5(h.create_group(f"layer/{i + 1}"))
    return path
