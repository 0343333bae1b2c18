"""The CPU fast path of the integer arithmetic (:mod:`psplava.loihi_kernels`) against the
torch loops that every device runs (``loihi.CPU_KERNELS = False``): the same integers,
bit for bit, on random input that exercises both refractory kernels, the dynamic
threshold, the 24-bit wrap of a conv and the halves of an exact synapse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from psplava import loihi
from psplava.neurons import srm
from psplava.train.neurons import srm as srm_train


@pytest.fixture
def both(monkeypatch):
    def run(fn):
        monkeypatch.setattr(loihi, "CPU_KERNELS", True)
        fast = fn()
        monkeypatch.setattr(loihi, "CPU_KERNELS", False)
        slow = fn()
        monkeypatch.setattr(loihi, "CPU_KERNELS", True)
        return fast, slow
    return run


@pytest.mark.parametrize("dq", [205, 409, 1000])
def test_psp_kernel_equals_the_torch_loop(both, dq):
    s = torch.rand(60, 3, 7, 5, generator=torch.Generator().manual_seed(dq)) < 0.3
    for dtype in (torch.int64, torch.float64, torch.float32):
        fast, slow = both(lambda: srm.psp(s, dq, dtype))
        assert fast.dtype == slow.dtype == dtype
        assert torch.equal(fast, slow)
    assert int(fast.max()) > 100


@pytest.mark.parametrize("tau_s", [2.0, 10.0, 50.0, 300.0])
def test_psp_message_bound_holds_for_saturated_input(tau_s):
    dq = srm.decay_int(tau_s)
    s = torch.ones(int(20 * tau_s) + 50, 1, dtype=torch.bool)
    top = int(srm.psp(s, dq).max())
    bound = srm.psp_message_bound(dq)
    assert top <= bound <= top * 1.01 + 3  # an upper bound, and a tight one


@pytest.mark.parametrize("refractory", list(srm.Refractory))
@pytest.mark.parametrize("dynamic", [False, True])
def test_srm_kernel_equals_the_torch_loop(both, refractory, dynamic):
    g = torch.Generator().manual_seed(1)
    hw = srm.SRMHardware(v_th_mant=160, tau_s=10.0, tau_r=10.0, refractory=refractory,
                           ps_decay=srm.decay_int(10.0), ref_decay=409)
    z = torch.round(torch.randn(80, 4, 6, 6, 3, generator=g, dtype=torch.float64) * 2500
                    + 1800)
    gain = (torch.rand(80, 4, generator=g, dtype=torch.float64) + 0.6) if dynamic else None
    (s1, r1), (s2, r2) = both(lambda: srm.srm_run(z, hw, gain))
    assert torch.equal(s1, s2) and torch.equal(r1, r2)
    assert 0.02 < s1.double().mean() < 0.5 and int(r1.min()) < 0
    # the fused surrogate of loihi-arithmetic training: the same spikes, the same gradient
    zg = z.clone().requires_grad_(True)
    (o1, g1), (o2, g2) = both(lambda: (lambda o: (o, torch.autograd.grad(
        (o * torch.arange(o.numel()).view(o.shape).remainder(3)).sum(), zg)[0]))(
        srm_train.srm_spikes(zg, gain, hw, 160.0 * 16, 10.0, 2.0)))
    assert torch.equal(o1, o2)
    assert float((g1 - g2).abs().max()) <= 1e-6 * float(g2.abs().max())


def test_exact_synapse_halves_equal_float64_and_wrap(both):
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 1600, (12, 9, 9, 16), generator=g).float().permute(0, 3, 1, 2)
    w = (torch.randint(-128, 127, (8, 16, 3, 3), generator=g) * 2).double()
    want = loihi.wrap24(torch.round(F.conv2d(x.double(), w, padding=1)).to(torch.int64))
    for out_dtype in (torch.int64, torch.float64):
        fast, slow = both(lambda: loihi.synapse(x, w, "conv", 1, 1, (0, 1602), out_dtype))
        assert torch.equal(fast, slow) and torch.equal(fast.to(torch.int64), want)
    # large inputs: some sums pass 2**23 and wrap as Lava's conv does
    xl = torch.full((2, 16, 5, 5), 65535.0)
    wl = torch.full((4, 16, 3, 3), 254.0, dtype=torch.float64)
    exact = torch.round(F.conv2d(xl.double(), wl, padding=1)).to(torch.int64)
    assert int(exact.abs().max()) >= loihi.STATE_MAX
    fast, slow = both(lambda: loihi.synapse(xl, wl, "conv", 1, 1, None, torch.float64))
    assert torch.equal(fast, slow) and torch.equal(fast.to(torch.int64), loihi.wrap24(exact))
    # dense rows
    xd = torch.randint(0, 1600, (10, 300), generator=g).float()
    wd = (torch.randint(-128, 127, (7, 300), generator=g) * 2).double()
    fast, slow = both(lambda: loihi.synapse(xd, wd, "dense", x_range=(0, 1602),
                                            out_dtype=torch.float64))
    assert torch.equal(fast, slow) and torch.equal(fast, torch.round(xd.double() @ wd.t()))


def test_loihi_forward_and_gradients_equal_with_and_without_cpu_kernels(both):
    from psplava.train.model import SNN

    x = (torch.rand(30, 3, 34, 34, 2, generator=torch.Generator().manual_seed(3)) < 0.06).float()
    torch.manual_seed(0)
    m = SNN({"arch": "34x34x2-n8c3s2-n16c3s2-n10", "norm": "causal_psp_ln", "steps": 30,
             "arithmetic": "loihi"})

    def run():
        m.zero_grad()
        outs = m.layer_spikes(x)
        sum((o * (i + 1)).sum() for i, o in enumerate(outs)).backward()
        return [o.detach() for o in outs], [p.grad.clone() for p in m.parameters()]

    (o1, g1), (o2, g2) = both(run)
    assert sum(float(o.sum()) for o in o1) > 100
    assert all(torch.equal(a, b) for a, b in zip(o1, o2))
    for a, b in zip(g1, g2):
        assert float((a - b).abs().max()) <= 1e-5 * max(float(b.abs().max()), 1e-12)


def test_integer_primitives_at_their_edges():
    """Values the engines rarely reach on real data, pinned exactly (issue 19's mutations):
    Lava's 24-bit wrap, CUBA's decay truncated toward zero (float and int paths), and the
    SRM step firing at z + r == theta (the torch step the Lava process model runs)."""
    import torch

    from psplava import loihi

    z = torch.tensor([2 ** 23, -2 ** 23 - 1, 5, 2 ** 24 + 3], dtype=torch.int64)
    assert loihi.wrap24(z).tolist() == [-2 ** 23, 2 ** 23 - 1, 5, 3]
    v = torch.tensor([-7, 7, 9, -1], dtype=torch.int64)
    for x in (v, v.double()):   # 7 * 2048 / 4096 = 3.5 -> 3, toward zero
        assert loihi.dec_trunc(x, 2048).tolist() == [-3, 3, 4, 0]
    hw = srm.SRMHardware(v_th_mant=10, tau_s=1.0, tau_r=1.0, refractory=srm.Refractory.EXP,
                         ps_decay=1024, ref_decay=1024)
    st = srm.SRMState((3,), hw)
    theta = hw.theta_int
    s = st.step(torch.tensor([theta, theta - 1, theta + 1], dtype=torch.int64))
    assert s.tolist() == [True, False, True] or s.tolist() == [1, 0, 1]
