"""Memory a command is about to need, checked before it allocates: a size that would
exhaust the machine is refused up front with the estimate (issue 22), instead of a
MemoryError traceback or a swapping machine."""

from __future__ import annotations

import os

import numpy as np

from psplava.errors import PsplavaError
from psplava.netfile import NetFile, input_shape

#: the share of the machine's memory one allocation plan may take
SHARE = 0.5


def total_memory() -> int:
    """Bytes of physical memory (a generous 64 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 64 << 30


def check_fits(nbytes: float, what: str) -> None:
    """Refuse (one line naming ``what`` and the estimate) when ``nbytes`` exceeds
    :data:`SHARE` of the machine's memory."""
    limit = SHARE * total_memory()
    if nbytes > limit:
        raise PsplavaError(f"{what} would need about {nbytes / 2**30:,.1f} GiB of memory, more "
                           f"than {limit / 2**30:,.1f} GiB ({SHARE:.0%} of this machine's); "
                           "use fewer steps or recordings")


def batch_bytes(net: NetFile, n: int, steps: int) -> float:
    """Bytes a batch of ``n`` recordings of ``steps`` steps takes through a file's engines:
    the input in float32 (twice: binned and padded) and every layer's output."""
    inputs = float(np.prod(input_shape(net)))
    neurons = sum(float(np.prod(layer.shape)) for layer in net.layers
                  if layer.type in ("conv", "dense"))
    return float(n) * steps * (8 * inputs + 9 * neurons)
