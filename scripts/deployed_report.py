"""Measure the deployed N-MNIST models: float / loihi (PyTorch) / reference engine / Lava.

    .venv/bin/python scripts/deployed_report.py [NAME ...] [--lava-samples 3]

For each ``results/deployed/<name>/`` (default: all four): the float model the fine-tune
started from (``train.init_from`` of its config; for a model trained from scratch in loihi
arithmetic, the same weights evaluated in float arithmetic) and the fine-tuned checkpoint in
loihi arithmetic and in float arithmetic (the same weights: the arithmetic's own effect), all with ``psplava evaluate --split val`` (the 100 recordings the runs
held out); then ``psplava export best.pt -o model.net``, ``psplava sim model.net --split val
--engine reference --compare best.pt`` (all 100), the same with ``--engine lava`` on the
first ``--lava-samples``, and ``psplava deploy model.net --plan --split val --limit 20``'s
energy estimate per sample (read by ``psplava report --deployed``).  Writes ``results/deployed/<name>/summary.json`` and prints a
Markdown table (the README's).

``--base results/converted`` measures SRM -> CUBA conversions the same way
(``results/converted/<name>/``, from ``configs/convert/``): the source column is then the
SRM checkpoint in its own arithmetic, and the run's ``start.json`` (written by ``psplava
train`` before the first epoch) gives the converted model's accuracy before fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["srm_none", "srm_psp_bn", "srm_causal_psp_ln", "cuba_psp_bn"]
PSPLAVA = [sys.executable, "-m", "psplava.cli"]


def _json(cmd: list[str]) -> dict:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(PSPLAVA + cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, lava_samples: int, base: str = "results/deployed") -> dict:
    import yaml

    run = Path(base) / name  # relative: the file records the path
    ckpt, net = run / "best.pt", run / "model.net"
    cfg = yaml.safe_load((ROOT / run / "config.yaml").read_text())
    start = cfg["train"].get("init_from")
    t0 = time.time()
    if start:
        flt = _json(["evaluate", start, "--split", "val", "--json"])
        float_source = start
    else:
        flt = _json(["evaluate", str(ckpt), "--split", "val", "--arithmetic", "float", "--json"])
        float_source = f"{ckpt} in float arithmetic (trained from scratch in loihi)"
    loihi = _json(["evaluate", str(ckpt), "--split", "val", "--json"])
    same = _json(["evaluate", str(ckpt), "--split", "val", "--arithmetic", "float", "--json"])
    exp = _json(["export", str(ckpt), "-o", str(net), "--eval-samples", "0"])
    ref = _json(["sim", str(net), "--split", "val", "--engine", "reference",
                 "--compare", str(ckpt), "--json"])
    lava = _json(["sim", str(net), "--split", "val", "--engine", "lava", "--limit",
                  str(lava_samples), "--compare", str(ckpt), "--json"])
    # the deploy plan's energy estimate on the same held-out recordings (first 20)
    dep = _json(["deploy", str(net), "--plan", "--split", "val", "--limit", "20", "--json"])
    res = {"name": name, "float_source": float_source, "float_accuracy": flt["accuracy"],
           "loihi_accuracy": loihi["accuracy"], "loihi_arithmetic": loihi["arithmetic"],
           "float_same_weights_accuracy": same["accuracy"],
           "reference_accuracy": ref["accuracy"], "reference_samples": ref["samples"],
           "reference_mismatches": ref["mismatches"]["loihi_exact"],
           "lava_accuracy": lava["accuracy"], "lava_samples": lava["samples"],
           "lava_mismatches": lava["mismatches"]["loihi_exact"],
           "float_model_mismatches_total": ref["mismatches"]["float_total"],
           "spikes_per_layer_reference": ref["spikes_per_layer"],
           "weight_rel_rms_error": [r["weight_rel_rms_error"] for r in exp["layers"]],
           "firing_rates_loihi": loihi["firing_rates"],
           "energy_uj_per_sample": dep["estimate"]["energy_uj_per_sample"],
           "energy_samples": 20, "seconds": round(time.time() - t0)}
    if (ROOT / run / "start.json").is_file():
        st = json.loads((ROOT / run / "start.json").read_text())
        res.update(start_accuracy=st["val_accuracy"], start_samples=st["val_samples"],
                   source_arithmetic=flt["arithmetic"], conversion=st.get("conversion"))
    (ROOT / run / "summary.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def _file_cells(r: dict) -> str:
    """The columns both tables share: the file in each engine and its mismatches."""
    return (f"{r['reference_accuracy']:.2f} ({r['reference_samples']}) | "
            f"{r['lava_accuracy']:.2f} ({r['lava_samples']}) | "
            f"{sum(r['reference_mismatches'])} | {sum(r['lava_mismatches'])} |")


def table(rows: list[dict]) -> str:
    lines = ["| model | float (start of fine-tune) | deployed weights in float | loihi, PyTorch | "
             "reference engine | Lava | mismatches vs PyTorch loihi (reference, all layers) | "
             "mismatches (Lava) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        same = r.get("float_same_weights_accuracy")
        lines.append(
            f"| `{r['name']}` | {r['float_accuracy']:.2f} | "
            f"{'-' if same is None else f'{same:.2f}'} | {r['loihi_accuracy']:.2f} | "
            + _file_cells(r))
    return "\n".join(lines)


def conversion_table(rows: list[dict]) -> str:
    lines = ["| conversion | SRM source (its arithmetic) | CUBA, converted, before fine-tune | "
             "CUBA fine-tuned, PyTorch loihi | reference engine | Lava | mismatches "
             "(reference, all layers) | mismatches (Lava) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| `{r['name']}` | {r['float_accuracy']:.2f} ({r['source_arithmetic']}) | "
            f"{r['start_accuracy']:.2f} | {r['loihi_accuracy']:.2f} | " + _file_cells(r))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=NAMES)
    ap.add_argument("--lava-samples", type=int, default=3)
    ap.add_argument("--base", default="results/deployed",
                    help="folder of the runs (results/converted for SRM -> CUBA conversions)")
    ap.add_argument("--table-only", action="store_true",
                    help="print the table of the summary.json files already measured")
    ap.add_argument("--float-same-only", action="store_true",
                    help="only add the deployed weights' float accuracy to each summary.json")
    args = ap.parse_args()
    if args.float_same_only:
        for n in args.names:
            path = ROOT / args.base / n / "summary.json"
            res = json.loads(path.read_text())
            same = _json(["evaluate", str(Path(args.base) / n / "best.pt"),
                          "--split", "val", "--arithmetic", "float", "--json"])
            res["float_same_weights_accuracy"] = same["accuracy"]
            path.write_text(json.dumps(res, indent=1) + "\n")
    if args.table_only or args.float_same_only:
        rows = [json.loads((ROOT / args.base / n / "summary.json").read_text())
                for n in args.names
                if (ROOT / args.base / n / "summary.json").is_file()]
    else:
        rows = [measure(n, args.lava_samples, args.base) for n in args.names]
    print(conversion_table(rows) if rows and all(r.get("conversion") for r in rows)
          else table(rows))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
