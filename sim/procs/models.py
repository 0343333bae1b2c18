"""Fixed-point ProcessModels (``fixed_pt``) of :mod:`psplava.sim.procs.process`.

All arithmetic is :mod:`psplava.sim.srm_fixed`'s, shared with the reference engine.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from psplava.sim import srm_fixed
from psplava.sim.procs.process import PSPInput, PSPMoment, SRMLayer


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
        self.x = np.zeros(shape, np.int64)
        self.y = np.zeros(shape, np.int64)

    def run_spk(self) -> None:
        s = self.a_in.recv() != 0
        self.x, self.y = srm_fixed.psp_update(self.x, self.y, s, self.dq)
        self.s_out.send(self.y.astype(np.int32))


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
        self.lam = proc_params["dynamic_lambda"]
        self.state = srm_fixed.SRMState(proc_params["shape"], proc_params["neuron"],
                                        proc_params["bias"], self.lam,
                                        proc_params["out_ps_decay"])

    def run_spk(self) -> None:
        z = self.a_in.recv().astype(np.int64)
        gain = None
        if self.lam is not None:
            gain = srm_fixed.gain_of(self.m2_in.recv()[0], self.lam)
        s = self.state.step(z, gain)
        self.s_out.send(self.state.py.astype(np.int32))
        self.spk_out.send(s.astype(np.int32))


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
        self.sq_sum = np.zeros(1, np.int64)
        self.count = 0
        self.buf = np.zeros(1, np.float64)

    def run_spk(self) -> None:
        self.m2_out.send(self.buf)
        y = self.a_in.recv().astype(np.int64)
        self.sq_sum = self.sq_sum + np.sum(y * y)
        self.count += 1
        # m2 of the PSP at the next step: count + 1 steps including step 0 (a = 0)
        self.buf = srm_fixed.m2_from_sums(self.sq_sum, self.count + 1, self.n, self.tau_s)
