"""``psplava import MODEL.nir -o MODEL.net``: another framework's NIR graph as a fixed-point
netx file (:mod:`psplava.export.nir_import`), and with data the float graph's accuracy
(:mod:`psplava.export.nir_float`) against the file's in the reference engine (and Lava).

A command of the glue layer: it uses the export stage (the mapping), the simulators and
the datasets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from psplava import __version__
from psplava.argtypes import count_int, positive_float, positive_int, steps_int
from psplava.data import dataset_from_config
from psplava.errors import PsplavaError, check_output
from psplava.train.config import DEFAULTS

# The mapping, the float graph and the engines load torch, NIR and Lava (seconds): each
# function imports what it runs, so registering the command (``psplava --help``) does not.

#: accuracy difference (float graph vs file) above which ``import`` warns
WARN_POINTS = 0.02


def choose_dt(graph, dt: float | None) -> tuple[float, str, str | None]:
    """(dt, where it came from, the framework the metadata names): ``--dt`` first, then the
    graph's metadata (its ``dt``, else its framework's convention); never required of it."""
    from psplava.export.nir_import import FRAMEWORK_DT, framework_of, metadata_dt  # torch

    framework = framework_of(graph)
    meta = metadata_dt(graph)
    if dt is not None:
        if meta is not None and not np.isclose(meta, dt, rtol=1e-6):
            print(f"warning: --dt {dt:g} differs from the graph's metadata dt {meta:g}",
                  file=sys.stderr)
        return float(dt), "--dt", framework
    if meta is not None:
        return meta, "the graph's metadata", framework
    if framework is not None:
        return FRAMEWORK_DT[framework][0], f"{framework}'s convention", framework
    conventions = "; ".join(f"{k}: --dt {v[0]:g} ({v[1]})" for k, v in FRAMEWORK_DT.items())
    raise PsplavaError(f"the graph carries no step and names no framework; give --dt "
                       f"(conventions: {conventions})")


def provenance(path: str, framework: str | None, dt: float, dt_source: str) -> dict[str, Any]:
    import nir  # heavy: NIR loads its I/O stack

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"source": "nir", "file": str(path), "sha256": digest, "framework": framework,
            "dt": dt, "dt_source": dt_source, "nir_version": getattr(nir, "__version__", None)}


def data_config(args) -> dict[str, Any]:
    d: dict[str, Any] = {"dataset": args.dataset, "root": args.root, "steps": args.steps,
                         "dt_ms": args.bin_ms}
    if args.split == "val":
        d["val_count"] = args.val_count
    return {"data": d, "train": {"seed": args.seed}}


def load_samples(cfg: dict[str, Any], split: str, limit: int | None):
    """(x (T, N, H, W, C) float32, labels) of the recordings the data flags select."""
    return stack_samples(_recordings(cfg, split, limit))


def _recordings(cfg: dict[str, Any], split: str, limit: int | None):
    """The dataset the data flags select (refused when empty)."""
    ds = dataset_from_config(cfg, split, limit=limit)
    if len(ds) == 0:
        raise PsplavaError(f"no recordings in split {split!r} of {cfg['data']['root']}")
    return ds


def stack_samples(ds) -> tuple[np.ndarray, np.ndarray]:
    """(x (T, N, H, W, C), labels) of every recording of ``ds``."""
    xs = np.stack([ds[i][0] for i in range(len(ds))], axis=1)
    ys = np.array([ds[i][1] for i in range(len(ds))])
    return xs, ys


def float_outputs(graph, dt: float, xs: np.ndarray, batch: int = 32
                  ) -> tuple[np.ndarray, list[int]]:
    """Output spike counts per sample (N, classes) of the float graph and its spikes per
    neuron node, for xs (T, N, H, W, C) (fed as NIR's (C, H, W))."""
    import torch  # heavy, with the float graph's torch modules

    # heavy: the float graph and the segments run on torch
    from psplava.export.nir_float import FloatGraph, output_node
    from psplava.export.nir_import import segments

    segs, _ = segments(graph)
    names = [s.neuron for s in segs]
    fg = FloatGraph(graph, dt)
    out = output_node(graph)
    counts, spikes = [], [0] * len(names)
    x_all = torch.from_numpy(xs)
    if x_all.dim() == 5:
        x_all = x_all.permute(0, 1, 4, 2, 3)
    for s in range(0, xs.shape[1], batch):
        res = fg.run(x_all[:, s:s + batch])
        counts.append(res[out].sum(0).reshape(res[out].shape[1], -1).numpy())
        for i, n in enumerate(names):
            spikes[i] += int(res[n].sum())
    return np.concatenate(counts), spikes


def file_outputs(path: str, xs: np.ndarray, engine: str) -> tuple[np.ndarray, list[int]]:
    """Output spike counts per sample and spikes per layer of the file, for xs (T, N, ...)
    padded with the file's latency (both engines)."""
    # heavy: the reference engine runs on torch
    from psplava.netfile import file_latency, read_netfile
    from psplava.sim.fixed import internal_to_lava, run_fixed

    net = read_netfile(path)
    lag = file_latency(net)
    xp = np.concatenate([xs, np.zeros((lag, *xs.shape[1:]), xs.dtype)], axis=0)
    if engine == "lava":
        from psplava.sim.lava_engine import LavaNetwork  # heavy: Lava's runtime

        with LavaNetwork(path, xp.shape[0], "all", net_file=net) as lava:
            outs = [np.moveaxis(o, -1, 0) if o.ndim == 3 else o.transpose(4, 0, 2, 1, 3)
                    for o in lava.run(internal_to_lava(xp))]
    else:
        outs = run_fixed(net, xp)
    last = outs[-1]
    return last.reshape(last.shape[0], last.shape[1], -1).sum(0), [int(o.sum()) for o in outs]


def compare(args, out: str, graph, dt: float) -> dict[str, Any]:
    from psplava.budget import check_fits  # heavy: torch, through the file reader
    from psplava.export.nir_float import input_shape

    cfg = data_config(args)
    ds = _recordings(cfg, args.split, args.limit)   # built once: checked, then stacked
    shape = tuple(ds[0][0].shape[1:])
    want = input_shape(graph)
    nir_order = (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    if tuple(nir_order) != tuple(want):
        raise PsplavaError(f"{args.dataset} recordings are {nir_order} (C, H, W) per step; the "
                           f"graph's Input is {tuple(want)}")
    elems = float(np.prod(want))
    check_fits(len(ds) * args.steps * elems * 24.0,
               f"comparing on {len(ds)} recordings of {args.steps} steps")
    xs, ys = stack_samples(ds)
    fc, f_spikes = float_outputs(graph, dt, xs)
    res: dict[str, Any] = {"samples": int(len(ys)), "split": args.split,
                           "float": {"accuracy": float((fc.argmax(1) == ys).mean()),
                                     "spikes_per_layer": f_spikes}}
    engines = ["reference"] + (["lava"] if args.lava_limit else [])
    for engine in engines:
        n = len(ys) if engine == "reference" else min(args.lava_limit, len(ys))
        c, spikes = file_outputs(out, xs[:, :n], engine)
        pred = c.argmax(1)
        res[engine] = {"samples": n, "accuracy": float((pred == ys[:n]).mean()),
                       "same_class_as_float": int((pred == fc[:n].argmax(1)).sum()),
                       "spikes_per_layer": spikes}
    return res


def _cmd_import(args: argparse.Namespace) -> int:
    # heavy: the mapping onto Loihi integers runs on torch
    from psplava import loihi
    from psplava.export.nir_import import import_graph, read_graph
    from psplava.netfile import write_netfile

    check_output(args.output, (args.model,), (".net",))
    if args.k_max is not None:
        try:
            loihi.check_k_max(args.k_max, "--k-max")
        except ValueError as exc:
            raise PsplavaError(str(exc)) from None
    data_flags = [f for f in ("root", "limit", "steps") if getattr(args, f) is not None]
    if args.dataset is None and data_flags:
        raise PsplavaError(f"--{data_flags[0]} needs --dataset (the recordings to compare on)")
    if args.lava_limit and args.dataset is None:
        raise PsplavaError("--lava-limit needs --dataset")
    graph = read_graph(args.model)
    dt, source, framework = choose_dt(graph, args.dt)
    try:
        layers, report = import_graph(graph, dt, args.k_max or DEFAULTS["model"]["k_max"])
    except PsplavaError as exc:
        raise PsplavaError(f"{args.model}: {exc}") from None
    attrs: dict[str, Any] = {"psplava_version": __version__,
                             "provenance": provenance(args.model, framework, dt, source)}
    if args.dataset is not None:
        if args.steps is None:
            raise PsplavaError("--dataset needs --steps (the bins per recording the graph "
                               "was trained with)")
        attrs["config"] = data_config(args)
    print(f"dt = {dt:g} ({source}); framework: {framework or 'not named by the graph'}")
    print(f"{'layer':>5} {'node':>8} {'nir':8} {'type':6} {'scale':>8} {'w rel rms err':>14} "
          f"{'w max err':>10} {'th mant':>8} {'decay err':>9}")
    for r in report:
        print(f"{r['layer']:5d} {r['node']:>8} {r['nir']:8} {r['type']:6} {r['scale']:8.3g} "
              f"{r['weight_rel_rms_error']:14.4%} {r['weight_max_abs_error']:10.4g} "
              f"{r['threshold_mantissa']:8d} {r['decay_error']:9.2e}")
    write_netfile(args.output, layers, attrs)
    print(f"wrote {args.output}")
    res: dict[str, Any] = {"output": str(args.output), "dt": dt, "dt_source": source,
                           "framework": framework, "layers": report}
    if args.dataset is not None:
        cmp = compare(args, args.output, graph, dt)
        res["comparison"] = cmp
        for engine in ("reference", "lava"):
            if engine in cmp:
                e = cmp[engine]
                print(f"{engine}: accuracy {e['accuracy']:.4f} on {e['samples']} recordings; "
                      f"float graph {cmp['float']['accuracy']:.4f} on {cmp['samples']}; same "
                      f"class as the float graph on {e['same_class_as_float']} of {e['samples']}")
        diff = abs(cmp["reference"]["accuracy"] - cmp["float"]["accuracy"])
        if diff > WARN_POINTS:
            print(f"WARNING: the fixed-point file's accuracy differs from the float graph's by "
                  f"{100 * diff:.1f} points (more than {100 * WARN_POINTS:.0f}); check --dt "
                  "and the per-layer errors above", file=sys.stderr)
    print(json.dumps(res))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="a NIR graph (snnTorch, Norse, Sinabs, ...) as an "
                       "exact fixed-point .net file for Lava and Loihi 2")
    p.add_argument("model", help="a NIR file (.nir, HDF5)")
    p.add_argument("-o", "--output", "--out", dest="output", required=True,
                   help="the .net file to write")
    p.add_argument("--dt", type=positive_float, default=None,
                   help="the step, in the graph's time unit (seconds): snnTorch exports with "
                   "1e-4, Norse's IF with 1 (default: the graph's metadata, else its "
                   "framework's convention)")
    p.add_argument("--k-max", type=float, default=None,
                   help="largest weight scale, a power of two (default "
                        f"{DEFAULTS['model']['k_max']:g}, as model.k_max)")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None,
                   help="compare the float graph and the file on these recordings")
    p.add_argument("--root", default=None)
    p.add_argument("--split", default="val", choices=["train", "test", "val"],
                   help="val: the --val-count recordings psplava's seeded split holds out of "
                   "the training recordings (default)")
    p.add_argument("--val-count", type=positive_int, default=100,
                   help="recordings --split val holds out (default 100)")
    p.add_argument("--seed", type=count_int, default=0, help="seed of --split val (default 0)")
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--steps", type=steps_int, default=None, help="bins per recording")
    p.add_argument("--bin-ms", type=positive_float, default=1.0,
                   help="bin width in ms (default 1)")
    p.add_argument("--lava-limit", type=count_int, default=0,
                   help="also run the first N recordings in Lava (default 0)")
    p.set_defaults(func=_cmd_import)
