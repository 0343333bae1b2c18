"""The SRM neuron (the paper's, Eq. 3-5): its decays, integer step, file group and latency.

The float side (training) is :mod:`psplava.train.neurons.srm`; this module is everything
after it, in Loihi's integers (``docs/netfile.md``, "SRM"):

- **decays**: ``exp(-1 / tau)`` per step (:func:`decay_per_step`, the one place of that
  formula), 12-bit ``round(4096 (1 - exp(-1/tau)))`` (:func:`decay_int`), rounded to
  nearest when applied;
- **PSP**: the exact two-state recurrence of the alpha kernel on a state of ``2**12``
  units per spike, sent rounded to ``PSP_UNIT`` units (:func:`psp`);
- **refractory and spike**: ``r <- dec_r(r + g_ref s)``, spike when ``z + r >= theta_int``
  (or Eq. 18's dynamic threshold) (:class:`SRMState`, :func:`srm_run`);
- **file group** (format 5): ``vThMant``, ``tauS``, ``tauR``, ``refractory``; the decays
  are derived from the time constants.  Format 2-4 files stored ``psDecay`` and
  ``refDecay`` too: they are read, and must agree with the derivation;
- **latency**: none -- an SRM neuron sends at t the PSP it will have at t+1 (the alpha
  kernel is 0 at lag 0), which Lava's one-step synapse buffer delivers exactly on time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from psplava.loihi import (DECAY_UNITY, F32_EXACT, PSP_MSG_SHIFT, PSP_STATE_BITS, PSP_UNIT,
                           cpu_fast, dec_round, quantize_decay, quantize_threshold)
from psplava.neurons import (DECAY_FIELD_RANGE, VTH_FIELD_RANGE, Field, NeuronGroupError,
                             NeuronModel, register)


class Refractory(str, Enum):
    EXP = "exp"      # the paper's nu(t) = -2 theta exp(-t / tau_r)
    ALPHA = "alpha"  # slayerPytorch's nu(t) = -2 theta (t / tau_r) exp(1 - t / tau_r)


def decay_per_step(tau: float) -> float:
    """The factor ``exp(-1 / tau)`` by which a state with time constant ``tau`` (steps)
    decays each step: the alpha PSP's ``q`` and the refractory decay."""
    return math.exp(-1.0 / tau)


def decay_int(tau: float) -> int:
    """12-bit decay constant of :func:`decay_per_step` (``psDecay``, ``refDecay``)."""
    return quantize_decay(decay_per_step(tau))


