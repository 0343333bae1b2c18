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

__all__ = ["slayer"]
