"""Fixed-point SRM: the integer form of the paper's neuron, one set of step functions for
the Lava process models (:mod:`psplava.sim.procs`) and the batched reference engine.

Units (per layer, scale ``k`` from the exporter, PSP unit ``U = 2**8``):

- PSP of a neuron's own spikes, exact two-state recurrence with 12-bit decay ``dq``::

      x <- dec(x + U s),   y <- dec(y + x + U s)      (old x on the right)
      dec(v) = sign(v) ((|v| (4096 - dq) + 2048) >> 12)   (12-bit decay, rounded)

  so ``y ~ U sum_k k q^k s(t-k)``; the alpha gain ``e / tau_s`` is folded into the next
  layer's weights by the exporter (``w_int = round(k w e / tau_s)``).
- membrane input ``z = sum w_int y + bias`` (Lava's synapse, 24-bit clamp), threshold
  ``theta_int = vThMant * U``, refractory state ``r <- dec_r(r + g_ref s)`` with
  ``g_ref = -2 theta_int`` (EXP) or the two-state form with ``round(-2 theta_int e / tau_r)``
  (ALPHA).  Decays round to nearest: truncation (as Loihi's CUBA decays do) biases the
  alpha PSP downwards by ~0.5 unit per step, a 28 % max error at ``U = 64`` against the
  float model on real N-MNIST; ``U = 2**8`` with rounding leaves 5 % (rms 0.6 %).
- Lava's conv synapse *wraps* its output to 24 bits (``signed_clamp``), so the exporter
  keeps ``theta_int = theta k U <= 2**19``: the membrane input can reach 16 thresholds
  before it wraps (and the reference engine wraps exactly like Lava if it does).
- spike: ``z + r >= theta_int``; with causal PSP-LN the dynamic threshold (Eq. 18)
  ``z >= sqrt(m2 + lambda) * (theta_int - r)`` where ``m2`` is computed by
  :func:`m2_from_sums` from exact integer sums of the layer's input PSPs.

Timing: a neuron sends at step t the PSP it will have at t+1 (which depends on spikes up to
t: the alpha kernel is 0 at lag 0), so Lava's one-step synapse buffer delivers exactly the
training model's ``z(t+1)``: no per-layer offset.
"""

from __future__ import annotations

import math

import numpy as np

PSP_UNIT = 1 << 8
#: largest ``theta * k`` the exporter allows for SRM layers, so that ``theta_int =
#: theta k U`` stays 16x below the 24-bit synaptic wrap-around
SRM_THETA_K_MAX = (1 << 19) / PSP_UNIT


def dec(v: np.ndarray, d: int) -> np.ndarray:
    """12-bit decay, rounded to nearest (halves away from zero), int64."""
    p = v * (4096 - int(d))
    return np.sign(p) * ((np.abs(p) + 2048) >> 12)


def psp_update(x: np.ndarray, y: np.ndarray, s: np.ndarray, dq: int) -> tuple[np.ndarray, np.ndarray]:
    """New (x, y) after a step with spikes ``s`` (0/1)."""
    inc = s.astype(np.int64) * PSP_UNIT
    return dec(x + inc, dq), dec(y + x + inc, dq)


def wrap24(z: np.ndarray) -> np.ndarray:
    """Lava's ``signed_clamp(x, 24)``: two's-complement wrap-around to 24 bits."""
    base = 1 << 24
    return (z + base // 2) % base - base // 2


class SRMState:
    """Refractory state and spike rule of a group of fixed-point SRM neurons."""

    def __init__(self, shape: tuple[int, ...], neuron: dict, bias: np.ndarray | None = None,
                 dynamic_lambda: float | None = None, out_ps_decay: int | None = None) -> None:
        """``out_ps_decay``: decay of the PSP this layer sends, i.e. the *next* layer's
        ``psDecay`` (in training each layer filters its input with its own tau_s)."""
        self.theta = int(neuron["vThMant"]) * PSP_UNIT
        self.dr = int(neuron["refDecay"])
        self.dq = int(neuron["psDecay"] if out_ps_decay is None else out_ps_decay)
        self.alpha = str(neuron["refractory"]) == "alpha"
        tau_r = float(neuron["tauR"])
        self.g_ref = int(round(-2 * self.theta * math.e / tau_r)) if self.alpha else -2 * self.theta
        self.rx = np.zeros(shape, np.int64)
        self.ry = np.zeros(shape, np.int64)
        self.px = np.zeros(shape, np.int64)  # own PSP state (sent to the next layer)
        self.py = np.zeros(shape, np.int64)
        self.bias = 0 if bias is None else np.asarray(bias, np.int64) * PSP_UNIT
        self.lam = dynamic_lambda

    def step(self, z: np.ndarray, gain: np.ndarray | float | None = None) -> np.ndarray:
        """Spikes for membrane input ``z`` (int64); ``gain`` = sqrt(m2 + lambda) or None."""
        z = z + self.bias
        r = self.ry
        if gain is None:
            s = z + r >= self.theta
        else:
            s = z >= gain * (self.theta - r).astype(np.float64)
        si = s.astype(np.int64)
        if self.alpha:
            inc = si * self.g_ref
            self.rx, self.ry = dec(self.rx + inc, self.dr), dec(self.ry + self.rx + inc, self.dr)
        else:
            self.ry = dec(self.ry + si * self.g_ref, self.dr)
        self.px, self.py = psp_update(self.px, self.py, s, self.dq)
        return s


def m2_from_sums(sq_sum: np.ndarray, steps: int, n_features: int, tau_s: float) -> np.ndarray:
    """``m2(t)`` in float units from ``sum_{tau<=t} sum_i y_i(tau)^2`` (exact int64).

    ``a = (e / tau_s) y / U``, so ``mean a^2 = (e / (tau_s U))^2 * sum / (steps * n)``.
    """
    c = math.e / (tau_s * PSP_UNIT)
    return (c * c) * (sq_sum.astype(np.float64) / float(steps * n_features))


def gain_of(m2: np.ndarray, lam: float) -> np.ndarray:
    return np.sqrt(m2 + lam)
