"""The GPU check: everything of issue 18 that needs a GPU, in one run that prints one JSON line.

    bash scripts/gpu_check.sh [--dry-run] [--budget-min 10] [--fmnist-root DIR]

Sections (each records its own result or its error; one failing does not stop the rest):

1. ``cuda_tests``: the Triton kernel tests (``tests/test_kernels_gpu.py``) on the GPU
   (compiled Triton, not the interpreter).
2. ``loihi_identity``: a model in loihi arithmetic (SRM + causal PSP-LN and CUBA + PSP-BN)
   on the GPU against the same model on the CPU, same input: spike mismatches (must be 0)
   and the gradients' largest relative difference.
3. ``train_step``: the paper's N-MNIST net, psplava SRM + PSP-LN against lava-dl's CUBA
   blocks on the same GPU (lava-dl compiles its CUDA extension with nvcc at first use).
4. ``resnet106``: ResNet-106 at T = 300, one training step with and without
   ``checkpoint_blocks``: peak GPU memory per sample and seconds per step.
5. ``fmnist``: the Table 2 pair PSP-LN against none on all 60,000 Fashion-MNIST training
   images (54K train / 6K validation), each for a share of the time budget.

``--dry-run``: the same code paths on the CPU at tiny sizes (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _section(name: str, fn, results: dict) -> None:
    t0 = time.time()
    try:
        results[name] = fn()
    except Exception as exc:  # recorded, and the next section runs
        results[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                         "where": traceback.format_exc().strip().splitlines()[-3:]}
    results[name]["seconds"] = round(time.time() - t0, 1)
    print(f"[gpu_check] {name}: {json.dumps(results[name])[:300]}", file=sys.stderr,
          flush=True)


def cuda_tests(dry: bool) -> dict:
    env = dict(os.environ)
    if dry:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    tests = ["tests/test_kernels_gpu.py"] + ([] if not dry else ["-k", "float64 and not 300"])
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *tests], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=600)
    tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
    return {"returncode": res.returncode, "summary": tail}


def loihi_identity(dev, dry: bool) -> dict:
    import torch

    from psplava.train.model import SNN

    out = {}
    T, N = (20, 2) if dry else (100, 8)
    x = (torch.rand(T, N, 34, 34, 2, generator=torch.Generator().manual_seed(0)) < 0.05).float()
    for name, spec in (("srm_causal_psp_ln", {"arch": "34x34x2-n8c3s2-n16c3s2-n10",
                                              "norm": "causal_psp_ln"}),
                       ("cuba_psp_bn", {"arch": "34x34x2-n8c3s2-n16c3s2-n10",
                                        "neuron": "cuba", "norm": "psp_bn"})):
        torch.manual_seed(0)
        cpu = SNN({**spec, "steps": T, "arithmetic": "loihi"})
        gpu = SNN({**spec, "steps": T, "arithmetic": "loihi"})
        gpu.load_state_dict(cpu.state_dict())
        gpu.to(dev)
        spikes, grads = [], []
        for m, d in ((cpu, "cpu"), (gpu, dev)):
            m.train()
            outs = m.layer_spikes(x.to(d))
            sum(o.sum() * (i + 1) for i, o in enumerate(outs)).backward()
            spikes.append([o.detach().cpu() for o in outs])
            grads.append([torch.zeros(p.shape) if p.grad is None else p.grad.detach().cpu()
                          for p in m.parameters()])
        mism = [int((a != b).sum()) for a, b in zip(*spikes)]
        rel = max(float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))
                  for a, b in zip(*grads))
        out[name] = {"mismatches_per_layer": mism, "spikes": [int(s.sum()) for s in spikes[0]],
                     "grad_max_rel_diff": rel}
    return out


def train_step(dev, dry: bool) -> dict:
    import train_step as bench

    Ts = [20] if dry else [100, 300]
    batch = 2 if dry else 32
    res = {"batch": batch}
    for T in Ts:
        for impl in ("psplava", "lava_dl_cuba"):
            try:
                r = bench.measure(impl, T, batch, steps=1 if dry else 3, threads=2,
                                  device=str(dev), arch=bench.SMALL_ARCH if dry else None)
                res[f"{impl}_T{T}_s"] = round(r["step_s"], 4)
            except Exception as exc:
                res[f"{impl}_T{T}_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if f"lava_dl_cuba_T{T}_s" in res and f"psplava_T{T}_s" in res:
            res[f"speedup_T{T}"] = round(res[f"lava_dl_cuba_T{T}_s"] / res[f"psplava_T{T}_s"], 2)
    return res


def resnet106(dev, dry: bool) -> dict:
    import torch

    from psplava.train.arch import resnet_arch
    from psplava.train.model import SNN
    from psplava.train.trainer import to_slayer
    from psplava.lavadl import slayer

    depth, T, batch = (10, 12, 2) if dry else (106, 300, 4)
    res = {"depth": depth, "T": T, "batch": batch}
    loss_fn = slayer.loss.SpikeRate(0.2, 0.03, reduction="sum")
    for ck in (False, True):
        torch.manual_seed(0)
        m = SNN({"arch": resnet_arch(depth), "norm": "psp_bn", "steps": T}).to(dev)
        m.checkpoint_blocks = ck
        m.train()
        x = (torch.rand(T, batch, 34, 34, 2, generator=torch.Generator().manual_seed(1))
             < 0.05).float().to(dev)
        y = torch.arange(batch, device=dev) % 10
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        t0 = time.time()
        try:
            loss = loss_fn(to_slayer(m(x)), y)
            loss.backward()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            key = "checkpointed" if ck else "plain"
            res[f"{key}_step_s"] = round(time.time() - t0, 3)
            if dev.type == "cuda":
                peak = torch.cuda.max_memory_allocated(dev) - base
                res[f"{key}_mb_per_sample"] = round(peak / 2 ** 20 / batch, 1)
        except torch.cuda.OutOfMemoryError as exc:  # without checkpointing it may not fit
            res[f"{'checkpointed' if ck else 'plain'}_error"] = str(exc).splitlines()[0]
        del m, x
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return res


def fmnist(dev, dry: bool, root: str | None, minutes: float, samples: int = 13500) -> dict:
    from psplava.data import SHARED_DATA

    root = root or str(SHARED_DATA / "fashion_mnist")
    res = {"root": root}
    have = (Path(root) / "fashion_mnist.npz").is_file() or \
        (Path(root) / "train-images-idx3-ubyte.gz").is_file()
    with tempfile.TemporaryDirectory() as tmp:
        for norm in ("psp_ln", "none"):
            cfg = ROOT / "configs" / f"paper_fmnist_{norm}.yaml"
            sets = [f"train.samples_per_epoch={samples}", "train.batch_size=64",
                    f"train.time_limit_min={minutes / 2:.2f}", "train.epochs=100",
                    f"data.root={root}"]
            if dry or not have:
                sets = ["data.dataset=digits", "data.root=null", "data.train_limit=60",
                        "data.val_count=20", "data.steps=10", "train.samples_per_epoch=20",
                        "train.batch_size=10", "train.epochs=1", "data.encoding={}",
                        "model.arch=34x34x2-n4c3s2-n10"]
                res["data"] = "digits (dry run)" if dry else "digits (no Fashion-MNIST here)"
            cmd = [sys.executable, "-m", "psplava", "train", "--config", str(cfg), "--out",
                   f"{tmp}/{norm}", "--no-progress", "--device", str(dev)]
            for s in sets:
                cmd += ["--set", s]
            # the run stops after the epoch that passes its share; an epoch longer than
            # the share (a slow GPU) is cut off here, and the epochs it finished count
            share_s = max(60.0, minutes * 30 + 60)
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                   timeout=share_s)
                error = None if r.returncode == 0 else r.stderr.strip().splitlines()[-1:]
            except subprocess.TimeoutExpired:
                error = [f"cut off after {share_s:.0f} s"]
            metrics = Path(f"{tmp}/{norm}/metrics.jsonl")
            rows = [json.loads(x) for x in metrics.read_text().splitlines()] \
                if metrics.is_file() else []
            res[norm] = {"error": error} if error else {}
            if rows:
                res[norm].update({
                    "best_val_accuracy": max(r["val_accuracy"] for r in rows),
                    "epochs": len(rows),
                    "train_samples": len(rows) * (20 if dry or not have else samples),
                    "epoch_seconds": [r["epoch_seconds"] for r in rows]})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU, tiny")
    ap.add_argument("--budget-min", type=float, default=10.0,
                    help="the whole check's wall-clock budget (the F-MNIST runs get what "
                         "the other sections leave, less a margin)")
    ap.add_argument("--fmnist-root", default=None)
    ap.add_argument("--fmnist-samples", type=int, default=13500,
                    help="training recordings per epoch of the F-MNIST runs")
    ap.add_argument("--only", nargs="*", default=None, help="run only these sections")
    args = ap.parse_args()
    t0 = time.time()
    import torch

    from psplava.device import describe, resolve_device

    dev = torch.device("cpu") if args.dry_run else resolve_device("cuda")
    results: dict = {"date": time.strftime("%Y-%m-%d"), "device": describe(dev),
                     "dry_run": args.dry_run, "torch": torch.__version__}
    try:
        import triton

        results["triton"] = triton.__version__
    except ImportError:
        results["triton"] = None
    want = set(args.only or ["cuda_tests", "loihi_identity", "train_step", "resnet106",
                             "fmnist"])
    if "cuda_tests" in want:
        _section("cuda_tests", lambda: cuda_tests(args.dry_run), results)
    if "loihi_identity" in want:
        _section("loihi_identity", lambda: loihi_identity(dev, args.dry_run), results)
    if "train_step" in want:
        _section("train_step", lambda: train_step(dev, args.dry_run), results)
    if "resnet106" in want:
        _section("resnet106", lambda: resnet106(dev, args.dry_run), results)
    if "fmnist" in want:
        left = args.budget_min - (time.time() - t0) / 60 - 1.5
        _section("fmnist", lambda: fmnist(dev, args.dry_run, args.fmnist_root,
                                          max(left, 0.5), args.fmnist_samples), results)
    results["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
