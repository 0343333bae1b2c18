"""``psplava report``: tables, sweep figures and the deployed models' accuracy vs energy,
from run folders written here (the values in the tables are the folders' own)."""

from __future__ import annotations

import json

import yaml

from psplava.cli import main


def _run(path, norm, init, accs, arch="34x34x2-n8c3-10", block=None):
    path.mkdir(parents=True)
    model = {"arch": arch, "neuron": "srm", "norm": norm, "init": init}
    if block:
        model["block"] = block
    (path / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    rows = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "train_accuracy": a, "val_accuracy": a,
             "val_firing_rates": [0.01, 0.02], "val_spikes_per_sample": 10.0,
             "epoch_seconds": 60.0} for i, a in enumerate(accs)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_tables_sweep_figure_and_energy(tmp_path, capsys):
    sweep = tmp_path / "sw"
    points = []
    for lam, acc in ((0.01, 0.61), (0.1, 0.83), (1.0, 0.72)):
        name = f"lam={lam}"
        _run(sweep / name, "psp_ln", "theta", [0.3, acc])
        points.append({"name": name, "settings": {"model.lam": lam},
                       "run_dir": str(sweep / name), "done": True})
    (sweep / "sweep.json").write_text(json.dumps({"format": 1, "grid": {"model.lam": [0.01, 0.1, 1.0]},
                                                  "points": points}))
    _run(tmp_path / "res", "psp_bn", "theta", [0.5, 0.77],
         arch="34x34x2-n8c3-r8-n10", block="post")
    dep = tmp_path / "deployed" / "m1"
    dep.mkdir(parents=True)
    (dep / "summary.json").write_text(json.dumps({
        "reference_accuracy": 0.91, "reference_samples": 100, "reference_mismatches": [0, 0],
        "lava_accuracy": 0.9, "lava_samples": 20, "lava_mismatches": [0, 0],
        "energy_uj_per_sample": 12.5}))
    out = tmp_path / "rep"
    assert main(["report", str(sweep), str(tmp_path / "res"), "--out", str(out),
                 "--deployed", str(tmp_path / "deployed")]) == 0
    md = (out / "report.md").read_text()
    t2 = md.split("## Table 2")[1].split("## Table 3")[0]
    t3 = md.split("## Table 3")[1].split("## Training")[0]
    assert "sw/lam=0.1 | srm | theta | psp_ln" in t2 and "83.0 % (2)" in t2
    assert "res" in t3 and "| post |" in t3 and "77.0 % (2)" in t3
    assert (out / "sweep_sw_model_lam.png").stat().st_size > 1000
    assert "| `m1` | 0.91 (100) | 0.90 (20) | 0, 0 | 12.50 |" in md
    assert (out / "energy.png").stat().st_size > 1000


def test_report_refuses_an_empty_deployed_folder_and_a_bad_sweep(tmp_path, capsys):
    _run(tmp_path / "r", "none", "theta", [0.5])
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                 "--deployed", str(tmp_path / "empty")]) == 2
    assert "summary.json" in capsys.readouterr().err
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "sweep.json").write_text("{}")
    assert main(["report", str(tmp_path / "sw"), "--out", str(tmp_path / "o2")]) == 2
    assert "not a sweep file" in capsys.readouterr().err
