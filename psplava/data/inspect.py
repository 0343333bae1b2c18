"""Summaries and pictures of datasets (behind ``psplava data info|show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from psplava.errors import DataError, atomic_path


def dataset_info(ds, max_event_samples: int | None = None) -> dict[str, Any]:
    """Samples, per-class counts and, for event data, events per sample and duration."""
    labels = np.asarray(ds.labels)
    info: dict[str, Any] = {
        "samples": int(len(labels)),
        "class_counts": {str(c): int((labels == c).sum()) for c in range(ds.num_classes)},
        "sensor": list(ds.sensor),
    }
    if hasattr(ds, "events"):
        n = len(labels) if max_event_samples is None else min(len(labels), max_event_samples)
        counts, durations = np.empty(n), np.empty(n)
        for i in range(n):
            ev = ds.events(i)
            counts[i] = len(ev)
            durations[i] = (ev["t"].max() / 1000.0) if len(ev) else 0.0
        info["events_per_sample"] = _stats(counts)
        info["duration_ms"] = _stats(durations)
        info["measured_on"] = n
    else:
        n = len(labels) if max_event_samples is None else min(len(labels), max_event_samples)
        spikes = np.array([ds[i][0].sum() for i in range(n)])
        info["spikes_per_sample"] = _stats(spikes)
        info["steps"] = int(ds[0][0].shape[0]) if n else 0
        info["measured_on"] = n
    return info


def _stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": round(float(x.mean()), 3), "min": round(float(x.min()), 3),
            "max": round(float(x.max()), 3)}


def format_info(info: dict[str, Any], title: str) -> str:
    lines = [title, f"  samples: {info['samples']}",
             "  per class: " + ", ".join(f"{k}={v}" for k, v in info["class_counts"].items())]
    for key, unit in (("events_per_sample", ""), ("duration_ms", " ms"),
                      ("spikes_per_sample", "")):
        if key in info:
            s = info[key]
            lines.append(f"  {key.replace('_', ' ')}: mean {s['mean']:.1f}{unit}, "
                         f"min {s['min']:.1f}{unit}, max {s['max']:.1f}{unit} "
                         f"(over {info['measured_on']} samples)")
    return "\n".join(lines)


def show_sample(ds, index: int, out: str | Path, slices: int = 3) -> Path:
    """Save a PNG of sample ``index``: ``slices`` equal time slices (3 = one per saccade).

    ON events/spikes are red, OFF blue (single-channel data is grey).
    """
    # plotting (matplotlib) only for data show
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen


    if not 0 <= index < len(ds):
        raise DataError(f"--index {index} out of range: the split has {len(ds)} samples")
    x, label = ds[index]
    steps = x.shape[0]
    bounds = np.linspace(0, steps, slices + 1).astype(int)
    fig, axes = plt.subplots(1, slices, figsize=(3 * slices, 3.2))
    axes = np.atleast_1d(axes)
    for k, ax in enumerate(axes):
        part = x[bounds[k]:bounds[k + 1]].sum(axis=0)  # (H, W, C)
        if part.shape[-1] == 2:
            rgb = np.zeros((*part.shape[:2], 3))
            scale = max(part.max(), 1.0)
            rgb[..., 0] = part[..., 1] / scale
            rgb[..., 2] = part[..., 0] / scale
            ax.imshow(rgb, interpolation="nearest")
        else:
            ax.imshow(part[..., 0], cmap="gray", interpolation="nearest")
        ax.set_title(f"steps {bounds[k]}-{bounds[k + 1] - 1}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"sample {index}, label {label}")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out
