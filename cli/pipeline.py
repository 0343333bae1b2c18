"""The glue above the stages: what needs training, export and simulation together.

Stages import one way (``train`` <- ``export``; ``sim`` knows neither, the ``.net`` file is
its only contract).  Whatever needs a checkpoint *and* a simulator lives here:

- :class:`CheckpointReference`: a checkpoint's PyTorch forward in ``loihi`` arithmetic (the
  very computation its exported file must reproduce, 0 mismatches expected) and in float
  arithmetic (the differences are the quantization's effect, reported);
- :func:`simulate_dataset`: accuracy of a ``.net`` file on a dataset in either engine, with
  per-layer spike mismatches against a checkpoint;
- :func:`run_demo`: train -> export -> reference engine -> Lava on the embedded digits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psplava.budget import batch_bytes, check_fits
from psplava.data import dataset_from_config, file_dataset
from psplava.device import describe, resolve_device
from psplava.errors import PsplavaError, atomic_path
from psplava.netfile import file_latency, read_netfile
from psplava.progress import progress as show_progress
from psplava.sim.fixed import internal_to_lava, run_fixed
from psplava.train.config import load_config


class CheckpointReference:
    """A checkpoint's model in loihi arithmetic (what its file computes) and in float."""

    def __init__(self, ckpt_path: str, device: torch.device | str = "cpu") -> None:
        # heavy: checkpoints rebuild models on torch and lava-dl
        from psplava.train.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(ckpt_path)
        self.path = ckpt_path
        spec = dict(ckpt["model_spec"])
        self.device = torch.device(device)
        self.model = model_from_checkpoint({**ckpt, "model_spec": {
            **spec, "arithmetic": "loihi"}}).to(self.device)
        self.float_model = model_from_checkpoint({**ckpt, "model_spec": {
            **spec, "arithmetic": "float"}}).to(self.device)
        self.neuron = self.model.spec.neuron

    def check_matches(self, net) -> None:
        """The checkpoint's layers are the file's (count and neurons per layer): spikes of
        another architecture cannot be compared (one line instead of a shape error)."""
        ours = [int(np.prod(layer.out_shape)) for layer in self.model.layers]
        theirs = [int(np.prod(layer.shape)) for layer in net.layers
                  if layer.type in ("conv", "dense")]
        if ours != theirs:
            raise PsplavaError(f"{self.path}: --compare needs the checkpoint the file was "
                               f"exported from; its layers have {ours} neurons, the file's "
                               f"{theirs}")

    def loihi_exact(self, x: np.ndarray) -> list[np.ndarray]:
        """Per-layer spikes (T, N, ...) of the loihi-arithmetic forward for input x
        (T, N, H, W, C), already padded with the network's latency."""
        lag = self.model.latency
        xt = torch.from_numpy(x[:x.shape[0] - lag] if lag else x).float().to(self.device)
        with torch.no_grad():
            return [s.cpu().numpy().astype(bool) for s in self.model.layer_spikes(xt)]

    def float_spikes(self, x: np.ndarray) -> list[np.ndarray]:
        xt = torch.from_numpy(x).float().to(self.device)
        with torch.no_grad():
            return [s.cpu().numpy().astype(bool) for s in self.float_model.layer_spikes(xt)]

    def delay(self, i: int) -> int:
        """Steps by which layer i of a file lags the float model."""
        return 0 if self.model.latency == 0 else i + 1


def count_mismatches(engine: list[np.ndarray], ref: list[np.ndarray], delays: list[int],
                     steps: int) -> list[int]:
    """Per-layer mismatches over ``steps`` steps; engine layer i is shifted by delays[i]."""
    out = []
    for e, r, d in zip(engine, ref, delays):
        n = min(steps, e.shape[0] - d, r.shape[0])
        out.append(int((e[d:d + n] != r[:n]).sum()))
    return out


