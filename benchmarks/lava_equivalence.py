"""Lava vs the Loihi-exact PyTorch checkpoint run, spike for spike, on real N-MNIST; speed.

    .venv/bin/python benchmarks/lava_equivalence.py [--samples 20] [--steps 100] [--quick]

For SRM + PSP-BN, SRM + causal PSP-LN, SRM + none and CUBA + PSP-BN networks of the demo's
topology (``34x34x2-n8c3s2-n16c3s2-n10``; ``--arch paper`` uses the CPU configs' 12-conv
``34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10``, ~40 Lava processes), with
weights from ``--checkpoint-dir`` when it holds ``<norm>.pt`` files and otherwise freshly
initialised ones (BN statistics from one training-mode pass: equivalence is a property of
the arithmetic, not of the training), this script

1. exports each checkpoint to a ``.net`` file,
2. runs ``--samples`` real recordings through Lava (``Loihi2SimCfg(select_tag='fixed_pt')``)
   and through the batched reference engine, and counts per-layer spike mismatches of
   Lava against the checkpoint's Loihi-exact run and against the reference engine,
3. times Lava (steps/s) for our CUBA export against the same file run by stock netx with
   Lava's default conv, and the reference engine's samples/s against Lava's.

The last stdout line is JSON with every figure, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ARCHS = {
    "small": ("34x34x2-n8c3s2-n16c3s2-n10", "34x34x2-8c3s2-16c3s2-10"),
    "paper": ("34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10",
              "34x34x2-8c3-16c3s2-{16c3}*4-16c3-32c3s2-{32c3}*4-10"),
}


def cases(arch: str) -> list[tuple[str, str, str]]:
    psp, plain = ARCHS[arch]
    return [("srm", "psp_bn", psp), ("srm", "causal_psp_ln", psp), ("srm", "none", plain),
            ("cuba", "psp_bn", psp)]


def _make_checkpoint(out: Path, neuron: str, norm: str, arch: str, steps: int, x,
                     cfg_extra: dict | None = None) -> Path:
    """A freshly initialised checkpoint (BN statistics from one training-mode pass over x);
    ``cfg_extra`` is merged into its config (e.g. the data root, train threads)."""
    from psplava.train.config import DEFAULTS, deep_merge
    from psplava.train.model import SNN
    from psplava.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    spec = {"arch": arch, "neuron": neuron, "norm": norm, "steps": steps, "init_gain": 2.0}
    model = SNN(spec)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x).float())
    cfg = deep_merge(DEFAULTS, {"model": spec, "data": {"steps": steps, "dt_ms": 300.0 / steps,
                                                        "dataset": "nmnist"}})
    cfg = deep_merge(cfg, cfg_extra or {})
    path = out / f"{neuron}_{norm}.pt"
    save_checkpoint(path, model, cfg)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="2 samples, 40 steps")
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--arch", choices=sorted(ARCHS), default="small")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.steps = 2, 40

    from psplava.data import SHARED_DATA
    from psplava.data.events import Binning
    from psplava.data.nmnist import NMNIST
    from psplava.export.exporter import export_checkpoint
    from psplava.netfile import read_netfile
    from psplava.cli.pipeline import CheckpointReference, count_mismatches
    from psplava.sim.fixed import internal_to_lava, lava_layer_to_internal, run_fixed
    from psplava.sim.lava_engine import run_lava

    ds = NMNIST(SHARED_DATA / "nmnist_small", "train", Binning(300.0 / args.steps, args.steps))
    x = np.stack([ds[i][0] for i in range(args.samples)], axis=1)  # (T, N, H, W, C)
    tmp = Path(tempfile.mkdtemp())
    results = {}
    for neuron, norm, arch in cases(args.arch):
        name = f"{neuron}+{norm}"
        ck = Path(args.checkpoint_dir or "/nonexistent") / f"{norm}.pt"
        ckpt = ck if ck.is_file() and neuron == "srm" else \
            _make_checkpoint(tmp, neuron, norm, arch, args.steps, x[:, :4])
        net = tmp / f"{neuron}_{norm}.net"
        export_checkpoint(ckpt, net)
        ref = CheckpointReference(str(ckpt))
        n_layers = len(ref.model.layers)
        xp = np.concatenate([x, np.zeros((n_layers, *x.shape[1:]), x.dtype)], axis=0)
        t0 = time.perf_counter()
        reference = run_fixed(read_netfile(net), xp)
        ref_s = time.perf_counter() - t0
        exact = ref.loihi_exact(xp)
        lava_mm = np.zeros(n_layers, np.int64)
        lava_vs_ref = np.zeros(n_layers, np.int64)
        t0 = time.perf_counter()
        for n in range(args.samples):
            outs = run_lava(net, internal_to_lava(xp[:, n:n + 1])[0])
            outs = [lava_layer_to_internal(o) for o in outs]
            lava_mm += count_mismatches(outs, [e[:, n:n + 1] for e in exact], [0] * n_layers,
                                        xp.shape[0])
            lava_vs_ref += count_mismatches(outs, [r[:, n:n + 1] for r in reference],
                                            [0] * n_layers, xp.shape[0])
        lava_s = time.perf_counter() - t0
        results[name] = {
            "lava_vs_loihi_exact_mismatches": lava_mm.tolist(),
            "lava_vs_reference_mismatches": lava_vs_ref.tolist(),
            "spikes_per_layer": [int(r.sum()) for r in reference],
            "lava_seconds_per_sample": round(lava_s / args.samples, 3),
            "reference_seconds_per_sample": round(ref_s / args.samples, 4),
            "reference_speedup_vs_lava": round(lava_s / ref_s, 1),
            "trained_checkpoint": ckpt == ck,
        }
        print(f"{name:22s} Lava vs Loihi-exact mismatches {sum(lava_mm)} "
              f"(per layer {lava_mm.tolist()}), vs reference {sum(lava_vs_ref)}; "
              f"Lava {lava_s / args.samples:.2f} s/sample, reference "
              f"{ref_s / args.samples * 1000:.1f} ms/sample ({lava_s / ref_s:.0f}x)", flush=True)

    # stock netx (Lava's default scipy conv) against our run of the same CUBA export
    net = tmp / "cuba_psp_bn.net"
    sample = internal_to_lava(x[:, :1])[0]
    import subprocess

    code = ("import sys, json, time, numpy as np; sys.path.insert(0, %r)\n"
            "from psplava.sim.lava_engine import run_lava\n"
            "import psplava.sim.lava_engine as le\n"
            "if sys.argv[1] == 'stock': le._torch_conv = lambda: None\n"
            "x = np.load(sys.argv[2]); t = time.perf_counter(); run_lava(sys.argv[3], x)\n"
            "print(json.dumps({'seconds': time.perf_counter() - t}))") % str(Path.cwd())
    np.save(tmp / "x.npy", sample)
    speeds = {}
    for mode in ("stock", "psplava"):
        out = subprocess.run([sys.executable, "-c", code, mode, str(tmp / "x.npy"), str(net)],
                             capture_output=True, text=True, check=True)
        speeds[mode] = args.steps / json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    summary = {"samples": args.samples, "steps": args.steps, "arch": args.arch, "cases": results,
               "lava_steps_per_s_stock_netx": round(speeds["stock"], 1),
               "lava_steps_per_s_psplava": round(speeds["psplava"], 1),
               "lava_speedup_vs_stock_netx": round(speeds["psplava"] / speeds["stock"], 2)}
    print(f"CUBA net in Lava: stock netx {speeds['stock']:.0f} steps/s, psplava "
          f"{speeds['psplava']:.0f} steps/s ({summary['lava_speedup_vs_stock_netx']}x)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
