"""Fixed-point ProcessModels (``fixed_pt``) of :mod:`psplava.sim.procs.process`.

All arithmetic is :mod:`psplava.loihi`'s, the one implementation shared with the reference
engine and the PyTorch model in ``loihi`` arithmetic; these models only move its state
between Lava ports (numpy arrays, viewed as torch tensors without copies).
"""

from __future__ import annotations

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF
from lava.proc.sdn.models import PyDeltaModelFixed, PySigmaDeltaModelFixed, PySigmaModelFixed
from lava.proc.sdn.process import Delta, Sigma, SigmaDelta

from psplava import loihi
from psplava.neurons import neuron_model, srm
from psplava.sim.procs.process import FileSink, FileSource, PSPInput, PSPMoment, SRMLayer


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


class _Windowed:
    """Mixin: ``window_start()`` is True at the first step of each sample's window."""

    window: int | None = None

    def window_start(self) -> bool:
        return bool(self.window) and (self.time_step - 1) % self.window == 0


class _StockWindowed(_Windowed):
    """Mixin for Lava's stock models: the Lava engine's parameters, set on the stock
    process before compiling, and the reset of named state arrays."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.window = proc_params._parameters.get("psplava_window")
        self.synaptic = proc_params._parameters.get("psplava_synaptic_input", True)

    def _windowed_input(self, a_in_data: np.ndarray, state: tuple[str, ...]) -> np.ndarray:
        """At a window's first step: zero the named state arrays and, for synaptic input,
        the input itself (it belongs to the previous sample)."""
        if self.window_start():
            for name in state:
                getattr(self, name)[...] = 0
            if self.synaptic:
                return np.zeros_like(a_in_data)
        return a_in_data


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "psplava_window")
class PyLifWindowModel(_StockWindowed, PyLifModelBitAcc):
    """Lava's ``PyLifModelBitAcc`` (netx's CUBA/LOIHI neurons) with window resets: the
    Lava engine selects it through ``exception_proc_model_map`` and sets the process's
    ``psplava_window`` / ``psplava_synaptic_input`` parameters.  Only the reset is added;
    the step is the parent's ``run_spk``, inlined because the parent receives ``a_in``
    itself."""

    def run_spk(self) -> None:
        a_in_data = self._windowed_input(self.a_in.recv(), ("u", "v"))
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in_data)
        self.s_out_buff = self.spiking_activation()
        self.reset_voltage(spike_vector=self.s_out_buff)
        self.s_out.send(self.s_out_buff)


@implements(proc=Delta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "psplava_window")
class PyDeltaWindowModel(_StockWindowed, PyDeltaModelFixed):
    """Lava's fixed-point ``Delta`` (netx's SDNN input neuron) with window resets; its
    ``run_spk`` inlined around the reset."""

    def run_spk(self) -> None:
        a_in = self._windowed_input(self.a_in.recv(), ("act", "residue", "error"))
        a_in_data = np.left_shift(a_in, self.spike_exp + self.state_exp)
        s_out_scaled = self.delta_dynamics(a_in_data)
        s_out = np.right_shift(s_out_scaled, self.state_exp)
        self.act = a_in_data
        self.s_out.send(s_out)


@implements(proc=SigmaDelta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "psplava_window")
class PySigmaDeltaWindowModel(_StockWindowed, PySigmaDeltaModelFixed):
    """Lava's fixed-point ``SigmaDelta`` (netx's SDNN neuron) with window resets."""

    def run_spk(self) -> None:
        a_in_data = self._windowed_input(self.a_in.recv(),
                                         ("sigma", "act", "residue", "error"))
        s_out_scaled = self.dynamics(a_in_data)
        s_out = np.right_shift(s_out_scaled, self.state_exp)
        self.s_out.send(s_out)


@implements(proc=Sigma, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "psplava_window")
class PySigmaWindowModel(_StockWindowed, PySigmaModelFixed):
    """Lava's fixed-point ``Sigma`` (netx's SDNN read-out) with window resets."""

    def run_spk(self) -> None:
        a_in_data = self._windowed_input(self.a_in.recv(), ("sigma",))
        self.sigma = self.sigma_dynamics(a_in_data)
        self.s_out.send(self.sigma)


#: stock process -> windowed model, for ``Loihi2SimCfg(exception_proc_model_map=...)``
WINDOWED_MODELS = {LIF: PyLifWindowModel, Delta: PyDeltaWindowModel,
                   SigmaDelta: PySigmaDeltaWindowModel, Sigma: PySigmaWindowModel}


@implements(proc=PSPInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPSPInputFixed(_Windowed, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        shape = proc_params["shape"]
        self.window = proc_params["window"]
        self.ps_decay = int(proc_params["ps_decay"])
        self.x = torch.zeros(shape, dtype=torch.int64)
        self.y = torch.zeros(shape, dtype=torch.int64)

    def run_spk(self) -> None:
        s = _t(self.a_in.recv()) != 0   # straight from the source: no synapse buffer
        if self.window_start():
            self.x, self.y = torch.zeros_like(self.x), torch.zeros_like(self.y)
        self.x, self.y = srm.psp_step(self.x, self.y, s, self.ps_decay)
        self.s_out.send(srm.psp_message(self.y).numpy().astype(np.int32))


@implements(proc=SRMLayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySRMLayerFixed(_Windowed, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    m2_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    spk_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    z_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        shape = proc_params["shape"]
        self.shape = shape
        self.window = proc_params["window"]
        self.dynamic = proc_params["dynamic"]
        self.hw = proc_params["hardware"]
        self.model = neuron_model(proc_params["neuron_type"])
        self.state = self.model.state(shape, self.hw)
        bias = proc_params["bias"]
        self.bias = 0 if bias is None else _t(bias) * loihi.PSP_UNIT
        self.out_ps_decay = proc_params["out_ps_decay"]
        self.px = torch.zeros(shape, dtype=torch.int64)  # own PSP, sent to the next layer
        self.py = torch.zeros(shape, dtype=torch.int64)

    def run_spk(self) -> None:
        z = _t(self.a_in.recv())
        if self.window_start():  # the synapse's input of the previous sample: dropped
            z = torch.zeros_like(z)
            self.state = self.model.state(self.shape, self.hw)
            self.px, self.py = torch.zeros_like(self.px), torch.zeros_like(self.py)
        self.z_out.send(z.numpy().astype(np.int32))   # read by membrane skips, same step
        z = z + self.bias
        gain = None
        if self.dynamic is not None:
            gain = self.dynamic.gain(torch.from_numpy(self.m2_in.recv()[:1]))[0]
        s = self.state.step(z, gain)
        if self.out_ps_decay is not None:
            self.px, self.py = srm.psp_step(self.px, self.py, s, self.out_ps_decay)
        self.s_out.send(srm.psp_message(self.py).numpy().astype(np.int32))
        self.spk_out.send(s.numpy().astype(np.int32))


@implements(proc=PSPMoment, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPSPMomentFixed(_Windowed, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    m2_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.n = int(np.prod(proc_params["shape"]))
        self.window = proc_params["window"]
        self.tau_s = float(proc_params["tau_s"])
        self.dynamic = proc_params["dynamic"]
        self.sq_sum = torch.zeros(1, dtype=torch.int64)
        self.count = 0
        self.buf = np.zeros(1, np.float64)

    def run_spk(self) -> None:
        if self.window_start():
            self.sq_sum, self.count = torch.zeros_like(self.sq_sum), 0
            self.buf = np.zeros(1, np.float64)
        self.m2_out.send(self.buf)
        y = _t(self.a_in.recv())    # straight from the previous layer: no synapse buffer
        self.sq_sum = self.sq_sum + torch.sum(y * y)
        self.count += 1
        # m2 of the PSP at the next step: count + 1 steps including step 0 (a = 0)
        self.buf = self.dynamic.m2_from_sums(self.sq_sum, self.count + 1, self.n,
                                             self.tau_s).numpy()


@implements(proc=FileSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFileSourceFixed(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.path = proc_params["path"]
        self.data = None

    def run_spk(self) -> None:
        if self.data is None:
            self.data = np.load(self.path, mmap_mode="r")
        buffer = self.data.shape[-1]
        self.s_out.send(np.asarray(self.data[..., (self.time_step - 1) % buffer], np.int32))


@implements(proc=FileSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFileSinkFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.path = proc_params["path"]
        self.beat_path = proc_params["beat"]
        self.data = None
        self.beat = None

    def run_spk(self) -> None:
        if self.data is None:
            self.data = np.load(self.path, mmap_mode="r+")
            if self.beat_path:
                self.beat = np.load(self.beat_path, mmap_mode="r+")
        buffer = self.data.shape[-1]
        self.data[..., (self.time_step - 1) % buffer] = self.a_in.recv()
        if self.beat is not None:
            self.beat[0] = self.time_step
