"""Batched fixed-point reference engine for ``.net`` files (Loihi arithmetic).

Reads the same files as the Lava run (:func:`psplava.netfile.read_netfile`) and computes,
for a batch of samples at once, what Lava's ``Loihi2SimCfg(select_tag='fixed_pt')``
computes one sample at a time:

- synapses (conv / dense) buffer one step: the neurons of layer L receive at step t the
  weighted spikes of layer L-1 at step t-1 (``a_buf`` in Lava's Conv/Dense models),
  wrapped to 24 bits like Lava's conv (dense is not);
- CUBA neurons follow Lava's ``PyLifModelBitAcc``: ``u = sign(u)(|u|(4096 - iDecay) >> 12)
  + (a_in << 6)`` wrapped to 24 bits, ``v = sign(v)(|v|(4096 - vDecay) >> 12) + u + bias``
  clipped to 24 bits, spike when ``v > vThMant << 6``, then ``v = 0``.

Tensors are (T, N, H, W, C) inside; Lava's (x, y, f) order is converted at the boundary
(:func:`lava_to_internal`, :func:`internal_to_lava`).  SRM networks use
:mod:`psplava.sim.srm_fixed`, the same step functions as the Lava process models.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from psplava.netfile import NetFile, NetFileError, NetLayer
from psplava.sim.srm_fixed import wrap24

UV_BITS = 24
_MAX = 1 << (UV_BITS - 1)


def lava_to_internal(x: np.ndarray) -> np.ndarray:
    """(x, y, f, T) or (N, x, y, f, T) spikes -> (T, N, H, W, C)."""
    if x.ndim == 4:
        x = x[None]
    return np.ascontiguousarray(x.transpose(4, 0, 2, 1, 3))


def internal_to_lava(s: np.ndarray) -> np.ndarray:
    """(T, N, H, W, C) -> (N, x, y, f, T); (T, N, F) -> (N, F, T)."""
    if s.ndim == 3:
        return np.ascontiguousarray(s.transpose(1, 2, 0))
    return np.ascontiguousarray(s.transpose(1, 3, 2, 4, 0))


def lava_layer_to_internal(o: np.ndarray) -> np.ndarray:
    """One sample's layer output in Lava order ((x, y, f, T) or (F, T)) -> (T, 1, ...)."""
    if o.ndim == 2:
        return o.T[:, None]
    return o.transpose(3, 1, 0, 2)[:, None]


def _decay(x: np.ndarray, d: int) -> np.ndarray:
    y = x.astype(np.int64) * (4096 - int(d))
    return (np.sign(y) * (np.abs(y) >> 12)).astype(np.int64)




class _Cuba:
    def __init__(self, layer: NetLayer, shape: tuple[int, ...]) -> None:
        p = layer.neuron
        self.du, self.dv = int(p["iDecay"]), int(p["vDecay"])
        self.vth = int(p["vThMant"]) << 6
        self.bias = 0 if layer.bias is None else (np.asarray(layer.bias).astype(np.int64) << 6)
        self.u = np.zeros(shape, np.int64)
        self.v = np.zeros(shape, np.int64)

    def step(self, a_in: np.ndarray) -> np.ndarray:
        cur = _decay(self.u, self.du) + (a_in.astype(np.int64) << 6)
        wrapped = np.where(cur > _MAX, cur - 2 * _MAX, cur)
        wrapped = np.where(wrapped <= -_MAX, cur + 2 * _MAX, wrapped)  # as Lava does
        self.u = wrapped
        v = _decay(self.v, self.dv) + self.u + self.bias
        self.v = np.clip(v, -_MAX + 1, _MAX - 1)
        s = self.v > self.vth
        self.v[s] = 0
        return s


NEURONS = {"CUBA": _Cuba, "LOIHI": _Cuba}


