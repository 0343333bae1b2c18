"""Resource plan and energy / latency estimate of a ``.net`` file on Loihi 2.

Everything here is counted from the file (and, for activity, from the bit-exact reference
engine on real recordings); the chip figures are constants with their sources in
``docs/loihi2.md``.  Counting conventions:

- **neurons**: a layer's output neurons.
- **synapses**: connections that exist, exactly: a conv's taps that fall inside the input
  (zero padding holds no synapse), a dense layer's ``out x in``, a ``conv`` skip like a
  conv, a ``membrane`` skip one relay connection per neuron.
- **fan-in** (per receiving neuron) and **fan-out** (per sending neuron): maxima.
- **synaptic memory**: synapses x the bits the file's weights need (sign included), each
  synapse stored on its own (no weight sharing: the conservative layout); the
  shared-kernel size is reported beside it.
- **partitioning**: a layer's neurons are split evenly over the fewest cores that keep
  each core within :data:`LOIHI2` ``neurons_per_core`` and ``synaptic_memory_bytes``
  (synapses belong to the core of their receiving neuron); layers do not share cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from psplava.netfile import NetFile, NetLayer, SkipMode
from psplava.neurons import srm
from psplava.sim.fixed import run_fixed

#: Loihi 2 limits used by the planner (sources: docs/loihi2.md)
LOIHI2 = {
    "cores_per_chip": 128,
    "neurons_per_core": 8192,
    "synaptic_memory_bytes": 128 * 1024,
    "neurons_per_chip": 1_000_000,
    "synapses_per_chip": 120_000_000,
    "chips_per_kapoho_point": 8,
}
#: Per-operation figures (Loihi 1, measured: Davies et al. 2018; docs/loihi2.md)
ENERGY = {
    "synop_pj": 23.6,          # energy per synaptic spike operation
    "neuron_update_pj": 52.0,  # energy per neuron update (inactive; 81 pJ when active)
    "synop_ns": 3.5,           # time per synaptic spike operation (per core)
    "neuron_update_ns": 5.3,   # time per (active) neuron update (per core)
    "mac_fp32_pj": 4.6,        # 32-bit float multiply-add, 45 nm (Horowitz 2014)
    "mac_int8_pj": 0.23,       # 8-bit integer multiply-add, 45 nm (Horowitz 2014)
}


@dataclass
class LayerPlan:
    index: int
    type: str
    neuron: str
    neurons: int
    synapses: int
    fan_in: int
    fan_out: int
    weight_bits: int
    synaptic_memory_bytes: int
    kernel_memory_bytes: int
    cores: int
    needs_microcode: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _neuron_count(layer: NetLayer) -> int:
    return int(np.prod(layer.shape))


def _taps(size: int, out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """For each output position along one axis, how many kernel taps fall inside."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(k)[None, :]
    return ((pos >= 0) & (pos < size)).sum(axis=1)


