"""Progress for long commands: a tqdm bar on a terminal, plain periodic lines in a log
(stderr redirected to a file gets no carriage-return bars), nothing when disabled."""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable

from tqdm import tqdm

#: seconds between two plain progress lines in a log
EVERY_S = 30.0


class _Lines:
    """tqdm's ``update``/``close``/iteration, written as a line every :data:`EVERY_S`."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str | None,
                 unit: str) -> None:
        self.iterable, self.desc, self.unit = iterable, desc or "progress", unit
        self.total = total if total is not None else (
            len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = 0
        self.t0 = self.last = time.time()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.time()
        if now - self.last >= EVERY_S:
            self.last = now
            of = f"/{self.total}" if self.total is not None else ""
            print(f"{self.desc}: {self.n}{of} {self.unit}s, {now - self.t0:.0f} s",
                  file=sys.stderr, flush=True)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """tqdm's postfix: the plain lines report counts only."""

    def close(self) -> None:
        pass


class _Off(_Lines):
    def update(self, n: int = 1) -> None:
        self.n += n


def progress(iterable: Iterable | None = None, *, total: int | None = None,
             desc: str | None = None, enabled: bool = True, unit: str = "it",
             **tqdm_kw: Any):
    """A progress reporter over ``iterable`` (or ``total`` updates)."""
    if not enabled:
        return _Off(iterable, total, desc, unit)
    if not sys.stderr.isatty():
        return _Lines(iterable, total, desc, unit)

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, **tqdm_kw)
