"""The SRM neuron's mathematics: one place, pure functions on ``(T, F)`` arrays.

Used by the autograd functions in :mod:`psplava.train.neurons.srm` (training), and meant for
the reference simulator and the tests.  All kernels are exact (no truncated kernels):

* Alpha-kernel PSP (paper Eq. 3, 5), ``eps(k) = (k / tau_s) exp(1 - k / tau_s)``, as a
  two-state recurrence with ``q = decay_per_step(tau_s)`` (:mod:`psplava.neurons.srm`)::

      x(t) = q (x(t-1) + s(t-1))              # sum_{k>=1} q^k s(t-k)
      y(t) = q (y(t-1) + x(t-1) + s(t-1))     # sum_{k>=1} k q^k s(t-k)
      a(t) = (e / tau_s) y(t)                 # = sum_k eps(k) s(t-k)

  Its adjoint (the backward pass) is the same recurrence over reversed time.

* Spike with refractory (Eq. 4, 6, 7): ``u(t) = z(t) + r(t)``, ``s(t) = H(u(t) - theta)``
  where ``r(t) = sum_{k>=1} nu(k) s(t-k)`` and ``nu`` is

  - ``EXP`` (the paper's, default): ``nu(k) = -2 theta exp(-k / tau_r)``;
    ``r(t) = d (r(t-1) - 2 theta s(t-1))``, ``d = decay_per_step(tau_r)``
  - ``ALPHA`` (slayerPytorch's): ``nu(k) = -2 theta (k / tau_r) exp(1 - k / tau_r)``,
    the PSP's two-state recurrence with ``d``.

  Like slayerPytorch, the kernel's value at k = 0 is not applied (the spike's own step
  is unaffected), and a spike is ``u >= theta``.

* Surrogate derivative of H, written out here as lava-dl's ``spike.Spike`` does:
  ``rho(u) = scale_rho / (2 tau_rho) * exp(-|u - theta| / tau_rho)``.  See
  :class:`psplava.train.neurons.srm.SurrogateForm` for how the paper's (alpha, beta) map.

Why numba instead of lava-dl's ``utils.filter.conv``: measured in ``docs/design.md``
(sec. 2), the recurrence is 18x faster than a 77-tap ``filter.conv`` and exact; the
fused spike loop saves only ``rho`` for the backward pass.
"""

from __future__ import annotations


import numba
import numpy as np

_CHUNK = 4096  # features per parallel work item (contiguous rows of (T, F) arrays)


@numba.njit(cache=True)
def _chunk(c, F):
    """First feature and size of parallel work item ``c`` over ``F`` features."""
    f0 = c * _CHUNK
    return f0, min(F, f0 + _CHUNK) - f0


