"""Fold a trained network's normalizations into weights, biases and dynamic thresholds.

Pure functions of a checkpoint's model (never mutate it).  Per layer, with ``a`` the
layer's input PSP and ``z`` its membrane input:

- **PSP-BN** (inference: running second moment ``m2_c``): ``a_hat = a * s_c`` with
  ``s_c = (m2_c + lambda)^-1/2``, so ``W a_hat = W' a`` with ``W'[o, c, ...] = W[o, c, ...] s_c``
  (conv: along input channels; dense after flatten: per input feature).  Exact.
- **causal PSP-LN**: ``W a(t) / sqrt(m2(t) + lambda) + r(t) >= theta`` is equivalent to
  ``W a(t) >= sqrt(m2(t) + lambda) (theta - r(t))`` -- the paper's Eq. 18 dynamic
  threshold.  The weights stay as trained; the layer carries ``dynamic_threshold`` with
  ``lambda``, and the simulator computes ``m2(t)`` online from the layer's input PSP
  (mean over C, H, W of ``a^2``, averaged over steps <= t).
- **whole-window PSP-LN** needs statistics of the future: refused (use causal PSP-LN).
- **BN / tdBN** (inference: running mean/var): ``k (gamma (z - mu) / sqrt(var + eps) + beta)``
  folds into ``W' = W * k gamma / sqrt(var + eps)`` per output channel and a constant
  bias ``b = k (beta - gamma mu / sqrt(var + eps))``.
- **BNTT** has different statistics at every step: refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from psplava.errors import PsplavaError
from psplava.train.model import SNN
from psplava.train.norm import NormKind


class FoldError(PsplavaError):
    """The network cannot be folded for deployment (with the reason)."""


@dataclass
class FoldedLayer:
    """One layer after folding: float weights in the project's layout, plus neuron data."""

    kind: str                       # "conv" | "dense"
    weight: np.ndarray              # conv (out, in, kh, kw); dense (out, in) with (H, W, C) inputs
    bias: np.ndarray | None         # per output channel / feature, added to z every step
    in_shape: tuple[int, ...]       # (H, W, C) or (F,)
    out_shape: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    neuron: dict[str, Any] = field(default_factory=dict)   # device_params of the neuron
    dynamic_threshold: dict[str, float] | None = None       # {"lambda": ...} for causal PSP-LN


def fold_model(model: SNN) -> list[FoldedLayer]:
    """Fold every layer of ``model`` (in eval semantics).  Raises :class:`FoldError`."""
    norm = NormKind(model.spec.norm)
    if norm is NormKind.PSP_LN:
        raise FoldError("whole-window PSP-LN uses statistics of the whole recording, which a "
                        "chip cannot know in advance; train or evaluate with 'causal_psp_ln' "
                        "(psplava export --causal-eval reports the accuracy of these weights "
                        "with causal statistics)")
    if norm is NormKind.BNTT:
        raise FoldError("BNTT normalizes each time step with its own statistics and cannot be "
                        "folded into static weights; use psp_bn, causal_psp_ln, bn or tdbn")
    shape: tuple[int, ...] = model.input_shape
    out: list[FoldedLayer] = []
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            w = layer.weight.detach().double().clone()
            bias = None
            dyn = None
            if layer.pre is not None:
                if layer.pre.kind is NormKind.PSP_BN:
                    s = layer.pre.scale().double()
                    w = w * (s.view(1, -1, 1, 1) if layer.spec.kind == "conv" else s.view(1, -1))
                elif layer.pre.kind is NormKind.CAUSAL_PSP_LN:
                    dyn = {"lambda": float(layer.pre.lam)}
                else:  # pragma: no cover - excluded above
                    raise FoldError(f"layer {i}: cannot fold {layer.pre.kind.value}")
            if layer.post is not None:
                m = layer.post
                inv = torch.rsqrt(m.running_var[0].double() + m.eps)
                g = m.weight[0].double() * inv * m.out_scale
                w = w * (g.view(-1, 1, 1, 1) if layer.spec.kind == "conv" else g.view(-1, 1))
                bias = (m.out_scale * (m.bias[0].double() - m.weight[0].double()
                                       * m.running_mean[0].double() * inv)).numpy()
            out.append(FoldedLayer(
                kind=layer.spec.kind, weight=w.numpy(), bias=bias, in_shape=tuple(shape),
                out_shape=tuple(layer.out_shape), stride=layer.spec.stride,
                padding=layer.spec.kernel // 2 if layer.spec.kind == "conv" else 0,
                neuron=dict(layer.neuron.device_params), dynamic_threshold=dyn))
            shape = layer.out_shape
    return out
