"""psplava sweep: one run folder per point, sweep.json, a report at the end, and a killed
sweep resumes without running its finished points again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ("data: {dataset: digits, steps: 15, dt_ms: 10.0, val_count: 10, train_limit: 40}\n"
          "model: {arch: 34x34x2-n4c3s2-n10, norm: psp_ln}\n"
          "train: {epochs: 2, samples_per_epoch: 10, batch_size: 5, threads: 1}\n")


def _sweep(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "psplava", "sweep", str(cfg), "--grid",
                             "model.lam=0.05,0.5", "--grid", "train.seed=0,1", "--out",
                             str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def test_sweep_resumes_after_a_kill_without_rerunning_finished_points(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "sw"
    p = _sweep(cfg, out)
    deadline = time.time() + 300
    index = out / "sweep.json"
    while time.time() < deadline:  # kill once the first point is done
        if index.is_file() and sum(x["done"] for x in json.loads(index.read_text())["points"]):
            break
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = json.loads(index.read_text())
    finished = [x for x in first["points"] if x["done"]]
    assert 1 <= len(finished) < 4
    stamps = {x["name"]: (Path(x["run_dir"]) / "metrics.jsonl").stat().st_mtime_ns
              for x in finished}
    q = _sweep(cfg, out)
    log, _ = q.communicate(timeout=600)
    assert q.returncode == 0, log
    final = json.loads(index.read_text())
    assert [x["name"] for x in final["points"]] == ["lam=0.05__seed=0", "lam=0.05__seed=1",
                                                     "lam=0.5__seed=0", "lam=0.5__seed=1"]
    assert all(x["done"] and x["best_val_accuracy"] is not None for x in final["points"])
    assert final["points"][0]["settings"] == {"model.lam": 0.05, "train.seed": 0}
    for name, stamp in stamps.items():  # finished points were not trained again
        assert f"{name}: done already (skipped)" in log
        assert (out / name / "metrics.jsonl").stat().st_mtime_ns == stamp
    for x in final["points"]:
        rows = (Path(x["run_dir"]) / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
    assert (out / "report").is_dir() and any((out / "report").glob("*.md"))
    assert json.loads(log.strip().splitlines()[-1])["done"] == 4


def test_sweep_refuses_bad_grids(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    for grid, msg in (("model.lam", "expected KEY=V1,V2"), ("model.lamm=1,2", "unknown model"),
                      ("model.lam=-1,0.1", "model.lam")):
        r = subprocess.run([sys.executable, "-m", "psplava", "sweep", str(cfg), "--grid", grid,
                            "--out", str(tmp_path / "x")], capture_output=True, text=True,
                           cwd=ROOT)
        assert r.returncode == 2, (grid, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
