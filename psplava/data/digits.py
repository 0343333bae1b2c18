"""The embedded default dataset: N-MNIST-like event recordings of scikit-learn's digits.

Needs neither a download nor ``../shared``: scikit-learn ships 1,797 8x8 handwritten
digits.  Each is turned into an event recording by emulating how N-MNIST was recorded
(Orchard et al. 2015): the digit, scaled to 28x28 inside the 34x34 sensor, is moved
along three saccades (a triangle, 100 ms each) and a DVS-like pixel model emits ON/OFF
events whenever a pixel's log intensity has changed by its contrast threshold since its
last event.  Everything is deterministic for a seed.

The pixel model, per pixel (y, x) and 1 ms step t:

    L(t)   = log(I(t) + floor)                 (log intensity of the moving image)
    n(t)   = trunc((L(t) - ref) / C)           (signed number of threshold crossings)
    ref   += n(t) * C                          (events: |n| ON (n > 0) or OFF (n < 0))

with a per-pixel contrast threshold ``C ~ N(contrast, contrast_sigma)`` and initial
reference ``ref = L(0) + U(-C/2, C/2)`` (pixels are not synchronised), plus a small
uniform background-noise event rate.  Event timestamps are spread uniformly inside
their millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from psplava.data.events import EVENT_DTYPE, NMNIST_SENSOR, Binning, bin_events
from psplava.errors import DataError

#: Offsets (x, y) in pixels of the digit's top-left corner at the saccade vertices.
SACCADE_VERTICES = ((0.5, 0.5), (5.0, 2.5), (2.5, 5.0))


@dataclass(frozen=True)
class SaccadeParams:
    """Parameters of the recording emulator (units in brackets)."""

    digit_size: int = 28          # side of the scaled digit [px]
    saccade_ms: int = 100         # duration of each of the three saccades [ms]
    contrast: float = 0.35        # mean contrast threshold [log intensity]
    contrast_sigma: float = 0.03  # per-pixel threshold spread [log intensity]
    floor: float = 0.1            # intensity of the dark background (avoids log 0) [a.u.]
    noise_hz: float = 0.2         # background-activity rate per pixel and polarity [Hz]


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn's loader (0.7 s) only when the digits are built
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def _scaled_digit(image8: np.ndarray, size: int) -> np.ndarray:
    # psplava.data stays free of torch (config and data listings): torch loads to scale
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(image8)[None, None]
    return F.interpolate(x, size=(size, size), mode="bilinear",
                         align_corners=False)[0, 0].clamp(0, 1).numpy()


def _trajectory(steps: int, saccade_ms: int) -> np.ndarray:
    """(steps, 2) offsets (x, y) along the closed triangle of SACCADE_VERTICES."""
    v = np.array(SACCADE_VERTICES + SACCADE_VERTICES[:1], dtype=np.float64)
    t = np.arange(steps) / saccade_ms
    seg = np.minimum(t.astype(int), 2)
    frac = np.clip(t - seg, 0.0, 1.0)[:, None]
    return v[seg] * (1 - frac) + v[seg + 1] * frac


def _render(image: np.ndarray, offsets: np.ndarray, sensor: int) -> np.ndarray:
    """Bilinear rendering of ``image`` shifted by each offset: (steps, sensor, sensor)."""
    h, w = image.shape
    padded = np.zeros((h + 2, w + 2), dtype=np.float32)
    padded[1:-1, 1:-1] = image
    grid = np.arange(sensor, dtype=np.float64)
    xs = grid[None, :] - offsets[:, 0:1] + 1.0  # (steps, sensor) in padded coordinates
    ys = grid[None, :] - offsets[:, 1:2] + 1.0
    xs = np.clip(xs, 0.0, w + 1.0 - 1e-6)
    ys = np.clip(ys, 0.0, h + 1.0 - 1e-6)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = (xs - x0)[:, None, :], (ys - y0)[:, :, None]
    x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
    g = lambda yy, xx: padded[yy[:, :, None], xx[:, None, :]]  # noqa: E731
    top = g(y0, x0) * (1 - fx) + g(y0, x1) * fx
    bottom = g(y1, x0) * (1 - fx) + g(y1, x1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def emulate_recording(image: np.ndarray, seed: int, params: SaccadeParams = SaccadeParams()
                      ) -> np.ndarray:
    """Emulate an N-MNIST recording of a [0, 1] image; returns :data:`EVENT_DTYPE` events."""
    rng = np.random.default_rng(seed)
    sensor = NMNIST_SENSOR[0]
    steps = 3 * params.saccade_ms
    digit = _scaled_digit(np.asarray(image, dtype=np.float32), params.digit_size)
    frames = _render(digit, _trajectory(steps + 1, params.saccade_ms), sensor)
    logi = np.log(frames + params.floor)
    c = np.maximum(rng.normal(params.contrast, params.contrast_sigma, (sensor, sensor)),
                   0.2 * params.contrast)
    ref = logi[0] + rng.uniform(-0.5, 0.5, (sensor, sensor)) * c
    chunks_t, chunks_n, chunks_idx = [], [], []
    for t in range(1, steps + 1):
        n = np.trunc((logi[t] - ref) / c)
        ref += n * c
        idx = np.flatnonzero(n)
        if idx.size:
            chunks_t.append(np.full(idx.size, t - 1))
            chunks_n.append(n.ravel()[idx].astype(np.int64))
            chunks_idx.append(idx)
    if chunks_t:
        tt, nn, ii = (np.concatenate(a) for a in (chunks_t, chunks_n, chunks_idx))
        reps = np.abs(nn)
        step = np.repeat(tt, reps)
        pix = np.repeat(ii, reps)
        pol = np.repeat((nn > 0).astype(np.int8), reps)
    else:
        step = pix = np.zeros(0, dtype=np.int64)
        pol = np.zeros(0, dtype=np.int8)
    # Background noise: Poisson count per pixel/polarity over the recording.
    n_noise = rng.poisson(params.noise_hz * steps / 1000.0 * sensor * sensor * 2)
    step = np.concatenate([step, rng.integers(0, steps, n_noise)])
    pix = np.concatenate([pix, rng.integers(0, sensor * sensor, n_noise)])
    pol = np.concatenate([pol, rng.integers(0, 2, n_noise).astype(np.int8)])
    t_us = step * 1000 + rng.integers(0, 1000, step.size)
    order = np.argsort(t_us, kind="stable")
    out = np.empty(step.size, dtype=EVENT_DTYPE)
    out["t"] = t_us[order]
    out["y"], out["x"] = np.divmod(pix[order], sensor)
    out["p"] = pol[order]
    return out


def split_indices(n: int, split: str, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Deterministic train/test partition of ``range(n)`` (the test part is ``test_fraction``)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    part = perm[:n_test] if split == "test" else perm[n_test:]
    return np.sort(part)


class Digits:
    """Embedded N-MNIST-like dataset (scikit-learn digits through the saccade emulator).

    Args:
        split: ``train`` (1,438 samples) or ``test`` (359 samples), a fixed partition.
        binning: time binning of the events (default 1 ms x 300 steps).
        seed: emulator seed; sample i of the full set uses ``(seed, i)``.
        limit: keep only the first ``limit`` samples of the split.
    """

    sensor = NMNIST_SENSOR
    num_classes = 10

    def __init__(self, split: str = "train", binning: Binning = Binning(), seed: int = 0,
                 params: SaccadeParams = SaccadeParams(), limit: int | None = None) -> None:
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
        images, labels = _sklearn_digits()
        self.indices = split_indices(len(images), split)
        if limit is not None:
            self.indices = self.indices[:limit]
        self.images = images
        self.labels = labels[self.indices]
        self.split, self.binning, self.seed, self.params = split, binning, seed, params
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def events(self, index: int) -> np.ndarray:
        if index not in self._cache:
            i = int(self.indices[index])
            self._cache[index] = emulate_recording(
                self.images[i], seed=int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0]),
                params=self.params)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return bin_events(self.events(index), self.binning, self.sensor), int(self.labels[index])
