"""``psplava deploy``: the Loihi 2 plan against hand counts, activity counts, the
missing-hardware exit, and the hardware path with a stand-in lava-loihi."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest

from psplava.cli import main
from psplava.deploy.plan import activity, conv_counts, estimate, plan
from psplava.export.exporter import export_checkpoint
from psplava.netfile import NetLayer, read_netfile, write_netfile

from test_export_netfile import _checkpoint


def _brute_conv(in_shape, weight, out_shape, stride, pad):
    """Every connection of a conv, enumerated: (synapses, max fan-in, max fan-out)."""
    c, h, w = in_shape
    o, _, k, _ = weight.shape
    fan_in = np.zeros(out_shape, dtype=int)
    fan_out = np.zeros(in_shape, dtype=int)
    for oo in range(o):
        for y in range(out_shape[1]):
            for x in range(out_shape[2]):
                for cc in range(c):
                    for dy in range(k):
                        for dx in range(k):
                            iy, ix = y * stride - pad + dy, x * stride - pad + dx
                            if 0 <= iy < h and 0 <= ix < w:
                                fan_in[oo, y, x] += 1
                                fan_out[cc, iy, ix] += 1
    return int(fan_in.sum()), int(fan_in.max()), int(fan_out.max())


@pytest.mark.parametrize("in_shape, k, stride, pad, out", [
    ((1, 4, 4), 3, 1, 1, 2), ((3, 7, 5), 3, 2, 1, 4), ((2, 6, 6), 5, 1, 0, 3),
    ((2, 5, 5), 1, 2, 0, 3)])
def test_conv_counts_equal_enumeration(in_shape, k, stride, pad, out):
    w = np.ones((out, in_shape[0], k, k), dtype=np.int32)
    oh = (in_shape[1] + 2 * pad - k) // stride + 1
    ow = (in_shape[2] + 2 * pad - k) // stride + 1
    syn, fan_in, fo = conv_counts(in_shape, w, (out, oh, ow), (stride, stride), (pad, pad))
    assert (syn, fan_in, int(fo.max())) == _brute_conv(in_shape, w, (out, oh, ow), stride, pad)


def _small_file(tmp_path, weight_max=254):
    rng = np.random.default_rng(0)
    cuba = {"type": "CUBA", "iDecay": 1024, "vDecay": 128, "vThMant": 80, "refDelay": 1,
            "gradedSpike": False}
    w1 = (rng.integers(-64, 64, (2, 1, 3, 3)) * 2).astype(np.int32)
    w1[0, 0, 0, 0] = weight_max
    layers = [NetLayer(0, "input", (1, 4, 4)),
              NetLayer(1, "conv", (2, 4, 4), weight=w1, stride=(1, 1), padding=(1, 1),
                       neuron=cuba),
              NetLayer(2, "flatten", (32,)),
              NetLayer(3, "dense", (3,), weight=(rng.integers(-20, 20, (3, 32)) * 2)
                       .astype(np.int32), neuron=cuba)]
    path = tmp_path / "small.net"
    write_netfile(path, layers, {})
    return path


def test_plan_equals_hand_counts(tmp_path):
    """conv 1x4x4 -> 2x4x4 (3x3, pad 1): per axis 2+3+3+2 = 10 taps inside, so
    2 * 1 * 10 * 10 = 200 synapses, fan-in 9, fan-out 2 * 3 * 3 = 18; dense 32 -> 3: 96
    synapses, fan-in 32, the conv's neurons fan out to 3."""
    p = plan(read_netfile(_small_file(tmp_path)))
    conv, dense = p["layers"]
    assert (conv["neurons"], conv["synapses"], conv["fan_in"], conv["fan_out"]) == \
        (32, 200, 9, 3)
    assert (dense["neurons"], dense["synapses"], dense["fan_in"], dense["fan_out"]) == \
        (3, 96, 32, 0)
    # weights up to 254 = 127 * 2: an 8-bit mantissa (the factor 2 is the exponent)
    assert conv["weight_bits"] == 8 and conv["synaptic_memory_bytes"] == 200
    assert (p["neurons"], p["synapses"], p["cores"], p["chips"]) == (35, 296, 2, 1)
    assert p["fits_one_chip"] and p["input_neurons"] == 16
    # the fan-out of the input into the conv: 18 (hand count above)
    from psplava.deploy.plan import fanout_maps

    assert int(fanout_maps(read_netfile(_small_file(tmp_path)))[0].max()) == 18


def test_plan_partitions_under_core_limits(tmp_path):
    net = read_netfile(_small_file(tmp_path))
    p = plan(net, {"neurons_per_core": 10, "synaptic_memory_bytes": 1 << 20})
    assert [r["cores"] for r in p["layers"]] == [4, 1]       # ceil(32 / 10), 3 neurons
    p = plan(net, {"synaptic_memory_bytes": 64, "cores_per_chip": 4})
    assert [r["cores"] for r in p["layers"]] == [4, 2]       # ceil(200 / 64), ceil(96 / 64)
    assert p["chips"] == 2 and not p["fits_one_chip"]


