"""Training configs: YAML files of plain data, with dotted ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import yaml

from psplava.data import REPO_ROOT
from psplava.errors import ConfigError

# ---------------------------------------------------------------------------------------
# The one definition of a config.  Each section is a frozen dataclass whose fields carry
# their default, their check (type, range, choices) and a line of documentation; the YAML
# defaults (:data:`DEFAULTS`), the schema that validates files and ``--set`` overrides
# (:data:`SCHEMA`) and the network's spec (:class:`ModelSpec`, stored in checkpoints) are
# all read from these classes.
# ---------------------------------------------------------------------------------------


class NormKind(str, Enum):
    """``model.norm``: the paper's PSP norms and its baselines (membrane norms)."""

    NONE = "none"
    PSP_BN = "psp_bn"
    PSP_LN = "psp_ln"
    CAUSAL_PSP_LN = "causal_psp_ln"
    BN = "bn"
    BNTT = "bntt"
    TDBN = "tdbn"

    @property
    def on_psp(self) -> bool:
        return self in (NormKind.PSP_BN, NormKind.PSP_LN, NormKind.CAUSAL_PSP_LN)

    @property
    def on_membrane(self) -> bool:
        return self in (NormKind.BN, NormKind.BNTT, NormKind.TDBN)


class Arithmetic(str, Enum):
    """``model.arithmetic``: float training maths, or exactly what the exported ``.net``
    file computes in Lava (folded norms, quantized weights, integer dynamics)."""

    FLOAT = "float"
    LOIHI = "loihi"


class BlockKind(str, Enum):
    """``model.block``: residual blocks with pre- or post-activation (the paper's Fig. 3)."""

    PRE = "pre"
    POST = "post"


class Check:
    """One config value's type, range and allowed values (``None`` allowed if nullable);
    ``fields``: the checks of a mapping's own keys."""

    def __init__(self, kind: type | tuple[type, ...], *, lo: float | None = None,
                 hi: float | None = None, above: float | None = None,
                 choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
                 nullable: bool = False, pattern: str | None = None,
                 hint: str | None = None, fields: dict[str, "Check"] | None = None) -> None:
        self.kind, self.lo, self.hi, self.above = kind, lo, hi, above
        self.choices, self.nullable = choices, nullable
        self.pattern, self.hint, self.fields = pattern, hint, fields

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
        if self.fields is not None:
            source, _, key = where.rpartition(": ")
            extra = set(v) - set(self.fields)
            if extra:
                raise ConfigError(f"{source + ': ' if source else ''}unknown {key} keys "
                                  f"{sorted(extra)} (known: {sorted(self.fields)})")
            for k, sub in self.fields.items():
                if k in v:
                    sub.check(f"{where}.{k}", v[k])


