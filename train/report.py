"""``psplava report``: training curves, per-layer firing rates and a comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from psplava.errors import PsplavaError, atomic_path


def read_run(run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise PsplavaError(f"{run}: no metrics.jsonl (not a psplava run directory?)")
    rows = []
    for lineno, line in enumerate(metrics.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise PsplavaError(f"{metrics}: line {lineno} is not JSON") from None
    if not rows:
        raise PsplavaError(f"{metrics}: no epochs recorded")
    cfg = {}
    if (run / "config.yaml").is_file():
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    return {"name": run.name, "dir": str(run), "rows": rows, "config": cfg}


def summary(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["rows"]
    best = max(rows, key=lambda r: r["val_accuracy"])
    model = run["config"].get("model", {})
    rates = best["val_firing_rates"]
    layers, block = "?", "-"
    if model.get("arch"):
        from psplava.train.arch import parse_arch

        specs = parse_arch(model["arch"])[1]
        layers = len(specs)
        if any(s.block for s in specs):
            block = model.get("block", "pre")
    return {"run": run["name"], "neuron": model.get("neuron", "?"), "norm": model.get("norm", "?"),
            "layers": layers, "block": block,
            "epochs": rows[-1]["epoch"], "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"], "final_val_accuracy": rows[-1]["val_accuracy"],
            "final_train_accuracy": rows[-1]["train_accuracy"],
            "mean_firing_rate": sum(rates) / len(rates),
            "val_spikes_per_sample": best.get("val_spikes_per_sample"),
            "minutes": round(sum(r["epoch_seconds"] for r in rows) / 60, 1)}


def markdown_table(sums: list[dict[str, Any]]) -> str:
    head = ("| run | neuron | norm | layers | residual blocks | epochs | best val acc (epoch) | "
            "final train acc | mean firing rate | spikes/sample | minutes |")
    lines = [head, "|" + "---|" * 11]
    for s in sums:
        lines.append(f"| {s['run']} | {s['neuron']} | {s['norm']} | {s['layers']} | "
                     f"{s['block']} | {s['epochs']} | "
                     f"{100 * s['best_val_accuracy']:.1f} % ({s['best_epoch']}) | "
                     f"{100 * s['final_train_accuracy']:.1f} % | {s['mean_firing_rate']:.4f} | "
                     f"{s['val_spikes_per_sample'] or 0:.0f} | {s['minutes']} |")
    return "\n".join(lines)


def make_report(run_dirs: list[str | Path], out_dir: str | Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [read_run(r) for r in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        ep = [r["epoch"] for r in run["rows"]]
        axes[0].plot(ep, [r["train_loss"] for r in run["rows"]], label=run["name"])
        axes[1].plot(ep, [r["val_accuracy"] for r in run["rows"]], label=run["name"])
    axes[0].set(xlabel="epoch", ylabel="train loss", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    curves = out / "curves.png"
    with atomic_path(curves) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(runs)
    for k, run in enumerate(runs):
        best = max(run["rows"], key=lambda r: r["val_accuracy"])
        rates = best["val_firing_rates"]
        ax.bar([i + k * width for i in range(len(rates))], rates, width, label=run["name"])
    ax.set(xlabel="layer", ylabel="firing rate (spikes / neuron / step)",
           title="per-layer firing rates at the best epoch (cf. the paper's Fig. 6/7)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    rates_png = out / "firing_rates.png"
    with atomic_path(rates_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)

    table = markdown_table([summary(r) for r in runs])
    md = out / "report.md"
    with atomic_path(md) as tmp:
        tmp.write_text("# psplava report\n\n" + table + "\n\n![curves](curves.png)\n\n"
                       "![firing rates](firing_rates.png)\n")
    return {"curves": curves, "firing_rates": rates_png, "markdown": md, "table": table}
