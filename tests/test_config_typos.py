"""Config typos are refused, and each error names where the value came from (issue 22):
before, ``--set trian.epochs=1``, ``--set epochs=1`` and ``--set foo=1`` trained with the
defaults, and a bad ``--set`` value was reported against the YAML file."""

from __future__ import annotations

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
