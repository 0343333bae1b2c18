"""Training and evaluation loops and metrics (checkpoints: :mod:`psplava.train.checkpoint`).

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON
object per epoch), ``best.pt`` and ``last.pt``.  Checkpoints are plain data (tensors,
numbers, strings, dicts): they load with ``torch.load(..., weights_only=True)`` and carry
the full config, so they rebuild their model on their own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numba
import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from psplava.data import (dataset_from_config, make_dataset, resolve_root, split_seed,
                          train_val_split)
from psplava.device import describe, resolve_device
from psplava.errors import ConfigError, PsplavaError, atomic_path, writable_folder
from psplava.lavadl import slayer
from psplava.progress import progress as show_progress
from psplava.train.checkpoint import (init_from_checkpoint, load_checkpoint, model_from_checkpoint,
                                      model_spec, save_checkpoint, to_cpu)
from psplava.train.config import DEFAULTS, deep_merge
from psplava.train.convert import NormWarmStart, SrmToCuba
from psplava.train.loader import default_workers, draw_shifts, make_loader, max_shift
from psplava.train.model import SNN
from psplava.train.runtime import Runtime


# ----------------------------------------------------------------------------- helpers
def set_threads(n: int | None) -> None:
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def build_datasets(cfg: dict[str, Any], split: str = "train"):
    d = cfg["data"]
    return make_dataset(d["dataset"], d.get("root"), split, steps=int(d["steps"]),
                        dt_ms=float(d["dt_ms"]), encoding=d.get("encoding") or {},
                        seed=int(cfg["train"]["seed"]), limit=d.get("train_limit"),
                        cache=d.get("cache"))


def batches(ds, indices: np.ndarray, batch_size: int, augment: dict[str, Any] | None = None,
            rng: np.random.Generator | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(x (T, N, H, W, C), labels (N,)) batches in the order of ``indices``, in this
    process (the training loop uses :func:`psplava.train.loader.make_loader`)."""
    shifts = draw_shifts(len(indices), max_shift(augment), rng)
    return iter(make_loader(ds, indices, batch_size, shifts=shifts))


def to_slayer(out: torch.Tensor) -> torch.Tensor:
    """(T, N, classes) -> (N, classes, T), lava-dl's loss/classifier layout."""
    return out.permute(1, 2, 0)


#: training recordings run through an SRM model to calibrate an SRM -> CUBA conversion
CALIBRATION_SAMPLES = 20


# ----------------------------------------------------------------------------- loops
def run_epoch(model: SNN, ds, indices: np.ndarray, cfg: dict[str, Any], optimizer=None,
              rng: np.random.Generator | None = None, progress: str | None = None,
              rt: Runtime | None = None, net: torch.nn.Module | None = None
              ) -> dict[str, Any]:
    """One pass over ``indices``; trains when ``optimizer`` is given.

    ``rt``: the device and the processes (default: this process on the model's device);
    ``net``: what runs the forward pass (the DDP wrapper of ``model``).  Under DDP each
    rank runs its share of every global batch; the loss of the local batch is scaled by
    the number of ranks, so that DDP's gradient average is the gradient of the global
    batch's summed loss, as one process computes it.  The returned metrics are summed over
    ranks (every rank gets the same)."""
    t = cfg["train"]
    rt = rt or Runtime(next(model.parameters()).device)
    net = net or model
    loss_fn = slayer.loss.SpikeRate(true_rate=float(t["loss"]["true_rate"]),
                        false_rate=float(t["loss"]["false_rate"]), reduction="sum")
    training = optimizer is not None
    model.train(training)
    sizes = np.array([math.prod(layer.out_shape) for layer in model.layers], dtype=np.float64)
    shift = max_shift(cfg["data"].get("augment")) if training else 0
    workers = t.get("workers")
    workers = default_workers(rt.device) if workers is None else int(workers)
    batch = rt.local_batch(int(t["batch_size"]))
    loader = make_loader(ds, indices, batch, shifts=draw_shifts(len(indices), shift, rng),
                         workers=workers, device=rt.device, rank=rt.rank,
                         world=rt.world_size, train=training)
    # n, correct, loss sum, spikes sum, then per-layer rate sums (this rank's)
    acc = torch.zeros(4 + len(model.layers), dtype=torch.float64)
    bar = show_progress(loader, desc=progress, enabled=progress is not None and rt.is_main,
                        unit="batch", leave=False, mininterval=2.0)
    for x, y in bar:
        x = x.to(rt.device, non_blocking=True)
        y = y.to(rt.device, non_blocking=True)
        with torch.set_grad_enabled(training):
            out = net(x)
            loss = loss_fn(to_slayer(out), y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                (loss * rt.world_size if rt.distributed else loss).backward()
                optimizer.step()
        pred = slayer.classifier.Rate.predict(to_slayer(out.detach()))
        b = len(y)
        rates = np.array(model.last_rates)
        acc[0] += b
        acc[1] += int((pred == y).sum())
        acc[2] += float(loss.detach())
        acc[3] += float((rates * sizes).sum()) * x.shape[0] * b
        acc[4:] += torch.from_numpy(rates * b)
        n = float(acc[0])
        bar.set_postfix(loss=f"{float(acc[2]) / n:.4f}", acc=f"{float(acc[1]) / n:.3f}",
                        rate=f"{float(acc[4:].mean()) / n:.4f}")
    acc = rt.all_sum(acc)
    n = max(int(acc[0]), 1)
    return {"loss": float(acc[2]) / n, "accuracy": float(acc[1]) / n, "samples": int(acc[0]),
            "firing_rates": (acc[4:].numpy() / n).round(6).tolist(),
            "spikes_per_sample": float(acc[3]) / n}


def make_optimizer(model: SNN, cfg: dict[str, Any]):
    # heavy: pytorch-optimizer takes seconds beyond torch; loaded when an optimizer is built
    from pytorch_optimizer import AdaBelief

    t = cfg["train"]
    return AdaBelief(model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))


