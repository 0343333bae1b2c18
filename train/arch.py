"""Architecture strings in the paper's notation, parsed into layer specs.

Grammar (tokens separated by ``-``; whitespace ignored)::

    arch    := input ("-" item)*
    input   := H "x" W ["x" C]                  34x34x2 (N-MNIST), 34x34 (F-MNIST, C = 1)
    item    := layer | "{" item ("-" item)* "}*" K    group repeated K times
    layer   := conv | dense
    conv    := [n] OUT "c" K ["s" S] [n]        3x3 conv, OUT channels, stride S (default 1)
    dense   := [n] OUT [n]                      fully connected (flattens its input)

``n`` *before* a layer marks a PSP normalization on its input (the paper's ``n8c3``);
``n`` *after* marks a membrane normalization of its output (``8c3n``).  Which norm is
used is the config's ``model.norm``; the markers say where.  Convs use "same" padding
(k // 2), so only strides down-sample.  The paper does not say where to down-sample;
psplava's CPU configs put stride 2 on the first conv of each wider group (``n16c3s2``,
``n32c3s2``), and the paper configs keep its strings (no down-sampling).

Example, the paper's N-MNIST net: ``34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10``
(repetition braces bind a group; ``*5`` repeats it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psplava.errors import ConfigError


@dataclass(frozen=True)
class LayerSpec:
    """One synaptic layer followed by a neuron layer."""

    kind: str          # "conv" or "dense"
    out: int           # output channels / features
    kernel: int = 1    # conv kernel size
    stride: int = 1    # conv stride
    pre_norm: bool = False   # PSP normalization on this layer's input
    post_norm: bool = False  # membrane normalization on this layer's output


_CONV = re.compile(r"^(n?)(\d+)c(\d+)(?:s(\d+))?(n?)$")
_DENSE = re.compile(r"^(n?)(\d+)(n?)$")
_INPUT = re.compile(r"^(\d+)x(\d+)(?:x(\d+))?$")


def _split_top(s: str) -> list[str]:
    """Split on '-' outside braces."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced '}}' in architecture {s!r}")
        if ch == "-" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ConfigError(f"unbalanced '{{' in architecture {s!r}")
    parts.append("".join(cur))
    return parts


def _parse_items(text: str, full: str) -> list[LayerSpec]:
    layers: list[LayerSpec] = []
    for tok in _split_top(text):
        if not tok:
            raise ConfigError(f"empty token in architecture {full!r}")
        if tok.startswith("{"):
            m = re.fullmatch(r"\{(.*)\}\*(\d+)", tok)
            if not m:
                raise ConfigError(f"bad group {tok!r} in {full!r}: expected '{{...}}*K'")
            layers.extend(_parse_items(m.group(1), full) * int(m.group(2)))
        elif m := _CONV.match(tok):
            k, s = int(m.group(3)), int(m.group(4) or 1)
            if k % 2 == 0 or k < 1 or s < 1:
                raise ConfigError(f"conv {tok!r} in {full!r}: kernel must be odd, stride >= 1")
            if int(m.group(2)) < 1:
                raise ConfigError(f"conv {tok!r} in {full!r}: needs at least 1 output channel")
            layers.append(LayerSpec("conv", int(m.group(2)), k, s, bool(m.group(1)),
                                    bool(m.group(5))))
        elif m := _DENSE.match(tok):
            if int(m.group(2)) < 1:
                raise ConfigError(f"dense {tok!r} in {full!r}: needs at least 1 output")
            layers.append(LayerSpec("dense", int(m.group(2)), pre_norm=bool(m.group(1)),
                                    post_norm=bool(m.group(3))))
        else:
            raise ConfigError(f"unknown layer token {tok!r} in architecture {full!r}")
    return layers


def parse_arch(text: str) -> tuple[tuple[int, int, int], list[LayerSpec]]:
    """Parse an architecture string into ``((H, W, C), [LayerSpec, ...])``."""
    full = "".join(text.split())
    parts = _split_top(full)
    m = _INPUT.match(parts[0])
    if not m:
        raise ConfigError(f"architecture {text!r} must start with the input shape HxW[xC]")
    shape = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
    if min(shape) < 1:
        raise ConfigError(f"architecture {text!r}: input shape {shape} must be positive")
    if len(parts) < 2:
        raise ConfigError(f"architecture {text!r} has no layers")
    layers = _parse_items("-".join(parts[1:]), full)
    seen_dense = False
    for layer in layers:
        if layer.kind == "dense":
            seen_dense = True
        elif seen_dense:
            raise ConfigError(f"architecture {text!r}: a conv cannot follow a dense layer")
    return shape, layers


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1
