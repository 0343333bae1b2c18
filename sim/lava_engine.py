"""Run a ``.net`` file in Lava's CPU simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

:class:`LavaNetwork` builds and compiles the network **once** and streams samples through
it: one window of ``steps`` steps per sample, all neuron state reset at each window's first
step (:mod:`psplava.sim.procs`, "Windows"), so every sample sees a fresh network.  Input
spikes come from a memory-mapped ``.npy`` file holding a chunk of samples back to back,
outputs go to memory-mapped files (:class:`~psplava.sim.procs.process.FileSource`,
:class:`~psplava.sim.procs.process.FileSink`): no ``Var.get``/``set`` round trips, which
cost ~0.3 s each here and hang in lava-nc 0.10 for large buffers.

- Stock netx files (CUBA / LOIHI neurons) are built by lava-dl's ``netx.hdf5.Network`` as
  they are; only the LIF process model is exchanged (``exception_proc_model_map``) for
  :class:`~psplava.sim.procs.models.PyLifWindowModel`, Lava's own bit-accurate model plus
  the window reset.
- All-SRM files (psplava's extension) are built from :mod:`psplava.sim.procs`.
- Files whose state the window reset cannot clear (axonal delays keep several steps of
  messages in flight) are rebuilt per sample, as stock netx would run them.

Input (the ``--input`` contract, docs/netfile.md): for a file whose first layer is an
``input`` layer with a neuron, what lava-dl's tests feed that neuron's ``a_in``; otherwise
the first layer's spike input, (x, y, f, T) or (F, T).

Only ``fixed_pt`` runs netx networks (docs/design.md, "netx and Lava": ``floating_pt``
asserts and the default silently picks float models).  Lava's conv is switched to torch
with one thread (``lava.proc.conv.utils`` ships it disabled; scipy loops over channel
pairs, 10x slower on the paper's net; more threads deadlock forked workers).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from psplava.children import kill_children
from psplava.lavadl import import_lava_runtime
from psplava.netfile import NetFileError, SkipMode, input_shape, read_netfile, stock_netx

import_lava_runtime()
# Lava's modules print on import, and a command's stdout carries its JSON line: they load
# here, after the runtime's patched import, with stdout sent to stderr
with contextlib.redirect_stdout(sys.stderr):
    import lava.proc.conv.models as conv_models
    import lava.proc.conv.utils as conv_utils
    from lava.lib.dl import netx
    from lava.lib.dl.netx.blocks.process import Input
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    from psplava.sim.procs.models import WINDOWED_MODELS
    from psplava.sim.procs.process import (FileSink, FileSource, PSPInput, PSPMoment,
                                           SRMLayer)


def _exact_torch_conv(input_, weight, kernel_size, stride, padding, dilation, groups):
    """Lava's ``conv.utils.conv`` in float64 torch: exact for integer messages < 2**53
    (Lava's own torch path is float32, inexact for graded PSP messages)."""
    out = F.conv2d(torch.from_numpy(np.ascontiguousarray(input_.transpose([2, 1, 0]),
                                                         dtype=np.float64))[None],
                   torch.from_numpy(np.ascontiguousarray(
                       weight[:, ::-1, ::-1].transpose([0, 3, 2, 1]), dtype=np.float64)),
                   stride=list(stride[::-1]), padding=list(padding[::-1]),
                   dilation=list(dilation[::-1]), groups=int(groups))
    return np.rint(out[0].numpy().transpose([2, 1, 0])).astype(weight.dtype)


def _torch_conv() -> None:
    torch.set_num_threads(1)  # more threads deadlock Lava's forked workers
    conv_utils.conv = _exact_torch_conv
    conv_models.utils.conv = _exact_torch_conv


#: bytes of input and recorded output one chunk of streamed samples may hold
CHUNK_BYTES = 256 << 20

#: seconds without a single Lava step before a run counts as stalled (4x before the first
#: step, which includes compiling); ``PSPLAVA_LAVA_STALL_S`` overrides it
STALL_S = float(os.environ.get("PSPLAVA_LAVA_STALL_S", "60"))


class LavaRuntimeError(NetFileError):
    """Lava's runtime stopped making progress; its workers were killed.  Fatal: Lava's own
    threads may still wait on them, so the command line exits at once (``os._exit``)."""

    fatal = True


def _kill_lava_workers(root=None) -> None:
    """Kill Lava's worker processes; with ``root`` (the run's process) first shut its
    shared-memory manager down the orderly way, so that its segments are unlinked and its
    temp folder removed (killing the manager leaks both until the resource tracker
    notices, with a warning)."""
    kill_children(spare_managers=True)
    try:
        smm = root.runtime._messaging_infrastructure.smm
        if smm is not None:
            smm.shutdown()
    except Exception:  # noqa: BLE001 - no runtime, or already down: kill it below
        pass
    kill_children()


def _run_steps(n: int):
    return RunSteps(num_steps=int(n))


def _run_cfg():
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=dict(WINDOWED_MODELS))


