"""``psplava demo`` end to end, shrunk (1 epoch of 20 digits, 12 test digits)."""

from __future__ import annotations

import json

from psplava.cli import main


def test_demo_writes_summary_and_picture(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--set", "train.epochs=1", "--set",
                 "train.samples_per_epoch=20", "--set", "data.val_count=20",
                 "--test-samples", "12"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(printed.strip().splitlines()[-1])
    assert summary["test_samples"] == summary["lava_samples"] == 12  # same recordings
    assert summary["reference_mismatches"] == 0 and summary["lava_mismatches"] == 0
    assert (out / "output_spikes.png").stat().st_size > 1000
    for step in ("1/4 training", "2/4 exporting", "3/4 fixed-point", "4/4 Lava", "results on"):
        assert step in printed
