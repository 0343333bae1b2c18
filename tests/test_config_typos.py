"""Config typos are refused, and each error names where the value came from (issue 22):
before, ``--set trian.epochs=1``, ``--set epochs=1`` and ``--set foo=1`` trained with the
defaults, and a bad ``--set`` value was reported against the YAML file."""

from __future__ import annotations

import json

import pytest

from psplava.cli import main
from psplava.errors import ConfigError
from psplava.train.config import load_config

CONFIG = "configs/nmnist_small_none.yaml"


@pytest.mark.parametrize("item, msg", [
    ("trian.epochs=1", "--set: unknown top-level keys ['trian']"),
    ("epochs=1", "--set: unknown top-level keys ['epochs']"),
    ("foo=1", "--set: unknown top-level keys ['foo']"),
    ("train.epochz=1", "--set: unknown train keys ['epochz']"),
    ("model.lam=-1", "--set: model.lam must be > 0"),
])
def test_bad_set_is_refused_and_named(item, msg):
    with pytest.raises(ConfigError) as exc:
        load_config(CONFIG, [item])
    assert msg in str(exc.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trian: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown sections"):
        load_config(bad)
    bad.write_text("model: {lam: -1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model.lam must be > 0"):
        load_config(bad, ["train.epochs=1"])


def test_train_exits_2_on_a_typo_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", CONFIG, "--out", str(out), "--set", "trian.epochs=1"]) == 2
    assert "unknown top-level keys ['trian']" in capsys.readouterr().err
    assert not out.exists()


def test_one_definition_gives_defaults_schema_and_model_spec():
    """The config's defaults, its schema and ModelSpec come from the section dataclasses
    (issue 19): every key of each is a field of the other two, with the same default."""
    from dataclasses import fields

    from psplava import loihi
    from psplava.train.config import DEFAULTS, SCHEMA, SECTIONS, ModelSpec, field_default

    assert set(SCHEMA) == set(DEFAULTS) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        keys = {f.name for f in fields(cls)}
        assert set(SCHEMA[name]) == keys
        inherited = {f.name for f in fields(cls) if f.metadata["inherit"]}
        assert set(DEFAULTS[name]) == keys - inherited
        for f in fields(cls):
            default = field_default(f)
            if f.name in DEFAULTS[name]:
                assert DEFAULTS[name][f.name] == default, (name, f.name)
            SCHEMA[name][f.name].check(f"{name}.{f.name}", default)  # defaults pass
    assert DEFAULTS["model"]["k_max"] == loihi.K_MAX
    # an inherited key follows its source, unless the section sets it
    spec = ModelSpec.from_config({**DEFAULTS, "data": {**DEFAULTS["data"], "steps": 37}})
    assert spec.steps == 37
    assert ModelSpec.from_config({**DEFAULTS, "model": {**DEFAULTS["model"],
                                                        "steps": 5}}).steps == 5
    assert ModelSpec() == ModelSpec.from_config(DEFAULTS)


@pytest.mark.parametrize("item, msg", [
    ("model.block=side", "model.block must be one of ['pre', 'post']"),
    ("model.arithmetic=int", "model.arithmetic must be one of ['float', 'loihi']"),
    ("model.norm=ln", "model.norm must be one of"),
    ("data.augment.shft=1", "unknown data.augment keys ['shft']"),
    ("train.loss.true_rate=2", "train.loss.true_rate must be <= 1"),
])
def test_checks_come_from_the_definition(item, msg):
    with pytest.raises(ConfigError) as exc:
        load_config(CONFIG, [item])
    assert msg in str(exc.value)


def test_checkpoint_spec_is_checked_by_the_same_schema():
    from psplava.train.config import ModelSpec

    with pytest.raises(ConfigError, match="model.block must be one of"):
        ModelSpec.from_dict({"block": "side"})
    with pytest.raises(ConfigError, match="unknown model keys"):
        ModelSpec.from_dict({"depth": 3})


def test_configs_keys_lists_every_key_with_its_default(capsys):
    from psplava.train.config import SCHEMA

    assert main(["configs", "--keys", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["keys"]
    assert [r["key"] for r in rows] == [f"{s}.{k}" for s, ks in SCHEMA.items() for k in ks]
    by = {r["key"]: r for r in rows}
    assert by["model.lam"]["default"] == 0.1 and by["model.steps"]["default"] == "= data.steps"
    assert "psp_bn" in by["model.norm"]["doc"] and all(r["doc"] for r in rows)
