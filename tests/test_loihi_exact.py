"""Deploy exactly what was trained: the PyTorch model in loihi arithmetic, the exported
file in the reference engine and in Lava, and an independent oracle agree spike for spike.

Golden integer trajectories (tests/data/golden_*.npz) were computed by tests/oracle.py, an
implementation written from docs/netfile.md that shares no code with psplava; they pin the
values, not only the agreement of two pieces of code that share an implementation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oracle import run as oracle_run
from psplava.netfile import read_netfile
from psplava.cli.pipeline import CheckpointReference
from psplava.sim.fixed import run_fixed

DATA = Path(__file__).resolve().parent / "data"
CASES = ["srm_causal", "srm_bn_alpha", "cuba_psp_bn",
         # beyond 8x8 nets: PSP-BN SRM with pooling, a residual network, a 24-bit wrap
         "srm_psp_bn_pool", "srm_residual", "srm_wrap"]


def _golden(case):
    g = np.load(DATA / f"golden_{case}.npz")
    layers = sorted(k for k in g.files if k.startswith("layer"))
    return g["x"], [g[k] for k in layers]


def _chw(o: np.ndarray) -> np.ndarray:
    """(T, N=1, H, W, C) or (T, 1, F) -> (T, n) in (C, H, W) order."""
    if o.ndim == 5:
        o = o.transpose(0, 1, 4, 2, 3)
    return o.reshape(o.shape[0], -1).astype(np.int8)


def _internal(x_tchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x_tchw.transpose(0, 2, 3, 1))[:, None]  # (T, 1, H, W, C)


@pytest.mark.parametrize("case", CASES)
def test_oracle_reproduces_golden(case):
    """Guards the oracle itself (and the checked-in file) against drift."""
    x, golden = _golden(case)
    for i, (a, b) in enumerate(zip(oracle_run(DATA / f"golden_{case}.net", x), golden)):
        assert np.array_equal(a, b), f"layer {i}"


@pytest.mark.parametrize("case", CASES)
def test_reference_engine_equals_golden(case):
    x, golden = _golden(case)
    outs = run_fixed(read_netfile(DATA / f"golden_{case}.net"), _internal(x))
    for i, (a, b) in enumerate(zip(outs, golden)):
        assert b.sum() > 20, "golden layer nearly silent: the comparison would prove little"
        mm = int((_chw(a) != b).sum())
        assert mm == 0, f"layer {i}: {mm} spikes differ from the oracle"


@pytest.mark.parametrize("case", CASES)
def test_pytorch_loihi_forward_equals_golden(case):
    """The checkpoint's own forward pass in loihi arithmetic equals the oracle run of its
    exported file (the checked-in export): fails if export and training disagree."""
    x, golden = _golden(case)
    ref = CheckpointReference(str(DATA / f"golden_{case}.pt"))
    xi = _internal(x).astype(np.float32)
    lag = ref.model.latency  # loihi_exact takes the input padded with the latency
    outs = ref.loihi_exact(np.concatenate([xi, np.zeros((lag, *xi.shape[1:]), xi.dtype)]))
    for i, (a, b) in enumerate(zip(outs, golden)):
        mm = int((_chw(a[:b.shape[0]]) != b).sum())
        assert mm == 0, f"layer {i}: {mm} spikes differ from the oracle"


@pytest.mark.parametrize("case", CASES)
def test_export_of_checkpoint_equals_checked_in_file(case, tmp_path):
    """Exporting the golden checkpoint again gives the same integers as the checked-in file
    (weights, thresholds, decays): the exporter's values are pinned too."""
    from psplava.export.exporter import export_checkpoint

    out = tmp_path / "again.net"
    export_checkpoint(DATA / f"golden_{case}.pt", out)
    a, b = read_netfile(out), read_netfile(DATA / f"golden_{case}.net")
    for la, lb in zip(a.layers, b.layers):
        if la.weight is not None:
            assert np.array_equal(la.weight, lb.weight), f"layer {la.index} weights"
        assert la.neuron == lb.neuron, f"layer {la.index} neuron"
        assert (la.bias is None) == (lb.bias is None)
        if la.bias is not None:
            assert np.array_equal(la.bias, lb.bias)


@pytest.mark.parametrize("case", CASES)
def test_lava_equals_golden(case):
    from psplava.sim.fixed import internal_to_lava, lava_layer_to_internal
    from psplava.sim.lava_engine import run_lava

    x, golden = _golden(case)
    outs = run_lava(DATA / f"golden_{case}.net", internal_to_lava(_internal(x))[0])
    for i, (a, b) in enumerate(zip(outs, golden)):
        mm = int((_chw(lava_layer_to_internal(a)) != b).sum())
        assert mm == 0, f"layer {i}: {mm} spikes differ from the oracle"


def test_loihi_training_step_has_float_like_gradients():
    """Straight-through weights, integer PSP adjoint and the surrogate give gradients close
    to float training's on the same weights (cosine > 0.9 per layer)."""
    from psplava.train.model import SNN

    x = (torch.rand(40, 2, 34, 34, 2, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    grads = {}
    for ar in ("float", "loihi"):
        torch.manual_seed(1)
        m = SNN({"arch": "34x34x2-n8c3s2-n16c3s2-n10", "norm": "causal_psp_ln", "steps": 40,
                 "arithmetic": ar, "init_gain": 1.5})
        m.eval()
        m(x).sum().backward()
        grads[ar] = [layer.weight.grad.flatten() for layer in m.layers]
    for i, (a, b) in enumerate(zip(grads["float"], grads["loihi"])):
        cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        assert cos > 0.9, f"layer {i}: cosine {cos:.3f}"


def test_export_equals_checkpoint_forward_on_real_recordings(tmp_path, nmnist_root):
    """A fine-tuned-style check on real data: checkpoint (loihi) vs its export in the
    reference engine, 0 mismatches in every layer; the exporter's values are guarded."""
    from psplava.export.exporter import export_checkpoint
    from psplava.cli.pipeline import simulate_dataset
    from psplava.train.config import DEFAULTS, deep_merge
    from psplava.train.model import SNN
    from psplava.train.checkpoint import save_checkpoint

    for neuron, norm in (("srm", "psp_bn"), ("srm", "none")):
        torch.manual_seed(0)
        arch = "34x34x2-n8c3s2-n12c3s2-n10" if norm != "none" else "34x34x2-8c3s2-12c3s2-10"
        spec = {"arch": arch, "neuron": neuron, "norm": norm, "steps": 60, "init_gain": 2.0,
                "arithmetic": "loihi"}
        model = SNN(spec)
        cfg = deep_merge(DEFAULTS, {"model": spec, "data": {
            "dataset": "nmnist", "root": str(nmnist_root), "steps": 60, "dt_ms": 5.0,
            "val_count": 100}})
        ckpt = tmp_path / f"{norm}.pt"
        save_checkpoint(ckpt, model, cfg)
        net = tmp_path / f"{norm}.net"
        export_checkpoint(ckpt, net)
        res = simulate_dataset(str(net), None, None, "val", limit=4, engine="reference",
                               compare=str(ckpt))
        mm = res["mismatches"]["loihi_exact"]
        assert mm == [0, 0, 0], f"{norm}: {mm}"
        assert min(res["spikes_per_layer"]) > 0, res["spikes_per_layer"]
