"""``psplava import MODEL.nir``: any framework's NIR graph as an exact fixed-point ``.net``.

A feed-forward NIR graph is a chain of *segments*: linear nodes (Conv2d, Linear, Affine,
Scale, Flatten, SumPool2d, AvgPool2d, Delay) ending in one neuron node (IF, LIF,
CubaLIF).  Each segment becomes one stock netx layer -- a conv or dense synapse into CUBA
neurons, what Lava's ``PyLifModelBitAcc`` and Loihi 2 run -- so the file runs in both
engines, plans with ``deploy --plan`` and needs no psplava extension:

- **The synapse** is built from the segment's own float semantics
  (:data:`psplava.export.nir_float.STATELESS`), not from a rewrite of each node: a dense
  synapse is the segment applied to the identity basis (exact, any mix of Flatten, pools,
  Linear, Affine, Scale); a conv synapse has the stride, kernel and padding that the
  segment's convs and pools compose to, its kernel read off by probing one output
  position with unit inputs, and is then checked against the segment on random inputs
  (refused when they differ: a chain with no single-conv form).  An Affine's or Conv's
  bias, the segment applied to zero, becomes the neurons' bias.  A Delay at the start or
  end of a dense segment becomes netx's per-input or per-output axonal ``delay``.
- **The neuron** is NIR's ODE stepped by forward Euler at ``dt``
  (:mod:`psplava.export.nir_float`), which is exactly Loihi's CUBA form up to rounding:
  ``u <- (1 - iDecay/4096) u + a``, ``v <- (1 - vDecay/4096) v + u + bias``, spike when
  ``v > vTh``, then ``v = 0``, with

  ========  ============  =================  ==============================  ===========
  node      iDecay/4096   vDecay/4096        gain folded into the weights    bias
  ========  ============  =================  ==============================  ===========
  IF        1             0                  ``dt r``                        ``g b``
  LIF       1             ``dt / tau``       ``dt r / tau``                  ``g b + dt v_leak / tau``
  CubaLIF   ``dt/tau_syn``  ``dt/tau_mem``   ``(dt w_in/tau_syn)(dt r/tau_mem)``  ``dt v_leak / tau_mem``
  ========  ============  =================  ==============================  ===========

  (``iDecay = 4096``: the current holds one step's input and nothing more.)  Per-neuron
  ``r`` and ``w_in`` fold into the weights' rows (per channel for a conv); time constants,
  thresholds and resets must be one value per layer.
- **Fixed point** uses the exporter's own rules (:func:`psplava.loihi.choose_scale`,
  :func:`~psplava.loihi.quantize_weight`, :func:`~psplava.loihi.quantize_threshold`,
  decays ``round(4096 dt / tau)``): a per-layer power-of-two scale ``k``, weights
  ``w k`` rounded to even integers in [-256, 254], ``vThMant = round(theta k)``, ``bias =
  round(b k)``.  A layer whose weights and threshold already are such integers (psplava's
  own NIR export) keeps them (``k = 1``), so the round trip is exact.

Branches that leave one layer and sum into the next neuron are one synapse too (their sum,
built and checked the same way).  Refused by name: recurrent connections, branches from
two layers (a residual skip: skip inputs exist for SRM layers only),
node types with no Loihi form, ``v_reset != 0`` (Loihi resets to 0; NIR 1.0 has no
reset-by-subtraction, and a graph that meant it says ``v_reset = 0`` all the same), time
constants, thresholds or resets that vary per neuron, ``dt > tau``, a bias into a
CubaLIF (it would enter the current, which Loihi's bias cannot), LI/CubaLI read-outs
(Loihi's CUBA layers send spikes; a voltage read-out needs probes the engines lack).

Timing: Lava's synapses deliver one step late, so layer ``l`` (from 0) of the file lags
the float graph by ``l + 1`` steps (:func:`psplava.neurons.network_latency`); ``sim`` pads its
inputs with them.  A bias (or ``v_leak``) is the one thing that does not lag: Lava's
neurons add it from step 0, so layer ``l`` integrates ``l + 1`` more steps of it than the
float graph has at the aligned step (for an IF, a constant offset of ``(l + 1) b``).
Graphs without biases map exactly up to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from psplava import loihi
from psplava.export.nir_float import (NEURONS, READOUT, STATELESS, FloatGraph, NirGraphError,
                                      delay_steps, input_node, input_shape, output_node,
                                      predecessors, topological_order)
from psplava.netfile import NetLayer, NeuronGroup
from psplava.neurons import neuron_model
from psplava.neurons.cuba import CubaHardware

#: the neuron every imported layer maps onto (Loihi 2's stock CUBA)
CUBA = neuron_model("CUBA")

#: largest dense synapse (inputs x outputs) built from the identity basis
MAX_DENSE = 1 << 26
#: relative difference above which a segment has no single-conv form
CONV_CHECK_RTOL = 1e-9
#: largest |bias| (in weight units): ``bias << 6`` must stay within Loihi's 24-bit state
BIAS_LIMIT = (1 << (loihi.STATE_BITS - 1 - loihi.CUBA_SHIFT)) - 1

#: what each framework's NIR exporter means by its time constants (``--dt``)
FRAMEWORK_DT = {
    "snntorch": (1e-4, "snnTorch's export_to_nir writes tau = dt / (1 - beta) with dt = 1e-4 s"),
    "norse": (1.0, "Norse's IAF ignores dt (v += input): its IF graphs mean dt = 1"),
    "psplava": (1e-4, "psplava's export --format nir writes one Loihi step as dt = 1e-4 s"),
}


@dataclass
class Segment:
    """Linear nodes (in topological order) from one source -- a neuron node or the Input --
    into one neuron node."""

    linear: list[str]
    neuron: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    delays_in: np.ndarray | None = None
    delays_out: np.ndarray | None = None
    nodes: list[Any] = field(default_factory=list)
    source: str = ""
    preds: dict[str, list[str]] = field(default_factory=dict)


def read_graph(path: str):
    """A NIR file as a ``nir.NIRGraph`` (nir's type check off when it fails on the file:
    snnTorch 1.0's conv graphs carry scalar neuron types it rejects; psplava infers every
    shape itself)."""
    try:
        return nir.read(str(path))
    except Exception:  # noqa: BLE001 - retried without nir's type inference
        pass
    try:
        return nir.read(str(path), type_check=False)
    except FileNotFoundError:
        raise NirGraphError(f"{path}: file not found") from None
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        raise NirGraphError(f"{path}: not a readable NIR file ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def framework_of(graph) -> str | None:
    """The exporting framework as the graph's metadata names it (``None`` if unsaid)."""
    meta = getattr(graph, "metadata", None) or {}
    if not isinstance(meta, dict):
        return None
    for key in ("producer", "framework", "source", "model_name"):
        v = meta.get(key)
        if isinstance(v, (bytes, np.bytes_)):
            v = v.decode()
        if isinstance(v, str) and v.strip().lower() in FRAMEWORK_DT:
            return v.strip().lower()
    return None


