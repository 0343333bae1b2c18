"""``psplava export CKPT --format nir``: the exported network as a NIR graph (``nir``).

NIR (Neuromorphic Intermediate Representation, https://neuroir.org) describes networks in
continuous time; simulators discretize with their own step ``dt``.  psplava's CUBA layers
map onto ``nir.CubaLIF`` exactly up to integer rounding, with ``dt`` = one Loihi step
(``DT`` = 1e-4 s, the step snnTorch's NIR importer assumes):

- current ``u <- (1 - iDecay/4096) u + a``: ``tau_syn = dt * 4096 / iDecay`` and
  ``w_in = tau_syn / dt`` (the input is added unscaled);
- voltage ``v <- (1 - vDecay/4096) v + u``: ``tau_mem = dt * 4096 / vDecay``, ``r = tau_mem /
  dt``, ``v_leak = 0``; spike when ``v > vThMant``, then ``v = 0`` (``v_reset = 0``);
- weights are the file's integers, thresholds ``vThMant``: Loihi's common factor 2^6 on
  both sides cancels.

What NIR (or this mapping) cannot express is refused by name: SRM neurons (alpha PSP and
refractory kernel: no NIR primitive), dynamic thresholds, skip inputs, biases, axonal
delays, decays of 0 (``tau = inf``).  Two differences remain and are documented for any
comparison: Loihi truncates each decay to an integer (NIR is real-valued), and Lava's
synapses deliver one step late (NIR edges are instantaneous), so layer ``l`` of the file
lags NIR's by ``l`` steps (the network is time-invariant: a pure shift).
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from psplava.errors import PsplavaError, atomic_path
from psplava.netfile import NetLayer
from psplava.neurons.cuba import CubaHardware

#: one Loihi step in NIR's continuous time (snnTorch's importer assumes 1e-4 s)
DT = 1e-4


class NirExportError(PsplavaError):
    """The network has something NIR (or psplava's mapping) cannot express."""


def _check(layer: NetLayer) -> None:
    where = f"layer/{layer.index}"
    ntype = layer.model.type_name
    if not isinstance(layer.hardware, CubaHardware):
        raise NirExportError(f"{where}: {ntype} neurons have no NIR primitive (NIR has "
                             "CubaLIF, LIF, IF, LI, I); export a CUBA model (fine-tune with "
                             "--set model.neuron=cuba), or use the .net file with Lava")
    for attr, what in (("skips", "skip inputs (residual)"), ("bias", "a bias"),
                       ("delay", "axonal delays"), ("dynamic_threshold", "a dynamic "
                                                                         "threshold")):
        if getattr(layer, attr) not in (None, [], {}):
            raise NirExportError(f"{where}: {what} cannot be exported to NIR by psplava")
    for name in ("i_decay", "v_decay"):
        if getattr(layer.hardware, name) == 0:
            raise NirExportError(f"{where}: {name} = 0 (no decay) is tau = infinity, which "
                                 "NIR's CubaLIF cannot hold with finite w_in")


def _cuba(layer: NetLayer, shape: tuple[int, ...]):
    hw: CubaHardware = layer.hardware
    tau_syn = DT * 4096.0 / hw.i_decay
    tau_mem = DT * 4096.0 / hw.v_decay

    def full(v: float) -> np.ndarray:
        return np.full(shape, v, dtype=np.float32)

    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / DT),
                       v_leak=full(0.0), v_threshold=full(float(hw.v_th_mant)),
                       v_reset=full(0.0), w_in=full(tau_syn / DT))


def to_nir(layers: list[NetLayer]):
    """A ``nir.NIRGraph`` of a file's layers (:class:`psplava.netfile.NetLayer`)."""
    first = layers[0]
    if first.type != "input" or first.neuron:
        raise NirExportError("layer/0: the network must start with an input layer without "
                             "a neuron")
    shape = tuple(int(v) for v in first.shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges = []
    prev = "input"
    for layer in layers[1:]:
        name = f"{layer.type}{layer.index}"
        if layer.type == "flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                      end_dim=-1)
            shape = (int(np.prod(shape)),)
            edges.append((prev, name))
            prev = name
            continue
        if layer.type not in ("conv", "dense"):
            raise NirExportError(f"layer/{layer.index}: layer type {layer.type!r} has no "
                                 "NIR export in psplava")
        _check(layer)
        w = np.asarray(layer.weight, dtype=np.float32)
        if layer.type == "conv":
            nodes[name] = nir.Conv2d(input_shape=(shape[1], shape[2]), weight=w,
                                     stride=tuple(map(int, layer.stride)),
                                     padding=tuple(map(int, layer.padding)), dilation=1,
                                     groups=1, bias=np.zeros(w.shape[0], np.float32))
        else:
            nodes[name] = nir.Linear(weight=w)
        shape = tuple(int(v) for v in layer.shape)
        lif = f"lif{layer.index}"
        nodes[lif] = _cuba(layer, shape)
        edges += [(prev, name), (name, lif)]
        prev = lif
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"producer": "psplava", "dt": DT,
                                  "timing": "Lava delivers each synapse one step late; NIR "
                                            "edges are instantaneous"})


def write_nir(path: str | Path, layers: list[NetLayer]) -> None:
    """Write the NIR graph of ``layers`` to ``path`` (HDF5, ``nir.write``), atomically."""

    graph = to_nir(layers)
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)
