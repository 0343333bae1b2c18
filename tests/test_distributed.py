"""Training with several processes (DDP over torchrun, gloo on the CPU), activation
checkpointing, and the device setting.

Tolerance of the DDP equivalence: parameters after two optimizer steps agree with one
process on the same global batch to 1e-6 relative (measured: 1.2e-7 absolute, one
float32 ulp of weights of magnitude ~5).  The two differ only in the order of float32
sums: DDP sums the ranks' gradients (each the gradient of half the batch), one process
sums over the whole batch; PSP-BN's statistics are summed over ranks in float64.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ("data: {dataset: digits, steps: 20, dt_ms: 10.0, val_count: 8, train_limit: 40, "
          "augment: {shift: 1}}\n"
          "model: {arch: 34x34x2-n4c3s2-n8c3s2-n10, neuron: srm, norm: %s}\n"
          "train: {epochs: %d, samples_per_epoch: 8, batch_size: 4, lr: 0.01, seed: 0, "
          "threads: 1}\n")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    env.pop("LOCAL_RANK", None)
    return env


def _psplava(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psplava", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=ROOT)


def _params(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("epoch_seconds")
    return rows


@pytest.mark.parametrize("norm", ["psp_bn", pytest.param("psp_ln", marks=pytest.mark.slow)])
def test_two_gloo_processes_equal_one_process(tmp_path, norm):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG % (norm, 1))  # 8 samples, global batch 4: two optimizer steps
    one = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "one"),
                   "--no-progress")
    two = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "two"),
                   "--no-progress", "--nproc", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "2 processes (gloo)" in two.stderr + two.stdout
    last = json.loads(two.stdout.strip().splitlines()[-1])
    assert last["world_size"] == 2 and last["device"] == "cpu"
    a, b = _params(tmp_path / "one" / "last.pt"), _params(tmp_path / "two" / "last.pt")
    assert a.keys() == b.keys()
    torch.manual_seed(0)  # the initial weights, to show that the two steps moved them
    from psplava.train.config import load_config
    from psplava.train.model import SNN
    from psplava.train.checkpoint import model_spec

    start = SNN(model_spec(load_config(cfg))).state_dict()
    moved = 0.0
    for k in a:
        scale = float(a[k].abs().max())
        assert float((a[k] - b[k]).abs().max()) <= 1e-6 * max(scale, 1.0), k
        moved = max(moved, float((a[k] - start[k]).abs().max()))
    assert moved > 1e-3  # the optimizer steps changed the parameters
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")


def test_ddp_run_killed_and_resumed_gives_the_uninterrupted_metrics(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG % ("psp_bn", 3))
    ref = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "ref"),
                   "--no-progress", "--nproc", "2")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    # rank 0 is killed (SIGKILL) at its 14th write into the run folder: inside epoch 2's
    # commit (config.yaml: 2 moments; an epoch: best.pt 2, last.pt 2, metrics 3, csv 2)
    killed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(ROOT / "tests" / "kill_at_write.py"), "14", str(out), "train", "--config",
         str(cfg), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert killed.returncode != 0
    assert 1 <= len((out / "metrics.jsonl").read_text().splitlines()) <= 2
    res = _psplava("train", "--config", str(cfg), "--out", str(out), "--no-progress",
                   "--nproc", "2", "--resume")
    assert res.returncode == 0, res.stderr
    assert _rows(out) == _rows(tmp_path / "ref")
    assert not list(out.glob(".*.tmp"))


def test_nproc_refuses_a_batch_that_does_not_split(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG % ("psp_ln", 1))
    res = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "r"),
                   "--no-progress", "--nproc", "3")
    assert res.returncode != 0
    assert "global batch" in res.stderr
    assert "Traceback" not in res.stderr.split("psplava: error:")[-1]


@pytest.mark.slow
def test_two_nodes_static_rendezvous(tmp_path):
    """torchrun's multi-node mode (two 'nodes' on this machine, static rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG % ("psp_bn", 1))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={r}",
         "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}", "-m",
         "psplava", "train", "--config", str(cfg), "--out", str(tmp_path / f"node{r}"),
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(), cwd=ROOT) for r in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert (tmp_path / "node0" / "last.pt").is_file()
    assert not (tmp_path / "node1").exists()  # rank 0 alone writes the run folder
    one = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "one"),
                   "--no-progress")
    assert one.returncode == 0
    a, b = _params(tmp_path / "one" / "last.pt"), _params(tmp_path / "node0" / "last.pt")
    for k in a:
        assert float((a[k] - b[k]).abs().max()) <= 1e-6 * max(float(a[k].abs().max()), 1.0)


