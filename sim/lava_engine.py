"""Run a ``.net`` file in Lava's CPU simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

Only ``fixed_pt`` runs netx networks (DESIGN.md sec. 4: ``floating_pt`` asserts and the
default silently picks float models).  Lava's conv is switched to torch with one thread
(``lava.proc.conv.utils`` ships it disabled; scipy loops over channel pairs and is slower;
more threads deadlock forked workers).  Stock CUBA files load through lava-dl's netx.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from psplava.netfile import NetFileError, read_netfile


def _torch_conv() -> None:
    import torch
    import torch.nn.functional as F
    import lava.proc.conv.utils as conv_utils

    torch.set_num_threads(1)
    conv_utils.torch, conv_utils.F = torch, F
    conv_utils.TORCH_IS_AVAILABLE = True


def run_lava(path: str | Path, x: np.ndarray, record_all: bool = True) -> list[np.ndarray]:
    """Run one sample ``x`` (x, y, f, T) through the network; return each neuron layer's
    spikes in Lava order ((x, y, f, T) or (F, T)), the output layer last."""
    net_file = read_netfile(path)  # checks everything netx would skip
    for layer in net_file.layers:
        ntype = layer.neuron.get("type") if layer.neuron else None
        if ntype not in (None, "CUBA", "LOIHI"):
            raise NetFileError(f"{path}: layer/{layer.index}: the Lava engine does not run "
                               f"{ntype} neurons yet")
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
        outs = [s.data.get().astype(bool) for s in sinks]
    finally:
        net.stop()
    return outs
