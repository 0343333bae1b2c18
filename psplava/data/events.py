"""Event streams: the N-MNIST binary format and vectorized binning into spike tensors.

Layout convention (project-wide): a dense spike tensor for one sample is
``(T, H, W, C)`` -- time-major, channels-last, with DVS polarity as the channel
(C = 2: 0 = OFF, 1 = ON).  A batch is ``(T, N, H, W, C)``.  Conversions to lava-dl's
``(N, C, H, W, T)`` and Lava's ``(W, H, C)`` orders happen only at those boundaries.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psplava.errors import DataError

#: Structured dtype of an event stream (the same fields as tonic's NMNIST.dtype).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])

#: N-MNIST sensor size (width, height) and number of polarities.
NMNIST_SENSOR = (34, 34, 2)

_OVERFLOW_Y = 240  # the dataset's timestamp-overflow marker (y == 240)
_OVERFLOW_US = 1 << 13  # 8192 us added to all later events at each overflow marker


def decode_nmnist_bytes(raw: np.ndarray, source: str = "<bytes>",
                        sensor: tuple[int, int] = NMNIST_SENSOR[:2]) -> np.ndarray:
    """Decode N-MNIST's 5-byte events.

    Each event is 40 bits, big-endian: x (8), y (8), polarity (1), timestamp (23, us).
    Events with ``y == 240`` are timestamp-overflow markers (as in the dataset's own
    Matlab/Python readers and tonic's ``read_mnist_file``): they add 2**13 us to every
    later event and are dropped.  Vectorized: the overflow offsets are a cumulative sum.

    Raises :class:`DataError` when the byte count is not a multiple of 5 or an event lies
    outside the sensor.
    """
    raw = np.asarray(raw, dtype=np.uint8)
    if raw.size % 5:
        raise DataError(f"{source}: size {raw.size} bytes is not a multiple of 5 "
                        "(N-MNIST events are 5 bytes each); the file is truncated or not N-MNIST")
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    p = ev[:, 2] >> 7
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    overflow = y == _OVERFLOW_Y
    if overflow.any():
        t = t + np.cumsum(overflow) * _OVERFLOW_US
    keep = ~overflow
    x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    width, height = sensor
    bad = (x >= width) | (y >= height)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: {int(bad.sum())} event(s) outside the {width}x{height} "
                        f"sensor (first: event {i}, x={int(x[i])}, y={int(y[i])})")
    out = np.empty(x.size, dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def read_nmnist_file(path: str | Path) -> np.ndarray:
    """Read one N-MNIST recording (``.bin`` or ``.bs2``) into an :data:`EVENT_DTYPE` array."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: event file not found") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    if not stat.S_ISREG(mode):  # a FIFO would block forever, a device read endlessly
        raise DataError(f"{path}: not a regular file")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read event file ({exc.strerror or exc})") from None
    if raw.size == 0:
        raise DataError(f"{path}: empty recording (0 bytes)")
    return decode_nmnist_bytes(raw, source=str(path))


@dataclass(frozen=True)
class Binning:
    """How events become a dense spike tensor.

    Attributes:
        dt_ms: bin width in milliseconds (default 1 ms, as the paper).
        steps: number of time steps T (default 300: N-MNIST recordings are ~306-310 ms,
            so the last few ms are dropped).
        binary: if True (default) a bin holds 1 when at least one event fell into it;
            several events of the same pixel, polarity and bin ("same-bin collisions")
            count once.  If False the bin holds the event count.
    """

    dt_ms: float = 1.0
    steps: int = 300
    binary: bool = True

    def __post_init__(self) -> None:
        if self.dt_ms <= 0 or self.steps <= 0:
            raise ValueError(f"Binning needs dt_ms > 0 and steps > 0, got {self}")


def bin_events(events: np.ndarray, binning: Binning = Binning(),
               sensor: tuple[int, int, int] = NMNIST_SENSOR) -> np.ndarray:
    """Bin events into a ``(T, H, W, C)`` float32 spike tensor (no loop over events).

    Event at time t (us) goes to step ``floor(t / (dt_ms * 1000))``; events at or beyond
    ``steps * dt_ms`` ms are outside the window and dropped.  With ``binary=True`` the sum
    of the tensor equals the number of distinct (step, y, x, p) tuples in the window.
    """
    width, height, channels = sensor
    dt_us = binning.dt_ms * 1000.0
    if dt_us.is_integer():
        step = events["t"] // int(dt_us)
    else:
        step = np.floor(events["t"] / dt_us).astype(np.int64)
    inside = (step >= 0) & (step < binning.steps)
    step = step[inside]
    flat = ((step * height + events["y"][inside]) * width + events["x"][inside]) * channels \
        + events["p"][inside]
    size = binning.steps * height * width * channels
    if binning.binary:
        out = np.zeros(size, dtype=np.float32)
        out[flat] = 1.0
    else:
        out = np.bincount(flat, minlength=size).astype(np.float32)
    return out.reshape(binning.steps, height, width, channels)