def metadata_dt(graph) -> float | None:
    meta = getattr(graph, "metadata", None) or {}
    try:
        v = float(np.asarray(meta.get("dt")).reshape(-1)[0]) if "dt" in meta else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and math.isfinite(v) and v > 0 else None


def segments(graph) -> tuple[list[Segment], dict[str, tuple[int, ...]]]:
    """The graph's segments in order, and every node's output shape.  A segment is every
    linear node between one neuron node (or the Input) and the next: a chain, or branches
    from that one source that sum into the next neuron (one synapse computes their sum).
    Refused: branches from different layers (skip inputs exist for SRM layers only), a
    layer whose spikes feed two layers, and what is not linear or a neuron."""
    order = topological_order(graph)
    preds = predecessors(graph)
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succs[a].append(b)
    kinds = {n: type(graph.nodes[n]).__name__ for n in graph.nodes}
    for name in order:
        kind = kinds[name]
        if kind not in STATELESS and kind not in NEURONS and kind not in ("Input", "Output",
                                                                          "Delay"):
            raise NirGraphError(f"node {name!r}: {kind} has no Loihi form in psplava (nodes: "
                                f"{sorted([*STATELESS, *NEURONS, 'Delay'])})")
        if kind in READOUT:
            raise NirGraphError(f"node {name!r}: {kind} is a voltage read-out; Loihi's CUBA "
                                "layers send spikes, and the engines record spikes only "
                                "(replace it by a spiking LIF read-out)")
    shapes = FloatGraph(graph, 1.0).shapes()
    start, end = input_node(graph), output_node(graph)
    neurons = [n for n in order if kinds[n] in NEURONS]
    if not neurons:
        raise NirGraphError("the graph has no neuron nodes")
    segs: list[Segment] = []
    expected_source = start
    for name in neurons + [end]:
        region, sources = _linear_region(name, preds, kinds, start)
        if name == end:
            if region:
                raise NirGraphError(f"nodes {region} after the last neuron: a linear map with "
                                    "no neurons after it has no Loihi form")
            if sources != {expected_source}:
                raise NirGraphError(f"the Output node reads {sorted(sources)}; psplava imports "
                                    "graphs whose last neuron node is the output")
            break
        if len(sources) != 1:
            raise NirGraphError(f"node {name!r}: branches from {sorted(sources)} sum here; skip "
                                "inputs exist in the format for SRM layers only, so psplava "
                                "imports graphs whose branches leave one layer")
        (source,) = sources
        if source != expected_source:
            raise NirGraphError(f"node {name!r} reads {source!r}, whose spikes also feed "
                                f"another layer ({expected_source!r} comes first); netx "
                                "layers form one chain")
        for node in region:   # a linear node of this synapse feeds nothing else
            outside = [b for b in succs[node] if b != name and b not in region]
            if outside:
                raise NirGraphError(f"node {node!r} also feeds {outside}; psplava imports "
                                    "graphs whose linear nodes feed one layer")
        linear = [n for n in order if n in region]
        seg = Segment(linear, name, tuple(shapes[source]) if source != start
                      else input_shape(graph), shapes[name])
        seg.nodes = [graph.nodes[n] for n in linear]
        seg.source = source
        seg.preds = {n: preds[n] for n in [*linear, name]}
        segs.append(seg)
        expected_source = name
    return segs, shapes


