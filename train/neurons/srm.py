"""The SRM neuron's training side (paper Eq. 3-5): parameters, the float alpha PSP and
spike kernels with SLAYER's surrogate, bound to lava-dl's ``slayer.neuron.base.Neuron``,
and its loihi arithmetic (the integer PSP and step of :mod:`psplava.neurons.srm` with
surrogate gradients).

Tensors are time-major, channels-last: ``(T, N, ..., C)``.  The float kernels are
:mod:`psplava.train.kernels` (numba, CPU) and :mod:`psplava.train.kernels_triton` (GPU),
both tested against :mod:`psplava.train.kernel_spec`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, ClassVar

import numpy as np
import torch

from psplava import loihi
from psplava.lavadl import slayer
from psplava.neurons import srm as srm_hw
from psplava.train import kernels, kernels_triton
from psplava.train.loihi_ops import ste, surrogate_rho
from psplava.train.neurons import register_training
from psplava.train.norm import causal_second_moment

slayer_base = slayer.neuron.base

#: refractory kernel shapes (defined with the integer arithmetic in :mod:`psplava.neurons.srm`)
RefractoryKind = srm_hw.Refractory


class SurrogateForm(str, Enum):
    """Form of the surrogate derivative rho(u) of the Heaviside step.

    SLAYER: ``(1 / alpha) exp(-|u - theta| / beta)``, as slayerPytorch computes it
            (alpha = beta = 10: rho = 0.1 exp(-|u - 10| / 10)).  Default.
    PAPER:  ``(1 / alpha) exp(-beta |u - theta|)``, the paper's text read literally
            (100x narrower at beta = 10).
    Both are expressed with lava-dl's ``scale_rho / (2 tau_rho) exp(-|u-theta| / tau_rho)``.
    """

    SLAYER = "slayer"
    PAPER = "paper"

    def tau_scale(self, alpha: float, beta: float) -> tuple[float, float]:
        """(tau_rho, scale_rho) of lava-dl's surrogate for this form."""
        if self is SurrogateForm.SLAYER:
            return beta, 2.0 * beta / alpha
        return 1.0 / beta, 2.0 / (alpha * beta)


@dataclass(frozen=True)
class SRMParams:
    """SRM neuron parameters (Table 1 defaults); time in steps, potentials in units of W a."""

    theta: float = 10.0                  # threshold
    tau_s: float = 10.0                  # PSP (alpha kernel) time constant [steps]
    tau_r: float = 10.0                  # refractory time constant [steps]
    refractory: RefractoryKind = RefractoryKind.EXP
    surrogate: SurrogateForm = SurrogateForm.SLAYER
    alpha: float = 10.0                  # surrogate scale (1 / alpha)
    beta: float = 10.0                   # surrogate width

    #: the config's numbers that must be positive (checked, with the key, before building)
    positive_fields: ClassVar[tuple[str, ...]] = ("theta", "tau_s", "tau_r", "alpha", "beta")

    def __post_init__(self) -> None:
        object.__setattr__(self, "refractory", RefractoryKind(self.refractory))
        object.__setattr__(self, "surrogate", SurrogateForm(self.surrogate))
        if min(self.theta, self.tau_s, self.tau_r, self.alpha, self.beta) <= 0:
            raise ValueError(f"SRM parameters must be positive: {self}")

    @property
    def ps_decay_per_step(self) -> float:
        """The PSP's per-step factor ``q = exp(-1 / tau_s)`` (float; the 12-bit form is the
        hardware's ``ps_decay``)."""
        return srm_hw.decay_per_step(self.tau_s)

    @property
    def psp_gain(self) -> float:
        return math.e / self.tau_s

    @property
    def ref_decay_per_step(self) -> float:
        """The refractory state's per-step factor ``exp(-1 / tau_r)`` (the hardware's
        ``ref_decay`` is its 12-bit form)."""
        return srm_hw.decay_per_step(self.tau_r)

    @property
    def ref_gain(self) -> float:
        if self.refractory is RefractoryKind.ALPHA:
            return -2.0 * self.theta * math.e / self.tau_r
        return -2.0 * self.theta

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["refractory"], d["surrogate"] = self.refractory.value, self.surrogate.value
        return d

    def hardware(self, scale: float) -> srm_hw.SRMHardware:
        """Integer neuron parameters for weight scale ``scale`` (lava-dl's device_params)."""
        return srm_hw.SRMHardware.from_float(self.theta, self.tau_s, self.tau_r,
                                             self.refractory, scale)


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().reshape(x.shape[0], -1).contiguous().numpy()


#: which implementation of the float kernels runs: ``auto`` (numba on CPU tensors, Triton
#: on CUDA tensors), or ``numba`` / ``triton`` forced (``triton`` on CPU tensors needs
#: ``TRITON_INTERPRET=1``: how the tests run the GPU path without a GPU).  Read from the
#: environment variable ``PSPLAVA_KERNELS`` at import.
KERNELS = os.environ.get("PSPLAVA_KERNELS", "auto")


