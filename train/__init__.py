"""Training stage: SRM / CUBA spiking networks with PSP normalization on lava-dl SLAYER.

Public API::

    from psplava.train import load_config, train, evaluate, SNN, ModelSpec

- :func:`load_config` / :func:`default_config`: a run's config (YAML file or dicts);
- :func:`train`: train (or fine-tune, ``train.init_from``) into a run folder;
- :func:`evaluate`: accuracy of a checkpoint in its arithmetic (``float`` or ``loihi``);
- :class:`SNN`, :class:`ModelSpec`: the network; ``model.arithmetic = "loihi"`` runs
  exactly what its exported file computes (:mod:`psplava.loihi`);
- :func:`load_checkpoint`, :func:`save_checkpoint`, :func:`model_from_checkpoint`.
"""

from psplava.train.config import (DEFAULTS, Arithmetic, BlockKind, ModelSpec, NormKind,
                                  deep_merge, load_config)
from psplava.train.deployed import FoldError
from psplava.train.model import SNN
from psplava.train.checkpoint import (load_checkpoint, model_from_checkpoint, model_spec,
                                      save_checkpoint)
from psplava.train.trainer import evaluate, train


def default_config(**sections) -> dict:
    """The default config with ``sections`` (e.g. ``model={...}``) merged in."""
    return deep_merge(DEFAULTS, sections)


__all__ = ["Arithmetic", "BlockKind", "FoldError", "ModelSpec", "NormKind", "SNN",
           "default_config", "evaluate", "load_checkpoint", "load_config",
           "model_from_checkpoint", "model_spec", "save_checkpoint", "train"]