def _linear_region(name: str, preds: dict[str, list[str]], kinds: dict[str, str],
                   start: str) -> tuple[set[str], set[str]]:
    """The linear nodes that feed ``name`` (back to the nearest neurons or the Input), and
    those neurons (the sources)."""
    region: set[str] = set()
    sources: set[str] = set()
    todo = list(preds[name])
    while todo:
        n = todo.pop()
        if n == start or kinds[n] in NEURONS:
            sources.add(n)
        elif n not in region:
            region.add(n)
            todo.extend(preds[n])
    return region, sources


def _apply(seg: Segment, x: torch.Tensor) -> torch.Tensor:
    """The segment's linear map of a batch ``x`` (NIR's own definition of each node): a
    chain in order, branches summed where they join."""
    if not seg.linear:
        return x
    values: dict[str, torch.Tensor] = {seg.source: x}
    for name, node in zip(seg.linear, seg.nodes):
        ins = [values[p] for p in seg.preds[name]]
        y = ins[0]
        for extra in ins[1:]:
            y = y + extra
        values[name] = y if type(node).__name__ == "Delay" else \
            STATELESS[type(node).__name__](node, y)
    outs = [values[p] for p in seg.preds[seg.neuron]]
    y = outs[0]
    for extra in outs[1:]:
        y = y + extra
    return y


def _branched(seg: Segment) -> bool:
    return any(len(seg.preds[n]) > 1 for n in [*seg.linear, seg.neuron])


