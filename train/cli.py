"""Subcommands of the training stage: ``train``, ``evaluate``, ``report``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from psplava.argtypes import bounded, positive_int
from psplava.errors import ConfigError
from psplava.train.config import config_keys, load_config, shipped_configs
from psplava.train.report import make_report
from psplava.train.sweep import run_sweep


def _torchrun(nproc: int, argv: list[str]) -> int:
    """``psplava train --nproc N``: the same command under ``torchrun --standalone``
    (one node, N processes; on several nodes call torchrun yourself:
    ``torchrun --nnodes ... -m psplava train ...``)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "psplava", *argv]
    print("psplava: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    return subprocess.call(cmd)


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    # heavy: the training loop loads torch and lava-dl
    from psplava.device import resolve_device
    from psplava.train import runtime
    from psplava.train.trainer import train

    cfg = load_config(args.config, args.set + (
        [f"train.init_from={args.init_from}"] if args.init_from else []))
    if args.nproc is not None:
        if args.nproc < 1:
            raise ConfigError(f"--nproc {args.nproc}: must be at least 1")
        if args.nproc > 1 and not runtime.launched_by_torchrun():
            if int(cfg["train"]["batch_size"]) % args.nproc:
                raise ConfigError(f"train.batch_size {cfg['train']['batch_size']} is the "
                                  f"global batch: it must divide by --nproc {args.nproc}")
            return _torchrun(args.nproc, _strip_nproc(list(args.argv)))
    if args.device is not None:
        resolve_device(args.device)  # checked before any work
    best = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                 overwrite=args.overwrite, device=args.device)
    if runtime.is_main_process():
        print(json.dumps({"best_val_accuracy": best.get("accuracy"),
                          "best_epoch": best.get("epoch"), "output": str(args.out),
                          "run_dir": str(args.out),
                          "device": best.get("device"), "world_size": best.get("world_size")}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    # heavy: the training loop loads torch and lava-dl
    from psplava.train.trainer import evaluate

    res = evaluate(args.checkpoint, args.dataset, args.root, args.split, args.limit,
                   progress=sys.stderr.isatty(), arithmetic=args.arithmetic,
                   device=args.device)
    if not args.json:
        print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples "
              f"({res['arithmetic']} arithmetic, {res['device']}); firing rates "
              + ", ".join(f"{r:.4f}" for r in res["firing_rates"]))
    print(json.dumps({"checkpoint": str(args.checkpoint), **res}))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    res = make_report(args.runs, args.out, deployed=args.deployed)
    print(res["table"])
    print(f"wrote {res['markdown']}, {res['curves']}, {res['firing_rates']}")
    print(json.dumps({"output": str(args.out), "markdown": str(res["markdown"]),
                      "curves": str(res["curves"]), "firing_rates": str(res["firing_rates"])}))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    state = run_sweep(args.config, args.grid, args.out, args.parallel, args.set, args.nproc,
                      args.device, log=lambda m: print(m, flush=True))
    print(json.dumps({"sweep": str(Path(args.out) / "sweep.json"),
                      "points": len(state["points"]),
                      "done": sum(p["done"] for p in state["points"])}))
    return 0


def _cmd_configs(args: argparse.Namespace) -> int:
    if args.keys:
        rows = config_keys()
        if not args.json:
            for r in rows:
                print(f"{r['key']:28s} {json.dumps(r['default']):44s} {r['doc']}")
        print(json.dumps({"keys": rows}))
        return 0
    found = shipped_configs()
    names = sorted({str(p): n for n, p in found.items() if "/" in n or n == p.stem
                    }.items(), key=lambda kv: kv[1])
    rows = []
    for path, name in names:
        if not args.json:
            print(f"{name:40s} {path}")
        rows.append({"name": name, "path": path})
    print(json.dumps({"configs": rows}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training stage's subcommands to the ``psplava`` parser."""
    p = sub.add_parser("configs", help="list the shipped configs (--config NAME finds them), "
                                       "or with --keys every config key")
    p.add_argument("--keys", action="store_true",
                   help="every config key (SECTION.KEY, what --set takes) with its default "
                        "and meaning")
    p.add_argument("--json", action="store_true",
                   help="only the JSON line (the last line is always JSON)")
    p.set_defaults(func=_cmd_configs)

    p = sub.add_parser("sweep", help="one training run per point of a grid (resumable), "
                                     "then a report")
    p.add_argument("config")
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a config key and its values; repeatable (the points are the "
                        "product of the grids)")
    p.add_argument("-o", "--out", required=True,
                   help="sweep folder (one run folder per point)")
    p.add_argument("--parallel", type=bounded(int, lo=1, hi=256), default=1, metavar="N",
                   help="points trained at a time (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--nproc", type=bounded(int, lo=1, hi=1024), default=None, metavar="N",
                   help="processes per point (train --nproc)")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="each point's train --device (default: the config's)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("train", help="train a network from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("-o", "--out", required=True, help="run directory")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (dotted key), repeatable")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    mode.add_argument("--overwrite", action="store_true",
                      help="start again in a folder that holds a run (its files are replaced)")
    p.add_argument("--init-from", metavar="CKPT", default=None,
                   help="fine-tune: start from this checkpoint's parameters (e.g. a float "
                        "model into model.arithmetic=loihi, or psp_ln into causal_psp_ln)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="auto | cpu | cuda | cuda:N (default: the config's train.device, "
                        "auto: CUDA when present)")
    p.add_argument("--nproc", type=bounded(int, lo=1, hi=1024), default=None, metavar="N",
                   help="train with N processes (DDP) started by torchrun on this node; "
                        "train.batch_size is the global batch")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and firing rates of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default="test", choices=["train", "test", "val"],
                   help="val: the recordings the run held out for validation")
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--json", action="store_true",
                   help="only the JSON line (the last line is always JSON)")
    p.add_argument("--arithmetic", choices=["float", "loihi"], default=None,
                   help="evaluate in this arithmetic (default: the one it was trained in)")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="auto | cpu | cuda | cuda:N (default: auto)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="curves, firing rates and a Markdown table of runs")
    p.add_argument("runs", nargs="+", help="run directories, or sweep folders (sweep.json)")
    p.add_argument("-o", "--out", default="report", help="output directory")
    p.add_argument("--deployed", default=None, metavar="DIR",
                   help="also plot accuracy against energy of DIR/<name>/summary.json "
                        "(scripts/deployed_report.py), e.g. results/deployed")
    p.set_defaults(func=_cmd_report)
