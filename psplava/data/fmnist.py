"""Fashion-MNIST (Xiao et al. 2017) and spike encodings for static images.

Sources under ``root`` (checked in this order):

- the official idx files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (raw or ``.gz``), directly in
  ``root`` or in ``root/FashionMNIST/raw`` (torchvision's layout);
- ``fashion_mnist.npz`` with ``images`` (N, 28, 28) uint8, ``labels`` (N,) and ``is_test``
  (N,) bool -- the layout of ``../shared/data/fashion_mnist``.  ``root`` may also be the
  ``.npz`` file itself.

Images are resized 28 -> 34 (bilinear, as the paper trains F-MNIST at 34x34) and encoded
into ``(T, 34, 34, 1)`` spike tensors by a :class:`Encoding`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from psplava.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_MAGIC = {0x00000801: 1, 0x00000803: 3}  # unsigned byte, 1-D (labels) / 3-D (images)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (uint8 data, 1-D or 3-D), raw or gzip-compressed."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: idx file not found") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read idx file ({exc})") from None
    if len(data) < 8:
        raise DataError(f"{path}: idx file too short ({len(data)} bytes) for a header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_MAGIC:
        raise DataError(f"{path}: wrong idx magic number 0x{magic:08x} "
                        "(expected 0x00000801 for labels or 0x00000803 for images)")
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: idx header truncated")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: idx size {len(data)} bytes does not match its header "
                        f"(dims {dims} need {expected} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(root: Path, name: str) -> Path | None:
    for base in (root, root / "FashionMNIST" / "raw", root / "raw"):
        for candidate in (base / name, base / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _check_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    """Fashion-MNIST has ten classes: labels outside 0-9 are refused."""
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        bad = labels[(labels < 0) | (labels > 9)]
        raise DataError(f"{path}: {bad.size} label(s) outside 0-9 (e.g. {int(bad[0])})")
    return labels


def load_fmnist_arrays(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 (N, 28, 28), labels int64 (N,))`` of a split."""
    if split not in IDX_FILES:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset root does not exist")
    npz = root if root.is_file() else root / "fashion_mnist.npz"
    img_name, lab_name = IDX_FILES[split]
    img_path, lab_path = (None, None) if root.is_file() else (_find_idx(root, img_name),
                                                              _find_idx(root, lab_name))
    if img_path is not None or lab_path is not None:
        if img_path is None or lab_path is None:
            missing = img_name if img_path is None else lab_name
            raise DataError(f"{root}: found one idx file of the {split} split but not {missing}[.gz]")
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{img_path}: expected 3-D images and 1-D labels")
        if len(images) != len(labels):
            raise DataError(f"{img_path}: {len(images)} images but {lab_path.name} has "
                            f"{len(labels)} labels")
        return images, _check_labels(lab_path, labels.astype(np.int64))
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as z:
                missing = {"images", "labels", "is_test"} - set(z.files)
                if missing:
                    raise DataError(f"{npz}: missing array(s) {sorted(missing)}")
                mask = z["is_test"].astype(bool) == (split == "test")
                images, labels = z["images"][mask], z["labels"][mask].astype(np.int64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{npz}: not a readable .npz file ({exc})") from None
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{npz}: images have shape {images.shape}, expected (N, 28, 28)")
        return images, _check_labels(npz, labels)
    raise DataError(f"{root}: no Fashion-MNIST found (expected {img_name}[.gz] and "
                    f"{lab_name}[.gz], or fashion_mnist.npz)")


def resize_images(images: np.ndarray, size: int = 34) -> np.ndarray:
    """Bilinear resize of uint8 ``(N, h, w)`` images to float32 ``(N, size, size)`` in [0, 1]."""
    # psplava.data stays free of torch (config and data listings): torch loads to resize
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)[:, None]
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return y[:, 0].clamp_(0.0, 1.0).numpy()


class EncodingKind(str, Enum):
    """How a static intensity image becomes spikes."""

    RATE = "rate"        # Bernoulli: P(spike at t) = gain * intensity, seeded per sample
    REGULAR = "regular"  # deterministic regular train: spike when floor(gain*I*(t+1)) grows


@dataclass(frozen=True)
class Encoding:
    """Spike encoding of a static image.

    Attributes:
        kind: :class:`EncodingKind`.
        steps: number of time steps T (paper: 100 for F-MNIST).
        gain: spikes per step at intensity 1.0 (probability for RATE), in (0, 1].
        seed: base seed of the Bernoulli draws; sample i uses ``(seed, i)``.
    """

    kind: EncodingKind = EncodingKind.RATE
    steps: int = 100
    gain: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EncodingKind(self.kind))
        if self.steps <= 0 or not 0.0 < self.gain <= 1.0:
            raise ValueError(f"Encoding needs steps > 0 and 0 < gain <= 1, got {self}")


def encode_image(image: np.ndarray, enc: Encoding, index: int = 0) -> np.ndarray:
    """Encode one float image ``(H, W)`` in [0, 1] into a ``(T, H, W, 1)`` float32 spike tensor."""
    rate = (np.clip(image, 0.0, 1.0) * enc.gain).astype(np.float64)
    if enc.kind is EncodingKind.RATE:
        rng = np.random.default_rng([enc.seed, index])
        spikes = rng.random((enc.steps, *rate.shape)) < rate
    else:
        t = np.arange(1, enc.steps + 1, dtype=np.float64)[:, None, None]
        # +1e-9 keeps exact multiples (e.g. rate 0.5 at t=2) from rounding down.
        counts = np.floor(t * rate + 1e-9)
        spikes = np.diff(counts, axis=0, prepend=0.0) > 0
    return spikes.astype(np.float32)[..., None]


class FashionMNIST:
    """Fashion-MNIST as spike tensors ``(T, 34, 34, 1)``."""

    num_classes = 10

    def __init__(self, root: str | Path, split: str = "train", encoding: Encoding = Encoding(),
                 size: int = 34) -> None:
        self.root, self.split, self.encoding = Path(root), split, encoding
        raw, self.labels = load_fmnist_arrays(root, split)
        self.raw_images = raw
        self.images = resize_images(raw, size)
        self.sensor = (size, size, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return encode_image(self.images[index], self.encoding, index), int(self.labels[index])