def setting(default: Any, kind: type | tuple[type, ...], doc: str, *,
            inherit: str | None = None, **check: Any) -> Any:
    """A config field: its default, its :class:`Check` and its documentation.  ``inherit``:
    left out of the section's defaults; filled in from that other key (``data.steps``)."""
    meta = {"check": Check(kind, **check), "doc": doc, "inherit": inherit}
    if isinstance(default, dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


_PAPER_ARCH = "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10"   # the paper's N-MNIST ResNet
_STEPS = 300                                                 # the paper's T


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: which recordings, and how they become spike tensors."""

    dataset: str = setting("nmnist", str, "the dataset",
                           choices=("nmnist", "fmnist", "digits"))
    root: str | None = setting(None, str, "dataset root (relative paths: cwd, else the "
                               "repo root)", nullable=True)
    steps: int = setting(_STEPS, int, "T, time steps per recording", lo=1, hi=100_000)
    dt_ms: float = setting(1.0, float, "bin width for event data", above=0)
    val_count: int = setting(6000, int, "held out from the training split (paper: 6K of "
                             "60K)", lo=0)
    train_limit: int | None = setting(None, int, "use only the first N training "
                                      "recordings", lo=1, nullable=True)
    split_seed: int | None = setting(None, int, "seed of the held-out recordings (null: "
                                     "train.seed)", lo=0, nullable=True)
    encoding: dict[str, Any] = setting(
        {}, dict, "fmnist: {kind: rate|regular, gain: 1.0}",
        fields={"kind": Check(str, choices=("rate", "regular")),
                "gain": Check(float, above=0, hi=1)})
    augment: dict[str, Any] = setting({"shift": 0}, dict, "random spatial shift of event "
                                      "data, +-pixels", fields={"shift": Check(int, lo=0)})
    cache: str | None = setting(None, str, "N-MNIST: .npz keeping the decoded events of a "
                                "split", nullable=True)


def _training_neurons() -> dict[str, Any]:
    """``model.neuron``'s registered names -> their training classes."""
    # imported when a config is checked, not with this module: it loads lava-dl and torch,
    # which ``psplava --help`` and the config listing do without
    from psplava.train.neurons import TRAINING_NEURONS

    return TRAINING_NEURONS


@dataclass(frozen=True)
class ModelSpec:
    """The ``model`` section: everything that defines a network.  A checkpoint stores it
    complete (:meth:`complete`) as a plain dict, so it rebuilds its model on its own."""

    arch: str = setting(_PAPER_ARCH, str, "architecture string (train/arch.py)")
    neuron: str = setting("srm", str, "a registered neuron (psplava.train.neurons)",
                          choices=lambda: tuple(_training_neurons()))
    norm: str = setting(NormKind.PSP_LN.value, str,
                        "the PSP norm, or a baseline's membrane norm",
                        choices=tuple(k.value for k in NormKind))
    steps: int = setting(_STEPS, int, "T (BNTT needs it)", inherit="data.steps", lo=1)
    lam: float = setting(0.1, float, "PSP-norm lambda", above=0)
    prior_steps: float = setting(0.0, float, "causal PSP-LN: pseudo-steps of a prior "
                                 "second moment", lo=0)
    init: str = setting("theta", str, "theta: W ~ N(0, (gain theta)^2 / fan_in); paper: "
                        "PyTorch's default init x weight_scale", choices=("theta", "paper"))
    init_gain: float = setting(1.0, float, "gain of the theta init", above=0)
    weight_scale: float = setting(10.0, float, "paper init's factor", above=0)
    srm: dict[str, Any] | None = setting(None, dict, "SRM parameters (SRMParams)",
                                         nullable=True)
    cuba: dict[str, Any] | None = setting(None, dict, "CUBA parameters (CubaParams)",
                                          nullable=True)
    arithmetic: str = setting(Arithmetic.FLOAT.value, str, "loihi: exactly the exported "
                              "file's maths",
                              choices=tuple(k.value for k in Arithmetic))
    k_max: float = setting(1024.0, float, "largest Loihi weight scale (a power of two; "
                           "psplava.loihi.K_MAX, equal by test)",
                           above=0)
    block: str = setting(BlockKind.PRE.value, str, "residual blocks (r16, r32s2): pre- or "
                         "post-activation", choices=tuple(k.value for k in BlockKind))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        """A spec from a ``model`` mapping (a config's or a checkpoint's), every value
        checked by the schema; missing values take their defaults."""
        check_section("", "model", d)
        return cls(**d)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ModelSpec":
        """The spec of a config's ``model`` section, inherited keys (``steps``) filled in
        from the keys they inherit (``data.steps``) unless the section sets them."""
        d = dict(cfg["model"])
        for f in fields(cls):
            if f.metadata["inherit"] and f.name not in d:
                section, key = f.metadata["inherit"].split(".")
                d[f.name] = cfg[section][key]
        return cls.from_dict(d)

    def complete(self) -> dict[str, Any]:
        """Every field, with the neuron's parameters filled in from their defaults, so a
        checkpoint never depends on code defaults that may change."""
        d = asdict(self)
        d[self.neuron_class.params_key] = self.neuron_params().to_dict()
        return d

    @property
    def neuron_class(self) -> Any:
        """The chosen neuron's training class (:mod:`psplava.train.neurons`)."""
        return _training_neurons()[self.neuron]

    def neuron_params(self) -> Any:
        """The chosen neuron's parameters (its ``params_type``) from their ``model`` field."""
        cls = self.neuron_class
        return cls.params_type(**(getattr(self, cls.params_key) or {}))

    def make_neuron(self) -> Any:
        """A fresh training neuron (an ``nn.Module``) of the chosen type and parameters."""
        return self.neuron_class(self.neuron_params())


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section: the optimizer, the loop, the devices and processes."""

    epochs: int = setting(100, int, "epochs", lo=0)
    batch_size: int = setting(10, int, "batch size (per process)", lo=1)
    lr: float = setting(0.01, float, "AdaBelief learning rate (Table 1)", above=0)
    weight_decay: float = setting(1e-4, float, "AdaBelief weight decay", lo=0)
    samples_per_epoch: int | None = setting(None, int, "random training samples per epoch "
                                            "(paper: 6,000; null: all)", lo=1, nullable=True)
    seed: int = setting(0, int, "seed of the init, the shuffles and the spikes", lo=0)
    threads: int | None = setting(None, int, "torch/numba threads (null: all cores)", lo=1,
                                  nullable=True)
    loss: dict[str, Any] = setting(
        {"true_rate": 0.2, "false_rate": 0.03}, dict, "spike-rate targets of the read-out",
        fields={"true_rate": Check(float, lo=0, hi=1), "false_rate": Check(float, lo=0, hi=1)})
    time_limit_min: float | None = setting(None, float, "stop after the epoch that passes "
                                           "this budget", above=0, nullable=True)
    init_from: str | None = setting(None, str, "fine-tune: start from this checkpoint's "
                                    "parameters", nullable=True)
    device: str = setting("auto", str, "auto: CUDA when present",
                          pattern=r"^(auto|cpu|cuda(:\d+)?)$", hint="auto, cpu, cuda or cuda:N")
    workers: int | None = setting(None, int, "DataLoader worker processes (null: 0 on CPU, "
                                  "<= 4 on GPU)", lo=0, hi=64, nullable=True)
    checkpoint_blocks: bool = setting(False, bool, "recompute residual blocks in backward "
                                      "(memory)")


#: a config's sections and the dataclass defining each
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelSpec, "train": TrainConfig}

#: the one schema of a config (YAML file and ``--set`` alike): every key's check
SCHEMA: dict[str, dict[str, Check]] = {
    name: {f.name: f.metadata["check"] for f in fields(cls)} for name, cls in SECTIONS.items()}

def field_default(f: Any) -> Any:
    """A config field's default value (a fresh copy for mappings)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def config_keys() -> list[dict[str, Any]]:
    """Every config key (``section.key``) with its default and documentation, in the order
    of the definition (``psplava configs --keys``)."""
    rows = []
    for name, cls in SECTIONS.items():
        for f in fields(cls):
            default = field_default(f)
            inherit = f.metadata["inherit"]
            chk: Check = f.metadata["check"]
            allowed = chk.choices if isinstance(chk.choices, tuple) else None
            rows.append({"key": f"{name}.{f.name}",
                         "default": f"= {inherit}" if inherit else default,
                         "doc": f.metadata["doc"]
                         + (f" ({' | '.join(allowed)})" if allowed else "")
                         + (f" ({chk.hint})" if chk.hint else "")})
    return rows


#: a config's defaults (the keys that inherit another key's value are left out)
DEFAULTS: dict[str, Any] = {
    name: {f.name: field_default(f) for f in fields(cls) if not f.metadata["inherit"]}
    for name, cls in SECTIONS.items()}

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


def check_section(source: str, section: str, values: dict[str, Any]) -> None:
    """One section's values against :data:`SCHEMA` (unknown keys refused); errors start
    with ``source`` (the file, ``--set``; empty for a checkpoint's spec)."""
    where = f"{source}: " if source else ""
    checks = SCHEMA[section]
    unknown = set(values) - set(checks)
    if unknown:
        raise ConfigError(f"{where}unknown {section} keys {sorted(unknown)} (known: "
                          f"{sorted(checks)})")
    for key, chk in checks.items():
        if key in values:
            chk.check(f"{where}{section}.{key}", values[key])


def validate(cfg: dict[str, Any], source: str) -> None:
    """Check every key of the config against :data:`SCHEMA` (unknown keys refused), the
    architecture string and the neuron parameters; one :class:`ConfigError` line each."""
    top = set(cfg) - set(SCHEMA) - {"name", "description"}
    if top:
        raise ConfigError(f"{source}: unknown top-level keys {sorted(top)} (sections: "
                          f"{sorted(SCHEMA)}; a --set key is SECTION.KEY, e.g. train.epochs)")
    for section in SCHEMA:
        values = cfg.get(section)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        check_section(source, section, values)
    m = cfg["model"]
    # heavy: the k_max rule and the architecture grammar load torch; a config stays light
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
                Check(float, above=0).check(f"{source}: model.{key}.{k}", v)
        try:
            cls.params_type(**m[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: model.{key}: {exc}") from None
