"""Checkpoints: plain data (tensors, numbers, strings, dicts) that load with
``torch.load(..., weights_only=True)`` and carry the full config and the complete model
spec, so a checkpoint rebuilds its model on its own.  Written atomically; read with every
field checked (one line naming the file and the field otherwise).

The training loop (:mod:`psplava.train.trainer`), the exporter and the comparisons read
and write checkpoints through this module alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import torch

from psplava.errors import ConfigError, PsplavaError, atomic_path
from psplava.train.config import ModelSpec, NormKind
from psplava.train.convert import Conversion, add_psp_norm, srm_to_cuba
from psplava.train.model import SNN

CHECKPOINT_FORMAT = 1


def model_spec(cfg: dict[str, Any]) -> dict[str, Any]:
    """The model's complete spec (every field and neuron parameter, defaults filled in)."""
    return ModelSpec.from_config(cfg).complete()


def save_checkpoint(path: Path, model: SNN, cfg: dict[str, Any], **extra: Any) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": cfg,
        "model_spec": model_spec(cfg),
        "model": to_cpu(model.state_dict()),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PsplavaError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise PsplavaError(f"{path}: not a readable psplava checkpoint ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or "model_spec" not in ckpt or "model" not in ckpt:
        raise PsplavaError(f"{path}: not a psplava checkpoint (no model_spec/model)")
    try:
        fmt = int(ckpt.get("format", 0))
    except (TypeError, ValueError):
        raise PsplavaError(f"{path}: checkpoint 'format' must be an integer") from None
    if fmt > CHECKPOINT_FORMAT:
        raise PsplavaError(f"{path}: checkpoint format {ckpt['format']} is newer than this "
                           f"psplava understands ({CHECKPOINT_FORMAT})")
    for key, kind in (("model_spec", dict), ("model", dict), ("config", dict)):
        if not isinstance(ckpt.get(key), kind):
            what = "missing" if key not in ckpt else f"a {type(ckpt[key]).__name__}"
            raise PsplavaError(f"{path}: checkpoint field {key!r} is {what}, expected a "
                               "mapping (not a psplava checkpoint, or a damaged one)")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        raise PsplavaError(f"{path}: checkpoint field 'model' holds non-tensor values")
    ckpt["_path"] = str(path)
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> SNN:
    model = SNN(ckpt["model_spec"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:   # missing / unexpected keys, size mismatches
        detail = " ".join(str(exc).split())
        raise PsplavaError(f"{ckpt.get('_path', 'checkpoint')}: its parameters do not fit its "
                           f"model_spec ({detail[:300]})") from None
    model.eval()
    return model


def init_from_checkpoint(model: SNN, path: str | Path,
                         calibration: Callable[[], torch.Tensor] | None = None
                         ) -> Conversion | None:
    """Load another checkpoint's parameters into ``model`` (a fine-tune's start): any
    change of arithmetic, parameter-free normalization or neuron constants that keeps
    every parameter's name and shape, or an SRM -> CUBA conversion
    (:mod:`psplava.train.convert`; PSP-BN is calibrated on ``calibration()``'s batch).
    Returns the conversion's summary, or None."""
    ckpt = load_checkpoint(path)
    if ckpt["model_spec"].get("norm", "none") == NormKind.NONE.value and \
            NormKind(model.spec.norm).on_psp:
        return add_psp_norm(model_from_checkpoint(ckpt), model, calibration, str(path))
    if ckpt["model_spec"].get("neuron", "srm") != model.spec.neuron:
        return srm_to_cuba(model_from_checkpoint(ckpt), model, calibration, str(path))
    own = model.state_dict()
    theirs = ckpt["model"]
    # a causal PSP-LN prior that the source lacks starts at 1 and follows the fine-tune
    missing = sorted(k for k in set(own) - set(theirs) if not k.endswith(".pre.prior_m2"))
    extra = sorted(set(theirs) - set(own))
    shapes = sorted(k for k in set(own) & set(theirs) if own[k].shape != theirs[k].shape)
    if missing or extra or shapes:
        raise ConfigError(f"{path}: cannot initialise from this checkpoint: parameters "
                          f"missing {missing[:4]}, unexpected {extra[:4]}, of another shape "
                          f"{shapes[:4]} (the architecture or the kind of norm differs)")
    model.load_state_dict(theirs, strict=False)
    return None


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_cpu(obj: Any) -> Any:
    """A copy of nested dicts / lists of tensors with every tensor on the CPU (run folders
    load anywhere, whatever device wrote them)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
