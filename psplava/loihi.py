"""Loihi fixed-point arithmetic: number formats, quantization, decays, exact synapses.

The integer step of each neuron type lives in its module of :mod:`psplava.neurons`
(SRM, CUBA, SDNN), built from the primitives here.  Everything that computes what a
``.net`` file computes in Lava goes through these modules:

- the PyTorch model in ``loihi`` arithmetic (:mod:`psplava.train.model`), which wraps these
  functions in autograd functions with surrogate / straight-through gradients,
- the batched reference engine (:mod:`psplava.sim.reference`),
- psplava's Lava process models for SRM layers (:mod:`psplava.sim.procs.models`).

It sits in the core package so that training and simulation share it without importing
each other.  All functions take and return ``torch`` tensors: integer states are int64,
membrane inputs are integer-valued (int64, or float64 where a convolution made them; both
are exact below 2**53).  The file-format facts it implements are documented in
``docs/netfile.md``; an independent oracle written from that document lives in the tests.

Number formats (one place):

- **weights**: 8-bit mantissa, even integers in [-256, 254] (Loihi's mixed-sign 8-bit
  weights, as lava-dl exports them), per layer scale ``k`` = integer units per float unit
  of the membrane input, the largest power of two <= ``k_max`` that keeps the weights and
  the threshold in range (:func:`choose_scale`).
- **thresholds**: ``vThMant = round(k theta)`` (17 bits).  CUBA compares ``v > vThMant << 6``
  (Lava's ``PyLifModelBitAcc``); SRM compares ``z + r >= vThMant * PSP_UNIT``.
- **decays**: 12-bit, ``round(4096 (1 - decay per step))``.  CUBA decays *truncate* toward
  zero as Loihi does; SRM's PSP and refractory decays *round to nearest* (truncation biases
  the alpha PSP downwards by ~0.5 unit per step).
- **SRM PSP**: the exact two-state recurrence of the alpha kernel (paper Eq. 3, 5) on a
  state of ``S = 2**12`` units per spike::

      x <- dec(x + S s),   y <- dec(y + x + S s)      (old x on the right)

  so ``y(t) ~ S sum_{k>=1} k q^k s(t-k)``.  The neuron sends ``m = (y + 2**7) >> 8``, the PSP
  in ``U = PSP_UNIT = 2**4`` units per spike: the state keeps the precision (a rounded decay
  leaves values below ~5 units stuck, harmless at 2**12), the message keeps the synaptic sums
  of a 12-layer network well inside the 24 bits of Lava's conv (at 2**8 units per spike they
  wrapped around on real N-MNIST).  The alpha gain ``e / tau_s`` is folded into the weights
  of the layer that receives it (``w_int = round(k w e / tau_s)``).
- **synapses**: Lava's conv *wraps* its output to 24 bits (two's complement); dense does not.
  For SRM layers ``theta k <= SRM_THETA_K_MAX`` keeps ``theta_int = theta k U <= 2**19``,
  16 thresholds below the wrap-around (the model in loihi arithmetic wraps exactly as Lava
  does if a layer ever gets there).
- **refractory** (paper Eq. 4): ``r <- dec_r(r + g_ref s)`` with ``g_ref = -2 theta_int``
  (EXP) or, for the alpha-shaped kernel, the two-state form with
  ``round(-2 theta_int e / tau_r)``.
- **spike**: ``z + r >= theta_int``; with causal PSP-LN's dynamic threshold (paper Eq. 18)
  ``z >= sqrt(m2 + lambda) (theta_int - r)`` in float64, where ``m2(t)`` is computed by
  :meth:`DynamicThreshold.causal_m2` from exact integer sums of the layer's input PSPs.

Timing: an SRM neuron sends at step t the PSP it will have at t+1 (the alpha kernel is 0 at
lag 0), so Lava's one-step synapse buffer delivers exactly the model's ``z(t+1)``: SRM
networks have no latency.  A CUBA layer sends spikes, so each layer adds one step
(:func:`latency`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- constants
WEIGHT_MIN, WEIGHT_MAX, WEIGHT_STEP = -256, 254, 2
VTH_MANT_MAX = (1 << 17) - 1
DECAY_UNITY = 4096
DECAY_SHIFT = 12
STATE_BITS = 24
STATE_MAX = 1 << (STATE_BITS - 1)
CUBA_SHIFT = 6                      # Loihi MSB-aligns synaptic input and threshold by 6 bits
PSP_STATE_BITS = 12                # SRM: the PSP state holds 2**12 units per spike
PSP_MSG_SHIFT = 8                  # ... and sends it rounded to 2**4 units per spike
PSP_UNIT = 1 << (PSP_STATE_BITS - PSP_MSG_SHIFT)   # message (synapse input) units per spike
#: largest ``theta * k`` for SRM layers: ``theta_int = theta k U`` stays <= 2**19, 16
#: thresholds below the 24-bit wrap-around of Lava's conv
SRM_THETA_K_MAX = (1 << 19) / PSP_UNIT
#: default largest weight scale (lava-dl uses 64); power of two
K_MAX = 1024.0


# --------------------------------------------------------------------------- quantization
#: the range of ``k_max`` (a power of two): 2**-12 .. 2**16
K_MAX_RANGE = (2.0 ** -12, 2.0 ** 16)


def check_k_max(k_max: float, where: str = "k_max") -> float:
    """``k_max`` as the scale rule needs it: a finite power of two in :data:`K_MAX_RANGE`
    (``ValueError`` naming ``where`` otherwise).  A power of two keeps every scale the rule
    picks a power of two (a shift on the chip)."""
    k = float(k_max)
    lo, hi = K_MAX_RANGE
    if not math.isfinite(k) or not lo <= k <= hi or math.frexp(k)[0] != 0.5:
        raise ValueError(f"{where} must be a power of two from 2**-12 to 2**16 (lava-dl uses "
                         f"64, psplava's default is {K_MAX:g}), got {k_max!r}")
    return k


def choose_scale(w_abs_max: float, theta: float, k_max: float = K_MAX,
                 theta_k_max: float = VTH_MANT_MAX) -> float:
    """The largest power-of-two scale <= k_max keeping weights and threshold in range."""
    k = float(k_max)
    while k > 2.0 ** -12 and (w_abs_max * k > WEIGHT_MAX or theta * k > theta_k_max):
        k /= 2.0
    return k


def quantize_weight(w_scaled: torch.Tensor) -> torch.Tensor:
    """Nearest even integer in [-256, 254] of ``w * k`` (float64 in, float64 out)."""
    return torch.clamp(torch.round(w_scaled / WEIGHT_STEP) * WEIGHT_STEP, WEIGHT_MIN, WEIGHT_MAX)


def quantize_threshold(theta: float, scale: float) -> int:
    """Threshold mantissa ``round(theta * scale)`` (17 bits)."""
    v = int(round(theta * scale))
    if not 0 < v <= VTH_MANT_MAX:
        raise ValueError(f"threshold {theta} x scale {scale} = {v} outside 1..{VTH_MANT_MAX}")
    return v


def quantize_decay(decay_per_step: float) -> int:
    """12-bit decay constant of ``x <- x * decay_per_step``: ``round(4096 (1 - decay))``."""
    return int(round(DECAY_UNITY * (1.0 - decay_per_step)))


# --------------------------------------------------------------------------- integer ops
def dec_round(v: torch.Tensor, decay: int) -> torch.Tensor:
    """``v`` after one step of the 12-bit ``decay`` (``ps_decay``, ``ref_decay``), rounded
    to nearest (halves away from zero): SRM's PSP and refractory."""
    p = v * (DECAY_UNITY - int(decay))
    return torch.sign(p) * ((p.abs() + (DECAY_UNITY >> 1)) >> DECAY_SHIFT)