def _engine_batch(net, x: np.ndarray, lava_net=None, progress=None,
                  device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Per-layer spikes (T, N, ...) of a batch x (T, N, H, W, C): the reference engine (on
    ``device``), or the Lava network ``lava_net`` (built once per run) when given."""
    if lava_net is None:
        out = run_fixed(net, x, device)
        if progress is not None:
            progress.update(x.shape[1])
        return out
    outs = lava_net.run(internal_to_lava(x), progress)  # each (N, ..., T)
    return [np.moveaxis(o, -1, 0) if o.ndim == 3 else o.transpose(4, 0, 2, 1, 3)
            for o in outs]


def simulate_dataset(model: str, dataset: str | None, root: str | None, split: str,
                     limit: int | None = None, engine: str = "reference",
                     compare: str | None = None, steps: int | None = None,
                     dt: float | None = None, progress: bool = False,
                     device: str | None = None) -> dict[str, Any]:
    """Accuracy of a ``.net`` file on a dataset; with ``compare`` (a checkpoint) also the
    per-layer spike mismatches against its loihi-arithmetic forward and its float model.
    ``device`` (``auto | cpu | cuda | cuda:N``): where the reference engine and the
    checkpoint's forward passes run (Lava runs on the CPU).

    Each sample runs ``T + latency`` steps (the input padded with empty steps), as the
    loihi-arithmetic model does, so both count the same output spikes.  The Lava engine
    builds the network once for the run (:class:`psplava.sim.lava_engine.LavaNetwork`) and
    records every layer only with ``compare`` (else the output layer: fewer processes).
    """
    net = read_netfile(model)
    ds, d = file_dataset(net, dataset, root, split, limit, steps, dt)
    n = len(ds)
    lag = file_latency(net)
    batch = 16
    check_fits(batch_bytes(net, min(batch, n), int(d["steps"]) + lag),
               f"simulating {model} with {int(d['steps'])} steps")
    dev = resolve_device(device) if engine == "reference" else torch.device("cpu")
    ref = CheckpointReference(compare, dev) if compare else None
    if ref is not None:
        ref.check_matches(net)
    correct = 0
    exact_mm = float_mm = spikes = None
    t0 = time.time()
    lava_net = None
    if engine == "lava":
        # heavy: Lava's runtime
        from psplava.sim.lava_engine import LavaNetwork

        lava_net = LavaNetwork(model, int(d["steps"]) + lag, "all" if ref else "last",
                               net_file=net)
    bar = show_progress(total=n, desc=f"sim ({engine})", unit="sample", enabled=progress)
    try:
        for start in range(0, n, batch):
            idx = range(start, min(n, start + batch))
            xs = np.stack([ds[i][0] for i in idx], axis=1)  # (T, B, H, W, C)
            ys = np.array([ds[i][1] for i in idx])
            xp = np.concatenate([xs, np.zeros((lag, *xs.shape[1:]), xs.dtype)], axis=0)
            outs = _engine_batch(net, xp, lava_net, bar, dev)
            counts = outs[-1].reshape(outs[-1].shape[0], len(ys), -1).sum(axis=0)
            correct += int((counts.argmax(axis=1) == ys).sum())
            layer_spikes = [int(o.sum()) for o in outs]
            spikes = layer_spikes if spikes is None else \
                [a + b for a, b in zip(spikes, layer_spikes)]
            if ref is not None:
                e = count_mismatches(outs, ref.loihi_exact(xp), [0] * len(outs), xp.shape[0])
                delays = [ref.delay(i) for i in range(len(outs))]
                f = count_mismatches(outs, ref.float_spikes(xs), delays, xs.shape[0])
                exact_mm = e if exact_mm is None else [a + b for a, b in zip(exact_mm, e)]
                float_mm = f if float_mm is None else [a + b for a, b in zip(float_mm, f)]
    finally:
        bar.close()
        if lava_net is not None:
            lava_net.close()
    res = {"accuracy": correct / max(n, 1), "samples": n, "engine": engine,
           "device": describe(dev),
           "spikes_per_layer": spikes, "seconds": round(time.time() - t0, 2),
           "layers_recorded": "all" if lava_net is None or ref else "last"}
    if ref is not None:
        res["mismatches"] = {"loihi_exact": exact_mm, "loihi_exact_total": sum(exact_mm),
                             "float": float_mm, "float_total": sum(float_mm)}
    return res


#: the file that marks a folder as a demo run, which the next ``demo`` may replace
DEMO_MARK = ".psplava-demo"


def _check_demo_folder(out: Path, overwrite: bool) -> None:
    """``demo --out`` replaces an earlier demo run, but not a run that ``train`` made (or
    any other folder with files) unless ``--overwrite``."""
    # heavy: the training loop loads lava-dl
    from psplava.train.trainer import RUN_FILES

    if out.exists() and not out.is_dir():
        raise PsplavaError(f"{out}: exists and is not a folder")
    if overwrite or not out.is_dir() or (out / DEMO_MARK).is_file() or _demo_summary(out):
        return
    if any((out / f).exists() for f in RUN_FILES):
        raise PsplavaError(f"{out}: holds a training run that demo did not make; give "
                           "another --out, or --overwrite to replace it")
    if any(p.name != ".lock" for p in out.iterdir()):
        raise PsplavaError(f"{out}: is not empty; give another --out, or --overwrite")


def _demo_summary(out: Path) -> bool:
    """A demo run of a psplava before the marker: its summary.json has the demo's keys."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"pytorch_accuracy", "lava_accuracy",
                                          "reference_accuracy"} <= set(summary)


