"""The CUBA neuron's training side: lava-dl's own ``slayer.neuron.cuba.Neuron`` (its
dynamics, quantization and ``device_params``) bound to the project's layout, and its loihi
arithmetic (Lava's bit-accurate CUBA step of :mod:`psplava.neurons.cuba` with surrogate
gradients)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from psplava import loihi
from psplava.lavadl import slayer
from psplava.neurons import cuba as cuba_hw
from psplava.train.loihi_ops import surrogate_rho
from psplava.train.neurons import register_training

slayer_cuba = slayer.neuron.cuba


# --------------------------------------------------------------------------- loihi arithmetic
def _first_order_adjoint(g: torch.Tensor, d: float) -> torch.Tensor:
    """``sum_{k>=0} d^k g(t+k)`` along dim 0 (adjoint of ``x(t) = d x(t-1) + in(t)``)."""
    out = torch.empty_like(g)
    acc = torch.zeros_like(g[0])
    for t in range(g.shape[0] - 1, -1, -1):
        acc = d * acc + g[t]
        out[t] = acc
    return out


class _CubaSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_in, bias, hw: cuba_hw.CubaHardware, unit: float, tau_rho: float,
                scale_rho: float):
        s, v = cuba_hw.cuba_run(a_in.detach(), hw, bias)
        vth = int(hw.v_th_mant) << loihi.CUBA_SHIFT
        rho = surrogate_rho((v - vth).to(torch.float64) / unit, tau_rho, scale_rho)
        ctx.hw, ctx.unit = hw, unit
        ctx.save_for_backward(rho)
        return s.to(torch.float64)

    @staticmethod
    def backward(ctx, g_s):
        (rho,) = ctx.saved_tensors
        hw = ctx.hw
        g_v = g_s * rho
        g_u = _first_order_adjoint(g_v, 1.0 - hw.v_decay / loihi.DECAY_UNITY)
        g_a = _first_order_adjoint(g_u, 1.0 - hw.i_decay / loihi.DECAY_UNITY)
        return g_a * (2 ** loihi.CUBA_SHIFT / ctx.unit), None, None, None, None, None


def cuba_spikes(a_in: torch.Tensor, bias: torch.Tensor | None, hw: cuba_hw.CubaHardware,
                unit: float, tau_rho: float, scale_rho: float) -> torch.Tensor:
    """Spikes (float64 0/1) of Lava's bit-accurate CUBA neurons for the synaptic input
    ``a_in`` (T, N, ...) as it arrives (already delayed); ``unit = 64 k``."""
    return _CubaSpike.apply(a_in, bias, hw, unit, tau_rho, scale_rho)

# --------------------------------------------------------------------------- the neuron
@dataclass(frozen=True)
class CubaParams:
    """lava-dl CUBA neuron parameters (Loihi-native); decays in [0, 1]."""

    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register_training
class CubaNeuron(torch.nn.Module):
    """lava-dl's ``slayer.neuron.cuba.Neuron`` bound to the project's (T, N, ..., C) layout.

    The Loihi-native option: its dynamics, quantization and ``device_params`` are
    lava-dl's own.  Its output spikes feed the next layer directly (no alpha PSP):
    a CUBA neuron's current state already is its synaptic filter.
    """

    def __init__(self, params: CubaParams = CubaParams()) -> None:
        super().__init__()
        self.params = params
        self.neuron = slayer_cuba.Neuron(**params.to_dict(), shared_param=True,
                                         persistent_state=False, requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # (T, N, ..., C) -> (N, C, ..., T) for lava-dl, and back.
        nd = z.dim()
        to_slayer = (1, nd - 1, *range(2, nd - 1), 0)
        s = self.neuron(z.permute(*to_slayer).contiguous())
        back = [0] * nd
        for i, j in enumerate(to_slayer):
            back[j] = i
        return s.permute(*back).contiguous()

    @property
    def device_params(self) -> dict[str, Any]:
        return self.neuron.device_params

    def surrogate(self) -> tuple[float, float]:
        """(tau_rho, scale_rho) of lava-dl's surrogate for this neuron, as its ``spike()``
        passes them to ``Spike.apply``: ``neuron.tau_rho`` and ``scale_rho`` times lava-dl's
        module constants ``TAU_RHO_MULT`` (100) and ``SCALE_RHO_MULT`` (0.1).  Without the
        multipliers the surrogate is 100x narrower and the loihi forward's gradients vanish
        (a CUBA net then never learns)."""
        return (float(self.neuron.tau_rho) * slayer_cuba.TAU_RHO_MULT,
                float(self.neuron.scale_rho) * slayer_cuba.SCALE_RHO_MULT)

    type_name = "CUBA"

    @property
    def threshold(self) -> float:
        return self.params.threshold

    config_name = "cuba"
    params_key = "cuba"
    params_type = CubaParams
    #: Loihi's 17-bit threshold mantissa
    theta_k_max = loihi.VTH_MANT_MAX
    weight_gain = 1.0
    integer_unit = 1.0

    def synaptic_input(self, s: torch.Tensor) -> torch.Tensor:
        """What the next synapse sees of spikes ``s``: the spikes (CUBA's current is its
        synaptic filter)."""
        return s

    def integer_input(self, s: torch.Tensor) -> torch.Tensor:
        return s.float()   # spikes: 0/1

    def integer_range(self) -> tuple[float, float]:
        return (0, 1)

    def loihi_spikes(self, z: torch.Tensor, y: torch.Tensor, hw) -> torch.Tensor:
        """Spikes of Lava's bit-accurate CUBA neurons of layer hardware ``hw`` for the
        integer synaptic input ``z``, which Lava's synapse delivers one step later."""
        tau_rho, scale_rho = self.surrogate()
        bias = None if hw.bias is None else hw.bias.detach().to(torch.int64)
        return cuba_spikes(loihi.delay_one(z), bias, hw.neuron,
                           hw.scale * 2 ** loihi.CUBA_SHIFT, tau_rho, scale_rho)

    def hardware(self, scale: float) -> cuba_hw.CubaHardware:
        """Integer parameters for weight scale ``scale``: lava-dl's own 12-bit decays, the
        threshold scaled like the weights (lava-dl's device_params assume scale 64)."""
        p = self.neuron.device_params
        return cuba_hw.CubaHardware(i_decay=int(p["iDecay"]), v_decay=int(p["vDecay"]),
                                    v_th_mant=loihi.quantize_threshold(self.params.threshold,
                                                                       scale),
                                    ref_delay=int(p.get("refDelay", 1)),
                                    graded_spike=bool(p.get("gradedSpike", False)))
