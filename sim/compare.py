"""Spike-for-spike comparisons between an engine run and the trained PyTorch model.

Two references for a checkpoint:

- **Loihi-exact**: the checkpoint folded and quantized in memory (exactly what
  ``psplava export`` writes) and run by the fixed-point reference engine -- the integer
  arithmetic Lava must reproduce bit for bit (0 mismatches expected);
- **float**: the trained model itself (eval mode, float32); differences from it are the
  quantization's effect, reported, not expected to be 0.

Timing: SRM layers in Lava have no offset against training (each neuron sends its PSP one
step ahead, see :mod:`psplava.sim.srm_fixed`); CUBA layer i lags i + 1 steps (one synapse
buffer per layer).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from psplava.netfile import NetFile, NetLayer


def netfile_from_layers(layers: list[dict[str, Any]], attrs: dict[str, Any] | None = None
                        ) -> NetFile:
    """The in-memory :class:`NetFile` of :func:`psplava.export.exporter.build_layers`."""
    out = []
    for i, d in enumerate(layers):
        layer = NetLayer(index=i, type=d["type"], shape=tuple(int(v) for v in d["shape"]),
                         weight=d.get("weight"), bias=d.get("bias"),
                         stride=tuple(d.get("stride", (1, 1))),
                         padding=tuple(d.get("padding", (0, 0))),
                         neuron=dict(d.get("neuron") or {}),
                         dynamic_threshold=d.get("dynamicThreshold"),
                         quant=dict(d.get("quant") or {}))
        out.append(layer)
    return NetFile("<memory>", 1, out, attrs or {})


class CheckpointReference:
    """A checkpoint's float model and its Loihi-exact (in-memory export) counterpart."""

    def __init__(self, ckpt_path: str) -> None:
        from psplava.export.exporter import build_layers
        from psplava.export.fold import fold_model
        from psplava.train.trainer import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(ckpt_path)
        self.model = model_from_checkpoint(ckpt)
        layers, self.report = build_layers(fold_model(self.model.double()),
                                           self.model.input_shape)
        self.model.float()
        self.exact = netfile_from_layers(layers)
        self.neuron = self.model.spec.neuron

    def loihi_exact(self, x: np.ndarray) -> list[np.ndarray]:
        """Per-layer spikes (T, N, ...) of the Loihi-exact run for x (T, N, H, W, C)."""
        from psplava.sim.fixed import run_fixed

        return run_fixed(self.exact, x)

    def float_spikes(self, x: np.ndarray) -> list[np.ndarray]:
        outs, s = [], torch.from_numpy(x.astype(np.float32))
        with torch.no_grad():
            for layer in self.model.layers:
                s = layer(s)
                outs.append(s.numpy().astype(bool))
        return outs

    def delay(self, i: int) -> int:
        return 0 if self.neuron == "srm" else i + 1


def count_mismatches(engine: list[np.ndarray], ref: list[np.ndarray], delays: list[int],
                     steps: int) -> list[int]:
    """Per-layer mismatches over ``steps`` steps; engine layer i is shifted by delays[i]."""
    out = []
    for e, r, d in zip(engine, ref, delays):
        n = min(steps, e.shape[0] - d, r.shape[0])
        out.append(int((e[d:d + n] != r[:n]).sum()))
    return out