@numba.njit(cache=True, parallel=True, fastmath=False)
def _alpha_filter(s, consts, reverse):
    T, F = s.shape
    q, gain = consts[0], consts[1]
    out = np.empty_like(s)
    nchunks = (F + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        f0, n = _chunk(c, F)
        x = np.zeros(n, dtype=s.dtype)
        y = np.zeros(n, dtype=s.dtype)
        for i in range(T):
            t = T - 1 - i if reverse else i
            if i > 0:
                tp = t + 1 if reverse else t - 1
                for j in range(n):
                    sp = s[tp, f0 + j]
                    xn = q * (x[j] + sp)
                    y[j] = q * (y[j] + x[j] + sp)
                    x[j] = xn
            for j in range(n):
                out[t, f0 + j] = gain * y[j]
    return out


def alpha_filter(s: np.ndarray, q: float, gain: float, reverse: bool = False) -> np.ndarray:
    """``a(t) = gain * sum_{k>=1} k q^k s(t-k)`` along axis 0 of a ``(T, F)`` array.

    With ``reverse=True`` it runs over reversed time, which is the adjoint (used by
    the backward pass): ``g_s(t) = gain * sum_{k>=1} k q^k g_a(t+k)``.
    """
    consts = np.array([q, gain], dtype=s.dtype)
    return _alpha_filter(np.ascontiguousarray(s), consts, bool(reverse))


@numba.njit(cache=True, parallel=True, fastmath=False)
def _srm_spike(z, consts, alpha_refractory):
    T, F = z.shape
    theta, d, ref_gain, k, inv_tau_rho = consts[0], consts[1], consts[2], consts[3], consts[4]
    s = np.empty_like(z)
    rho = np.empty_like(z)
    nchunks = (F + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        f0, n = _chunk(c, F)
        x = np.zeros(n, dtype=z.dtype)
        y = np.zeros(n, dtype=z.dtype)
        for t in range(T):
            if t > 0:
                if alpha_refractory:
                    for j in range(n):
                        sp = s[t - 1, f0 + j]
                        xn = d * (x[j] + sp)
                        y[j] = d * (y[j] + x[j] + sp)
                        x[j] = xn
                else:
                    for j in range(n):
                        y[j] = d * (y[j] + s[t - 1, f0 + j])
            for j in range(n):
                du = z[t, f0 + j] + ref_gain * y[j] - theta
                s[t, f0 + j] = 1.0 if du >= 0 else 0.0
                rho[t, f0 + j] = k * np.exp(-np.abs(du) * inv_tau_rho)
    return s, rho


def srm_spike(z: np.ndarray, theta: float, d: float, alpha_refractory: bool,
              ref_gain: float, tau_rho: float, scale_rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and surrogate ``rho`` of SRM neurons driven by synaptic input ``z`` (T, F).

    ``d = decay_per_step(tau_r)``; ``ref_gain`` multiplies the refractory state: ``-2 theta``
    for EXP and ``-2 theta e / tau_r`` for ALPHA.  Constants are cast to ``z``'s dtype so
    float32 runs stay in float32 (2x faster) and float64 runs stay exact.
    Returns ``(s, rho)`` of ``z``'s shape and dtype.
    """
    consts = np.array([theta, d, ref_gain, scale_rho / (2.0 * tau_rho), 1.0 / tau_rho],
                      dtype=z.dtype)
    return _srm_spike(np.ascontiguousarray(z), consts, bool(alpha_refractory))


def alpha_kernel(tau_s: float, length: int) -> np.ndarray:
    """The sampled alpha kernel ``eps(k) = (k / tau_s) exp(1 - k / tau_s)``, k = 0..length-1."""
    k = np.arange(length, dtype=np.float64)
    return k / tau_s * np.exp(1.0 - k / tau_s)


def refractory_kernel(theta: float, tau_r: float, length: int, alpha: bool = False) -> np.ndarray:
    """The refractory kernel nu(k), k = 0..length-1 (k = 0 is never applied)."""
    k = np.arange(length, dtype=np.float64)
    if alpha:
        return -2.0 * theta * k / tau_r * np.exp(1.0 - k / tau_r)
    return -2.0 * theta * np.exp(-k / tau_r)


# ----------------------------------------------------------------- PSP-LN's backward pass
@numba.njit(cache=True, parallel=True, fastmath=False)
def _sample_dots(g, a):
    # g, a (T, N, F): per-sample sum over T and F of g * a, in float64
    T, N, F = g.shape
    out = np.zeros(N)
    for n in numba.prange(N):
        acc = 0.0
        for t in range(T):
            for f in range(F):
                acc += np.float64(g[t, n, f]) * np.float64(a[t, n, f])
        out[n] = acc
    return out


@numba.njit(cache=True, parallel=True, fastmath=False)
def _ln_backward(g, a, r, c, out):
    # out = r_n (g - a c_n) for (T, N, F) tensors; r, c (N,) in the data's dtype
    T, N, F = g.shape
    for job in numba.prange(T * N):
        t = job // N
        n = job % N
        rn = r[n]
        cn = c[n]
        for f in range(F):
            out[t, n, f] = rn * (g[t, n, f] - a[t, n, f] * cn)


def sample_norm_backward(g: np.ndarray, a_hat: np.ndarray, r: np.ndarray) -> np.ndarray:
    """PSP-LN's backward pass for (T, N, F) arrays: ``r (g - a_hat mean_{T,F}(g a_hat))``
    per sample, in two passes over memory (the dot products, then the result)."""
    T, N, F = g.shape
    c = (_sample_dots(g, a_hat) / (T * F)).astype(g.dtype)
    out = np.empty_like(g)
    _ln_backward(g, a_hat, np.ascontiguousarray(r, dtype=g.dtype), c, out)
    return out
