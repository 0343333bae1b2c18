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

from psplava import loihi
from psplava.sim.procs.process import PSPInput, PSPMoment, SRMLayer


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


@implements(proc=PSPInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPSPInputFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        shape = proc_params["shape"]
        self.dq = int(proc_params["ps_decay"])
        self.x = torch.zeros(shape, dtype=torch.int64)
        self.y = torch.zeros(shape, dtype=torch.int64)

    def run_spk(self) -> None:
        s = _t(self.a_in.recv()) != 0
        self.x, self.y = loihi.psp_step(self.x, self.y, s, self.dq)
        self.s_out.send(loihi.psp_message(self.y).numpy().astype(np.int32))


@implements(proc=SRMLayer, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySRMLayerFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    m2_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    spk_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        shape = proc_params["shape"]
        self.lam = proc_params["lam"]
        self.state = loihi.SRMState(shape, proc_params["hardware"])
        bias = proc_params["bias"]
        self.bias = 0 if bias is None else _t(bias) * loihi.PSP_UNIT
        self.dq = proc_params["out_ps_decay"]
        self.px = torch.zeros(shape, dtype=torch.int64)  # own PSP, sent to the next layer
        self.py = torch.zeros(shape, dtype=torch.int64)

    def run_spk(self) -> None:
        z = _t(self.a_in.recv()) + self.bias
        gain = None
        if self.lam is not None:
            gain = loihi.threshold_gain(torch.from_numpy(self.m2_in.recv()[:1]), self.lam)[0]
        s = self.state.step(z, gain)
        if self.dq is not None:
            self.px, self.py = loihi.psp_step(self.px, self.py, s, self.dq)
        self.s_out.send(loihi.psp_message(self.py).numpy().astype(np.int32))
        self.spk_out.send(s.numpy().astype(np.int32))


@implements(proc=PSPMoment, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPSPMomentFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    m2_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.n = int(np.prod(proc_params["shape"]))
        self.tau_s = float(proc_params["tau_s"])
        self.sq_sum = torch.zeros(1, dtype=torch.int64)
        self.count = 0
        self.buf = np.zeros(1, np.float64)

    def run_spk(self) -> None:
        self.m2_out.send(self.buf)
        y = _t(self.a_in.recv())
        self.sq_sum = self.sq_sum + torch.sum(y * y)
        self.count += 1
        # m2 of the PSP at the next step: count + 1 steps including step 0 (a = 0)
        self.buf = loihi.m2_from_sums(self.sq_sum, self.count + 1, self.n, self.tau_s).numpy()