class LavaNetwork:
    """A ``.net`` file built into Lava once; :meth:`run` streams samples through it.

    ``steps``: the window per sample (the input's T; pad the input with the file's latency
    to see its last steps' effect at a CUBA output).  ``record``: ``"all"`` neuron layers or
    only the ``"last"`` (fewer Lava processes).  Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, steps: int, record: str = "last",
                 chunk: int | None = None, net_file=None) -> None:
        """``net_file``: the file already read by :func:`read_netfile` (not read again)."""
        self.path = str(path)
        self.steps = int(steps)
        if self.steps <= 0:
            raise NetFileError(f"{path}: steps must be positive, got {steps}")
        if record not in ("all", "last"):
            raise ValueError(f"record must be 'all' or 'last', got {record!r}")
        self.record = record
        self.chunk = chunk
        # checks everything netx would skip
        self.net_file = read_netfile(path) if net_file is None else net_file
        # stock netx files run through lava-dl's netx, psplava's neurons through psplava's
        # process library
        self.kind = "netx" if stock_netx(self.net_file, "the Lava engine") else "srm"
        self.input_shape = input_shape(self.net_file)
        self.streams = not any(layer.delay is not None for layer in self.net_file.layers)
        self._built = None  # (input memmap, output memmaps, root process, chunk)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._started = False
        self._steps_done = 0  # Lava time steps run since the build

    # ------------------------------------------------------------------ running
    def run(self, xs: np.ndarray, progress=None) -> list[np.ndarray]:
        """Outputs of samples ``xs`` (N, *input_shape, steps): per recorded layer an array
        (N, *layer_shape, steps), bool spikes or int64 graded messages (SDNN).
        ``progress``: a tqdm bar, updated per chunk."""
        xs = np.asarray(xs)
        if tuple(xs.shape[1:]) != (*self.input_shape, self.steps):
            raise NetFileError(f"{self.path}: input has shape {tuple(xs.shape[1:])} per "
                               f"sample, the network expects {(*self.input_shape, self.steps)} "
                               "(input shape, steps)")
        if not self.streams:
            outs = []
            for x in xs:
                self._build()
                try:
                    outs.append([o[0] for o in self._run_built(x[None])])
                finally:
                    self.close()
                if progress is not None:
                    progress.update(1)
            return [np.stack([o[i] for o in outs]) for i in range(len(outs[0]))]
        if self._built is None:
            self._build()
        return self._run_built(xs, progress)

    def _run_built(self, xs: np.ndarray, progress=None) -> list[np.ndarray]:
        src, sinks, root, chunk = self._built
        T = self.steps
        results: list[list[np.ndarray]] = [[] for _ in sinks]
        buf = src.shape[-1]
        for start in range(0, len(xs), chunk):
            part = xs[start:start + chunk]
            n = len(part)
            # source and sinks index their buffers by (time_step - 1) % buf, and Lava's time
            # keeps counting across runs: this run's columns start where the last one ended
            cols = (self._steps_done + np.arange(n * T)) % buf
            src[..., cols] = np.moveaxis(part, 0, -2).reshape(*self.input_shape, n * T)
            self._run_watched(root, n * T)
            self._started = True
            self._steps_done += n * T
            for i, sink in enumerate(sinks):
                o = np.asarray(sink[..., cols])
                results[i].append(np.moveaxis(o.reshape(*o.shape[:-1], n, T), -2, 0))
            if progress is not None:
                progress.update(n)
        return [np.concatenate(r).astype(np.int64 if g else bool)
                for r, g in zip(results, self._graded)]

    def _run_watched(self, root, steps: int) -> None:
        """``root.run`` in a thread, watched through the first sink's heartbeat: an exception
        inside a Lava process leaves Lava's runtime waiting forever, so a run whose step
        counter stalls (:data:`STALL_S`; longer before the first step, which compiles) is
        ended: Lava's worker processes are killed and :class:`LavaRuntimeError` raised."""
        beat = self._beat
        err: list[BaseException] = []
        done = threading.Event()

        def target() -> None:
            try:
                root.run(condition=_run_steps(steps), run_cfg=_run_cfg())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                err.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, daemon=True).start()
        start = last = int(beat[0])
        last_t = time.time()
        try:
            self._watch(done, beat, start, last, last_t, steps)
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM) or stalled: Lava's runtime cannot be stopped
            # in the middle of a run, so its workers are killed and close() only removes
            # the temp folder
            _kill_lava_workers(root)
            self._started = False
            self._built = None
            raise
        if err:
            raise err[0]

    def _watch(self, done, beat, start: int, last: int, last_t: float, steps: int) -> None:
        while not done.wait(0.5):
            b = int(beat[0])
            if b != last:
                last, last_t = b, time.time()
                continue
            limit = STALL_S * (4 if not self._started and b == start else 1)
            if time.time() - last_t > limit:
                _kill_lava_workers()
                raise LavaRuntimeError(
                    f"{self.path}: Lava's runtime stopped at step {b - start} of {steps} "
                    f"(no progress for {limit:.0f} s: a Lava process failed; --debug shows "
                    "its output)")

    def close(self) -> None:
        if self._built is not None and self._started:
            self._built[2].stop()
        self._built = None
        self._started = False
        self._steps_done = 0
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LavaNetwork":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ building
    def _chunk(self, sink_shapes: list[tuple[int, ...]]) -> int:
        if not self.streams:
            return 1
        if self.chunk:
            return int(self.chunk)
        per_sample = 4 * self.steps * (int(np.prod(self.input_shape))
                                       + sum(int(np.prod(s)) for s in sink_shapes))
        return max(1, min(64, CHUNK_BYTES // max(per_sample, 1)))

    def _build(self) -> None:
        _torch_conv()
        window = self.steps if self.streams else None
        if self.kind == "srm":
            src_port, outs = _build_srm(self.net_file, window)
        else:
            src_port, outs = _build_netx(self.path, window)
        graded = [layer.model.graded_messages for layer in self.net_file.layers if layer.neuron]
        if self.record == "last":
            outs, graded = outs[-1:], graded[-1:]
        self._graded = graded
        chunk = self._chunk([tuple(p.shape) for p in outs])
        buf = chunk * self.steps
        self._tmp = tempfile.TemporaryDirectory(prefix="psplava-lava-")
        tmp = Path(self._tmp.name)
        src_mem = np.lib.format.open_memmap(tmp / "input.npy", mode="w+", dtype=np.int32,
                                            shape=(*self.input_shape, buf))
        src = FileSource(shape=self.input_shape, path=str(tmp / "input.npy"))
        src.s_out.connect(src_port)
        sink_mems = []
        self._beat = np.lib.format.open_memmap(tmp / "beat.npy", mode="w+", dtype=np.int64,
                                               shape=(1,))
        for i, port in enumerate(outs):
            path = tmp / f"out{i}.npy"
            sink_mems.append(np.lib.format.open_memmap(path, mode="w+", dtype=np.int32,
                                                       shape=(*port.shape, buf)))
            sink = FileSink(shape=tuple(port.shape), path=str(path),
                            beat=str(tmp / "beat.npy") if i == 0 else None)
            port.connect(sink.a_in)
        self._built = (src_mem, sink_mems, src, chunk)


def _build_netx(path: str, window: int | None):
    """lava-dl's netx network with windowed LIF models; (input port, output ports)."""
    # graded input messages (16 bits): event counts per bin reach the first synapse as
    # they are (with 0 bits, Lava's Dense and Conv read their input as bool); 0/1 spikes
    # give the same sums either way
    net = netx.hdf5.Network(net_config=str(path), input_message_bits=16)
    for block in net.layers:
        params = block.neuron.proc_params._parameters
        params["psplava_window"] = window
        # an input block's neuron is fed straight from the source, not through a synapse
        params["psplava_synaptic_input"] = not isinstance(block, Input)
    first = net.layers[0]
    port = first.neuron.a_in if isinstance(first, Input) else net.inp
    return port, [block.out for block in net.layers]


def _lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """(out, in, kh, kw) as stored -> Lava's Conv layout, as netx converts it."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)


def _build_srm(net_file, window: int | None):
    """The SRM graph from psplava's process library; (input port, output ports)."""
    c, h, w = net_file.layers[0].shape
    layers = [l for l in net_file.layers if l.type in ("conv", "dense")]
    inp = PSPInput(shape=(w, h, c), ps_decay=layers[0].hardware.ps_decay, window=window)
    prev_out, prev_shape = inp.s_out, (w, h, c)
    outs = []
    made: dict[int, tuple] = {0: (inp, (w, h, c))}   # file index -> (process, Lava shape)
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
        nxt = layers[i + 1].hardware.ps_decay if i + 1 < len(layers) else None
        dyn = layer.dynamic_threshold
        bias = None
        if layer.bias is not None:
            bias = np.asarray(layer.bias).reshape(-1)
            if layer.type == "conv":  # per output channel, broadcast over (x, y)
                bias = np.broadcast_to(bias, shape).copy()
        neuron = SRMLayer(shape=shape, hardware=layer.hardware,
                          neuron_type=layer.model.type_name, bias=bias,
                          dynamic=dyn, out_ps_decay=None if nxt is None else int(nxt),
                          window=window)
        syn.a_out.connect(neuron.a_in)
        for skip in layer.skips:   # format 3: residual inputs, summed at a_in
            src, src_shape = made[skip.source]
            if skip.mode is SkipMode.MEMBRANE:   # the source's membrane input, same step
                src.z_out.connect(neuron.a_in)
            else:                            # a conv of the source's PSP (one-step buffer)
                sk = Conv(weight=_lava_conv_weight(skip.weight), input_shape=src_shape,
                          padding=tuple(skip.padding[::-1]),
                          stride=tuple(skip.stride[::-1]), num_message_bits=24)
                src.s_out.connect(sk.s_in)
                sk.a_out.connect(neuron.a_in)
        made[layer.index] = (neuron, shape)
        if dyn is not None:
            mom = PSPMoment(shape=prev_shape, tau_s=layer.hardware.tau_s, dynamic=dyn,
                            window=window)
            prev_out.connect(mom.a_in)
            mom.m2_out.connect(neuron.m2_in)
        outs.append(neuron.spk_out)
        prev_out, prev_shape = neuron.s_out, shape
    return inp.a_in, outs


def run_lava(path: str | Path, x: np.ndarray, record_all: bool = True) -> list[np.ndarray]:
    """Run one sample ``x`` (input shape + (T,)) in a network built for it; each recorded
    neuron layer's output in Lava order ((x, y, f, T) or (F, T)), the output layer last.
    For many samples use :class:`LavaNetwork` (built once)."""
    x = np.asarray(x)
    with LavaNetwork(path, x.shape[-1], "all" if record_all else "last") as net:
        return [o[0] for o in net.run(x[None])]
