"""Architecture grammar, network builder, configs, training runs, checkpoints, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from psplava.cli import main
from psplava.errors import ConfigError
from psplava.train.arch import parse_arch
from psplava.train.config import load_config
from psplava.train.model import SNN
from psplava.train.checkpoint import load_checkpoint

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
PAPER_NMNIST = "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10"


def test_paper_architecture_string():
    shape, layers = parse_arch(PAPER_NMNIST)
    assert shape == (34, 34, 2)
    assert [l.kind for l in layers] == ["conv"] * 12 + ["dense"]
    assert [l.out for l in layers] == [8] + [16] * 6 + [32] * 5 + [10]
    assert all(l.pre_norm for l in layers[:12]) and not layers[12].pre_norm
    shape, layers = parse_arch("34x34-16c3n-{32c3s2n}*2-10")
    assert shape == (34, 34, 1) and layers[1].stride == 2 and layers[2].post_norm
    model = SNN({"arch": "34x34x2-n8c3-n16c3s2-n32c3s2-10", "norm": "psp_bn", "steps": 5})
    assert [l.out_shape for l in model.layers] == [(34, 34, 8), (17, 17, 16), (9, 9, 32), (10,)]


@pytest.mark.parametrize("bad,needle", [
    ("34x34x2-n8c3-{n16c3*5-10", "unbalanced"),
    ("34x34x2-8q3-10", "unknown layer token"),
    ("n8c3-10", "input shape"),
    ("34x34x2-10-8c3", "cannot follow a dense"),
    ("34x34x2-8c4-10", "odd"),
])
def test_bad_architectures(bad, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_arch(bad)


def test_norm_marker_position_is_checked():
    with pytest.raises(ConfigError, match="acts on the membrane"):
        SNN({"arch": "34x34x2-n8c3-10", "norm": "bn"})
    with pytest.raises(ConfigError, match="acts on the PSP"):
        SNN({"arch": "34x34x2-8c3n-10", "norm": "psp_ln"})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_builds(path):
    cfg = load_config(path)
    assert "root" in cfg["data"]
    model = SNN({**cfg["model"], "steps": cfg["data"]["steps"]})
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 0 and model.num_classes == 10
    if path.stem.startswith("nmnist_small"):
        assert cfg["data"]["val_count"] == 100
        assert cfg["data"]["root"] == "../shared/data/nmnist_small"


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(CONFIGS[0], ["train.lr=0.5", "model.lam=0.2", "data.augment.shift=3"])
    assert cfg["train"]["lr"] == 0.5 and cfg["model"]["lam"] == 0.2
    assert cfg["data"]["augment"]["shift"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lrr: 1}\n")
    with pytest.raises(ConfigError, match="unknown train keys"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("norm,arch", [
    ("psp_ln", "34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10"),
    ("causal_psp_ln", "34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10"),
    ("psp_bn", "34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10"),
    ("tdbn", "34x34x2-8c3n-16c3s2n-{16c3n}*4-16c3n-32c3s2n-{32c3n}*4-10"),
    ("bn", "34x34x2-8c3n-16c3s2n-{16c3n}*4-16c3n-32c3s2n-{32c3n}*4-10"),
    ("bntt", "34x34x2-8c3n-16c3s2n-{16c3n}*4-16c3n-32c3s2n-{32c3n}*4-10"),
])
def test_initialisation_fires_on_real_data(nmnist_root, norm, arch):
    """DESIGN.md: the paper's weight scale alone leaves the net silent; ours must fire."""
    from psplava.data.events import Binning
    from psplava.data.nmnist import NMNIST

    ds = NMNIST(nmnist_root, "train", Binning(3.0, 100))
    x = torch.from_numpy(np.stack([ds[i][0] for i in range(4)], axis=1))
    model = SNN({"arch": arch, "norm": norm, "steps": 100})
    with torch.no_grad():
        model(x)
    assert min(model.last_rates[:-1]) > 1e-3, model.last_rates
    assert max(model.last_rates) < 0.2