RUN_FILES = ("metrics.jsonl", "last.pt", "best.pt")
CSV_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
               "val_spikes_per_sample", "epoch_seconds")


def _metric_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: it and anything after are dropped
    return rows


def _repair_metrics(path: Path, epochs_done: int, last_row: dict | None) -> None:
    """Make ``metrics.jsonl`` hold epochs 1..epochs_done once each (as last.pt says)."""
    rows = [r for r in _metric_rows(path) if int(r.get("epoch", 0)) <= epochs_done]
    seen, unique = set(), []
    for r in rows:
        if r["epoch"] not in seen:
            seen.add(r["epoch"])
            unique.append(r)
    if last_row is not None and epochs_done not in seen:
        unique.append(last_row)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in unique))
    _write_metrics_csv(path)


def _tensorboard(out: Path):
    """A TensorBoard writer into ``out/tensorboard`` when the ``tensorboard`` package is
    installed (it is optional), else None."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _write_metrics_csv(path: Path) -> None:
    """``metrics.csv`` beside ``metrics.jsonl``: the scalar columns, one row per epoch."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS + ("val_mean_firing_rate",))
    for r in _metric_rows(path):
        rate = np.mean(r["val_firing_rates"]) if r.get("val_firing_rates") else ""
        w.writerow([r.get(c, "") for c in CSV_COLUMNS] + [rate])
    with atomic_path(path.with_suffix(".csv")) as tmp:
        tmp.write_text(buf.getvalue())


@contextlib.contextmanager
def run_folder_lock(out: Path):
    """An exclusive ``flock`` on ``out/.lock`` for the run's lifetime: a second process
    writing the same run folder fails at once instead of interleaving checkpoints."""
    # optional: POSIX only
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{out}: another psplava process is writing this run folder") \
                from None
        yield
    finally:
        fh.close()


def train(cfg: dict[str, Any], out_dir: str | Path, resume: bool = False,
          progress: bool = True, log=print, overwrite: bool = False,
          device: str | None = None) -> dict[str, Any]:
    """Train per ``cfg`` into ``out_dir``; returns the best validation metrics.

    A folder that already holds a run is refused unless ``resume`` (continue it) or
    ``overwrite`` (start it again); one process at a time writes a run folder.  ``device``
    overrides ``train.device``.  Under ``torchrun`` every rank calls this; rank 0 alone
    checks, locks and writes the run folder, and tells the others what it found."""
    out = Path(out_dir)
    rt = Runtime.start(device if device is not None else cfg["train"].get("device"))
    try:
        with contextlib.ExitStack() as stack:
            problem = None
            if rt.is_main:
                try:
                    _check_run_folder(out, resume, overwrite)
                    stack.enter_context(run_folder_lock(out))
                    if overwrite and _move_aside(out, log):
                        stack.enter_context(run_folder_lock(out))  # the new, empty folder
                except PsplavaError as exc:
                    problem = str(exc)
            problem = rt.broadcast(problem)
            if problem is not None:
                raise ConfigError(problem)
            return _train(cfg, out, resume, progress, log if rt.is_main else _quiet, rt)
    finally:
        rt.close()


