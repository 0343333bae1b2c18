"""Run a ``.net`` file in Lava's CPU simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

Only ``fixed_pt`` runs netx networks (docs/design.md, "netx and Lava": ``floating_pt`` asserts and the
default silently picks float models).  Lava's conv is switched to torch with one thread
(``lava.proc.conv.utils`` ships it disabled; scipy loops over channel pairs and is slower;
more threads deadlock forked workers).  Stock CUBA files load through lava-dl's netx.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from psplava.lavadl import import_lava_runtime
from psplava.netfile import NetFileError, read_netfile

import_lava_runtime()


def _exact_torch_conv(input_, weight, kernel_size, stride, padding, dilation, groups):
    """Lava's ``conv.utils.conv`` in float64 torch: exact for integer messages < 2**53
    (Lava's own torch path is float32, inexact for graded PSP messages)."""
    import torch
    import torch.nn.functional as F

    out = F.conv2d(torch.from_numpy(np.ascontiguousarray(input_.transpose([2, 1, 0]),
                                                         dtype=np.float64))[None],
                   torch.from_numpy(np.ascontiguousarray(
                       weight[:, ::-1, ::-1].transpose([0, 3, 2, 1]), dtype=np.float64)),
                   stride=list(stride[::-1]), padding=list(padding[::-1]),
                   dilation=list(dilation[::-1]), groups=int(groups))
    return np.rint(out[0].numpy().transpose([2, 1, 0])).astype(weight.dtype)


def _torch_conv() -> None:
    import torch
    import lava.proc.conv.models as conv_models
    import lava.proc.conv.utils as conv_utils

    torch.set_num_threads(1)  # more threads deadlock Lava's forked workers
    conv_utils.conv = _exact_torch_conv
    conv_models.utils.conv = _exact_torch_conv


#: neuron types that run through lava-dl's netx as they are.  SDNN files read fine but
#: their netx ``Input`` block fails to compile with lava-nc 0.10 in fixed_pt ("No
#: subcompiler exists for ... PyInputModel"), so they are refused with that reason.
STOCK_NETX_NEURONS = {"CUBA", "LOIHI"}


def run_lava(path: str | Path, x: np.ndarray, record_all: bool = True) -> list[np.ndarray]:
    """Run one sample ``x`` (x, y, f, T) through the network; return each neuron layer's
    output in Lava order ((x, y, f, T) or (F, T)), the output layer last: spikes as bool,
    graded messages (SDNN) as integers."""
    net_file = read_netfile(path)  # checks everything netx would skip
    types = {layer.neuron.get("type") for layer in net_file.layers if layer.neuron}
    if types == {"SRM"}:
        return _run_lava_srm(net_file, x)
    if "SDNN" in types:
        raise NetFileError(f"{path}: SDNN networks are not supported by the Lava engine yet "
                           "(netx's Input block does not compile in lava-nc 0.10 fixed_pt)")
    if not types <= STOCK_NETX_NEURONS:
        raise NetFileError(f"{path}: the Lava engine runs stock netx networks "
                           f"({sorted(STOCK_NETX_NEURONS)}) or all-SRM networks, found "
                           f"{sorted(map(str, types))}")
    with contextlib.redirect_stdout(sys.stderr):
        from lava.lib.dl import netx
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc import io
    _torch_conv()
    T = x.shape[-1]
    net = netx.hdf5.Network(net_config=str(path))
    if tuple(net.inp.shape) != tuple(x.shape[:-1]):
        raise NetFileError(f"{path}: input has shape {x.shape[:-1]}, the network expects "
                           f"{tuple(net.inp.shape)} (x, y, f)")
    src = io.source.RingBuffer(data=x.astype(np.int32))
    src.s_out.connect(net.inp)
    sinks = []
    blocks = net.layers if record_all else net.layers[-1:]
    for block in blocks:
        sink = io.sink.RingBuffer(shape=block.out.shape, buffer=T)
        block.out.connect(sink.a_in)
        sinks.append(sink)
    try:
        net.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        graded = "SDNN" in types
        outs = [s.data.get().astype(np.int64 if graded else bool) for s in sinks]
    finally:
        net.stop()
    return outs


def _lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """(out, in, kh, kw) as stored -> Lava's Conv layout, as netx converts it."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)


def _run_lava_srm(net_file, x: np.ndarray) -> list[np.ndarray]:
    """Build the SRM graph from psplava's process library and run it (fixed_pt)."""
    with contextlib.redirect_stdout(sys.stderr):
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc import io
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
    from psplava.sim.fixed import srm_hardware
    from psplava.sim.procs.process import PSPInput, PSPMoment, SRMLayer

    _torch_conv()
    T = x.shape[-1]
    c, h, w = net_file.layers[0].shape
    if tuple(x.shape[:-1]) != (w, h, c):
        raise NetFileError(f"{net_file.path}: input has shape {x.shape[:-1]}, the network "
                           f"expects {(w, h, c)} (x, y, f)")
    layers = [l for l in net_file.layers if l.type in ("conv", "dense")]
    src = io.source.RingBuffer(data=x.astype(np.int32))
    inp = PSPInput(shape=(w, h, c), ps_decay=int(layers[0].neuron["psDecay"]))
    src.s_out.connect(inp.a_in)
    prev_out, prev_shape = inp.s_out, (w, h, c)
    sinks, keep = [], [src, inp]
    for i, layer in enumerate(layers):
        if layer.type == "conv":
            oc, oh, ow = layer.shape
            shape = (ow, oh, oc)
            syn = Conv(weight=_lava_conv_weight(layer.weight), input_shape=prev_shape,
                       padding=tuple(layer.padding[::-1]), stride=tuple(layer.stride[::-1]),
                       num_message_bits=24)
            src_port = prev_out
        else:
            shape = (int(np.prod(layer.shape)),)
            syn = Dense(weights=np.asarray(layer.weight, np.int32), num_message_bits=24,
                        num_weight_bits=8, weight_exp=0)
            src_port = prev_out.transpose([2, 1, 0]).flatten() if len(prev_shape) == 3 \
                else prev_out
        src_port.connect(syn.s_in)
        nxt = layers[i + 1].neuron["psDecay"] if i + 1 < len(layers) else None
        lam = layer.dynamic_threshold["lambda"] if layer.dynamic_threshold else None
        bias = None
        if layer.bias is not None:
            bias = np.asarray(layer.bias).reshape(-1)
            if layer.type == "conv":  # per output channel, broadcast over (x, y)
                bias = np.broadcast_to(bias, shape).copy()
        neuron = SRMLayer(shape=shape, hardware=srm_hardware(layer.neuron), bias=bias,
                          lam=lam, out_ps_decay=None if nxt is None else int(nxt))
        syn.a_out.connect(neuron.a_in)
        if lam is not None:
            mom = PSPMoment(shape=prev_shape, tau_s=float(layer.neuron["tauS"]))
            prev_out.connect(mom.a_in)
            mom.m2_out.connect(neuron.m2_in)
            keep.append(mom)
        sink = io.sink.RingBuffer(shape=shape, buffer=T)
        neuron.spk_out.connect(sink.a_in)
        sinks.append(sink)
        keep += [syn, neuron]
        prev_out, prev_shape = neuron.s_out, shape
    try:
        src.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        outs = [s.data.get().astype(bool) for s in sinks]
    finally:
        src.stop()
    return outs
