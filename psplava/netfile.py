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
    /layer/i/neuron        one group per neuron type, its keys and checks in the type's
                           module of psplava.neurons:
                           CUBA (stock netx): iDecay, vDecay, vThMant, refDelay, gradedSpike
                           SRM (psplava extension): vThMant, tauS, tauR, refractory
                                  ("exp" | "alpha"); formats 2-4 also psDecay, refDecay
                                  (12-bit), which format 5 derives from tauS and tauR
    /layer/i/dynamicThreshold/lambda   causal PSP-LN (Eq. 18), SRM layers only
    /layer/i/dynamicThreshold/{prior, priorSteps}   format 4: the running moment's prior
    /layer/i/quant/{scale, rel_rms_error, max_abs_error}
    /layer/i/skip/<n>      format 3, SRM layers: more inputs of the layer's neurons, summed
                           with its own synapse's: source (index of an earlier layer), mode
                           "conv" (a conv synapse from the source's output: weight, stride,
                           padding) or "membrane" (the source's synaptic input, as is)

Files written by lava-dl (no ``psplava_format`` attribute) read as format 0: stock netx.
Format 1 SRM layers (an older PSP unit) are refused: re-export their checkpoint.
Readers check everything before trusting it: unknown layer or neuron types, missing
fields, mismatched shapes and newer format versions are errors naming layer and field
(netx itself silently skips unknown layer types); values too (finite integers within the
format's ranges, positive time constants, 12-bit decays), each dataset's declared size
before it is read, and the whole parse runs in a forked child, so a corrupted file that
crashes the HDF5 library is one error line too.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from psplava.errors import PsplavaError, atomic_path
from psplava.loihi import DynamicThreshold
from psplava.neurons import NeuronGroupError, NeuronModel, network_latency, neuron_model

FORMAT_VERSION = 5
#: files with a dynamic threshold's prior need a reader of this version
PRIOR_SINCE_VERSION = 4
#: files with skip inputs (residual networks) need a reader of this version
SKIP_SINCE_VERSION = 3
#: 12-bit decays: 0 (none) .. 4096 (everything, each step)
DECAY_UNITY_FILE = 4096
#: weight magnitudes Loihi's 8-bit mantissa (with sign) holds
WEIGHT_LIMIT = 256


class NetFileError(PsplavaError):
    """A ``.net`` file is unreadable, inconsistent or uses unsupported features."""


class LayerKind(str, Enum):
    """netx's layer ``type`` (the ones psplava reads and writes)."""

    INPUT = "input"
    CONV = "conv"
    DENSE = "dense"
    FLATTEN = "flatten"


class SkipMode(str, Enum):
    """How a skip input reaches a layer's neurons (format 3)."""

    CONV = "conv"           # a conv synapse from the source's output (PSP messages)
    MEMBRANE = "membrane"   # the source's synaptic input z of the same step, as is


@dataclass(frozen=True)
class Skip:
    """One more input of a layer's neurons (format 3, residual networks), summed with its
    own synapse's: from layer ``source``; a ``conv`` skip has its own weight (out, in, kh,
    kw), stride and padding."""

    source: int
    mode: SkipMode
    weight: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def group(self) -> dict[str, Any]:
        """The file's ``skip/<j>`` datasets."""
        out: dict[str, Any] = {"source": self.source, "mode": SkipMode(self.mode).value}
        if SkipMode(self.mode) is SkipMode.CONV:
            out.update(weight=self.weight, stride=self.stride, padding=self.padding)
        return out


@dataclass(frozen=True)
class NeuronGroup:
    """A layer's neurons, typed: the type's model, its integer parameters (the type's
    hardware dataclass; an ``input`` layer's as the input neuron) and the keys of the file
    group that the type does not read (lava-dl writes some), kept so that a file written
    again keeps them.  ``implicit``: netx's default neuron of a dense layer without a
    group (:data:`IMPLICIT_DENSE_NEURON`; not written)."""

    model: NeuronModel
    hardware: Any
    extra: dict[str, Any] = field(default_factory=dict)
    implicit: bool = False

    @classmethod
    def read(cls, values: dict[str, Any], where: str, version: int | None = None,
             is_input: bool = False, implicit: bool = False) -> "NeuronGroup":
        """The group of a file's raw ``values`` (``type`` and the netx keys), checked by its
        type's model for a file of format ``version`` (None: the current format; 0: a
        file without psplava's attribute, as lava-dl writes)."""
        version = FORMAT_VERSION if version is None else version
        model = neuron_model(values.get("type"), where)
        if 0 < version < model.oldest_format:
            raise NetFileError(f"{where}: format {version} {model.type_name} layers "
                               f"{model.older_format_note} (format {FORMAT_VERSION})")
        try:
            checked = model.check(where, values, version)
        except NeuronGroupError as exc:
            raise NetFileError(str(exc)) from None
        hw = model.input_hardware(checked) if is_input else model.hardware(checked)
        written = model.group(hw)
        return cls(model, hw, {k: v for k, v in checked.items() if k not in written},
                   implicit)

    def group(self) -> dict[str, Any]:
        """The file group: ``type`` and the type's keys, then the keys kept as read."""
        return {**self.model.group(self.hardware), **self.extra}


@dataclass
class NetLayer:
    """One layer as read from a file (integers as stored)."""

    index: int
    type: LayerKind                        # a plain string is converted
    shape: tuple[int, ...]                 # (C, H, W) or (F,)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    #: the layer's neurons (None: a flatten layer, an input layer without a neuron); a dict
    #: of netx keys given to the constructor is read as a group of the current format
    neuron: NeuronGroup | None = None
    dynamic_threshold: DynamicThreshold | None = None
    quant: dict[str, float] = field(default_factory=dict)
    delay: np.ndarray | None = None        # lava-dl's axonal delays (dense), steps
    skips: list[Skip] = field(default_factory=list)  # format 3: more inputs

    def __post_init__(self) -> None:
        self.type = LayerKind(self.type)
        if isinstance(self.neuron, dict):
            self.neuron = NeuronGroup.read(self.neuron, f"layer/{self.index}/neuron",
                                           is_input=self.type is LayerKind.INPUT) \
                if self.neuron else None

    @property
    def model(self) -> NeuronModel:
        """The registered model of this layer's neuron type (:mod:`psplava.neurons`)."""
        if self.neuron is None:
            raise NetFileError(f"layer/{self.index}: has no neurons")
        return self.neuron.model

    @property
    def hardware(self) -> Any:
        """The layer's integer neuron parameters (its type's hardware dataclass)."""
        if self.neuron is None:
            raise NetFileError(f"layer/{self.index}: has no neurons")
        return self.neuron.hardware


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


# --------------------------------------------------------------------------- neuron groups
def _read_neuron(where: str, grp, version: int, is_input: bool = False) -> NeuronGroup:
    """A neuron group, checked against its type's fields (:mod:`psplava.neurons`) for a
    file of format ``version``."""
    if "type" not in grp:
        raise NetFileError(f"{where}/neuron: missing field 'type'")
    out: dict[str, Any] = {"type": _text(grp["type"][()])}
    neuron_model(out["type"], f"{where}/neuron")   # an unknown type is refused first
    for key in grp.keys():
        v = _read(f"{where}/neuron", grp, key)
        out[key] = _text(v) if isinstance(v, (bytes, np.bytes_)) or (
            isinstance(v, np.ndarray) and v.dtype.kind in "SOU") else (
            v.item() if isinstance(v, np.ndarray) and v.size == 1 else v)
    return NeuronGroup.read(out, f"{where}/neuron", version, is_input)


# --------------------------------------------------------------------------- layer registry
#: largest dataset a reader loads (a 96 KB file must not make it allocate 100 TB)
MAX_DATASET_BYTES = 1 << 31


def _read(where: str, obj, name: str):
    """``obj[name][()]`` after checking the dataset's declared size against the file's size
    (uncompressed data cannot be larger than its file) and :data:`MAX_DATASET_BYTES`."""
    d = obj[name]
    if not isinstance(d, h5py.Dataset):
        raise NetFileError(f"{where}: field {name!r} is a group, expected a dataset")
    try:
        nbytes = int(np.prod(d.shape, dtype=np.float64) * d.dtype.itemsize) if d.shape else 0
    except TypeError:
        nbytes = 0
    file_size = Path(d.file.filename).stat().st_size
    if nbytes > MAX_DATASET_BYTES or (d.compression is None and nbytes > file_size):
        raise NetFileError(f"{where}: field {name!r} declares {nbytes:,} bytes (shape "
                           f"{d.shape}) in a {file_size:,}-byte file; refusing to read it")
    try:
        return d[()]
    except (OSError, ValueError) as exc:
        raise NetFileError(f"{where}: field {name!r} is unreadable "
                           f"({str(exc).splitlines()[0]})") from None


#: the dynamic threshold's file keys: (file key, DynamicThreshold field, positive?)
_DYNAMIC_KEYS = (("lambda", "lam", True), ("prior", "prior", False),
                 ("priorSteps", "prior_steps", False))


def _read_dynamic(where: str, grp) -> DynamicThreshold:
    unknown = sorted(set(grp.keys()) - {k for k, _, _ in _DYNAMIC_KEYS})
    if unknown:
        raise NetFileError(f"{where}: unknown fields {unknown}")
    values = {}
    for key, name, positive in _DYNAMIC_KEYS:
        if key not in grp and key != "lambda":
            continue
        v = np.asarray(_need(where, grp, key), dtype=np.float64)
        if v.size != 1 or not np.isfinite(v) or float(v) < 0 or (positive and float(v) == 0):
            raise NetFileError(f"{where}: field {key!r} must be a "
                               f"{'positive' if positive else 'non-negative'} number, got "
                               f"{v.tolist()!r}")
        values[name] = float(v)
    if ("prior" in values) != ("prior_steps" in values):
        raise NetFileError(f"{where}: fields 'prior' and 'priorSteps' go together")
    return DynamicThreshold(**values)


def _dynamic_group(dyn: DynamicThreshold | None) -> dict[str, float] | None:
    """The file's keys of a dynamic threshold (a prior only when it has one)."""
    if dyn is None:
        return None
    return {key: float(getattr(dyn, name)) for key, name, _ in _DYNAMIC_KEYS
            if key == "lambda" or dyn.prior_steps}


def _need(where: str, grp, name: str):
    if name not in grp:
        raise NetFileError(f"{where}: missing field {name!r}")
    return _read(where, grp, name)


def _finite_ints(where: str, name: str, a, lo: float | None = None, hi: float | None = None
                 ) -> np.ndarray:
    """``a`` as a numeric array whose values are finite integers in [lo, hi]."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise NetFileError(f"{where}: field {name!r} is not numeric ({a.dtype})")
    if a.size and not np.all(np.isfinite(a)):
        raise NetFileError(f"{where}: field {name!r} holds NaN or infinite values")
    if a.size and not np.array_equal(a, np.round(a)):
        raise NetFileError(f"{where}: field {name!r} holds non-integer values (Loihi "
                           "stores integers)")
    if a.size and lo is not None and a.min() < lo:
        raise NetFileError(f"{where}: field {name!r} has {a.min()} < {lo}")
    if a.size and hi is not None and a.max() > hi:
        raise NetFileError(f"{where}: field {name!r} has {a.max()} > {hi}")
    return a


def _pair(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(a[0]), int(a[-1]))


def _read_input(where, grp, layer: NetLayer, version: int) -> None:
    if "neuron" in grp:
        layer.neuron = _read_neuron(where, grp["neuron"], version, is_input=True)


def _read_conv(where, grp, layer: NetLayer, version: int) -> None:
    w = _finite_ints(where, "weight", _need(where, grp, "weight"), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 4:
        raise NetFileError(f"{where}: field 'weight' has shape {w.shape}, expected "
                           "(out, in, kh, kw)")
    layer.weight = w
    layer.stride = _pair(_finite_ints(where, "stride", _need(where, grp, "stride"), 1, 1 << 16))
    layer.padding = _pair(_finite_ints(where, "padding", _need(where, grp, "padding"), 0,
                                       1 << 16))
    if "dilation" in grp and set(np.atleast_1d(grp["dilation"][()]).tolist()) != {1}:
        raise NetFileError(f"{where}: field 'dilation' != 1 is not supported")
    if "groups" in grp and int(np.asarray(grp["groups"][()]).reshape(-1)[0]) != 1:
        raise NetFileError(f"{where}: field 'groups' != 1 is not supported")
    if len(layer.shape) != 3 or w.shape[0] != layer.shape[0]:
        raise NetFileError(f"{where}: field 'weight' has {w.shape[0]} output channels but "
                           f"'shape' is {layer.shape}")
    _read_common(where, grp, layer, version)


def _read_dense(where, grp, layer: NetLayer, version: int) -> None:
    w = _finite_ints(where, "weight", _need(where, grp, "weight"), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    n_out = int(np.prod(layer.shape))
    if w.ndim == 1:
        w = w.reshape(n_out, -1)
    if w.ndim != 2 or w.shape[0] != n_out:
        raise NetFileError(f"{where}: field 'weight' has shape {w.shape}, expected "
                           f"({n_out}, inputs)")
    layer.weight = w
    if "delay" in grp:
        layer.delay = _finite_ints(where, "delay", _read(where, grp, "delay"), 0,
                                   1 << 16).astype(np.int64)
    _read_common(where, grp, layer, version)


#: the neuron netx gives a dense layer without a ``neuron`` group (lava-dl's ``Affine``
#: block writes such layers): a non-leaky current integrator with the largest threshold
#: (netx writes ``1 << 18 - 1``, which Python reads as ``1 << 17``)
IMPLICIT_DENSE_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17,
                         "refDelay": 1, "gradedSpike": False}


def _read_common(where, grp, layer: NetLayer, version: int) -> None:
    if "neuron" not in grp:
        if layer.type != "dense":
            raise NetFileError(f"{where}: missing group 'neuron'")
        layer.neuron = NeuronGroup.read(IMPLICIT_DENSE_NEURON, f"{where}/neuron", version,
                                        implicit=True)
    else:
        layer.neuron = _read_neuron(where, grp["neuron"], version)
    if "bias" in grp:
        layer.bias = _finite_ints(where, "bias", _read(where, grp, "bias"))
    if "dynamicThreshold" in grp:
        if not layer.model.dynamic_threshold:
            raise NetFileError(f"{where}: 'dynamicThreshold' needs an SRM neuron (a "
                               f"{layer.model.type_name} neuron has none)")
        layer.dynamic_threshold = _read_dynamic(f"{where}/dynamicThreshold",
                                                grp["dynamicThreshold"])
    if "skip" in grp:
        layer.skips = [_read_skip(f"{where}/skip/{k}", grp["skip"][k])
                       for k in sorted(grp["skip"].keys(), key=lambda k: (len(k), k))]
    if "quant" in grp:
        layer.quant = {k: float(np.asarray(_read(f"{where}/quant", grp["quant"], k)).reshape(-1)[0])
                       for k in grp["quant"].keys()}


SKIP_MODES = tuple(m.value for m in SkipMode)


def _read_skip(where: str, grp) -> Skip:
    """One more input of a layer (format 3): ``source`` and ``mode``, and for ``conv`` its
    weight (out, in, kh, kw), stride and padding."""
    mode = _text(_need(where, grp, "mode"))
    if mode not in SKIP_MODES:
        raise NetFileError(f"{where}: field 'mode' must be one of {list(SKIP_MODES)}, got "
                           f"{mode!r}")
    src = _finite_ints(where, "source", _need(where, grp, "source"), 0, 1 << 20)
    if src.size != 1:
        raise NetFileError(f"{where}: field 'source' must be one layer index")
    source = int(src.reshape(-1)[0])
    if mode == SkipMode.MEMBRANE:
        return Skip(source, SkipMode.MEMBRANE)
    w = _finite_ints(where, "weight", _need(where, grp, "weight"), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    if w.ndim != 4:
        raise NetFileError(f"{where}: field 'weight' has shape {w.shape}, expected "
                           "(out, in, kh, kw)")
    return Skip(source, SkipMode.CONV, w,
                _pair(_finite_ints(where, "stride", _need(where, grp, "stride"), 1, 1 << 16)),
                _pair(_finite_ints(where, "padding", _need(where, grp, "padding"), 0, 1 << 16)))


def _read_flatten(where, grp, layer: NetLayer, version: int) -> None:
    return None


#: Layer readers by netx ``type``; extend this table to teach the reader a new type.
LAYER_READERS: dict[str, Callable[[str, Any, NetLayer, int], None]] = {
    "input": _read_input,
    "conv": _read_conv,
    "dense": _read_dense,
    "flatten": _read_flatten,
}


def _parse(path: Path, f) -> tuple[list[NetLayer], dict[str, Any], int]:
    """The layers, attributes and format version of an open file (checked as read)."""
    attrs = {k: (_text(v) if isinstance(v, (bytes, np.ndarray)) else v)
             for k, v in f.attrs.items()}
    try:
        version = int(attrs.get("psplava_format", 0))
    except (TypeError, ValueError):
        raise NetFileError(f"{path}: attribute 'psplava_format' must be an integer, got "
                           f"{attrs.get('psplava_format')!r}") from None
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
        shape = tuple(int(v) for v in np.atleast_1d(
            _finite_ints(where, "shape", _need(where, grp, "shape"), 1, 1 << 24)))
        layer = NetLayer(index=i, type=ltype, shape=shape)
        LAYER_READERS[ltype](where, grp, layer, version)
        layers.append(layer)
    return layers, attrs, version


def read_netfile(path: str | Path) -> NetFile:
    """Read and check a ``.net`` file (ours or lava-dl's).

    The HDF5 library can crash (segfault) on a maliciously corrupted file, which no Python
    ``except`` catches; on POSIX the file is therefore parsed in a forked child, and a crash
    there becomes a one-line :class:`NetFileError` (``PSPLAVA_NETFILE_INPROCESS=1`` reads in
    the process, for debugging)."""
    if hasattr(os, "fork") and not os.environ.get("PSPLAVA_NETFILE_INPROCESS"):
        return _read_isolated(Path(path))
    return _read_netfile(path)


def _read_isolated(path: Path) -> NetFile:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: parse, send the result (our own pickle of arrays and str), exit
        os.close(r)
        try:
            try:
                result = ("ok", _read_netfile(path))
            except NetFileError as exc:
                result = ("error", str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
                result = ("error", f"{path}: unreadable ({type(exc).__name__}: {exc})")
            data = pickle.dumps(result)
            with os.fdopen(w, "wb") as fh:
                fh.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        raise NetFileError(f"{path}: corrupt HDF5 file (the HDF5 library crashed reading it"
                           + (f", signal {sig})" if sig else ")"))
    kind, value = pickle.loads(data)  # written by the child above, not by the file
    if kind == "error":
        raise NetFileError(value)
    return value


def _read_netfile(path: str | Path) -> NetFile:
    path = Path(path)
    if not path.is_file():
        raise NetFileError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise NetFileError(f"{path}: not a readable HDF5 file (truncated or another format: "
                           f"{str(exc).splitlines()[0]})") from None
    try:
        layers, attrs, version = _parse(path, f)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        # h5py's errors on a corrupted file (bad heap, B-tree, dataspace, past EOF ...)
        raise NetFileError(f"{path}: corrupt or unreadable HDF5 content "
                           f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                           ) from None
    finally:
        try:
            f.close()
        except Exception:  # closing a corrupted file may fail too; nothing is left open
            pass
    _check_chain(path, layers)
    if version < SKIP_SINCE_VERSION and any(l.skips for l in layers):
        raise NetFileError(f"{path}: 'skip' inputs need format {SKIP_SINCE_VERSION}, the file "
                           f"says {version}")
    if version < PRIOR_SINCE_VERSION and any(
            l.dynamic_threshold is not None and l.dynamic_threshold.prior_steps for l in layers):
        raise NetFileError(f"{path}: a dynamic threshold's 'prior' needs format "
                           f"{PRIOR_SINCE_VERSION}, the file says {version}")
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
    for layer in layers:
        for j, skip in enumerate(layer.skips):
            _check_skip(path, layers, layer, j, skip)


def _check_skip(path: Path, layers: list[NetLayer], layer: NetLayer, j: int,
                skip: Skip) -> None:
    """A skip input's source exists before the layer, and shapes and PSP decays agree."""
    where = f"{path}: layer/{layer.index}/skip/{j}"
    src = skip.source
    if not 0 <= src < layer.index or layers[src].type == "flatten":
        raise NetFileError(f"{where}: field 'source' {src} must name an earlier input, conv "
                           f"or dense layer")
    if not layer.model.skip_inputs or layer.type != "conv":
        raise NetFileError(f"{where}: skip inputs are supported on SRM conv layers")
    source = layers[src]
    if skip.mode is SkipMode.MEMBRANE:
        if source.type not in ("conv", "dense") or tuple(source.shape) != tuple(layer.shape):
            raise NetFileError(f"{where}: a membrane skip needs a neuron layer of the same "
                               f"shape {layer.shape}; layer/{src} has {source.shape}")
        return
    w = skip.weight
    if len(source.shape) != 3 or w.shape[1] != source.shape[0] or w.shape[0] != layer.shape[0]:
        raise NetFileError(f"{where}: field 'weight' {w.shape} does not connect layer/{src} "
                           f"{source.shape} to {layer.shape}")
    k = w.shape[2]
    out_hw = [(source.shape[1 + d] + 2 * skip.padding[d] - k) // skip.stride[d] + 1
              for d in range(2)]
    if list(layer.shape[1:]) != out_hw:
        raise NetFileError(f"{where}: the conv of layer/{src} {source.shape} gives H, W = "
                           f"{out_hw}, the layer has {list(layer.shape[1:])}")
    consumer = layers[src + 1] if src + 1 < len(layers) else None
    if consumer is not None and consumer.hardware.ps_decay != layer.hardware.ps_decay:
        raise NetFileError(f"{where}: layer/{src} sends one PSP (the PSP decay of "
                           f"layer/{src + 1}); this layer's tauS {layer.hardware.tau_s:g} "
                           "differs")


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


def format_needed(layers: list[NetLayer]) -> int:
    """The lowest format version that holds ``layers`` (readers of that version and later
    read the file): 5 with SRM layers (each time constant stored once), 4 with a dynamic
    threshold's prior, else 3."""
    neurons = max((l.model.format_needed for l in layers if l.neuron), default=0)
    if neurons > PRIOR_SINCE_VERSION:
        return neurons
    if any(l.dynamic_threshold is not None and l.dynamic_threshold.prior_steps
           for l in layers):
        return PRIOR_SINCE_VERSION
    return SKIP_SINCE_VERSION


def write_netfile(path: str | Path, layers: list[NetLayer], attrs: dict[str, Any]) -> None:
    """Write :class:`NetLayer` s -- the dataclass :func:`read_netfile` returns -- atomically.

    ``stride``/``padding`` (and netx's ``dilation``/``groups``) are written for conv layers
    only, ``delay`` (axonal delays) for dense ones; ``bias``, ``dynamic_threshold`` and
    ``quant`` when present.
    """
    # built in memory, then written with plain file I/O: h5py segfaults when the disk fills
    # under it, while a full disk here is an OSError that atomic_path cleans up after
    mem = io.BytesIO()
    with atomic_path(path) as tmp:
        with h5py.File(mem, "w") as f:
            f.attrs["psplava_format"] = format_needed(layers)
            for k, v in attrs.items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
            for i, layer in enumerate(layers):
                g = f.create_group(f"layer/{i}")
                kind = LayerKind(layer.type).value
                g.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
                g.create_dataset("shape", data=np.asarray(layer.shape))
                conv = layer.type == "conv"
                for key, value in (("weight", layer.weight), ("bias", layer.bias),
                                   ("stride", layer.stride if conv else None),
                                   ("padding", layer.padding if conv else None),
                                   ("delay", layer.delay if layer.type == "dense" else None)):
                    if value is not None:
                        g.create_dataset(key, data=np.asarray(value))
                if conv:
                    g.create_dataset("dilation", data=np.array([1, 1]))
                    g.create_dataset("groups", data=1)
                for j, skip in enumerate(layer.skips):
                    sg = g.create_group(f"skip/{j}")
                    for key, value in skip.group().items():
                        sg.create_dataset(key, data=np.asarray(value) if key != "mode" else value)
                # netx's default neuron (implicit) is not written, as lava-dl writes it
                neuron = layer.neuron.group() if layer.neuron and not layer.neuron.implicit \
                    else None
                for sub, values in (("neuron", neuron),
                                    ("dynamicThreshold", _dynamic_group(layer.dynamic_threshold)),
                                    ("quant", layer.quant)):
                    for key, value in (values or {}).items():
                        g.create_dataset(f"{sub}/{key}", data=value)  # str as lava-dl does
        with open(tmp, "wb") as out:
            out.write(mem.getbuffer())
            out.flush()
            os.fsync(out.fileno())


def stock_netx(net: NetFile, engine: str) -> bool:
    """True when every neuron of the file is of a type Lava's stock netx runs (CUBA, SDNN,
    ...), False when none is (psplava's neurons, which send PSP messages); ``engine``
    (which engine asks) refuses a file that mixes both."""
    models = [layer.model for layer in net.layers if layer.neuron]
    if all(m.stock_netx for m in models):
        return True
    if not any(m.stock_netx for m in models):
        return False
    raise NetFileError(f"{net.path}: {engine} runs networks of psplava's neurons (PSP "
                       f"messages) or stock netx ones, not both: found "
                       f"{sorted({m.type_name for m in models})}")


def file_latency(net: NetFile) -> int:
    """Steps the file's output lags its input (SRM 0, CUBA one per layer)."""
    layers = [layer for layer in net.layers if layer.type in ("conv", "dense")]
    return network_latency({layer.model.type_name for layer in layers}, len(layers))
