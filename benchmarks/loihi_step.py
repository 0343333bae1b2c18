"""Training step time in loihi arithmetic vs float arithmetic, on the paper's N-MNIST net.

    .venv/bin/python benchmarks/loihi_step.py [--quick] [--arch paper|cpu] [--steps 2]

The same model (``34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10``, SRM; PSP-BN and causal PSP-LN)
is timed for forward + backward + AdaBelief step at batch 10, T = 100 (3 ms bins of real
N-MNIST recordings from ../shared when present, else the embedded digits), alternating
float and loihi arithmetic within one run so that both see the same machine load; best of
``--steps`` timed steps after a warm-up.  ``--arch cpu``: the strided CPU-sized variant of
configs/nmnist_small_*.yaml.  ``--quick``: PSP-BN only, one timed step.

Last stdout line: JSON with the step times and ``loihi_vs_float`` ratios.
"""

from __future__ import annotations

import argparse
import json
import time

ARCHS = {"paper": "34x34x2-n8c3-{n16c3}*5-n16c3-{n32c3}*5-10",
         "cpu": "34x34x2-n8c3-n16c3s2-{n16c3}*4-n16c3-n32c3s2-{n32c3}*4-10"}


def _input(batch: int, T: int):
    import numpy as np
    import torch

    from psplava.data import SHARED_DATA
    from psplava.data.events import Binning

    root = SHARED_DATA / "nmnist_small"
    if (root / "train" / "labels.csv").is_file():
        from psplava.data.nmnist import NMNIST

        ds = NMNIST(root, "train", Binning(3.0, T))
    else:
        from psplava.data.digits import Digits

        ds = Digits("train", Binning(3.0, T))
    xs = [ds[i][0] for i in range(batch)]
    return (torch.from_numpy(np.stack(xs, axis=1)).float(),
            torch.tensor([ds[i][1] for i in range(batch)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=list(ARCHS), default="paper")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch
    from pytorch_optimizer import AdaBelief

    from psplava.lavadl import slayer
    from psplava.train.model import SNN
    from psplava.train.trainer import set_threads

    set_threads(args.threads)
    T, batch = 100, 10
    x, y = _input(batch, T)
    loss_fn = slayer.loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")
    norms = ["psp_bn"] if args.quick else ["psp_bn", "causal_psp_ln"]
    steps = 1 if args.quick else args.steps
    res: dict = {"arch": ARCHS[args.arch], "T": T, "batch": batch, "threads": args.threads}
    for norm in norms:
        models = {}
        for ar in ("float", "loihi"):
            torch.manual_seed(0)
            m = SNN({"arch": ARCHS[args.arch], "norm": norm, "steps": T, "arithmetic": ar})
            m.train()
            models[ar] = (m, AdaBelief(m.parameters(), lr=1e-3))
        times: dict[str, list[float]] = {"float": [], "loihi": []}
        for i in range(steps + 1):  # first round is the warm-up
            for ar, (m, opt) in models.items():
                t0 = time.perf_counter()
                loss = loss_fn(m(x).permute(1, 2, 0), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i:
                    times[ar].append(time.perf_counter() - t0)
        f, q = min(times["float"]), min(times["loihi"])
        print(f"{norm}: float {f:.2f} s/step, loihi {q:.2f} s/step, ratio {q / f:.2f}",
              flush=True)
        res[norm] = {"float_s": round(f, 3), "loihi_s": round(q, 3),
                     "loihi_vs_float": round(q / f, 2)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
