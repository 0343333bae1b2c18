"""Subcommands of the training stage: ``train``, ``evaluate``, ``report``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cmd_train(args: argparse.Namespace) -> int:
    from psplava.train.config import load_config
    from psplava.train.trainer import train

    cfg = load_config(args.config, args.set + (
        [f"train.init_from={args.init_from}"] if args.init_from else []))
    best = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                 overwrite=args.overwrite)
    print(json.dumps({"best_val_accuracy": best.get("accuracy"), "best_epoch": best.get("epoch"),
                      "run_dir": str(args.out)}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from psplava.train.trainer import evaluate

    res = evaluate(args.checkpoint, args.dataset, args.root, args.split, args.limit,
                   progress=sys.stderr.isatty(), arithmetic=args.arithmetic)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples "
              f"({res['arithmetic']} arithmetic); firing rates "
              + ", ".join(f"{r:.4f}" for r in res["firing_rates"]))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from psplava.train.report import make_report

    res = make_report(args.runs, args.out)
    print(res["table"])
    print(f"wrote {res['markdown']}, {res['curves']}, {res['firing_rates']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training stage's subcommands to the ``psplava`` parser."""
    p = sub.add_parser("train", help="train a network from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run directory")
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
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and firing rates of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default="test", choices=["train", "test", "val"],
                   help="val: the recordings the run held out for validation")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    p.add_argument("--arithmetic", choices=["float", "loihi"], default=None,
                   help="evaluate in this arithmetic (default: the one it was trained in)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="curves, firing rates and a Markdown table of runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory")
    p.set_defaults(func=_cmd_report)
