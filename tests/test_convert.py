"""SRM -> CUBA conversion (train/convert.py): the converted CUBA voltage equals the SRM
membrane input, checked against lava-dl's own CUBA dynamics (an independent
implementation); PSP-BN calibration; refusals; ``train --init-from`` across neuron types."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from lava.lib.dl.slayer.neuron import cuba as slayer_cuba

from psplava.errors import ConfigError
from psplava.train.config import DEFAULTS, deep_merge
from psplava.train.convert import cuba_weight_gain, matching_decay, srm_to_cuba
from psplava.train.model import SNN
from psplava.train.checkpoint import save_checkpoint

ARCH = "8x8x2-n4c3-n6c3s2-5"   # the last layer without the norm marker
TAU_S = 10.0


def _cuba_spec(norm: str, threshold: float = 1.25) -> dict:
    d = matching_decay(TAU_S)
    return {"arch": ARCH, "neuron": "cuba", "norm": norm, "steps": 30,
            "cuba": {"threshold": threshold, "current_decay": d, "voltage_decay": d}}


def _srm(norm: str, seed: int = 0) -> SNN:
    torch.manual_seed(seed)
    model = SNN({"arch": ARCH, "neuron": "srm", "norm": norm, "steps": 30, "init_gain": 2.0})
    if norm == "psp_bn":  # running statistics from one training-mode pass
        model.train()
        with torch.no_grad():
            model((torch.rand(30, 4, *model.input_shape) < 0.2).float())
    model.eval()
    return model


def _spikes(seed: int = 1, n: int = 3, p: float = 0.2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(30, n, 8, 8, 2, generator=g) < p).float()


def _lavadl_voltage(z: torch.Tensor, decay: float) -> torch.Tensor:
    """lava-dl's float CUBA voltage (no spikes: huge threshold) for input z (T, N, ..., C)."""
    neuron = slayer_cuba.Neuron(threshold=1e9, current_decay=decay, voltage_decay=decay,
                                persistent_state=False, requires_grad=False)
    nd = z.dim()
    to_slayer = (1, nd - 1, *range(2, nd - 1), 0)
    _, v = neuron.dynamics(z.permute(*to_slayer).contiguous().float())
    back = [0] * nd
    for i, j in enumerate(to_slayer):
        back[j] = i
    return v.permute(*back).double()


@pytest.mark.parametrize("threshold", [1.25, 10.0])
def test_cuba_voltage_equals_srm_membrane(threshold):
    """z_srm(t) * theta_c / theta == v_cuba(t - 1) by lava-dl's own CUBA dynamics, until the
    first spike (the refractory drop and the reset differ by design)."""
    src = _srm("none")
    dst = SNN(_cuba_spec("none", threshold))
    info = srm_to_cuba(src, dst)
    assert info.decays_match
    x = _spikes()
    with torch.no_grad():
        inputs = [x] + src.layer_spikes(x)[:-1]  # each layer fed the SRM's spikes
    for i in range(len(src.layers)):
        a, b = src.layers[i], dst.layers[i]
        with torch.no_grad():
            z = a.membrane(a.normalized_input(inputs[i])).double()
            zc = b.membrane(b.normalized_input(inputs[i]))
        v = _lavadl_voltage(zc, matching_decay(TAU_S))
        want = z[1:] * threshold / a.neuron.params.theta
        err = (v[:-1] - want).abs().max().item()
        # lava-dl quantizes the decay to 12 bits: ~0.1 % per step of the kernel
        assert err <= 0.01 * want.abs().max().item() + 1e-6, (i, err)
        if i == 0:  # the gain's q factor matters: without it the error is ~10 %
            bad = (v[:-1] / math.exp(-1 / TAU_S) - want).abs().max().item()
            assert bad > 5 * err