# --------------------------------------------------------------------------- the PSP
def psp_step(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor, ps_decay: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """New integer alpha-PSP state (x, y) after a step with spikes ``s`` (0/1)."""
    inc = s.to(torch.int64) << PSP_STATE_BITS
    return dec_round(x + inc, ps_decay), dec_round(y + x + inc, ps_decay)


def psp_message(y: torch.Tensor) -> torch.Tensor:
    """The PSP a neuron sends: its state ``y`` (>= 0) rounded to ``PSP_UNIT`` units."""
    return (y + (1 << (PSP_MSG_SHIFT - 1))) >> PSP_MSG_SHIFT


def psp_message_bound(ps_decay: int) -> int:
    """An upper bound of every PSP message with decay ``ps_decay`` (one spike per step at most):
    ``U sum_{k>=1} k Q^k = U Q / (1 - Q)^2`` with ``Q = 1 - ps_decay / 4096``, plus the rounding
    of the states and the message (at most half a state unit per step each: a few state
    units in all, far below one message unit; 2 added).  Tested against saturated input."""
    q = (DECAY_UNITY - int(ps_decay)) / DECAY_UNITY
    if q >= 1.0:
        return 1 << 62
    return int(math.ceil(PSP_UNIT * q / (1.0 - q) ** 2)) + 2


def psp(s: torch.Tensor, ps_decay: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """The PSP messages (shape of ``s``; int64, or a float dtype holding the same integers:
    float32 is exact while :func:`psp_message_bound` < 2**24) of spikes ``s`` (T, ...), as
    the receiving synapse sees them: the value at t depends on spikes before t (0 at t = 0)."""
    if dtype == torch.float32 and psp_message_bound(ps_decay) >= F32_EXACT:
        raise ValueError(f"PSP messages with decay {ps_decay} may exceed float32's exact integers")
    if cpu_fast(s):
        from psplava import loihi_kernels  # numba: compiled at first use

        flat = s.detach().reshape(s.shape[0], -1).numpy()
        np_dtype = {torch.int64: "int64", torch.float64: "float64",
                    torch.float32: "float32"}[dtype]
        return torch.from_numpy(loihi_kernels.psp(flat, ps_decay, PSP_STATE_BITS, PSP_MSG_SHIFT,
                                                  np_dtype)).view(s.shape)
    return _psp_loop(s, ps_decay).to(dtype)


def _psp_loop(s: torch.Tensor, ps_decay: int) -> torch.Tensor:
    x = torch.zeros(s.shape[1:], dtype=torch.int64, device=s.device)
    y = torch.zeros_like(x)
    out = torch.empty(s.shape, dtype=torch.int64, device=s.device)
    for t in range(s.shape[0]):
        out[t] = psp_message(y)
        x, y = psp_step(x, y, s[t], ps_decay)
    return out


@dataclass(frozen=True)
class SRMHardware:
    """Integer parameters of one SRM layer.  The float time constants are kept: the ALPHA
    refractory gain and the dynamic threshold's PSP scale use them."""

    v_th_mant: int        # threshold mantissa; theta_int = v_th_mant * PSP_UNIT
    tau_s: float          # PSP time constant [steps]
    tau_r: float          # refractory time constant [steps]
    refractory: Refractory
    ps_decay: int         # 12-bit PSP decay, decay_int(tau_s)
    ref_decay: int        # 12-bit refractory decay, decay_int(tau_r)

    @classmethod
    def from_float(cls, theta: float, tau_s: float, tau_r: float,
                   refractory: Refractory | str, scale: float) -> "SRMHardware":
        """The one derivation of the integer parameters from the float ones: threshold
        ``round(theta k)``, decays ``round(4096 (1 - exp(-1/tau)))``."""
        return cls(v_th_mant=quantize_threshold(theta, scale), tau_s=float(tau_s),
                   tau_r=float(tau_r), refractory=Refractory(refractory),
                   ps_decay=decay_int(tau_s), ref_decay=decay_int(tau_r))

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
        ref_decay = self.hw.ref_decay
        if self.alpha:
            self.rx, self.ry = (dec_round(self.rx + inc, ref_decay),
                                dec_round(self.ry + self.rx + inc, ref_decay))
        else:
            self.ry = dec_round(self.ry + inc, ref_decay)
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


# --------------------------------------------------------------------------- the registry
#: file format version from which SRM groups store each time constant once
ONCE_SINCE_VERSION = 5


@register
class SRM(NeuronModel):
    type_name = "SRM"
    fields = (
        Field("vThMant", int, *VTH_FIELD_RANGE, doc="threshold mantissa"),
        Field("tauS", float, positive=True, doc="PSP time constant [steps]"),
        Field("tauR", float, positive=True, doc="refractory time constant [steps]"),
        Field("refractory", str, choices=tuple(r.value for r in Refractory),
              doc="refractory kernel shape"),
    )
    #: format 2-4 files: the decays, stored beside the time constants
    legacy_fields = (Field("psDecay", int, *DECAY_FIELD_RANGE),
                     Field("refDecay", int, *DECAY_FIELD_RANGE))
    latency_per_layer = 0
    stock_netx = False
    needs_microcode = True
    dynamic_threshold = True
    skip_inputs = True
    format_needed = ONCE_SINCE_VERSION
    oldest_format = 2
    older_format_note = ("use the PSP units of an older psplava (2**8 per spike); re-export "
                         "the checkpoint with this version")

    def check(self, where: str, values: dict[str, Any], version: int) -> dict[str, Any]:
        out = super().check(where, values, version)
        derived = {"psDecay": decay_int(out["tauS"]), "refDecay": decay_int(out["tauR"])}
        stored = [f.key for f in self.legacy_fields if f.key in values]
        if version >= ONCE_SINCE_VERSION and stored:
            raise NeuronGroupError(f"{where}: field {stored[0]!r} is derived from the time "
                                   f"constant in format {version} files; it must not be "
                                   "stored")
        if version < ONCE_SINCE_VERSION:
            missing = [f.key for f in self.legacy_fields if f.key not in values]
            if missing:
                raise NeuronGroupError(f"{where}: SRM neuron misses field(s) {missing}")
            for f in self.legacy_fields:
                v = f.check(where, values[f.key])
                if v != derived[f.key]:
                    tau = "tauS" if f.key == "psDecay" else "tauR"
                    raise NeuronGroupError(f"{where}: field {f.key!r} is {v}, but {tau!r} "
                                           f"{out[tau]:g} gives {derived[f.key]}")
        for f in self.legacy_fields:   # derived: the engines ask the hardware
            out.pop(f.key, None)
        return out

    def hardware(self, group: dict[str, Any]) -> SRMHardware:
        return SRMHardware(v_th_mant=int(group["vThMant"]), tau_s=float(group["tauS"]),
                           tau_r=float(group["tauR"]),
                           refractory=Refractory(str(group["refractory"])),
                           ps_decay=decay_int(group["tauS"]), ref_decay=decay_int(group["tauR"]))

    def group(self, hw: SRMHardware) -> dict[str, Any]:
        return {"type": self.type_name, "vThMant": int(hw.v_th_mant), "tauS": float(hw.tau_s),
                "tauR": float(hw.tau_r), "refractory": Refractory(hw.refractory).value}

    def state(self, shape, hw: SRMHardware, bias=None, device="cpu", **options) -> "SRMState":
        return SRMState(shape, hw, device)

    def run(self, z: torch.Tensor, hw: SRMHardware, gain: torch.Tensor | None = None
            ) -> torch.Tensor:
        return srm_run(z, hw, gain)[0]
