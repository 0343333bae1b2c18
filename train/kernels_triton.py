"""The SRM neuron's float kernels on the GPU, in Triton: the same recurrences as the numba
kernels of :mod:`psplava.train.kernels` (CPU), held against one specification
(:mod:`psplava.train.kernel_spec`) by the tests.

One program per block of ``BLOCK`` features walks the time axis of a contiguous
``(T, F)`` tensor, keeping the two-state recurrence in registers:

* :func:`alpha_filter`: ``x(t) = q (x(t-1) + s(t-1))``, ``y(t) = q (y(t-1) + x(t-1) +
  s(t-1))``, ``out(t) = gain y(t)``; with ``reverse`` the same over reversed time (the
  adjoint, i.e. the backward pass).
* :func:`srm_spike`: ``du = z + ref_gain y - theta``, ``s = [du >= 0]``,
  ``rho = k exp(-|du| / tau_rho)``, then the refractory state takes the spike
  (EXP: ``y = d (y + s)``; ALPHA: the PSP's two-state recurrence with ``d``).

The operations are written in the numba kernels' order, so under Triton's interpreter
(``TRITON_INTERPRET=1``, numpy on CPU tensors: how ``make test`` runs them without a GPU)
the results are bit-identical; on a GPU, fused multiply-adds and the device's ``exp``
may differ in the last bits (float64: ~1e-15 relative; float32: ~1e-6 for rho).
Constants travel in a tensor of the data's dtype (Triton passes Python floats as
float32), and offsets are 64-bit (``T * F`` passes 2**31 for large batches).

The interpreter is chosen when this module is imported, from the environment (Triton
reads ``TRITON_INTERPRET`` at ``@triton.jit`` time).  ``triton`` ships with the CUDA
build of torch that the project installs; without it :data:`AVAILABLE` is False.
"""

# no ``from __future__ import annotations``: Triton reads ``tl.constexpr`` annotations as
# objects (the interpreter does not recognise them as strings)
import os

import torch

try:  # optional: ships with torch's CUDA wheels (triton 2.3.1 beside torch 2.3.1)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - a torch build without triton
    triton = None
    tl = None

AVAILABLE = triton is not None
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

if AVAILABLE and INTERPRET:
    # triton 2.3.1's interpreter maps float64 to numpy but lacks the builder's float64
    # type (``get_double_ty``), so ``tl.zeros(..., tl.float64)`` fails there; the
    # compiler has it.  Add the one missing method (a no-op where it exists; later
    # tritons, 3.6 for one, renamed the class and have the method).
    from triton.runtime import interpreter as _interp

    _builder = getattr(_interp, "Builder", None)
    if _builder is not None and not hasattr(_builder, "get_double_ty"):
        _builder.get_double_ty = lambda self: tl.float64


def usable(t: torch.Tensor) -> bool:
    """Whether these kernels can run on ``t``'s device (a GPU, or any device under the
    interpreter)."""
    return AVAILABLE and (t.device.type == "cuda" or INTERPRET)


