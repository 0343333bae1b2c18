"""Lava Processes: SRM neurons, the input PSP generator and the PSP-LN threshold scaler."""

from __future__ import annotations

from typing import Any

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class PSPInput(AbstractProcess):
    """Turns input spikes into their integer alpha PSP (sent one step ahead).

    Ports: ``a_in`` spikes (shape), ``s_out`` graded PSP ``y`` (shape).
    """

    def __init__(self, *, shape: tuple[int, ...], ps_decay: int, window: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(shape=shape, ps_decay=ps_decay, window=window, **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


class SRMLayer(AbstractProcess):
    """Fixed-point SRM neurons (see :mod:`psplava.loihi`).

    Ports: ``a_in`` membrane input from the synapse, ``m2_in`` (shape (1,), only with a
    dynamic threshold) the layer's PSP second moment, ``s_out`` the graded PSP of this
    layer's spikes (for the next synapse), ``spk_out`` the spikes (for monitoring),
    ``z_out`` the membrane input of the step (synapses summed, before the bias), which a
    residual network's ``membrane`` skip adds to a later layer's ``a_in`` in the same step.
    """

    def __init__(self, *, shape: tuple[int, ...], hardware, neuron_type: str = "SRM",
                 bias=None, dynamic=None, out_ps_decay: int | None = None,
                 window: int | None = None, **kwargs: Any) -> None:
        """``hardware``: :class:`psplava.neurons.srm.SRMHardware` (or the hardware of
        another registered neuron type that sends PSPs, named by ``neuron_type``, whose
        state steps the neurons); ``dynamic``: the layer's
        :class:`psplava.loihi.DynamicThreshold` or None; ``out_ps_decay``: the 12-bit
        decay of the PSP this layer sends (the *next* layer's ``psDecay``; None for the
        output layer); ``window``: see :mod:`psplava.sim.procs`."""
        super().__init__(shape=shape, hardware=hardware, neuron_type=neuron_type, bias=bias,
                         dynamic=dynamic, out_ps_decay=out_ps_decay, window=window, **kwargs)
        self.a_in = InPort(shape=shape)
        self.m2_in = InPort(shape=(1,))
        self.s_out = OutPort(shape=shape)
        self.spk_out = OutPort(shape=shape)
        self.z_out = OutPort(shape=shape)


class PSPMoment(AbstractProcess):
    """Per-layer PSP-LN threshold scaler: accumulates ``sum y^2`` of the layer's input
    PSPs online and sends ``m2`` (Eq. 18's second moment), buffered one step like a synapse.
    """

    def __init__(self, *, shape: tuple[int, ...], tau_s: float, dynamic,
                 window: int | None = None, **kwargs: Any) -> None:
        super().__init__(shape=shape, tau_s=tau_s, dynamic=dynamic, window=window, **kwargs)
        self.a_in = InPort(shape=shape)
        self.m2_out = OutPort(shape=(1,))


class FileSource(AbstractProcess):
    """Sends ``data[..., (t - 1) % buffer]`` of a ``.npy`` file (memory-mapped in the
    worker), like Lava's ``io.source.RingBuffer`` but read from disk, so the host changes
    the samples between runs by writing the file instead of a ``Var.set`` round trip."""

    def __init__(self, *, shape: tuple[int, ...], path: str, **kwargs: Any) -> None:
        super().__init__(shape=shape, path=path, **kwargs)
        self.s_out = OutPort(shape=shape)


class FileSink(AbstractProcess):
    """Writes what it receives at step t to ``data[..., (t - 1) % buffer]`` of a ``.npy``
    file (memory-mapped): Lava's ``io.sink.RingBuffer`` without ``Var.get``, which hangs in
    lava-nc 0.10 for large buffers (a 34x34x16 layer over 10 steps never returned)."""

    def __init__(self, *, shape: tuple[int, ...], path: str, beat: str | None = None,
                 **kwargs: Any) -> None:
        """``beat``: a one-element int64 ``.npy`` the sink writes its time step to after
        every step, the host's watchdog of a stalled runtime."""
        super().__init__(shape=shape, path=path, beat=beat, **kwargs)
        self.a_in = InPort(shape=shape)
