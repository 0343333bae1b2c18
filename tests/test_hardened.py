"""Issue 22 ("nothing lost, nothing silent"): held-out data stays held out, signals end a
command with one line, ignored flags are refused.  Each test failed before its fix (the
note of the change says how that was checked)."""

from __future__ import annotations

import json

import numpy as np
import yaml

from psplava.cli import main
from psplava.data import train_val_split

RUN_CONFIG = ("model: {arch: '34x34x2-n4c3s2-n10'}\n"
              "data: {dataset: digits, steps: 20, val_count: 10, train_limit: 40}\n"
              "train: {epochs: 1, batch_size: 10, threads: 1}\n")


def test_fine_tune_keeps_its_sources_held_out_recordings(tmp_path, capsys):
    """--init-from with another train.seed held out other recordings than the source
    (most of them in the source's training set); now the source's split seed is kept."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(RUN_CONFIG)
    src = tmp_path / "src"
    assert main(["train", "--config", str(cfg), "--out", str(src), "--no-progress"]) == 0
    tune = tmp_path / "tune"
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--out", str(tune), "--no-progress",
                 "--init-from", str(src / "best.pt"), "--set", "train.seed=5"]) == 0
    assert "keeping the source's held-out recordings" in capsys.readouterr().out
    saved = yaml.safe_load((tune / "config.yaml").read_text())
    assert saved["data"]["split_seed"] == 0 and saved["train"]["seed"] == 5
    # and it says loudly when it cannot (an explicit other split seed)
    other = tmp_path / "other"
    assert main(["train", "--config", str(cfg), "--out", str(other), "--no-progress",
                 "--init-from", str(src / "best.pt"), "--set", "data.split_seed=5"]) == 0
    out = capsys.readouterr().out
    _, va = train_val_split(40, 10, 5)
    tr_src, _ = train_val_split(40, 10, 0)
    leaked = len(np.intersect1d(va, tr_src))
    assert leaked > 0
    assert f"WARNING: this fine-tune does not hold out its source's recordings " \
           f"(data.split_seed is set): {leaked} of its 10" in out
    # evaluate --split val scores the fine-tune's own held-out recordings
    assert main(["evaluate", str(tune / "best.pt"), "--split", "val", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["samples"] == 10