def _hits(size: int, out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """For each input position along one axis, how many output positions read it."""
    pos = np.arange(out)[:, None] * stride - pad + np.arange(k)[None, :]
    counts = np.zeros(size, dtype=np.int64)
    valid = (pos >= 0) & (pos < size)
    np.add.at(counts, pos[valid], 1)
    return counts


def conv_counts(in_shape: tuple[int, int, int], weight: np.ndarray, out_shape, stride,
                padding) -> tuple[int, int, np.ndarray]:
    """(synapses, max fan-in, fan-out per input position (H, W)) of a conv with weight
    (out, in, kh, kw) from input (C, H, W) to output (O, Ho, Wo)."""
    c, h, w = in_shape
    o, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    ty = _taps(h, out_shape[1], kh, stride[0], padding[0])
    tx = _taps(w, out_shape[2], kw, stride[1], padding[1])
    synapses = int(o * c * ty.sum() * tx.sum())
    fan_in = int(c * ty.max() * tx.max()) if ty.size and tx.size else 0
    hy = _hits(h, out_shape[1], kh, stride[0], padding[0])
    hx = _hits(w, out_shape[2], kw, stride[1], padding[1])
    return synapses, fan_in, o * np.outer(hy, hx)


def _weight_bits(weights: list[np.ndarray]) -> int:
    """Bits of the weights' common two's-complement mantissa: the power of two all weights
    share is Loihi's weight exponent, not stored per synapse (psplava's weights are even:
    [-256, 254] is an 8-bit mantissa times 2)."""
    vals = np.concatenate([np.asarray(w, np.int64).reshape(-1) for w in weights
                           if w is not None and np.size(w)] or [np.zeros(1, np.int64)])
    nz = vals[vals != 0]
    if not nz.size:
        return 1
    shift = 0
    while np.all(nz % (2 << shift) == 0):
        shift += 1
    m = vals >> shift
    bits = 1
    while m.min() < -(1 << (bits - 1)) or m.max() > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


class Edge(NamedTuple):
    """One synaptic projection into a layer (its own synapse, or one skip)."""

    src: int               # sending file layer index (0: the input)
    dst: int               # receiving file layer index
    fanout: np.ndarray     # outgoing synapses of each sending neuron (flat, (C, H, W))
    synapses: int
    fan_in: int            # per receiving neuron, maximum


def _source(layers: list[NetLayer], i: int) -> int:
    """The layer whose output layer i's own synapse reads (flatten layers skipped)."""
    src = i - 1
    while src > 0 and layers[src].type == "flatten":
        src -= 1
    return src


def _conv_edge(src: int, dst: int, src_shape, weight, out_shape, stride, padding) -> Edge:
    syn, fan_in, fo = conv_counts(src_shape, weight, out_shape, stride, padding)
    return Edge(src, dst, np.broadcast_to(fo, (src_shape[0], *fo.shape)).reshape(-1), syn,
                fan_in)


def edges(net: NetFile) -> list[Edge]:
    """Every synaptic projection of a file: each layer's own synapse and its skips (a
    dense-first file's first layer reads the file's input and has none)."""
    layers = net.layers
    out: list[Edge] = []
    for i, layer in enumerate(layers):
        if layer.type not in ("conv", "dense") or i == 0:
            continue
        src = _source(layers, i)
        in_shape = tuple(layers[src].shape)
        if layer.type == "conv":
            out.append(_conv_edge(src, i, in_shape, layer.weight, layer.shape, layer.stride,
                                  layer.padding))
        else:
            n_in = int(np.prod(in_shape))
            out.append(Edge(src, i, np.full(n_in, int(layer.weight.shape[0]), dtype=np.int64),
                            int(layer.weight.size), int(layer.weight.shape[1])))
        for skip in layer.skips:
            s = skip.source
            s_shape = tuple(layers[s].shape)
            if skip.mode is SkipMode.MEMBRANE:   # one relay connection per neuron
                n = int(np.prod(s_shape))
                out.append(Edge(s, i, np.ones(n, dtype=np.int64), n, 1))
            else:
                out.append(_conv_edge(s, i, s_shape, skip.weight, layer.shape,
                                      skip.stride, skip.padding))
    return out


def fanout_maps(net: NetFile, proj: list[Edge] | None = None) -> dict[int, np.ndarray]:
    """Per file layer index: outgoing synapses of each of its neurons, summed over every
    projection it sends (``proj``: :func:`edges` of the file, if at hand)."""
    out: dict[int, np.ndarray] = {}
    for e in edges(net) if proj is None else proj:
        out[e.src] = out.get(e.src, 0) + e.fanout
    return out


def plan(net: NetFile, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resource plan of a file (see the module docstring for the conventions)."""
    lim = {**LOIHI2, **(limits or {})}
    layers = net.layers
    proj = edges(net)
    fans = fanout_maps(net, proj)
    rows: list[LayerPlan] = []
    for i, layer in enumerate(layers):
        if layer.type not in ("conv", "dense"):
            continue
        n = _neuron_count(layer)
        into = [e for e in proj if e.dst == i]
        if into:
            syn, fan_in = sum(e.synapses for e in into), sum(e.fan_in for e in into)
        else:   # a dense-first file's first layer: its inputs are the file's input
            syn, fan_in = int(layer.weight.size), int(layer.weight.shape[1])
        weights = [layer.weight] + [k.weight for k in layer.skips if k.mode is SkipMode.CONV]
        kernel = sum(int(w.size) for w in weights)
        bits = _weight_bits(weights)
        mem = int(math.ceil(syn * bits / 8))
        cores = max(1, math.ceil(n / lim["neurons_per_core"]),
                    math.ceil(mem / lim["synaptic_memory_bytes"]))
        fo = fans.get(i)
        rows.append(LayerPlan(
            index=i, type=layer.type, neuron=layer.model.type_name, neurons=n, synapses=syn,
            fan_in=fan_in,
            fan_out=int(fo.max()) if fo is not None and fo.size else 0, weight_bits=bits,
            synaptic_memory_bytes=mem, kernel_memory_bytes=int(math.ceil(kernel * bits / 8)),
            cores=cores,
            needs_microcode=layer.model.needs_microcode or layer.dynamic_threshold is not None
            or bool(layer.skips)))
    total_cores = sum(r.cores for r in rows)
    neurons = sum(r.neurons for r in rows)
    synapses = sum(r.synapses for r in rows)
    chips = max(1, math.ceil(total_cores / lim["cores_per_chip"]),
                math.ceil(neurons / lim["neurons_per_chip"]),
                math.ceil(synapses / lim["synapses_per_chip"]))
    return {"file": net.path, "layers": [r.as_dict() for r in rows],
            "input_neurons": int(np.prod(layers[0].shape)) if layers[0].type == "input"
            else int(layers[0].weight.shape[1]),
            "neurons": neurons, "synapses": synapses,
            "synaptic_memory_bytes": sum(r.synaptic_memory_bytes for r in rows),
            "cores": total_cores, "chips": chips, "fits_one_chip": chips == 1,
            "fits_kapoho_point": chips <= lim["chips_per_kapoho_point"],
            "needs_microcode": [r.index for r in rows if r.needs_microcode],
            "limits": lim}


def activity(net: NetFile, xs: np.ndarray) -> dict[str, Any]:
    """Messages and synaptic operations per sample per layer for inputs ``xs`` (T, N, ...)
    (the reference engine's layout), counted from the bit-exact reference engine.

    A message is what a neuron sends in a step: a spike for CUBA, for SRM its PSP, which is
    graded and sent in every step it is non-zero (so SRM sends far more messages than it
    spikes).  A synaptic operation is one message arriving at one synapse: messages x the
    sender's fan-out."""
    outs = run_fixed(net, xs)
    layers = [l for l in net.layers if l.type in ("conv", "dense")]
    outs = outs[len(outs) - len(layers):]   # a file's input neuron (lava-dl's) comes first
    n = xs.shape[1]
    sends_psps = all(isinstance(l.model, srm.SRM) for l in layers)
    # senders: the input (index 0) and every neuron layer, in (C, H, W) flat order
    senders = [(0, xs)] + [(l.index, o) for l, o in zip(layers, outs)]
    rows = []
    incoming: dict[int, float] = {}
    proj = edges(net)
    sending = {e.src for e in proj}
    for idx, s in senders:
        flat = s.transpose(0, 1, 4, 2, 3) if s.ndim == 5 else s
        flat = flat.reshape(s.shape[0], n, -1)
        spikes = int((flat != 0).sum())
        if sends_psps and idx in sending:
            consumer = next(l for l in layers if l.index > idx)
            msgs = srm.psp(torch.from_numpy(flat != 0), consumer.hardware.ps_decay)
            active = (msgs != 0).numpy()
        else:
            active = flat != 0
        per_neuron = active.sum(axis=(0, 1))
        synops = 0
        for e in proj:
            if e.src == idx:
                k = int((per_neuron * e.fanout).sum())
                synops += k
                incoming[e.dst] = incoming.get(e.dst, 0) + k / n
        rows.append({"index": idx, "spikes": spikes / n, "messages": int(active.sum()) / n,
                     "synops": synops / n})
    return {"samples": n, "steps": int(xs.shape[0]), "per_layer": rows,
            "incoming_synops": incoming, "outputs": outs}


def estimate(p: dict[str, Any], act: dict[str, Any], energy: dict[str, float] | None = None
             ) -> dict[str, Any]:
    """Energy and latency per sample from a plan and measured activity, beside the MACs
    of the equal-size non-spiking network: one pass over one frame (one MAC per synapse),
    and one pass per time step (what running it on the same T-step stream costs)."""
    e = {**ENERGY, **(energy or {})}
    steps = act["steps"]
    synops = sum(r["synops"] for r in act["per_layer"])
    updates = p["neurons"] * steps
    energy_j = (synops * e["synop_pj"] + updates * e["neuron_update_pj"]) * 1e-12
    # latency: per step the busiest core; a layer's synops spread evenly over its cores
    per_core_ns = []
    for lp in p["layers"]:
        incoming = act["incoming_synops"].get(lp["index"], 0.0)
        per_core_ns.append((lp["neurons"] / lp["cores"]) * e["neuron_update_ns"]
                           + incoming / lp["cores"] / steps * e["synop_ns"])
    step_ns = max(per_core_ns) if per_core_ns else 0.0
    macs = p["synapses"]
    return {"synops_per_sample": synops, "neuron_updates_per_sample": updates,
            "energy_uj_per_sample": round(energy_j * 1e6, 3),
            "latency_ms_per_sample": round(step_ns * steps * 1e-6, 4),
            "step_us": round(step_ns * 1e-3, 3),
            "ann_macs_per_sample": macs,
            "ann_macs_per_sample_every_step": macs * steps,
            "ann_energy_uj_fp32": round(macs * e["mac_fp32_pj"] * 1e-6, 3),
            "ann_energy_uj_int8": round(macs * e["mac_int8_pj"] * 1e-6, 3),
            "figures": e}
