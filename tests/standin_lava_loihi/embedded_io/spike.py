"""Stand-in ``lava.proc.embedded_io.spike``: PyToNxAdapter / NxToPyAdapter as same-step
pass-throughs (this folder holds nothing else: Lava imports every file beside a Process
while looking for its models)."""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class PyToNxAdapter(AbstractProcess):
    def __init__(self, *, shape, **kwargs):
        super().__init__(shape=shape, **kwargs)
        self.inp = InPort(shape=shape)
        self.out = OutPort(shape=shape)


class NxToPyAdapter(AbstractProcess):
    def __init__(self, *, shape, **kwargs):
        super().__init__(shape=shape, **kwargs)
        self.inp = InPort(shape=shape)
        self.out = OutPort(shape=shape)


class _PassThrough(PyLoihiProcessModel):
    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self):
        self.out.send(self.inp.recv())


@implements(proc=PyToNxAdapter, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyToNxModel(_PassThrough):
    pass


@implements(proc=NxToPyAdapter, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class NxToPyModel(_PassThrough):
    pass
