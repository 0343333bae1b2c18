"""The causal PSP-LN warm start against the prior's length (issue 21, docs/design.md).

    .venv/bin/python scripts/causal_prior_start.py [--samples 100] [--steps 0,10,30,100,1000]

For each ``model.prior_steps``: the unnormalized results/nmnist_small/none/best.pt is warm
started into float causal PSP-LN (configs/nmnist_small_causal_psp_ln_warm.yaml,
psplava.train.convert.add_psp_norm) and evaluated, without training, on the first
``--samples`` of the 100 held-out recordings.  Prints one JSON line per value.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from psplava.data import train_val_split
from psplava.train.config import load_config
from psplava.train.model import SNN
from psplava.train.trainer import CALIBRATION_SAMPLES, batches, build_datasets, run_epoch
from psplava.train.checkpoint import init_from_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--steps", default="0,10,30,100,1000")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(ROOT / "configs/nmnist_small_causal_psp_ln_warm.yaml", [])
    full = build_datasets(cfg, "train")
    tr, va = train_val_split(len(full), int(cfg["data"]["val_count"]), int(cfg["train"]["seed"]))
    va = va[:args.samples]
    for n0 in (float(v) for v in args.steps.split(",")):
        spec = {**cfg["model"], "steps": cfg["data"]["steps"], "prior_steps": n0}
        model = SNN(spec)
        init_from_checkpoint(model, ROOT / cfg["train"]["init_from"], lambda: next(iter(
            batches(full, tr[:CALIBRATION_SAMPLES], CALIBRATION_SAMPLES)))[0])
        r = run_epoch(model, full, va, cfg)
        print(json.dumps({"prior_steps": n0, "val_accuracy": r["accuracy"],
                          "val_samples": r["samples"],
                          "firing_rates": [round(x, 4) for x in r["firing_rates"]]}), flush=True)


if __name__ == "__main__":
    main()
