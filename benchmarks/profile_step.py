"""Where one training step's time goes: cProfile of the paper's N-MNIST net at one T.

    .venv/bin/python benchmarks/profile_step.py [float|loihi] [--T 100] [--rows 18]

``float``: SRM + PSP-LN in float arithmetic; ``loihi``: SRM + PSP-BN in loihi arithmetic
(what ``benchmarks/train_step.py`` times as ``psplava`` and ``psplava_loihi``).  Batch 10,
real N-MNIST spikes, 2 threads; one warm-up step, one timed step, one profiled step.
Prints the step time and the functions by internal time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step as bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["float", "loihi"], nargs="?", default="float")
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--rows", type=int, default=18)
    args = ap.parse_args()
    import numba
    import torch

    from psplava.train.model import SNN

    torch.set_num_threads(2)
    numba.set_num_threads(2)
    x, y = bench._input(args.T, 10)
    spec = {"arch": bench.PAPER_ARCH, "neuron": "srm", "norm": "psp_ln", "steps": args.T}
    if args.mode == "loihi":
        spec.update(norm="psp_bn", arithmetic="loihi")
    torch.manual_seed(0)
    step = bench.psplava_step(SNN(spec), y)
    step(x[:20])
    t0 = time.perf_counter()
    step(x)
    print(f"step {time.perf_counter() - t0:.2f} s ({args.mode}, T={args.T})")
    prof = cProfile.Profile()
    prof.enable()
    step(x)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.rows)


if __name__ == "__main__":
    main()
