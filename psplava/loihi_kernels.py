"""The CPU fast path of :mod:`psplava.loihi`'s per-step loops, as numba kernels.

:func:`psplava.neurons.srm.psp` and :func:`psplava.neurons.srm.srm_run` step a layer's integer state
over T with one torch operation per element-wise op and step (the form that runs on any
device).  On the CPU those ~10 passes over memory per step cost more than the layer's
convolution; these kernels do the same integer operations in one pass, each feature's
state in a register.  They are exact by construction (int64 throughout, the same
rounding, the same comparison in float64 for the dynamic threshold), and the tests hold
them against the torch loops, the golden trajectories and the oracle.

``_dec`` is :func:`psplava.loihi.dec_round`: ``p = v keep``, ``keep = 4096 - decay``
(``ps_decay`` or ``ref_decay``), ``sign(p) ((|p| + 2048) >> 12)``.
"""

from __future__ import annotations

import numba
import numpy as np

_CHUNK = 4096


@numba.njit(cache=True, inline="always")
def _dec(v, keep):
    p = v * keep
    if p >= 0:
        return (p + 2048) >> 12
    return -((-p + 2048) >> 12)


@numba.njit(cache=True, parallel=True)
def _psp(s, keep, state_bits, msg_shift, out):
    T, F = s.shape
    half = np.int64(1) << (msg_shift - 1)
    nchunks = (F + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        f0 = c * _CHUNK
        f1 = min(F, f0 + _CHUNK)
        for f in range(f0, f1):
            x = np.int64(0)
            y = np.int64(0)
            for t in range(T):
                out[t, f] = (y + half) >> msg_shift
                inc = np.int64(1 << state_bits) if s[t, f] else np.int64(0)
                xn = _dec(x + inc, keep)
                y = _dec(y + x + inc, keep)
                x = xn


def psp(s: np.ndarray, ps_decay: int, state_bits: int, msg_shift: int,
        dtype=np.int64) -> np.ndarray:
    """PSP messages (T, F) of spikes ``s`` (T, F) (bool or 0/1): :func:`psplava.neurons.srm.psp`."""
    out = np.empty(s.shape, dtype=dtype)
    _psp(np.ascontiguousarray(s != 0), np.int64(4096 - int(ps_decay)), np.int64(state_bits),
         np.int64(msg_shift), out)
    return out


@numba.njit(cache=True, parallel=True)
def _srm(z, gain, theta, g_ref, keep, alpha, s_out, r_out, rho_out, rho_c):
    # z (T, N, F) integer-valued float64 or int64; gain (T, N) float64 or empty;
    # r_out / rho_out (T, N, F) or empty; rho_c = (scale / (2 tau), tau, unit)
    T, N, F = z.shape
    dynamic = gain.shape[0] > 0
    want_r = r_out.shape[0] > 0
    want_rho = rho_out.shape[0] > 0
    nchunks = (F + _CHUNK - 1) // _CHUNK
    for job in numba.prange(N * nchunks):
        n = job // nchunks
        f0 = (job % nchunks) * _CHUNK
        f1 = min(F, f0 + _CHUNK)
        for f in range(f0, f1):
            rx = np.int64(0)
            ry = np.int64(0)
            for t in range(T):
                r = ry
                if dynamic:
                    g = gain[t, n]
                    spike = np.float64(z[t, n, f]) >= g * np.float64(theta - r)
                    u = np.float64(z[t, n, f]) / g + np.float64(r)
                else:
                    spike = np.int64(z[t, n, f]) + r >= theta
                    u = np.float64(z[t, n, f]) + np.float64(r)
                s_out[t, n, f] = spike
                if want_r:
                    r_out[t, n, f] = r
                if want_rho:
                    x = (u - np.float64(theta)) / rho_c[2]
                    rho_out[t, n, f] = rho_c[0] * np.exp(-abs(x) / rho_c[1])
                inc = g_ref if spike else np.int64(0)
                if alpha:
                    rxn = _dec(rx + inc, keep)
                    ry = _dec(ry + rx + inc, keep)
                    rx = rxn
                else:
                    ry = _dec(ry + inc, keep)


_NO_R = np.empty((0, 0, 0), np.int64)
_NO_RHO = np.empty((0, 0, 0), np.float64)


def srm_run(z: np.ndarray, gain: np.ndarray | None, theta: int, g_ref: int, d: int,
            alpha: bool, surrogate: tuple[float, float, float] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Spikes (bool) and refractory state (int64) of :func:`psplava.neurons.srm.srm_run` for
    membrane input ``z`` (T, N, F) and the dynamic threshold's ``gain`` (T, N) or None.

    ``surrogate = (unit, tau_rho, scale_rho)``: instead of the refractory state, the
    surrogate derivative of loihi-arithmetic training (:mod:`psplava.train.loihi_ops`),
    ``scale_rho / (2 tau_rho) exp(-|u - theta| / (unit tau_rho))`` with ``u = z + r``
    (``z / gain + r`` with a dynamic threshold), in float64, in the same pass."""
    z = np.ascontiguousarray(z)
    s = np.empty(z.shape, dtype=np.bool_)
    g = np.empty((0, 0), np.float64) if gain is None else \
        np.ascontiguousarray(gain, dtype=np.float64)
    if surrogate is None:
        r = np.empty(z.shape, dtype=np.int64)
        _srm(z, g, np.int64(theta), np.int64(g_ref), np.int64(4096 - int(d)), bool(alpha), s,
             r, _NO_RHO, np.zeros(3))
        return s, r
    unit, tau_rho, scale_rho = surrogate
    rho = np.empty(z.shape, dtype=np.float64)
    c = np.array([scale_rho / (2.0 * tau_rho), tau_rho, unit])
    _srm(z, g, np.int64(theta), np.int64(g_ref), np.int64(4096 - int(d)), bool(alpha), s,
         _NO_R, rho, c)
    return s, rho


# ------------------------------------------------------------- exact synapses (halves)
@numba.njit(cache=True, parallel=True)
def _split(x, out):
    # x (M,) float32 integers in [0, 2**16); out (2, M): high and low bytes
    M = x.shape[0]
    nchunks = (M + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        for i in range(c * _CHUNK, min(M, (c + 1) * _CHUNK)):
            v = np.int64(x[i])
            out[0, i] = np.float32(v >> 8)
            out[1, i] = np.float32(v & 255)


def split_halves(x: np.ndarray) -> np.ndarray:
    """``[x >> 8, x & 255]`` (2, ...) float32 of a float32 array of integers < 2**16."""
    out = np.empty((2, *x.shape), dtype=np.float32)
    _split(x.reshape(-1), out.reshape(2, -1))
    return out


@numba.njit(cache=True, parallel=True)
def _combine(z, out, peaks):
    # z (2, M) float32 near-integers (conv of the halves); out (M,) float64
    M = z.shape[1]
    nchunks = (M + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        peak = 0.0
        for i in range(c * _CHUNK, min(M, (c + 1) * _CHUNK)):
            v = np.float64(np.round(z[0, i])) * 256.0 + np.float64(np.round(z[1, i]))
            out[i] = v
            a = abs(v)
            if a > peak:
                peak = a
        peaks[c] = peak


def combine_halves(z: np.ndarray) -> tuple[np.ndarray, float]:
    """``round(z[0]) * 256 + round(z[1])`` in float64 (exact) and its largest |value|."""
    M = z[0].size
    out = np.empty(z.shape[1:], dtype=np.float64)
    peaks = np.zeros((M + _CHUNK - 1) // _CHUNK + 1)
    _combine(z.reshape(2, -1), out.reshape(-1), peaks)
    return out, float(peaks.max())