def _split_delays(seg: Segment, dt: float) -> None:
    """Delays at the start (per input) or end (per output) of a dense segment."""
    kinds = [type(n).__name__ for n in seg.nodes]
    if "Delay" in kinds and _branched(seg):
        raise NirGraphError(f"nodes {seg.linear}: a Delay in a branched synapse; psplava maps "
                            "delays at the start or end of a chain")
    for i, kind in enumerate(kinds):
        if kind != "Delay":
            continue
        if len(seg.out_shape) != 1:
            raise NirGraphError(f"node {seg.linear[i]!r}: axonal delays are netx's for dense "
                                "layers; this one is in a conv segment")
        steps = delay_steps(seg.nodes[i], dt)
        if i == 0:
            seg.delays_in = np.broadcast_to(steps, (int(np.prod(seg.in_shape)),)).copy()
        elif i == len(kinds) - 1:
            seg.delays_out = np.broadcast_to(steps, seg.out_shape).copy()
        else:
            raise NirGraphError(f"node {seg.linear[i]!r}: a Delay between linear nodes; "
                                "psplava maps delays at the start or end of a dense segment")
    if seg.delays_in is not None and seg.delays_out is not None:
        raise NirGraphError(f"nodes {seg.linear}: delays both before and after a dense "
                            "synapse")


def _dense(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    n_in, n_out = int(np.prod(seg.in_shape)), int(np.prod(seg.out_shape))
    if n_in * n_out > MAX_DENSE:
        raise NirGraphError(f"node {seg.neuron!r}: a dense synapse of {n_in} x {n_out} "
                            f"exceeds {MAX_DENSE:,} weights")
    zero = _apply(seg, torch.zeros((1, *seg.in_shape), dtype=torch.float64)).reshape(-1)
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *seg.in_shape)
    w = (_apply(seg, eye).reshape(n_in, -1) - zero).T
    return w.numpy(), zero.numpy()


def _paths(seg: Segment) -> list[list[str]]:
    """Every path of linear nodes from the segment's source to its neuron."""
    memo: dict[str, list[list[str]]] = {}

    def into(name: str) -> list[list[str]]:
        if name == seg.source:
            return [[]]
        if name not in memo:
            memo[name] = [path + [name] for p in seg.preds[name] for path in into(p)]
        return memo[name]

    out = [path for p in seg.preds[seg.neuron] for path in into(p)]
    if len(out) > 64:
        raise NirGraphError(f"node {seg.neuron!r}: {len(out)} paths into it; psplava maps "
                            "at most 64 branches into one synapse")
    return out


def _conv_geometry(seg: Segment) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding) per axis that the segment's convs and pools compose to:
    per path, then the window that covers every path's (one stride for all)."""
    geoms = [_path_geometry(seg, path) for path in _paths(seg)]
    strides = {g[1] for g in geoms}
    if len(strides) != 1:
        raise NirGraphError(f"node {seg.neuron!r}: its branches have strides {sorted(strides)}; "
                            "one conv synapse has one stride")
    pad = tuple(max(g[2][d] for g in geoms) for d in range(2))
    kernel = tuple(max(g[0][d] - g[2][d] for g in geoms) + pad[d] for d in range(2))
    return kernel, geoms[0][1], pad


