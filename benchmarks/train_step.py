"""Training step time of the paper's N-MNIST net: psplava SRM against lava-dl CUBA blocks,
loihi arithmetic against float, and the convolutions alone (the practical limit).

    .venv/bin/python benchmarks/train_step.py [--quick] [--steps 2] [--threads 2] [--device cpu]

All models have the paper's topology ``34x34x2-8c3-{16c3}*5-16c3-{32c3}*5-10`` (12 convs at
full 34x34 resolution + dense), batch 10, forward + backward + optimizer step (AdaBelief
for ours, Adam for lava-dl's: the optimizer is a negligible part of the step).

- ``psplava``: SRM neurons with PSP-LN before every conv, float arithmetic;
- ``psplava_bn`` / ``psplava_loihi``: SRM + PSP-BN in float and in loihi arithmetic (the
  exported file's integer maths; PSP-BN because whole-window PSP-LN does not fold);
- ``lava_dl_cuba``: ``slayer.block.cuba.Conv`` / ``Dense`` blocks (the stock way to build
  this net with lava-dl 0.6);
- ``conv_only``: the same network's convolutions and dense layer alone, forward and
  backward (input and weight gradients) on tensors of the same shapes in the same layout,
  nothing else: the time no implementation of this net can go below on this machine.

Each measurement runs in its own subprocess so its peak memory (max RSS growth over the
model's baseline, divided by the batch) is its own.  Input: real N-MNIST spikes from
../shared when present, else the embedded digits.  ``--quick``: T=100 only, one timed step.

Last stdout line: JSON with every step time and ``speedup_vs_lava_dl_cuba`` (at the
largest T), ``speedup_t100``, ``speedup_t300``, ``loihi_over_float`` and
``step_over_conv_only`` (the largest T measured).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PAPER_ARCH = "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10"
SMALL_ARCH = "34x34x2-n8c3s2-n16c3s2-n10"   # gpu_check --dry-run
IMPLS = ("psplava", "psplava_bn", "psplava_loihi", "lava_dl_cuba", "conv_only")


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
    xs = [ds[i % len(ds)][0] for i in range(batch)]
    ys = torch.tensor([ds[i % len(ds)][1] for i in range(batch)])
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


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, warm, data, steps: int, device="cpu") -> tuple[list[float], int, int]:
    """``step(warm)`` once (JIT compilation, allocator and oneDNN warm-up at a short T),
    then ``steps`` timed ``step(data)``: (seconds each, max RSS before, max RSS after), KiB."""
    step(warm)
    _sync(device)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(data)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _conv_only(arch: str, y, device):
    """The network's synapses alone: every conv (and the dense layer) forward and backward
    on the (T*N, C, H, W) channels-last views psplava uses, with a loss on the output."""
    import math

    import torch
    import torch.nn.functional as F

    from psplava.train.arch import conv_output_size, parse_arch

    in_shape, specs = parse_arch(arch)
    shape = in_shape
    weights = []
    shapes = []
    for s in specs:
        if s.kind == "conv":
            weights.append(torch.randn(s.out, shape[-1], s.kernel, s.kernel, device=device,
                                       requires_grad=True))
            shapes.append(shape)
            shape = (conv_output_size(shape[0], s.kernel, s.stride),
                     conv_output_size(shape[1], s.kernel, s.stride), s.out)
        else:
            weights.append(torch.randn(s.out, math.prod(shape), device=device,
                                       requires_grad=True))
            shapes.append(shape)
            shape = (s.out,)

    def step(inp):
        T, N = inp.shape[:2]
        x = inp.float()
        for s, w, shp in zip(specs, weights, shapes):
            if s.kind == "conv":
                a = x.reshape(T * N, *shp).permute(0, 3, 1, 2)
                z = F.conv2d(a, w, stride=s.stride, padding=s.kernel // 2)
                x = z.permute(0, 2, 3, 1).reshape(T, N, *z.shape[2:], z.shape[1])
            else:
                x = x.reshape(T, N, -1) @ w.t()
        x.square().sum().backward()
        for w in weights:
            w.grad = None
    return step


def measure(impl: str, T: int, batch: int, steps: int, threads: int, device: str = "cpu",
            arch: str | None = None) -> dict:
    """One measurement in this process: ``{"impl", "T", "step_s", "mean_step_s",
    "peak_mb_per_sample"}``."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    arch = arch or PAPER_ARCH
    x, y = _input(T, batch)
    x, y = x.to(device), y.to(device)
    if impl.startswith("psplava"):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        from psplava.train.model import SNN

        spec = {"arch": arch, "neuron": "srm", "norm": "psp_ln", "steps": T}
        if impl != "psplava":
            spec.update(norm="psp_bn", arithmetic="loihi" if impl == "psplava_loihi" else "float")
        model = SNN(spec).to(device)
        step = psplava_step(model, y)
        warm, data = x[:20], x
    elif impl == "conv_only":
        step = _conv_only(arch, y, device)
        warm, data = x[:20], x
    else:
        from psplava.lavadl import slayer
        from psplava.train.arch import parse_arch

        params = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03,
                  "tau_grad": 0.03, "scale_grad": 3}
        (h, w, c), specs = parse_arch(arch)
        blocks, chans = [], c
        for s in specs:
            if s.kind == "conv":
                blocks.append(slayer.block.cuba.Conv(params, chans, s.out, s.kernel,
                                                     padding=s.kernel // 2, stride=s.stride,
                                                     weight_scale=2))
                h, w, chans = (h + 2 * (s.kernel // 2) - s.kernel) // s.stride + 1, \
                    (w + 2 * (s.kernel // 2) - s.kernel) // s.stride + 1, s.out
            else:
                blocks += [slayer.block.cuba.Flatten(),
                           slayer.block.cuba.Dense(params, chans * h * w, s.out, weight_scale=2)]
        model = torch.nn.Sequential(*blocks).to(device)
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
    times, base, peak = time_steps(step, warm, data, steps, device)
    return {"impl": impl, "T": T, "step_s": min(times), "mean_step_s": sum(times) / len(times),
            "peak_mb_per_sample": round((peak - base) / 1024 / batch, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--impls", nargs="*", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = args.steps or (1 if args.quick else 2)
    if args.worker:
        res = measure(args.worker[0], int(args.worker[1]), args.batch, steps, args.threads,
                      args.device)
        print(json.dumps(res))
        return
    Ts = [100] if args.quick else [100, 300]
    results = []
    for T in Ts:
        for impl in args.impls:
            out = subprocess.run([sys.executable, __file__, "--worker", impl, str(T),
                                  "--steps", str(steps), "--threads", str(args.threads),
                                  "--batch", str(args.batch), "--device", args.device],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"T={T:4d} {impl:13s} step {res['step_s']:.3f} s  "
                  f"peak {res['peak_mb_per_sample']:.0f} MB/sample", flush=True)

    def t(impl, T):
        r = next((r for r in results if r["T"] == T and r["impl"] == impl), None)
        return None if r is None else r["step_s"]

    def ratio(a, b):
        return None if a is None or b is None else round(a / b, 2)

    top = max(Ts)
    summary = {"batch": args.batch, "threads": args.threads, "device": args.device,
               "results": results,
               "speedup_t100": ratio(t("lava_dl_cuba", 100), t("psplava", 100)),
               "speedup_t300": ratio(t("lava_dl_cuba", 300), t("psplava", 300)),
               "loihi_over_float": ratio(t("psplava_loihi", top), t("psplava_bn", top)),
               "step_over_conv_only": ratio(t("psplava", top), t("conv_only", top))}
    for T in Ts:
        summary[f"loihi_over_float_t{T}"] = ratio(t("psplava_loihi", T), t("psplava_bn", T))
        summary[f"step_over_conv_only_t{T}"] = ratio(t("psplava", T), t("conv_only", T))
    summary["speedup_vs_lava_dl_cuba"] = summary[f"speedup_t{top}"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
