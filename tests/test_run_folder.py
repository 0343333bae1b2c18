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
