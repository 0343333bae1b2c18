"""lava-dl's sigma-delta neuron (SDNN; stock netx, Lava's ``lava.proc.sdn``): integer step,
file group and latency.  psplava does not train it; it reads and runs lava-dl's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from psplava.neurons import VTH_FIELD_RANGE, Field, NeuronModel, register


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


@register
class SDNN(NeuronModel):
    type_name = "SDNN"
    # thresholds may be 0 (lava-dl writes 0)
    fields = (Field("vThMant", int, 0, VTH_FIELD_RANGE[1], doc="threshold mantissa"),)
    latency_per_layer = 1
    stock_netx = True
    needs_microcode = False
    graded_messages = True

    def hardware(self, group: dict[str, Any]) -> SDNNHardware:
        """A read-out (netx marks it ``sigma_output``) is a ``"sigma"``, the rest
        ``"sigma_delta"`` neurons."""
        return SDNNHardware(int(group["vThMant"]),
                            "sigma" if "sigma_output" in group else "sigma_delta")

    def input_hardware(self, group: dict[str, Any]) -> SDNNHardware:
        """netx's input neuron is a ``"delta"`` (it encodes its ``a_in`` as deltas)."""
        return SDNNHardware(int(group["vThMant"]), "delta")

    def group(self, hw: SDNNHardware) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type_name, "vThMant": int(hw.v_th_mant)}
        if hw.kind == "sigma":
            out["sigma_output"] = True
        return out

    def state(self, shape, hw: SDNNHardware, bias=None, device="cpu", **options) -> SDNNState:
        return SDNNState(shape, hw, None if hw.kind == "sigma" else bias, device=device)
