"""``psplava deploy MODEL.net --target loihi2``: run a file on a Loihi 2 chip.

Needs Intel's lava-loihi extension, detected without importing it
(``lava.utils.loihi.is_installed()``).  The network is lava-dl's own
``netx.hdf5.Network`` (stock CUBA / SDNN neuron models, which lava-loihi compiles to
neurocores), fed from the host through lava-loihi's embedded I/O adapters
(``lava.proc.embedded_io.spike``) and run with ``Loihi2HwCfg``.

psplava's SRM neuron, causal PSP-LN's dynamic threshold and residual skip inputs need
neuron microcode that public Lava does not have: such files are refused *before*
anything compiles, naming the layers, with the way out: the same architecture with CUBA
neurons, either converted from the trained SRM checkpoint and fine-tuned
(``psplava train --init-from SRM_CKPT`` with ``model.neuron: cuba``; an alpha PSP is a CUBA
current and voltage with equal decays, one step of delay and a gain, the refractory kernel
becomes the reset: :mod:`psplava.train.convert`, ``configs/convert/``), or trained as CUBA
in the chip's arithmetic (``configs/deployed/cuba_psp_bn.yaml``), exported and deployed.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

from psplava.errors import PsplavaError
from psplava.netfile import NetFile


class HardwareMissing(PsplavaError):
    """lava-loihi is not installed (exit status 3)."""

    exit_status = 3


MISSING = ("--target loihi2 needs Intel's lava-loihi extension (Loihi 2 access through "
           "the INRC), which is not installed here; --target sim runs the same file in the "
           "bit-exact simulator (Lava CPU, fixed_pt)")


def lava_loihi_installed() -> bool:
    # optional: lava-loihi (Intel's, not public) names the chip when present
    from lava.utils import loihi

    try:
        return bool(loihi.is_installed())
    except (ImportError, ValueError):
        return False


def microcode_layers(net: NetFile) -> list[str]:
    """Layers a stock Loihi 2 neurocore cannot run, each ``'layer/i (reason)'``."""
    out = []
    for layer in net.layers:
        why = []
        if layer.neuron and layer.model.needs_microcode:
            why.append(f"{layer.model.type_name} neuron")
        if layer.dynamic_threshold is not None:
            why.append("dynamic threshold")
        if layer.skips:
            why.append("skip inputs")
        if why:
            out.append(f"layer/{layer.index} ({', '.join(why)})")
    return out


def check_deployable(net: NetFile) -> None:
    bad = microcode_layers(net)
    if bad:
        raise PsplavaError(
            f"{net.path}: {len(bad)} layer(s) need neuron microcode that public Lava lacks: "
            f"{', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}; convert the trained SRM "
            "checkpoint to CUBA neurons and fine-tune it in the chip's arithmetic (psplava "
            "train --init-from SRM_CKPT with model.neuron: cuba, e.g. "
            "configs/convert/srm_none_to_cuba.yaml), export it and deploy that file "
            "(docs/loihi2.md)")


def run_loihi2(path: str, xs: np.ndarray, steps: int) -> list[np.ndarray]:
    """Run samples ``xs`` (N, *input shape, T) on Loihi 2; the output layer's spikes per
    sample, Lava order.  One network, one run per sample (state reset between them by
    rebuilding: the chip runs are short and compile caches)."""
    if not lava_loihi_installed():
        raise HardwareMissing(MISSING)

    with contextlib.redirect_stdout(sys.stderr):
        # Lava and lava-loihi load only when the chip runs
        from lava.lib.dl import netx
        from lava.lib.dl.netx.blocks.process import Input
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2HwCfg
        from lava.proc import io
        from lava.proc.embedded_io import spike as eio  # lava-loihi
    outs = []
    for x in xs:
        net = netx.hdf5.Network(net_config=str(path))
        data = np.zeros((*x.shape[:-1], steps), dtype=np.int32)
        data[..., :min(steps, x.shape[-1])] = x[..., :steps]
        source = io.source.RingBuffer(data=data)
        sink = io.sink.RingBuffer(shape=net.out.shape, buffer=steps)
        inp = eio.PyToNxAdapter(shape=x.shape[:-1])
        out = eio.NxToPyAdapter(shape=net.out.shape)
        first = net.layers[0]
        # a file that starts with an input block is fed at its neuron (docs/design.md)
        port = first.neuron.a_in if isinstance(first, Input) else net.inp
        source.s_out.connect(inp.inp)
        inp.out.connect(port)
        net.out.connect(out.inp)
        out.out.connect(sink.a_in)
        try:
            net.run(condition=RunSteps(num_steps=steps),
                    run_cfg=Loihi2HwCfg(select_tag="fixed_pt"))
            outs.append(np.asarray(sink.data.get()))
        finally:
            net.stop()
    return outs
