"""Loihi fixed-point arithmetic: the one implementation of the integer neuron step.

Everything that computes what a ``.net`` file computes in Lava goes through this module:

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
from enum import Enum

import torch

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


class NeuronType(str, Enum):
    """Neuron types of the ``.net`` format (the ``neuron/type`` field)."""

    SRM = "SRM"
    CUBA = "CUBA"
    LOIHI = "LOIHI"   # lava-dl's alias of CUBA
    SDNN = "SDNN"


class Refractory(str, Enum):
    EXP = "exp"      # the paper's nu(t) = -2 theta exp(-t / tau_r)
    ALPHA = "alpha"  # slayerPytorch's nu(t) = -2 theta (t / tau_r) exp(1 - t / tau_r)


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


def decay_of_tau(tau: float) -> int:
    """12-bit decay constant of ``exp(-1 / tau)``."""
    return quantize_decay(math.exp(-1.0 / tau))


# --------------------------------------------------------------------------- integer ops
def dec_round(v: torch.Tensor, d: int) -> torch.Tensor:
    """12-bit decay rounded to nearest (halves away from zero): SRM's PSP and refractory."""
    p = v * (DECAY_UNITY - int(d))
    return torch.sign(p) * ((p.abs() + (DECAY_UNITY >> 1)) >> DECAY_SHIFT)


def dec_trunc(v: torch.Tensor, d: int) -> torch.Tensor:
    """12-bit decay truncated toward zero: Loihi's CUBA current and voltage.

    int64 or float64 ``v`` holding integers: in float64, ``v (4096 - d) / 4096`` is exact
    for ``|v| < 2**40`` (the factor is a multiple of 2**-12), and one ``trunc`` is 4-5x
    faster on a CPU than int64's sign/abs/shift (the reference engine's CUBA layers)."""
    if v.is_floating_point():
        return torch.trunc(v * ((DECAY_UNITY - int(d)) / DECAY_UNITY))
    p = v * (DECAY_UNITY - int(d))
    return torch.sign(p) * (p.abs() >> DECAY_SHIFT)


