"""The exact specification of the SRM neuron's float kernels, as direct sums.

Both implementations -- the numba kernels of :mod:`psplava.train.kernels` (CPU) and the
Triton kernels of :mod:`psplava.train.kernels_triton` (GPU) -- compute these functions
with two-state recurrences; the tests hold both against the sums written here, which
share no code with either (``O(T^2)`` per feature: small shapes only).

* ``psp(s)(t) = gain * sum_{k=1..t} k q^k s(t - k)`` (alpha PSP, paper Eq. 3, 5; with
  ``q = decay_per_step(tau_s)``, ``gain = e / tau_s``); its adjoint
  ``psp_adjoint(g)(t) = gain * sum_{k=1..T-1-t} k q^k g(t + k)``.
* The spike loop (Eq. 4, 6, 7): ``u(t) = z(t) + r(t)``, ``s(t) = [u(t) >= theta]``,
  ``r(t) = ref_gain * sum_{k=1..t} h(k) s(t - k)`` with ``h(k) = d^k`` (EXP refractory) or
  ``k d^k`` (ALPHA), ``d = decay_per_step(tau_r)``; the surrogate
  ``rho(t) = scale_rho / (2 tau_rho) * exp(-|u(t) - theta| / tau_rho)``.
"""

from __future__ import annotations

import numpy as np


def psp(s: np.ndarray, q: float, gain: float) -> np.ndarray:
    """Alpha PSP of ``s`` (T, F) along axis 0, float64."""
    s = np.asarray(s, dtype=np.float64)
    T = s.shape[0]
    out = np.zeros_like(s)
    for t in range(T):
        for k in range(1, t + 1):
            out[t] += k * q ** k * s[t - k]
    return gain * out


def psp_adjoint(g: np.ndarray, q: float, gain: float) -> np.ndarray:
    """The adjoint of :func:`psp` (the backward pass), float64."""
    return psp(np.asarray(g, dtype=np.float64)[::-1], q, gain)[::-1].copy()


def spike(z: np.ndarray, theta: float, d: float, alpha_refractory: bool, ref_gain: float,
          tau_rho: float, scale_rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and surrogate ``rho`` of SRM neurons driven by ``z`` (T, F), float64."""
    z = np.asarray(z, dtype=np.float64)
    T = z.shape[0]
    s = np.zeros_like(z)
    rho = np.zeros_like(z)
    for t in range(T):
        r = np.zeros(z.shape[1:])
        for k in range(1, t + 1):
            h = k * d ** k if alpha_refractory else d ** k
            r += h * s[t - k]
        u = z[t] + ref_gain * r
        s[t] = (u >= theta).astype(np.float64)
        rho[t] = scale_rho / (2.0 * tau_rho) * np.exp(-np.abs(u - theta) / tau_rho)
    return s, rho
