"""The ``.net`` file: netx HDF5 plus psplava's documented, versioned extension.

One schema -- the :class:`NetLayer` dataclass -- is written by :func:`write_netfile`
(:mod:`psplava.export`) and returned by :func:`read_netfile` (:mod:`psplava.sim`).  What
the numbers mean (the integer dynamics) is documented in ``docs/netfile.md`` and computed
by :mod:`psplava.loihi`.

Layout (netx's own; shapes are (C, H, W), Lava uses (W, H, C) = (x, y, f))::

    /                      attrs: psplava_format (int), psplava_version, config (JSON),
                                  checkpoint_sha256, checkpoint
    /layer/0               type "input", shape (C, H, W); no neuron group
    /layer/i               type "conv":    shape, weight (out, in, kh, kw) int, stride (2,),
                                           padding (2,), dilation (2,), groups, [bias], neuron/
                           type "flatten": shape
                           type "dense":   shape (F,), weight (out, in) int with inputs in
                                           netx's flatten order (C, H, W), [bias], neuron/
    /layer/i/neuron        CUBA (stock netx): iDecay, vDecay, vThMant, refDelay, gradedSpike
                           SRM (psplava extension, version 2): vThMant, tauS, tauR,
                                  refractory ("exp" | "alpha"), psDecay, refDecay (12-bit)
    /layer/i/dynamicThreshold/lambda   causal PSP-LN (Eq. 18), SRM layers only
    /layer/i/quant/{scale, rel_rms_error, max_abs_error}

Files written by lava-dl (no ``psplava_format`` attribute) read as format 0: stock netx.
Format 1 SRM layers (an older PSP unit) are refused: re-export their checkpoint.
Readers check everything before trusting it: unknown layer or neuron types, missing
fields, mismatched shapes and newer format versions are errors naming layer and field
(netx itself silently skips unknown layer types).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from psplava.errors import PsplavaError

FORMAT_VERSION = 2
#: format 1 (psplava before the Loihi-exact arithmetic) sent SRM PSPs at 2**8 units per
#: spike; its SRM layers mean something else now and are refused (re-export the checkpoint)
SRM_SINCE_VERSION = 2


class NetFileError(PsplavaError):
    """A ``.net`` file is unreadable, inconsistent or uses unsupported features."""


@dataclass
class NetLayer:
    """One layer as read from a file (integers as stored)."""

    index: int
    type: str
    shape: tuple[int, ...]                 # (C, H, W) or (F,)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    neuron: dict[str, Any] = field(default_factory=dict)
    dynamic_threshold: dict[str, float] | None = None
    quant: dict[str, float] = field(default_factory=dict)
    delay: np.ndarray | None = None        # lava-dl's axonal delays (dense), steps


@dataclass
class NetFile:
    path: str
    version: int
    layers: list[NetLayer]
    attrs: dict[str, Any]


def _text(v: Any) -> str:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else ""
    return v.decode() if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------- neuron registry
NEURON_FIELDS: dict[str, tuple[str, ...]] = {
    "CUBA": ("iDecay", "vDecay", "vThMant"),
    "LOIHI": ("iDecay", "vDecay", "vThMant"),
    "SDNN": ("vThMant",),
    "SRM": ("vThMant", "tauS", "tauR", "refractory", "psDecay", "refDecay"),
}


def _read_neuron(where: str, grp) -> dict[str, Any]:
    if "type" not in grp:
        raise NetFileError(f"{where}/neuron: missing field 'type'")
    ntype = _text(grp["type"][()])
    if ntype not in NEURON_FIELDS:
        raise NetFileError(f"{where}/neuron: unknown neuron type {ntype!r} (supported: "
                           f"{sorted(NEURON_FIELDS)})")
    out: dict[str, Any] = {"type": ntype}
    for key in grp.keys():
        v = grp[key][()]
        out[key] = _text(v) if key in ("type", "refractory", "activation") else (
            v.item() if isinstance(v, np.ndarray) and v.size == 1 else v)
    missing = [f for f in NEURON_FIELDS[ntype] if f not in out]
    if missing:
        raise NetFileError(f"{where}/neuron: {ntype} neuron misses field(s) {missing}")
    return out


# --------------------------------------------------------------------------- layer registry
def _need(where: str, grp, name: str):
    if name not in grp:
        raise NetFileError(f"{where}: missing field {name!r}")
    return grp[name][()]


def _pair(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(a[0]), int(a[-1]))


def _read_input(where, grp, layer: NetLayer) -> None:
    if "neuron" in grp:
        layer.neuron = _read_neuron(where, grp["neuron"])


def _read_conv(where, grp, layer: NetLayer) -> None:
    w = np.asarray(_need(where, grp, "weight"))
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 4:
        raise NetFileError(f"{where}: field 'weight' has shape {w.shape}, expected "
                           "(out, in, kh, kw)")
    layer.weight = w
    layer.stride = _pair(_need(where, grp, "stride"))
    layer.padding = _pair(_need(where, grp, "padding"))
    if "dilation" in grp and set(np.atleast_1d(grp["dilation"][()]).tolist()) != {1}:
        raise NetFileError(f"{where}: field 'dilation' != 1 is not supported")
    if "groups" in grp and int(np.asarray(grp["groups"][()]).reshape(-1)[0]) != 1:
        raise NetFileError(f"{where}: field 'groups' != 1 is not supported")
    if len(layer.shape) != 3 or w.shape[0] != layer.shape[0]:
        raise NetFileError(f"{where}: field 'weight' has {w.shape[0]} output channels but "
                           f"'shape' is {layer.shape}")
    _read_common(where, grp, layer)


def _read_dense(where, grp, layer: NetLayer) -> None:
    w = np.asarray(_need(where, grp, "weight"))
    n_out = int(np.prod(layer.shape))
    if w.ndim == 1:
        w = w.reshape(n_out, -1)
    if w.ndim != 2 or w.shape[0] != n_out:
        raise NetFileError(f"{where}: field 'weight' has shape {w.shape}, expected "
                           f"({n_out}, inputs)")
    layer.weight = w
    if "delay" in grp:
        layer.delay = np.asarray(grp["delay"][()]).astype(np.int64)
    _read_common(where, grp, layer)


#: the neuron netx gives a dense layer without a ``neuron`` group (lava-dl's ``Affine``
#: block writes such layers): a non-leaky current integrator with the largest threshold
#: (netx writes ``1 << 18 - 1``, which Python reads as ``1 << 17``)
IMPLICIT_DENSE_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17,
                         "refDelay": 1, "gradedSpike": False, "implicit": True}


def _read_common(where, grp, layer: NetLayer) -> None:
    if "neuron" not in grp:
        if layer.type != "dense":
            raise NetFileError(f"{where}: missing group 'neuron'")
        layer.neuron = dict(IMPLICIT_DENSE_NEURON)
    else:
        layer.neuron = _read_neuron(where, grp["neuron"])
    if "bias" in grp:
        layer.bias = np.asarray(grp["bias"][()])
    if "dynamicThreshold" in grp:
        if layer.neuron["type"] != "SRM":
            raise NetFileError(f"{where}: 'dynamicThreshold' needs an SRM neuron")
        layer.dynamic_threshold = {"lambda": float(_need(f"{where}/dynamicThreshold",
                                                         grp["dynamicThreshold"], "lambda"))}
    if "quant" in grp:
        layer.quant = {k: float(grp["quant"][k][()]) for k in grp["quant"].keys()}


def _read_flatten(where, grp, layer: NetLayer) -> None:
    return None


#: Layer readers by netx ``type``; extend this table to teach the reader a new type.
LAYER_READERS: dict[str, Callable[[str, Any, NetLayer], None]] = {
    "input": _read_input,
    "conv": _read_conv,
    "dense": _read_dense,
    "flatten": _read_flatten,
}


def read_netfile(path: str | Path) -> NetFile:
    """Read and check a ``.net`` file (ours or lava-dl's)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise NetFileError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise NetFileError(f"{path}: not a readable HDF5 file (truncated or another format: "
                           f"{str(exc).splitlines()[0]})") from None
    with f:
        attrs = {k: (_text(v) if isinstance(v, (bytes, np.ndarray)) else v)
                 for k, v in f.attrs.items()}
        version = int(attrs.get("psplava_format", 0))
        if version > FORMAT_VERSION:
            raise NetFileError(f"{path}: format version {version} is newer than this psplava "
                               f"reads ({FORMAT_VERSION}); upgrade psplava")
        if "layer" not in f:
            raise NetFileError(f"{path}: no 'layer' group (not a netx network)")
        group = f["layer"]
        keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if [str(i) for i in range(len(keys))] != keys:
            raise NetFileError(f"{path}: layers must be named 0..n-1, found {keys}")
        layers = []
        for i, key in enumerate(keys):
            where = f"{path}: layer/{key}"
            grp = group[key]
            ltype = _text(_need(where, grp, "type"))
            if ltype not in LAYER_READERS:
                raise NetFileError(f"{where}: unknown layer type {ltype!r} (supported: "
                                   f"{sorted(LAYER_READERS)}); netx would skip it silently")
            shape = tuple(int(v) for v in np.atleast_1d(_need(where, grp, "shape")))
            layer = NetLayer(index=i, type=ltype, shape=shape)
            LAYER_READERS[ltype](where, grp, layer)
            layers.append(layer)
    _check_chain(path, layers)
    if 0 < version < SRM_SINCE_VERSION and any(l.neuron.get("type") == "SRM" for l in layers):
        raise NetFileError(f"{path}: format {version} SRM layers use the PSP units of an older "
                           f"psplava (2**8 per spike); re-export the checkpoint with this "
                           f"version (format {FORMAT_VERSION})")
    return NetFile(str(path), version, layers, attrs)


