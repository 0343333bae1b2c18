"""``psplava sweep CONFIG --grid KEY=V1,V2 [--grid ...] --out DIR``: one training run per
point of a grid, resumable, ending with ``psplava report DIR``.

* Points: the cartesian product of the grids (values parsed as YAML scalars, as ``--set``
  parses them); each point trains in ``DIR/<name>``, ``<name>`` made of the keys' last parts
  and the values (``lam=0.01__tau_s=5``).  Every point's config is checked before the first
  one starts.
* ``DIR/sweep.json`` lists every point: its settings, its run folder, whether it is done,
  and its best validation accuracy; it is rewritten atomically after every change.
* Resumable: a killed sweep started again skips the finished points and resumes the
  unfinished ones from their ``last.pt`` (each point is a ``psplava train --resume``
  process, so a point killed mid-run continues where its last epoch left it).
* ``--parallel N``: N points at a time (each with ``train.threads`` = cores / N unless the
  config sets it); ``--nproc M``: each point trains with M processes (DDP).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from psplava.errors import ConfigError, atomic_path
from psplava.train.config import load_config
from psplava.train.report import make_report

SWEEP_FORMAT = 1


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["model.lam=0.01,0.1", ...]`` -> ``{"model.lam": [0.01, 0.1], ...}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,...")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or key in grid:
            raise ConfigError(f"--grid {item!r}: {'empty' if not key else 'repeated'} key")
        values = []
        for text in raw.split(","):
            try:
                values.append(yaml.safe_load(text))
            except yaml.YAMLError as exc:
                raise ConfigError(f"--grid {item!r}: cannot parse {text!r} ({exc})") from None
        if not values or any(v is None and t.strip() == "" for v, t in zip(values,
                                                                             raw.split(","))):
            raise ConfigError(f"--grid {item!r}: empty value")
        grid[key] = values
    if not grid:
        raise ConfigError("sweep: give at least one --grid KEY=V1,V2,...")
    return grid


def point_name(settings: dict[str, Any]) -> str:
    parts = [f"{k.split('.')[-1]}={v}" for k, v in settings.items()]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "__".join(parts))


def plan(config: str, grid: dict[str, list[Any]], sets: list[str]) -> list[dict[str, Any]]:
    """Every point (settings, name) with its config checked."""
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        settings = dict(zip(keys, values))
        overrides = sets + [f"{k}={json.dumps(v) if isinstance(v, str) else v}"
                            for k, v in settings.items()]
        load_config(config, overrides)  # one clear line if a point's config is invalid
        points.append({"name": point_name(settings), "settings": settings,
                       "overrides": overrides})
    names = [p["name"] for p in points]
    if len(set(names)) != len(names):
        raise ConfigError("sweep: two points have the same folder name; use distinct values")
    return points


def _write(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state, indent=1) + "\n")


def _best(run: Path) -> float | None:
    try:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
        return max(r["val_accuracy"] for r in rows) if rows else None
    except (OSError, ValueError, KeyError):
        return None


def run_sweep(config: str, grid_items: list[str], out: str | Path, parallel: int = 1,
              sets: list[str] | None = None, nproc: int | None = None,
              device: str | None = None, log=print) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the final ``sweep.json`` contents."""
    if parallel < 1:
        raise ConfigError(f"--parallel {parallel}: must be at least 1")
    out = Path(out)
    grid = parse_grid(grid_items)
    sets = list(sets or [])
    points = plan(config, grid, sets)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "sweep.json"
    state = {"format": SWEEP_FORMAT, "config": str(config), "grid": grid, "set": sets,
             "points": []}
    if index.is_file():
        try:
            old = json.loads(index.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{index}: not a readable sweep index ({exc})") from None
        if old.get("grid") != grid or old.get("config") != str(config) or \
                old.get("set", []) != sets:
            raise ConfigError(f"{index}: this folder holds another sweep (config, grid or "
                              "--set differ); use another --out")
        done = {p["name"] for p in old.get("points", []) if p.get("done")}
    else:
        done = set()
    for p in points:
        run = out / p["name"]
        state["points"].append({"name": p["name"], "settings": p["settings"],
                                "run_dir": str(run), "done": p["name"] in done,
                                "best_val_accuracy": _best(run) if p["name"] in done else None})
    _write(index, state)
    threads = None
    if parallel > 1 and not any(s.startswith("train.threads=") for s in sets):
        threads = max(1, (os.cpu_count() or 1) // parallel)
    todo = [i for i, p in enumerate(state["points"]) if not p["done"]]
    for i, p in enumerate(state["points"]):
        if p["done"]:
            log(f"[sweep] {i + 1}/{len(points)} {p['name']}: done already (skipped)")
    running: dict[int, tuple[subprocess.Popen, float]] = {}
    failed = []
    try:
        while todo or running:
            while todo and len(running) < parallel:
                i = todo.pop(0)
                pt = points[i]
                cmd = [sys.executable, "-m", "psplava", "train", "--config", str(config),
                       "--out", state["points"][i]["run_dir"], "--resume", "--no-progress"]
                for o in pt["overrides"] + ([f"train.threads={threads}"] if threads else []):
                    cmd += ["--set", o]
                if nproc:
                    cmd += ["--nproc", str(nproc)]
                if device:
                    cmd += ["--device", device]
                run = Path(state["points"][i]["run_dir"])
                run.mkdir(parents=True, exist_ok=True)
                logf = open(run / "train.log", "a")
                running[i] = (subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT),
                              time.time())
                logf.close()
                log(f"[sweep] {i + 1}/{len(points)} {pt['name']}: started "
                    f"({run / 'train.log'})")
            time.sleep(0.2)
            for i, (proc, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[i]
                p = state["points"][i]
                if proc.returncode == 0:
                    p["done"], p["best_val_accuracy"] = True, _best(Path(p["run_dir"]))
                    _write(index, state)
                    log(f"[sweep] {i + 1}/{len(points)} {p['name']}: done, best val acc "
                        f"{p['best_val_accuracy']} ({time.time() - t0:.0f} s)")
                else:
                    failed.append(p["name"])
                    log(f"[sweep] {i + 1}/{len(points)} {p['name']}: failed (exit "
                        f"{proc.returncode}; see {Path(p['run_dir']) / 'train.log'})")
    finally:
        for proc, _ in running.values():  # interrupted: the points resume next time
            proc.terminate()
        for proc, _ in running.values():
            proc.wait()
    finished = [p["run_dir"] for p in state["points"] if p["done"]]
    if finished:
        res = make_report([out], out / "report")
        log(f"[sweep] report: {res['markdown']}")
    if failed:
        raise ConfigError(f"sweep: {len(failed)} point(s) failed: {', '.join(failed)}")
    return state
