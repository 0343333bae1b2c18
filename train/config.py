"""Training configs: YAML files of plain data, with dotted ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable

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
        "split_seed": None,       # seed of the held-out recordings (null: train.seed)
        "encoding": {},           # fmnist: {kind: rate|regular, gain: 1.0}
        "augment": {"shift": 0},  # random spatial shift of event data, +-pixels
        "cache": None,            # N-MNIST: .npz keeping the decoded events of a split
    },
    "model": {"arch": "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10", "neuron": "srm",
              "norm": "psp_ln", "lam": 0.1, "init": "theta", "init_gain": 1.0,
              "arithmetic": "float",  # float | loihi (exactly the exported file's maths)
              "k_max": 1024.0,        # largest Loihi weight scale (power of two)
              "block": "pre"},        # residual blocks (r16, r32s2): pre | post activation
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
        "device": "auto",         # auto | cpu | cuda | cuda:N (auto: CUDA when present)
        "workers": None,          # DataLoader worker processes (null: 0 on CPU, <= 4 on GPU)
        "checkpoint_blocks": False,  # recompute residual blocks in backward (memory)
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


def shipped_configs() -> dict[str, Path]:
    """The configs that come with psplava, by name (``configs/<sub>/<name>.yaml`` of the
    checkout, and the packaged ``psplava/configs``): ``--config NAME`` finds them."""
    from psplava.data import REPO_ROOT

    found: dict[str, Path] = {}
    for root in (Path(__file__).resolve().parents[1] / "psplava" / "configs",
                 REPO_ROOT / "configs"):
        if root.is_dir():
            for f in sorted(root.rglob("*.yaml")):
                found.setdefault(str(f.relative_to(root).with_suffix("")), f)
                found.setdefault(f.stem, f)
    return found


def resolve_config(path: str | Path) -> Path:
    """A config file: the path as given, else relative to the repository, else a shipped
    config's name (``nmnist_small_psp_ln``, ``convert/srm_to_cuba``)."""
    from psplava.data import REPO_ROOT

    p = Path(path)
    if p.exists():
        return p
    if not p.is_absolute() and (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    named = shipped_configs().get(str(path).removesuffix(".yaml"))
    if named is not None:
        return named
    raise ConfigError(f"{path}: config file not found (nor a shipped config of that name; "
                      "psplava configs lists them)")


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    path = resolve_config(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a YAML config file")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config is YAML)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at} ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections")
    unknown = set(data) - set(DEFAULTS) - {"name", "description"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}")
    cfg = deep_merge(DEFAULTS, data)
    validate(cfg, str(path))
    if overrides:   # checked again: an error now comes from a --set, and says so
        cfg = apply_set(cfg, overrides)
        validate(cfg, "--set")
    return cfg


def _training_neurons() -> dict[str, Any]:
    """``model.neuron``'s registered names -> their training classes."""
    # imported when a config is checked, not with this module: it loads lava-dl and torch,
    # which ``psplava --help`` and the config listing do without
    from psplava.train.neurons import TRAINING_NEURONS

    return TRAINING_NEURONS


class _Field:
    """One config value's type, range and allowed values (``None`` allowed if nullable)."""

    def __init__(self, kind: type | tuple[type, ...], *, lo: float | None = None,
                 hi: float | None = None, above: float | None = None,
                 choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
                 nullable: bool = False,
                 pattern: str | None = None, hint: str | None = None) -> None:
        self.kind, self.lo, self.hi, self.above = kind, lo, hi, above
        self.choices, self.nullable = choices, nullable
        self.pattern, self.hint = pattern, hint

    def check(self, where: str, v: Any) -> None:
        if v is None:
            if not self.nullable:
                raise ConfigError(f"{where} must be set")
            return
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            names = " or ".join({int: "an integer", float: "a number", str: "a string",
                                 dict: "a mapping", bool: "true/false"}[k] for k in kinds)
            raise ConfigError(f"{where} must be {names}, got {v!r}")
        if self.pattern is not None and not re.match(self.pattern, v):
            raise ConfigError(f"{where} must be {self.hint or self.pattern}, got {v!r}")
        choices = self.choices() if callable(self.choices) else self.choices
        if choices is not None and v not in choices:
            raise ConfigError(f"{where} must be one of {list(choices)}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if v != v or v in (float("inf"), float("-inf")):
                raise ConfigError(f"{where} must be finite, got {v!r}")
            if self.lo is not None and v < self.lo:
                raise ConfigError(f"{where} must be >= {self.lo}, got {v!r}")
            if self.hi is not None and v > self.hi:
                raise ConfigError(f"{where} must be <= {self.hi}, got {v!r}")
            if self.above is not None and not v > self.above:
                raise ConfigError(f"{where} must be > {self.above}, got {v!r}")


_NORMS = ("none", "psp_bn", "psp_ln", "causal_psp_ln", "bn", "bntt", "tdbn")

#: the one schema of a config (YAML file and ``--set`` alike): every key, its type and range
SCHEMA: dict[str, dict[str, _Field]] = {
    "data": {
        "dataset": _Field(str, choices=("nmnist", "fmnist", "digits")),
        "root": _Field(str, nullable=True),
        "steps": _Field(int, lo=1, hi=100_000),
        "dt_ms": _Field(float, above=0),
        "val_count": _Field(int, lo=0),
        "train_limit": _Field(int, lo=1, nullable=True),
        "split_seed": _Field(int, lo=0, nullable=True),
        "encoding": _Field(dict),
        "augment": _Field(dict),
        "cache": _Field(str, nullable=True),
    },
    "model": {
        "arch": _Field(str),
        "neuron": _Field(str, choices=lambda: tuple(_training_neurons())),
        "norm": _Field(str, choices=_NORMS),
        "lam": _Field(float, above=0),
        "prior_steps": _Field(float, lo=0),
        "init": _Field(str, choices=("theta", "paper")),
        "init_gain": _Field(float, above=0),
        "arithmetic": _Field(str, choices=("float", "loihi")),
        "k_max": _Field(float, above=0),
        "block": _Field(str, choices=("pre", "post")),
        "steps": _Field(int, lo=1),
        "srm": _Field(dict, nullable=True),
        "cuba": _Field(dict, nullable=True),
        "weight_scale": _Field(float, above=0),
    },
    "train": {
        "epochs": _Field(int, lo=0),
        "batch_size": _Field(int, lo=1),
        "lr": _Field(float, above=0),
        "weight_decay": _Field(float, lo=0),
        "samples_per_epoch": _Field(int, lo=1, nullable=True),
        "seed": _Field(int, lo=0),
        "threads": _Field(int, lo=1, nullable=True),
        "loss": _Field(dict),
        "time_limit_min": _Field(float, above=0, nullable=True),
        "init_from": _Field(str, nullable=True),
        "device": _Field(str, pattern=r"^(auto|cpu|cuda(:\d+)?)$",
                         hint="auto, cpu, cuda or cuda:N"),
        "workers": _Field(int, lo=0, hi=64, nullable=True),
        "checkpoint_blocks": _Field(bool),
    },
}
_NESTED = {
    ("data", "augment"): {"shift": _Field(int, lo=0)},
    ("data", "encoding"): {"kind": _Field(str, choices=("rate", "regular")),
                           "gain": _Field(float, above=0, hi=1)},
    ("train", "loss"): {"true_rate": _Field(float, lo=0, hi=1),
                        "false_rate": _Field(float, lo=0, hi=1)},
}


def validate(cfg: dict[str, Any], source: str) -> None:
    """Check every key of the config against :data:`SCHEMA` (unknown keys refused), the
    architecture string and the neuron parameters; one :class:`ConfigError` line each."""
    top = set(cfg) - set(SCHEMA) - {"name", "description"}
    if top:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(top)} (sections: "
                          f"{sorted(SCHEMA)}; a --set key is SECTION.KEY, e.g. train.epochs)")
    for section, fields in SCHEMA.items():
        values = cfg.get(section)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        unknown = set(values) - set(fields)
        if unknown:
            raise ConfigError(f"{source}: unknown {section} keys {sorted(unknown)} (known: "
                              f"{sorted(fields)})")
        for key, field in fields.items():
            if key in values:
                field.check(f"{source}: {section}.{key}", values[key])
        for (sec, key), sub in _NESTED.items():
            if sec == section and isinstance(values.get(key), dict):
                extra = set(values[key]) - set(sub)
                if extra:
                    raise ConfigError(f"{source}: unknown {section}.{key} keys "
                                      f"{sorted(extra)} (known: {sorted(sub)})")
                for k, field in sub.items():
                    if k in values[key]:
                        field.check(f"{source}: {section}.{key}.{k}", values[key][k])
    m = cfg["model"]
    from psplava import loihi
    from psplava.train.arch import parse_arch

    if "k_max" in m:
        try:
            loihi.check_k_max(m["k_max"], f"{source}: model.k_max")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    try:
        parse_arch(m["arch"])
    except Exception as exc:  # the grammar's own message, as one line
        raise ConfigError(f"{source}: model.arch {m['arch']!r}: {exc}") from None
    neurons = _training_neurons()
    by_key = {}     # each parameter field, checked by the chosen neuron's class if it reads it
    for cls in [neurons.get(m.get("neuron"))] + list(neurons.values()):
        if cls is not None:
            by_key.setdefault(cls.params_key, cls)
    for key, cls in by_key.items():
        if not m.get(key):
            continue
        for k, v in m[key].items():
            if k in getattr(cls.params_type, "positive_fields", ()):
                _Field(float, above=0).check(f"{source}: model.{key}.{k}", v)
        try:
            cls.params_type(**m[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: model.{key}: {exc}") from None
