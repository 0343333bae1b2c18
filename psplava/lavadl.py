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

def import_lava_runtime() -> None:
    """Import Lava's runtime whatever fixed the multiprocessing start method before.

    Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')``
    (without ``force``) on first import, which raises once anything has fixed the start
    method -- numba's parallel kernels do.  Forcing 'fork' (Linux's default, and what Lava
    needs) for that one call makes the import order irrelevant.
    """
    import multiprocessing as mp

    original = mp.set_start_method

    def _forced(method, force=False):
        original(method, force=True)

    mp.set_start_method = _forced
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    finally:
        mp.set_start_method = original


import_lava_runtime()