def kernel_backend(t: torch.Tensor) -> str:
    """``numba`` or ``triton``: the implementation that runs on ``t``."""
    if KERNELS == "numba" or (KERNELS == "auto" and t.device.type == "cpu"):
        if t.device.type != "cpu":
            raise RuntimeError("PSPLAVA_KERNELS=numba runs on CPU tensors only")
        return "numba"
    if not kernels_triton.usable(t):
        raise RuntimeError(f"the SRM kernels on a {t.device.type} tensor need Triton "
                           "(installed with torch's CUDA wheels)")
    return "triton"


def alpha_filter(s: torch.Tensor, q: float, gain: float, reverse: bool = False
                 ) -> torch.Tensor:
    """The alpha filter of :mod:`kernels` on a tensor (T, ...), on its own device."""
    if kernel_backend(s) == "numba":
        return torch.from_numpy(kernels.alpha_filter(_flat(s), q, gain, reverse)).view(s.shape)
    return kernels_triton.alpha_filter(s, q, gain, reverse)


class _PSP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, q: float, gain: float) -> torch.Tensor:
        ctx.q, ctx.gain = q, gain
        return alpha_filter(s, q, gain)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return alpha_filter(g, ctx.q, ctx.gain, reverse=True), None, None


def psp(s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Alpha-kernel PSP along dim 0 (time) of ``s`` (exact; see :mod:`kernels`), on the
    tensor's device (numba on the CPU, Triton on a GPU)."""
    return _PSP.apply(s, srm_hw.decay_per_step(tau_s), math.e / tau_s)


class _SRMSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, p: SRMParams, tau_rho: float, scale_rho: float):
        args = (p.theta, p.ref_decay_per_step, p.refractory is RefractoryKind.ALPHA, p.ref_gain,
                tau_rho, scale_rho)
        if kernel_backend(z) == "numba":
            s, rho = kernels.srm_spike(_flat(z), *args)
            s_t, rho_t = torch.from_numpy(s).view(z.shape), torch.from_numpy(rho).view(z.shape)
        else:
            s_t, rho_t = kernels_triton.srm_spike(z, *args)
        ctx.save_for_backward(rho_t)
        return s_t

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (rho,) = ctx.saved_tensors
        # SLAYER: ds/du = rho(u); the refractory feedback is not differentiated.
        return g * rho, None, None, None


def srm_spike(z: torch.Tensor, p: SRMParams) -> torch.Tensor:
    """Spikes of SRM neurons with refractory, driven by ``z`` of shape (T, ...)."""
    tau_rho, scale_rho = p.surrogate.tau_scale(p.alpha, p.beta)
    return _SRMSpike.apply(z, p, tau_rho, scale_rho)


# --------------------------------------------------------------------------- loihi arithmetic
def _alpha_adjoint(g: torch.Tensor, q: float, gain: float) -> torch.Tensor:
    """``gain * sum_{k>=1} k q^k g(t+k)`` along dim 0 (the alpha PSP's adjoint), by the
    float kernels on ``g``'s device (numba on the CPU, Triton on a GPU)."""
    return alpha_filter(g, q, gain, reverse=True)


class _IntegerPSP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, ps_decay: int, q: float) -> torch.Tensor:
        ctx.q = q
        return srm_hw.psp(s.detach() != 0, ps_decay, psp_dtype(ps_decay))

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return _alpha_adjoint(g, ctx.q, float(loihi.PSP_UNIT)), None, None


def psp_dtype(ps_decay: int) -> torch.dtype:
    """float32 when it holds every PSP message exactly (``psp_message_bound`` < 2**24: any
    tau_s below ~1,000 steps), else float64."""
    return torch.float32 if srm_hw.psp_message_bound(ps_decay) < (1 << 24) else torch.float64


def psp_range(tau_s: float) -> tuple[float, float]:
    """Bounds of the integer PSP messages of a layer with PSP time constant ``tau_s``."""
    return 0.0, float(srm_hw.psp_message_bound(srm_hw.decay_int(tau_s)))


