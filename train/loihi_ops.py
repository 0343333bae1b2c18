"""Autograd around the chip's integer arithmetic (``model.arithmetic: loihi``).

The forward passes call :mod:`psplava.loihi` -- the one implementation of the integer
neuron step, shared with the reference engine and the Lava process models -- so a model in
loihi arithmetic computes bit for bit what its exported file computes.  The backward passes
are those of float training, as lava-dl's CUBA blocks do for their quantized weights:

- quantized weights and integer synapse outputs: straight-through (:func:`ste`);
- integer alpha PSP: the adjoint of the exact float recurrence it rounds (reverse-time
  alpha filter with gain ``PSP_UNIT``);
- spikes: the surrogate ``rho`` of float training evaluated at the membrane potential in
  float units (``(z + r) / (k U)`` for SRM, ``v / (64 k)`` for CUBA); the refractory
  feedback and CUBA's reset are not differentiated (as in float training / lava-dl).
"""

from __future__ import annotations

import math

import torch

from psplava import loihi
from psplava.neurons import cuba, srm
from psplava.train.neuron import alpha_filter


def ste(exact: torch.Tensor, approx: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` (bit for bit) with the gradient of ``approx``."""
    return exact.detach() + (approx - approx.detach())


def _alpha_adjoint(g: torch.Tensor, q: float, gain: float) -> torch.Tensor:
    """``gain * sum_{k>=1} k q^k g(t+k)`` along dim 0 (the alpha PSP's adjoint), by the
    float kernels on ``g``'s device (numba on the CPU, Triton on a GPU)."""
    return alpha_filter(g, q, gain, reverse=True)


def _first_order_adjoint(g: torch.Tensor, d: float) -> torch.Tensor:
    """``sum_{k>=0} d^k g(t+k)`` along dim 0 (adjoint of ``x(t) = d x(t-1) + in(t)``)."""
    out = torch.empty_like(g)
    acc = torch.zeros_like(g[0])
    for t in range(g.shape[0] - 1, -1, -1):
        acc = d * acc + g[t]
        out[t] = acc
    return out


class _IntegerPSP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, dq: int, q: float) -> torch.Tensor:
        ctx.q = q
        return srm.psp(s.detach() != 0, dq, psp_dtype(dq))

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return _alpha_adjoint(g, ctx.q, float(loihi.PSP_UNIT)), None, None


def psp_dtype(dq: int) -> torch.dtype:
    """float32 when it holds every PSP message exactly (``psp_message_bound`` < 2**24: any
    tau_s below ~1,000 steps), else float64."""
    return torch.float32 if srm.psp_message_bound(dq) < (1 << 24) else torch.float64


def psp_range(tau_s: float) -> tuple[float, float]:
    """Bounds of the integer PSP messages of a layer with PSP time constant ``tau_s``."""
    return 0.0, float(srm.psp_message_bound(srm.decay_int(tau_s)))


def integer_psp(s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Integer alpha PSP (integer-valued float32, or float64 for very long tau_s: see
    :func:`psp_dtype`) of spikes ``s`` (T, ...)."""
    return _IntegerPSP.apply(s, srm.decay_int(tau_s), srm.decay_per_step(tau_s))


class _IntegerSynapse(torch.autograd.Function):
    """Exact integer synapse (:func:`psplava.loihi.synapse`); float32 gradients."""

    @staticmethod
    def forward(ctx, x, w, kind: str, stride: int, padding: int, x_range):
        ctx.kind, ctx.stride, ctx.padding = kind, stride, padding
        ctx.save_for_backward(x, w)
        return loihi.synapse(x.detach(), w.detach(), kind, stride, padding, x_range,
                             out_dtype=torch.float64)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g32, x32, w32 = g.to(torch.float32), x.to(torch.float32), w.to(torch.float32)
        gx = gw = None
        if ctx.kind == "conv":
            gr = torch.nn.grad
            if ctx.needs_input_grad[0]:
                gx = gr.conv2d_input(x.shape, w32, g32, ctx.stride, ctx.padding)
            if ctx.needs_input_grad[1]:
                gw = gr.conv2d_weight(x32, w.shape, g32, ctx.stride, ctx.padding)
        else:
            if ctx.needs_input_grad[0]:
                gx = g32 @ w32
            if ctx.needs_input_grad[1]:
                gw = g32.t() @ x32
        return (None if gx is None else gx.to(x.dtype), None if gw is None else gw.to(w.dtype),
                None, None, None, None)


def integer_synapse(x: torch.Tensor, w: torch.Tensor, kind: str, stride: int = 1,
                    padding: int = 0, x_range: tuple[float, float] | None = None
                    ) -> torch.Tensor:
    """Integer synaptic input (float64 holding int64 values) with float gradients;
    ``x_range``: bounds of x's values when known (e.g. :func:`psp_range`; else x is
    scanned)."""
    return _IntegerSynapse.apply(x, w, kind, stride, padding, x_range)


def _surrogate(u: torch.Tensor, tau_rho: float, scale_rho: float) -> torch.Tensor:
    return scale_rho / (2.0 * tau_rho) * torch.exp(-u.abs() / tau_rho)


class _SRMSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, gain, hw: srm.SRMHardware, unit: float, tau_rho: float,
                scale_rho: float):
        zd = z.detach()
        gd = None if gain is None else gain.detach()
        if loihi.cpu_fast(zd) and zd.dim() >= 2:
            # the CPU kernel computes the surrogate in the same pass (psplava.loihi_kernels)
            s, rho = srm.srm_run_surrogate(zd, hw, gd, unit, tau_rho, scale_rho)
        else:
            s, r = srm.srm_run(zd, hw, gd)
            gv = None if gd is None else gd.view(*gd.shape, *[1] * (z.dim() - 2))
            u = zd + r if gv is None else zd / gv + r
            rho = _surrogate((u - hw.theta_int) / unit, tau_rho, scale_rho)
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


def srm_spikes(z: torch.Tensor, gain: torch.Tensor | None, hw: srm.SRMHardware,
               unit: float, tau_rho: float, scale_rho: float) -> torch.Tensor:
    """Spikes (float64 0/1) of integer SRM neurons for membrane input ``z`` (T, N, ...);
    ``unit = k * PSP_UNIT`` converts integer potentials to float units for the surrogate."""
    return _SRMSpike.apply(z, gain, hw, unit, tau_rho, scale_rho)


class _CubaSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_in, bias, hw: cuba.CubaHardware, unit: float, tau_rho: float,
                scale_rho: float):
        s, v = cuba.cuba_run(a_in.detach(), hw, bias)
        vth = int(hw.v_th_mant) << loihi.CUBA_SHIFT
        rho = _surrogate((v - vth).to(torch.float64) / unit, tau_rho, scale_rho)
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


def cuba_spikes(a_in: torch.Tensor, bias: torch.Tensor | None, hw: cuba.CubaHardware,
                unit: float, tau_rho: float, scale_rho: float) -> torch.Tensor:
    """Spikes (float64 0/1) of Lava's bit-accurate CUBA neurons for the synaptic input
    ``a_in`` (T, N, ...) as it arrives (already delayed); ``unit = 64 k``."""
    return _CubaSpike.apply(a_in, bias, hw, unit, tau_rho, scale_rho)
