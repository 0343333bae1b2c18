"""Loihi fixed point: one pure function per quantity.

Weights: 8-bit mantissa, even integers in [-256, 254] as lava-dl exports them (Loihi's
8-bit weights in mixed sign mode), with a per-layer *scale* ``k`` (integer state units per
float unit of the membrane input).  Since a layer's dynamics are linear in its state, the
threshold is scaled by the same ``k`` (``vThMant = round(k theta)``, up to 17 bits) and the
spike decision is unchanged up to rounding.  lava-dl's own default is ``k = 64``
(``w_scale``); the exporter picks the largest power of two ``k <= k_max`` (default 1024)
that keeps every weight and the threshold in range, so small weights keep their precision.  Decays are 12-bit: ``round(4096 (1 - decay))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHT_MIN, WEIGHT_MAX, WEIGHT_STEP = -256, 254, 2
VTH_MANT_MAX = (1 << 17) - 1
DECAY_UNITY = 4096


@dataclass(frozen=True)
class WeightQuant:
    """A quantized weight tensor and its error."""

    weight: np.ndarray        # int32 mantissas (even, in [-256, 254])
    scale: float              # k: integer units per float unit
    max_abs_error: float      # max |w - weight / k| in float units
    rel_rms_error: float      # rms(w - weight / k) / rms(w)


def choose_scale(w: np.ndarray, theta: float, k_max: float = 1024.0,
                 theta_k_max: float = VTH_MANT_MAX) -> float:
    """The largest power-of-two scale <= k_max keeping weights and threshold in range
    (``theta * k <= theta_k_max``)."""
    wmax = float(np.abs(w).max()) if w.size else 0.0
    k = float(k_max)
    while k > 2.0 ** -12 and (wmax * k > WEIGHT_MAX or theta * k > theta_k_max):
        k /= 2.0
    return k


def quantize_weights(w: np.ndarray, scale: float) -> WeightQuant:
    """Round ``w * scale`` to the nearest even integer and clamp to [-256, 254]."""
    q = np.clip(np.round(w * scale / WEIGHT_STEP) * WEIGHT_STEP, WEIGHT_MIN, WEIGHT_MAX)
    q = q.astype(np.int32)
    err = w - q / scale
    rms_w = float(np.sqrt(np.mean(np.square(w)))) if w.size else 0.0
    return WeightQuant(q, scale, float(np.abs(err).max()) if w.size else 0.0,
                       float(np.sqrt(np.mean(np.square(err)))) / rms_w if rms_w else 0.0)


def quantize_threshold(theta: float, scale: float) -> int:
    """Threshold mantissa ``round(theta * scale)`` (17 bits)."""
    v = int(round(theta * scale))
    if not 0 < v <= VTH_MANT_MAX:
        raise ValueError(f"threshold {theta} x scale {scale} = {v} outside 1..{VTH_MANT_MAX}")
    return v


def quantize_decay(decay_per_step: float) -> int:
    """12-bit decay constant of ``x <- x * decay_per_step``: ``round(4096 (1 - decay))``."""
    return int(round(DECAY_UNITY * (1.0 - decay_per_step)))