def _tiny_config(tmp_path: Path, **train) -> Path:
    cfg = {
        "data": {"dataset": "digits", "root": None, "steps": 30, "dt_ms": 10.0,
                 "val_count": 20, "train_limit": 60, "augment": {"shift": 1}},
        "model": {"arch": "34x34x2-n4c3s2-n8c3s2-10", "neuron": "srm", "norm": "psp_ln"},
        "train": {"epochs": 2, "batch_size": 10, "lr": 0.01, "seed": 3, "threads": 1, **train},
    }
    import yaml

    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_train_checkpoint_evaluate_resume(tmp_path, capsys):
    cfg = _tiny_config(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress",
                 "--set", "train.epochs=1"]) == 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["val_samples"] == 20
    assert {"train_loss", "val_accuracy", "val_firing_rates"} <= set(rows[0])
    ckpt = torch.load(run / "last.pt", weights_only=True)  # plain data only
    assert ckpt["config"]["model"]["norm"] == "psp_ln" and (run / "best.pt").is_file()
    # resume to 2 epochs
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress",
                 "--resume"]) == 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    capsys.readouterr()
    assert main(["evaluate", str(run / "best.pt"), "--dataset", "digits", "--split", "test",
                 "--limit", "15", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["samples"] == 15 and 0.0 <= res["accuracy"] <= 1.0
    assert len(res["firing_rates"]) == 3 and res["spikes_per_sample"] > 0
    # report
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| run |" in (tmp_path / "rep" / "report.md").read_text()


def test_training_is_reproducible_and_learns(tmp_path):
    cfg = _tiny_config(tmp_path, epochs=2)
    for name in ("a", "b"):
        assert main(["train", "--config", str(cfg), "--out", str(tmp_path / name),
                     "--no-progress"]) == 0
    a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda l: {k: v for k, v in json.loads(l).items() if k != "epoch_seconds"}  # noqa
    assert [strip(l) for l in a] == [strip(l) for l in b]
    rows = [json.loads(l) for l in a]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_bad_checkpoint_errors(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(bad), "--json"]) == 2
    err = capsys.readouterr().err
    assert "x.pt" in err and "checkpoint" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 2


def test_checkpoint_refuses_code(tmp_path):
    """weights_only loading: a pickled object is refused with a clear message."""
    p = tmp_path / "evil.pt"
    torch.save({"model_spec": {"arch": "x"}, "model": object()}, p)
    with pytest.raises(Exception, match="not a readable psplava checkpoint"):
        load_checkpoint(p)


def test_cuba_network_trains_one_step():
    model = SNN({"arch": "34x34x2-n4c3s2-n8c3s2-10", "neuron": "cuba", "norm": "psp_bn",
                 "steps": 20})
    x = (torch.rand(20, 2, 34, 34, 2) < 0.1).float()
    out = model(x)
    out.sum().backward()
    assert out.shape == (20, 2, 10)
    assert model.layers[0].weight.grad.abs().sum() > 0


def test_resume_accepts_checkpoints_from_before_new_default_keys(tmp_path):
    """A key added to DEFAULTS later (e.g. data.cache) must not block --resume."""
    cfg_path = _tiny_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg_path), "--out", str(run), "--no-progress"]) == 0
    ckpt = torch.load(run / "last.pt", weights_only=True)
    del ckpt["config"]["data"]["cache"]
    torch.save(ckpt, run / "last.pt")
    assert main(["train", "--config", str(cfg_path), "--out", str(run), "--no-progress",
                 "--resume", "--set", "train.epochs=2"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_run_folder_is_protected_and_locked(tmp_path, capsys):
    """A folder holding a run is refused without --resume/--overwrite; a second writer is
    refused while the lock is held."""
    from psplava.train.trainer import run_folder_lock

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {arch: '34x34x2-n4c3s2-n10'}\n")
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress"]) == 2
    assert "--resume continues it, --overwrite" in capsys.readouterr().err
    with run_folder_lock(run):
        assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress",
                     "--overwrite"]) == 2
        assert "another psplava process" in capsys.readouterr().err


def test_resume_repairs_the_metrics_log(tmp_path):
    """A kill after last.pt but before its metrics row, and a duplicated row: resume leaves
    each epoch exactly once, and metrics.csv mirrors it."""
    import csv as _csv

    from psplava.train.trainer import _repair_metrics

    path = tmp_path / "metrics.jsonl"
    rows = [{"epoch": 1, "val_accuracy": 0.1}, {"epoch": 2, "val_accuracy": 0.2},
            {"epoch": 2, "val_accuracy": 0.2}, {"epoch": 3, "val_accuracy": 0.3}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 4, "va')
    _repair_metrics(path, 3, {"epoch": 3, "val_accuracy": 0.3})
    assert [json.loads(l)["epoch"] for l in path.read_text().splitlines()] == [1, 2, 3]
    _repair_metrics(path, 4, {"epoch": 4, "val_accuracy": 0.4})  # row 4 never written
    assert [json.loads(l)["epoch"] for l in path.read_text().splitlines()] == [1, 2, 3, 4]
    with open(tmp_path / "metrics.csv") as f:
        assert [r["epoch"] for r in _csv.DictReader(f)] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("setting, message", [
    ("train.epochs=abc", "train.epochs must be an integer"),
    ("model.lam=-1", "model.lam must be > 0"),
    ("model.norm=foo", "model.norm must be one of"),
    ("model.srm.tau_s=0", "model.srm.tau_s must be > 0"),
    ("model.arch=34x34x2-0c3-10", "at least 1 output channel"),
    ("model.arch=0c3", "must start with the input shape"),
    ("train.bogus=1", "unknown train keys ['bogus']"),
    ("data.steps=0", "data.steps must be >= 1"),
    ("train.lr=.nan", "train.lr must be finite"),
    ("train.loss.true_rate=2", "train.loss.true_rate must be <= 1"),
])
def test_config_schema_one_line_exit_2(tmp_path, capsys, setting, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {arch: '34x34x2-n4c3s2-n10'}\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress",
                 "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_config_file_values_checked_like_set(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {arch: '34x34x2-n4c3s2-n10'}\ntrain: {epochs: 'abc'}\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "train.epochs must be an integer" in capsys.readouterr().err
