"""Residual networks (the paper's Fig. 3): grammar, float equations, loihi arithmetic,
the format-3 ``skip`` inputs, and the file against an independent oracle, the reference
engine and Lava."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from psplava.errors import ConfigError
from psplava.export.exporter import export_checkpoint
from psplava.netfile import NetFileError, read_netfile
from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
from psplava.train.arch import parse_arch, resnet_arch
from psplava.train.config import DEFAULTS, deep_merge
from psplava.train.deployed import FoldError
from psplava.train.model import SNN
from psplava.train.neurons.srm import psp, srm_spike
from psplava.train.checkpoint import save_checkpoint

from oracle import run as oracle_run
from conftest import as_older_format

TINY = "10x10x2-n3c3-r3-r4s2-r4-n5"


def _ckpt(tmp_path, arch=TINY, block="pre", norm="psp_bn", steps=20, seed=0, init_gain=2.0):
    torch.manual_seed(seed)
    spec = {"arch": arch, "neuron": "srm", "norm": norm, "steps": steps,
            "init_gain": init_gain, "block": block}
    model = SNN(spec)
    model.train()
    with torch.no_grad():   # PSP-BN statistics from one training-mode pass
        model((torch.rand(steps, 2, *model.input_shape) < 0.15).float())
    cfg = deep_merge(DEFAULTS, {"model": spec, "data": {"steps": steps, "dt_ms": 1.0,
                                                          "dataset": "digits", "root": None}})
    path = tmp_path / f"{block}_{norm}.pt"
    save_checkpoint(path, model, cfg)
    return path, model


def _input(shape, steps, seed=3, p=0.15):
    rng = np.random.default_rng(seed)
    return (rng.random((steps, 1, *shape)) < p).astype(np.int8)


def test_resnet_depths():
    for depth, blocks in ((106, 52), (42, 20), (26, 12), (6, 2)):
        _, layers = parse_arch(resnet_arch(depth))
        assert len(layers) == depth
        assert sum(layer.block == "second" for layer in layers) == blocks
    with pytest.raises(ConfigError, match="4 n \\+ 2"):
        resnet_arch(20)


@pytest.mark.parametrize("spec, message", [
    ({"arch": "10x10x2-r3-n5"}, "needs a layer before it"),
    ({"arch": TINY, "neuron": "cuba"}, "SRM neurons"),
    ({"arch": "10x10x2-3c3n-r3-n5", "norm": "bn"}, "PSP normalization"),
    ({"arch": TINY, "block": "middle"}, "block must be"),
])
def test_residual_configs_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        SNN({"norm": "psp_bn", **spec})


def test_pre_activation_stream_adds_membranes():
    """h_{k+1} = h_k + G(h_k): with every block's second conv at 0, G = 0 and each stream
    layer gets the same membrane input as the one before it, so it spikes the same."""
    torch.manual_seed(0)
    m = SNN({"arch": "10x10x2-n3c3-{r3}*3-n5", "norm": "none", "block": "pre",
             "init_gain": 3.0})
    with torch.no_grad():
        for layer in m.layers:
            if layer.spec.block == "second":
                layer.weight.zero_()
        out = m.layer_spikes(torch.from_numpy(_input((10, 10, 2), 30)).float())
    stream = [out[0], out[2], out[4], out[6]]
    assert stream[0].sum() > 0
    for s in stream[1:]:
        assert torch.equal(s, stream[0])
    m.layers[2].weight.data.fill_(0.5)   # the guard: G != 0 changes the stream
    with torch.no_grad():
        assert not torch.equal(m.layer_spikes(torch.from_numpy(_input((10, 10, 2), 30))
                                              .float())[2], stream[0])


def test_post_activation_adds_the_normalized_input():
    """x_{k+1} = F(h_k + G(h_k)): with G's second conv at 0 and no norm, the block's output
    neurons are driven by the PSP of the block input (identity shortcut) alone."""
    torch.manual_seed(0)
    m = SNN({"arch": "10x10x2-n3c3-r3-n5", "norm": "none", "block": "post", "init_gain": 3.0})
    with torch.no_grad():
        m.layers[2].weight.zero_()
        out = m.layer_spikes(torch.from_numpy(_input((10, 10, 2), 30)).float())
        params = m.layers[2].neuron.params
        expected = srm_spike(psp(out[0], params.tau_s), params)
    assert out[0].sum() > 0
    assert torch.equal(out[2], expected)


@pytest.mark.parametrize("block", ["pre", "post"])
def test_residual_file_equals_oracle_model_reference_and_lava(tmp_path, block):
    """The exported file (format 3 skips) against an oracle that shares no code, the
    checkpoint's loihi arithmetic and the reference engine: 0 mismatches in every layer;
    Lava equal to the reference engine."""
    from psplava.cli.pipeline import CheckpointReference
    from psplava.sim.lava_engine import run_lava

    # post-activation nets fall silent with depth (the paper's point): a larger init keeps
    # this tiny one firing to its output
    ckpt, _ = _ckpt(tmp_path, block=block, init_gain=2.0 if block == "pre" else 4.0)
    path = tmp_path / f"{block}.net"
    export_checkpoint(ckpt, path)
    net = read_netfile(path)
    modes = [s.mode.value for layer in net.layers for s in layer.skips]
    assert modes == (["membrane", "conv", "membrane"] if block == "pre" else ["conv"] * 3)
    x = _input((10, 10, 2), 24, p=0.15 if block == "pre" else 0.3)
    ref = run_fixed(net, x)
    exact = CheckpointReference(str(ckpt)).loihi_exact(x)
    orc = oracle_run(path, x[:, 0].transpose(0, 3, 1, 2))
    for i, (r, e, o) in enumerate(zip(ref, exact, orc)):
        assert r.sum() > 0, f"layer {i} is silent"
        assert int((r != e).sum()) == 0, f"layer {i}: reference vs loihi model"
        flat = r[:, 0].transpose(0, 3, 1, 2).reshape(r.shape[0], -1) if r.ndim == 5 \
            else r[:, 0]
        assert int((flat != o).sum()) == 0, f"layer {i}: reference vs oracle"
    lava = run_lava(path, internal_to_lava(x)[0])
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert int((a != internal_to_lava(b)[0]).sum()) == 0, f"layer {i}: Lava"


def test_a_dropped_skip_changes_the_spikes(tmp_path):
    """The guard for the tests above: a file without its skips computes something else."""
    ckpt, _ = _ckpt(tmp_path)
    path = tmp_path / "pre.net"
    export_checkpoint(ckpt, path)
    x = _input((10, 10, 2), 24)
    full = run_fixed(read_netfile(path), x)
    with h5py.File(path, "a") as f:
        del f["layer/3/skip"]
    cut = run_fixed(read_netfile(path), x)
    assert int((full[2] != cut[2]).sum()) > 0


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["layer/3/skip/0/source"].write_direct(np.array(5)), "earlier"),
    (lambda f: (f["layer/3/skip/0"].__delitem__("mode"),
                f["layer/3/skip/0"].create_dataset("mode", data="sum")), "mode"),
    (lambda f: as_older_format(f, 2), "format 3"),
    (lambda f: f["layer/7/skip/0/source"].write_direct(np.array(1)), "same shape"),
])
def test_bad_skips_are_one_clear_error(tmp_path, edit, message):
    ckpt, _ = _ckpt(tmp_path)
    path = tmp_path / "pre.net"
    export_checkpoint(ckpt, path)
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(NetFileError, match=message):
        read_netfile(path)


def test_residual_causal_psp_ln_is_refused_at_export(tmp_path):
    ckpt, _ = _ckpt(tmp_path, norm="causal_psp_ln")
    with pytest.raises(FoldError, match="psp_bn or none"):
        export_checkpoint(ckpt, tmp_path / "x.net")


def test_average_pooling_into_dense_exports_exactly(tmp_path):
    """Average pooling folds into the dense synapse (sum pooling, weights / K^2): the file
    computes what the loihi model does; max pooling is refused by name."""
    from psplava.cli.pipeline import CheckpointReference

    ckpt, model = _ckpt(tmp_path, arch="10x10x2-n3c3-ap3-n5", block="pre")
    path = tmp_path / "pool.net"
    export_checkpoint(ckpt, path)
    x = _input((10, 10, 2), 24)
    ref = run_fixed(read_netfile(path), x)
    exact = CheckpointReference(str(ckpt)).loihi_exact(x)
    assert [int((a != b).sum()) for a, b in zip(ref, exact)] == [0, 0]
    assert ref[-1].sum() > 0
    # float pooling really averages 3x3 windows (the 10th row/column is dropped)
    a = torch.rand(2, 1, 10, 10, 3)
    pooled = model.layers[1]._pool(a)
    assert pooled.shape == (2, 1, 3, 3, 3)
    assert torch.allclose(pooled[0, 0, 1, 2], a[0, 0, 3:6, 6:9].mean(dim=(0, 1)))
    ckpt2, _ = _ckpt(tmp_path, arch="10x10x2-n3c3-mp2-n5")
    with pytest.raises(FoldError, match="max pooling"):
        export_checkpoint(ckpt2, tmp_path / "max.net")


def test_table3_configs_build_resnet106():
    """The paper-scale Table 3 configs (PSP-BN / PSP-LN x pre / post x N-MNIST / F-MNIST)
    load and build 106-layer networks with the right blocks."""
    from pathlib import Path

    from psplava.train.config import load_config
    from psplava.train.checkpoint import model_spec

    root = Path(__file__).resolve().parent.parent / "configs" / "resnet"
    paths = sorted(root.glob("paper_*.yaml"))
    assert len(paths) == 8
    for path in paths:
        cfg = load_config(path)
        model = SNN(model_spec(cfg))
        assert len(model.layers) == 106, path
        shortcuts = {layer.shortcut for layer in model.layers if layer.shortcut}
        expected = {"membrane", "projection"} if cfg["model"]["block"] == "pre" else \
            {"identity", "projection"}
        assert shortcuts == expected, path


def test_inspect_lists_skips(tmp_path, capsys):
    import json

    from psplava.cli import main

    ckpt, _ = _ckpt(tmp_path)
    path = tmp_path / "pre.net"
    export_checkpoint(ckpt, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    assert res["format"] == 5
    assert res["layers"][3]["skips"] == [{"source": 1, "mode": "membrane"}]
    assert "skip(membrane of layer/1)" in out


@pytest.mark.parametrize("block", ["pre", "post"])
def test_shortcut_folding_against_the_float_model(tmp_path, block):
    """The deployed shortcut is the float shortcut with the block's PSP-BN scale and the
    alpha gain folded in, within the quantization step: identity -> diag(s_c e / tau_s),
    projection -> P s_c e / tau_s (computed here from the float parameters)."""
    import math

    _, model = _ckpt(tmp_path, block=block)
    hws = model.hardware()
    checked = 0
    for i, (layer, hw) in enumerate(zip(model.layers, hws)):
        if layer.shortcut not in ("identity", "projection"):
            continue
        pre = model.layers[i - 1].pre
        s = (1.0 / torch.sqrt(pre.running_m2.double() + pre.lam)).view(1, -1, 1, 1)
        gain = math.e / layer.neuron.params.tau_s
        if layer.shortcut == "identity":
            c = layer.out_shape[-1]
            expected = torch.eye(c, dtype=torch.float64).view(c, c, 1, 1) * s * gain
        else:
            expected = layer.proj.detach().double() * s * gain
        deployed = hw.short_weight.detach() / hw.scale
        assert float((deployed - expected).abs().max()) <= 1.0 / hw.scale + 1e-12
        assert float(expected.abs().max()) > 4.0 / hw.scale   # not lost in the rounding
        checked += 1
    assert checked == (1 if block == "pre" else 3)