def aside_path(out: Path) -> Path:
    """Where ``--overwrite`` keeps the run it replaces until the new run's first commit."""
    return out.with_name(f".{out.name}.replaced")


def _drop_replaced(out: Path) -> None:
    """The run ``--overwrite`` moved aside goes once the new run has a commit of its own."""
    aside = aside_path(out)
    if aside.exists() and (out / "last.pt").is_file():
        shutil.rmtree(aside, ignore_errors=True)


def _move_aside(out: Path, log) -> Path | None:
    """``--overwrite`` of a folder that holds a run: the old run moves aside whole (one
    rename, under its lock) before the new run writes anything, so the folder never mixes
    two runs; it is deleted after the new run's first commit (an interrupted overwrite
    leaves it there, whole).  None when there is no run to replace."""
    if not any((out / f).exists() for f in RUN_FILES):
        return None
    aside = aside_path(out)
    try:
        if aside.exists():
            shutil.rmtree(aside)
        os.rename(out, aside)
        out.mkdir()
    except OSError as exc:
        raise ConfigError(f"{out}: cannot move the run it holds aside for --overwrite "
                          f"({exc.strerror or exc})") from None
    log(f"{out}: the run it held is moved to {aside} until this run's first epoch is "
        "committed")
    return aside


def _quiet(*_args, **_kwargs) -> None:
    """The log of ranks other than 0."""


def _check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    writable_folder(out)   # one line for a read-only mount, /proc, a path under a file
    if not resume and not overwrite and any((out / f).exists() for f in RUN_FILES):
        raise ConfigError(f"{out}: holds a run already; --resume continues it, --overwrite "
                          "starts it again")