# ----------------------------------------------------------------- checkpointing, device
@pytest.mark.parametrize("block", ["pre", "post"])
def test_checkpointed_blocks_give_the_same_gradients_and_statistics(block):
    from psplava.train.model import SNN

    x = (torch.rand(25, 3, 12, 12, 2, generator=torch.Generator().manual_seed(4)) < 0.15).float()
    res = []
    for ck in (False, True):
        torch.manual_seed(1)
        m = SNN({"arch": "12x12x2-n8c3-r8-r16s2-n10", "norm": "psp_bn", "steps": 25,
                 "block": block})
        m.checkpoint_blocks = ck
        m.train()
        outs = m.layer_spikes(x)
        sum(((o * torch.linspace(0, 1, o.numel()).view(o.shape)).sum() for o in outs)).backward()
        res.append((torch.cat([o.detach().flatten() for o in outs]),
                    [p.grad.clone() for p in m.parameters()], [b.clone() for b in m.buffers()]))
    (o0, g0, b0), (o1, g1, b1) = res
    assert o0.sum() > 100 and torch.equal(o0, o1)
    assert all(float(g.abs().max()) > 0 for g in g0)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))
    # running statistics tracked once per forward, not again in the recompute
    assert all(torch.equal(a, b) for a, b in zip(b0, b1))


def test_device_setting_is_checked_and_named(tmp_path):
    from psplava.errors import ConfigError
    from psplava.train.config import load_config
    from psplava.device import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG % ("psp_ln", 1))
    with pytest.raises(ConfigError, match="train.device"):
        load_config(cfg, ["train.device=gpu0"])
    assert load_config(cfg, ["train.device=cuda:1"])["train"]["device"] == "cuda:1"
    res = _psplava("train", "--config", str(cfg), "--out", str(tmp_path / "r"),
                   "--no-progress", "--device", "cpu", "--set", "train.workers=2")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["device"] == "cpu"
    ev = _psplava("evaluate", str(tmp_path / "r" / "best.pt"), "--split", "val", "--json",
                  "--device", "cpu")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout.strip().splitlines()[-1])["device"] == "cpu"


def test_loader_keeps_the_seeded_order_and_shifts():
    """The DataLoader (with workers) gives what the single-threaded loop gave: the same
    samples, the same random shifts, whatever the number of workers."""
    import numpy as np

    from psplava.data import make_dataset
    from psplava.train.loader import draw_shifts, make_loader, random_shift

    ds = make_dataset("digits", None, "train", steps=10, dt_ms=10.0, limit=30)
    order = np.random.default_rng(3).permutation(30)[:12]

    def legacy():  # the loop before the DataLoader: shifts drawn per sample, in order
        rng = np.random.default_rng(7)
        xs = []
        for i in order:
            x, _ = ds[int(i)]
            dy, dx = rng.integers(-2, 3, 2)
            xs.append(random_shift(x, int(dy), int(dx)))
        return np.stack(xs, axis=1)

    want = legacy()
    for workers in (0, 2):
        got = torch.cat([x for x, _ in make_loader(
            ds, order, 5, shifts=draw_shifts(12, 2, np.random.default_rng(7)),
            workers=workers)], dim=1)
        assert np.array_equal(got.numpy(), want)
    halves = [torch.cat([x for x, _ in make_loader(ds, order, 2, rank=r, world=2)], dim=1)
              for r in (0, 1)]
    assert halves[0].shape[1] == halves[1].shape[1] == 6
