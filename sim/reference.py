"""Batched reference engine for folded networks (float64; fixed point to follow).

Runs a list of :class:`psplava.export.fold.FoldedLayer` on input spikes (T, N, H, W, C)
and returns every layer's spikes.  SRM layers use the same mathematics as training
(:mod:`psplava.train.kernels`: alpha PSP), but the spike decision is written in the
*folded* form a chip evaluates, with the dynamic threshold of causal PSP-LN (Eq. 18):

    spike(t)  <=>  z(t) >= g(t) * (theta - r(t)),   g(t) = sqrt(m2(t) + lambda)  (else 1)

where ``z = W' a + b`` and ``r(t)`` is the refractory state (<= 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from psplava.train import kernels


def _synapse(layer, a: torch.Tensor) -> torch.Tensor:
    T, N = a.shape[:2]
    w = torch.from_numpy(layer.weight).to(a.dtype)
    if layer.kind == "conv":
        x = a.reshape(T * N, *a.shape[2:]).permute(0, 3, 1, 2)
        z = F.conv2d(x, w, stride=layer.stride, padding=layer.padding)
        z = z.permute(0, 2, 3, 1).reshape(T, N, *layer.out_shape)
    else:
        z = a.reshape(T, N, -1) @ w.t()
    if layer.bias is not None:
        z = z + torch.from_numpy(layer.bias).to(a.dtype)
    return z


def _srm_folded(z: np.ndarray, gain: np.ndarray | None, p: dict) -> np.ndarray:
    """SRM spikes in the folded form; ``z`` (T, N, F), ``gain`` (T, N) or None."""
    theta, tau_r = float(p["theta"]), float(p["tau_r"])
    d = math.exp(-1.0 / tau_r)
    alpha = p["refractory"] in ("alpha", b"alpha")
    ref_gain = -2.0 * theta * (math.e / tau_r if alpha else 1.0)
    T = z.shape[0]
    s = np.zeros_like(z)
    x = np.zeros_like(z[0])
    y = np.zeros_like(z[0])
    for t in range(T):
        if t > 0:
            if alpha:
                x, y = d * (x + s[t - 1]), d * (y + x + s[t - 1])
            else:
                y = d * (y + s[t - 1])
        r = ref_gain * y
        g = 1.0 if gain is None else gain[t][:, None]
        s[t] = z[t] >= g * (theta - r)
    return s


def simulate_float(layers, x: torch.Tensor) -> list[torch.Tensor]:
    """Spikes of every layer (each (T, N, ...)) for input spikes ``x`` (T, N, H, W, C)."""
    s = x.double()
    outs = []
    for layer in layers:
        ntype = layer.neuron["type"]
        ntype = ntype.decode() if isinstance(ntype, bytes) else ntype
        if ntype == "SRM":
            T, N = s.shape[:2]
            flat = s.reshape(T, -1).numpy()
            a = torch.from_numpy(kernels.alpha_filter(
                flat, math.exp(-1.0 / float(layer.neuron["tau_s"])),
                math.e / float(layer.neuron["tau_s"]))).view(s.shape)
            gain = None
            if layer.dynamic_threshold is not None:
                m2 = a.square().reshape(T, N, -1).mean(dim=2)
                m2 = m2.cumsum(dim=0) / torch.arange(1, T + 1, dtype=a.dtype)[:, None]
                gain = torch.sqrt(m2 + layer.dynamic_threshold["lambda"]).numpy()
            z = _synapse(layer, a)
            spikes = _srm_folded(z.reshape(T, N, -1).numpy(), gain, layer.neuron)
            s = torch.from_numpy(spikes).view(z.shape)
        else:
            raise NotImplementedError(f"reference engine: neuron type {ntype!r} not yet supported")
        outs.append(s)
    return outs
