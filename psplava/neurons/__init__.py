"""The neuron registry: one module per neuron type of the ``.net`` format.

A neuron type is one :class:`NeuronModel` subclass in one module of this package
(:mod:`~psplava.neurons.srm`, :mod:`~psplava.neurons.cuba`, :mod:`~psplava.neurons.sdnn`),
registered with :func:`register`.  It holds everything the stages after training need to
know about the neuron, in one place:

- its **file group** (``/layer/i/neuron``): the netx-style keys, their types and ranges
  (:class:`Field`), from which the reader's validation is derived (:meth:`NeuronModel.check`)
  and by which the writer lays the group out (:meth:`NeuronModel.group`);
- its **hardware parameters** (a frozen dataclass) with the one derivation from the float
  parameters (in the neuron's module) and from a file group (:meth:`NeuronModel.hardware`);
- its **integer step** (a state class with ``step``) and its **latency** (steps each layer
  adds between input and output spikes);
- what a deployment needs: whether Lava's stock netx runs it and whether Loihi 2 needs
  microcode for it.

:mod:`psplava.netfile`, the exporter, the reference engine, the Lava engine and the deploy
plan ask the registry (:func:`neuron_model`); none of them reads a neuron's file keys itself.
``docs/design.md`` ("Adding a neuron") walks through adding a type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from psplava.errors import PsplavaError


class NeuronGroupError(PsplavaError):
    """A neuron group's values do not fit its type (the message names group and field)."""


@dataclass(frozen=True)
class Field:
    """One key of a neuron type's file group.

    ``kind``: ``int`` (a finite integer in [lo, hi]), ``float`` (finite, > 0 when
    ``positive``), ``str`` (one of ``choices``) or ``bool``.  ``required``: readers refuse a
    group without it (``since``: from that format version on; older files may lack it).
    """

    key: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    required: bool = True
    doc: str = ""

    def check(self, where: str, value: Any) -> Any:
        """``value`` as this field's Python type, or :class:`NeuronGroupError`."""
        if self.kind is str:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if self.choices and text not in self.choices:
                raise NeuronGroupError(f"{where}: field {self.key!r} must be "
                                       f"{' or '.join(repr(c) for c in self.choices)}, got "
                                       f"{text!r}")
            return text
        if np.ndim(value) > 0:
            raise NeuronGroupError(f"{where}: field {self.key!r} must be a single number, got "
                                   f"shape {np.shape(value)}")
        if self.kind is bool:
            return bool(value)
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise NeuronGroupError(f"{where}: field {self.key!r} is not numeric ({a.dtype})")
        v = float(a)
        if self.kind is float:
            if not np.isfinite(v) or (self.positive and v <= 0):
                raise NeuronGroupError(f"{where}: field {self.key!r} must be a positive number, "
                                       f"got {value!r}")
            return v
        if not np.isfinite(v):
            raise NeuronGroupError(f"{where}: field {self.key!r} holds NaN or infinite values")
        if v != round(v):
            raise NeuronGroupError(f"{where}: field {self.key!r} holds non-integer values "
                                   "(Loihi stores integers)")
        if self.lo is not None and v < self.lo:
            raise NeuronGroupError(f"{where}: field {self.key!r} has {a} < {self.lo:g}")
        if self.hi is not None and v > self.hi:
            raise NeuronGroupError(f"{where}: field {self.key!r} has {a} > {self.hi:g}")
        return int(v)


#: 12-bit decays: 0 (none) .. 4096 (everything, each step)
DECAY_FIELD_RANGE = (0, 4096)
#: threshold mantissas the 24-bit state holds
VTH_FIELD_RANGE = (1, (1 << 24) - 1)


