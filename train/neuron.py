"""Neurons on lava-dl SLAYER's API: the paper's SRM neuron and lava-dl's CUBA neuron.

Tensors are time-major, channels-last: ``(T, N, ..., C)``.  The SRM mathematics lives
in :mod:`psplava.train.kernels`; this module binds it to autograd and to
``lava.lib.dl.slayer.neuron.base.Neuron`` (threshold, surrogate ``tau_rho``/``scale_rho``
and the ``device_params`` export convention).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch
from psplava import loihi
from psplava.neurons import cuba as cuba_hw
from psplava.neurons import srm as srm_hw
from psplava.lavadl import slayer
from psplava.train import kernels, kernels_triton

slayer_base = slayer.neuron.base
slayer_cuba = slayer.neuron.cuba


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "refractory", RefractoryKind(self.refractory))
        object.__setattr__(self, "surrogate", SurrogateForm(self.surrogate))
        if min(self.theta, self.tau_s, self.tau_r, self.alpha, self.beta) <= 0:
            raise ValueError(f"SRM parameters must be positive: {self}")

    @property
    def psp_decay(self) -> float:
        return srm_hw.decay_per_step(self.tau_s)

    @property
    def psp_gain(self) -> float:
        return math.e / self.tau_s

    @property
    def ref_decay(self) -> float:
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
        args = (p.theta, p.ref_decay, p.refractory is RefractoryKind.ALPHA, p.ref_gain,
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

    type_name = "SRM"

    @property
    def threshold(self) -> float:
        return self.params.theta

    def hardware(self, scale: float) -> srm_hw.SRMHardware:
        return self.params.hardware(scale)

    @property
    def device_params(self) -> dict[str, Any]:
        return {"type": "SRM", **self.params.to_dict()}


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

    def hardware(self, scale: float) -> cuba_hw.CubaHardware:
        """Integer parameters for weight scale ``scale``: lava-dl's own 12-bit decays, the
        threshold scaled like the weights (lava-dl's device_params assume scale 64)."""
        p = self.neuron.device_params
        return cuba_hw.CubaHardware(i_decay=int(p["iDecay"]), v_decay=int(p["vDecay"]),
                                    v_th_mant=loihi.quantize_threshold(self.params.threshold,
                                                                       scale),
                                    ref_delay=int(p.get("refDelay", 1)),
                                    graded_spike=bool(p.get("gradedSpike", False)))