def wrap24(z: torch.Tensor) -> torch.Tensor:
    """Lava's ``signed_clamp(x, 24)``: two's-complement wrap-around to 24 bits."""
    base = 1 << STATE_BITS
    return torch.remainder(z + base // 2, base) - base // 2


_F32_EXACT = float(1 << 24)   # integers below this add exactly in float32


def _min_max(x: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` of ``x`` in one pass; (0, 1) for spikes (bool) without scanning."""
    if not x.numel():
        return 0.0, 0.0
    if x.dtype == torch.bool:
        return 0.0, 1.0
    lo, hi = torch.aminmax(x)
    return float(lo), float(hi)


def _abs_max(x: torch.Tensor) -> float:
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
    wmax = _abs_max(w)
    w32 = w.to(torch.float32)
    if fan_in * xmax * wmax < _F32_EXACT:
        return torch.round(fn(x.to(torch.float32), w32)).to(out_dtype)
    if xmax < 65536 and fan_in * 255 * wmax < _F32_EXACT and lo >= 0:
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
    import torch.nn.functional as F

    x_range = _min_max(x) if x_range is None else x_range
    if kind == "conv":
        fan_in = int(w[0].numel())
        peak: list = [None]
        z = _exact_matmul(lambda a, b: F.conv2d(a, b, stride=stride, padding=padding),
                          x, w, fan_in, x_range, out_dtype, peak)
        bound = fan_in * max(-x_range[0], x_range[1]) * _abs_max(w)
        if bound >= STATE_MAX and (_abs_max(z) if peak[0] is None else peak[0]) >= STATE_MAX:
            z = wrap24(z)
        return z
    return _exact_matmul(lambda a, b: a @ b.t(), x, w, int(w.shape[1]), x_range, out_dtype)


def latency(neuron: NeuronType | str, n_layers: int) -> int:
    """Steps by which the output layer lags the input: SRM 0, CUBA one per layer."""
    return 0 if NeuronType(neuron) is NeuronType.SRM else int(n_layers)


# --------------------------------------------------------------------------- SRM
def psp_step(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor, dq: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """New integer alpha-PSP state (x, y) after a step with spikes ``s`` (0/1)."""
    inc = s.to(torch.int64) << PSP_STATE_BITS
    return dec_round(x + inc, dq), dec_round(y + x + inc, dq)


def psp_message(y: torch.Tensor) -> torch.Tensor:
    """The PSP a neuron sends: its state ``y`` (>= 0) rounded to ``PSP_UNIT`` units."""
    return (y + (1 << (PSP_MSG_SHIFT - 1))) >> PSP_MSG_SHIFT


#: the per-step loops of :func:`psp` and :func:`srm_run` on CPU tensors run as numba
#: kernels (:mod:`psplava.loihi_kernels`, the same integers in one pass); False: the torch
#: loops everywhere (the form every device runs; the tests compare the two)
CPU_KERNELS = True


def cpu_fast(t: torch.Tensor) -> bool:
    """Whether the numba kernels run for ``t`` (a CPU tensor, :data:`CPU_KERNELS` on)."""
    return CPU_KERNELS and t.device.type == "cpu"


def psp_message_bound(dq: int) -> int:
    """An upper bound of every PSP message with decay ``dq`` (one spike per step at most):
    ``U sum_{k>=1} k Q^k = U Q / (1 - Q)^2`` with ``Q = 1 - dq / 4096``, plus the rounding
    of the states and the message (at most half a state unit per step each: a few state
    units in all, far below one message unit; 2 added).  Tested against saturated input."""
    q = (DECAY_UNITY - int(dq)) / DECAY_UNITY
    if q >= 1.0:
        return 1 << 62
    return int(math.ceil(PSP_UNIT * q / (1.0 - q) ** 2)) + 2


def psp(s: torch.Tensor, dq: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """The PSP messages (shape of ``s``; int64, or a float dtype holding the same integers:
    float32 is exact while :func:`psp_message_bound` < 2**24) of spikes ``s`` (T, ...), as
    the receiving synapse sees them: the value at t depends on spikes before t (0 at t = 0)."""
    if dtype == torch.float32 and psp_message_bound(dq) >= _F32_EXACT:
        raise ValueError(f"PSP messages with decay {dq} may exceed float32's exact integers")
    if cpu_fast(s):
        from psplava import loihi_kernels  # numba: compiled at first use

        flat = s.detach().reshape(s.shape[0], -1).numpy()
        np_dtype = {torch.int64: "int64", torch.float64: "float64",
                    torch.float32: "float32"}[dtype]
        return torch.from_numpy(loihi_kernels.psp(flat, dq, PSP_STATE_BITS, PSP_MSG_SHIFT,
                                                  np_dtype)).view(s.shape)
    return _psp_loop(s, dq).to(dtype)


def _psp_loop(s: torch.Tensor, dq: int) -> torch.Tensor:
    x = torch.zeros(s.shape[1:], dtype=torch.int64, device=s.device)
    y = torch.zeros_like(x)
    out = torch.empty(s.shape, dtype=torch.int64, device=s.device)
    for t in range(s.shape[0]):
        out[t] = psp_message(y)
        x, y = psp_step(x, y, s[t], dq)
    return out


@dataclass(frozen=True)
class SRMHardware:
    """Integer parameters of one SRM layer (what the ``.net`` file's neuron group holds)."""

    v_th_mant: int        # threshold mantissa; theta_int = v_th_mant * PSP_UNIT
    ref_decay: int        # 12-bit refractory decay
    refractory: Refractory
    tau_r: float          # for the ALPHA refractory gain

    @property
    def theta_int(self) -> int:
        return int(self.v_th_mant) * PSP_UNIT

    @property
    def ref_gain(self) -> int:
        """Refractory increment per spike (integer, negative)."""
        if Refractory(self.refractory) is Refractory.ALPHA:
            return int(round(-2 * self.theta_int * math.e / self.tau_r))
        return -2 * self.theta_int


class SRMState:
    """Refractory state and spike rule of a group of fixed-point SRM neurons.

    ``step(z, gain)`` takes the integer membrane input of one step (bias included) and,
    for a dynamic threshold, ``gain = sqrt(m2 + lambda)`` broadcastable to ``z``; it returns
    the spikes (bool).  ``r`` holds the refractory state used by the last step.
    """

    def __init__(self, shape: tuple[int, ...], hw: SRMHardware,
                 device: torch.device | str = "cpu") -> None:
        self.hw = hw
        self.theta = hw.theta_int
        self.g_ref = hw.ref_gain
        self.alpha = Refractory(hw.refractory) is Refractory.ALPHA
        self.rx = torch.zeros(shape, dtype=torch.int64, device=device)
        self.ry = torch.zeros(shape, dtype=torch.int64, device=device)
        self.r = self.ry

    def step(self, z: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        self.r = r = self.ry
        if gain is None:
            s = z.to(torch.int64) + r >= self.theta
        else:
            s = z.to(torch.float64) >= gain * (self.theta - r).to(torch.float64)
        inc = s.to(torch.int64) * self.g_ref
        d = self.hw.ref_decay
        if self.alpha:
            self.rx, self.ry = dec_round(self.rx + inc, d), dec_round(self.ry + self.rx + inc, d)
        else:
            self.ry = dec_round(self.ry + inc, d)
        return s


def srm_run(z: torch.Tensor, hw: SRMHardware, gain: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes (bool) and the refractory state each step used (int64), shape of ``z``
    (T, N, ...), of SRM neurons driven by integer membrane input ``z`` (bias included);
    ``gain`` (T, N): the dynamic threshold's ``sqrt(m2 + lambda)``."""
    if cpu_fast(z) and z.dim() >= 2:
        return _srm_kernel(z, hw, gain)
    state = SRMState(z.shape[1:], hw, z.device)
    s = torch.empty(z.shape, dtype=torch.bool, device=z.device)
    r = torch.empty(z.shape, dtype=torch.int64, device=z.device)
    for t in range(z.shape[0]):
        g = None if gain is None else gain[t].view(-1, *[1] * (z.dim() - 2))
        s[t] = state.step(z[t], g)
        r[t] = state.r
    return s, r


def srm_run_surrogate(z: torch.Tensor, hw: SRMHardware, gain: torch.Tensor | None,
                      unit: float, tau_rho: float, scale_rho: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`srm_run`'s spikes with, instead of the refractory state, the surrogate
    ``scale_rho / (2 tau_rho) exp(-|u - theta_int| / (unit tau_rho))`` (``u = z + r``, or
    ``z / gain + r``) of loihi-arithmetic training, float64: one numba pass (CPU tensors)."""
    return _srm_kernel(z, hw, gain, (float(unit), float(tau_rho), float(scale_rho)))


def _srm_kernel(z: torch.Tensor, hw: SRMHardware, gain: torch.Tensor | None,
                surrogate: tuple[float, float, float] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The numba SRM pass (:func:`psplava.loihi_kernels.srm_run`) on CPU tensors (T, N, ...):
    spikes, and the refractory state or (with ``surrogate``) the surrogate."""
    from psplava import loihi_kernels  # numba: compiled at first use

    T, N = z.shape[:2]
    zf = z.detach().reshape(T, N, -1)
    zf = zf if zf.dtype in (torch.float64, torch.int64) else zf.to(torch.float64)
    g = None if gain is None else gain.detach().reshape(T, N).to(torch.float64).numpy()
    s, second = loihi_kernels.srm_run(zf.numpy(), g, hw.theta_int, hw.ref_gain, hw.ref_decay,
                                      Refractory(hw.refractory) is Refractory.ALPHA, surrogate)
    return torch.from_numpy(s).view(z.shape), torch.from_numpy(second).view(z.shape)


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


# --------------------------------------------------------------------------- CUBA
@dataclass(frozen=True)
class CubaHardware:
    """Integer parameters of one CUBA layer (stock netx)."""

    i_decay: int
    v_decay: int
    v_th_mant: int


class CubaState:
    """Lava's ``PyLifModelBitAcc`` (netx CUBA): ``u = dec(u) + (a_in << 6)`` wrapped to 24
    bits, ``v = dec(v) + u + (bias << 6)`` clipped to 24 bits, spike when
    ``v > vThMant << 6``, then ``v = 0``.  ``v`` before the reset is kept in ``v_pre``."""

    def __init__(self, shape: tuple[int, ...], hw: CubaHardware,
                 bias: torch.Tensor | None = None, device: torch.device | str = "cpu",
                 max_abs_input: float | None = None) -> None:
        self.hw = hw
        # |u| <= max|a_in| 64 * 4096 / iDecay: when that is below 2**23 the wrap never fires
        # (an exact shortcut for a run whose inputs are known in advance)
        self.may_wrap = max_abs_input is None or hw.i_decay <= 0 or \
            max_abs_input * (1 << CUBA_SHIFT) * DECAY_UNITY / hw.i_decay >= STATE_MAX
        self.vth = int(hw.v_th_mant) << CUBA_SHIFT
        # integers held in float64 (exact: every value stays below 2**40), for speed
        self.bias = 0 if bias is None else (bias.to(torch.int64) << CUBA_SHIFT).double()
        self.u = torch.zeros(shape, dtype=torch.float64, device=device)
        self.v = torch.zeros(shape, dtype=torch.float64, device=device)
        self.v_pre = self.v

    def step(self, a_in: torch.Tensor) -> torch.Tensor:
        cur = dec_trunc(self.u, self.hw.i_decay) + a_in.to(torch.float64) * (1 << CUBA_SHIFT)
        if self.may_wrap:
            wrapped = torch.where(cur > STATE_MAX, cur - 2 * STATE_MAX, cur)
            cur = torch.where(wrapped <= -STATE_MAX, cur + 2 * STATE_MAX, wrapped)  # as Lava
        self.u = cur
        v = dec_trunc(self.v, self.hw.v_decay) + self.u + self.bias
        v = torch.clamp(v, -STATE_MAX + 1, STATE_MAX - 1)
        self.v_pre = v
        s = v > self.vth
        self.v = v.masked_fill(s, 0.0)
        return s


def cuba_run(a_in: torch.Tensor, hw: CubaHardware, bias: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes (bool) and the pre-reset voltage (integers in float64) of CUBA neurons for
    the synaptic input ``a_in`` (T, N, ...) as it arrives at the neurons (already delayed)."""
    a_in = a_in.to(torch.float64)
    state = CubaState(a_in.shape[1:], hw, bias, a_in.device, _abs_max(a_in))
    s = torch.empty(a_in.shape, dtype=torch.bool, device=a_in.device)
    v = torch.empty(a_in.shape, dtype=torch.float64, device=a_in.device)
    for t in range(a_in.shape[0]):
        s[t] = state.step(a_in[t])
        v[t] = state.v_pre
    return s, v


def delay_one(z: torch.Tensor) -> torch.Tensor:
    """Lava's one-step synapse buffer on a (T, ...) tensor: ``out[t] = z[t-1]``, ``out[0] = 0``."""
    return torch.cat([torch.zeros_like(z[:1]), z[:-1]], dim=0)


# --------------------------------------------------------------------------- SDNN
@dataclass(frozen=True)
class SDNNHardware:
    """One sigma-delta layer of a netx file (lava-dl's SDNN): ``kind`` is ``"delta"`` (the
    input neuron), ``"sigma_delta"`` (ReLU) or ``"sigma"`` (the read-out); netx's default
    exponents ``spike_exp = state_exp = 6``."""

    v_th_mant: int
    kind: str
    spike_exp: int = 6
    state_exp: int = 6


class SDNNState:
    """Lava's fixed-point ``Delta`` / ``SigmaDelta`` / ``Sigma`` models (``lava.proc.sdn``),
    as netx builds them: threshold and bias scaled by ``2**(spike_exp + state_exp)``,
    ``sigma += a_in``, ``act = relu(sigma + bias)`` (Delta: ``act = a_in << 12``),
    ``delta = act - act' + residue``, sent where ``|delta| >= vth`` as ``delta >> state_exp``
    (graded, signed), the rest kept as residue; Sigma sends ``sigma``."""

    def __init__(self, shape: tuple[int, ...], hw: SDNNHardware,
                 bias: torch.Tensor | None = None, device: torch.device | str = "cpu") -> None:
        self.hw = hw
        shift = hw.spike_exp + hw.state_exp
        self.shift = shift
        self.vth = int(hw.v_th_mant) << shift
        self.bias = 0 if bias is None else bias.to(torch.int64) << shift
        self.sigma = torch.zeros(shape, dtype=torch.int64, device=device)
        self.act = torch.zeros_like(self.sigma)
        self.residue = torch.zeros_like(self.sigma)

    def step(self, a_in: torch.Tensor) -> torch.Tensor:
        a = a_in.to(torch.int64)
        if self.hw.kind == "sigma":
            self.sigma = self.sigma + a
            return self.sigma
        if self.hw.kind == "delta":
            act = a << self.shift
        else:
            self.sigma = self.sigma + a
            act = torch.clamp(self.sigma + self.bias, min=0)
        delta = act - self.act + self.residue
        s = torch.where(delta.abs() >= self.vth, delta, torch.zeros_like(delta))
        self.residue = delta - s
        self.act = act
        return s >> self.hw.state_exp