def dec_trunc(v: torch.Tensor, decay: int) -> torch.Tensor:
    """``v`` after one step of the 12-bit ``decay`` (``i_decay``, ``v_decay``), truncated
    toward zero: Loihi's CUBA current and voltage.

    int64 or float64 ``v`` holding integers: in float64, ``v (4096 - d) / 4096`` is exact
    for ``|v| < 2**40`` (the factor is a multiple of 2**-12), and one ``trunc`` is 4-5x
    faster on a CPU than int64's sign/abs/shift (the reference engine's CUBA layers)."""
    if v.is_floating_point():
        return torch.trunc(v * ((DECAY_UNITY - int(decay)) / DECAY_UNITY))
    p = v * (DECAY_UNITY - int(decay))
    return torch.sign(p) * (p.abs() >> DECAY_SHIFT)


def wrap24(z: torch.Tensor) -> torch.Tensor:
    """Lava's ``signed_clamp(x, 24)``: two's-complement wrap-around to 24 bits."""
    base = 1 << STATE_BITS
    return torch.remainder(z + base // 2, base) - base // 2


F32_EXACT = float(1 << 24)   # integers below this add exactly in float32


def _min_max(x: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of ``x`` in one pass; (0, 1) for spikes (bool) without scanning."""
    if not x.numel():
        return 0.0, 0.0
    if x.dtype == torch.bool:
        return 0.0, 1.0
    lo, hi = torch.aminmax(x)
    return float(lo), float(hi)


def abs_max(x: torch.Tensor) -> float:
    lo, hi = _min_max(x)
    return max(-lo, hi)


def _exact_matmul(fn, x: torch.Tensor, w: torch.Tensor, fan_in: int,
                  x_range: tuple[float, float] | None = None,
                  out_dtype: torch.dtype = torch.int64, peak: list | None = None
                  ) -> torch.Tensor:
    """``fn(x, w)`` (a conv or a matmul of integers) computed exactly, as ``out_dtype``
    (int64, or float64 holding the integers).

    On the CPU, float32 kernels are exact while every partial sum stays below 2**24: used
    directly when ``fan_in max|x| max|w| < 2**24`` (spikes), on the two 8-bit halves of
    ``x`` when only that fits (PSPs below 2**16), else float64 (exact below 2**53); on a
    GPU always float64.  ``x_range``: x's (min, max), or bounds of them, when the caller
    has them (no scan of x; any bounds give the same integers, only the path may differ).
    ``peak``: a one-element list that receives max |result| when a path computes it.
    """
    if x.device.type != "cpu":
        # GPUs: float32 convs may run in TF32 or by Winograd / FFT algorithms, whose
        # rounding is not that of exact integer sums; float64 is exact below 2**53
        return torch.round(fn(x.to(torch.float64), w.to(torch.float64))).to(out_dtype)
    lo, hi = _min_max(x) if x_range is None else x_range
    xmax = max(-lo, hi)
    wmax = abs_max(w)
    w32 = w.to(torch.float32)
    if fan_in * xmax * wmax < F32_EXACT:
        return torch.round(fn(x.to(torch.float32), w32)).to(out_dtype)
    if xmax < 65536 and fan_in * 255 * wmax < F32_EXACT and lo >= 0:
        fast = _halves_fast(fn, x, w32, out_dtype)
        if fast is not None:
            if peak is not None:
                peak[0] = fast[1]
            return fast[0]
        xi = x.to(torch.int64)
        both = torch.cat([(xi >> 8).to(torch.float32), (xi & 255).to(torch.float32)])
        z = torch.round(fn(both, w32)).to(torch.int64)
        n = x.shape[0]
        return ((z[:n] << 8) + z[n:]).to(out_dtype)
    return torch.round(fn(x.to(torch.float64), w.to(torch.float64))).to(out_dtype)


def _rows_last(t: torch.Tensor) -> torch.Tensor | None:
    """``t`` (B, C, H, W) as its contiguous (B, H, W, C) memory (channels-last), or (B, F)
    as is; None when its memory is laid out otherwise."""
    if t.dim() == 4:
        v = t.permute(0, 2, 3, 1)
        return v if v.is_contiguous() else None
    return t if t.is_contiguous() else None


def _halves_fast(fn, x: torch.Tensor, w32: torch.Tensor, out_dtype: torch.dtype
                 ) -> tuple[torch.Tensor, float] | None:
    """The two-halves product with the split and the recombination as single numba passes
    (:mod:`psplava.loihi_kernels`), for a float32 ``x`` in channels-last (or row) memory
    and a float64 result: (result, its max |value|); None where that does not apply (the
    torch form runs)."""
    if not (CPU_KERNELS and x.dtype == torch.float32 and out_dtype == torch.float64):
        return None
    rows = _rows_last(x)
    if rows is None:
        return None
    # numba: its kernels compile at first use
    from psplava import loihi_kernels

    both = torch.from_numpy(loihi_kernels.split_halves(rows.numpy()))   # (2, B, ...)
    both = both.reshape(2 * x.shape[0], *rows.shape[1:])
    z = fn(both.permute(0, 3, 1, 2) if x.dim() == 4 else both, w32)
    zr = _rows_last(z)
    if zr is None:
        return None
    out, top = loihi_kernels.combine_halves(zr.reshape(2, x.shape[0], *zr.shape[1:]).numpy())
    out = torch.from_numpy(out)
    return (out.permute(0, 3, 1, 2) if x.dim() == 4 else out), top


def synapse(x: torch.Tensor, w: torch.Tensor, kind: str, stride: int | tuple[int, int] = 1,
            padding: int | tuple[int, int] = 0, x_range: tuple[float, float] | None = None,
            out_dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Integer synaptic input (``out_dtype``: int64, or float64 holding the integers) of
    integer messages ``x`` through integer weights ``w``; ``x_range``: bounds of x's
    values when known (else x is scanned).

    conv: ``x`` (B, C, H, W) (any memory format), ``w`` (out, in, kh, kw): Lava's conv, which
    wraps its output to 24 bits.  dense: ``x`` (B, F), ``w`` (out, F): Lava's dense (no wrap).
    """
    x_range = _min_max(x) if x_range is None else x_range
    if kind == "conv":
        fan_in = int(w[0].numel())
        peak: list = [None]
        z = _exact_matmul(lambda a, b: F.conv2d(a, b, stride=stride, padding=padding),
                          x, w, fan_in, x_range, out_dtype, peak)
        bound = fan_in * max(-x_range[0], x_range[1]) * abs_max(w)
        if bound >= STATE_MAX and (abs_max(z) if peak[0] is None else peak[0]) >= STATE_MAX:
            z = wrap24(z)
        return z
    return _exact_matmul(lambda a, b: a @ b.t(), x, w, int(w.shape[1]), x_range, out_dtype)


#: the per-step loops of :func:`psp` and :func:`srm_run` on CPU tensors run as numba
#: kernels (:mod:`psplava.loihi_kernels`, the same integers in one pass); False: the torch
#: loops everywhere (the form every device runs; the tests compare the two)
CPU_KERNELS = True


def cpu_fast(t: torch.Tensor) -> bool:
    """Whether the numba kernels run for ``t`` (a CPU tensor, :data:`CPU_KERNELS` on)."""
    return CPU_KERNELS and t.device.type == "cpu"


@dataclass(frozen=True)
class DynamicThreshold:
    """Causal PSP-LN's dynamic threshold (paper Eq. 18) of one layer.

    ``lam``: lambda; ``prior`` / ``prior_steps``: the running average of ``m2`` starts from
    ``prior_steps`` pseudo-steps of second moment ``prior`` (float PSP units); none when
    ``prior_steps`` is 0 (the paper's plain running mean, format 3 files).
    """

    lam: float
    prior: float = 0.0
    prior_steps: float = 0.0

    def m2_from_sums(self, sums: torch.Tensor, steps: torch.Tensor | int, n: int,
                     tau_s: float) -> torch.Tensor:
        """``m2`` in float units from ``Q = sum_{tau<=t} sum_i y_i(tau)^2`` over ``steps``
        steps of ``n`` inputs: ``c^2 Q / (steps n)``, or with a prior
        ``(c^2 (Q / n) + n0 prior) / (steps + n0)``, ``c = e / (tau_s U)``; float64, in this
        order of operations (``docs/netfile.md``)."""
        c = math.e / (tau_s * PSP_UNIT)
        q = sums.to(torch.float64)
        if not self.prior_steps:
            return (c * c) * (q / torch.as_tensor(steps * n, dtype=torch.float64))
        n0 = float(self.prior_steps)
        return ((c * c) * (q / float(n)) + n0 * float(self.prior)) / \
            (torch.as_tensor(steps, dtype=torch.float64) + n0)

    def gain(self, m2: torch.Tensor) -> torch.Tensor:
        """Eq. 18's threshold factor ``sqrt(m2 + lambda)``."""
        return torch.sqrt(m2 + self.lam)

    def causal_m2(self, y: torch.Tensor, tau_s: float) -> torch.Tensor:
        """``m2(t)`` of causal PSP-LN, float units, shape (T, N), from integer PSPs ``y``
        (T, N, ...): the mean over steps <= t of ``mean_features a^2``,
        ``a = (e/tau_s) y / U`` (with the prior, if any).

        Exact integer sums, one float64 formula (the Lava moment process computes the
        same)."""
        T, N = y.shape[:2]
        n = y[0, 0].numel()
        sq = (y.to(torch.int64) ** 2).reshape(T, N, -1).sum(dim=2)
        sums = torch.cumsum(sq, dim=0)
        steps = torch.arange(1, T + 1, dtype=torch.int64, device=y.device)[:, None]
        return self.m2_from_sums(sums, steps, n, tau_s)


def delay_one(z: torch.Tensor) -> torch.Tensor:
    """Lava's one-step synapse buffer on a (T, ...) tensor: ``out[t] = z[t-1]``, ``out[0] = 0``."""
    return torch.cat([torch.zeros_like(z[:1]), z[:-1]], dim=0)


