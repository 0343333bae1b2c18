"""Batched fixed-point reference engine for ``.net`` files (Loihi arithmetic).

Reads the same files as the Lava run (:func:`psplava.netfile.read_netfile`) and computes,
for a batch of samples at once and one layer at a time over all steps, what Lava's
``Loihi2SimCfg(select_tag='fixed_pt')`` computes one sample and one step at a time.  The
integer arithmetic is :mod:`psplava.loihi`'s -- the same functions the PyTorch model runs in
``loihi`` arithmetic and psplava's Lava process models call -- so this engine is that
model rebuilt from the file, with no dependency on the training code:

- synapses (conv / dense) buffer one step in Lava.  An SRM neuron sends the PSP it will have
  at the next step, which cancels that delay; CUBA layers add one step each
  (:func:`psplava.neurons.network_latency`).  Lava's conv wraps its output to 24 bits,
  dense does not.
- stock netx neurons (CUBA: Lava's ``PyLifModelBitAcc``; SDNN), each stepped by its type's
  state (:mod:`psplava.neurons`), time-major (all layers per step, as Lava does) so each
  step's tensors stay in cache.
- SRM: integer alpha PSP, refractory and threshold (:mod:`psplava.neurons.srm`), causal
  PSP-LN's dynamic threshold from the exact integer second moment of the layer's input PSP.

Tensors are (T, N, H, W, C) inside; Lava's (x, y, f) order is converted at the boundary
(:func:`lava_to_internal`, :func:`internal_to_lava`).
"""

from __future__ import annotations

import numpy as np
import torch

from psplava import loihi
from psplava.netfile import (NetFile, NetFileError, NetLayer, SkipMode, input_shape,
                             stock_netx)
from psplava.neurons import srm


def lava_to_internal(x: np.ndarray) -> np.ndarray:
    """(x, y, f, T) or (N, x, y, f, T) -> (T, N, H, W, C); (F, T) or (N, F, T) -> (T, N, F)."""
    if x.ndim in (2, 4):
        x = x[None]
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(2, 0, 1))
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


def _out_shape(layer: NetLayer) -> tuple[int, ...]:
    if layer.type == "conv":
        return (layer.shape[1], layer.shape[2], layer.shape[0])
    return (int(np.prod(layer.shape)),)


def _stock_state(layer: NetLayer, shape: tuple[int, ...], is_input: bool = False,
                 device: torch.device | str = "cpu", max_message: float = 1.0):
    """The neuron state of a stock netx layer (CUBA/LOIHI or SDNN) for ``shape``, whose
    input messages are at most ``max_message`` (1: spikes; more: event counts)."""
    bias = None if layer.bias is None or is_input else \
        torch.from_numpy(np.asarray(layer.bias, np.int64)).to(device)
    # an input layer's hardware is its type's input neuron (netfile.NeuronGroup)
    return layer.model.state(shape, layer.hardware, bias, device=device,
                             max_abs_input=None if is_input else
                             _max_input(layer) * max_message)


def _synapse(layer: NetLayer, msg: torch.Tensor, weight: np.ndarray | None = None
             ) -> torch.Tensor:
    """Integer synaptic input (T, N, ...) of integer messages (T, N, H, W, C) or (T, N, F)
    (``weight``: instead of the layer's, e.g. one delay's share of it)."""
    T, N = msg.shape[:2]
    w = np.asarray(layer.weight if weight is None else weight, np.int64)
    if layer.type == "conv":
        return _conv(msg, w, layer.stride, layer.padding)
    w = torch.from_numpy(w).to(msg.device)
    if msg.dim() == 5:  # flatten in netx's (C, H, W) order
        msg = msg.permute(0, 1, 4, 2, 3)
    z = loihi.synapse(msg.reshape(T * N, -1), w, "dense")
    return z.reshape(T, N, -1)


def internal_input_shape(net: NetFile) -> tuple[int, ...]:
    """One step of the file's input in this engine's layout: (H, W, C) or (F,)."""
    shape = input_shape(net)
    return (shape[1], shape[0], shape[2]) if len(shape) == 3 else shape


