"""Load and bin all shared N-MNIST recordings; compare with tonic's reader + ToFrame.

    .venv/bin/python benchmarks/data_loading.py [--root ../shared/data/nmnist_small] [--steps 300]

Last stdout line: JSON with seconds for ours and tonic's and the ratio, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from psplava.data import SHARED_DATA
from psplava.data.events import Binning
from psplava.data.nmnist import NMNIST


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(SHARED_DATA / "nmnist_small"))
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds = NMNIST(Path(args.root), "train", Binning(1.0, args.steps))
    total = 0.0
    for i in range(len(ds)):
        x, _ = ds[i]
        total += float(x.sum())
    ours = time.perf_counter() - t0

    import tonic

    to_frame = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=1000.0)
    t0 = time.perf_counter()
    for f, _ in ds.items:
        ev = tonic.io.read_mnist_file(str(f), dtype=tonic.datasets.NMNIST.dtype)
        frames = to_frame(ev)[: args.steps]
        np.minimum(frames, 1)
    theirs = time.perf_counter() - t0
    result = {"samples": len(ds), "steps": args.steps, "ours_s": round(ours, 3),
              "tonic_s": round(theirs, 3), "speedup_vs_tonic": round(theirs / ours, 2),
              "spikes": int(total)}
    print(f"read + bin {len(ds)} recordings at T={args.steps}: ours {ours:.2f} s, "
          f"tonic read_mnist_file + ToFrame {theirs:.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
