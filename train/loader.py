"""Batches for training and evaluation: torch's ``DataLoader`` over a seeded order.

Samples are read and binned by ``train.workers`` worker processes (0: in the training
process), into pinned memory when the model runs on a GPU.  The order and the augmentation
are decided before the loader starts, in the training process, from the epoch's seeded
generator -- the same draws, in the same order, as the single-threaded loop this replaces
(``rng.permutation`` of the training indices, then two ``rng.integers`` per sample for
the random shift) -- so worker scheduling and ``--nproc`` never change what a sample is.

Under DDP the global order is split by :class:`torch.utils.data.DistributedSampler`
(``shuffle=False``: the order is already drawn): rank ``r`` of ``W`` takes positions
``r, r + W, ...``, so global batch ``k`` (positions ``kB .. kB + B - 1``) is exactly the
union of the ranks' batch ``k`` of ``B / W`` samples.  Evaluation shards without padding
(every recording counted once).
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


def random_shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift a (T, H, W, C) sample by (dy, dx) pixels, zero fill."""
    out = np.zeros_like(x)
    H, W = x.shape[1:3]
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def max_shift(augment: dict[str, Any] | None) -> int:
    """``data.augment.shift``: the largest random shift in pixels (0: none)."""
    return int((augment or {}).get("shift", 0) or 0)


def draw_shifts(n: int, max_shift: int, rng: np.random.Generator | None) -> np.ndarray | None:
    """(n, 2) shifts drawn in sample order (None without augmentation)."""
    if not max_shift or rng is None:
        return None
    return np.array([rng.integers(-max_shift, max_shift + 1, 2) for _ in range(n)],
                    dtype=np.int64).reshape(n, 2)


class Samples(Dataset):
    """``ds[indices[i]]``, shifted by ``shifts[i]`` when given: (x (T, H, W, C), label)."""

    def __init__(self, ds, indices: np.ndarray, shifts: np.ndarray | None = None) -> None:
        self.ds, self.indices, self.shifts = ds, np.asarray(indices), shifts

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        x, y = self.ds[int(self.indices[i])]
        if self.shifts is not None:
            x = random_shift(x, int(self.shifts[i, 0]), int(self.shifts[i, 1]))
        return x, int(y)


class Shard(Sampler):
    """Positions ``rank, rank + world, ...`` of ``n`` (no padding: evaluation)."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def collate(items) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (T, N, H, W, C), labels (N,)): the project's time-major layout."""
    xs, ys = zip(*items)
    return torch.from_numpy(np.stack(xs, axis=1)), torch.tensor(ys, dtype=torch.long)


def default_workers(device: torch.device) -> int:
    """``train.workers: null``: none on a CPU (the cores train), up to 4 for a GPU."""
    if device.type == "cpu":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def make_loader(ds, indices: np.ndarray, batch_size: int, *, shifts: np.ndarray | None = None,
                workers: int = 0, device: torch.device | None = None, rank: int = 0,
                world: int = 1, train: bool = True) -> DataLoader:
    """The loader of one pass over ``indices`` (in that order) for this rank."""
    data = Samples(ds, indices, shifts)
    sampler: Any = None
    if world > 1:
        sampler = (DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
                   if train else Shard(len(data), rank, world))
    pin = device is not None and device.type == "cuda"
    return DataLoader(data, batch_size=batch_size, shuffle=False, sampler=sampler,
                      num_workers=int(workers), collate_fn=collate, pin_memory=pin,
                      drop_last=False, persistent_workers=False)
