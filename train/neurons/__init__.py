"""The training side of each neuron type: one module per type, bound to lava-dl's ``Neuron``.

A training neuron is a ``torch.nn.Module`` registered under its config name
(``model.neuron``) with :func:`register_training`.  :class:`psplava.train.model.SNN` builds
every layer's neuron from this registry and asks it for what differs between types; it
never branches on the type.  What a training neuron provides (the SRM and CUBA modules are
the two complete examples; ``docs/design.md``, "Adding a neuron", walks through a third):

- ``config_name`` (``model.neuron``), ``type_name`` (the file's ``neuron/type``, whose
  integer side is registered in :mod:`psplava.neurons`), ``params_key`` (the ``model``
  field holding its parameters: ``srm`` or ``cuba``) and ``params_type`` (a frozen
  dataclass built from that field's dict), ``theta_k_max`` (the largest ``theta * scale``
  its threshold mantissa allows);
- float arithmetic: ``forward(z)`` spikes (T, N, ..., C) of the synaptic input;
  ``synaptic_input(s)`` what the next synapse sees of spikes ``s``; ``weight_gain``, the
  factor folded into the weights it receives at export (the alpha PSP's ``e / tau_s``);
  ``threshold``; ``surrogate()`` (lava-dl's ``tau_rho``, ``scale_rho``);
- loihi arithmetic: ``hardware(scale)`` (its hardware dataclass in :mod:`psplava.neurons`),
  ``integer_input(s)`` (the integer messages of spikes ``s`` and ``integer_unit``, integer
  units per float unit of them), ``integer_range()`` (their bounds) and
  ``loihi_spikes(z, y, hw)`` (spikes of the integer neurons for the integer synaptic
  input ``z`` of messages ``y``, with surrogate gradients).
"""

from __future__ import annotations

from typing import Any

import torch

#: ``model.neuron`` -> training neuron class
TRAINING_NEURONS: dict[str, type[torch.nn.Module]] = {}


def register_training(cls):
    """Register a training neuron class under its ``config_name`` (a class decorator)."""
    TRAINING_NEURONS[cls.config_name] = cls
    return cls


def training_neuron(name: str) -> Any:
    """The training neuron class of ``model.neuron`` ``name`` (``ValueError`` naming the
    registered ones otherwise)."""
    try:
        return TRAINING_NEURONS[str(name)]
    except KeyError:
        raise ValueError(f"unknown neuron {name!r} (registered: "
                         f"{sorted(TRAINING_NEURONS)})") from None


# the built-in types register themselves on import (one module each)
from psplava.train.neurons import cuba, srm  # noqa: E402,F401  (registration)

__all__ = ["TRAINING_NEURONS", "register_training", "training_neuron"]
