"""Training configs: YAML files of plain data, with dotted ``--set key=value`` overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from psplava.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "data": {
        "dataset": "nmnist",      # nmnist | fmnist | digits
        "root": None,             # dataset root (relative paths: cwd, else the repo root)
        "steps": 300,             # T
        "dt_ms": 1.0,             # bin width for event data
        "val_count": 6000,        # held out from the training split (paper: 6K of 60K)
        "train_limit": None,      # use only the first N training recordings
        "encoding": {},           # fmnist: {kind: rate|regular, gain: 1.0}
        "augment": {"shift": 0},  # random spatial shift of event data, +-pixels
        "cache": None,            # N-MNIST: .npz keeping the decoded events of a split
    },
    "model": {"arch": "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10", "neuron": "srm",
              "norm": "psp_ln", "lam": 0.1, "init": "theta", "init_gain": 1.0,
              "arithmetic": "float",  # float | loihi (exactly the exported file's maths)
              "k_max": 1024.0},       # largest Loihi weight scale (power of two)
    "train": {
        "epochs": 100,
        "batch_size": 10,
        "lr": 0.01,               # AdaBelief (Table 1)
        "weight_decay": 1e-4,
        "samples_per_epoch": None,  # paper: 6,000 random samples per epoch
        "seed": 0,
        "threads": None,          # torch/numba threads (default: all cores)
        "loss": {"true_rate": 0.2, "false_rate": 0.03},
        "time_limit_min": None,   # stop after the epoch that passes this budget
        "init_from": None,        # fine-tune: start from this checkpoint's parameters
    },
}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "encoding":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_set(cfg: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML scalars."""
    cfg = copy.deepcopy(cfg)
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = cfg
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: cannot parse value ({exc})") from None
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    unknown = set(data) - set(DEFAULTS) - {"name", "description"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}")
    cfg = deep_merge(DEFAULTS, data)
    cfg = apply_set(cfg, overrides or [])
    validate(cfg, str(path))
    return cfg


def validate(cfg: dict[str, Any], source: str) -> None:
    for section in ("data", "model", "train"):
        unknown = set(cfg[section]) - set(DEFAULTS[section]) - (
            {"steps", "srm", "cuba", "weight_scale"} if section == "model" else set())
        if unknown:
            raise ConfigError(f"{source}: unknown {section} keys {sorted(unknown)}")
    if "root" not in cfg["data"]:
        raise ConfigError(f"{source}: data.root is required")
    t = cfg["train"]
    if int(t["batch_size"]) < 1 or int(t["epochs"]) < 0:
        raise ConfigError(f"{source}: train.batch_size must be >= 1 and train.epochs >= 0")
