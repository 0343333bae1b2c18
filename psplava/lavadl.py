"""lava-dl's SLAYER, imported once and quietly.

``import lava.lib.dl.slayer`` prints a warning about an optional Prophesee toolbox to
*stdout* (from its object-detection datasets), which would break commands whose last
stdout line must be JSON, and torch's extension loader prints "No CUDA runtime is found,
using CUDA_HOME=..." to stderr on a machine without CUDA.  Neither concerns psplava's
users: both are swallowed here, and shown on stderr with ``--debug`` on the command line
(or ``PSPLAVA_DEBUG=1``).  Import slayer through this module.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import sys

DEBUG = "--debug" in sys.argv or bool(os.environ.get("PSPLAVA_DEBUG"))
_captured = io.StringIO()
with contextlib.redirect_stdout(sys.stderr if DEBUG else _captured), \
        contextlib.redirect_stderr(sys.stderr if DEBUG else _captured):
    from lava.lib.dl import slayer  # noqa: E402
import torch  # noqa: E402  (loaded by slayer above, quietly)

#: what the import printed (empty with --debug, which lets it through)
IMPORT_MESSAGES = _captured.getvalue()


def _compile_for_this_gpu() -> None:
    """Have lava-dl's CUDA kernels compiled for the GPU that is present.

    lava-dl 0.6.0's ``slayer.jitconfig`` sets ``TORCH_CUDA_ARCH_LIST = '8.0'`` for every
    GPU of compute capability 8 or more (a stop-gap for the RTX 3080), so the kernels it
    compiles with nvcc at first use hold sm_80 machine code alone and fail on newer chips
    ("no kernel image is available for execution on the device" on an H200, measured by
    ``scripts/gpu_check.sh``).  Name the present GPU's capability instead; lava-dl reads the
    setting when it compiles.
    """
    if torch.cuda.is_available() and slayer.jitconfig.TORCH_CUDA_ARCH_LIST is not None:
        major, minor = torch.cuda.get_device_capability(0)
        slayer.jitconfig.TORCH_CUDA_ARCH_LIST = f"{major}.{minor}"


_compile_for_this_gpu()

def import_lava_runtime() -> None:
    """Import Lava's runtime whatever fixed the multiprocessing start method before.

    Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')``
    (without ``force``) on first import, which raises once anything has fixed the start
    method -- numba's parallel kernels do.  Forcing 'fork' (Linux's default, and what Lava
    needs) for that one call makes the import order irrelevant.
    """
    original = mp.set_start_method

    def _forced(method, force=False):
        original(method, force=True)

    mp.set_start_method = _forced
    try:
        # its first import must happen here, inside the patch
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    finally:
        mp.set_start_method = original


import_lava_runtime()
