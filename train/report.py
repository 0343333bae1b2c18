"""``psplava report``: training curves, per-layer firing rates and comparison tables.

Every figure comes from run folders (``metrics.jsonl``, ``config.yaml``):

- the paper's Table 2 analogue (plain networks: neuron, init, norm) and Table 3 analogue
  (residual networks: pre- / post-activation blocks x norm);
- firing rate per layer at the best epoch (Fig. 6/7);
- a sweep folder (``sweep.json``, :mod:`psplava.train.sweep`) adds its points as runs and
  plots best validation accuracy against each swept key (Fig. 8: ``model.srm.tau_s``,
  Fig. 9: ``model.lam``);
- ``--deployed DIR``: accuracy of each deployed file (reference engine, held-out
  recordings) against the deploy plan's energy per sample, both read from
  ``DIR/<name>/summary.json`` (written by ``scripts/deployed_report.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from psplava.errors import PsplavaError, atomic_path, writable_folder


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
        # heavy: the architecture grammar loads torch (through the file format's layer kinds)
        from psplava.train.arch import parse_arch

        specs = parse_arch(model["arch"])[1]
        layers = len(specs)
        if any(s.block for s in specs):
            block = model.get("block", "pre")
    return {"run": run["name"], "neuron": model.get("neuron", "?"), "norm": model.get("norm", "?"),
            "init": model.get("init", "theta"),
            "layers": layers, "block": block,
            "epochs": rows[-1]["epoch"], "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"], "final_val_accuracy": rows[-1]["val_accuracy"],
            "final_train_accuracy": rows[-1]["train_accuracy"],
            "mean_firing_rate": sum(rates) / len(rates),
            "val_spikes_per_sample": best.get("val_spikes_per_sample"),
            "minutes": round(sum(r["epoch_seconds"] for r in rows) / 60, 1)}


def markdown_table(sums: list[dict[str, Any]]) -> str:
    head = ("| run | neuron | init | norm | layers | residual blocks | epochs | "
            "best val acc (epoch) | final train acc | mean firing rate | spikes/sample | "
            "minutes |")
    lines = [head, "|" + "---|" * 12]
    for s in sums:
        lines.append(f"| {s['run']} | {s['neuron']} | {s['init']} | {s['norm']} | {s['layers']} | "
                     f"{s['block']} | {s['epochs']} | "
                     f"{100 * s['best_val_accuracy']:.1f} % ({s['best_epoch']}) | "
                     f"{100 * s['final_train_accuracy']:.1f} % | {s['mean_firing_rate']:.4f} | "
                     f"{s['val_spikes_per_sample'] or 0:.0f} | {s['minutes']} |")
    return "\n".join(lines)


def read_sweep(sweep_dir: Path) -> dict[str, Any]:
    """A sweep folder's ``sweep.json``: the grid and its finished points."""
    path = sweep_dir / "sweep.json"
    try:
        doc = json.loads(path.read_text())
        grid, points = dict(doc["grid"]), list(doc["points"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PsplavaError(f"{path}: not a sweep file ({exc})") from None
    runs = []
    for p in points:
        run_dir = sweep_dir / Path(str(p.get("run_dir", ""))).name
        if (run_dir / "metrics.jsonl").is_file():
            run = read_run(run_dir)
            run["name"] = f"{sweep_dir.name}/{run['name']}"
            run["settings"] = dict(p.get("settings") or {})
            runs.append(run)
    return {"name": sweep_dir.name, "grid": grid, "runs": runs}


def _best(run: dict[str, Any]) -> float:
    return max(r["val_accuracy"] for r in run["rows"])


def read_deployed(base: str | Path) -> list[dict[str, Any]]:
    """``<base>/<name>/summary.json`` of every deployed model (scripts/deployed_report.py)."""
    rows = []
    for path in sorted(Path(base).glob("*/summary.json")):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PsplavaError(f"{path}: not a summary file ({exc})") from None
        rows.append({"name": path.parent.name, **s})
    return rows


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def _sweep_figures(sweeps: list[dict[str, Any]], out: Path, plt) -> list[tuple[str, Path]]:
    """One figure per (sweep, swept key): best val accuracy of every point, the mean per
    value as a line (other keys, e.g. seeds, give several points per value)."""
    figs = []
    for sw in sweeps:
        for key, values in sw["grid"].items():
            if not all(isinstance(v, (int, float)) for v in values):
                continue
            xs = sorted(set(float(v) for v in values))
            fig, ax = plt.subplots(figsize=(5, 3.5))
            pts = [(float(r["settings"][key]), _best(r)) for r in sw["runs"]
                   if key in r["settings"]]
            if not pts:
                plt.close(fig)
                continue
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.6)
            means = [(x, sum(a for v, a in pts if v == x) / max(1, sum(v == x for v, _ in pts)))
                     for x in xs if any(v == x for v, _ in pts)]
            ax.plot([m[0] for m in means], [m[1] for m in means], "-o")
            if min(xs) > 0 and max(xs) / min(xs) >= 20:
                ax.set_xscale("log")
            fig_no = {"model.lam": "Fig. 9", "model.srm.tau_s": "Fig. 8"}.get(key, "")
            ax.set(xlabel=key, ylabel="best validation accuracy",
                   title=f"{sw['name']}: accuracy vs {key.split('.')[-1]} {fig_no}".strip())
            name = f"sweep_{sw['name']}_{key.replace('.', '_')}.png"
            figs.append((f"{sw['name']}: {key}", _save(fig, out / name, plt)))
    return figs


def deployed_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| deployed model | reference engine accuracy (samples) | Lava (samples) | "
             "mismatches (reference, Lava) | energy per sample, uJ (plan estimate) |",
             "|---|---|---|---|---|"]
    for r in rows:
        e = r.get("energy_uj_per_sample")
        lines.append(f"| `{r['name']}` | {r['reference_accuracy']:.2f} ({r['reference_samples']}) | "
                     f"{r['lava_accuracy']:.2f} ({r['lava_samples']}) | "
                     f"{sum(r['reference_mismatches'])}, {sum(r['lava_mismatches'])} | "
                     f"{'-' if e is None else f'{e:.2f}'} |")
    return "\n".join(lines)


