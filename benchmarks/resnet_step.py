"""Training step time and peak memory of ResNet-106 (pre-activation, PSP-BN) on this machine.

    .venv/bin/python benchmarks/resnet_step.py [--quick] [--depth 106] [--T 50 100]
                                                [--batch 2] [--threads 2] [--steps 2]

ResNet-N is ``psplava.train.arch.resnet_arch(N)``: a stem conv, N/4 - 1/2 pre-activation
blocks of 16 channels at 34x34, as many of 32 channels at 17x17 (the first down-sampling,
with a projection shortcut), a dense head; SRM neurons, PSP-BN before every conv.  One step
is forward + backward + AdaBelief on a batch of real N-MNIST recordings (../shared, else the
embedded digits).  Each measurement runs in its own subprocess, so its peak memory (max
RSS growth over the model's baseline, divided by the batch) is its own.  The paper's plain
12-layer net is measured beside it in the same run (same T, batch, threads): the ratio
``resnet_over_plain`` is what the depth costs.  No gradient checkpointing.

``--quick``: ResNet-26, T=50, one timed step.  Last stdout line: JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import PAPER_ARCH, _input, psplava_step, time_steps  # noqa: E402


def _worker(arch: str, T: int, batch: int, steps: int, threads: int) -> dict:
    import numba
    import torch

    from psplava.train.model import SNN

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = _input(T, batch)
    model = SNN({"arch": arch, "neuron": "srm", "norm": "psp_bn", "block": "pre", "steps": T})
    times, base, peak = time_steps(psplava_step(model, y), x[:10], x, steps)
    return {"arch": arch, "layers": len(model.layers), "T": T, "batch": batch,
            "step_s": round(min(times), 3), "step_s_per_sample": round(min(times) / batch, 3),
            "peak_mb_per_sample": round((peak - base) / 1024 / batch, 1),
            "peak_rss_mb": round(peak / 1024, 1), "rates": [round(r, 4) for r in
                                                            model.last_rates[::10]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--depth", type=int, default=106)
    ap.add_argument("--T", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    ap.add_argument("--worker", nargs=2, metavar=("ARCH", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker[0], int(args.worker[1]), args.batch, args.steps,
                                 args.threads)))
        return
    from psplava.train.arch import resnet_arch

    depth, Ts, steps = (26, [50], 1) if args.quick else (args.depth, args.T, args.steps)
    results = []
    for T in Ts:
        for name, arch in ((f"resnet{depth}", resnet_arch(depth)), ("plain12", PAPER_ARCH)):
            out = subprocess.run([sys.executable, __file__, "--worker", arch, str(T),
                                  "--steps", str(steps), "--threads", str(args.threads),
                                  "--batch", str(args.batch)],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"worker {name} T={T} failed:\n{out.stderr[-2000:]}")
            res = {"net": name, **json.loads(out.stdout.strip().splitlines()[-1])}
            results.append(res)
            print(f"T={T:4d} {name:10s} {res['layers']:3d} layers  step {res['step_s']:.2f} s "
                  f"({res['step_s_per_sample']:.2f} s/sample)  peak "
                  f"{res['peak_mb_per_sample']:.0f} MB/sample", flush=True)
    ratios = {}
    for T in Ts:
        deep = next(r for r in results if r["T"] == T and r["net"] != "plain12")
        plain = next(r for r in results if r["T"] == T and r["net"] == "plain12")
        ratios[f"T{T}"] = {"step_time": round(deep["step_s"] / plain["step_s"], 2),
                           "memory": round(deep["peak_mb_per_sample"]
                                           / max(plain["peak_mb_per_sample"], 1e-9), 2)}
    print(json.dumps({"depth": depth, "batch": args.batch, "threads": args.threads,
                      "results": results, "resnet_over_plain": ratios}))


if __name__ == "__main__":
    main()
