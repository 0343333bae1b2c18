"""Training step time of the paper's N-MNIST net: psplava SRM + PSP-LN vs lava-dl CUBA blocks.

    .venv/bin/python benchmarks/train_step.py [--quick] [--steps 3] [--threads 2]

Both models have the paper's topology ``34x34x2-8c3-{16c3}*5-16c3-{32c3}*5-10`` (12 convs at
full 34x34 resolution + dense), batch 10, forward + backward + optimizer step (AdaBelief
for ours, Adam for lava-dl's: the optimizer is a negligible part of the step).  Ours: SRM
neurons (numba kernels) with PSP-LN before every conv; lava-dl: ``slayer.block.cuba.Conv``
/ ``Dense`` blocks (the stock way to build this net with lava-dl 0.6).  Each measurement
runs in its own subprocess so its peak memory (max RSS growth over the model's baseline,
divided by the batch) is its own.  Input: real N-MNIST spikes from ../shared when present,
else the embedded digits.  ``--quick``: T=100 only, one timed step (under 2 minutes).

Last stdout line: JSON with the step times, ``speedup_vs_lava_dl_cuba`` (at the largest T
measured) and per-T speed-ups.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PAPER_ARCH = "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10"


def _input(T: int, batch: int):
    import numpy as np
    import torch

    from psplava.data import SHARED_DATA
    from psplava.data.events import Binning

    root = SHARED_DATA / "nmnist_small"
    dt = 300.0 / T
    if (root / "train" / "labels.csv").is_file():
        from psplava.data.nmnist import NMNIST

        ds = NMNIST(root, "train", Binning(dt, T))
    else:
        from psplava.data.digits import Digits

        ds = Digits("train", Binning(dt, T))
    xs = [ds[i][0] for i in range(batch)]
    ys = torch.tensor([ds[i][1] for i in range(batch)])
    return torch.from_numpy(np.stack(xs, axis=1)), ys  # (T, N, H, W, C)


def psplava_step(model, y):
    """One training step of a psplava SNN (forward, SpikeRate loss, backward, AdaBelief
    with the paper's settings), as a function of the input (T, N, H, W, C)."""
    from pytorch_optimizer import AdaBelief

    from psplava.lavadl import slayer

    opt = AdaBelief(model.parameters(), lr=0.01, weight_decay=1e-4)
    loss_fn = slayer.loss.SpikeRate(0.2, 0.03, reduction="sum")

    def step(inp):
        out = model(inp)
        loss = loss_fn(out.permute(1, 2, 0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def time_steps(step, warm, data, steps: int) -> tuple[list[float], int, int]:
    """``step(warm)`` once (JIT compilation, allocator and oneDNN warm-up at a short T),
    then ``steps`` timed ``step(data)``: (seconds each, max RSS before, max RSS after), KiB."""
    step(warm)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(data)
        times.append(time.perf_counter() - t0)
    return times, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(impl: str, T: int, batch: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, y = _input(T, batch)
    if impl == "psplava":
        import numba

        numba.set_num_threads(threads)
        from psplava.train.model import SNN

        model = SNN({"arch": PAPER_ARCH, "neuron": "srm", "norm": "psp_ln", "steps": T})
        step = psplava_step(model, y)
        warm = x[:20]
        data = x
    else:
        from psplava.lavadl import slayer

        params = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03,
                  "tau_grad": 0.03, "scale_grad": 3}
        chans = [2, 8] + [16] * 6 + [32] * 5
        blocks = [slayer.block.cuba.Conv(params, chans[i], chans[i + 1], 3, padding=1,
                                         weight_scale=2) for i in range(12)]
        blocks += [slayer.block.cuba.Flatten(), slayer.block.cuba.Dense(params, 32 * 34 * 34, 10,
                                                                        weight_scale=2)]
        model = torch.nn.Sequential(*blocks)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        loss_fn = slayer.loss.SpikeRate(0.2, 0.03, reduction="sum")

        def step(inp):
            out = model(inp)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        data = x.permute(1, 4, 2, 3, 0).contiguous()  # (N, C, H, W, T)
        warm = data[..., :20]
    times, base, peak = time_steps(step, warm, data, steps)
    return {"impl": impl, "T": T, "step_s": min(times), "mean_step_s": sum(times) / len(times),
            "peak_mb_per_sample": round((peak - base) / 1024 / batch, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = args.steps or (1 if args.quick else 2)
    if args.worker:
        res = _worker(args.worker[0], int(args.worker[1]), args.batch, steps, args.threads)
        print(json.dumps(res))
        return
    Ts = [100] if args.quick else [300, 100]
    results = []
    for T in Ts:
        for impl in ("psplava", "lava_dl_cuba"):
            out = subprocess.run([sys.executable, __file__, "--worker", impl, str(T),
                                  "--steps", str(steps), "--threads", str(args.threads),
                                  "--batch", str(args.batch)],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"T={T:4d} {impl:13s} step {res['step_s']:.2f} s  "
                  f"peak {res['peak_mb_per_sample']:.0f} MB/sample", flush=True)
    speedups = {}
    for T in Ts:
        ours = next(r for r in results if r["T"] == T and r["impl"] == "psplava")
        theirs = next(r for r in results if r["T"] == T and r["impl"] == "lava_dl_cuba")
        speedups[f"T{T}"] = round(theirs["step_s"] / ours["step_s"], 2)
    print(json.dumps({"batch": args.batch, "threads": args.threads, "results": results,
                      "speedups": speedups,
                      "speedup_vs_lava_dl_cuba": speedups[f"T{max(Ts)}"]}))


if __name__ == "__main__":
    main()
