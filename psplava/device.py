"""Devices by name: ``auto | cpu | cuda | cuda:N`` for every command that computes with
torch (training, evaluation, export's accuracy check, the reference engine).  ``auto``
picks CUDA when a GPU is present.  Core: the stages and the glue all use it."""

from __future__ import annotations

import re

import torch

from psplava.errors import ConfigError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str | None) -> torch.device:
    """The torch device for ``auto | cpu | cuda | cuda:N`` (``None`` = auto); a CUDA
    device that is not there is refused with one line."""
    name = "auto" if name in (None, "") else str(name)
    if not DEVICE_PATTERN.match(name):
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name}: no CUDA GPU is available here (torch "
                              f"{torch.__version__}); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name}: only {torch.cuda.device_count()} GPU(s)")
    return dev


def describe(dev: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: the device as logs and JSON name it."""
    if dev.type == "cuda":
        i = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    return "cpu"