def run_fixed(net: NetFile, x: np.ndarray, device: torch.device | str = "cpu"
              ) -> list[np.ndarray]:
    """Output of every neuron layer, each (T, N, ...) bool, for input x (T, N, H, W, C) or
    (T, N, F) (:func:`psplava.netfile.input_shape`; graded integers for a file whose
    ``input`` layer has a neuron, which receives them as its ``a_in``).  ``device``: where
    the integer arithmetic runs (the same integers on any device: int64 state, exact
    synapses; see :func:`psplava.loihi.synapse`)."""
    layers = [layer for layer in net.layers if layer.type in ("conv", "dense")]
    if not layers:
        raise NetFileError(f"{net.path}: no conv or dense layers to run")
    expected = internal_input_shape(net)
    if tuple(x.shape[2:]) != expected:
        raise NetFileError(f"{net.path}: input has shape {tuple(x.shape[2:])} per step, the "
                           f"network expects {expected} ((H, W, C) or (F,))")
    in_neuron = net.layers[0] if net.layers[0].type == "input" and net.layers[0].neuron \
        else None
    if stock_netx(net, "the reference engine"):
        return _run_stock(layers, torch.from_numpy(np.array(x)).to(device), in_neuron)
    if any(layer.delay is not None for layer in layers):
        raise NetFileError(f"{net.path}: axonal delays in SRM networks are not supported")
    return _run_psp(layers, torch.from_numpy(np.asarray(x) != 0).to(device))


def _run_psp(layers: list[NetLayer], x: torch.Tensor) -> list[np.ndarray]:
    """Networks of psplava's neurons (SRM and its kind: they send alpha PSPs), layer by
    layer over all steps, each layer's neurons stepped by its type's ``run``.  A layer's
    ``skip`` inputs (format 3, residual networks) add a conv of an earlier layer's PSP, or
    that layer's synaptic input as is (kept only until its last use)."""
    spikes: dict[int, torch.Tensor] = {0: x}      # file index -> spikes (T, N, ...)
    psps: dict[int, torch.Tensor] = {}            # ... -> PSP messages a conv skip reads
    zs: dict[int, torch.Tensor] = {}
    last_use: dict[int, int] = {}
    for layer in layers:
        for skip in layer.skips:
            last_use[skip.source] = layer.index
    prev = 0
    outs = []
    for layer in layers:
        shape = _out_shape(layer)
        hw = layer.hardware
        y = srm.psp(spikes[prev], hw.ps_decay)
        if prev in last_use:   # a later conv skip reads the same PSP (one psDecay: the reader)
            psps[prev] = y
        z = _synapse(layer, y)
        for skip in layer.skips:
            src = skip.source
            if skip.mode is SkipMode.MEMBRANE:
                z = z + zs[src]
            else:
                z = z + _conv(psps[src], skip.weight, skip.stride, skip.padding)
        if layer.index in last_use:
            zs[layer.index] = z
        if layer.bias is not None:
            z = z + torch.from_numpy(np.asarray(layer.bias, np.int64)).to(z.device) \
                * loihi.PSP_UNIT
        gain = None
        if layer.dynamic_threshold is not None:
            dyn = layer.dynamic_threshold
            gain = dyn.gain(dyn.causal_m2(y, hw.tau_s))
        s = layer.model.run(z, hw, gain)
        s = s.reshape(s.shape[0], s.shape[1], *shape)
        spikes[layer.index] = s
        for store in (spikes, psps, zs):   # drop what no later layer reads
            for k in [k for k in store if k != layer.index and last_use.get(k, -1) <= layer.index]:
                store.pop(k)
        prev = layer.index
        outs.append(s.cpu().numpy())
    return outs


def _conv(msg: torch.Tensor, weight: np.ndarray, stride, padding) -> torch.Tensor:
    """Lava's conv (24-bit wrap) of integer messages (T, N, H, W, C)."""
    T, N = msg.shape[:2]
    x = msg.reshape(T * N, *msg.shape[2:]).permute(0, 3, 1, 2)
    z = loihi.synapse(x, torch.from_numpy(np.asarray(weight, np.int64)).to(x.device), "conv",
                      tuple(map(int, stride)), tuple(map(int, padding)))
    z = z.permute(0, 2, 3, 1)
    return z.reshape(T, N, *z.shape[1:])