def integer_psp(s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Integer alpha PSP (integer-valued float32, or float64 for very long tau_s: see
    :func:`psp_dtype`) of spikes ``s`` (T, ...)."""
    return _IntegerPSP.apply(s, srm_hw.decay_int(tau_s), srm_hw.decay_per_step(tau_s))


class _IntegerSRMSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, gain, hw: srm_hw.SRMHardware, unit: float, tau_rho: float,
                scale_rho: float):
        zd = z.detach()
        gd = None if gain is None else gain.detach()
        if loihi.cpu_fast(zd) and zd.dim() >= 2:
            # the CPU kernel computes the surrogate in the same pass (psplava.loihi_kernels)
            s, rho = srm_hw.srm_run_surrogate(zd, hw, gd, unit, tau_rho, scale_rho)
        else:
            s, r = srm_hw.srm_run(zd, hw, gd)
            gv = None if gd is None else gd.view(*gd.shape, *[1] * (z.dim() - 2))
            u = zd + r if gv is None else zd / gv + r
            rho = surrogate_rho((u - hw.theta_int) / unit, tau_rho, scale_rho)
        rho = (rho / unit).to(torch.float32)  # ds/dz, kept in float32 (a gradient)
        ctx.unit = unit
        ctx.save_for_backward(rho, zd, gd if gd is not None else torch.empty(0))
        ctx.dynamic = gain is not None
        return s.to(torch.float32)  # 0/1: exact; float32 halves the memory of float64

    @staticmethod
    def backward(ctx, g_s):
        rho, z, gain = ctx.saved_tensors
        k = g_s * rho
        if not ctx.dynamic:
            return k, None, None, None, None, None
        gv = gain.view(*gain.shape, *[1] * (z.dim() - 2))
        g_z = k / gv
        g_gain = -(k * z / gv.square()).flatten(2).sum(dim=2)
        return g_z, g_gain, None, None, None, None


def srm_spikes(z: torch.Tensor, gain: torch.Tensor | None, hw: srm_hw.SRMHardware,
               unit: float, tau_rho: float, scale_rho: float) -> torch.Tensor:
    """Spikes (float64 0/1) of integer SRM neurons for membrane input ``z`` (T, N, ...);
    ``unit = k * PSP_UNIT`` converts integer potentials to float units for the surrogate."""
    return _IntegerSRMSpike.apply(z, gain, hw, unit, tau_rho, scale_rho)



# --------------------------------------------------------------------------- the neuron
@register_training
class SRMNeuron(slayer_base.Neuron):
    """The paper's SRM neuron as a lava-dl SLAYER neuron.

    Input: synaptic input ``z = W a`` of shape (T, N, ..., C); output: spikes, same shape.
    ``psp(s)`` gives the neuron's outgoing alpha PSP.  ``device_params`` exports what a
    simulator needs (type ``SRM``), following lava-dl's convention.
    """

    def __init__(self, params: SRMParams = SRMParams()) -> None:
        tau_rho, scale_rho = params.surrogate.tau_scale(params.alpha, params.beta)
        super().__init__(threshold=params.theta, tau_grad=tau_rho / params.theta,
                         scale_grad=scale_rho, persistent_state=False, shared_param=True,
                         requires_grad=False)
        self.params = params

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return srm_spike(z, self.params)

    def psp(self, s: torch.Tensor) -> torch.Tensor:
        return psp(s, self.params.tau_s)

    def surrogate(self) -> tuple[float, float]:
        """(tau_rho, scale_rho) of the surrogate, in float units of the potential."""
        return self.params.surrogate.tau_scale(self.params.alpha, self.params.beta)

    config_name = "srm"
    type_name = "SRM"
    params_key = "srm"
    params_type = SRMParams
    #: theta_int = theta k U stays <= 2**19, 16 thresholds below the 24-bit wrap
    theta_k_max = loihi.SRM_THETA_K_MAX

    @property
    def threshold(self) -> float:
        return self.params.theta

    @property
    def weight_gain(self) -> float:
        """The alpha PSP's gain ``e / tau_s``, folded into the receiving weights."""
        return self.params.psp_gain

    def synaptic_input(self, s: torch.Tensor) -> torch.Tensor:
        """What the next synapse sees of spikes ``s``: their alpha PSP (without its gain)."""
        return self.psp(s)

    def hardware(self, scale: float) -> srm_hw.SRMHardware:
        return self.params.hardware(scale)

    # loihi arithmetic
    @property
    def integer_unit(self) -> float:
        """Float PSP units (gain included) per integer message unit."""
        return self.params.psp_gain / loihi.PSP_UNIT

    def integer_input(self, s: torch.Tensor) -> torch.Tensor:
        """The integer PSP messages of spikes ``s`` (what the file's neurons send)."""
        return integer_psp(s, self.params.tau_s)

    def integer_range(self) -> tuple[float, float]:
        return psp_range(self.params.tau_s)

    def loihi_spikes(self, z: torch.Tensor, y: torch.Tensor, hw) -> torch.Tensor:
        """Spikes of the integer neurons of layer hardware ``hw`` for the integer synaptic
        input ``z`` (bias not yet added) of messages ``y`` (the dynamic threshold's m2)."""
        tau_rho, scale_rho = self.surrogate()
        zb = z if hw.bias is None else z + hw.bias * loihi.PSP_UNIT
        gain = None if hw.dynamic is None else self._dynamic_gain(y, hw.dynamic)
        return srm_spikes(zb, gain, hw.neuron, hw.scale * loihi.PSP_UNIT, tau_rho, scale_rho)

    def _dynamic_gain(self, y: torch.Tensor, dyn: loihi.DynamicThreshold) -> torch.Tensor:
        """``sqrt(m2(t) + lambda)`` (T, N): the exact value of the file's moment process,
        with the gradient of the same float formula."""
        tau_s = self.params.tau_s
        exact = dyn.gain(dyn.causal_m2(y.detach().to(torch.int64), tau_s))
        m2 = causal_second_moment(y * (math.e / (tau_s * loihi.PSP_UNIT)),  # float PSP units
                                  dyn.prior, dyn.prior_steps)
        return ste(exact, dyn.gain(m2))

    @property
    def device_params(self) -> dict[str, Any]:
        return {"type": "SRM", **self.params.to_dict()}


