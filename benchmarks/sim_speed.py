"""Simulation speed on real N-MNIST: Lava engine vs stock netx, reference engine vs both.

    .venv/bin/python benchmarks/sim_speed.py [--samples 10] [--stock-samples 3] [--quick]

For the paper's N-MNIST net (``34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10``, CUBA + PSP-BN,
12 convs at full 34x34 resolution) and the demo's small net (``34x34x2-n8c3s2-n16c3s2-n10``),
freshly initialised (BN statistics from one training-mode pass; speed does not depend on
training) and exported, on the first ``--samples`` shared N-MNIST training recordings
(T = 100 bins of 3 ms, padded with the file's latency), all on one thread (Lava's
conv workers deadlock with more), this script times in one run:

- ``psplava sim --engine lava`` (:func:`psplava.cli.pipeline.simulate_dataset`): the network
  built once, samples streamed;
- stock netx built per sample, as lava-dl's tutorials run it (``netx.hdf5.Network``,
  RingBuffer source and sink, Lava's default conv), on the first ``--stock-samples``
  recordings (its per-sample time does not depend on how many), in a subprocess so that
  Lava's default conv is not psplava's torch conv;
- ``psplava sim --engine reference`` and ``psplava evaluate`` (float) on the same recordings.

It checks that stock netx, the Lava engine and the reference engine give the same output
spikes on the stock-netx recordings.  The last stdout line is JSON; the headline keys are
for the paper's net: ``lava_speedup_vs_stock_netx``, ``reference_speedup_vs_lava``,
``reference_time_vs_float_evaluate``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCHS = {"paper": "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10",
         "small": "34x34x2-n8c3s2-n16c3s2-n10"}
STEPS = 100

STOCK = r"""
import json, sys, time
import numpy as np
from psplava.lavadl import import_lava_runtime
import_lava_runtime()
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc import io
xs = np.load(sys.argv[2])
outs, t0 = [], time.perf_counter()
for x in xs:
    net = netx.hdf5.Network(net_config=sys.argv[1])
    src = io.source.RingBuffer(data=x.astype(np.int32))
    src.s_out.connect(net.inp)
    sink = io.sink.RingBuffer(shape=net.out.shape, buffer=x.shape[-1])
    net.out.connect(sink.a_in)
    net.run(condition=RunSteps(num_steps=x.shape[-1]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    outs.append(sink.data.get().astype(bool))
    net.stop()
np.save(sys.argv[3], np.stack(outs))
print(json.dumps({"seconds_per_sample": (time.perf_counter() - t0) / len(xs)}))
"""


def _checkpoint(out: Path, arch: str, x: np.ndarray) -> Path:
    """A fresh CUBA + PSP-BN checkpoint (lava_equivalence's helper) whose config names the
    shared recordings and one training thread, as ``psplava evaluate`` will read them."""
    from lava_equivalence import _make_checkpoint

    from psplava.data import SHARED_DATA

    return _make_checkpoint(out, "cuba", "psp_bn", arch, STEPS, x, {
        "data": {"root": str(SHARED_DATA / "nmnist_small")}, "train": {"threads": 1}})


def bench(name: str, arch: str, n: int, n_stock: int, root: Path, tmp: Path) -> dict:
    from psplava.data.events import Binning
    from psplava.data.nmnist import NMNIST
    from psplava.export.exporter import export_checkpoint
    from psplava.netfile import read_netfile
    from psplava.netfile import file_latency
    from psplava.cli.pipeline import simulate_dataset
    from psplava.sim.fixed import internal_to_lava, run_fixed
    from psplava.train.trainer import evaluate

    ds = NMNIST(root, "train", Binning(300.0 / STEPS, STEPS))
    x = np.stack([ds[i][0] for i in range(n)], axis=1)  # (T, N, H, W, C)
    d = tmp / name
    d.mkdir()
    ckpt = _checkpoint(d, ARCHS[arch], x[:, :4])  # d/cuba_psp_bn.pt
    net_path = d / "model.net"
    export_checkpoint(ckpt, net_path)
    net = read_netfile(net_path)
    lag = file_latency(net)

    t0 = time.perf_counter()
    flt = evaluate(ckpt, "nmnist", str(root), "train", limit=n, arithmetic="float")
    float_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = simulate_dataset(str(net_path), "nmnist", str(root), "train", limit=n,
                           engine="reference")
    ref_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lava = simulate_dataset(str(net_path), "nmnist", str(root), "train", limit=n, engine="lava")
    lava_s = time.perf_counter() - t0

    # stock netx per sample, in its own process (Lava's default conv), and output equality
    xp = np.concatenate([x, np.zeros((lag, *x.shape[1:]), x.dtype)], axis=0)[:, :n_stock]
    xl = internal_to_lava(xp)  # (N, x, y, f, T)
    np.save(d / "x.npy", xl)
    proc = subprocess.run([sys.executable, "-c", STOCK, str(net_path), str(d / "x.npy"),
                           str(d / "stock.npy")], capture_output=True, text=True, check=True)
    stock_s = json.loads(proc.stdout.strip().splitlines()[-1])["seconds_per_sample"]
    stock_out = np.load(d / "stock.npy")
    ref_out = internal_to_lava(run_fixed(net, xp)[-1])
    from psplava.sim.lava_engine import LavaNetwork

    with LavaNetwork(net_path, xp.shape[0], "last") as lnet:
        lava_out = lnet.run(xl)[-1]
    res = {
        "arch": ARCHS[arch], "samples": n, "stock_samples": n_stock, "steps": xp.shape[0],
        "float_evaluate_s_per_sample": round(float_s / n, 3),
        "reference_s_per_sample": round(ref_s / n, 3),
        "lava_s_per_sample": round(lava_s / n, 3),
        "stock_netx_s_per_sample": round(stock_s, 3),
        "lava_speedup_vs_stock_netx": round(stock_s / (lava_s / n), 2),
        "reference_speedup_vs_lava": round(lava_s / ref_s, 1),
        "reference_time_vs_float_evaluate": round(ref_s / float_s, 2),
        "reference_projected_hours_10000": round(ref_s / n * 10000 / 3600, 2),
        "accuracy": {"float_evaluate": flt["accuracy"], "reference": ref["accuracy"],
                     "lava": lava["accuracy"]},
        "output_spikes_stock": int(stock_out.sum()),
        "differing_outputs_lava_vs_stock": int((lava_out != stock_out).sum()),
        "differing_outputs_reference_vs_stock": int((ref_out != stock_out).sum()),
    }
    print(f"{name:6s} float evaluate {res['float_evaluate_s_per_sample']:.2f} s/sample | "
          f"reference {res['reference_s_per_sample']:.2f} | Lava engine "
          f"{res['lava_s_per_sample']:.2f} | stock netx per sample "
          f"{res['stock_netx_s_per_sample']:.2f} -> Lava {res['lava_speedup_vs_stock_netx']}x "
          f"stock, reference {res['reference_speedup_vs_lava']}x Lava and "
          f"{res['reference_time_vs_float_evaluate']}x the float evaluate's time; differing "
          f"outputs vs stock: Lava {res['differing_outputs_lava_vs_stock']}, reference "
          f"{res['differing_outputs_reference_vs_stock']} ({res['output_spikes_stock']} "
          "stock output spikes)", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--stock-samples", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small net only, 3 samples, 1 stock")
    args = ap.parse_args()
    from psplava.data import SHARED_DATA

    root = SHARED_DATA / "nmnist_small"
    names = ["small"] if args.quick else ["paper", "small"]
    if args.quick:
        args.samples, args.stock_samples = 3, 1
    tmp = Path(tempfile.mkdtemp(prefix="psplava-simspeed-"))
    import torch

    torch.set_num_threads(1)  # every engine on one thread (Lava's conv workers need 1)

    results = {name: bench(name, name, args.samples, min(args.stock_samples, args.samples),
                           root, tmp) for name in names}
    head = results[names[0]]
    summary = {"threads": torch.get_num_threads(), "nets": results, "net": names[0],
               **{k: head[k] for k in ("lava_speedup_vs_stock_netx",
                                       "reference_speedup_vs_lava",
                                       "reference_time_vs_float_evaluate",
                                       "reference_projected_hours_10000")}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
