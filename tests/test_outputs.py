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