def _path_geometry(seg: Segment, path: list[str]
                   ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    k, s, p = [1, 1], [1, 1], [0, 0]
    nodes = dict(zip(seg.linear, seg.nodes))
    for name, node in ((n, nodes[n]) for n in path):
        kind = type(node).__name__
        if kind == "Conv2d":
            kk = node.weight.shape[-2:]
            ss = np.atleast_1d(node.stride).astype(int)
            if isinstance(node.padding, str):
                raise NirGraphError(f"node {name!r}: padding {node.padding!r}; give numbers")
            pp = np.atleast_1d(node.padding).astype(int)
            if set(np.atleast_1d(node.dilation).astype(int).tolist()) != {1}:
                raise NirGraphError(f"node {name!r}: dilation {node.dilation}; netx's conv "
                                    "layers have none")
        elif kind in ("SumPool2d", "AvgPool2d"):
            kk = np.atleast_1d(node.kernel_size).astype(int)
            ss = np.atleast_1d(node.stride).astype(int)
            pp = np.atleast_1d(node.padding).astype(int)
        elif kind == "Scale":
            continue
        else:
            raise NirGraphError(f"node {name!r}: {kind} between convolutions; a conv layer's "
                                "synapse can hold convs, pools and scales")
        for d in range(2):
            kd, sd, pd = int(kk[d if len(kk) > 1 else 0]), int(ss[d if len(ss) > 1 else 0]), \
                int(pp[d if len(pp) > 1 else 0])
            k[d] += (kd - 1) * s[d]
            p[d] += pd * s[d]
            s[d] *= sd
    return (k[0], k[1]), (s[0], s[1]), (p[0], p[1])


def _conv(seg: Segment) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    if len(seg.in_shape) != 3:
        raise NirGraphError(f"node {seg.neuron!r}: a conv layer needs (C, H, W) input, got "
                            f"{seg.in_shape}")
    (kh, kw), stride, pad = _conv_geometry(seg)
    c, h, w = seg.in_shape
    oc, oh, ow = seg.out_shape
    zero = _apply(seg, torch.zeros((1, c, h, w), dtype=torch.float64))[0]
    # an output whose receptive field lies inside the input (padding plays no part there)
    y0 = min(max(math.ceil(pad[0] / stride[0]), 0), oh - 1)
    x0 = min(max(math.ceil(pad[1] / stride[1]), 0), ow - 1)
    probes = torch.zeros((c, kh, kw, c, h, w), dtype=torch.float64)
    for dy in range(kh):
        for dx in range(kw):
            yy, xx = y0 * stride[0] - pad[0] + dy, x0 * stride[1] - pad[1] + dx
            if 0 <= yy < h and 0 <= xx < w:
                for ci in range(c):
                    probes[ci, dy, dx, ci, yy, xx] = 1.0
    resp = _apply(seg, probes.reshape(-1, c, h, w))[:, :, y0, x0] - zero[:, y0, x0]
    weight = resp.reshape(c, kh, kw, oc).permute(3, 0, 1, 2).contiguous()
    bias = zero.reshape(oc, -1)
    if not torch.allclose(bias, bias[:, :1].expand_as(bias), rtol=1e-12, atol=1e-12):
        raise NirGraphError(f"node {seg.neuron!r}: the synapse's constant term varies within "
                            "a channel (a bias through padding); a conv's bias is per channel")
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((4, c, h, w), generator=gen, dtype=torch.float64) < 0.3).double() * \
        torch.randint(1, 3, (4, c, h, w), generator=gen).double()
    want = _apply(seg, x)
    got = torch.nn.functional.conv2d(x, weight, bias[:, 0], stride=stride, padding=pad)
    if got.shape != want.shape or not torch.allclose(
            got, want, rtol=CONV_CHECK_RTOL, atol=CONV_CHECK_RTOL * float(want.abs().max() + 1)):
        raise NirGraphError(f"nodes {seg.linear}: no single conv (kernel {(kh, kw)}, stride "
                            f"{stride}, padding {pad}) computes this chain; psplava cannot "
                            "map it onto one netx conv layer")
    return weight.numpy(), bias[:, 0].numpy(), stride, pad


