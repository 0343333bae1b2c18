"""SRM neuron, PSP kernel and normalizations: exactness, gradients and a golden trajectory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from psplava.train import kernels
from psplava.train.neurons.cuba import CubaNeuron, cuba_spikes
from psplava.train.neurons.srm import (RefractoryKind, SRMNeuron, SRMParams, SurrogateForm, psp,
                                       srm_spike)
from psplava.train.norm import (MembraneNorm, NormKind, PSPNorm, causal_raw_moment_norm,
                                raw_moment_norm)


def _spikes(shape, p=0.1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).to(dtype)


# ----------------------------------------------------------------------------- PSP
def test_psp_equals_full_alpha_convolution():
    s = _spikes((400, 7), p=0.2)
    a = psp(s, tau_s=10.0).numpy()
    eps = kernels.alpha_kernel(10.0, 400)  # the full kernel, no truncation
    for f in range(7):
        ref = np.convolve(s[:, f].numpy(), eps)[:400]
        np.testing.assert_allclose(a[:, f], ref, rtol=1e-12, atol=1e-12)
    # Eq. 3 directly: eps(t) = t/tau exp(1 - t/tau) peaks at 1 when t = tau
    imp = torch.zeros(40, 1, dtype=torch.float64)
    imp[0] = 1
    out = psp(imp, 10.0)[:, 0].numpy()
    assert out[0] == 0 and out[10] == pytest.approx(1.0, abs=1e-12)
    assert out[7] == pytest.approx(0.7 * math.exp(0.3), abs=1e-12)


def test_psp_float32_matches_float64():
    s = _spikes((300, 50), p=0.3)
    np.testing.assert_allclose(psp(s.float(), 5.0).numpy(), psp(s, 5.0).numpy(), rtol=1e-5,
                               atol=1e-5)


def test_psp_gradcheck():
    s = torch.rand(30, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: psp(x, 3.0), (s,))


# ----------------------------------------------------------------------------- spikes
def _reference_srm(z: np.ndarray, p: SRMParams) -> tuple[np.ndarray, np.ndarray]:
    """Independent SRM: u(t) = z(t) + sum_{k=1..t} nu(k) s(t-k), direct convolution."""
    T = z.shape[0]
    nu = kernels.refractory_kernel(p.theta, p.tau_r, T + 1, p.refractory is RefractoryKind.ALPHA)
    s = np.zeros_like(z)
    u = np.zeros_like(z)
    for t in range(T):
        u[t] = z[t] + sum(nu[k] * s[t - k] for k in range(1, t + 1))
        s[t] = (u[t] >= p.theta).astype(z.dtype)
    return s, u


@pytest.mark.parametrize("kind", list(RefractoryKind))
def test_srm_spikes_match_direct_refractory_convolution(kind):
    p = SRMParams(refractory=kind)
    rng = np.random.default_rng(1)
    z = rng.normal(8.0, 8.0, (120, 6))
    s = srm_spike(torch.from_numpy(z), p).numpy()
    ref, _ = _reference_srm(z, p)
    np.testing.assert_array_equal(s, ref)
    assert 0 < s.mean() < 0.5


#: Golden trajectory: constant input z = 15 (theta = 10, tau_r = 10), paper refractory.
#: u(0) = 15 spikes; after a spike u drops by 2 theta e^{-k/tau_r}: the next spike comes
#: when 15 - 20 e^{-k/10} >= 10 (k >= 10 ln 4 = 13.9); at t = 31, 15 - 20 (e^-3.1 + e^-1.7)
#: = 10.44 while t = 30 gives 9.97; at t = 47, 15 - 20 (e^-4.7 + e^-3.3 + e^-1.6) = 10.04.
#: The alpha-shaped kernel is small at k = 1 (nu(1) = -4.92), so it fires twice at first.
GOLDEN_EXP_SPIKES = [0, 14, 31, 47, 64, 80, 97]
GOLDEN_ALPHA_SPIKES = [0, 1, 47, 85]


def test_golden_refractory_trajectory():
    z = torch.full((100, 1), 15.0, dtype=torch.float64)
    s_exp = srm_spike(z, SRMParams()).numpy()[:, 0]
    s_alpha = srm_spike(z, SRMParams(refractory="alpha")).numpy()[:, 0]
    assert np.flatnonzero(s_exp).tolist() == GOLDEN_EXP_SPIKES
    assert np.flatnonzero(s_alpha).tolist() == GOLDEN_ALPHA_SPIKES
    # the first inter-spike interval from the closed form
    assert GOLDEN_EXP_SPIKES[1] == math.ceil(10 * math.log(20 / 5))
    _, u = _reference_srm(z.numpy(), SRMParams())
    assert u[1, 0] == pytest.approx(15 - 20 * math.exp(-0.1))


def _surrogate_reference(z: torch.Tensor, p: SRMParams) -> torch.Tensor:
    """Pure-torch SRM whose autograd gives SLAYER's gradient: ds/du = rho(u) and the
    refractory feedback detached (straight-through form)."""
    tau_rho, scale_rho = p.surrogate.tau_scale(p.alpha, p.beta)
    nu = torch.from_numpy(kernels.refractory_kernel(
        p.theta, p.tau_r, z.shape[0] + 1, p.refractory is RefractoryKind.ALPHA)).to(z.dtype)
    out = []
    for t in range(z.shape[0]):
        r = sum((nu[k] * out[t - k].detach() for k in range(1, t + 1)), torch.zeros_like(z[0]))
        u = z[t] + r
        rho = scale_rho / (2 * tau_rho) * torch.exp(-(u - p.theta).abs() / tau_rho)
        out.append((u >= p.theta).to(z.dtype) + (u - u.detach()) * rho.detach())
    return torch.stack(out)


@pytest.mark.parametrize("form", list(SurrogateForm))
@pytest.mark.parametrize("kind", list(RefractoryKind))
def test_srm_gradient_float64(form, kind):
    p = SRMParams(refractory=kind, surrogate=form)
    z = (torch.randn(60, 4, 5, dtype=torch.float64) * 6 + 8).requires_grad_()
    g = torch.randn(60, 4, 5, dtype=torch.float64)
    (srm_spike(z, p) * g).sum().backward()
    z2 = z.detach().clone().requires_grad_()
    (_surrogate_reference(z2, p) * g).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad, rtol=1e-12, atol=1e-12)
    # rho at u = theta is 1/alpha in both forms (0.1 for Table 1)
    tau_rho, scale_rho = form.tau_scale(10.0, 10.0)
    assert scale_rho / (2 * tau_rho) == pytest.approx(0.1)


def test_lava_dl_neuron_surrogate_parameters():
    n = SRMNeuron(SRMParams())
    # lava-dl's rho = scale_rho / (2 tau_rho) exp(-|u - theta| / tau_rho) with
    # tau_rho = beta, scale_rho = 2 beta / alpha reproduces slayerPytorch's form.
    assert n.tau_rho == pytest.approx(10.0) and n.scale_rho == pytest.approx(2.0)
    assert n.threshold == 10.0 and n.device_params["type"] == "SRM"


def test_full_layer_gradient_matches_reference_autograd():
    """psp -> PSP-LN -> conv -> SRM: our fused backward passes against plain autograd."""
    torch.manual_seed(0)
    s = _spikes((40, 2, 6, 6, 3), p=0.2)
    w = (torch.randn(4, 3, 3, 3, dtype=torch.float64) * 6).requires_grad_()
    p = SRMParams()

    def ours(w):
        a = raw_moment_norm(psp(s, 10.0), (0, 2, 3, 4), 0.1)
        z = torch.nn.functional.conv2d(a.reshape(80, 6, 6, 3).permute(0, 3, 1, 2), w, padding=1)
        return srm_spike(z.permute(0, 2, 3, 1).reshape(40, 2, 6, 6, 4), p)

    def reference(w):
        eps = torch.from_numpy(kernels.alpha_kernel(10.0, 40))
        a = torch.stack([sum(eps[k] * s[t - k] for k in range(t + 1)) for t in range(40)])
        a = a / torch.sqrt(a.pow(2).mean(dim=(0, 2, 3, 4), keepdim=True) + 0.1)
        z = torch.nn.functional.conv2d(a.reshape(80, 6, 6, 3).permute(0, 3, 1, 2), w, padding=1)
        return _surrogate_reference(z.permute(0, 2, 3, 1).reshape(40, 2, 6, 6, 4), p)

    g = torch.randn(40, 2, 6, 6, 4, dtype=torch.float64)
    (ours(w) * g).sum().backward()
    w2 = w.detach().clone().requires_grad_()
    out_ref = reference(w2)
    (out_ref * g).sum().backward()
    assert out_ref.detach().sum() > 0
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- norms
def test_psp_norm_gradchecks():
    a = (torch.rand(8, 3, 4, 4, 2, dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: raw_moment_norm(x, (0, 1, 2, 3), 0.1), (a,))
    assert torch.autograd.gradcheck(lambda x: raw_moment_norm(x, (0, 2, 3, 4), 0.1), (a,))
    assert torch.autograd.gradcheck(lambda x: causal_raw_moment_norm(x, 0.1), (a,))


def test_psp_norm_statistics():
    a = torch.rand(10, 4, 5, 5, 3, dtype=torch.float64) * 3
    lam = 0.1
    bn = PSPNorm(NormKind.PSP_BN, 3, lam).double()
    out = bn(a)
    torch.testing.assert_close(out.pow(2).mean(dim=(0, 1, 2, 3)),
                               a.pow(2).mean(dim=(0, 1, 2, 3)) / (a.pow(2).mean(dim=(0, 1, 2, 3)) + lam))
    ln = PSPNorm(NormKind.PSP_LN, 3, lam)(a)
    m2 = a.pow(2).mean(dim=(0, 2, 3, 4))
    torch.testing.assert_close(ln.pow(2).mean(dim=(0, 2, 3, 4)), m2 / (m2 + lam))
    causal = PSPNorm(NormKind.CAUSAL_PSP_LN, 3, lam)(a)
    torch.testing.assert_close(causal[-1], ln[-1])  # at t = T-1 the statistics coincide
    m2_0 = a[0].pow(2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(causal[0], a[0] / torch.sqrt(m2_0 + lam).view(4, 1, 1, 1))
    # PSP-BN inference uses the running second moment
    bn.eval()
    torch.testing.assert_close(bn(a), a * bn.scale())
    assert not torch.allclose(bn.running_m2, torch.ones(3, dtype=torch.float64))


def test_bntt_equals_per_step_batchnorm():
    z = torch.randn(5, 6, 4, 4, 3)
    m = MembraneNorm(NormKind.BNTT, 3, steps=5)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    out = m(z)
    for t in range(5):
        bn = torch.nn.BatchNorm2d(3)
        with torch.no_grad():
            bn.weight.copy_(m.weight[t])
            bn.bias.copy_(m.bias[t])
        ref = bn(z[t].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        torch.testing.assert_close(out[t], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m.running_mean[t], bn.running_mean)
        torch.testing.assert_close(m.running_var[t], bn.running_var)


def test_bn_and_tdbn():
    z = torch.randn(5, 6, 4, 4, 3) * 4 + 2
    bn = MembraneNorm(NormKind.BN, 3, steps=5)
    td = MembraneNorm(NormKind.TDBN, 3, steps=5, theta=10.0)
    ref = torch.nn.BatchNorm2d(3)(z.reshape(30, 4, 4, 3).permute(0, 3, 1, 2))
    torch.testing.assert_close(bn(z), ref.permute(0, 2, 3, 1).reshape(z.shape), rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(td(z), 10.0 * bn(z))


def test_cuba_neuron_is_lava_dl():
    from psplava.lavadl import slayer

    x = torch.rand(30, 2, 4, 4, 3) * 0.5
    ours = CubaNeuron()(x)
    ref = slayer.neuron.cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03,
                                    tau_grad=0.03, scale_grad=3.0)(x.permute(1, 4, 2, 3, 0))
    torch.testing.assert_close(ours, ref.permute(4, 0, 2, 3, 1))
    assert ours.sum() > 0


def test_cuba_loihi_forward_has_lava_dl_gradient():
    """The loihi CUBA forward's spikes and input gradients equal lava-dl's float CUBA
    neuron (the oracle here) on inputs on the 1/64 grid: guards the surrogate's width and
    height (lava-dl multiplies tau_rho by 100 and scale_rho by 0.1 inside ``spike()``)."""
    from psplava import loihi
    from psplava.train.neurons.cuba import CubaNeuron, CubaParams

    torch.manual_seed(0)
    n = CubaNeuron(CubaParams())
    T, N, C = 100, 4, 64
    xi = torch.round((torch.rand(T, N, C) < 0.1).double()
                     * torch.randn(T, N, C).double().abs() * 0.8 * 64)
    w = torch.randn(T, N, C).double()
    xf = (xi / 64).float().requires_grad_(True)
    sf = n(xf)
    (sf * w.float()).sum().backward()
    xq = xi.clone().requires_grad_(True)
    tau, scale = n.surrogate()
    sq = cuba_spikes(xq, None, n.hardware(64.0), 64.0 * 2 ** loihi.CUBA_SHIFT,
                               tau, scale)
    (sq * w).sum().backward()
    assert sf.sum() > 100 and torch.equal(sf.double(), sq)
    g_ref, g = xf.grad.double().flatten(), xq.grad.flatten() * 64
    assert torch.nn.functional.cosine_similarity(g_ref, g, dim=0) > 0.999
    assert abs(g.norm() / g_ref.norm() - 1) < 0.01