def _max_input(layer: NetLayer) -> float:
    """Largest |synaptic input| a neuron of ``layer`` can get from spikes: the max over
    neurons of the sum of |weights| (an exact bound, so the CUBA current's wrap test can
    be skipped when it cannot fire)."""
    w = np.abs(np.asarray(layer.weight, np.int64))
    return float(w.reshape(w.shape[0], -1).sum(axis=1).max()) if w.size else 0.0


def _run_stock(layers: list[NetLayer], x: torch.Tensor,
               in_neuron: NetLayer | None = None) -> list[np.ndarray]:
    """Stock netx networks (CUBA/LOIHI and SDNN neurons, mixed freely) time-major, as Lava
    steps them: per step, every layer's synapse (its input's messages of the previous step,
    Lava's one-step buffer) and neuron update.  Each step's tensors stay in the CPU cache.

    ``in_neuron``: the file's ``input`` layer with a neuron; ``x`` is then its ``a_in``
    (graded integers, no synapse and no delay in front of it, as netx's Input block) and
    its output is the first one.  Otherwise ``x`` holds spikes or event counts per bin
    (non-negative integers, graded messages into the first synapse, as tonic's ``ToFrame``
    bins and Lava's graded input port carry them).  Outputs: spikes as bool, SDNN's graded
    messages as int64.
    """
    T, N = x.shape[:2]
    states, pending, outs = [], [], []
    first = None
    max_message = 1.0
    if in_neuron is not None:
        first = _stock_state(in_neuron, (N, *x.shape[2:]), is_input=True, device=x.device)
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        x = torch.round(x.to(torch.float64)).to(torch.int64)
        max_message = float(x.abs().max())
    else:
        x = x != 0
    all_layers = ([in_neuron] if first is not None else []) + layers
    for layer in all_layers:
        shape = tuple(x.shape[2:]) if layer is in_neuron else _out_shape(layer)
        graded = layer.model.graded_messages
        outs.append(torch.empty((T, N, *shape), dtype=torch.int64 if graded else torch.bool,
                                device=x.device))
    groups = []
    for i, layer in enumerate(layers):
        shape = _out_shape(layer)
        states.append(_stock_state(layer, (N, *shape), device=x.device,
                                   max_message=max_message if i == 0 and first is None else 1))
        groups.append(_delay_groups(layer))
        # deliveries for steps t, t+1, ..., t+max_delay (Lava's synapse buffer: +1 step)
        pending.append([torch.zeros((N, *shape), dtype=torch.float64, device=x.device)
                        for _ in range(max(groups[-1]) + 1 if groups[-1] else 1)])
    k = 0 if first is None else 1
    for t in range(T):
        msg = x[t:t + 1]
        if first is not None:
            msg = first.step(msg[0])[None]
            outs[0][t] = msg[0]
        for i, layer in enumerate(layers):
            queue = pending[i]
            a_in = queue.pop(0)
            queue.append(torch.zeros_like(a_in))
            if groups[i] is None:                     # exact integers (float32 or float64)
                queue[0] += _synapse(layer, msg)[0].to(torch.float64)
            else:
                for d, w in groups[i].items():        # delay d: delivered d steps later
                    queue[d] += _synapse(layer, msg, w)[0].to(torch.float64)
            msg = states[i].step(a_in)[None]
            outs[k + i][t] = msg[0]
    return [o.cpu().numpy() for o in outs]


def _delay_groups(layer: NetLayer) -> dict[int, np.ndarray] | None:
    """A dense layer's weights split by axonal delay, as netx expands ``delay`` (per output
    neuron, per input, or per synapse; clipped to 62) and Lava's ``DelayDense`` applies it
    (a spike at t reaches the neuron at t + 1 + delay)."""
    if layer.delay is None:
        return None
    w = np.asarray(layer.weight)
    d = np.clip(np.rint(np.asarray(layer.delay)).astype(np.int64), 0, 62)
    if d.ndim == 0 or d.size == 1:
        d = np.full(w.shape, int(d.reshape(-1)[0]))
    elif d.ndim == 1 and d.size == w.shape[0]:
        d = np.repeat(d.reshape(-1, 1), w.shape[1], axis=1)
    elif d.ndim == 1 and d.size == w.shape[1]:
        d = np.repeat(d.reshape(1, -1), w.shape[0], axis=0)
    d = d.reshape(w.shape)
    return {int(k): np.where(d == k, w, 0) for k in np.unique(d)}
