"""Simulation stage: run ``.net`` files (ours and lava-dl's) in Lava's CPU simulator
(``Loihi2SimCfg(select_tag='fixed_pt')``) and in a batched reference engine that is
bit-exact with it.  It knows nothing of training or export: the file is its contract.

Public API: :func:`read_netfile`, :func:`run_fixed` (reference engine, batched),
:func:`run_lava` (Lava; imported on first use, Lava's runtime is heavy),
:func:`lava_to_internal` / :func:`internal_to_lava` (layout conversions).
"""

from psplava.netfile import NetFile, NetFileError, read_netfile
from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed


def __getattr__(name: str):
    if name == "run_lava":
        # Lava's runtime loads on first use of run_lava
        from psplava.sim.lava_engine import run_lava

        return run_lava
    raise AttributeError(f"module 'psplava.sim' has no attribute {name!r}")


__all__ = ["NetFile", "NetFileError", "internal_to_lava", "lava_to_internal", "read_netfile",
           "run_fixed", "run_lava"]
