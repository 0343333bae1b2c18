"""``psplava sim``: run a ``.net`` file in Lava or the fixed-point reference engine."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from psplava.errors import PsplavaError, atomic_path


def _load_input(path: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PsplavaError(f"{path}: input file not found") from None
    except ValueError as exc:
        raise PsplavaError(f"{path}: not a readable .npy array ({exc})") from None
    if x.ndim not in (2, 4):
        raise PsplavaError(f"{path}: input has shape {x.shape}; expected (x, y, f, T) or (F, T)")
    return x


def _pad(x: np.ndarray, steps: int) -> np.ndarray:
    if x.shape[-1] >= steps:
        return x[..., :steps]
    pad = np.zeros((*x.shape[:-1], steps - x.shape[-1]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=-1)


def _run_one(model: str, x: np.ndarray, engine: str) -> list[np.ndarray]:
    """Every neuron layer's spikes, Lava order, for one sample (x, y, f, T)."""
    if engine == "lava":
        from psplava.sim.lava_engine import run_lava

        return run_lava(model, x)
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed

    outs = run_fixed(read_netfile(model), lava_to_internal(x))
    return [internal_to_lava(o)[0] for o in outs]


def _cmd_sim(args: argparse.Namespace) -> int:
    if args.input:
        if args.steps is None or args.output is None:
            raise PsplavaError("--input needs --steps and --output")
        x = _pad(_load_input(args.input), args.steps)
        if x.ndim == 2:
            raise PsplavaError(f"{args.input}: flat (F, T) inputs are not supported yet; "
                               "give (x, y, f, T)")
        t0 = time.time()
        out = _run_one(args.model, x, args.engine)[-1]
        with atomic_path(args.output) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out.astype(np.uint8) if out.dtype == bool else out)
        res = {"output": str(args.output), "shape": list(out.shape), "spikes": int(out.sum()),
               "engine": args.engine, "seconds": round(time.time() - t0, 3)}
        print(json.dumps(res))
        return 0
    if not args.dataset:
        raise PsplavaError("give --input X.npy (raw spikes) or --dataset (evaluation)")
    return _sim_dataset(args)


def _engine_batch(model: str, net, x: np.ndarray, engine: str) -> list[np.ndarray]:
    """Per-layer spikes (T, N, ...) of a batch x (T, N, H, W, C)."""
    from psplava.sim.fixed import internal_to_lava, lava_layer_to_internal, run_fixed

    if engine == "reference":
        return run_fixed(net, x)
    from psplava.sim.lava_engine import run_lava

    per_sample = [run_lava(model, internal_to_lava(x[:, n:n + 1])[0]) for n in range(x.shape[1])]
    return [np.concatenate([lava_layer_to_internal(s[i]) for s in per_sample], axis=1)
            for i in range(len(per_sample[0]))]


def simulate_dataset(model: str, dataset: str, root: str | None, split: str,
                     limit: int | None = None, engine: str = "reference",
                     compare: str | None = None, steps: int | None = None,
                     dt: float | None = None) -> dict:
    """Accuracy of a ``.net`` file on a dataset; with ``compare`` (a checkpoint) also the
    per-layer spike mismatches against its Loihi-exact run and its float model."""
    from psplava.data import make_dataset
    from psplava.netfile import read_netfile

    net = read_netfile(model)
    cfg = json.loads(net.attrs["config"]) if "config" in net.attrs else {}
    d = cfg.get("data", {})
    steps = steps or d.get("steps")
    if steps is None:
        raise PsplavaError(f"{model}: the file carries no config; give --steps")
    steps = int(steps)
    ds = make_dataset(dataset, root, split, steps=steps, dt_ms=float(dt or d.get("dt_ms", 1.0)),
                      encoding=d.get("encoding") or {},
                      seed=int(cfg.get("train", {}).get("seed", 0)))
    n = len(ds) if limit is None else min(limit, len(ds))
    n_layers = sum(1 for layer in net.layers if layer.type in ("conv", "dense"))
    ref = None
    if compare:
        from psplava.sim.compare import CheckpointReference

        ref = CheckpointReference(compare)
    correct = 0
    exact_mm = float_mm = spikes = None
    t0 = time.time()
    batch = 16 if engine == "reference" else 1
    for start in range(0, n, batch):
        idx = range(start, min(n, start + batch))
        xs = np.stack([ds[i][0] for i in idx], axis=1)  # (T, B, H, W, C)
        ys = np.array([ds[i][1] for i in idx])
        # one extra step per layer: each synapse buffers one step (CUBA lags, SRM does not)
        pad = np.zeros((n_layers, *xs.shape[1:]), xs.dtype)
        xp = np.concatenate([xs, pad], axis=0)
        outs = _engine_batch(model, net, xp, engine)
        counts = outs[-1].reshape(outs[-1].shape[0], len(ys), -1).sum(axis=0)
        correct += int((counts.argmax(axis=1) == ys).sum())
        layer_spikes = [int(o.sum()) for o in outs]
        spikes = layer_spikes if spikes is None else [a + b for a, b in zip(spikes, layer_spikes)]
        if ref is not None:
            from psplava.sim.compare import count_mismatches

            exact = ref.loihi_exact(xp)
            e = count_mismatches(outs, exact, [0] * len(outs), xp.shape[0])
            delays = [ref.delay(i) for i in range(len(outs))]
            f = count_mismatches(outs, ref.float_spikes(xs), delays, xs.shape[0])
            exact_mm = e if exact_mm is None else [a + b for a, b in zip(exact_mm, e)]
            float_mm = f if float_mm is None else [a + b for a, b in zip(float_mm, f)]
    res = {"accuracy": correct / max(n, 1), "samples": n, "engine": engine,
           "spikes_per_layer": spikes, "seconds": round(time.time() - t0, 2)}
    if ref is not None:
        res["mismatches"] = {"loihi_exact": exact_mm, "loihi_exact_total": sum(exact_mm),
                             "float": float_mm, "float_total": sum(float_mm)}
    return res


def _sim_dataset(args: argparse.Namespace) -> int:
    res = simulate_dataset(args.model, args.dataset, args.root, args.split, args.limit,
                           args.engine, args.compare, args.steps, args.dt)
    print(f"{args.engine}: accuracy {res['accuracy']:.4f} on {res['samples']} samples")
    if "mismatches" in res:
        mm = res["mismatches"]
        print(f"spike mismatches per layer vs the checkpoint's Loihi-exact run: "
              f"{mm['loihi_exact']}; vs its float model (quantization effect): {mm['float']}")
    print(json.dumps(res))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run a .net file in Lava or the reference engine")
    p.add_argument("model")
    p.add_argument("--engine", choices=["lava", "reference"], default="lava")
    p.add_argument("--input", help="raw input spikes .npy, Lava order (x, y, f, T)")
    p.add_argument("--steps", type=int, default=None, help="steps to run (input zero-padded)")
    p.add_argument("--output", help="output .npy of the output layer's spikes")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--dt", type=float, default=None)
    p.add_argument("--compare", metavar="CKPT", default=None,
                   help="count spike mismatches per layer against this checkpoint")
    p.add_argument("--json", action="store_true", help="(the last line is always JSON)")
    p.set_defaults(func=_cmd_sim)
