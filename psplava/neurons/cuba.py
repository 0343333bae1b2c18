"""The CUBA neuron (stock netx, Lava's ``PyLifModelBitAcc``): integer step, file group
and latency.  The float side (training, lava-dl's own neuron) is
:mod:`psplava.train.neurons.cuba`.

- **file group**: ``iDecay``, ``vDecay`` (12-bit), ``vThMant``; ``refDelay`` and
  ``gradedSpike`` as netx writes them.  ``LOIHI`` is lava-dl's other name for it.
- **step**: current ``u = dec(u) + (a_in << 6)`` wrapped to 24 bits, voltage
  ``v = dec(v) + u + (bias << 6)`` clipped to 24 bits, decays truncated toward zero, spike
  when ``v > vThMant << 6``, then ``v = 0`` (:class:`CubaState`).
- **latency**: one step per layer (it sends spikes, which Lava's synapse buffer delays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from psplava.loihi import CUBA_SHIFT, DECAY_UNITY, STATE_MAX, abs_max, dec_trunc
from psplava.neurons import DECAY_FIELD_RANGE, VTH_FIELD_RANGE, Field, NeuronModel, register


@dataclass(frozen=True)
class CubaHardware:
    """Integer parameters of one CUBA layer (stock netx)."""

    i_decay: int
    v_decay: int
    v_th_mant: int
    ref_delay: int = 1           # netx's keys, passed through (lava-dl writes these values)
    graded_spike: bool = False


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
    state = CubaState(a_in.shape[1:], hw, bias, a_in.device, abs_max(a_in))
    s = torch.empty(a_in.shape, dtype=torch.bool, device=a_in.device)
    v = torch.empty(a_in.shape, dtype=torch.float64, device=a_in.device)
    for t in range(a_in.shape[0]):
        s[t] = state.step(a_in[t])
        v[t] = state.v_pre
    return s, v


@register
class CUBA(NeuronModel):
    type_name = "CUBA"
    fields = (
        Field("iDecay", int, *DECAY_FIELD_RANGE, doc="12-bit current decay"),
        Field("vDecay", int, *DECAY_FIELD_RANGE, doc="12-bit voltage decay"),
        Field("vThMant", int, *VTH_FIELD_RANGE, doc="threshold mantissa"),
        Field("refDelay", int, 0, 1 << 16, required=False, doc="refractory delay (netx)"),
        Field("gradedSpike", bool, required=False, doc="graded spikes (netx; False)"),
    )
    latency_per_layer = 1
    stock_netx = True
    needs_microcode = False

    def hardware(self, group: dict[str, Any]) -> CubaHardware:
        return CubaHardware(i_decay=int(group["iDecay"]), v_decay=int(group["vDecay"]),
                            v_th_mant=int(group["vThMant"]),
                            ref_delay=int(group.get("refDelay", 1)),
                            graded_spike=bool(group.get("gradedSpike", False)))

    def group(self, hw: CubaHardware) -> dict[str, Any]:
        return {"type": self.type_name, "iDecay": int(hw.i_decay), "vDecay": int(hw.v_decay),
                "vThMant": int(hw.v_th_mant), "refDelay": int(hw.ref_delay),
                "gradedSpike": bool(hw.graded_spike)}

    def state(self, shape, hw: CubaHardware, bias=None, device="cpu", **options) -> CubaState:
        return CubaState(shape, hw, bias, device=device,
                         max_abs_input=options.get("max_abs_input"))


@register
class LOIHI(CUBA):
    """lava-dl's name for the same neuron (its ``block.cuba`` writes either)."""

    type_name = "LOIHI"
