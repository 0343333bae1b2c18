"""The SRM neuron's GPU kernels (Triton) against the numba kernels and the one direct-sum
specification (:mod:`psplava.train.kernel_spec`), run without a GPU through Triton's
interpreter (``TRITON_INTERPRET=1``, set by ``conftest.py`` when no GPU is present).

Tolerances: float64 agrees with the numba kernels to 1e-12 relative (under the
interpreter the operations are the same, so bit for bit); float32 PSPs to 1e-6 relative
(numpy and numba round the same float32 operations alike; a GPU's fused multiply-adds
differ in the last bit), float32 rho to 1e-6 relative (float32 exp differs by an ulp);
spikes are equal wherever ``|u - theta|`` is not within float rounding of 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from psplava.train import kernel_spec, kernels, kernels_triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"
# on DEV: a CPU tensor is never usable on a GPU machine (compiled Triton needs CUDA tensors)
pytestmark = pytest.mark.skipif(not kernels_triton.usable(torch.zeros(1, device=DEV)),
                                reason="needs triton (torch's CUDA wheels) and a GPU or "
                                       "TRITON_INTERPRET=1")


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _spikes(T, F, p, seed=0, dtype=np.float64):
    return (np.random.default_rng(seed).random((T, F)) < p).astype(dtype)


def _nmnist_spikes(root, T=300, n=2):
    from psplava.data.events import Binning
    from psplava.data.nmnist import NMNIST

    ds = NMNIST(root, "train", Binning(1.0, T))
    return np.stack([ds[i][0] for i in range(n)], axis=1).reshape(T, -1).astype(np.float64)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T,F", [(1, 5), (17, 1), (50, 300), (300, 64)])
def test_alpha_filter_float64_equals_numba_and_spec(T, F, reverse):
    s = _spikes(T, F, 0.15, seed=T + F)
    q, gain = math.exp(-1 / 10.0), math.e / 10.0
    gpu = kernels_triton.alpha_filter(torch.from_numpy(s).to(DEV), q, gain, reverse).cpu()
    cpu = kernels.alpha_filter(s, q, gain, reverse)
    spec = (kernel_spec.psp_adjoint if reverse else kernel_spec.psp)(s, q, gain)
    assert gpu.dtype == torch.float64 and gpu.shape == (T, F)
    assert _rel(gpu, cpu) <= 1e-12
    assert _rel(gpu, spec) <= 1e-12 and _rel(cpu, spec) <= 1e-12


def test_alpha_filter_float32_and_real_nmnist(nmnist_root):
    s = _nmnist_spikes(nmnist_root, T=300, n=1)[:, ::7].copy()  # (300, 334) real spikes
    assert s.sum() > 100
    q, gain = math.exp(-1 / 5.0), math.e / 5.0
    for reverse in (False, True):
        gpu64 = kernels_triton.alpha_filter(torch.from_numpy(s).to(DEV), q, gain, reverse)
        assert _rel(gpu64.cpu(), kernels.alpha_filter(s, q, gain, reverse)) <= 1e-12
        s32 = s.astype(np.float32)
        gpu32 = kernels_triton.alpha_filter(torch.from_numpy(s32).to(DEV), q, gain, reverse)
        assert gpu32.dtype == torch.float32
        assert _rel(gpu32.cpu(), kernels.alpha_filter(s32, q, gain, reverse)) <= 1e-6
    spec = kernel_spec.psp(s[:, :40], q, gain)
    gpu = kernels_triton.alpha_filter(torch.from_numpy(s[:, :40].copy()).to(DEV), q, gain)
    assert _rel(gpu.cpu(), spec) <= 1e-12


@pytest.mark.parametrize("alpha_ref", [False, True])
@pytest.mark.parametrize("T,F", [(1, 3), (40, 200), (300, 32)])
def test_srm_spike_float64_equals_numba_and_spec(T, F, alpha_ref):
    z = np.random.default_rng(T * F).normal(8.0, 6.0, (T, F))
    theta, tau_r = 10.0, 10.0
    d = math.exp(-1 / tau_r)
    ref_gain = -2 * theta * (math.e / tau_r if alpha_ref else 1.0)
    args = (theta, d, alpha_ref, ref_gain, 10.0, 2.0)
    s_g, rho_g = kernels_triton.srm_spike(torch.from_numpy(z).to(DEV), *args)
    s_c, rho_c = kernels.srm_spike(z, *args)
    s_x, rho_x = kernel_spec.spike(z, *args)
    if T > 1:
        assert 0.02 < s_c.mean() < 0.6  # the refractory loop is exercised
    assert np.array_equal(s_g.cpu().numpy(), s_c) and np.array_equal(s_c, s_x)
    assert _rel(rho_g.cpu(), rho_c) <= 1e-12 and _rel(rho_c, rho_x) <= 1e-12


def test_srm_spike_float32_and_real_input(nmnist_root):
    """Membrane input from real N-MNIST PSPs through a random dense weight."""
    s = _nmnist_spikes(nmnist_root, T=300, n=1)
    a = kernels.alpha_filter(s, math.exp(-0.1), math.e / 10)
    w = np.random.default_rng(0).normal(0, 10 / math.sqrt(s.shape[1]) * 30, (s.shape[1], 48))
    z = a @ w
    args = (10.0, math.exp(-0.1), False, -20.0, 10.0, 2.0)
    s_g, rho_g = kernels_triton.srm_spike(torch.from_numpy(z).to(DEV), *args)
    s_c, rho_c = kernels.srm_spike(z, *args)
    assert s_c.sum() > 50
    assert np.array_equal(s_g.cpu().numpy(), s_c) and _rel(rho_g.cpu(), rho_c) <= 1e-12
    z32 = z.astype(np.float32)
    s_g, rho_g = kernels_triton.srm_spike(torch.from_numpy(z32).to(DEV), *args)
    s_c, rho_c = kernels.srm_spike(z32, *args)
    assert np.array_equal(s_g.cpu().numpy(), s_c) and _rel(rho_g.cpu(), rho_c) <= 1e-6


def test_residual_shapes_through_the_neuron(monkeypatch):
    """A (T, N, H, W, C) tensor of a residual block's shape, forward and backward, through
    the autograd functions with the Triton backend forced, equals the numba backend."""
    from psplava.train.neurons import srm as neuron

    p = neuron.SRMParams()
    x = torch.from_numpy(_spikes(60, 2 * 9 * 9 * 16, 0.1, seed=3)).view(60, 2, 9, 9, 16)
    w = torch.randn(16, 16, 3, 3, dtype=torch.float64) * 3

    def run(backend):
        monkeypatch.setattr(neuron, "KERNELS", backend)
        xs = x.clone().to(DEV if backend == "triton" else "cpu").requires_grad_(True)
        a = neuron.psp(xs, p.tau_s)
        z = torch.nn.functional.conv2d(a.reshape(-1, 9, 9, 16).permute(0, 3, 1, 2),
                                       w.to(xs.device), padding=1)
        z = z.permute(0, 2, 3, 1).reshape(x.shape) + 8.0
        s = neuron.srm_spike(z, p)
        (s * torch.arange(s.numel(), device=s.device).view(s.shape).remainder(7)).sum().backward()
        return s.detach().cpu(), xs.grad.cpu()

    s_n, g_n = run("numba")
    s_t, g_t = run("triton")
    assert s_n.sum() > 100
    assert torch.equal(s_n, s_t)
    assert _rel(g_t, g_n) <= 1e-12


def test_training_step_through_triton_equals_numba(monkeypatch):
    """One float training step of a small SRM + PSP-LN net: the same spikes and the same
    gradients with either backend.

    On a GPU, cuDNN's convolutions default to TF32 (10-bit mantissas): the H200 run of
    ``scripts/gpu_check.sh`` gave gradients 2e-4 apart from the CPU's for that reason
    alone, so the comparison turns TF32 off and checks float32 against float32."""
    from psplava.train.neurons import srm as neuron
    from psplava.train.model import SNN

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)

    x = torch.from_numpy(_spikes(30, 2 * 12 * 12 * 2, 0.08, seed=5)).float().view(30, 2, 12, 12, 2)

    def grads(backend):
        monkeypatch.setattr(neuron, "KERNELS", backend)
        torch.manual_seed(0)
        m = SNN({"arch": "12x12x2-n8c3-n16c3s2-n10", "norm": "psp_ln", "steps": 30})
        if backend == "triton":
            m = m.to(DEV)
        out = m(x.to(next(m.parameters()).device))
        out.sum().backward()
        return out.detach().cpu(), [p.grad.detach().cpu() for p in m.parameters()]

    o_n, g_n = grads("numba")
    o_t, g_t = grads("triton")
    assert o_n.sum() > 0
    assert torch.equal(o_n, o_t)
    for a, b in zip(g_t, g_n):
        assert _rel(a, b) <= 1e-5  # float32 model: conv sums in another order on a GPU