def test_psp_bn_conversion_calibrates_spike_statistics():
    src = _srm("psp_bn")
    dst = SNN(_cuba_spec("psp_bn"))
    x = _spikes(seed=5, n=6)
    info = srm_to_cuba(src, dst, calibration=lambda: x)
    assert info.calibrated
    # layer 0's CUBA norm sees the input spikes: mean square per channel, computed here
    rate = (x ** 2).mean(dim=(0, 1, 2, 3)).double()
    assert torch.allclose(dst.layers[0].pre.running_m2.double(), rate.to(torch.float32).double(),
                          rtol=1e-5)
    # eval-mode synapse: W_c / sqrt(m2_s + lam) == gain * W / sqrt(m2_a + lam)
    g = cuba_weight_gain(TAU_S, 10.0, 1.25)
    for a, b in zip(src.layers, dst.layers):
        if a.pre is None:
            assert b.pre is None
            assert torch.allclose(b.weight.double(), g * a.weight.double(), rtol=1e-6)
            continue
        shape = (1, -1, 1, 1) if a.spec.kind == "conv" else (1, -1)
        want = g * a.weight.double() * a.pre.scale().double().view(shape)
        got = b.weight.double() * b.pre.scale().double().view(shape)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("src_norm, dst_norm, arch, message", [
    ("psp_ln", "psp_ln", ARCH, "supports norm none and psp_bn"),
    ("none", "psp_bn", ARCH, "keeps the norm"),
    ("none", "none", "8x8x2-n4c3-n5", "architecture"),
])
def test_conversion_refusals(src_norm, dst_norm, arch, message):
    src = _srm(src_norm)
    spec = _cuba_spec(dst_norm)
    spec["arch"] = arch
    with pytest.raises(ConfigError, match=message):
        srm_to_cuba(src, SNN(spec), calibration=_spikes)


def test_pooled_layers_refused():
    arch = "8x8x2-n4c3-ap2-n5"
    src = SNN({"arch": arch, "neuron": "srm", "norm": "none", "steps": 30})
    dst = SNN({**_cuba_spec("none"), "arch": arch})
    with pytest.raises(ConfigError, match="pooled"):
        srm_to_cuba(src, dst)


def test_psp_bn_conversion_needs_calibration():
    with pytest.raises(ConfigError, match="calibration"):
        srm_to_cuba(_srm("psp_bn"), SNN(_cuba_spec("psp_bn")))


def test_train_init_from_converts_and_measures_start(tmp_path):
    """``psplava train --init-from`` an SRM checkpoint into a CUBA config: converted,
    start accuracy measured in start.json, one epoch of fine-tuning."""
    from psplava.cli import main

    spec = {"arch": "34x34x2-n4c3s2-n10", "neuron": "srm", "norm": "psp_bn", "steps": 20}
    data = {"dataset": "digits", "steps": 20, "val_count": 10, "train_limit": 40}
    src = SNN(spec)
    src.train()
    with torch.no_grad():
        src((torch.rand(20, 2, *src.input_shape) < 0.1).float())
    ckpt = tmp_path / "srm.pt"
    save_checkpoint(ckpt, src, deep_merge(DEFAULTS, {"model": spec, "data": data}))
    d = matching_decay(10.0)
    cfg = {"model": {**spec, "neuron": "cuba", "arithmetic": "loihi",
                     "cuba": {"threshold": 1.25, "current_decay": d, "voltage_decay": d}},
           "data": data,
           "train": {"epochs": 1, "batch_size": 10, "threads": 1, "init_from": str(ckpt)}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(out),
                 "--no-progress"]) == 0
    start = json.loads((out / "start.json").read_text())
    assert start["init_from"] == str(ckpt)
    assert start["val_samples"] == 10 and 0.0 <= start["val_accuracy"] <= 1.0
    assert start["conversion"]["calibrated"] and start["conversion"]["decays_match"]
    assert (out / "best.pt").is_file()
    # the other direction is refused with one line
    cfg["model"] = spec
    cfg["train"]["init_from"] = str(out / "best.pt")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "d.yaml"), "--out",
                 str(tmp_path / "run2"), "--no-progress"]) == 2
    assert np.isfinite(start["val_accuracy"])
