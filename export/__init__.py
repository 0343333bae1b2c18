"""Export stage: a checkpoint -> a netx HDF5 ``.net`` file (format: ``docs/netfile.md``).

Normalization folded into weights (PSP-BN, BN, tdBN) or dynamic thresholds (causal PSP-LN,
Eq. 18), weights and neuron constants quantized for Loihi -- all read from the model's own
``SpikingLayer.hardware()``, the tensors its ``loihi`` arithmetic runs.

Public API: :func:`export_checkpoint`, :func:`build_layers`, :func:`write_netfile`.  They
load with their modules (PEP 562): importing a submodule (``psplava.export.cli``) does not
load the training stage, torch and lava-dl.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"build_layers": "psplava.export.exporter",
         "export_checkpoint": "psplava.export.exporter",
         "write_netfile": "psplava.netfile"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'psplava.export' has no attribute {name!r}")


__all__ = ["build_layers", "export_checkpoint", "write_netfile"]
