"""A layer as the chip runs it: its normalization folded, its weights scaled and quantized
(:class:`Folding`, what the exporter writes), and the forward pass of exactly those
integers (:class:`LoihiForward`, ``model.arithmetic: loihi``).  Both are mixins of
:class:`psplava.train.model.SpikingLayer`, whose float forward pass stays in
:mod:`psplava.train.model`; they read its ``spec``, ``weight``, ``pre``/``post`` norms,
``neuron``, shortcut and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from psplava import loihi
from psplava.errors import ConfigError
from psplava.train import loihi_ops
from psplava.train.arch import Shortcut
from psplava.train.loihi_ops import ste
from psplava.netfile import LayerKind
from psplava.train.norm import NormKind, PSPNorm


class FoldError(ConfigError):
    """The network cannot be folded for deployment (with the reason)."""


@dataclass(frozen=True)
class LayerHardware:
    """One layer as the chip runs it (what the exporter writes, what loihi arithmetic runs).

    ``weight`` and ``bias`` are float64 tensors holding integers; in training they carry
    straight-through gradients to the float parameters.
    """

    kind: LayerKind                # CONV or DENSE
    weight: torch.Tensor           # conv (out, in, kh, kw); dense (out, in), (H, W, C) inputs
    bias: torch.Tensor | None      # per output channel / feature (integer units)
    scale: float                   # k: integer units per float unit of the membrane input
    neuron: Any                    # the neuron type's hardware dataclass (psplava.neurons)
    dynamic: "loihi.DynamicThreshold | None"  # causal PSP-LN's threshold (Eq. 18)
    weight_float: torch.Tensor     # folded float weight (alpha gain included) before rounding
    stride: int = 1
    padding: int = 0
    shortcut: Shortcut | None = None  # a residual block's second layer
    short_weight: torch.Tensor | None = None  # (out, in, 1, 1) integer 1x1 conv of the
    short_stride: int = 1                     # block input's PSP (identity / projection)


@dataclass(frozen=True)
class Folded:
    """A layer's float64 synapse with its normalization folded (eval semantics),
    differentiable in the float parameters: what :meth:`Folding.folded` and
    :meth:`Folding.deployed_float` return, before the weight scale and the rounding."""

    weight: torch.Tensor                        # conv (out, in, kh, kw); dense (out, in)
    bias: torch.Tensor | None = None            # BN / tdBN folded: per output, float units
    dynamic: "loihi.DynamicThreshold | None" = None  # causal PSP-LN's threshold (Eq. 18)
    shortcut: torch.Tensor | None = None        # identity / projection 1x1 conv (out, in)


def to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(T, N, H, W, C) -> (T*N, C, H, W) channels-last view (no copy)."""
    T, N, H, W, C = x.shape
    return x.reshape(T * N, H, W, C).permute(0, 3, 1, 2)


def from_nchw(y: torch.Tensor, T: int, N: int) -> torch.Tensor:
    y = y.permute(0, 2, 3, 1)
    return y.reshape(T, N, *y.shape[1:])


