"""Folding identities: without quantization the folded network equals the normalized one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import math

import torch.nn.functional as F

from psplava.train import kernels
from psplava.train.deployed import FoldError
from psplava.train.model import SNN


def fold_model(model: SNN) -> list[dict]:
    """Every layer's folded float form (``SpikingLayer.folded``) with what the oracle needs."""
    out, shape = [], model.input_shape
    with torch.no_grad():
        for layer in model.layers:
            f = layer.folded()
            out.append({"kind": layer.spec.kind, "weight": f.weight, "bias": f.bias,
                        "lam": f.dynamic,
                        "stride": layer.spec.stride, "padding": layer.spec.kernel // 2,
                        "out_shape": layer.out_shape, "p": layer.neuron.params})
            shape = layer.out_shape
    return out


def simulate_float(layers: list[dict], x: torch.Tensor) -> list[torch.Tensor]:
    """Float oracle of a folded SRM network, written in the folded form a chip evaluates:
    ``spike <=> z >= g (theta - r)``, ``g = sqrt(m2 + lambda)`` (Eq. 18) or 1, ``z = W' a + b``."""
    s, outs = x.double(), []
    for L in layers:
        p = L["p"]
        T, N = s.shape[:2]
        a = torch.from_numpy(kernels.alpha_filter(s.reshape(T, -1).numpy(), p.ps_decay_per_step,
                                                  p.psp_gain)).view(s.shape)
        gain = torch.ones(T, N, dtype=torch.float64)
        if L["lam"] is not None:   # a DynamicThreshold: lambda and an optional prior
            d = L["lam"]
            m2 = a.square().reshape(T, N, -1).mean(dim=2).cumsum(dim=0) + d.prior_steps * d.prior
            steps = torch.arange(1, T + 1, dtype=a.dtype)[:, None] + d.prior_steps
            gain = torch.sqrt(m2 / steps + d.lam)
        if L["kind"] == "conv":
            z = F.conv2d(a.reshape(T * N, *a.shape[2:]).permute(0, 3, 1, 2), L["weight"],
                         stride=L["stride"], padding=L["padding"])
            z = z.permute(0, 2, 3, 1).reshape(T, N, *L["out_shape"])
        else:
            z = a.reshape(T, N, -1) @ L["weight"].t()
        if L["bias"] is not None:
            z = z + L["bias"]
        z = z.reshape(T, N, -1)
        d = math.exp(-1.0 / p.tau_r)
        alpha = p.refractory.value == "alpha"
        ref_gain = -2.0 * p.theta * (math.e / p.tau_r if alpha else 1.0)
        out = torch.zeros_like(z)
        rx = torch.zeros_like(z[0])
        ry = torch.zeros_like(z[0])
        for t in range(T):
            if t > 0:
                if alpha:
                    rx, ry = d * (rx + out[t - 1]), d * (ry + rx + out[t - 1])
                else:
                    ry = d * (ry + out[t - 1])
            out[t] = (z[t] >= gain[t][:, None] * (p.theta - ref_gain * ry)).double()
        s = out.view(T, N, *L["out_shape"])
        outs.append(s)
    return outs

ARCHS = {
    "psp": "34x34x2-n6c3s2-n8c3-n8c3s2-n10",
    "mem": "34x34x2-6c3s2n-8c3n-8c3s2n-10",
    "none": "34x34x2-6c3s2-8c3-8c3s2-10",
}


def _model(norm: str, refractory: str = "exp") -> SNN:
    norm, _, prior = norm.partition("+")   # "+prior": causal PSP-LN's prior (8 steps)
    arch = ARCHS["psp" if norm.startswith(("psp", "causal")) else
                 "mem" if norm in ("bn", "tdbn", "bntt") else "none"]
    torch.manual_seed(1)
    m = SNN({"arch": arch, "norm": norm, "steps": 60, "init_gain": 1.5,
             "srm": {"refractory": refractory}, "prior_steps": 8.0 if prior else 0.0}).double()
    # non-trivial statistics: one training-mode pass, then randomised affine parameters
    x = (torch.rand(60, 3, 34, 34, 2, dtype=torch.float64) < 0.08).double()
    m.train()
    with torch.no_grad():
        m(x)
        for layer in m.layers:
            if layer.post is not None:
                layer.post.weight.uniform_(0.7, 1.3)
                layer.post.bias.uniform_(-0.2, 0.2)
    m.eval()
    return m


def _input(seed=5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(60, 4, 34, 34, 2, generator=g, dtype=torch.float64) < 0.08).double()


def _layer_spikes(model: SNN, x: torch.Tensor) -> list[torch.Tensor]:
    outs, s = [], x
    with torch.no_grad():
        for layer in model.layers:
            s = layer(s)
            outs.append(s)
    return outs


@pytest.mark.parametrize("norm", ["psp_bn", "causal_psp_ln", "causal_psp_ln+prior", "bn",
                                  "tdbn", "none"])
@pytest.mark.parametrize("refractory", ["exp", "alpha"])
def test_folded_network_equals_normalized(norm, refractory):
    model = _model(norm, refractory)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = fold_model(model)
    x = _input()
    ours = simulate_float(layers, x)
    ref = _layer_spikes(model, x)
    total = 0
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape
        mismatches = int((a != b).sum())
        assert mismatches == 0, f"layer {i}: {mismatches} mismatches"
        total += int(b.sum())
    assert total > 100  # the comparison is not between silent networks
    for k, v in model.state_dict().items():  # export never mutates the model
        assert torch.equal(v, before[k])


def test_fold_refuses_whole_window_psp_ln_and_bntt():
    with pytest.raises(FoldError, match="causal_psp_ln"):
        fold_model(_model("psp_ln"))
    with pytest.raises(FoldError, match="BNTT"):
        fold_model(_model("bntt"))


def test_psp_bn_folds_into_weights_per_input_channel():
    model = _model("psp_bn")
    layers = fold_model(model)
    s = model.layers[1].pre.scale().numpy()
    np.testing.assert_allclose(layers[1]["weight"].numpy(),
                               model.layers[1].weight.detach().numpy() * s[None, :, None, None])
    s_dense = model.layers[3].pre.scale().numpy()
    assert s_dense.shape == (9 * 9 * 8,)
    np.testing.assert_allclose(layers[3]["weight"].numpy(),
                               model.layers[3].weight.detach().numpy() * s_dense[None, :])
