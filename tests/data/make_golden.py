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
from psplava.train.checkpoint import save_checkpoint  # noqa: E402

T = 40
CASES = {
    "srm_causal": {"arch": "8x8x2-n4c3s2-n5", "neuron": "srm", "norm": "causal_psp_ln",
                   "init_gain": 6.0},
    "srm_bn_alpha": {"arch": "8x8x2-4c3s2n-5n", "neuron": "srm", "norm": "bn",
                     "init_gain": 2.0, "srm": {"refractory": "alpha"}},
    "cuba_psp_bn": {"arch": "8x8x2-n4c3s2-n5", "neuron": "cuba", "norm": "psp_bn",
                    "init_gain": 2.0},
    # beyond 8x8 (issue 19): PSP-BN SRM with average pooling folded into the dense layer,
    # a residual network (membrane and projection skips), and a conv whose synaptic sum
    # wraps around Lava's 24 bits
    "srm_psp_bn_pool": {"arch": "14x14x2-n6c3-n8c3s2-ap2-n6", "neuron": "srm",
                        "norm": "psp_bn", "init_gain": 2.5},
    "srm_residual": {"arch": "12x12x2-n4c3-r4-r6s2-n5", "neuron": "srm", "norm": "psp_bn",
                     "init_gain": 4.5},
    "srm_wrap": {"arch": "8x8x8-8c3-5", "neuron": "srm", "norm": "none", "init_gain": 2.0},
}
#: cases whose first conv gets large equal weights and dense input, so that its 24-bit
#: synaptic sums wrap around (the file, the engines and the oracle all wrap)
WRAP = {"srm_wrap": 0.9}


def make(case: str, spec: dict) -> None:
    torch.manual_seed(7)
    spec = {**spec, "steps": T}
    model = SNN(spec)
    shape = model.input_shape                      # (H, W, C)
    if case in WRAP:
        with torch.no_grad():
            model.layers[0].weight.fill_(WRAP[case])
    x = (torch.rand(T, 4, *shape) < 0.25).float()
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
    rate = 0.6 if case in WRAP else 0.3
    xs = (np.random.default_rng(11).random((T, shape[2], shape[0], shape[1])) < rate
          ).astype(np.int8)  # (T, C, H, W)
    outs = oracle_run(net, xs)
    print(case, "spikes per layer:", [int(o.sum()) for o in outs])
    np.savez_compressed(HERE / f"golden_{case}.npz", x=xs,
                        **{f"layer{i}": o for i, o in enumerate(outs)})


if __name__ == "__main__":
    # a case name or several: only those (the others stay as they were checked in)
    for name, s in CASES.items():
        if len(sys.argv) == 1 or name in sys.argv[1:]:
            make(name, s)