def run_demo(config: str | Path, overrides: list[str], out: str | Path,
             lava_samples: int | None = None, test_samples: int = 200,
             overwrite: bool = False) -> dict[str, Any]:
    """Train -> export -> simulate on the embedded digits (see configs/demo_digits.yaml)."""
    # heavy: training and export load lava-dl
    from psplava.export.exporter import export_checkpoint
    from psplava.train.trainer import evaluate, train

    cfg = load_config(config, overrides)
    out = Path(out)
    _check_demo_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("a psplava demo run: psplava demo replaces it\n")
    t0 = time.time()
    print(f"[demo] 1/4 training {cfg['model']['arch']} ({cfg['model']['neuron']}, "
          f"{cfg['model']['norm']}, {cfg['model']['arithmetic']} arithmetic) on the embedded "
          f"digits -> {out}", flush=True)
    best = train(cfg, out, progress=sys.stderr.isatty(), overwrite=True)  # a fresh demo run
    print(f"[demo] evaluating the checkpoint (PyTorch, {cfg['model']['arithmetic']} and float "
          f"arithmetic) on {test_samples} held-out digits", flush=True)
    res = evaluate(out / "best.pt", split="test", limit=test_samples)
    flt = evaluate(out / "best.pt", split="test", limit=test_samples, arithmetic="float")
    print(f"[demo] PyTorch test accuracy {res['accuracy']:.3f} in {res['arithmetic']} "
          f"arithmetic ({flt['accuracy']:.3f} in float) on {res['samples']} held-out digits "
          f"(best validation {best['accuracy']:.3f} at epoch {best['epoch']})", flush=True)
    net = out / "model.net"
    print(f"[demo] 2/4 exporting {out / 'best.pt'} -> {net}", flush=True)
    report = export_checkpoint(out / "best.pt", net)
    print("[demo] exported: weight rel. rms quantization error per layer "
          + ", ".join(f"{r['weight_rel_rms_error']:.2%}" for r in report), flush=True)
    print(f"[demo] 3/4 fixed-point reference engine on the {test_samples} digits", flush=True)
    ref = simulate_dataset(str(net), "digits", None, "test", limit=test_samples,
                           engine="reference", compare=str(out / "best.pt"),
                           progress=sys.stderr.isatty())
    print(f"[demo] reference engine: test accuracy {ref['accuracy']:.3f} on "
          f"{ref['samples']} digits ({ref['seconds']:.0f} s); spike mismatches against the "
          f"checkpoint's loihi forward: {ref['mismatches']['loihi_exact_total']}", flush=True)
    lava_samples = test_samples if lava_samples is None else lava_samples
    print(f"[demo] 4/4 Lava (Loihi2SimCfg fixed_pt), network built once: the first "
          f"{lava_samples} test digits", flush=True)
    lava = simulate_dataset(str(net), "digits", None, "test", limit=lava_samples,
                            engine="lava", compare=str(out / "best.pt"),
                            progress=sys.stderr.isatty())
    mm = lava["mismatches"]
    print(f"[demo] Lava: accuracy {lava['accuracy']:.3f} on the first {lava['samples']} test "
          f"digits ({lava['seconds']:.0f} s); spike mismatches against the checkpoint's loihi "
          f"forward: {mm['loihi_exact_total']} (per layer {mm['loihi_exact']}); against its "
          f"float model: {mm['float_total']} of {sum(lava['spikes_per_layer'])} spikes")
    summary = {"pytorch_accuracy": res["accuracy"], "float_accuracy": flt["accuracy"],
               "arithmetic": res["arithmetic"], "test_samples": res["samples"],
               "reference_accuracy": ref["accuracy"],
               "reference_mismatches": ref["mismatches"]["loihi_exact_total"],
               "lava_accuracy": lava["accuracy"], "lava_samples": lava["samples"],
               "lava_mismatches": mm["loihi_exact_total"], "float_mismatches": mm["float_total"],
               "recordings": f"the first {res['samples']} digits of the embedded digits' test "
                             "split (Lava: the first "
                             f"{lava['samples']})",
               "seconds": round(time.time() - t0)}
    picture = out / "output_spikes.png"
    try:
        _plot_outputs(out / "best.pt", net, picture)
        summary["picture"] = str(picture)
    except Exception as exc:  # a picture is a courtesy; never fail the demo for it
        print(f"[demo] (no picture: {exc})", file=sys.stderr)

    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    same = res["samples"] == lava["samples"]
    print(f"[demo] results on {summary['recordings']}:")
    print(f"         PyTorch, float arithmetic         {flt['accuracy']:.3f}")
    print(f"         PyTorch, {res['arithmetic']} arithmetic         {res['accuracy']:.3f}")
    print(f"         reference engine (the .net file)  {ref['accuracy']:.3f}")
    print(f"         Lava fixed_pt (the .net file)     {lava['accuracy']:.3f}"
          + ("" if same else f" (first {lava['samples']})"))
    print(f"[demo] spike mismatches against the trained model's loihi forward: "
          f"{summary['reference_mismatches']} (reference), {summary['lava_mismatches']} "
          f"(Lava): 0 means the file computes exactly what was trained, spike for spike.")
    print(f"[demo] done in {summary['seconds']} s; {out / 'summary.json'}"
          + (f", {picture}" if "picture" in summary else ""))
    return summary