class _Synapse:
    def __init__(self, layer: NetLayer, prev_shape: tuple[int, ...]) -> None:
        self.layer = layer
        self.w = torch.from_numpy(np.asarray(layer.weight, dtype=np.float64))
        self.flatten_chw = len(prev_shape) == 3 and layer.type == "dense"

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """Integer weighted input of spikes s (N, H, W, C) or (N, F)."""
        x = torch.from_numpy(s.astype(np.float64))
        if self.layer.type == "conv":
            y = F.conv2d(x.permute(0, 3, 1, 2), self.w, stride=self.layer.stride,
                         padding=self.layer.padding).permute(0, 2, 3, 1)
        else:
            if self.flatten_chw:
                x = x.permute(0, 3, 1, 2)
            y = x.reshape(x.shape[0], -1) @ self.w.t()
        out = np.rint(y.numpy()).astype(np.int64)
        return wrap24(out) if self.layer.type == "conv" else out


def _out_shape(layer: NetLayer) -> tuple[int, ...]:
    if layer.type == "conv":
        return (layer.shape[1], layer.shape[2], layer.shape[0])
    return (int(np.prod(layer.shape)),)


def run_fixed(net: NetFile, x: np.ndarray) -> list[np.ndarray]:
    """Spikes of every neuron layer, each (T, N, ...) bool, for input x (T, N, H, W, C).

    Mirrors the Lava graph step by step: for SRM networks the input first passes a PSP
    generator and every layer sends its PSP (one step ahead) instead of its spikes.
    """
    from psplava.sim import srm_fixed

    layers = [l for l in net.layers if l.type in ("conv", "dense")]
    if not layers:
        raise NetFileError(f"{net.path}: no conv or dense layers to run")
    c, h, w = net.layers[0].shape if len(net.layers[0].shape) == 3 else (0, 0, 0)
    if x.shape[2:] != (h, w, c):
        raise NetFileError(f"{net.path}: input has shape (H, W, C) = {x.shape[2:]}, the "
                           f"network expects {(h, w, c)}")
    types = {l.neuron.get("type") for l in layers}
    srm = types == {"SRM"}
    if not srm and not types <= set(NEURONS):
        raise NetFileError(f"{net.path}: the reference engine runs all-CUBA or all-SRM "
                           f"networks, found neuron types {sorted(map(str, types))}")
    T, N = x.shape[:2]
    synapses, neurons, buffers, shapes, moments = [], [], [], [], []
    prev = (h, w, c)
    for i, layer in enumerate(layers):
        out_shape = _out_shape(layer)
        synapses.append(_Synapse(layer, prev))
        if srm:
            nxt = layers[i + 1].neuron["psDecay"] if i + 1 < len(layers) else None
            lam = layer.dynamic_threshold["lambda"] if layer.dynamic_threshold else None
            neurons.append(srm_fixed.SRMState((N, *out_shape), layer.neuron, layer.bias, lam,
                                              nxt))
            moments.append(None if lam is None else {
                "sum": np.zeros(N, np.int64), "count": 0, "buf": np.zeros(N),
                "n": int(np.prod(prev)), "tau_s": float(layer.neuron["tauS"])})
        else:
            neurons.append(NEURONS[layer.neuron["type"]](layer, (N, *out_shape)))
            moments.append(None)
        buffers.append(np.zeros((N, *out_shape), np.int64))
        shapes.append(out_shape)
        prev = out_shape
    outs = [np.zeros((T, N, *s), bool) for s in shapes]
    if srm:
        px = np.zeros((N, h, w, c), np.int64)
        py = np.zeros((N, h, w, c), np.int64)
        dq0 = int(layers[0].neuron["psDecay"])
    for t in range(T):
        if srm:
            px, py = srm_fixed.psp_update(px, py, x[t] != 0, dq0)
            msg = py
        else:
            msg = x[t]
        for i in range(len(layers)):
            a_in = buffers[i]
            buffers[i] = synapses[i](msg)
            gain = None
            mom = moments[i]
            if mom is not None:
                m2 = mom["buf"]
                mom["sum"] = mom["sum"] + (msg.astype(np.int64) ** 2).reshape(N, -1).sum(axis=1)
                mom["count"] += 1
                mom["buf"] = srm_fixed.m2_from_sums(mom["sum"], mom["count"] + 1, mom["n"],
                                                    mom["tau_s"])
                gain = srm_fixed.gain_of(m2, neurons[i].lam).reshape(N, *[1] * len(shapes[i]))
            s = neurons[i].step(a_in, gain) if srm else neurons[i].step(a_in)
            outs[i][t] = s
            msg = neurons[i].py if srm else s
    return outs
