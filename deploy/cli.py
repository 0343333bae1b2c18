"""``psplava deploy MODEL.net --plan | --target {loihi2,sim}``."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from psplava.argtypes import positive_float, positive_int, steps_int
from psplava.data import file_dataset


def _dataset_inputs(args, net) -> tuple:
    """(xs (T, N, ...) in the reference engine's layout, labels) of the requested
    recordings, as ``psplava sim`` reads them (the file's config, overridden by flags)."""
    # heavy: the file reader loads torch
    from psplava.budget import batch_bytes, check_fits

    ds, d = file_dataset(net, args.dataset, args.root, args.split, args.limit, args.steps,
                         args.dt)
    check_fits(batch_bytes(net, len(ds), int(d["steps"])),
               f"{len(ds)} recordings of {int(d['steps'])} steps through {net.path}")
    xs = np.stack([ds[i][0] for i in range(len(ds))], axis=1)
    ys = np.array([ds[i][1] for i in range(len(ds))])
    return xs, ys


def _cmd_deploy(args: argparse.Namespace) -> int:
    # heavy: the plan, the targets and the file reader load torch
    from psplava.deploy import loihi2
    from psplava.deploy.plan import activity, estimate, plan
    from psplava.netfile import read_netfile

    net = read_netfile(args.model)
    if args.target == "loihi2":
        # what the file needs is known without a chip: say it first (exit 2), then what
        # this machine lacks (exit 3)
        loihi2.check_deployable(net)
        if not loihi2.lava_loihi_installed():
            print(f"psplava: error: {loihi2.MISSING}", file=sys.stderr)
            return 3
    if args.target is None and not args.plan:
        args.plan = True
    res: dict = {"model": str(args.model)}
    if args.plan:
        p = plan(net)
        res["plan"] = p
        if args.dataset or args.root or args.limit:
            xs, _ = _dataset_inputs(args, net)
            act = activity(net, xs)
            act.pop("outputs")
            res["activity"] = act
            res["estimate"] = estimate(p, act)
        if not args.json:
            _print_plan(res)
    if args.target == "loihi2":
        res["target"] = _run_target(args, net, hardware=True)
    elif args.target == "sim":
        res["target"] = _run_target(args, net, hardware=False)
    print(json.dumps(res))
    return 0


def _run_target(args, net, hardware: bool) -> dict:
    """Accuracy of the file on the requested recordings, on the chip or in the simulator."""
    # heavy: the targets, the file reader and the reference engine load torch
    from psplava.deploy import loihi2
    from psplava.netfile import file_latency
    from psplava.sim.fixed import internal_to_lava

    xs, ys = _dataset_inputs(args, net)
    lag = file_latency(net)
    xp = np.concatenate([xs, np.zeros((lag, *xs.shape[1:]), xs.dtype)], axis=0)
    steps = xp.shape[0]
    samples = internal_to_lava(xp)
    if hardware:
        outs = loihi2.run_loihi2(net.path, samples, steps)
    else:
        # heavy: Lava's runtime
        from psplava.sim.lava_engine import LavaNetwork

        with LavaNetwork(net.path, steps, "last", net_file=net) as lava:
            outs = list(lava.run(samples)[-1])
    counts = np.stack([np.asarray(o).reshape(-1, steps).sum(axis=1) for o in outs])
    acc = float((counts.argmax(axis=1) == ys).mean()) if len(ys) else 0.0
    return {"target": "loihi2" if hardware else "sim", "samples": int(len(ys)),
            "accuracy": acc, "steps": steps}


def _print_plan(res: dict) -> None:
    p = res["plan"]
    print(f"{'layer':>5} {'type':6} {'neuron':6} {'neurons':>9} {'synapses':>11} {'fan-in':>7} "
          f"{'fan-out':>8} {'bits':>4} {'syn mem KiB':>11} {'cores':>5}")
    for r in p["layers"]:
        print(f"{r['index']:5d} {r['type']:6} {r['neuron']:6} {r['neurons']:9d} "
              f"{r['synapses']:11d} {r['fan_in']:7d} {r['fan_out']:8d} {r['weight_bits']:4d} "
              f"{r['synaptic_memory_bytes'] / 1024:11.1f} {r['cores']:5d}")
    lim = p["limits"]
    print(f"total: {p['neurons']:,} neurons, {p['synapses']:,} synapses, "
          f"{p['synaptic_memory_bytes'] / 1024:,.1f} KiB synaptic memory, {p['cores']} "
          f"neurocores, {p['chips']} Loihi 2 chip(s); fits one chip: "
          f"{'yes' if p['fits_one_chip'] else 'no'}; fits a Kapoho Point "
          f"({lim['chips_per_kapoho_point']} chips): {'yes' if p['fits_kapoho_point'] else 'no'}")
    if p["needs_microcode"]:
        print(f"layers needing custom neuron microcode: {p['needs_microcode']}")
    if "estimate" in res:
        e = res["estimate"]
        print(f"per sample ({res['activity']['samples']} recordings, {res['activity']['steps']} "
              f"steps): {e['synops_per_sample']:,.0f} synaptic ops, energy ~"
              f"{e['energy_uj_per_sample']} uJ, latency ~{e['latency_ms_per_sample']} ms; "
              f"equal-size ANN: {e['ann_macs_per_sample']:,} MACs (~{e['ann_energy_uj_fp32']} uJ "
              f"fp32, ~{e['ann_energy_uj_int8']} uJ int8)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="Loihi 2: resource plan and energy estimate, run on "
                       "the chip (lava-loihi) or in the simulator")
    p.add_argument("model", help="a .net file")
    p.add_argument("--plan", action="store_true",
                   help="per-layer neurons, synapses, fan-in/out, synaptic memory, Loihi 2 "
                   "neurocores and chips (docs/loihi2.md); with --dataset/--root also spikes, "
                   "synaptic ops, energy and latency per sample on real recordings")
    p.add_argument("--json", action="store_true", help="only the JSON line")
    p.add_argument("--target", choices=("loihi2", "sim"), default=None,
                   help="loihi2: run on the chip (needs lava-loihi; exit 3 without it); sim: "
                   "the bit-exact simulator (Lava CPU)")
    p.add_argument("--dataset", choices=("nmnist", "fmnist", "digits"), default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", choices=("train", "test", "val"), default="val")
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--steps", type=steps_int, default=None,
                   help="steps per recording (default: the file's config)")
    p.add_argument("--dt", type=positive_float, default=None, help="bin width, ms (default: the "
                   "file's config)")
    p.set_defaults(func=_cmd_deploy)
