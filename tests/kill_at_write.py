"""Run ``psplava`` and SIGKILL it at the K-th write moment inside one folder.

Usage: ``python kill_at_write.py K FOLDER psplava-args...``

Write moments, counted in order over the run: for each atomic commit (``os.replace``) of a
file in FOLDER, just before and just after it; for each append to a file in FOLDER (the
metrics log), before it, after half of the text, and after it.  If the run makes fewer than
K + 1 moments it ends normally.  A test harness only: psplava itself has no kill hooks.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
from pathlib import Path

K = int(sys.argv[1])
FOLDER = Path(sys.argv[2]).resolve()
_moment = [0]


def _tick() -> None:
    if _moment[0] == K:
        os.kill(os.getpid(), signal.SIGKILL)
    _moment[0] += 1


def _inside(path) -> bool:
    try:
        return Path(path).resolve().parent == FOLDER
    except (TypeError, OSError):
        return False


_replace = os.replace


def replace(src, dst, *args, **kwargs):
    if not _inside(dst):
        return _replace(src, dst, *args, **kwargs)
    _tick()
    out = _replace(src, dst, *args, **kwargs)
    _tick()
    return out


class _Appender:
    def __init__(self, fh):
        self._fh = fh

    def write(self, text: str) -> int:
        _tick()
        half = len(text) // 2
        self._fh.write(text[:half])
        self._fh.flush()
        _tick()
        n = self._fh.write(text[half:])
        self._fh.flush()
        _tick()
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __getattr__(self, name):
        return getattr(self._fh, name)


_open = builtins.open


def open_(file, mode="r", *args, **kwargs):
    fh = _open(file, mode, *args, **kwargs)
    if "a" in mode and "+" not in mode and _inside(file):
        return _Appender(fh)
    return fh


os.replace = replace
builtins.open = open_

from psplava.cli import main  # noqa: E402

sys.exit(main(sys.argv[3:]))
