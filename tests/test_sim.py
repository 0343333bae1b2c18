"""Lava fixed-point simulation against the batched reference engine, bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from psplava.cli import main
from psplava.export.exporter import export_checkpoint
from psplava.netfile import read_netfile
from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
from psplava.sim.lava_engine import run_lava

from conftest import lava_dl_netfile as _lava_dl_file
from test_export_netfile import _checkpoint


@pytest.mark.parametrize("source", ["psplava_cuba_psp_bn", "lava_dl"])
def test_reference_engine_equals_lava_bit_for_bit(tmp_path, source):
    if source == "lava_dl":
        path = _lava_dl_file(tmp_path)
    else:
        ckpt, _ = _checkpoint(tmp_path)
        path = tmp_path / "m.net"
        export_checkpoint(ckpt, path)
    rng = np.random.default_rng(0)
    x = (rng.random((34, 34, 2, 40)) < 0.12).astype(np.int32)
    lava = run_lava(path, x)
    ref = [internal_to_lava(o)[0] for o in run_fixed(read_netfile(path), lava_to_internal(x))]
    assert len(lava) == len(ref) == 3
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert a.shape == b.shape
        assert int((a != b).sum()) == 0, f"layer {i}"
        assert b.sum() > 0, f"layer {i} is silent: the comparison would prove nothing"


def test_sim_cli_input_output(tmp_path, capsys):
    path = _lava_dl_file(tmp_path)
    x = (np.random.default_rng(1).random((34, 34, 2, 25)) < 0.12).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for engine in ("reference", "lava"):
        out = tmp_path / f"y_{engine}.npy"
        assert main(["sim", str(path), "--input", str(tmp_path / "x.npy"), "--steps", "30",
                     "--output", str(out), "--engine", engine]) == 0
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert res["shape"] == [10, 30]
        outs[engine] = np.load(out)
    np.testing.assert_array_equal(outs["reference"], outs["lava"])
    assert main(["sim", str(path), "--input", str(tmp_path / "missing.npy"), "--steps", "3",
                 "--output", str(tmp_path / "o.npy")]) == 2


def test_sim_dataset_mode_reference(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path)
    path = tmp_path / "m.net"
    export_checkpoint(ckpt, path)
    assert main(["sim", str(path), "--dataset", "digits", "--split", "test", "--limit", "3",
                 "--engine", "reference", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["samples"] == 3 and 0.0 <= res["accuracy"] <= 1.0


SRM_ARCHS = {"psp_bn": "34x34x2-n4c3s2-n6c3s2-n10",
             "causal_psp_ln": "34x34x2-n4c3s2-n6c3s2-n10",
             "none": "34x34x2-4c3s2-6c3s2-10",
             "tdbn": "34x34x2-4c3s2n-6c3s2n-10"}


@pytest.mark.parametrize("norm", list(SRM_ARCHS))
def test_srm_lava_equals_reference_bit_for_bit(tmp_path, norm):
    """SRM processes (PSP input, SRM layer, PSP-LN moment) against the reference engine."""
    ckpt, _ = _checkpoint(tmp_path, "srm", norm, arch=SRM_ARCHS[norm], init_gain=2.0)
    path = tmp_path / "srm.net"
    export_checkpoint(ckpt, path)
    rng = np.random.default_rng(3)
    x = (rng.random((34, 34, 2, 40)) < 0.12).astype(np.int32)
    lava = run_lava(path, x)
    ref = [internal_to_lava(o)[0] for o in run_fixed(read_netfile(path), lava_to_internal(x))]
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert int((a != b).sum()) == 0, f"layer {i}"
        assert b.sum() > 0, f"layer {i} is silent"


def test_compare_against_checkpoint(tmp_path, capsys, nmnist_root):
    """--compare: 0 mismatches against the Loihi-exact run on real recordings."""
    ckpt, _ = _checkpoint(tmp_path, "srm", "causal_psp_ln", arch=SRM_ARCHS["causal_psp_ln"],
                          init_gain=2.0)
    path = tmp_path / "srm.net"
    export_checkpoint(ckpt, path)
    assert main(["sim", str(path), "--dataset", "nmnist", "--root", str(nmnist_root),
                 "--split", "train", "--limit", "1", "--steps", "60", "--dt", "5",
                 "--engine", "lava", "--compare", str(ckpt)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mm = res["mismatches"]
    assert mm["loihi_exact"] == [0, 0, 0] and min(res["spikes_per_layer"]) > 0
    assert len(mm["float"]) == 3  # reported, not required to be 0


def test_lava_runtime_imports_after_numba_fixed_the_start_method(tmp_path):
    """Regression: numba kernels first, then Lava (benchmarks/train_step.py's order)."""
    import subprocess
    import sys

    code = ("import multiprocessing as mp; mp.set_start_method('spawn')\n"
            "from psplava.sim.lava_engine import run_lava\n"
            "import psplava.train.neurons\n"
            "print(mp.get_start_method())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip().splitlines()[-1] == "fork"


@pytest.mark.parametrize("array, message", [
    (np.full((34, 34, 2, 5), 0.5), "non-integral value 0.5"),
    (np.full((34, 34, 2, 5), np.nan), "non-integral value nan"),
    (np.full((34, 34, 2, 5), 1 + 0j), "integer, boolean or integral float"),
    (np.full((34, 34, 2, 5), -1, dtype=np.int32), "event-count input must hold integers"),
    (np.full((34, 34, 2, 5), 1 << 16, dtype=np.int32), "event-count input must hold integers"),
    (np.full((34, 34, 5), 1, dtype=np.int32), "expected (x, y, f, T) or (F, T)"),
    (np.ones((10, 5), dtype=np.int32), "per step, the network expects"),
])
def test_sim_input_is_checked(tmp_path, capsys, array, message):
    path = _lava_dl_file(tmp_path)
    np.save(tmp_path / "x.npy", array)
    assert main(["sim", str(path), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "o.npy"), "--engine", "reference"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert ".npy" in err[0] or ".net" in err[0]  # names the file
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("flag", ["--steps", "--limit", "--dt"])
def test_sim_counts_must_be_positive(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["sim", "whatever.net", flag, "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "expected a finite" in err and "got '0'" in err


def test_a_failing_lava_process_is_one_line_within_seconds(tmp_path):
    """An exception inside a Lava process leaves Lava's runtime waiting forever; the
    engine's watchdog ends the run: exit 2, one line, no output file, within seconds."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((200, 10)) < 0.2)
            .astype(np.uint8))
    script = f"""
import sys
import psplava.sim.procs.models as m
orig = m.PyLifWindowModel.run_spk
def boom(self):
    if self.time_step == 5:
        raise ValueError("a bug inside a Lava process")
    return orig(self)
m.PyLifWindowModel.run_spk = boom
from psplava.cli import main
sys.exit(main(["sim", {str(root / "tests/data/lavadl/oxford.net")!r}, "--input",
               {str(tmp_path / "x.npy")!r}, "--output", {str(tmp_path / "o.npy")!r},
               "--engine", "lava"]))
"""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=180, env={**__import__("os").environ,
                                           "PSPLAVA_LAVA_STALL_S": "5"})
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.startswith("psplava: error")]
    assert len(lines) == 1 and "Lava's runtime stopped" in lines[0]
    assert not (tmp_path / "o.npy").exists()
    assert time.time() - t0 < 120