def _set_rank_threads(t: dict[str, Any], rt: Runtime) -> None:
    """``train.threads`` per process (default: this node's cores shared by its ranks)."""
    n = t.get("threads")
    if n is None and rt.distributed and rt.device.type == "cpu":
        n = max(1, (os.cpu_count() or 1) // max(rt.local_world_size, 1))
    set_threads(n)


def _wrap(model: SNN, rt: Runtime, checkpoint_blocks: bool) -> torch.nn.Module:
    """The module that runs the forward pass: the model itself, or its DDP wrapper."""
    model.checkpoint_blocks = bool(checkpoint_blocks)
    if not rt.distributed:
        return model

    return DistributedDataParallel(model, device_ids=[rt.device.index]
                                   if rt.device.type == "cuda" else None)


def _resume_state(out: Path, cfg: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """Rank 0 reads ``last.pt`` and checks it; every rank gets its state."""
    state = problem = None
    if rt.is_main:
        last = out / "last.pt"
        try:
            ckpt = load_checkpoint(last)
            stored = deep_merge(DEFAULTS, ckpt["config"])  # keys added to DEFAULTS since
            for section in ("model", "data"):
                if stored[section] != cfg[section]:
                    raise ConfigError(f"{last}: cannot resume: the {section} section of the "
                                      "config differs from the checkpoint's (train settings "
                                      "such as epochs or time_limit_min may change)")
            state = {k: ckpt.get(k) for k in ("model", "optimizer", "epoch", "best",
                                              "metrics")}
        except PsplavaError as exc:
            problem = str(exc)
    problem, state = rt.broadcast((problem, state))
    if problem is not None:
        raise ConfigError(problem)
    return state


def _train(cfg: dict[str, Any], out: Path, resume: bool, progress: bool, log,
           rt: Runtime) -> dict[str, Any]:
    full, tr_idx, va_idx, model = _setup(cfg, out, resume, log, rt)
    state = _start(cfg, out, resume, model, (full, tr_idx, va_idx), progress, log, rt)
    net = _wrap(model, rt, bool(cfg["train"].get("checkpoint_blocks")))
    optimizer = make_optimizer(model, cfg)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    if rt.is_main:
        with atomic_path(out / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    start_epoch = 0 if state is None else int(state["epoch"]) + 1
    best = dict((state or {}).get("best") or {"accuracy": -1.0})
    best = _epochs(cfg, out, model, net, optimizer, (full, tr_idx, va_idx), start_epoch, best,
                   progress, log, rt)
    rt.barrier()  # the last epoch is committed before any rank returns
    return {**best, "device": describe(rt.device), "world_size": rt.world_size}


def _setup(cfg: dict[str, Any], out: Path, resume: bool, log, rt: Runtime):
    """The run folder cleaned of a killed run's leftovers, threads and seed set, the data
    split and the model on its device: ``(dataset, train indices, val indices, model)``."""
    if rt.is_main:
        for stale in out.glob(".*.tmp"):  # temp files of a killed run (atomic_path)
            stale.unlink(missing_ok=True)
        _drop_replaced(out)
    t = cfg["train"]
    _set_rank_threads(t, rt)
    torch.manual_seed(int(t["seed"]))
    if t.get("init_from"):
        # found as data.root is: from the current folder, else the repository's
        t["init_from"] = str(resolve_root(t["init_from"]))
    if t.get("init_from") and not resume:
        keep_source_split(cfg, load_checkpoint(t["init_from"]).get("config") or {}, log)
    full = build_datasets(cfg, "train")
    tr_idx, va_idx = train_val_split(len(full), int(cfg["data"]["val_count"]),
                                     split_seed(cfg))
    model = SNN(model_spec(cfg)).to(rt.device)
    where = describe(rt.device) + (f", {rt.world_size} processes ({rt.backend})"
                                   if rt.distributed else "")
    log(f"training on {where}")
    return full, tr_idx, va_idx, model


def _start(cfg: dict[str, Any], out: Path, resume: bool, model: SNN, data, progress: bool,
           log, rt: Runtime) -> dict[str, Any] | None:
    """Where the run starts: ``last.pt``'s state, loaded into ``model`` (resume), or None
    (a fresh start: old metrics dropped, a fine-tune's source loaded)."""
    metrics_path = out / "metrics.jsonl"
    has_last = rt.broadcast((out / "last.pt").is_file() if rt.is_main else None)
    if resume and not has_last:
        # killed before its first epoch was committed: nothing to continue
        log(f"{out}: no last.pt (the run never completed an epoch): starting it from the "
            "beginning")
        resume = False
    state = _resume_state(out, cfg, rt) if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        if rt.is_main:
            _repair_metrics(metrics_path, int(state["epoch"]) + 1, state.get("metrics"))
        return state
    if rt.is_main:
        metrics_path.unlink(missing_ok=True)
        (out / "start.json").unlink(missing_ok=True)
    if cfg["train"].get("init_from"):  # every rank reads the same file: the same start
        _init_fine_tune(model, cfg, *data, out, progress, log, rt)
    return None


def _epochs(cfg: dict[str, Any], out: Path, model: SNN, net, optimizer, data,
            start_epoch: int, best: dict[str, Any], progress: bool, log, rt: Runtime
            ) -> dict[str, Any]:
    """The epochs from ``start_epoch`` on, each committed by rank 0; returns the best."""
    t = cfg["train"]
    full, tr_idx, va_idx = data
    seed, epochs = int(t["seed"]), int(t["epochs"])
    per_epoch = t.get("samples_per_epoch")
    limit_s = float(t["time_limit_min"]) * 60 if t.get("time_limit_min") else None
    board = _tensorboard(out) if rt.is_main else None
    t_start = time.time()
    for epoch in range(start_epoch, epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(tr_idx)
        if per_epoch:
            order = order[:int(per_epoch)]
        t0 = time.time()
        tr = run_epoch(model, full, order, cfg, optimizer, rng,
                       progress=f"epoch {epoch + 1}/{epochs}" if progress else None,
                       rt=rt, net=net)
        va = run_epoch(model, full, va_idx, cfg, progress="valid" if progress else None,
                       rt=rt, net=net)
        row = _epoch_row(epoch, tr, va, time.time() - t0)
        is_best = va["accuracy"] > best["accuracy"]
        if is_best:
            best = {"accuracy": va["accuracy"], "epoch": epoch + 1,
                    "firing_rates": va["firing_rates"]}
        if rt.is_main:
            _commit_epoch(out, model, cfg, optimizer, epoch, best, row, is_best, board)
            _drop_replaced(out)
        left = epochs - epoch - 1
        eta = (time.time() - t_start) / (epoch + 1 - start_epoch) * left
        if limit_s is not None:
            eta = min(eta, max(0.0, limit_s - (time.time() - t_start)))
        log(f"epoch {epoch + 1}/{epochs}: train loss {tr['loss']:.4f} "
            f"acc {tr['accuracy']:.3f} | val acc {va['accuracy']:.3f} | rate "
            f"{np.mean(va['firing_rates']):.4f} | {row['epoch_seconds']:.0f} s"
            + (f" | run ETA {eta / 60:.1f} min" if left else ""))
        # rank 0's clock decides, so every rank stops after the same epoch
        if rt.broadcast(limit_s is not None and time.time() - t_start > limit_s):
            log(f"time limit of {t['time_limit_min']} min reached after epoch {epoch + 1}")
            break
    return best


def _epoch_row(epoch: int, tr: dict[str, Any], va: dict[str, Any], seconds: float
               ) -> dict[str, Any]:
    """One line of ``metrics.jsonl``."""
    return {"epoch": epoch + 1, "train_loss": round(tr["loss"], 6),
            "train_accuracy": round(tr["accuracy"], 6), "val_loss": round(va["loss"], 6),
            "val_accuracy": round(va["accuracy"], 6), "val_samples": va["samples"],
            "train_firing_rates": tr["firing_rates"], "val_firing_rates": va["firing_rates"],
            "val_spikes_per_sample": round(va["spikes_per_sample"], 2),
            "epoch_seconds": round(seconds, 2)}


def _commit_epoch(out: Path, model: SNN, cfg: dict[str, Any], optimizer, epoch: int,
                  best: dict[str, Any], row: dict[str, Any], is_best: bool, board) -> None:
    """Write an epoch into the run folder (rank 0).  The order matters for a kill at any
    moment: best.pt before the last.pt that records it; last.pt commits the epoch; its
    metrics row follows (a resume repairs the log from last.pt, so no epoch is ever
    missing or twice)."""
    extra = {"epoch": epoch, "optimizer": to_cpu(optimizer.state_dict()), "best": best,
             "metrics": row}
    if is_best:
        save_checkpoint(out / "best.pt", model, cfg, **extra)
    save_checkpoint(out / "last.pt", model, cfg, **extra)
    metrics_path = out / "metrics.jsonl"
    with open(metrics_path, "a") as f:
        f.write(json.dumps(row) + "\n")
    _write_metrics_csv(metrics_path)
    if board is not None:
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            board.add_scalar(key.replace("_", "/", 1), row[key], epoch + 1)
        board.add_scalar("val/mean_firing_rate", float(np.mean(row["val_firing_rates"])),
                         epoch + 1)
        board.flush()


#: the data keys that, with the split seed, decide which recordings a run holds out
SPLIT_KEYS = ("dataset", "val_count", "train_limit")


def keep_source_split(cfg: dict[str, Any], source: dict[str, Any], log) -> None:
    """A fine-tune holds out its source's held-out recordings: with the same data but
    another ``train.seed`` it takes the source's split seed (``data.split_seed``, written
    into its config); where the data differ, or ``data.split_seed`` says otherwise, it
    says loudly how many of its validation recordings the source trained on."""
    d, sd = cfg["data"], source.get("data", {})
    mine, theirs = split_seed(cfg), split_seed(source)
    same_data = all(d.get(k) == sd.get(k) for k in SPLIT_KEYS)
    if same_data and mine == theirs:
        return
    if same_data and d.get("split_seed") is None:
        d["split_seed"] = theirs
        log(f"keeping the source's held-out recordings: data.split_seed = {theirs} "
            f"(train.seed {cfg['train']['seed']} seeds the rest)")
        return
    n = _split_size(cfg)
    leaked = "some"
    if n is not None and n == _split_size(source):
        _, va = train_val_split(n, int(d["val_count"]), mine)
        tr_src, _ = train_val_split(n, int(sd.get("val_count", 0)), theirs)
        leaked = str(len(np.intersect1d(va, tr_src)))
    log(f"WARNING: this fine-tune does not hold out its source's recordings "
        f"({'data.split_seed is set' if same_data else 'its data settings differ'}): "
        f"{leaked} of its {d['val_count']} validation recordings were in the source's "
        "training set, so its validation accuracy is not a held-out one")


def _split_size(cfg: dict[str, Any]) -> int | None:
    """Training recordings a config splits (None when its data are not at hand)."""
    try:
        return len(build_datasets(cfg, "train"))
    except PsplavaError:
        return None


def _init_fine_tune(model: SNN, cfg: dict[str, Any], full, tr_idx, va_idx, out: Path,
                    progress: bool, log, rt: Runtime) -> None:
    """A fine-tune's start: load ``train.init_from`` (every rank reads it), measure it on
    the held-out recordings, and record that in ``start.json`` (rank 0)."""
    t = cfg["train"]

    def calibration() -> torch.Tensor:
        return next(iter(batches(full, tr_idx[:CALIBRATION_SAMPLES],
                                 CALIBRATION_SAMPLES)))[0]

    # on the CPU: an SRM -> CUBA conversion runs the source model on its calibration batch
    conversion = init_from_checkpoint(model.cpu(), t["init_from"], calibration)
    model.to(rt.device)
    log(f"initialised from {t['init_from']} (neuron {model.spec.neuron}, arithmetic "
        f"{model.spec.arithmetic}, norm {model.spec.norm})"
        + (f" by {conversion.kind} conversion" if conversion else ""))
    if isinstance(conversion, NormWarmStart):
        log("norm warm start: measured input m2 per layer "
            + ", ".join("-" if m is None else f"{m:.3g}" for m in conversion.layer_m2))
    if isinstance(conversion, SrmToCuba) and not conversion.decays_match:
        log(f"note: model.cuba current/voltage decays {conversion.current_decay}/"
            f"{conversion.voltage_decay} differ from "
            f"{conversion.matching_decay:.4f}, the decay that matches the SRM "
            f"PSP (tau_s {conversion.tau_s}): the start is not equivalent")
    va0 = run_epoch(model, full, va_idx, cfg, progress="start" if progress else None, rt=rt)
    start = {"init_from": str(t["init_from"]), "val_accuracy": va0["accuracy"],
             "val_samples": va0["samples"], "val_firing_rates": va0["firing_rates"],
             "conversion": conversion.to_json() if conversion else None}
    if rt.is_main:
        with atomic_path(out / "start.json") as tmp:
            tmp.write_text(json.dumps(start, indent=1) + "\n")
    log(f"start: val acc {va0['accuracy']:.3f} on {va0['samples']} held-out "
        f"recordings (start.json)")


def evaluate(ckpt_path: str | Path, dataset: str | None = None, root: str | None = None,
             split: str = "test", limit: int | None = None, progress: bool = False,
             norm_override: str | None = None, arithmetic: str | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Accuracy, per-layer firing rates and spikes per sample of a checkpoint.

    ``norm_override`` evaluates the same weights with another parameter-free PSP norm
    (e.g. ``causal_psp_ln`` for a model trained with whole-window ``psp_ln``).
    ``device``: ``auto | cpu | cuda | cuda:N`` (default: ``auto``).
    """
    ckpt = load_checkpoint(ckpt_path)
    if norm_override is not None:
        ckpt = {**ckpt, "model_spec": {**ckpt["model_spec"], "norm": norm_override}}
    if arithmetic is not None:
        ckpt = {**ckpt, "model_spec": {**ckpt["model_spec"], "arithmetic": arithmetic}}
    cfg = ckpt["config"]
    rt = Runtime(resolve_device(device))
    set_threads(cfg["train"].get("threads"))
    d = cfg["data"]
    ds = dataset_from_config(cfg, split, dataset, root, limit)
    idx = np.arange(len(ds))
    model = model_from_checkpoint(ckpt).to(rt.device)
    sample_shape = tuple(ds[0][0].shape[1:]) if len(ds) else model.input_shape
    if sample_shape != model.input_shape:
        raise ConfigError(f"{ckpt_path}: the model expects input (H, W, C) = "
                          f"{model.input_shape}, the dataset gives {sample_shape}")
    with torch.no_grad():
        res = run_epoch(model, ds, idx, cfg, progress="evaluate" if progress else None, rt=rt)
    return {"accuracy": res["accuracy"], "samples": res["samples"],
            "firing_rates": res["firing_rates"],
            "spikes_per_sample": round(res["spikes_per_sample"], 2),
            "loss": res["loss"], "checkpoint": str(ckpt_path),
            "dataset": dataset or d["dataset"], "split": split,
            "arithmetic": model.spec.arithmetic, "device": describe(rt.device)}
