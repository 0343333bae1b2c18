"""Kill -9 a real training run at several moments, resume it, and compare with an
uninterrupted run: every epoch once in metrics.jsonl, the same values, best.pt present
whenever a best epoch is recorded, no temp files left.  Slow (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = ("model: {arch: '34x34x2-n4c3s2-n10'}\n"
          "data: {dataset: digits, steps: 40, val_count: 20, train_limit: 200}\n"
          "train: {epochs: 4, batch_size: 10, threads: 1}\n")


def _train(cfg: Path, out: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "psplava.cli", "train", "--config", str(cfg), "--out",
           str(out), "--no-progress"] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _epochs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _strip(rows: list[dict]) -> list[tuple]:
    return [(r["epoch"], r["train_loss"], r["val_accuracy"], r["val_loss"]) for r in rows]


@pytest.mark.slow
def test_kill_and_resume_at_any_moment(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    ref = tmp_path / "ref"
    t0 = time.time()
    assert _train(cfg, ref, False).wait(timeout=600) == 0
    total = time.time() - t0
    expected = _strip(_epochs(ref))
    assert [e[0] for e in expected] == [1, 2, 3, 4]
    for k, frac in enumerate((0.55, 0.65, 0.75, 0.85, 0.95)):
        out = tmp_path / f"run{k}"
        p = _train(cfg, out, False)
        time.sleep(total * frac)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        for _ in range(3):  # resume until done (a kill before the first epoch: start again)
            q = _train(cfg, out, (out / "last.pt").is_file())
            if q.wait(timeout=600) == 0:
                break
        rows = _epochs(out)
        assert _strip(rows) == expected, f"kill at {frac:.0%} of the run"
        assert (out / "best.pt").is_file()  # a best epoch is recorded in every run
        assert not list(out.glob(".*.tmp"))


SMALL = ("model: {arch: '34x34x2-n4c3s2-n10'}\n"
         "data: {dataset: digits, steps: 20, val_count: 10, train_limit: 50}\n"
         "train: {epochs: 2, batch_size: 10, threads: 1}\n")
KILLER = Path(__file__).with_name("kill_at_write.py")


def _run(cfg: Path, out: Path, kill_at: int | None, resume: bool) -> int:
    args = ["train", "--config", str(cfg), "--out", str(out), "--no-progress"]
    args += ["--resume"] if resume else []
    cmd = [sys.executable] + ([str(KILLER), str(kill_at), str(out)] if kill_at is not None
                              else ["-m", "psplava.cli"]) + args
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=300).returncode


def _check_after_kill(out: Path) -> None:
    """What must hold at any moment: a best epoch recorded (in last.pt) has its best.pt;
    metrics.jsonl never holds an epoch twice."""
    import torch

    if (out / "last.pt").is_file():
        ckpt = torch.load(out / "last.pt", weights_only=True)
        if (ckpt.get("best") or {}).get("epoch"):
            assert (out / "best.pt").is_file()
    if (out / "metrics.jsonl").is_file():
        epochs = []
        for line in (out / "metrics.jsonl").read_text().splitlines():
            try:
                epochs.append(json.loads(line)["epoch"])
            except json.JSONDecodeError:
                break
        assert len(epochs) == len(set(epochs))


def _kill_and_resume(cfg: Path, out: Path, k: int, expected: list[tuple]) -> bool:
    """Kill a run at write moment k, check the folder, resume it; False when the run has
    fewer moments than k + 1 (it ended by itself)."""
    rc = _run(cfg, out, k, False)
    if rc == 0:
        return False
    assert rc == -signal.SIGKILL, (k, rc)
    _check_after_kill(out)
    assert _run(cfg, out, None, True) == 0, f"resume after a kill at moment {k}"
    assert _strip(_epochs(out)) == expected, f"kill at write moment {k}"
    assert (out / "best.pt").is_file()
    assert not list(out.glob(".*.tmp"))
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + len(expected)
    return True


def _reference(tmp_path: Path) -> tuple[Path, list[tuple]]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL)
    assert _run(cfg, tmp_path / "ref", None, False) == 0
    expected = _strip(_epochs(tmp_path / "ref"))
    assert [e[0] for e in expected] == [1, 2]
    return cfg, expected


def test_resume_after_a_kill_at_the_hardest_writes(tmp_path):
    """The fast subset: killed between best.pt and last.pt of epoch 1 (moment 3), after
    last.pt but before its metrics row (5), and in the middle of that row (7)."""
    cfg, expected = _reference(tmp_path)
    for k in (3, 5, 7):
        assert _kill_and_resume(cfg, tmp_path / f"k{k}", k, expected)


@pytest.mark.slow
def test_resume_after_a_kill_at_each_write(tmp_path):
    """SIGKILL at every write moment of a run (before and after each atomic commit, before,
    in the middle of and after each metrics append: tests/kill_at_write.py), then
    ``--resume``: the same metrics as an uninterrupted run, best.pt, no temp files."""
    cfg, expected = _reference(tmp_path)
    k = 0
    while _kill_and_resume(cfg, tmp_path / f"k{k}", k, expected):
        k += 1
    assert k >= 16  # 2 epochs: config, checkpoints, metrics rows, csv
    print(f"{k} write moments, each killed and resumed")
