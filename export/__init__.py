"""Export stage: a checkpoint -> a netx HDF5 ``.net`` file (format: ``docs/netfile.md``).

Normalization folded into weights (PSP-BN, BN, tdBN) or dynamic thresholds (causal PSP-LN,
Eq. 18), weights and neuron constants quantized for Loihi -- all read from the model's own
``SpikingLayer.hardware()``, the tensors its ``loihi`` arithmetic runs.

Public API: :func:`export_checkpoint`, :func:`build_layers`, :func:`write_netfile`.
"""

from psplava.export.exporter import build_layers, export_checkpoint
from psplava.netfile import write_netfile

__all__ = ["build_layers", "export_checkpoint", "write_netfile"]
