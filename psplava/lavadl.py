"""lava-dl's SLAYER, imported once and quietly.

``import lava.lib.dl.slayer`` prints a warning about an optional Prophesee toolbox to
*stdout* (from its object-detection datasets), which would break commands whose last
stdout line must be JSON; the import is redirected to stderr here.  Import slayer
through this module.
"""

from __future__ import annotations

import contextlib
import sys

with contextlib.redirect_stdout(sys.stderr):
    from lava.lib.dl import slayer  # noqa: E402

# Lava's runtime calls multiprocessing.set_start_method('fork') (without force) when it is
# first imported, which fails once anything has fixed the start method -- numba's parallel
# kernels do.  Importing it here, before any kernel runs, keeps `psplava sim` working in a
# process that trained or evaluated first.
import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: E402,F401

__all__ = ["slayer"]