class Folding:
    """Fold, scale and quantize a :class:`~psplava.train.model.SpikingLayer`."""

    def folded(self) -> Folded:
        """The layer with its normalization folded (eval semantics), float64, differentiable
        in the weights (no shortcut, no pooling, no PSP gain yet).

        - PSP-BN: ``a_hat = a s_c``, ``s_c = (m2_c + lambda)^-1/2`` (running statistics), so
          ``W a_hat = W' a`` with ``W'[o, c, ...] = W[o, c, ...] s_c``.  Exact.
        - causal PSP-LN: ``W a / g + r >= theta`` <=> ``W a >= g (theta - r)``,
          ``g = sqrt(m2(t) + lambda)``: the paper's Eq. 18 dynamic threshold; W unchanged.
        - whole-window PSP-LN needs the future's statistics and BNTT per-step statistics:
          refused (:class:`FoldError`).
        - BN / tdBN: ``k (gamma (z - mu) / sqrt(var + eps) + beta)`` folds into
          ``W' = W k gamma / sqrt(var + eps)`` per output channel and a bias
          ``b = k (beta - gamma mu / sqrt(var + eps))``.
        """
        w = self.weight.double()
        bias = None
        dyn = None
        conv = self.spec.kind == "conv"
        if self.pre is not None:
            if self.pre.kind is NormKind.PSP_BN:
                s = torch.rsqrt(self.pre.running_m2.double() + self.pre.lam)
                w = w * (s.view(1, -1, 1, 1) if conv else s.view(1, -1))
            elif self.pre.kind is NormKind.CAUSAL_PSP_LN:
                dyn = self.pre.dynamic_threshold()
            else:
                raise FoldError("whole-window PSP-LN uses statistics of the whole recording, "
                                "which a chip cannot know in advance; train or fine-tune with "
                                "'causal_psp_ln' (psplava train --init-from CKPT --set "
                                "model.norm=causal_psp_ln)")
        if self.post is not None:
            m = self.post
            if m.kind is NormKind.BNTT:
                raise FoldError("BNTT normalizes each time step with its own statistics and "
                                "cannot be folded into static weights; use psp_bn, "
                                "causal_psp_ln, bn or tdbn")
            inv = torch.rsqrt(m.running_var[0].double() + m.eps)
            g = m.weight[0].double() * inv * m.out_scale
            w = w * (g.view(-1, 1, 1, 1) if conv else g.view(-1, 1))
            bias = m.out_scale * (m.bias[0].double() - m.weight[0].double()
                                  * m.running_mean[0].double() * inv)
        return Folded(w, bias, dyn)

    def _pool_weight(self, w: torch.Tensor) -> torch.Tensor:
        """A dense weight acting on average-pooled PSPs as one acting on the unpooled ones
        (sum pooling folded into the synapse: ``W'[o, (h, w, c)] = W[o, (h/K, w/K, c)] / K^2``;
        rows and columns that the floor-mode pooling drops get 0)."""
        kind, k = self.spec.pool
        if kind != "avg" or self.spec.kind != "dense":
            raise FoldError(f"{'max' if kind == 'max' else 'average'} pooling before a "
                            f"{self.spec.kind} layer has no Loihi synapse; psplava deploys "
                            "average pooling into a dense layer (a sum-pooling synapse)")
        h, w_, c = self.in_shape
        ph, pw, _ = self.pooled_shape
        wv = w.view(w.shape[0], ph, 1, pw, 1, c).expand(-1, ph, k, pw, k, c) / (k * k)
        full = w.new_zeros(w.shape[0], h, w_, c)
        full[:, :ph * k, :pw * k] = wv.reshape(w.shape[0], ph * k, pw * k, c)
        return full.reshape(w.shape[0], -1)

    def folded_shortcut(self, first_pre: "PSPNorm | None") -> torch.Tensor | None:
        """The identity / projection shortcut as a float64 1x1 conv of the block input's
        *unnormalized* PSP: the first layer's PSP-BN scale (``first_pre``) and the alpha
        PSP's gain folded in."""
        if not self.conv_shortcut:
            return None
        if self.shortcut is Shortcut.IDENTITY:
            c = self.out_shape[-1]
            w = torch.eye(c, dtype=torch.float64, device=self.weight.device).view(c, c, 1, 1)
        else:
            w = self.proj.double()
        if first_pre is not None:
            if first_pre.kind is not NormKind.PSP_BN:
                raise FoldError(f"{first_pre.kind.value} in a residual block: the shortcut and "
                                "the block's conv would need different dynamic thresholds; "
                                "residual networks deploy with psp_bn or none")
            w = w * torch.rsqrt(first_pre.running_m2.double() + first_pre.lam).view(1, -1, 1, 1)
        return w * self.neuron.weight_gain   # SRM: the alpha PSP's gain e / tau_s

    def deployed_float(self, first_pre: "PSPNorm | None" = None) -> Folded:
        """The synapse as the chip sees it, in float: the folded layer (:meth:`folded`),
        pooling folded into a dense weight, the alpha PSP's gain folded into SRM weights,
        and the folded shortcut; differentiable."""
        f = self.folded()
        w = f.weight if self.spec.pool is None else self._pool_weight(f.weight)
        w = w * self.neuron.weight_gain  # SRM: the alpha PSP's gain e / tau_s
        if self.shortcut is not None and f.dynamic is not None:
            raise FoldError("causal PSP-LN in a residual network: the shortcut and the "
                            "block's conv would need different dynamic thresholds; residual "
                            "networks deploy with psp_bn or none")
        return Folded(w, f.bias, f.dynamic, self.folded_shortcut(first_pre))

    def needed_scale(self, k_max: float, floats: Folded) -> float:
        """The largest weight scale the weights, bias and threshold of ``floats`` (what
        :meth:`deployed_float` returns) allow."""
        with torch.no_grad():
            m = max(float(t.abs().max()) for t in (floats.weight, floats.bias,
                                                   floats.shortcut) if t is not None)
        return loihi.choose_scale(m, self.neuron.threshold, k_max, self.neuron.theta_k_max)

    def hardware(self, k_max: float | None = None, scale: float | None = None,
                 first_pre: "PSPNorm | None" = None, floats: Folded | None = None
                 ) -> LayerHardware:
        """Fold, scale and quantize as the exporter writes the layer (straight-through
        gradients to the float parameters).  ``scale``: imposed by :meth:`SNN.hardware` on
        the layers a membrane shortcut joins; ``first_pre``: the PSP norm of the block's
        first layer (for this layer's shortcut); ``floats``: :meth:`deployed_float` if the
        caller has it already."""
        k_max = self.k_max if k_max is None else float(k_max)
        floats = self.deployed_float(first_pre) if floats is None else floats
        w, bias, dyn, ws = floats.weight, floats.bias, floats.dynamic, floats.shortcut
        if scale is None:
            scale = self.needed_scale(k_max, floats)
        wq = ste(loihi.quantize_weight(w.detach() * scale), w * scale)
        bq = None if bias is None else ste(torch.round(bias.detach() * scale), bias * scale)
        sq = None if ws is None else ste(loihi.quantize_weight(ws.detach() * scale), ws * scale)
        return LayerHardware(kind=self.spec.kind, weight=wq, bias=bq, scale=scale,
                             neuron=self.neuron.hardware(scale), dynamic=dyn,
                             weight_float=w.detach(), stride=self.spec.stride,
                             padding=self.spec.kernel // 2 if self.spec.kind == "conv" else 0,
                             shortcut=self.shortcut, short_weight=sq,
                             short_stride=self.short_stride)


