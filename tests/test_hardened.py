"""Issue 22 ("nothing lost, nothing silent"): held-out data stays held out, signals end a
command with one line, ignored flags are refused.  Each test failed before its fix (the
note of the change says how that was checked)."""

from __future__ import annotations

import json

import numpy as np
import pytest
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


# --------------------------------------------------------------------------- signals
def _interrupt(cmd: list[str], sig, wait: float, tmp, ready=None) -> tuple[int, str, list]:
    """Run ``psplava cmd`` with TMPDIR=tmp, send ``sig`` ``wait`` s after ``ready()`` holds
    (or after the start): (exit status, stderr, what is left in tmp).  The command must
    end within 120 s (``subprocess.TimeoutExpired`` otherwise); its output goes to files,
    so that nothing it left running can hold a pipe open."""
    import os
    import subprocess
    import sys
    import time

    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp))
    err_path = tmp.parent / f"{tmp.name}.stderr"
    with open(err_path, "w") as err_file:
        # a background shell starts its jobs with SIGINT ignored, and Python then leaves it
        # ignored: the command under test gets the default a terminal would give it
        proc = subprocess.Popen([sys.executable, "-m", "psplava", *cmd], env=env,
                                stdout=subprocess.DEVNULL, stderr=err_file,
                                preexec_fn=_default_sigint)
        t0 = time.time()
        while ready is not None and not ready() and proc.poll() is None \
                and time.time() - t0 < 120:
            time.sleep(0.05)
        time.sleep(wait)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()          # no orphan keeps a core busy after a failed case
            proc.wait()
            raise
    return proc.returncode, err_path.read_text(), sorted(p.name for p in tmp.iterdir())


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _shm() -> set[str]:
    import os

    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def test_signals_end_every_command_with_one_line(tmp_path):
    """SIGTERM and SIGINT during Lava's run, during imports, and inside numba kernels:
    exit 143 / 130, one line on stderr, no temp folder and no shared memory left (before:
    SIGTERM left psplava-lava-* folders and Lava's shared memory, Ctrl-C printed hundreds of
    traceback lines, Ctrl-C inside numba exited 1 with a SystemError)."""
    import signal

    from test_nir_import import _dense_if
    from psplava.export.nir_import import import_graph
    from psplava.netfile import write_netfile

    layers, _ = import_graph(_dense_if(0.625), 1.0)
    net = tmp_path / "m.net"
    write_netfile(net, layers, {})
    x = tmp_path / "x.npy"
    np.save(x, (np.random.default_rng(0).random((1, 20000)) < 0.5).astype(np.uint8))
    sim = ["sim", str(net), "--input", str(x), "--output", str(tmp_path / "y.npy"),
           "--engine", "lava"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(RUN_CONFIG.replace("epochs: 1", "epochs: 100000"))
    train = ["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress",
             "--overwrite"]
    before = _shm()
    cases = [(sim, signal.SIGTERM, 0.2, 143), (sim, signal.SIGTERM, 9.0, 143),
             (sim, signal.SIGINT, 9.0, 130), (train, signal.SIGINT, 9.0, 130),
             (train, signal.SIGTERM, 9.0, 143)]
    def started(i: int, cmd: list[str]):
        """The run is under way: Lava's temp folder, or the run's first epoch."""
        if cmd[0] == "sim":
            return lambda: any(p.name.startswith("psplava-lava-")
                               for p in (tmp_path / f"tmp{i}").iterdir())
        return lambda: (tmp_path / "run" / "config.yaml").is_file()

    for i, (cmd, sig, wait, code) in enumerate(cases):
        ready = None if wait < 1 else started(i, cmd)
        rc, err, left = _interrupt(cmd, sig, 1.0 if ready else wait, tmp_path / f"tmp{i}",
                                   ready)
        assert rc == code, (cmd[0], sig, wait, err[-600:])
        assert err.strip().splitlines() == ["psplava: " + ("terminated" if code == 143
                                                           else "interrupted")], err[-600:]
        assert left == [], (cmd[0], sig, wait, left)
    assert _shm() <= before


# --------------------------------------------------------------------------- ignored flags
def test_flags_that_do_not_apply_are_refused(tmp_path, capsys):
    """sim --input ignored --compare and the dataset flags, dataset mode ignored --output,
    export ignored --limit/--dataset without --causal-eval; now each is one line, exit 2,
    and nothing is written."""
    from pathlib import Path

    net = Path(__file__).resolve().parent / "data" / "golden_cuba_psp_bn.net"
    ckpt = net.with_suffix(".pt")
    x = tmp_path / "x.npy"
    from psplava.netfile import input_shape, read_netfile

    np.save(x, np.zeros((*input_shape(read_netfile(net)), 4), np.uint8))
    y = tmp_path / "y.npy"
    cases = [
        (["sim", str(net), "--input", str(x), "--output", str(y), "--compare", str(ckpt)],
         "--compare does not apply with --input"),
        (["sim", str(net), "--input", str(x), "--output", str(y), "--limit", "3"],
         "--limit does not apply with --input"),
        (["sim", str(net), "--input", str(x), "--output", str(y), "--split", "val"],
         "--split does not apply with --input"),
        (["sim", str(net), "--split", "val", "--output", str(y)],
         "--output does not apply without --input"),
        (["export", str(ckpt), "-o", str(tmp_path / "m.net"), "--limit", "5"],
         "--limit does not apply without --causal-eval"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert not y.exists() and not (tmp_path / "m.net").exists()


def test_init_from_resolves_against_the_repository(tmp_path, monkeypatch, capsys):
    """train.init_from is found as data.root is: from the current folder, else the
    repository's (a relative path into results/ worked only from the checkout's root)."""
    from psplava.data import REPO_ROOT

    src = REPO_ROOT / "results" / "deployed" / "srm_none" / "best.pt"
    if not src.is_file():
        import pytest

        pytest.skip("results/deployed/srm_none/best.pt not in this checkout")
    monkeypatch.chdir(tmp_path)
    from psplava.train.checkpoint import load_checkpoint

    cfg_path = tmp_path / "c.yaml"
    cfg = load_checkpoint(src)["config"]
    cfg["data"]["dataset"] = "digits"
    cfg["data"]["root"] = None
    cfg["data"]["train_limit"] = 30
    cfg["data"]["val_count"] = 10
    cfg["data"]["steps"] = 10
    cfg["train"].update({"epochs": 0, "init_from": "results/deployed/srm_none/best.pt"})
    import yaml as _yaml

    cfg_path.write_text(_yaml.safe_dump(cfg))
    code = main(["train", "--config", str(cfg_path), "--out", str(tmp_path / "r"),
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "initialised from " + str(src) in out


def test_broken_pipe_is_quiet(tmp_path):
    """``psplava inspect m.net | head -1`` printed a BrokenPipeError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    net = Path(__file__).resolve().parent / "data" / "golden_cuba_psp_bn.net"
    # `true` reads nothing and is gone before psplava writes: every write meets a closed pipe
    out = subprocess.run(f"{sys.executable} -m psplava inspect {net} | true", shell=True,
                         capture_output=True, text=True, timeout=120)
    assert out.stderr.strip() == "", out.stderr[-500:]


@pytest.mark.parametrize("swallow", [
    "pass",                                   # a library that catches everything
    "raise ImportError('wrapped') from exc",  # numpy's import turns it into an ImportError
])
def test_a_signal_that_a_library_swallows_still_ends_the_command(swallow):
    """A SIGTERM's exception may land inside a third-party import (they take most of a
    command's first second), which can swallow it or wrap it: the command still ends with
    one line and 143 (before: exit 0 after running to the end, or a traceback and 1)."""
    import subprocess
    import sys

    code = f"""
import os, signal, sys, time
import psplava.cli as cli

def run(args):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except BaseException as exc:
        {swallow}
    return 0

cli.COMMANDS["probe"] = lambda sub: sub.add_parser("probe").set_defaults(func=run)
sys.argv = ["psplava", "probe"]
sys.exit(cli.main())
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 143 and res.stderr.strip() == "psplava: terminated", \
        (res.returncode, res.stderr[-500:])
