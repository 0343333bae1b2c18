"""Fuzzing the command line with bad inputs: `.net` mutations, event bytes, configs and
`sim --input` arrays (seeded, so a failure reproduces; `PSPLAVA_FUZZ_CASES` scales it).

Every case must end within a time bound in exit 0 with a correct result (sim: an output
file of the right shape) or exit 2 with exactly one line on stderr naming the problem.  A
traceback, a hang or a silent wrong result is a defect.  Each test prints its counts
(tried / clear / ok / traceback / hang / silent) -- `pytest -s tests/test_fuzz.py` shows them.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from psplava.cli import main

from conftest import encode_nmnist_events

DATA = Path(__file__).parent / "data"
CASES = int(os.environ.get("PSPLAVA_FUZZ_CASES", "30"))
TIME_BOUND_S = 60


#: stdout of the last :func:`_run` call (for a ``check_ok`` that reads it)
LAST_OUT = [""]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _run(argv: list[str], capsys, check_ok=None) -> str:
    """One CLI call classified as clear / ok / traceback / hang / silent."""
    capsys.readouterr()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_BOUND_S)
    try:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors exit 2 themselves
            code = exc.code
    except _Hang:
        return "hang"
    except Exception as exc:
        if os.environ.get("PSPLAVA_FUZZ_DEBUG"):
            import traceback
            traceback.print_exc(file=sys.__stderr__)
        return "traceback"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    LAST_OUT[0] = captured.out
    err = [line for line in captured.err.splitlines() if line.strip()]
    if code == 2:
        lines = [line for line in err if line.startswith("psplava") or "error" in line]
        if len(lines) != 1 and os.environ.get("PSPLAVA_FUZZ_DEBUG"):
            print("NOT ONE LINE:", err, file=sys.__stderr__)
        return "clear" if len(lines) == 1 else "traceback"
    if code == 0:
        return "ok" if check_ok is None or check_ok() else "silent"
    if os.environ.get("PSPLAVA_FUZZ_DEBUG"):
        print("EXIT", code, err, file=sys.__stderr__)
    return "traceback"


def _report(name: str, counts: Counter) -> None:
    print(f"\nfuzz {name}: tried {sum(counts.values())}, " +
          ", ".join(f"{k} {counts[k]}" for k in ("clear", "ok", "traceback", "hang", "silent")))
    assert counts["traceback"] == counts["hang"] == counts["silent"] == 0, dict(counts)


# --------------------------------------------------------------------------- .net files
def _datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path) as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def _mutate_net(src: Path, dst: Path, rng: np.random.Generator) -> None:
    shutil.copy(src, dst)
    kind = rng.integers(0, 4)
    if kind == 0:  # flip bytes
        raw = bytearray(dst.read_bytes())
        for _ in range(int(rng.integers(1, 20))):
            raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        dst.write_bytes(bytes(raw))
        return
    if kind == 1:  # truncate
        raw = dst.read_bytes()
        dst.write_bytes(raw[:int(rng.integers(0, len(raw)))])
        return
    names = _datasets(dst)
    name = names[int(rng.integers(0, len(names)))]
    with h5py.File(dst, "r+") as f:
        old = f[name][()]
        del f[name]
        if kind == 2:  # delete the dataset
            return
        shape = np.shape(old)
        choice = int(rng.integers(0, 7))
        value = [np.full(shape, np.nan), np.full(shape, -7), np.full(shape, 1e12),
                 np.zeros((0,)), np.ones((3, 3, 3)), np.array(b"garbage"),
                 rng.normal(size=shape) * 300][choice]
        f.create_dataset(name, data=value)


@pytest.mark.parametrize("golden", ["golden_srm_causal", "golden_cuba_psp_bn"])
def test_fuzz_net_files(tmp_path, capsys, golden):
    rng = np.random.default_rng(11)
    src = DATA / f"{golden}.net"
    with h5py.File(src) as f:
        shape = tuple(int(v) for v in f["layer/0/shape"][()])  # (C, H, W)
    x = (rng.random((shape[2], shape[1], shape[0], 8)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    counts: Counter = Counter()
    for i in range(CASES):
        net = tmp_path / f"m{i}.net"
        _mutate_net(src, net, rng)
        out = tmp_path / f"o{i}.npy"

        def ok(out=out):
            return out.is_file() and np.load(out).ndim == 2 and np.load(out).shape[-1] == 8

        counts[_run(["sim", str(net), "--input", str(tmp_path / "x.npy"), "--output",
                     str(out), "--engine", "reference"], capsys, ok)] += 1
    _report(f"{golden}.net mutations", counts)


# --------------------------------------------------------------------------- event bytes
def test_fuzz_event_bytes(tmp_path, capsys):
    rng = np.random.default_rng(12)
    counts: Counter = Counter()
    good = encode_nmnist_events([1, 2, 3], [3, 4, 5], [0, 1, 0], [10, 20, 30])
    for i in range(CASES):
        root = tmp_path / f"r{i}"
        d = root / "train"
        d.mkdir(parents=True)
        kind = int(rng.integers(0, 5))
        raw = [bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8)),
               good[:int(rng.integers(0, len(good)))], b"", good + b"\x00",
               bytes(rng.integers(0, 256, 5 * int(rng.integers(1, 30)), dtype=np.uint8))][kind]
        (d / "a.bs2").write_bytes(raw)
        labels = ["sample,label\na,3\n", "sample,label\na,12\n", "\ufeffsample,label\na,1\n",
                  "x,y\n", "sample,label\na,3\na,4\n"][int(rng.integers(0, 5))]
        (d / "labels.csv").write_text(labels)
        counts[_run(["data", "info", "--dataset", "nmnist", "--root", str(root)], capsys)] += 1
    _report("event bytes and labels", counts)


# --------------------------------------------------------------------------- configs
_KEYS = ["train.epochs", "train.batch_size", "train.lr", "train.weight_decay", "train.seed",
         "train.loss.true_rate", "train.bogus", "model.lam", "model.norm", "model.neuron",
         "model.arch", "model.srm.tau_s", "model.srm.theta", "model.init_gain",
         "model.arithmetic", "data.steps", "data.dt_ms", "data.augment.shift", "data.nope"]
_VALUES = ["abc", "-1", "0", "1e30", ".nan", "[1, 2]", "{a: 1}", "null", "true", "3",
           "0.5", "psp_bn", "foo", "34x34x2-0c3-10", "0c3", "34x34x2-n4c3s2-n10", "''"]


def test_fuzz_configs(tmp_path, capsys):
    rng = np.random.default_rng(13)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {arch: '34x34x2-n4c3s2-n10'}\n"
                   "data: {dataset: digits, steps: 20, val_count: 5, train_limit: 20}\n")
    counts: Counter = Counter()
    for i in range(CASES):
        sets = []
        for _ in range(int(rng.integers(1, 3))):
            sets += ["--set", f"{_KEYS[int(rng.integers(0, len(_KEYS)))]}="
                              f"{_VALUES[int(rng.integers(0, len(_VALUES)))]}"]
        # a valid config must not start a long training: 0 epochs win (last --set wins)
        counts[_run(["train", "--config", str(cfg), "--out", str(tmp_path / f"run{i}"),
                     "--no-progress", *sets, "--set", "train.epochs=0"], capsys)] += 1
    _report("configs", counts)


# --------------------------------------------------------------------------- sim --input
def test_fuzz_sim_input(tmp_path, capsys):
    rng = np.random.default_rng(14)
    net = DATA / "golden_cuba_psp_bn.net"
    with h5py.File(net) as f:
        c, h, w = (int(v) for v in f["layer/0/shape"][()])
    counts: Counter = Counter()
    for i in range(CASES):
        kind = int(rng.integers(0, 8))
        shape = [(w, h, c, 6), (w, h, 6), (w * h * c, 6), (w, h, c, 0), (1, 2, 3, 4),
                 (w, h, c, 6), (w, h, c, 6), (w, h, c, 6)][kind]
        dtype = [np.uint8, np.int32, np.float32, np.bool_, np.int64, np.float64,
                 np.int8, np.uint8][kind]
        x = (rng.integers(-2, 3, size=shape)).astype(dtype)
        if kind == 5:
            x[...] = np.nan
        if kind in (0, 7):
            x = (rng.random(shape) < 0.3).astype(dtype)
        np.save(tmp_path / f"x{i}.npy", x)
        out = tmp_path / f"o{i}.npy"
        steps = [["--steps", str(int(rng.integers(-3, 12)))], []][int(rng.integers(0, 2))]

        def ok(out=out):
            return out.is_file() and np.load(out).ndim == 2

        counts[_run(["sim", str(net), "--input", str(tmp_path / f"x{i}.npy"), "--output",
                     str(out), "--engine", "reference", *steps], capsys, ok)] += 1
    _report("sim --input arrays", counts)


# --------------------------------------------------------------------------- flags x values
#: every numeric flag of every command, with the rest of a quick, valid command line
#: ({v}: the value under test); test_fuzz_numeric_flags checks that none is missing
FLAG_CASES = {
    ("data info", "--steps"): "data info --dataset digits --max-samples 3 --steps {v}",
    ("data info", "--dt"): "data info --dataset digits --max-samples 3 --dt {v}",
    ("data info", "--limit"): "data info --dataset digits --limit {v}",
    ("data show", "--steps"): "data show --dataset digits --out {tmp}/s.png --steps {v}",
    ("data show", "--dt"): "data show --dataset digits --out {tmp}/s.png --dt {v}",
    ("data show", "--index"): "data show --dataset digits --out {tmp}/s.png --index {v}",
    ("data show", "--slices"): "data show --dataset digits --out {tmp}/s.png --slices {v}",
    ("sweep", "--parallel"): "sweep {tmp}/missing.yaml --grid train.seed=1 --out {tmp}/sw "
                             "--parallel {v}",
    ("sweep", "--nproc"): "sweep {tmp}/missing.yaml --grid train.seed=1 --out {tmp}/sw "
                          "--nproc {v}",
    ("train", "--nproc"): "train --config {tmp}/missing.yaml --out {tmp}/r --nproc {v}",
    ("evaluate", "--limit"): "evaluate {pt} --dataset digits --split test --limit {v} --json",
    ("export", "--k-max"): "export {pt} -o {tmp}/m.net --eval-samples 0 --k-max {v}",
    ("export", "--eval-samples"): "export {pt} -o {tmp}/m.net --eval-samples {v}",
    ("export", "--limit"): "export {pt} -o {tmp}/m.net --causal-eval --dataset digits "
                           "--limit {v}",
    ("sim", "--steps"): "sim {net} --split test --limit 2 --engine reference --steps {v}",
    ("sim", "--limit"): "sim {net} --split test --engine reference --limit {v}",
    ("sim", "--dt"): "sim {net} --split test --limit 2 --engine reference --dt {v}",
    ("deploy", "--limit"): "deploy {net} --plan --split test --limit {v} --json",
    ("deploy", "--steps"): "deploy {net} --plan --split test --limit 2 --steps {v} --json",
    ("deploy", "--dt"): "deploy {net} --plan --split test --limit 2 --dt {v} --json",
    ("import", "--dt"): "import {nir} -o {tmp}/i.net --dt {v}",
    ("import", "--k-max"): "import {nir} -o {tmp}/i.net --dt 1e-4 --k-max {v}",
    ("import", "--val-count"): "import {nir} -o {tmp}/i.net --dt 1e-4 --val-count {v}",
    ("import", "--seed"): "import {nir} -o {tmp}/i.net --dt 1e-4 --seed {v}",
    ("import", "--limit"): "import {nir} -o {tmp}/i.net --dt 1e-4 --dataset digits "
                           "--split test --steps 40 --limit {v}",
    ("import", "--steps"): "import {nir} -o {tmp}/i.net --dt 1e-4 --dataset digits "
                           "--split test --limit 2 --steps {v}",
    ("import", "--bin-ms"): "import {nir} -o {tmp}/i.net --dt 1e-4 --dataset digits "
                            "--split test --limit 2 --steps 40 --bin-ms {v}",
    ("import", "--lava-limit"): "import {nir} -o {tmp}/i.net --dt 1e-4 --dataset digits "
                                "--split test --limit 2 --steps 40 --lava-limit {v}",
    # demo: into a folder holding a training run, so that a value that parses is refused
    # by the folder check before any training
    ("demo", "--lava-samples"): "demo --out {run} --lava-samples {v}",
    ("demo", "--limit"): "demo --out {run} --limit {v}",
}
FLAG_VALUES = ("0", "-1", "nan", "inf", "999999999999")


def _numeric_flags() -> set[tuple[str, str]]:
    import argparse

    from psplava import cli

    cli._register_stage_commands()
    found = set()

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, prefix + [name])
            elif a.option_strings and a.type not in (None, str):
                found.add((" ".join(prefix), a.option_strings[0]))
    walk(cli.build_parser(), [])
    return found


def test_fuzz_numeric_flags(tmp_path, capsys):
    """Every numeric flag of every command x {0, -1, nan, inf, huge}: one clear line (exit
    2) or a checked result, never a traceback, a hang or a silent wrong result; sizes that
    would exhaust memory are refused up front."""
    import json

    missing = _numeric_flags() - set(FLAG_CASES)
    assert not missing, f"numeric flags without a fuzz case: {sorted(missing)}"
    src = DATA / "golden_cuba_psp_bn.net"
    from psplava.export.nir_export import write_nir
    from psplava.netfile import read_netfile

    nir_path = tmp_path / "g.nir"
    write_nir(nir_path, read_netfile(src).layers)
    run = tmp_path / "trained"
    run.mkdir()
    (run / "best.pt").write_bytes(b"a run demo did not make")
    fill = {"tmp": str(tmp_path), "net": str(src), "pt": str(src.with_suffix(".pt")),
            "nir": str(nir_path), "run": str(run)}
    counts: Counter = Counter()
    for (cmd, flag), template in sorted(FLAG_CASES.items()):
        for v in FLAG_VALUES:
            argv = template.format(v=v, **fill).split()

            def ok(argv=argv):
                out = LAST_OUT[0].strip().splitlines()
                if argv[:2] == ["data", "show"]:
                    return (tmp_path / "s.png").is_file()
                try:
                    res = json.loads(out[-1]) if out else None
                except ValueError:
                    return False
                return isinstance(res, dict)

            kind = _run(argv, capsys, ok)
            if kind != "clear" and kind != "ok" and os.environ.get("PSPLAVA_FUZZ_DEBUG"):
                print("FLAG CASE", kind, argv, file=sys.__stderr__)
            counts[kind] += 1
    _report("numeric flags", counts)


# --------------------------------------------------------------------------- outputs
def test_fuzz_outputs(tmp_path, capsys):
    """Every command's output x {an existing file, the input itself, a directory, a
    pseudo-filesystem path, a path under a file}: a checked result or one clear line, and
    the inputs untouched."""
    import hashlib

    net = tmp_path / "m.net"
    shutil.copy(DATA / "golden_cuba_psp_bn.net", net)
    pt = tmp_path / "m.pt"
    shutil.copy(DATA / "golden_cuba_psp_bn.pt", pt)
    from psplava.export.nir_export import write_nir
    from psplava.netfile import input_shape, read_netfile

    nir_path = tmp_path / "m.nir"
    write_nir(nir_path, read_netfile(net).layers)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((*input_shape(read_netfile(net)), 4), np.uint8))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {arch: '34x34x2-n4c3s2-n10'}\n"
                   "data: {dataset: digits, steps: 10, val_count: 10, train_limit: 20}\n"
                   "train: {epochs: 1, batch_size: 10, threads: 1}\n")
    inputs = [net, pt, nir_path, x, cfg]
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    existing = tmp_path / "existing"
    existing.mkdir()
    commands = {   # name: (argv with {o}, the input an output may collide with, suffix)
        "export": (f"export {pt} -o {{o}} --eval-samples 0", pt, ".net"),
        "sim": (f"sim {net} --input {x} --output {{o}}", x, ".npy"),
        "import": (f"import {nir_path} -o {{o}}", nir_path, ".net"),
        "data show": ("data show --dataset digits --out {o}", None, ".png"),
        "report": (f"report {tmp_path / 'nothing'} --out {{o}}", None, ""),
        "train": (f"train --config {cfg} --out {{o}} --no-progress", cfg, ""),
    }
    counts: Counter = Counter()
    for name, (template, inp, suffix) in commands.items():
        targets = [tmp_path / f"new_{name.replace(' ', '_')}{suffix}",     # fresh
                   existing if not suffix else tmp_path / f"old{suffix}",  # existing
                   existing,                                              # a directory
                   Path("/proc/psplava_out" + suffix),                    # pseudo-fs
                   a_file / ("out" + suffix)]                             # under a file
        if inp is not None:
            targets.append(inp)                                           # the input
        if suffix:
            (tmp_path / f"old{suffix}").write_bytes(b"old")
        for target in targets:
            argv = template.format(o=target).split()
            kind = _run(argv, capsys)
            if kind not in ("clear", "ok") and os.environ.get("PSPLAVA_FUZZ_DEBUG"):
                print("OUTPUT CASE", kind, argv, file=sys.__stderr__)
            counts[kind] += 1
        for p in inputs:
            if hashlib.sha256(p.read_bytes()).hexdigest() != digest[p]:
                counts["silent"] += 1          # an input was changed: data lost
    _report("outputs", counts)


# --------------------------------------------------------------------------- damaged inputs
def test_fuzz_damaged_checkpoints_metrics_and_configs(tmp_path, capsys):
    """Checkpoints with the right keys but bad contents, --compare with another
    architecture, a corrupt metrics.jsonl, --config pointing at a folder, a .pt, a broken
    YAML file: one clear line each (tracebacks before issue 22)."""
    import torch

    src = DATA / "golden_cuba_psp_bn.pt"
    ck = torch.load(src, weights_only=True)

    def save(name, change):
        c = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ck.items()}
        change(c)
        torch.save(c, tmp_path / name)
        return str(tmp_path / name)

    first = next(iter(ck["model"]))
    damaged = [save("noconfig.pt", lambda c: c.pop("config")),
               save("cfgstr.pt", lambda c: c.__setitem__("config", "text")),
               save("shapes.pt", lambda c: c["model"].__setitem__(first, torch.zeros(3))),
               save("nonsense.pt", lambda c: c["model"].__setitem__(first, "x")),
               save("fmt.pt", lambda c: c.__setitem__("format", "new"))]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_acc\n{broken\n')
    (run / "config.yaml").write_text("model: {}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {arch: [unclosed\n")
    imported = tmp_path / "other.net"
    from psplava.export.nir_import import import_graph
    from psplava.netfile import write_netfile
    from test_nir_import import _dense_if

    write_netfile(imported, import_graph(_dense_if(0.5), 1.0)[0],
                  {"config": '{"data": {"dataset": "digits", "steps": 10}}'})
    cases = []
    for pt in damaged:
        cases += [["export", pt, "-o", str(tmp_path / "o.net"), "--eval-samples", "0"],
                  ["evaluate", pt, "--dataset", "digits", "--split", "test", "--limit", "2"]]
    cases += [["sim", str(imported), "--split", "test", "--limit", "2", "--engine",
               "reference", "--compare", str(src)],
              ["report", str(run), "--out", str(tmp_path / "rep")]]
    for config in (tmp_path, src, broken, tmp_path / "missing.yaml"):
        cases.append(["train", "--config", str(config), "--out", str(tmp_path / "r")])
    counts: Counter = Counter()
    for argv in cases:
        kind = _run(argv, capsys)
        if kind != "clear" and os.environ.get("PSPLAVA_FUZZ_DEBUG"):
            print("DAMAGED CASE", kind, argv, file=sys.__stderr__)
        counts[kind if kind != "ok" else "silent"] += 1
    _report("damaged checkpoints, metrics, configs", counts)


# --------------------------------------------------------------------------- signals
def test_fuzz_signals_at_random_moments(tmp_path):
    """SIGINT or SIGTERM at a random moment (seeded) of a Lava run, a training run and an
    export: exit 130 / 143 with one line (or 0 when the command had already finished),
    never a traceback or a hang; no temp folder or shared memory left."""
    from test_hardened import RUN_CONFIG, _interrupt, _shm
    from test_nir_import import _dense_if
    from psplava.export.nir_import import import_graph
    from psplava.netfile import write_netfile

    layers, _ = import_graph(_dense_if(0.625), 1.0)
    net = tmp_path / "m.net"
    write_netfile(net, layers, {})
    x = tmp_path / "x.npy"
    np.save(x, (np.random.default_rng(0).random((1, 20000)) < 0.5).astype(np.uint8))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(RUN_CONFIG.replace("epochs: 1", "epochs: 100000"))
    commands = [
        ["sim", str(net), "--input", str(x), "-o", str(tmp_path / "y.npy"), "--engine", "lava"],
        ["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress",
         "--overwrite"],
        ["export", str(DATA / "golden_cuba_psp_bn.pt"), "-o", str(tmp_path / "e.net")],
    ]
    rng = np.random.default_rng(22)
    before = _shm()
    counts: Counter = Counter()
    for i in range(max(3, CASES // 5)):
        cmd = commands[i % len(commands)]
        sig = (signal.SIGINT, signal.SIGTERM)[int(rng.integers(0, 2))]
        wait = float(rng.uniform(0.05, 8.0))
        try:
            rc, err, left = _interrupt(cmd, sig, wait, tmp_path / f"tmp{i}")
        except Exception as exc:  # subprocess.TimeoutExpired: it did not end
            if os.environ.get("PSPLAVA_FUZZ_DEBUG"):
                print("SIGNAL HANG", cmd[0], sig, wait, repr(exc)[:300], file=sys.__stderr__)
            counts["hang"] += 1
            continue
        lines = err.strip().splitlines()
        expected = {signal.SIGINT: (130, "psplava: interrupted"),
                    signal.SIGTERM: (143, "psplava: terminated")}[sig]
        if rc == 0 or (rc, lines) == (expected[0], [expected[1]]):
            counts["clear" if rc else "ok"] += 1
        else:
            if os.environ.get("PSPLAVA_FUZZ_DEBUG"):
                print("SIGNAL CASE", cmd[0], sig, wait, rc, err[-500:], file=sys.__stderr__)
            counts["traceback"] += 1
        if left:
            counts["silent"] += 1
    if not _shm() <= before:
        counts["silent"] += 1
    _report("signals", counts)
