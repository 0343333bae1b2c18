"""Checkpoint -> folded -> quantized -> ``.net`` (netx HDF5 + psplava extension).

Conversions are a registry keyed by neuron type (``NEURON_WRITERS``): adding a neuron
type touches one place.  The model is never mutated; the file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from psplava.errors import PsplavaError
from psplava.export.fold import FoldedLayer, FoldError, fold_model
from psplava.export.quantize import (VTH_MANT_MAX, choose_scale, quantize_decay,
                                     quantize_threshold, quantize_weights)
from psplava.sim.srm_fixed import SRM_THETA_K_MAX
from psplava.netfile import write_netfile


def _chw_columns(in_shape: tuple[int, ...]) -> np.ndarray:
    """Permutation taking (H, W, C)-flattened inputs to netx's (C, H, W) flatten order."""
    if len(in_shape) != 3:
        return np.arange(int(np.prod(in_shape)))
    h, w, c = in_shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _cuba_neuron(layer: FoldedLayer, scale: float) -> dict[str, Any]:
    p = layer.neuron
    if layer.bias is not None:
        raise FoldError("a membrane-norm bias adds to a CUBA neuron's current, which stock "
                        "netx cannot express; export CUBA networks with psp_bn or none")
    theta = _cuba_theta(layer)
    return {"type": "CUBA", "iDecay": int(p["iDecay"]), "vDecay": int(p["vDecay"]),
            "vThMant": quantize_threshold(theta, scale), "refDelay": int(p.get("refDelay", 1)),
            "gradedSpike": bool(p.get("gradedSpike", False))}


def _cuba_theta(layer: FoldedLayer) -> float:
    return float(layer.neuron["vThMant"]) / 64.0  # lava-dl's device_params use w_scale = 64


def _srm_neuron(layer: FoldedLayer, scale: float) -> dict[str, Any]:
    p = layer.neuron
    return {"type": "SRM", "vThMant": quantize_threshold(float(p["theta"]), scale),
            "tauS": float(p["tau_s"]), "tauR": float(p["tau_r"]),
            "refractory": str(p["refractory"]),
            "psDecay": quantize_decay(math.exp(-1.0 / float(p["tau_s"]))),
            "refDecay": quantize_decay(math.exp(-1.0 / float(p["tau_r"])))}


def _srm_theta(layer: FoldedLayer) -> float:
    return float(layer.neuron["theta"])


#: neuron type -> (theta of the folded layer, neuron group writer)
NEURON_WRITERS: dict[str, tuple[Callable[[FoldedLayer], float],
                                Callable[[FoldedLayer, float], dict[str, Any]]]] = {
    "CUBA": (_cuba_theta, _cuba_neuron),
    "SRM": (_srm_theta, _srm_neuron),
}


def build_layers(folded: list[FoldedLayer], input_shape: tuple[int, int, int],
                 k_max: float = 1024.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Layer dicts for :func:`psplava.netfile.write_netfile` and a quantization report."""
    h, w, c = input_shape
    layers: list[dict[str, Any]] = [{"type": "input", "shape": (c, h, w)}]
    report = []
    for i, layer in enumerate(folded):
        ntype = str(layer.neuron["type"])
        if ntype not in NEURON_WRITERS:
            raise FoldError(f"layer {i}: no exporter for neuron type {ntype!r}")
        theta_of, neuron_of = NEURON_WRITERS[ntype]
        weight = layer.weight
        if layer.kind == "dense" and len(layer.in_shape) == 3:
            layers.append({"type": "flatten", "shape": (int(np.prod(layer.in_shape)),)})
            weight = weight[:, _chw_columns(layer.in_shape)]
        if ntype == "SRM":
            # the alpha PSP's gain e / tau_s folds into the weights (psplava.sim.srm_fixed)
            weight = weight * (math.e / float(layer.neuron["tau_s"]))
        theta = theta_of(layer)
        bias_max = float(np.abs(layer.bias).max()) if layer.bias is not None else 0.0
        theta_k_max = SRM_THETA_K_MAX if ntype == "SRM" else VTH_MANT_MAX
        scale = choose_scale(np.append(weight.ravel(), bias_max), theta, k_max, theta_k_max)
        q = quantize_weights(weight, scale)
        entry: dict[str, Any] = {
            "type": layer.kind, "weight": q.weight, "neuron": neuron_of(layer, scale),
            "quant": {"scale": scale, "rel_rms_error": q.rel_rms_error,
                      "max_abs_error": q.max_abs_error},
        }
        if layer.kind == "conv":
            oh, ow, oc = layer.out_shape
            entry.update(shape=(oc, oh, ow), stride=(layer.stride, layer.stride),
                         padding=(layer.padding, layer.padding))
        else:
            entry["shape"] = (int(np.prod(layer.out_shape)),)
        if layer.bias is not None:
            entry["bias"] = np.round(layer.bias * scale).astype(np.int32)
        if layer.dynamic_threshold is not None:
            entry["dynamicThreshold"] = dict(layer.dynamic_threshold)
        layers.append(entry)
        report.append({"layer": i, "type": layer.kind, "neuron": ntype, "scale": scale,
                       "weight_rel_rms_error": round(q.rel_rms_error, 6),
                       "weight_max_abs_error": round(q.max_abs_error, 6),
                       "threshold_mantissa": entry["neuron"]["vThMant"],
                       "threshold_error": abs(entry["neuron"]["vThMant"] / scale - theta)})
    return layers, report


def export_checkpoint(ckpt_path: str | Path, out: str | Path, k_max: float = 1024.0
                      ) -> list[dict[str, Any]]:
    """Export a checkpoint to ``out``; returns the per-layer quantization report."""
    import json

    from psplava import __version__
    from psplava.train.trainer import file_sha256, load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt).double()
    folded = fold_model(model)
    layers, report = build_layers(folded, model.input_shape, k_max)
    attrs = {"psplava_version": __version__, "config": json.dumps(ckpt["config"]),
             "model_spec": json.dumps(ckpt["model_spec"]),
             "checkpoint_sha256": file_sha256(ckpt_path), "checkpoint": str(ckpt_path)}
    try:
        write_netfile(out, layers, attrs)
    except OSError as exc:
        raise PsplavaError(f"{out}: cannot write ({exc})") from None
    return report
