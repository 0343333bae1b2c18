"""Checkpoint -> ``.net`` (netx HDF5 + psplava extension).

The exporter computes nothing of its own: each layer's folded, quantized form comes from
:meth:`psplava.train.model.SpikingLayer.hardware` -- the very tensors the model's ``loihi``
arithmetic runs -- and each neuron's integer parameters from its ``hardware(scale)``.  This
module only lays them out as the file format wants them (netx's flatten order); each
neuron group's keys come from its type's module in :mod:`psplava.neurons`.  The model is
never mutated; the file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psplava import __version__
from psplava.errors import PsplavaError
from psplava.netfile import NetLayer, NeuronGroup, Skip, SkipMode, write_netfile
from psplava.neurons import neuron_model
from psplava.train.arch import Shortcut
from psplava.train.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint
from psplava.train.deployed import FoldError, LayerHardware
from psplava.train.model import SNN


def _chw_columns(in_shape: tuple[int, ...]) -> np.ndarray:
    """Permutation taking (H, W, C)-flattened inputs to netx's (C, H, W) flatten order."""
    if len(in_shape) != 3:
        return np.arange(int(np.prod(in_shape)))
    h, w, c = in_shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _int(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.int64).numpy().astype(np.int32)


def build_layers(model: SNN, k_max: float | None = None
                 ) -> tuple[list[NetLayer], list[dict[str, Any]]]:
    """The file's layers (the schema :func:`psplava.netfile.read_netfile` returns) and a
    quantization report."""
    h, w, c = model.input_shape
    layers: list[NetLayer] = [NetLayer(0, "input", (c, h, w))]
    report = []
    shape: tuple[int, ...] = model.input_shape
    file_index: list[int] = []     # model layer i -> its index in the file
    with torch.no_grad():
        hws = model.hardware(k_max)
        for i, layer in enumerate(model.layers):
            hw: LayerHardware = hws[i]
            kind = neuron_model(layer.neuron.type_name, f"layer {i}")
            if hw.bias is not None and kind.stock_netx:
                raise FoldError("a membrane-norm bias adds to a CUBA neuron's current, which "
                                "stock netx cannot express; export CUBA networks with psp_bn "
                                "or none")
            weight, wf = _int(hw.weight), hw.weight_float.numpy()
            if hw.kind == "dense" and len(shape) == 3:
                layers.append(NetLayer(len(layers), "flatten", (int(np.prod(shape)),)))
                weight, wf = weight[:, _chw_columns(shape)], wf[:, _chw_columns(shape)]
            neuron = NeuronGroup(kind, hw.neuron)
            err = wf - weight / hw.scale
            rms_w = float(np.sqrt(np.mean(np.square(wf)))) if wf.size else 0.0
            rel = float(np.sqrt(np.mean(np.square(err)))) / rms_w if rms_w else 0.0
            max_err = float(np.abs(err).max()) if err.size else 0.0
            entry = NetLayer(
                index=len(layers), type=hw.kind, weight=weight, neuron=neuron,
                shape=(layer.out_shape[2], layer.out_shape[0], layer.out_shape[1])
                if hw.kind == "conv" else (int(np.prod(layer.out_shape)),),
                stride=(hw.stride, hw.stride), padding=(hw.padding, hw.padding),
                bias=None if hw.bias is None else _int(hw.bias),
                dynamic_threshold=hw.dynamic,
                quant={"scale": hw.scale, "rel_rms_error": rel, "max_abs_error": max_err})
            if hw.shortcut is not None:  # a residual block's second layer (format 3 skip)
                src = file_index[i - 2]
                if hw.shortcut is Shortcut.MEMBRANE:
                    entry.skips = [Skip(src, SkipMode.MEMBRANE)]
                else:
                    entry.skips = [Skip(src, SkipMode.CONV, _int(hw.short_weight),
                                        (hw.short_stride, hw.short_stride), (0, 0))]
            layers.append(entry)
            file_index.append(entry.index)
            theta = layer.neuron.threshold
            report.append({"layer": i, "type": hw.kind, "neuron": kind.type_name,
                           "scale": hw.scale, "weight_rel_rms_error": round(rel, 6),
                           "weight_max_abs_error": round(max_err, 6),
                           "threshold_mantissa": hw.neuron.v_th_mant,
                           "threshold_error": abs(hw.neuron.v_th_mant / hw.scale - theta)})
            shape = layer.out_shape
    return layers, report


def export_checkpoint(ckpt_path: str | Path, out: str | Path, k_max: float | None = None
                      ) -> list[dict[str, Any]]:
    """Export a checkpoint to ``out``; returns the per-layer quantization report.

    ``k_max`` defaults to the checkpoint's ``model.k_max`` (the scale rule it trained with).
    """
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise PsplavaError(f"{ckpt_path}: {name} holds NaN or infinite values; refusing to "
                               "export (the training diverged?)")
    layers, report = build_layers(model, k_max)
    attrs = {"psplava_version": __version__, "config": json.dumps(ckpt["config"]),
             "model_spec": json.dumps(ckpt["model_spec"]),
             "checkpoint_sha256": file_sha256(ckpt_path), "checkpoint": str(ckpt_path)}
    try:
        write_netfile(out, layers, attrs)
    except OSError as exc:
        raise PsplavaError(f"{out}: cannot write ({exc})") from None
    return report