def make_report(run_dirs: list[str | Path], out_dir: str | Path,
                deployed: str | Path | None = None) -> dict[str, Path]:
    # plotting (matplotlib) only when the report is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    runs, sweeps = [], []
    for r in run_dirs:
        if (Path(r) / "sweep.json").is_file():
            sw = read_sweep(Path(r))
            sweeps.append(sw)
            runs.extend(sw["runs"])
        else:
            runs.append(read_run(r))
    if not runs:
        raise PsplavaError("no finished runs to report")
    out = writable_folder(out_dir)
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

    sums = [summary(r) for r in runs]
    plain = [s for s in sums if s["block"] == "-"]
    residual = [s for s in sums if s["block"] != "-"]
    table = markdown_table(sums)
    parts = ["# psplava report\n"]
    if plain:
        parts.append("## Table 2 analogue: plain networks (neuron, init, norm)\n\n"
                     + markdown_table(plain) + "\n")
    if residual:
        parts.append("## Table 3 analogue: residual networks (pre- / post-activation blocks)"
                     "\n\n" + markdown_table(residual) + "\n")
    parts.append("## Training curves\n\n![curves](curves.png)\n")
    parts.append("## Firing rate per layer (Fig. 6/7)\n\n![firing rates](firing_rates.png)\n")
    res: dict[str, Any] = {"curves": curves, "firing_rates": rates_png}
    figs = _sweep_figures(sweeps, out, plt)
    if figs:
        parts.append("## Sweeps (Fig. 8/9)\n\n" + "\n\n".join(
            f"![{title}]({path.name})" for title, path in figs) + "\n")
        res["sweeps"] = [p for _, p in figs]
    if deployed is not None:
        rows = read_deployed(deployed)
        if not rows:
            raise PsplavaError(f"{deployed}: no <name>/summary.json (run "
                               "scripts/deployed_report.py first)")
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rows:
            if r.get("energy_uj_per_sample") is not None:
                ax.scatter(r["energy_uj_per_sample"], r["reference_accuracy"])
                ax.annotate(r["name"], (r["energy_uj_per_sample"], r["reference_accuracy"]),
                            fontsize=8)
        ax.set(xlabel="energy per sample, uJ (deploy plan estimate, Loihi 2)",
               ylabel="accuracy of the file (reference engine)",
               title="deployed models: accuracy vs energy")
        res["energy"] = _save(fig, out / "energy.png", plt)
        parts.append("## Deployed models: accuracy vs energy\n\n" + deployed_table(rows)
                     + "\n\n![accuracy vs energy](energy.png)\n")
    md = out / "report.md"
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(parts))
    res.update(markdown=md, table=table)
    return res
