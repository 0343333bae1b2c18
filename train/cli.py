"""Subcommands of the training stage: ``train``, ``evaluate``, ``report``, ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cmd_train(args: argparse.Namespace) -> int:
    from psplava.train.config import load_config
    from psplava.train.trainer import train

    cfg = load_config(args.config, args.set)
    best = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({"best_val_accuracy": best.get("accuracy"), "best_epoch": best.get("epoch"),
                      "run_dir": str(args.out)}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from psplava.train.trainer import evaluate

    res = evaluate(args.checkpoint, args.dataset, args.root, args.split, args.limit,
                   progress=not args.json)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"accuracy {res['accuracy']:.4f} on {res['samples']} samples; firing rates "
              + ", ".join(f"{r:.4f}" for r in res["firing_rates"]))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from psplava.train.report import make_report

    res = make_report(args.runs, args.out)
    print(res["table"])
    print(f"wrote {res['markdown']}, {res['curves']}, {res['firing_rates']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Train -> export -> simulate on the embedded digits (see configs/demo_digits.yaml)."""
    from psplava.export.exporter import export_checkpoint
    from psplava.sim.cli import simulate_dataset
    from psplava.train.config import load_config
    from psplava.train.trainer import evaluate, train

    config = Path(__file__).resolve().parents[1] / "configs" / "demo_digits.yaml"
    cfg = load_config(args.config or config, args.set)
    out = Path(args.out)
    t0 = time.time()
    print(f"[demo] 1/4 training {cfg['model']['arch']} ({cfg['model']['neuron']}, "
          f"{cfg['model']['norm']}) on the embedded digits -> {out}", flush=True)
    best = train(cfg, out, progress=sys.stderr.isatty())
    res = evaluate(out / "best.pt", split="test")
    print(f"[demo] PyTorch (float) test accuracy {res['accuracy']:.3f} on {res['samples']} "
          f"held-out digits (best validation {best['accuracy']:.3f} at epoch {best['epoch']})",
          flush=True)
    net = out / "model.net"
    report = export_checkpoint(out / "best.pt", net)
    print(f"[demo] 2/4 exported {net}: weight rel. rms quantization error per layer "
          + ", ".join(f"{r['weight_rel_rms_error']:.2%}" for r in report), flush=True)
    ref = simulate_dataset(str(net), "digits", None, "test", engine="reference",
                           compare=str(out / "best.pt"))
    print(f"[demo] 3/4 fixed-point reference engine: test accuracy {ref['accuracy']:.3f} on "
          f"{ref['samples']} digits ({ref['seconds']:.0f} s)", flush=True)
    lava = simulate_dataset(str(net), "digits", None, "test", limit=args.lava_samples,
                            engine="lava", compare=str(out / "best.pt"))
    mm = lava["mismatches"]
    print(f"[demo] 4/4 Lava (Loihi2SimCfg fixed_pt): accuracy {lava['accuracy']:.3f} on the "
          f"first {lava['samples']} test digits ({lava['seconds']:.0f} s); spike mismatches "
          f"against the Loihi-exact PyTorch checkpoint run: {mm['loihi_exact_total']} "
          f"(per layer {mm['loihi_exact']}); against the float model: {mm['float_total']} "
          f"of {sum(lava['spikes_per_layer'])} spikes (quantization)")
    print(f"[demo] done in {time.time() - t0:.0f} s")
    print(json.dumps({"pytorch_accuracy": res["accuracy"], "test_samples": res["samples"],
                      "reference_accuracy": ref["accuracy"], "lava_accuracy": lava["accuracy"],
                      "lava_samples": lava["samples"],
                      "lava_mismatches": mm["loihi_exact_total"],
                      "float_mismatches": mm["float_total"]}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training stage's subcommands to the ``psplava`` parser."""
    p = sub.add_parser("train", help="train a network from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (dotted key), repeatable")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and firing rates of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true", help="last stdout line is a JSON object")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="curves, firing rates and a Markdown table of runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="train -> export -> Lava simulation on the embedded digits")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--lava-samples", type=int, default=10,
                   help="test digits to run through Lava (the reference engine runs all)")
    p.add_argument("--config", default=None, help="default: configs/demo_digits.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_demo)
