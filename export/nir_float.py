"""A NIR graph's own float semantics, stepped at ``dt``: the reference that ``psplava
import`` measures its fixed-point file against (issue 20).

NIR (``nir`` 1.0) writes neurons as ODEs in continuous time and carries no step.  This
module integrates them with forward Euler at the step ``dt`` the caller chooses, in the
order the exporting frameworks (snnTorch, Norse's IAF) step them -- the synaptic current
first, then the voltage with the *new* current, then the threshold and the reset -- and
treats every edge as instantaneous (a spike reaches the next layer in the same step):

========  ======================================================================
node      one step (``x``: the node's input, the sum over its incoming edges)
========  ======================================================================
IF        ``v += dt r x``;  ``z = v > v_threshold``;  ``v = v_reset`` where z
LIF       ``v += dt / tau (v_leak - v + r x)``; threshold and reset as IF
CubaLIF   ``i += dt / tau_syn (w_in x - i)``;  ``v += dt / tau_mem (v_leak - v + r i)``;
          threshold and reset as IF (only ``v`` resets)
LI        as LIF without threshold: the output is ``v``
CubaLI    as CubaLIF without threshold: the output is ``v``
Delay     ``x`` of ``round(delay / dt)`` steps before (per neuron)
others    stateless: Conv2d, Linear, Affine, Scale, Flatten, SumPool2d, AvgPool2d
========  ======================================================================

Tensors carry a batch axis after time: (T, N, *shape) with NIR's shapes (C, H, W) or
(F,).  The stateless nodes are also what :mod:`psplava.export.nir_import` pushes probes
through to build each file synapse, so the file and this reference share NIR's own
definition of every linear node (``torch.nn.functional`` on float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from psplava.errors import PsplavaError


class NirGraphError(PsplavaError):
    """A NIR graph is malformed, or has something psplava cannot run or map."""


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _pair(v: Any) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).reshape(-1)
    return (int(a[0]), int(a[-1]))


def _flatten(node, x: torch.Tensor) -> torch.Tensor:
    """NIR's dims count without the batch axis: non-negative ones shift by one."""
    start, end = int(node.start_dim), int(node.end_dim)
    return torch.flatten(x, start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


def _conv2d(node, x: torch.Tensor) -> torch.Tensor:
    pad = node.padding
    if isinstance(pad, str):
        padding: Any = pad
    else:
        padding = _pair(pad)
    bias = None if node.bias is None else _t(node.bias).reshape(-1)
    return F.conv2d(x, _t(node.weight), bias, stride=_pair(node.stride), padding=padding,
                    dilation=_pair(node.dilation), groups=int(node.groups))


def _sum_pool(node, x: torch.Tensor) -> torch.Tensor:
    k = _pair(node.kernel_size)
    return F.avg_pool2d(x, k, _pair(node.stride), _pair(node.padding),
                        count_include_pad=True) * (k[0] * k[1])


def _avg_pool(node, x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, _pair(node.kernel_size), _pair(node.stride), _pair(node.padding),
                        count_include_pad=True)


def _affine(node, x: torch.Tensor) -> torch.Tensor:
    return x @ _t(node.weight).T + _t(node.bias)


#: NIR's stateless nodes by type name: ``f(node, x)`` on a batch (N, *shape), float64
STATELESS: dict[str, Callable[[Any, torch.Tensor], torch.Tensor]] = {
    "Conv2d": _conv2d,
    "Linear": lambda node, x: x @ _t(node.weight).T,
    "Affine": _affine,
    "Scale": lambda node, x: x * _t(node.scale),
    "Flatten": _flatten,
    "SumPool2d": _sum_pool,
    "AvgPool2d": _avg_pool,
}

#: NIR's neuron nodes this simulator (and the importer) know; ``LI``/``CubaLI`` output v
SPIKING = ("IF", "LIF", "CubaLIF")
READOUT = ("LI", "CubaLI")
NEURONS = SPIKING + READOUT


@dataclass
class _NeuronState:
    v: torch.Tensor | None = None
    i: torch.Tensor | None = None


def neuron_step(node, x: torch.Tensor, st: _NeuronState, dt: float) -> torch.Tensor:
    """One Euler step of a NIR neuron node (the table of the module docstring)."""
    kind = type(node).__name__
    if st.v is None:
        st.v = torch.zeros_like(x)
        st.i = torch.zeros_like(x)
    if kind == "IF":
        st.v = st.v + dt * _t(node.r) * x
    elif kind in ("LIF", "LI"):
        st.v = st.v + dt / _t(node.tau) * (_t(node.v_leak) - st.v + _t(node.r) * x)
    else:  # CubaLIF, CubaLI
        st.i = st.i + dt / _t(node.tau_syn) * (_t(node.w_in) * x - st.i)
        st.v = st.v + dt / _t(node.tau_mem) * (_t(node.v_leak) - st.v + _t(node.r) * st.i)
    if kind in READOUT:
        return st.v
    z = st.v > _t(node.v_threshold)
    st.v = torch.where(z, _t(node.v_reset).expand_as(st.v), st.v)
    return z.to(x.dtype)


def topological_order(graph) -> list[str]:
    """Node names, every node after all of its inputs; a cycle (a recurrent subgraph) is
    refused by name."""
    preds = predecessors(graph)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise NirGraphError(f"node {name!r}: recurrent connection {' -> '.join(cycle)}; "
                                "psplava imports feed-forward graphs (netx's dense_rec is "
                                "not built)")
        state[name] = 1
        for p in preds.get(name, []):
            visit(p, path + [name])
        state[name] = 2
        order.append(name)

    for name in graph.nodes:
        visit(name, [])
    return order


def predecessors(graph) -> dict[str, list[str]]:
    preds: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise NirGraphError(f"edge ({a!r}, {b!r}): no node named {end!r}")
        preds[b].append(a)
    return preds


def _the_node(graph, kind: str) -> str:
    """The name of the graph's one node of type ``kind`` (refused unless exactly one)."""
    names = [n for n, node in graph.nodes.items() if type(node).__name__ == kind]
    if len(names) != 1:
        raise NirGraphError(f"the graph has {len(names)} {kind} nodes; psplava imports "
                            "graphs with one")
    return names[0]


def input_node(graph) -> str:
    return _the_node(graph, "Input")


def output_node(graph) -> str:
    return _the_node(graph, "Output")


def input_shape(graph) -> tuple[int, ...]:
    node = graph.nodes[input_node(graph)]
    shape = tuple(int(v) for v in np.asarray(list(node.input_type.values())[0]).reshape(-1))
    if not shape or min(shape) < 1:
        raise NirGraphError(f"Input node: shape {shape} is not a shape")
    return shape


class FloatGraph:
    """A NIR graph run in float64 with forward Euler at ``dt`` (seconds, or the graph's
    own time unit)."""

    def __init__(self, graph, dt: float) -> None:
        self.graph = graph
        self.dt = float(dt)
        self._shapes_only = False
        self.order = topological_order(graph)
        self.preds = predecessors(graph)
        for name in self.order:
            kind = type(graph.nodes[name]).__name__
            if kind not in STATELESS and kind not in NEURONS and kind not in (
                    "Input", "Output", "Delay"):
                raise NirGraphError(f"node {name!r}: {kind} is not simulated by psplava")

    def run(self, x: torch.Tensor, record: bool = True) -> dict[str, torch.Tensor]:
        """Outputs (T, N, *shape) of every node (``record``) or of the Output node, for
        input ``x`` (T, N, *input shape)."""
        x = x.to(torch.float64)
        T = x.shape[0]
        states = {n: _NeuronState() for n in self.order}
        delays: dict[str, list[torch.Tensor]] = {}
        outs: dict[str, list[torch.Tensor]] = {n: [] for n in self.order}
        out_name = output_node(self.graph)
        for t in range(T):
            cur: dict[str, torch.Tensor] = {}
            for name in self.order:
                node = self.graph.nodes[name]
                kind = type(node).__name__
                if kind == "Input":
                    y = x[t]
                else:
                    ins = [cur[p] for p in self.preds[name]]
                    if not ins:
                        raise NirGraphError(f"node {name!r} has no input")
                    y = ins[0]
                    for extra in ins[1:]:
                        y = y + extra
                    if kind in STATELESS:
                        y = STATELESS[kind](node, y)
                    elif kind in NEURONS:
                        y = neuron_step(node, y, states[name], self.dt)
                    elif kind == "Delay":
                        y = self._delay(name, node, y, delays)
                cur[name] = y
                if record or name == out_name:
                    outs[name].append(y)
        return {n: torch.stack(v) for n, v in outs.items() if v}

    def _delay(self, name: str, node, y: torch.Tensor,
               delays: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        if self._shapes_only:
            return y
        steps = delay_steps(node, self.dt)
        buf = delays.setdefault(name, [])
        buf.append(y)
        d = torch.from_numpy(np.broadcast_to(steps, y.shape[1:]).copy())
        out = torch.zeros_like(y)
        for k in range(int(d.max()) + 1 if d.numel() else 1):
            if len(buf) > k:
                out = torch.where(d == k, buf[-1 - k], out)
        if len(buf) > int(d.max()) + 1:
            buf.pop(0)
        return out

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each node's output shape (without batch), from one zero step (whatever dt)."""
        x = torch.zeros((1, 1, *input_shape(self.graph)), dtype=torch.float64)
        self._shapes_only = True
        try:
            return {n: tuple(o.shape[2:]) for n, o in self.run(x).items()}
        finally:
            self._shapes_only = False


def delay_steps(node, dt: float) -> np.ndarray:
    """A Delay node's delays in steps of ``dt`` (refused unless whole steps, within 1e-6)."""
    d = np.asarray(node.delay, dtype=np.float64) / dt
    if not np.all(np.isfinite(d)) or d.min(initial=0) < 0 or \
            not np.allclose(d, np.rint(d), atol=1e-6):
        raise NirGraphError(f"Delay node: delays {np.unique(np.asarray(node.delay))[:4]} are "
                            f"not whole steps of dt = {dt:g}")
    return np.rint(d).astype(np.int64)
