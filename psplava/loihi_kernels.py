"""The CPU fast path of :mod:`psplava.loihi`'s per-step loops, as numba kernels.

:func:`psplava.loihi.psp` and :func:`psplava.loihi.srm_run` step a layer's integer state
over T with one torch operation per element-wise op and step (the form that runs on any
device).  On the CPU those ~10 passes over memory per step cost more than the layer's
convolution; these kernels do the same integer operations in one pass, each feature's
state in a register.  They are exact by construction (int64 throughout, the same
rounding, the same comparison in float64 for the dynamic threshold), and the tests hold
them against the torch loops, the golden trajectories and the oracle.

``dec`` is :func:`psplava.loihi.dec_round`: ``p = v (4096 - d)``,
``sign(p) ((|p| + 2048) >> 12)``.
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


def psp(s: np.ndarray, dq: int, state_bits: int, msg_shift: int,
        dtype=np.int64) -> np.ndarray:
    """PSP messages (T, F) of spikes ``s`` (T, F) (bool or 0/1): :func:`psplava.loihi.psp`."""
    out = np.empty(s.shape, dtype=dtype)
    _psp(np.ascontiguousarray(s != 0), np.int64(4096 - int(dq)), np.int64(state_bits),
         np.int64(msg_shift), out)
    return out


@numba.njit(cache=True, parallel=True)
def _srm(z, gain, theta, g_ref, keep, alpha, s_out, r_out):
    # z (T, N, F) integer-valued float64 or int64; gain (T, N) float64 or empty
    T, N, F = z.shape
    dynamic = gain.shape[0] > 0
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
                    spike = np.float64(z[t, n, f]) >= gain[t, n] * np.float64(theta - r)
                else:
                    spike = np.int64(z[t, n, f]) + r >= theta
                s_out[t, n, f] = spike
                r_out[t, n, f] = r
                inc = g_ref if spike else np.int64(0)
                if alpha:
                    rxn = _dec(rx + inc, keep)
                    ry = _dec(ry + rx + inc, keep)
                    rx = rxn
                else:
                    ry = _dec(ry + inc, keep)


def srm_run(z: np.ndarray, gain: np.ndarray | None, theta: int, g_ref: int, d: int,
            alpha: bool) -> tuple[np.ndarray, np.ndarray]:
    """Spikes (bool) and refractory state (int64) of :func:`psplava.loihi.srm_run` for
    membrane input ``z`` (T, N, F) and the dynamic threshold's ``gain`` (T, N) or None."""
    z = np.ascontiguousarray(z)
    s = np.empty(z.shape, dtype=np.bool_)
    r = np.empty(z.shape, dtype=np.int64)
    g = np.empty((0, 0), np.float64) if gain is None else \
        np.ascontiguousarray(gain, dtype=np.float64)
    _srm(z, g, np.int64(theta), np.int64(g_ref), np.int64(4096 - int(d)), bool(alpha), s, r)
    return s, r