def _check_chain(path: Path, layers: list[NetLayer]) -> None:
    """Input sizes of consecutive layers must agree."""
    if not layers or layers[0].type not in ("input", "dense"):
        raise NetFileError(f"{path}: layer/0 must be an 'input' layer with a shape (or a "
                           "'dense' layer, as lava-dl writes dense-first networks)")
    prev = layers[0].shape if layers[0].type == "input" else (int(layers[0].weight.shape[1]),)
    for layer in layers if layers[0].type == "dense" else layers[1:]:
        where = f"{path}: layer/{layer.index}"
        if layer.type == "conv":
            if len(prev) != 3 or layer.weight.shape[1] != prev[0]:
                raise NetFileError(f"{where}: field 'weight' expects {layer.weight.shape[1]} "
                                   f"input channels but the previous layer has shape {prev}")
            k = layer.weight.shape[2]
            out_hw = [(prev[1 + d] + 2 * layer.padding[d] - k) // layer.stride[d] + 1
                      for d in range(2)]
            if list(layer.shape[1:]) != out_hw:
                raise NetFileError(f"{where}: field 'shape' {layer.shape} does not match the "
                                   f"conv of a {prev} input (expected H, W = {out_hw})")
        elif layer.type == "dense":
            if layer.weight.shape[1] != int(np.prod(prev)):
                raise NetFileError(f"{where}: field 'weight' has {layer.weight.shape[1]} inputs "
                                   f"but the previous layer has {int(np.prod(prev))} neurons")
        elif layer.type == "flatten":
            layer.shape = (int(np.prod(prev)),)
        prev = layer.shape


