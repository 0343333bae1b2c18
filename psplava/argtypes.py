"""argparse types shared by every command: numbers with a declared range.

A bad value is argparse's own one-line error (exit 2) naming the flag, before any work:
``--limit -1`` is refused rather than silently meaning "all but one", ``--limit 0``
rather than "accuracy 0.0 on 0 samples", and ``nan`` / ``inf`` rather than a traceback
or a run that never ends.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from psplava.errors import PsplavaError


def bounded(kind: type, lo: float | None = None, hi: float | None = None,
            above: float | None = None) -> Callable[[str], float | int]:
    """A ``kind`` (int or float), finite, with ``lo <= v <= hi`` and ``v > above``."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        rng = []
        if above is not None:
            rng.append(f"> {above:g}")
        if lo is not None:
            rng.append(f">= {lo:g}")
        if hi is not None:
            rng.append(f"<= {hi:g}")
        bad = not math.isfinite(v) or (above is not None and not v > above) or \
            (lo is not None and v < lo) or (hi is not None and v > hi)
        if bad:
            raise argparse.ArgumentTypeError(
                f"expected a finite {kind.__name__} {' and '.join(rng)}, got {text!r}")
        return v
    parse.__name__ = kind.__name__   # argparse names the type in its message
    return parse


#: a positive count or size (samples, steps, slices)
positive_int = bounded(int, lo=1)
#: a count where 0 means "none" (e.g. --eval-samples 0: skip the check)
count_int = bounded(int, lo=0)
#: a positive finite number (a bin width in ms)
positive_float = bounded(float, above=0)
#: the most time steps a command accepts (the config's ``data.steps`` range)
MAX_STEPS = 100_000
#: time steps T of a recording (``--steps``)
steps_int = bounded(int, lo=1, hi=MAX_STEPS)


def refuse_unused(args: argparse.Namespace, dests: tuple[str, ...], why: str) -> None:
    """Flags that do not apply to the chosen mode are refused, not ignored: each ``dest``
    of ``dests`` (flags whose default is ``None`` or ``False``) must not have been given.
    Raises :class:`psplava.errors.PsplavaError` naming the first flag that was."""
    for dest in dests:
        if getattr(args, dest, None) not in (None, False):
            raise PsplavaError(f"--{dest.replace('_', '-')} does not apply {why}")
