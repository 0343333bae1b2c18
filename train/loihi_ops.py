"""Autograd around the chip's integer arithmetic (``model.arithmetic: loihi``), the parts
every neuron type shares.

The forward passes call :mod:`psplava.loihi` -- shared with the reference engine and the
Lava process models -- so a model in loihi arithmetic computes bit for bit what its
exported file computes.  The backward passes are those of float training, as lava-dl's
CUBA blocks do for their quantized weights: quantized weights and integer synapse outputs
are straight-through (:func:`ste`); each neuron type's integer step and its surrogate
gradient are in its training module (:mod:`psplava.train.neurons`).
"""

from __future__ import annotations

import torch

from psplava import loihi


def ste(exact: torch.Tensor, approx: torch.Tensor) -> torch.Tensor:
    """The value of ``exact`` (bit for bit) with the gradient of ``approx``."""
    return exact.detach() + (approx - approx.detach())


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


def surrogate_rho(u: torch.Tensor, tau_rho: float, scale_rho: float) -> torch.Tensor:
    """lava-dl's surrogate ``scale_rho / (2 tau_rho) exp(-|u| / tau_rho)`` of the spike's
    derivative, at the distance ``u`` from the threshold (float units)."""
    return scale_rho / (2.0 * tau_rho) * torch.exp(-u.abs() / tau_rho)


