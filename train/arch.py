"""Architecture strings in the paper's notation, parsed into layer specs.

Grammar (tokens separated by ``-``; whitespace ignored)::

    arch    := input ("-" item)*
    input   := H "x" W ["x" C]                  34x34x2 (N-MNIST), 34x34 (F-MNIST, C = 1)
    item    := layer | block | pool | "{" item ("-" item)* "}*" K    group repeated K times
    layer   := conv | dense
    conv    := [n] OUT "c" K ["s" S] [n]        3x3 conv, OUT channels, stride S (default 1)
    dense   := [n] OUT [n]                      fully connected (flattens its input)
    block   := "r" OUT ["s" S]                  residual block (the paper's Fig. 3): two
                                                PSP-normalized 3x3 convs, OUT channels, the
                                                first with stride S, and a shortcut
    pool    := ("ap" | "mp") K                  average / max pooling (K x K, stride K) of
                                                the next layer's input PSP

``n`` *before* a layer marks a PSP normalization on its input (the paper's ``n8c3``);
``n`` *after* marks a membrane normalization of its output (``8c3n``).  Which norm is
used is the config's ``model.norm``; the markers say where.  Convs use "same" padding
(k // 2), so only strides down-sample.  The paper does not say where to down-sample;
psplava's CPU configs put stride 2 on the first conv of each wider group (``n16c3s2``,
``n32c3s2``), and the paper configs keep its strings (no down-sampling).

Example, the paper's N-MNIST net: ``34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10``
(repetition braces bind a group; ``*5`` repeats it).

Residual blocks (``r16``, ``r32s2``) expand to two layers; the second carries the shortcut.
Whether blocks are pre- or post-activation is the config's ``model.block``
(:mod:`psplava.train.model` has the equations).  The shortcut is the identity when the
block keeps the shape, else a 1x1 projection conv with the block's stride.  Depth counts
layers with weights as He et al. do (stem conv, two convs per block, the dense head;
projections not counted): ``resnet_arch(N)`` builds ResNet-N, N = 4n + 2 with n blocks in
each of two stages (widths 16 and 32, the second stage down-sampling by 2), so ResNet-106
has n = 26 (52 blocks) and ResNet-42 has 20 blocks.

Pooling (``ap2``, ``mp2``) acts on the PSP that enters the next layer's synapse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from psplava.errors import ConfigError
from psplava.netfile import LayerKind


class Shortcut(str, Enum):
    """What a residual block's second layer adds (:mod:`psplava.train.model`'s docstring)."""

    MEMBRANE = "membrane"      # pre-activation: the membrane input of the layer before
    IDENTITY = "identity"      # post-activation: the block's normalized input PSP
    PROJECTION = "projection"  # a shape-changing block: a 1x1 conv of that PSP

    @property
    def via_conv(self) -> bool:
        """Carried by a 1x1 conv synapse of the block input's PSP (a file's conv skip)."""
        return self is not Shortcut.MEMBRANE


@dataclass(frozen=True)
class LayerSpec:
    """One synaptic layer followed by a neuron layer."""

    kind: LayerKind    # CONV or DENSE
    out: int           # output channels / features
    kernel: int = 1    # conv kernel size
    stride: int = 1    # conv stride
    pre_norm: bool = False   # PSP normalization on this layer's input
    post_norm: bool = False  # membrane normalization on this layer's output
    block: str | None = None  # "first" / "second" layer of a residual block
    pool: tuple[str, int] | None = None  # ("avg" | "max", K) on this layer's input PSP


_CONV = re.compile(r"^(n?)(\d+)c(\d+)(?:s(\d+))?(n?)$")
_DENSE = re.compile(r"^(n?)(\d+)(n?)$")
_BLOCK = re.compile(r"^r(\d+)(?:s(\d+))?$")
_POOL = re.compile(r"^(ap|mp)(\d+)$")
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
    pool = None
    for tok in _split_top(text):
        n_before = len(layers)
        if not tok:
            raise ConfigError(f"empty token in architecture {full!r}")
        if tok.startswith("{"):
            m = re.fullmatch(r"\{(.*)\}\*(\d+)", tok)
            if not m:
                raise ConfigError(f"bad group {tok!r} in {full!r}: expected '{{...}}*K'")
            layers.extend(_parse_items(m.group(1), full) * int(m.group(2)))
        elif m := _POOL.match(tok):
            k = int(m.group(2))
            if k < 1:
                raise ConfigError(f"pooling {tok!r} in {full!r}: kernel must be >= 1")
            if pool is not None:
                raise ConfigError(f"two poolings in a row in {full!r}")
            pool = ("avg" if m.group(1) == "ap" else "max", k)
            continue
        elif m := _BLOCK.match(tok):
            c, s_ = int(m.group(1)), int(m.group(2) or 1)
            if c < 1 or s_ < 1:
                raise ConfigError(f"block {tok!r} in {full!r}: needs >= 1 channel, stride >= 1")
            layers.append(LayerSpec(LayerKind.CONV, c, 3, s_, pre_norm=True, block="first"))
            layers.append(LayerSpec(LayerKind.CONV, c, 3, 1, pre_norm=True, block="second"))
        elif m := _CONV.match(tok):
            k, s = int(m.group(3)), int(m.group(4) or 1)
            if k % 2 == 0 or k < 1 or s < 1:
                raise ConfigError(f"conv {tok!r} in {full!r}: kernel must be odd, stride >= 1")
            if int(m.group(2)) < 1:
                raise ConfigError(f"conv {tok!r} in {full!r}: needs at least 1 output channel")
            layers.append(LayerSpec(LayerKind.CONV, int(m.group(2)), k, s, bool(m.group(1)),
                                    bool(m.group(5))))
        elif m := _DENSE.match(tok):
            if int(m.group(2)) < 1:
                raise ConfigError(f"dense {tok!r} in {full!r}: needs at least 1 output")
            layers.append(LayerSpec(LayerKind.DENSE, int(m.group(2)), pre_norm=bool(m.group(1)),
                                    post_norm=bool(m.group(3))))
        else:
            raise ConfigError(f"unknown layer token {tok!r} in architecture {full!r}")
        if pool is not None and len(layers) > n_before:
            if layers[n_before].pool is not None:
                raise ConfigError(f"two poolings in a row in {full!r}")
            layers[n_before] = replace(layers[n_before], pool=pool)
            pool = None
    if pool is not None:
        raise ConfigError(f"architecture {full!r} ends with a pooling; it pools the input "
                          "of the layer after it")
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


def resnet_arch(depth: int, input_shape: str = "34x34x2", widths: tuple[int, int] = (16, 32),
                classes: int = 10) -> str:
    """The architecture string of ResNet-``depth``: a stem conv, ``n`` blocks of
    ``widths[0]`` channels, ``n`` blocks of ``widths[1]`` (the first down-sampling by 2,
    with a projection shortcut) and a dense head; ``depth = 4 n + 2`` layers with weights."""
    if depth < 6 or (depth - 2) % 4:
        raise ConfigError(f"ResNet depth {depth}: must be 4 n + 2 with n >= 1 (6, 10, ..., 106)")
    n = (depth - 2) // 4
    w1, w2 = widths
    stage1 = f"{{r{w1}}}*{n}" if n > 1 else f"r{w1}"
    stage2 = f"r{w2}s2" + (f"-{{r{w2}}}*{n - 1}" if n > 1 else "")
    return f"{input_shape}-n{w1}c3-{stage1}-{stage2}-n{classes}"