def test_activity_counts_spikes_and_synops(tmp_path):
    """CUBA: a synaptic op is a spike arriving at a synapse: the input's synops are its
    spikes times each pixel's fan-out (18 inside, fewer at the border)."""
    net = read_netfile(_small_file(tmp_path))
    rng = np.random.default_rng(1)
    xs = (rng.random((12, 2, 4, 4, 1)) < 0.3).astype(np.int8)
    act = activity(net, xs)
    fan = np.array([2, 3, 3, 2])
    per_pixel = 2 * np.outer(fan, fan)            # fan-out of each input pixel
    expected = float((xs[..., 0].sum(axis=(0, 1)) * per_pixel).sum()) / 2
    rows = {r["index"]: r for r in act["per_layer"]}
    assert rows[0]["synops"] == expected and rows[0]["spikes"] == xs.sum() / 2
    conv_spikes = act["outputs"][0].sum() / 2
    assert rows[1]["spikes"] == conv_spikes and rows[1]["synops"] == conv_spikes * 3
    e = estimate(plan(net), act)
    assert e["synops_per_sample"] == expected + conv_spikes * 3
    assert e["ann_macs_per_sample"] == 296 and e["energy_uj_per_sample"] > 0


def test_deploy_plan_cli(tmp_path, capsys):
    path = _small_file(tmp_path)
    assert main(["deploy", str(path), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "neurocores" in out and "fits one chip: yes" in out
    res = json.loads(out.strip().splitlines()[-1])
    assert res["plan"]["synapses"] == 296


def test_missing_lava_loihi_is_exit_3_and_one_line(tmp_path, capsys):
    path = _small_file(tmp_path)
    assert main(["deploy", str(path), "--target", "loihi2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lava-loihi" in err[0] and "--target sim" in err[0]


@pytest.fixture
def standin_lava_loihi(monkeypatch):
    """Inject the stand-in as lava-loihi's modules (found by ``is_installed()``)."""
    import standin_lava_loihi.embedded_io as eio_pkg
    import standin_lava_loihi.embedded_io.spike as spike

    prof = types.ModuleType("lava.utils.loihi2_profiler")
    prof.__spec__ = importlib.machinery.ModuleSpec("lava.utils.loihi2_profiler", None)
    monkeypatch.setitem(sys.modules, "lava.utils.loihi2_profiler", prof)
    monkeypatch.setitem(sys.modules, "lava.proc.embedded_io", eio_pkg)
    monkeypatch.setitem(sys.modules, "lava.proc.embedded_io.spike", spike)
    # lava-nc's run configs import lava-loihi's C process-model base when it is installed
    # (without it, Loihi2HwCfg cannot even order models: NameError)
    from lava.magma.core import run_configs

    monkeypatch.setattr(run_configs, "CLoihiProcessModel",
                        type("CLoihiProcessModel", (), {}), raising=False)
    return spike


def test_hardware_path_with_a_standin_lava_loihi(tmp_path, standin_lava_loihi):
    """With lava-loihi 'installed', --target loihi2 builds netx's network behind the
    embedded adapters and runs it with Loihi2HwCfg: its spikes equal the reference engine's
    (the stand-in's adapters pass spikes through; Lava's CPU models run the network)."""
    from psplava.deploy.loihi2 import lava_loihi_installed, run_loihi2
    from psplava.sim.fixed import internal_to_lava, run_fixed

    assert lava_loihi_installed()
    ckpt, _ = _checkpoint(tmp_path, "cuba", "psp_bn", init_gain=2.0)
    path = tmp_path / "cuba.net"
    export_checkpoint(ckpt, path)
    net = read_netfile(path)
    rng = np.random.default_rng(2)
    steps = 30
    xs = (rng.random((steps, 2, 34, 34, 2)) < 0.15).astype(np.int8)
    ref = internal_to_lava(run_fixed(net, xs)[-1])
    outs = run_loihi2(str(path), internal_to_lava(xs), steps)
    assert ref.sum() > 0
    for o, r in zip(outs, ref):
        assert np.array_equal(np.asarray(o).reshape(r.shape) != 0, r)


def test_srm_layers_are_refused_before_compiling(tmp_path, capsys, standin_lava_loihi):
    ckpt, _ = _checkpoint(tmp_path, "srm", "psp_bn", init_gain=2.0)
    path = tmp_path / "srm.net"
    export_checkpoint(ckpt, path)
    assert main(["deploy", str(path), "--target", "loihi2", "--dataset", "digits",
                 "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert "layer/1 (SRM neuron)" in err and "--init-from SRM_CKPT" in err and "model.neuron: cuba" in err
    assert len(err.strip().splitlines()) == 1


def test_srm_file_refused_before_the_missing_hardware(tmp_path, capsys):
    """Without lava-loihi an SRM file still hears first what the file needs (exit 2, the
    conversion offered), not only that the chip is missing."""
    ckpt, _ = _checkpoint(tmp_path, "srm", "none", init_gain=2.0)
    path = tmp_path / "srm.net"
    export_checkpoint(ckpt, path)
    assert main(["deploy", str(path), "--target", "loihi2"]) == 2
    err = capsys.readouterr().err
    assert "SRM neuron" in err and "--init-from" in err and "lava-loihi" not in err


def test_target_sim_runs_the_file_in_lava(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, "cuba", "psp_bn", init_gain=2.0)
    path = tmp_path / "cuba.net"
    export_checkpoint(ckpt, path)
    assert main(["deploy", str(path), "--target", "sim", "--split", "test", "--limit", "2",
                 "--steps", "20"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["target"]["target"] == "sim" and res["target"]["samples"] == 2
    assert 0.0 <= res["target"]["accuracy"] <= 1.0