class LoihiForward:
    """The integer forward pass of a :class:`~psplava.train.model.SpikingLayer`."""

    def forward_loihi(self, s: torch.Tensor, hw: LayerHardware | None = None,
                      y: torch.Tensor | None = None, extra: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly the exported layer's integer dynamics (see :mod:`psplava.loihi`):
        ``(spikes, z)`` with ``z`` the integer synaptic input (before the bias).  ``y``:
        the integer PSP of ``s`` if already computed; ``extra``: integer shortcut input."""
        hw = self.hardware() if hw is None else hw
        y = self.neuron.integer_input(s) if y is None else y
        if self.spec.kind == "dense" and y.dim() > 3:
            y = y.flatten(2)
        if self.training and self.pre is not None and (
                self.pre.kind is NormKind.PSP_BN or self.pre.prior_steps):
            # PSP-BN keeps tracking its running statistics, causal PSP-LN its prior (used
            # from the next step on)
            a = y.detach().double() * self.neuron.integer_unit
            if self.spec.pool is not None:
                a = self._pool(a)
            a = a.flatten(2) if self.spec.kind == "dense" else a
            if self.pre.kind is NormKind.PSP_BN:
                self.pre.track(a)
            else:
                self.pre.track_prior(a)
        T, N = y.shape[:2]
        x_range = self.neuron.integer_range()
        if self.spec.kind == "conv":
            z = loihi_ops.integer_synapse(to_nchw(y), hw.weight, "conv", hw.stride, hw.padding,
                                          x_range)
            z = from_nchw(z, T, N)
        else:
            z = loihi_ops.integer_synapse(y.reshape(T * N, -1), hw.weight, "dense", 1, 0,
                                          x_range)
            z = z.reshape(T, N, -1)
        if extra is not None:
            z = z + extra
        out = self.neuron.loihi_spikes(z, y, hw)
        return out.to(s.dtype), z  # spikes are 0/1: exact in the input's dtype