class NeuronModel:
    """A neuron type of the ``.net`` format.  Subclasses set the class attributes and
    implement :meth:`hardware`, :meth:`group` and :meth:`state`."""

    #: the file's ``neuron/type``
    type_name: ClassVar[str]
    #: the group's keys (besides ``type``)
    fields: ClassVar[tuple[Field, ...]]
    #: steps each layer of this type adds between input and output (Lava's synapse buffer
    #: delays every message by one step; a neuron that sends at t what it will have at t+1
    #: makes up for it)
    latency_per_layer: ClassVar[int]
    #: Lava's stock netx runs it (else psplava's own Lava processes)
    stock_netx: ClassVar[bool]
    #: Loihi 2 runs it only as microcode
    needs_microcode: ClassVar[bool]
    #: it can take causal PSP-LN's dynamic threshold (Eq. 18) and skip inputs (residual
    #: blocks), psplava's extensions of the format
    dynamic_threshold: ClassVar[bool] = False
    skip_inputs: ClassVar[bool] = False
    #: its messages are graded integers (else spikes)
    graded_messages: ClassVar[bool] = False
    #: the lowest format version a file with this neuron declares (writers), and the
    #: oldest one readers accept it from (0: any), with the reason for refusing older ones
    format_needed: ClassVar[int] = 0
    oldest_format: ClassVar[int] = 0
    older_format_note: ClassVar[str] = ""

    def __reduce__(self):
        """A model crosses processes (the reader's isolated child) as its registry entry."""
        return neuron_model, (self.type_name,)

    def check(self, where: str, values: dict[str, Any], version: int) -> dict[str, Any]:
        """A file group's values (``type`` included), checked against :attr:`fields`, as the
        typed dict engines receive (``NeuronGroupError`` names the field); keys the type
        does not know pass through unchecked (lava-dl writes some it never reads).
        ``version``: the file's format version (a type may read older layouts)."""
        out = {"type": self.type_name}
        known = {f.key for f in self.fields}
        for f in self.fields:
            if f.key in values:
                out[f.key] = f.check(where, values[f.key])
        missing = [f.key for f in self.fields if f.required and f.key not in values]
        if missing:
            raise NeuronGroupError(f"{where}: {self.type_name} neuron misses field(s) {missing}")
        out.update((k, v) for k, v in values.items() if k != "type" and k not in known)
        return out

    def hardware(self, group: dict[str, Any]) -> Any:
        """The integer parameters of a checked group (:meth:`check`)."""
        raise NotImplementedError

    def input_hardware(self, group: dict[str, Any]) -> Any:
        """The integer parameters of the group as a file's ``input`` layer's neuron (which
        receives the input as its ``a_in``); the same as :meth:`hardware` unless a type
        behaves differently there."""
        return self.hardware(group)

    def group(self, hw: Any) -> dict[str, Any]:
        """The file group (``type`` and :attr:`fields`' keys) of hardware parameters."""
        raise NotImplementedError

    def state(self, shape: tuple[int, ...], hw: Any, bias=None, device="cpu", **options):
        """The integer state of ``shape`` neurons: ``state.step(input) -> output``."""
        raise NotImplementedError

    def run(self, z, hw: Any, gain=None):
        """Spikes (bool, shape of ``z``) of neurons driven by integer membrane input ``z``
        (T, N, ...) over all steps (``gain`` (T, N): a dynamic threshold's factor): the
        state stepped once per step.  Types with a faster whole-run kernel override it."""
        state = self.state(z.shape[1:], hw, device=z.device)
        out = torch.empty(z.shape, dtype=torch.bool, device=z.device)
        for t in range(z.shape[0]):
            g = None if gain is None else gain[t].view(-1, *[1] * (z.dim() - 2))
            out[t] = state.step(z[t], g) if g is not None else state.step(z[t])
        return out


#: ``neuron/type`` -> its model
REGISTRY: dict[str, NeuronModel] = {}


def register(model: type[NeuronModel]) -> type[NeuronModel]:
    """Register a neuron type under its :attr:`~NeuronModel.type_name` (a class
    decorator; another name for the same neuron is a subclass, as LOIHI is CUBA's)."""
    instance = model()
    REGISTRY[instance.type_name] = instance
    return model


def neuron_model(type_name: str, where: str = "neuron") -> NeuronModel:
    """The registered model of ``type_name`` (:class:`NeuronGroupError` naming the
    supported types otherwise)."""
    try:
        return REGISTRY[str(type_name)]
    except KeyError:
        raise NeuronGroupError(f"{where}: unknown neuron type {type_name!r} (supported: "
                               f"{sorted(REGISTRY)})") from None


def network_latency(type_names: list[str] | set[str], n_layers: int) -> int:
    """Steps by which the output layer of ``n_layers`` layers of the given types lags the
    input: ``n_layers`` times the largest per-layer latency among them (a network's
    layers are all of one kind in practice: psplava's, or stock netx ones)."""
    per = {neuron_model(t).latency_per_layer for t in type_names}
    return max(per, default=0) * int(n_layers)


# the built-in types register themselves on import (one module each)
from psplava.neurons import cuba, sdnn, srm  # noqa: E402,F401  (registration)

__all__ = ["DECAY_FIELD_RANGE", "Field", "NeuronGroupError", "NeuronModel", "REGISTRY",
           "VTH_FIELD_RANGE", "network_latency", "neuron_model", "register"]
