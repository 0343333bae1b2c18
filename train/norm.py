"""Normalizations: the paper's PSP norms (before the weights) and membrane baselines (after).

Tensors are (T, N, ..., C).  PSP norms divide by ``sqrt(E_X[a^2] + lambda)`` with the
second *raw* moment (no mean, no shift, no learnable scale: gamma merges into W, Eq. 17):

- PSP-BN: X = (T, N, spatial) per channel; running second moment for inference.
- PSP-LN: X = (T, spatial, C) per sample (the paper's whole-window statistics).
- causal PSP-LN: per sample, ``m2(t) = mean over tau <= t`` of ``mean_{spatial, C} a^2``:
  computable online, so it folds into a dynamic threshold on a chip (Eq. 18).

Membrane baselines, applied to ``z = W a``: BN (per channel over T, N, spatial: time
merged into batch), BNTT (per time step and channel: vectorized, one (T, C) parameter
table instead of T modules), tdBN (BN scaled by ``alpha * V_th``), and none.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.distributed as dist
from torch import nn

from psplava import loihi
from psplava.train import kernels
from psplava.train.config import NormKind  # noqa: F401 (the norms' names; re-exported)

#: set while a checkpointed block is recomputed in the backward pass: the forward pass
#: already tracked its running statistics once
_FROZEN = contextvars.ContextVar("psplava_frozen_statistics", default=False)


@contextlib.contextmanager
def statistics_frozen():
    """Running statistics are not updated inside (activation checkpointing's recompute)."""
    token = _FROZEN.set(True)
    try:
        yield
    finally:
        _FROZEN.reset(token)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1



class _RawMomentNorm(torch.autograd.Function):
    """``a_hat = a * r``, ``r = (mean_X a^2 + lam)^-1/2``; saves only ``a_hat`` and ``r``.

    Backward: ``grad_a = r * (g - a_hat * mean_X(g * a_hat))`` (docs/design.md).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, dims: tuple[int, ...], lam: float) -> torch.Tensor:
        if _per_sample(dims, a):  # PSP-LN: ||a||^2 / n per sample, no a^2 temporary
            n = a.numel() // a.shape[1]
            m2 = torch.linalg.vector_norm(a, 2, dim=dims, keepdim=True).square() / n
        else:  # per channel (PSP-BN): a reduction over the leading dims, as fast this way
            m2 = a.square().mean(dim=dims, keepdim=True)
        r = torch.rsqrt(m2 + lam)
        a_hat = a * r
        ctx.dims = dims
        ctx.save_for_backward(a_hat, r)
        return a_hat

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a_hat, r = ctx.saved_tensors
        if _per_sample(ctx.dims, a_hat) and g.device.type == "cpu" and a_hat.dim() >= 3:
            # PSP-LN on the CPU: the same formula in two passes over memory (numba)
            T, N = a_hat.shape[:2]
            g3 = g.contiguous().view(T, N, -1)
            out = kernels.sample_norm_backward(g3.numpy(), a_hat.reshape(T, N, -1).numpy(),
                                               r.reshape(N).numpy())
            return torch.from_numpy(out).view(g.shape), None, None
        grad = r * (g - a_hat * (g * a_hat).mean(dim=ctx.dims, keepdim=True))
        return grad, None, None


class _SyncBatchRawMomentNorm(torch.autograd.Function):
    """PSP-BN over the global batch of a DDP run: the per-channel sums of ``a^2`` and of
    ``g a_hat`` are summed over the ranks (in float64), so every rank normalizes with the
    statistics one process would compute for the whole batch.  Returns ``(a_hat, m2)``."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, lam: float):
        dims = tuple(range(a.dim() - 1))
        count = a.numel() // a.shape[-1]
        buf = torch.cat([a.square().sum(dim=dims).double(),
                         torch.tensor([float(count)], dtype=torch.float64, device=a.device)])
        dist.all_reduce(buf)
        m2 = (buf[:-1] / buf[-1]).to(a.dtype)
        r = torch.rsqrt(m2 + lam)
        a_hat = a * r
        ctx.dims, ctx.total = dims, buf[-1]
        ctx.save_for_backward(a_hat, r)
        ctx.mark_non_differentiable(m2)
        return a_hat, m2

    @staticmethod
    def backward(ctx, g: torch.Tensor, _g_m2):
        a_hat, r = ctx.saved_tensors
        gs = (g * a_hat).sum(dim=ctx.dims).double()
        dist.all_reduce(gs)
        mean = (gs / ctx.total).to(g.dtype)
        return r * (g - a_hat * mean), None


def _per_sample(dims: tuple[int, ...], a: torch.Tensor) -> bool:
    """PSP-LN's statistics: every dim but the batch (dim 1)."""
    return tuple(dims) == tuple(d for d in range(a.dim()) if d != 1)


def raw_moment_norm(a: torch.Tensor, dims: tuple[int, ...], lam: float) -> torch.Tensor:
    """Divide by ``sqrt(mean over dims of a^2 + lam)`` (keepdims), with a fused backward."""
    return _RawMomentNorm.apply(a, tuple(dims), lam)


def causal_second_moment(a: torch.Tensor, prior: torch.Tensor | float = 0.0,
                         prior_steps: float = 0.0) -> torch.Tensor:
    """``m2(t)`` of causal PSP-LN, shape (T, N): ``mean_{spatial,C} a^2`` averaged over
    steps <= t -- what a chip can accumulate online.  With a prior (``prior_steps`` > 0)
    the average starts from ``prior_steps`` pseudo-steps of second moment ``prior``:
    ``m2(t) = (sum_{tau<=t} m2_tau + n0 prior) / (t + n0)`` (the early steps, which have
    seen few events, are not amplified)."""
    per_step = a.square().flatten(2).mean(dim=2)  # (T, N)
    steps = torch.arange(1, a.shape[0] + 1, dtype=a.dtype, device=a.device)[:, None]
    if prior_steps:
        return (per_step.cumsum(dim=0) + prior_steps * prior) / (steps + prior_steps)
    return per_step.cumsum(dim=0) / steps


def sample_m2_mean(a: torch.Tensor) -> torch.Tensor:
    """The batch mean of the per-sample whole-window second moment of ``a`` (T, N, ...): a
    scalar (causal PSP-LN's prior, and the norm warm start's scale)."""
    return a.square().transpose(0, 1).flatten(1).mean(dim=1).mean()


def causal_raw_moment_norm(a: torch.Tensor, lam: float, prior: torch.Tensor | float = 0.0,
                           prior_steps: float = 0.0) -> torch.Tensor:
    """Causal PSP-LN: ``a(t) / sqrt(m2(t) + lam)`` per sample (autograd through cumsum)."""
    scale = torch.rsqrt(causal_second_moment(a, prior, prior_steps) + lam)
    return a * scale.view(*scale.shape, *([1] * (a.dim() - 2)))


class PSPNorm(nn.Module):
    """PSP-BN, PSP-LN or causal PSP-LN on a PSP tensor (T, N, ..., C)."""

    def __init__(self, kind: NormKind, channels: int, lam: float = 0.1,
                 momentum: float = 0.1, prior_steps: float = 0.0) -> None:
        super().__init__()
        if not NormKind(kind).on_psp:
            raise ValueError(f"{kind} is not a PSP normalization")
        self.kind, self.lam, self.momentum = NormKind(kind), float(lam), float(momentum)
        self.prior_steps = float(prior_steps) if self.kind is NormKind.CAUSAL_PSP_LN else 0.0
        if self.kind is NormKind.PSP_BN:
            self.register_buffer("running_m2", torch.ones(channels))
        if self.prior_steps:
            # causal PSP-LN's prior: the running mean of the per-sample whole-window m2
            self.register_buffer("prior_m2", torch.ones(()))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if self.kind is NormKind.PSP_LN:
            per_sample = tuple(d for d in range(a.dim()) if d != 1)  # all but N
            return raw_moment_norm(a, per_sample, self.lam)
        if self.kind is NormKind.CAUSAL_PSP_LN:
            if not self.prior_steps:
                return causal_raw_moment_norm(a, self.lam)
            self.track_prior(a)
            return causal_raw_moment_norm(a, self.lam, self.prior_m2, self.prior_steps)
        dims = tuple(range(a.dim() - 1))  # all but channels
        if self.training and _world() > 1:
            a_hat, m2 = _SyncBatchRawMomentNorm.apply(a, self.lam)
            if not _FROZEN.get():
                self._update(m2)
            return a_hat
        if self.training:
            self.track(a)
            return raw_moment_norm(a, dims, self.lam)
        return a * torch.rsqrt(self.running_m2 + self.lam)

    def track(self, a: torch.Tensor) -> None:
        """PSP-BN: update the running second moment per channel with the batch's (not
        while a checkpointed block is recomputed)."""
        if _FROZEN.get():
            return
        with torch.no_grad():
            self._update(a.square().mean(dim=tuple(range(a.dim() - 1))))

    def track_prior(self, a: torch.Tensor) -> None:
        """Causal PSP-LN with a prior, in training: the prior follows the batch mean of the
        per-sample whole-window second moment (not while a block is recomputed)."""
        if self.training and not _FROZEN.get():
            with torch.no_grad():
                self._ema(self.prior_m2, sample_m2_mean(a.detach()))

    def _update(self, m2: torch.Tensor) -> None:
        self._ema(self.running_m2, m2)

    def _ema(self, buf: torch.Tensor, value: torch.Tensor) -> None:
        """``buf <- (1 - momentum) buf + momentum value``, in place."""
        with torch.no_grad():
            buf.mul_(1 - self.momentum).add_(self.momentum * value.to(buf))

    def dynamic_threshold(self) -> loihi.DynamicThreshold:
        """Causal PSP-LN as the chip runs it: Eq. 18's threshold factor with this norm's
        lambda and prior."""
        if not self.prior_steps:
            return loihi.DynamicThreshold(self.lam)
        return loihi.DynamicThreshold(self.lam, float(self.prior_m2), self.prior_steps)

    def scale(self) -> torch.Tensor:
        """PSP-BN's inference scale per channel, ``1 / sqrt(running_m2 + lambda)``."""
        return torch.rsqrt(self.running_m2 + self.lam)

    def extra_repr(self) -> str:
        return f"{self.kind.value}, lambda={self.lam}"


class MembraneNorm(nn.Module):
    """BN, BNTT or tdBN on the membrane input ``z = W a`` of shape (T, N, ..., C).

    BN:   per channel over (T, N, spatial); affine gamma, beta.
    tdBN: the same statistics, output scaled by ``alpha * V_th`` (Zheng et al. 2021).
    BNTT: per time step and channel over (N, spatial); gamma, beta and running
          statistics per step (a (T, C) table; vectorized, not T modules).

    ``gamma_init``: the network builder sets it to ``init_gain * theta`` for BN and BNTT,
    so that their output, like tdBN's, has a standard deviation comparable to the
    threshold and the network fires from the first step (gamma = 1 against theta = 10
    leaves a BN network silent); tdBN keeps gamma = 1 (its alpha * V_th does the same).
    """

    def __init__(self, kind: NormKind, channels: int, steps: int, theta: float = 10.0,
                 alpha: float = 1.0, eps: float = 1e-5, momentum: float = 0.1,
                 gamma_init: float = 1.0) -> None:
        super().__init__()
        self.kind = NormKind(kind)
        if not self.kind.on_membrane:
            raise ValueError(f"{kind} is not a membrane normalization")
        rows = steps if self.kind is NormKind.BNTT else 1
        self.weight = nn.Parameter(torch.full((rows, channels), float(gamma_init)))
        self.bias = nn.Parameter(torch.zeros(rows, channels))
        self.register_buffer("running_mean", torch.zeros(rows, channels))
        self.register_buffer("running_var", torch.ones(rows, channels))
        self.eps, self.momentum = eps, momentum
        self.out_scale = alpha * theta if self.kind is NormKind.TDBN else 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        T = z.shape[0]
        expand = [1] * (z.dim() - 2)
        if self.kind is NormKind.BNTT:
            if T > self.weight.shape[0]:
                raise ValueError(f"BNTT was built for {self.weight.shape[0]} steps, got {T}")
            dims = tuple(range(1, z.dim() - 1))
            view = lambda p: p[:T].view(T, *expand, -1)  # noqa: E731
        else:
            dims = tuple(range(z.dim() - 1))
            view = lambda p: p.view(*([1] * (z.dim() - 1)), -1)  # noqa: E731
        if self.training:
            mean = z.mean(dim=dims, keepdim=True)
            var = z.var(dim=dims, keepdim=True, unbiased=False)
            with torch.no_grad():
                n = z.numel() / mean.numel()
                rm = mean.reshape(-1, z.shape[-1])
                rv = (var * n / max(n - 1, 1)).reshape(-1, z.shape[-1])
                tgt_m = self.running_mean[:T] if self.kind is NormKind.BNTT else self.running_mean
                tgt_v = self.running_var[:T] if self.kind is NormKind.BNTT else self.running_var
                tgt_m.mul_(1 - self.momentum).add_(self.momentum * rm)
                tgt_v.mul_(1 - self.momentum).add_(self.momentum * rv)
        else:
            mean, var = view(self.running_mean), view(self.running_var)
        z_hat = (z - mean) * torch.rsqrt(var + self.eps)
        return self.out_scale * (z_hat * view(self.weight) + view(self.bias))

    def extra_repr(self) -> str:
        return f"{self.kind.value}, rows={self.weight.shape[0]}"