if AVAILABLE:
    @triton.jit(do_not_specialize=["T", "F"])  # T or F == 1 would become a constant
    def _alpha_kernel(s_ptr, out_ptr, c_ptr, T, F, REVERSE: tl.constexpr,
                      BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < F
        q = tl.load(c_ptr)
        gain = tl.load(c_ptr + 1)
        x = tl.zeros([BLOCK], dtype=out_ptr.dtype.element_ty)
        y = tl.zeros([BLOCK], dtype=out_ptr.dtype.element_ty)
        if REVERSE:
            t0 = T - 1
        else:
            t0 = 0
        F64 = F.to(tl.int64)  # 64-bit row offsets (loop counters are 32-bit)
        tl.store(out_ptr + t0 * F64 + offs, gain * y, mask=mask)
        for i in range(1, T):
            if REVERSE:
                t = T - 1 - i
                tp = t + 1
            else:
                t = i
                tp = i - 1
            sp = tl.load(s_ptr + tp * F64 + offs, mask=mask, other=0.0)
            xn = q * (x + sp)
            y = q * (y + x + sp)
            x = xn
            tl.store(out_ptr + t * F64 + offs, gain * y, mask=mask)

    @triton.jit(do_not_specialize=["T", "F"])  # T or F == 1 would become a constant
    def _srm_kernel(z_ptr, s_ptr, rho_ptr, c_ptr, T, F, ALPHA_REF: tl.constexpr,
                    BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < F
        theta = tl.load(c_ptr)
        d = tl.load(c_ptr + 1)
        ref_gain = tl.load(c_ptr + 2)
        k = tl.load(c_ptr + 3)
        inv_tau_rho = tl.load(c_ptr + 4)
        x = tl.zeros([BLOCK], dtype=s_ptr.dtype.element_ty)
        y = tl.zeros([BLOCK], dtype=s_ptr.dtype.element_ty)
        F64 = F.to(tl.int64)  # 64-bit row offsets (loop counters are 32-bit)
        for t in range(0, T):
            row = t * F64
            z = tl.load(z_ptr + row + offs, mask=mask, other=0.0)
            du = z + ref_gain * y - theta
            s = (du >= 0).to(s_ptr.dtype.element_ty)
            rho = k * tl.exp(-tl.abs(du) * inv_tau_rho)
            tl.store(s_ptr + row + offs, s, mask=mask)
            tl.store(rho_ptr + row + offs, rho.to(rho_ptr.dtype.element_ty), mask=mask)
            if ALPHA_REF:
                xn = d * (x + s)
                y = d * (y + x + s)
                x = xn
            else:
                y = d * (y + s)


def _block(t: torch.Tensor) -> int:
    # a GPU wants many small programs; the interpreter (numpy per program) few large ones
    return 256 if t.device.type == "cuda" else 4096


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(t.shape[0], -1).contiguous()


def _check(t: torch.Tensor) -> None:
    if not usable(t):
        raise RuntimeError(f"the Triton kernels need a CUDA tensor (or TRITON_INTERPRET=1 "
                           f"before import), got a {t.device.type} tensor"
                           + ("" if AVAILABLE else "; triton is not installed"))
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"the Triton kernels take float32 or float64, got {t.dtype}")


def alpha_filter(s: torch.Tensor, q: float, gain: float, reverse: bool = False
                 ) -> torch.Tensor:
    """``gain * sum_{k>=1} k q^k s(t-k)`` along dim 0 (``reverse``: the adjoint), in
    ``s``'s dtype and shape."""
    _check(s)
    flat = _flat(s)
    T, F = flat.shape
    out = torch.empty_like(flat)
    if T and F:
        consts = torch.tensor([q, gain], dtype=flat.dtype, device=flat.device)
        block = _block(flat)
        _alpha_kernel[(triton.cdiv(F, block),)](flat, out, consts, T, F,
                                                REVERSE=bool(reverse), BLOCK=block)
    return out.view(s.shape)


def srm_spike(z: torch.Tensor, theta: float, d: float, alpha_refractory: bool,
              ref_gain: float, tau_rho: float, scale_rho: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and surrogate ``rho`` (``z``'s shape and dtype) of SRM neurons driven by
    ``z`` (T, ...); the arguments of :func:`psplava.train.kernels.srm_spike`."""
    _check(z)
    flat = _flat(z)
    T, F = flat.shape
    s = torch.empty_like(flat)
    rho = torch.empty_like(flat)
    if T and F:
        consts = torch.tensor([theta, d, ref_gain, scale_rho / (2.0 * tau_rho),
                               1.0 / tau_rho], dtype=flat.dtype, device=flat.device)
        block = _block(flat)
        _srm_kernel[(triton.cdiv(F, block),)](flat, s, rho, consts, T, F,
                                              ALPHA_REF=bool(alpha_refractory), BLOCK=block)
    return s.view(z.shape), rho.view(z.shape)
