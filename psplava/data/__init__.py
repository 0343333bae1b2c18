"""Datasets as dense spike tensors ``(T, H, W, C)`` plus labels.

- :class:`~psplava.data.nmnist.NMNIST`: real N-MNIST recordings (official or flat layout)
- :class:`~psplava.data.fmnist.FashionMNIST`: Fashion-MNIST with a spike encoding
- :class:`~psplava.data.digits.Digits`: the embedded default (scikit-learn digits through
  an N-MNIST saccade emulator); needs no files
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from psplava.data.digits import Digits
from psplava.data.events import Binning, bin_events, read_nmnist_file
from psplava.data.fmnist import Encoding, FashionMNIST
from psplava.data.nmnist import NMNIST
from psplava.errors import DataError, PsplavaError


class DatasetName(str, Enum):
    NMNIST = "nmnist"
    FMNIST = "fmnist"
    DIGITS = "digits"


#: Default location of the shared data, relative to the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def resolve_root(root: str | Path | None) -> Path | None:
    """Relative roots are taken from the current directory, falling back to the repo root."""
    if root is None or str(root) == "":
        return None
    p = Path(root).expanduser()
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    return p


def make_dataset(name: str, root: str | Path | None, split: str, *, steps: int | None = None,
                 dt_ms: float = 1.0, encoding: dict[str, Any] | None = None, seed: int = 0,
                 limit: int | None = None, cache: str | Path | None = None):
    """Build a dataset by name; ``steps`` defaults to 300 (events) or 100 (F-MNIST).

    ``cache`` (N-MNIST): an ``.npz`` that keeps the split's decoded events after first use.
    """
    try:
        kind = DatasetName(name)
    except ValueError:
        raise DataError(f"unknown dataset {name!r}; expected one of "
                        f"{[d.value for d in DatasetName]}") from None
    if kind is DatasetName.FMNIST:
        if root is None:
            raise DataError("the fmnist dataset needs --root (a folder with the idx files or "
                            "fashion_mnist.npz)")
        enc = Encoding(**{"steps": steps or 100, "seed": seed, **(encoding or {})})
        ds = FashionMNIST(resolve_root(root), split, enc)
    elif kind is DatasetName.NMNIST:
        if root is None:
            raise DataError("the nmnist dataset needs --root (the N-MNIST folder)")
        ds = NMNIST(resolve_root(root), split, Binning(dt_ms, steps or 300), cache=cache)
    else:
        ds = Digits(split, Binning(dt_ms, steps or 300), seed=seed)
    if limit is not None:
        return Subset(ds, np.arange(min(limit, len(ds))))
    return ds


def dataset_from_config(cfg: dict[str, Any], split: str, dataset: str | None = None,
                        root: str | Path | None = None, limit: int | None = None):
    """The dataset a run's config describes (``data`` and ``train.seed`` sections).

    ``split``: ``train`` or ``test`` (the dataset's own splits), or ``val``: the recordings
    the run held out of its training split for validation (``data.val_count``, seeded by
    ``train.seed``), so later stages evaluate on exactly those.  ``dataset``/``root``
    override the config's (another copy of the data); ``limit`` keeps the first N.
    """
    d = cfg.get("data", {})
    seed = int(cfg.get("train", {}).get("seed", 0))   # F-MNIST's spike encoding
    name = dataset or d.get("dataset")
    root = root if root is not None else d.get("root")
    kw = dict(steps=int(d["steps"]) if d.get("steps") else None,
              dt_ms=float(d.get("dt_ms", 1.0)), encoding=d.get("encoding") or {}, seed=seed)
    if split == "val":
        full = make_dataset(name, root, "train", limit=d.get("train_limit"),
                            cache=d.get("cache"), **kw)
        _, va = train_val_split(len(full), int(d.get("val_count", 0)), split_seed(cfg))
        return Subset(full, va if limit is None else va[:limit])
    return make_dataset(name, root, split, limit=limit, **kw)


class Subset:
    """A view of some samples of a dataset (keeps ``labels``, ``sensor``, ``events``)."""

    def __init__(self, dataset, indices) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(dataset.labels)[self.indices]
        self.sensor = dataset.sensor
        self.num_classes = dataset.num_classes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[int(self.indices[i])]

    def events(self, i: int) -> np.ndarray:
        return self.dataset.events(int(self.indices[i]))


def split_seed(cfg: dict[str, Any]) -> int:
    """The seed of a run's held-out recordings: ``data.split_seed`` when set (a fine-tune
    keeps its source's), else ``train.seed``."""
    d = cfg.get("data", {})
    if d.get("split_seed") is not None:
        return int(d["split_seed"])
    return int(cfg.get("train", {}).get("seed", 0))


def train_val_split(n: int, n_val: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted (train, validation) index arrays.

    The paper holds out 6,000 of N-MNIST's 60,000 training samples for validation.
    """
    if not 0 <= n_val < n:
        raise DataError(f"cannot hold out {n_val} of {n} samples for validation")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


__all__ = ["Binning", "DatasetName", "Subset", "bin_events", "dataset_from_config", "file_dataset",
           "make_dataset", "read_nmnist_file", "resolve_root", "split_seed", "train_val_split",
           "SHARED_DATA", "REPO_ROOT"]


def file_dataset(net, dataset: str | None, root: str | None, split: str,
                 limit: int | None = None, steps: int | None = None, dt: float | None = None):
    """``(dataset, data config)`` of the recordings a ``.net`` file runs on: its run's
    config (the file's ``config`` attribute), overridden by the given values; ``val`` means
    the recordings that run held out."""
    cfg = json.loads(net.attrs["config"]) if "config" in net.attrs else {}
    d = dict(cfg.get("data", {}))
    if steps:
        d["steps"] = steps
    if dt:
        d["dt_ms"] = dt
    if not d.get("steps"):
        raise PsplavaError(f"{net.path}: the file carries no config; give --steps")
    if dataset:
        d["dataset"] = dataset
    if not d.get("dataset"):
        raise PsplavaError(f"{net.path}: the file carries no config; give --dataset")
    if split == "val" and "val_count" not in d:
        raise PsplavaError(f"{net.path}: --split val needs the run's config in the file")
    return dataset_from_config({**cfg, "data": d}, split, dataset, root, limit), d