def _one_value(name: str, node, attr: str, shape: tuple[int, ...]) -> float:
    a = np.asarray(getattr(node, attr), dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise NirGraphError(f"node {name!r}: {attr} must be finite numbers, got {a.tolist()}")
    if not np.allclose(a, a.reshape(-1)[0], rtol=1e-6, atol=0):
        raise NirGraphError(f"node {name!r}: {attr} varies per neuron ({a.min():g} .. "
                            f"{a.max():g}); Loihi holds one {attr} per layer")
    return float(a.reshape(-1)[0])


def _per_output(name: str, node, attr: str, shape: tuple[int, ...]) -> np.ndarray:
    """A parameter per output neuron (dense) or per channel (conv), as a vector."""
    a = np.asarray(getattr(node, attr), dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise NirGraphError(f"node {name!r}: {attr} holds NaN or infinite values")
    try:
        full = np.broadcast_to(a.reshape(a.shape if a.size > 1 else ()), shape)
    except ValueError:
        raise NirGraphError(f"node {name!r}: {attr} of shape {a.shape} does not fit the "
                            f"layer's {shape}") from None
    if len(shape) == 3:
        per_c = full.reshape(shape[0], -1)
        if not np.allclose(per_c, per_c[:, :1]):
            raise NirGraphError(f"node {name!r}: {attr} varies within a channel; a conv "
                                "layer's neurons share it per channel")
        return per_c[:, 0].copy()
    return full.reshape(-1).copy()


def neuron_constants(name: str, node, shape: tuple[int, ...], dt: float
                     ) -> dict[str, Any]:
    """Loihi's CUBA constants of a NIR neuron at step ``dt`` (the table of the module
    docstring): decays as fractions per step, the gain folded into the weights and the
    bias added per step (per output neuron or channel), the threshold."""
    kind = type(node).__name__
    reset = np.asarray(node.v_reset, dtype=np.float64)
    if reset.size and np.any(reset != 0):
        raise NirGraphError(f"node {name!r}: v_reset = {np.unique(reset)[:4].tolist()}; Loihi's "
                            "CUBA neurons reset to 0 (and cannot reset by subtraction)")
    theta = _one_value(name, node, "v_threshold", shape)
    if theta <= 0:
        raise NirGraphError(f"node {name!r}: v_threshold {theta:g} must be positive")
    n_out = shape[0] if len(shape) == 3 else int(np.prod(shape))
    leak = np.zeros(n_out)
    if kind == "IF":
        i_frac, v_frac = 1.0, 0.0
        gain = dt * _per_output(name, node, "r", shape)
    elif kind == "LIF":
        tau = _one_value(name, node, "tau", shape)
        _check_tau(name, "tau", tau, dt)
        i_frac, v_frac = 1.0, dt / tau
        gain = dt / tau * _per_output(name, node, "r", shape)
        leak = dt / tau * _per_output(name, node, "v_leak", shape)
    else:  # CubaLIF
        tau_syn = _one_value(name, node, "tau_syn", shape)
        tau_mem = _one_value(name, node, "tau_mem", shape)
        _check_tau(name, "tau_syn", tau_syn, dt)
        _check_tau(name, "tau_mem", tau_mem, dt)
        i_frac, v_frac = dt / tau_syn, dt / tau_mem
        gain = (dt / tau_syn * _per_output(name, node, "w_in", shape)) * \
            (dt / tau_mem * _per_output(name, node, "r", shape))
        leak = dt / tau_mem * _per_output(name, node, "v_leak", shape)
    return {"kind": kind, "i_frac": i_frac, "v_frac": v_frac, "gain": gain, "leak": leak,
            "theta": theta}


def _check_tau(name: str, attr: str, tau: float, dt: float) -> None:
    if tau <= 0:
        raise NirGraphError(f"node {name!r}: {attr} {tau:g} must be positive")
    if dt > tau * (1 + 1e-9):
        raise NirGraphError(f"node {name!r}: dt {dt:g} > {attr} {tau:g}; forward Euler would "
                            "decay by more than the state each step (check --dt)")


def _is_loihi_integer(w: np.ndarray, theta: float, bias: np.ndarray) -> bool:
    return bool(np.all(w == np.round(w / loihi.WEIGHT_STEP) * loihi.WEIGHT_STEP)
                and w.min(initial=0) >= loihi.WEIGHT_MIN and w.max(initial=0) <= loihi.WEIGHT_MAX
                and theta == round(theta) and np.all(bias == np.round(bias)))


def import_graph(graph, dt: float, k_max: float = loihi.K_MAX
                 ) -> tuple[list[NetLayer], list[dict[str, Any]]]:
    """The file's layers (:class:`psplava.netfile.NetLayer`) of a NIR graph at step ``dt``,
    and the per-layer quantization report (as ``export`` reports it)."""
    if not (math.isfinite(dt) and dt > 0):
        raise NirGraphError(f"dt must be a positive number, got {dt!r}")
    segs, _ = segments(graph)
    shape0 = segs[0].in_shape
    layers: list[NetLayer] = [NetLayer(0, "input", shape0)]
    report: list[dict[str, Any]] = []
    for seg in segs:
        _split_delays(seg, dt)
        node = graph.nodes[seg.neuron]
        c = neuron_constants(seg.neuron, node, seg.out_shape, dt)
        if len(seg.out_shape) == 3:
            w, b, stride, pad = _conv(seg)
            kind = "conv"
        elif len(seg.out_shape) == 1:
            w, b = _dense(seg)
            kind, stride, pad = "dense", (1, 1), (0, 0)
        else:
            raise NirGraphError(f"node {seg.neuron!r}: neurons of shape {seg.out_shape}; "
                                "netx layers are (C, H, W) or (F,)")
        if c["kind"] == "CubaLIF" and np.any(b != 0):
            raise NirGraphError(f"node {seg.neuron!r}: a bias into a CubaLIF enters its "
                                "current; Loihi's bias adds to the voltage (export the graph "
                                "without that bias)")
        gain = c["gain"].reshape(-1, *([1] * (w.ndim - 1)))
        w_eff = w * gain
        b_eff = b * c["gain"] + c["leak"]
        theta = c["theta"]
        if _is_loihi_integer(w_eff, theta, b_eff):
            k = 1.0
        else:
            k = loihi.choose_scale(float(np.abs(w_eff).max(initial=0)), theta,
                                   loihi.check_k_max(k_max), loihi.VTH_MANT_MAX)
        wq = loihi.quantize_weight(torch.from_numpy(w_eff * k)).numpy()
        try:
            vth = loihi.quantize_threshold(theta, k)
        except ValueError as exc:
            raise NirGraphError(f"node {seg.neuron!r}: {exc}") from None
        bias = np.rint(b_eff * k)
        if np.abs(bias).max(initial=0) > BIAS_LIMIT:
            raise NirGraphError(f"node {seg.neuron!r}: bias {np.abs(b_eff).max():g} x scale "
                                f"{k:g} exceeds Loihi's {BIAS_LIMIT}")
        i_decay = loihi.quantize_decay(1.0 - c["i_frac"])
        v_decay = loihi.quantize_decay(1.0 - c["v_frac"])
        if kind == "dense" and len(seg.in_shape) == 3:
            layers.append(NetLayer(len(layers), "flatten", (int(np.prod(seg.in_shape)),)))
        err = w_eff - wq / k
        rms_w = float(np.sqrt(np.mean(np.square(w_eff)))) if w_eff.size else 0.0
        rel = float(np.sqrt(np.mean(np.square(err)))) / rms_w if rms_w else 0.0
        max_err = float(np.abs(err).max()) if err.size else 0.0
        delay = seg.delays_in if seg.delays_in is not None else seg.delays_out
        layers.append(NetLayer(
            index=len(layers), type=kind, shape=tuple(int(v) for v in seg.out_shape),
            weight=wq.astype(np.int32), stride=stride, padding=pad,
            bias=bias.astype(np.int32) if np.any(bias != 0) else None,
            neuron=NeuronGroup(CUBA, CubaHardware(i_decay=i_decay, v_decay=v_decay,
                                                  v_th_mant=vth)),
            delay=None if delay is None else delay.astype(np.int64),
            quant={"scale": k, "rel_rms_error": rel, "max_abs_error": max_err}))
        report.append({
            "layer": len(report), "node": seg.neuron, "nir": c["kind"], "type": kind,
            "neuron": "CUBA", "scale": k, "weight_rel_rms_error": round(rel, 6),
            "weight_max_abs_error": round(max_err, 6), "threshold_mantissa": vth,
            "threshold_error": abs(vth / k - theta),
            "decay_error": max(abs(i_decay / 4096 - c["i_frac"]),
                               abs(v_decay / 4096 - c["v_frac"])),
            "nodes": [seg.neuron, *seg.linear]})
    return layers, report