def input_shape(net: NetFile) -> tuple[int, ...]:
    """One step of a file's input, Lava order (the ``--input`` contract, docs/netfile.md):
    for a file that starts with an ``input`` layer, its shape (x, y, f) -- what lava-dl's
    tests feed the input neuron's ``a_in`` when it has one, else spikes; for a dense-first
    file, (F,) spikes."""
    first = net.layers[0]
    if first.type == "input":
        shape = first.shape
        if len(shape) == 3:
            return (int(shape[2]), int(shape[1]), int(shape[0]))
        return (int(np.prod(shape)),)
    if first.type == "dense":
        return (int(first.weight.shape[1]),)
    raise NetFileError(f"{net.path}: layer/0 is {first.type!r}; a network starts with an "
                       "'input' or a 'dense' layer")


def write_netfile(path: str | Path, layers: list[NetLayer], attrs: dict[str, Any]) -> None:
    """Write :class:`NetLayer` s -- the dataclass :func:`read_netfile` returns -- atomically.

    ``stride``/``padding`` (and netx's ``dilation``/``groups``) are written for conv layers
    only; ``bias``, ``dynamic_threshold`` and ``quant`` when present.
    """
    import h5py

    from psplava.errors import atomic_path

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["psplava_format"] = FORMAT_VERSION
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            for i, layer in enumerate(layers):
                g = f.create_group(f"layer/{i}")
                g.create_dataset("type", (1,), "S10", [layer.type.encode("ascii")])
                g.create_dataset("shape", data=np.asarray(layer.shape))
                conv = layer.type == "conv"
                for key, value in (("weight", layer.weight), ("bias", layer.bias),
                                   ("stride", layer.stride if conv else None),
                                   ("padding", layer.padding if conv else None)):
                    if value is not None:
                        g.create_dataset(key, data=np.asarray(value))
                if conv:
                    g.create_dataset("dilation", data=np.array([1, 1]))
                    g.create_dataset("groups", data=1)
                for sub, values in (("neuron", layer.neuron),
                                    ("dynamicThreshold", layer.dynamic_threshold),
                                    ("quant", layer.quant)):
                    if sub == "neuron" and (values or {}).get("implicit"):
                        continue  # netx's default neuron: written as lava-dl writes it
                    for key, value in (values or {}).items():
                        g.create_dataset(f"{sub}/{key}", data=value)  # str as lava-dl does