def _plot_outputs(ckpt: Path, net: Path, path: Path) -> None:
    """The trained model's output spikes (PyTorch, loihi arithmetic) beside Lava's, for the
    first test digit."""
    # plotting (matplotlib) only when a picture is asked for
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    # heavy: Lava's runtime
    from psplava.sim.lava_engine import LavaNetwork

    ref = CheckpointReference(str(ckpt))
    nf = read_netfile(net)
    cfg = json.loads(nf.attrs["config"])
    x, y = dataset_from_config(cfg, "test", None, None, 1)[0]
    lag = file_latency(nf)
    xp = np.concatenate([x, np.zeros((lag, *x.shape[1:]), x.dtype)])[:, None]
    torch_out = ref.loihi_exact(xp)[-1][:, 0]                  # (T, classes)
    with LavaNetwork(net, xp.shape[0], "last", net_file=nf) as lava_net:
        lava_out = lava_net.run(internal_to_lava(xp))[-1][0].T  # (T, classes)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, o, title in ((axes[0], torch_out, "trained model (PyTorch, loihi arithmetic)"),
                         (axes[1], lava_out, "exported file in Lava (fixed_pt)")):
        t, k = np.nonzero(o)
        ax.plot(t, k, "|", markersize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time step")
        ax.set_yticks(range(o.shape[1]))
    axes[0].set_ylabel(f"output neuron (label {y})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
