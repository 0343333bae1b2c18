"""Regenerate the golden integer trajectories in tests/data (run from the repo root):

    .venv/bin/python tests/data/make_golden.py

Each case: a tiny checkpoint (``golden_<case>.pt``), its export (``golden_<case>.net``) and
``golden_<case>.npz`` with the input ``x`` (T, C, H, W) and every layer's spikes (T, n) in
(C, H, W) order, computed by the independent oracle (tests/oracle.py), not by psplava.
Regenerate only when the file format changes on purpose, and say why in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from oracle import run as oracle_run  # noqa: E402
from psplava.export.exporter import export_checkpoint  # noqa: E402
from psplava.train.config import DEFAULTS, deep_merge  # noqa: E402
from psplava.train.model import SNN  # noqa: E402
from psplava.train.trainer import save_checkpoint  # noqa: E402

T = 40
CASES = {
    "srm_causal": {"arch": "8x8x2-n4c3s2-n5", "neuron": "srm", "norm": "causal_psp_ln",
                   "init_gain": 6.0},
    "srm_bn_alpha": {"arch": "8x8x2-4c3s2n-5n", "neuron": "srm", "norm": "bn",
                     "init_gain": 2.0, "srm": {"refractory": "alpha"}},
    "cuba_psp_bn": {"arch": "8x8x2-n4c3s2-n5", "neuron": "cuba", "norm": "psp_bn",
                    "init_gain": 2.0},
}


def make(case: str, spec: dict) -> None:
    torch.manual_seed(7)
    spec = {**spec, "steps": T}
    model = SNN(spec)
    x = (torch.rand(T, 4, 8, 8, 2) < 0.25).float()
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    cfg = deep_merge(DEFAULTS, {"model": spec, "data": {"steps": T, "dataset": "digits",
                                                        "root": None}})
    ckpt = HERE / f"golden_{case}.pt"
    save_checkpoint(ckpt, model, cfg)
    net = HERE / f"golden_{case}.net"
    export_checkpoint(ckpt, net)
    xs = (np.random.default_rng(11).random((T, 2, 8, 8)) < 0.3).astype(np.int8)  # (T, C, H, W)
    outs = oracle_run(net, xs)
    print(case, "spikes per layer:", [int(o.sum()) for o in outs])
    np.savez_compressed(HERE / f"golden_{case}.npz", x=xs,
                        **{f"layer{i}": o for i, o in enumerate(outs)})


if __name__ == "__main__":
    for name, s in CASES.items():
        make(name, s)
