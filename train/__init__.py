"""Training stage: SRM / CUBA spiking networks with PSP normalization on lava-dl SLAYER.

Public API::

    from psplava.train import load_config, train, evaluate, SNN, ModelSpec

- :func:`load_config` / :func:`default_config`: a run's config (YAML file or dicts);
- :func:`train`: train (or fine-tune, ``train.init_from``) into a run folder;
- :func:`evaluate`: accuracy of a checkpoint in its arithmetic (``float`` or ``loihi``);
- :class:`SNN`, :class:`ModelSpec`: the network; ``model.arithmetic = "loihi"`` runs
  exactly what its exported file computes (:mod:`psplava.loihi`);
- :func:`load_checkpoint`, :func:`save_checkpoint`, :func:`model_from_checkpoint`.

The names load with the module that defines them (PEP 562), so importing a submodule
(``psplava.train.cli``, ``psplava.train.config``) does not load torch and lava-dl.
"""

from __future__ import annotations

import importlib
from typing import Any

from psplava.train.config import (DEFAULTS, Arithmetic, BlockKind, ModelSpec, NormKind, deep_merge,
                                  load_config)

#: the public names that live in heavy modules (torch, lava-dl) -> their module
_LAZY = {
    "SNN": "psplava.train.model",
    "FoldError": "psplava.train.deployed",
    "load_checkpoint": "psplava.train.checkpoint",
    "model_from_checkpoint": "psplava.train.checkpoint",
    "model_spec": "psplava.train.checkpoint",
    "save_checkpoint": "psplava.train.checkpoint",
    "evaluate": "psplava.train.trainer",
    "train": "psplava.train.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'psplava.train' has no attribute {name!r}")


def default_config(**sections) -> dict:
    """The default config with ``sections`` (e.g. ``model={...}``) merged in."""
    return deep_merge(DEFAULTS, sections)


__all__ = ["Arithmetic", "BlockKind", "FoldError", "ModelSpec", "NormKind", "SNN",
           "default_config", "evaluate", "load_checkpoint", "load_config",
           "model_from_checkpoint", "model_spec", "save_checkpoint", "train"]
