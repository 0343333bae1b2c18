"""Outputs never destroy inputs (issue 22): an output that resolves to an input (the same
path, a hard link, a symlink), a directory, or a suffix of another format is refused with
one line and exit 2, and the input is left as it was."""

from __future__ import annotations

import os

import numpy as np

from psplava.cli import main

from test_export_netfile import _checkpoint


def _bytes(p):
    return p.read_bytes()


def test_export_refuses_to_overwrite_its_checkpoint(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, "srm", "psp_bn")
    before = _bytes(ckpt)
    assert main(["export", str(ckpt), "-o", str(ckpt)]) == 2
    assert "must end with .net" in capsys.readouterr().err
    same = tmp_path / "same.net"
    os.link(ckpt, same)          # a hard link with the right suffix
    assert main(["export", str(ckpt), "-o", str(same)]) == 2
    assert "destroy the input" in capsys.readouterr().err
    link = tmp_path / "sym.net"
    link.symlink_to(ckpt)
    assert main(["export", str(ckpt), "-o", str(link)]) == 2
    assert _bytes(ckpt) == before
    assert main(["export", str(ckpt), "-o", str(tmp_path / "x.nir")]) == 2  # format net
    assert "suffix says another format" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()
    assert main(["export", str(ckpt), "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_sim_refuses_to_write_over_the_network_or_the_input(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, "srm", "psp_bn")
    net = tmp_path / "m.net"
    assert main(["export", str(ckpt), "-o", str(net), "--eval-samples", "0"]) == 0
    capsys.readouterr()
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((34, 34, 2, 5), np.int32))
    before, xb = _bytes(net), _bytes(x)
    assert main(["sim", str(net), "--input", str(x), "--output", str(net)]) == 2
    assert "m.net" in capsys.readouterr().err
    assert main(["sim", str(net), "--input", str(x), "--output", str(x)]) == 2
    assert "destroy the input" in capsys.readouterr().err
    assert _bytes(net) == before and _bytes(x) == xb
    assert main(["sim", str(net), "--input", str(x), "--output", str(tmp_path / "y.npy")]) == 0


def test_export_k_max_is_bounded(tmp_path, capsys):
    """Before: inf never ended, 0 / -1 / nan gave tracebacks, 3 gave a scale that is not a
    power of two (31 % weight error, no warning)."""
    ckpt, _ = _checkpoint(tmp_path, "srm", "psp_bn")
    for bad in ("inf", "0", "-1", "nan", "3", "1e9"):
        out = tmp_path / f"k{bad}.net"
        assert main(["export", str(ckpt), "-o", str(out), "--k-max", bad,
                     "--eval-samples", "0"]) == 2, bad
        assert "--k-max must be a power of two" in capsys.readouterr().err
        assert not out.exists()
    assert main(["export", str(ckpt), "-o", str(tmp_path / "k64.net"), "--k-max", "64",
                 "--eval-samples", "0"]) == 0


def test_count_flags_are_bounded(capsys):
    """Before: ``evaluate --limit -1`` used 199 samples, ``--limit 0`` reported accuracy 0.0
    on 0 samples, ``data show --slices 0`` and ``--dt 0`` gave tracebacks."""
    import pytest

    for argv in (["evaluate", "x.pt", "--limit", "-1"], ["evaluate", "x.pt", "--limit", "0"],
                 ["deploy", "m.net", "--plan", "--dt", "nan"],
                 ["deploy", "m.net", "--plan", "--dt", "inf"],
                 ["deploy", "m.net", "--plan", "--steps", "0"],
                 ["export", "x.pt", "-o", "m.net", "--eval-samples", "-1"],
                 ["data", "info", "--dataset", "digits", "--max-samples", "-1"],
                 ["data", "show", "--dataset", "digits", "--slices", "0"],
                 ["data", "show", "--dataset", "digits", "--dt", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        # argparse's usage, then one line naming the flag and the range
        assert "expected a finite" in err.strip().splitlines()[-1], (argv, err)


# --------------------------------------------------------------------------- run folders
RUN_CONFIG = ("model: {arch: '34x34x2-n4c3s2-n10'}\n"
              "data: {dataset: digits, steps: 20, val_count: 10, train_limit: 40}\n"
              "train: {epochs: 1, batch_size: 10, threads: 1}\n")


def test_overwrite_interrupted_never_mixes_two_runs(tmp_path, capsys):
    """``train --overwrite`` killed at each write moment before its first epoch is whole:
    the folder holds the new run's files only (never the old best.pt/last.pt/metrics), and
    the old run sits whole beside it; ``--resume`` then starts the new run, not the old one
    (before the fix: old checkpoints + new config.yaml, and --resume continued the old run)."""
    import subprocess
    import sys
    from pathlib import Path

    from psplava.train.trainer import aside_path

    cfg = tmp_path / "c.yaml"
    cfg.write_text(RUN_CONFIG)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress"]) == 0
    old = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert {"best.pt", "last.pt", "metrics.jsonl", "config.yaml"} <= set(old)
    killer = Path(__file__).resolve().parent / "kill_at_write.py"
    for k in (0, 1, 3):
        proc = subprocess.run([sys.executable, str(killer), str(k), str(run), "train",
                               "--config", str(cfg), "--out", str(run), "--no-progress",
                               "--overwrite", "--set", "train.seed=7"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr[-400:]
        aside = aside_path(run)
        assert aside.is_dir()
        assert {n: (aside / n).read_bytes() for n in old} == old   # the old run, whole
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            assert not (run / name).exists() or k > 1
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--out", str(run), "--no-progress",
                 "--resume", "--set", "train.seed=7"]) == 0
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1
    assert not aside_path(run).exists()              # gone once the new run committed


def test_demo_refuses_a_training_run(tmp_path, capsys):
    """``demo --out`` overwrote a trained run (data lost); now it refuses one it did not
    make, and a non-empty folder, without --overwrite."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"precious")
    assert main(["demo", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "demo did not make" in err[0]
    assert (run / "best.pt").read_bytes() == b"precious"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(other)]) == 2
    assert "is not empty" in capsys.readouterr().err
