"""scripts/gpu_check.sh --dry-run: every section of the GPU check runs on the CPU at tiny
sizes and the script prints one JSON line with each section's result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run():
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run",
                          "--budget-min", "3"], capture_output=True, text=True, timeout=900,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["dry_run"] is True and out["device"] == "cpu"
    for section in ("cuda_tests", "loihi_identity", "train_step", "resnet106", "fmnist"):
        assert "error" not in out[section], (section, out[section])
    assert out["cuda_tests"]["returncode"] == 0
    for model in (out["loihi_identity"][k] for k in ("srm_causal_psp_ln", "cuba_psp_bn")):
        assert sum(model["mismatches_per_layer"]) == 0 and sum(model["spikes"]) > 0
    assert out["train_step"]["psplava_T20_s"] > 0 and out["train_step"]["speedup_T20"] > 0
    assert out["resnet106"]["plain_step_s"] > 0 and out["resnet106"]["checkpointed_step_s"] > 0
    for norm in ("psp_ln", "none"):
        assert out["fmnist"][norm]["epochs"] >= 1
