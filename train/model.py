"""The network builder: SRM or CUBA layers with PSP or membrane normalization.

A network is fully described by a plain ``dict`` (its *spec*: architecture string,
neuron, norm, their parameters, steps), so a checkpoint rebuilds it on its own.

Per synaptic layer, for input spikes ``s`` of shape (T, N, H, W, C) or (T, N, F):

    SRM:  a = psp(s) -> [PSP norm] -> z = W a -> [membrane norm] -> s' = SRM(z)
    CUBA: a = s      -> [PSP norm] -> z = W a -> [membrane norm] -> s' = CUBA(z)

Convs run as ``conv2d`` on a (T*N, C, H, W) channels-last view of the time-major
tensor; lava-dl's ``synapse.Conv`` (conv3d over NCHWT) is 2-4x slower on a CPU
(docs/design.md, "Training kernels"), which is why the synapse is not lava-dl's here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from psplava import loihi
from psplava.errors import ConfigError
from psplava.train.arch import LayerSpec, conv_output_size, parse_arch
from psplava.train.neuron import CubaNeuron, CubaParams, SRMNeuron, SRMParams
from psplava.train import loihi_ops
from psplava.train.loihi_ops import ste
from psplava.train.norm import MembraneNorm, NormKind, PSPNorm, causal_second_moment


class FoldError(ConfigError):
    """The network cannot be folded for deployment (with the reason)."""


class NeuronKind(str, Enum):
    SRM = "srm"    # the paper's neuron (psplava.train.neuron.SRMNeuron)
    CUBA = "cuba"  # lava-dl's CUBA neuron (Loihi-native)

    @property
    def hardware_type(self) -> loihi.NeuronType:
        return loihi.NeuronType.SRM if self is NeuronKind.SRM else loihi.NeuronType.CUBA


class Arithmetic(str, Enum):
    """What the forward pass computes: float training maths, or exactly what the exported
    ``.net`` file computes in Lava (folded norms, quantized weights, integer dynamics)."""

    FLOAT = "float"
    LOIHI = "loihi"


@dataclass(frozen=True)
class LayerHardware:
    """One layer as the chip runs it (what the exporter writes, what loihi arithmetic runs).

    ``weight`` and ``bias`` are float64 tensors holding integers; in training they carry
    straight-through gradients to the float parameters.
    """

    kind: str                      # "conv" | "dense"
    weight: torch.Tensor           # conv (out, in, kh, kw); dense (out, in), (H, W, C) inputs
    bias: torch.Tensor | None      # per output channel / feature (integer units)
    scale: float                   # k: integer units per float unit of the membrane input
    neuron: "loihi.SRMHardware | loihi.CubaHardware"
    lam: float | None   # causal PSP-LN's dynamic threshold (Eq. 18)
    weight_float: torch.Tensor     # folded float weight (alpha gain included) before rounding
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a network (stored in checkpoints as a plain dict)."""

    arch: str
    neuron: str = "srm"            # "srm" or "cuba"
    norm: str = "psp_ln"           # a NormKind value
    steps: int = 300               # T (BNTT needs it)
    lam: float = 0.1               # PSP-norm lambda
    init: str = "theta"            # "theta": W ~ N(0, (gain*theta)^2 / fan_in); "paper"
    init_gain: float = 1.0
    weight_scale: float = 10.0     # "paper" init: PyTorch default init x weight_scale
    srm: dict[str, Any] | None = None
    cuba: dict[str, Any] | None = None
    arithmetic: str = "float"      # "float" or "loihi" (the exported file's integer maths)
    k_max: float = loihi.K_MAX     # largest weight scale of the Loihi quantization

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model keys {sorted(unknown)}; known: {sorted(known)}")
        spec = cls(**d)
        try:
            Arithmetic(spec.arithmetic)
            NeuronKind(spec.neuron)
            NormKind(spec.norm)
        except ValueError as exc:
            raise ConfigError(f"model: {exc}") from None
        return spec

    def complete(self) -> dict[str, Any]:
        """Every field, with the neuron's parameters filled in from their defaults, so a
        checkpoint never depends on code defaults that may change."""
        from dataclasses import asdict

        d = asdict(self)
        if NeuronKind(self.neuron) is NeuronKind.SRM:
            d["srm"] = SRMParams(**(self.srm or {})).to_dict()
        else:
            d["cuba"] = CubaParams(**(self.cuba or {})).to_dict()
        return d


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(T, N, H, W, C) -> (T*N, C, H, W) channels-last view (no copy)."""
    T, N, H, W, C = x.shape
    return x.reshape(T * N, H, W, C).permute(0, 3, 1, 2)


def _from_nchw(y: torch.Tensor, T: int, N: int) -> torch.Tensor:
    y = y.permute(0, 2, 3, 1)
    return y.reshape(T, N, *y.shape[1:])


class SpikingLayer(nn.Module):
    """One synaptic layer (conv or dense) with its norms and neurons."""

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...], model: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.arithmetic = Arithmetic(model.arithmetic)
        self.k_max = float(model.k_max)
        norm = NormKind(model.norm)
        self.neuron_kind = NeuronKind(model.neuron)
        in_channels = in_shape[-1]
        if spec.kind == "conv":
            h, w, _ = in_shape
            self.weight = nn.Parameter(torch.empty(spec.out, in_channels, spec.kernel, spec.kernel))
            fan_in = in_channels * spec.kernel ** 2
            self.out_shape = (conv_output_size(h, spec.kernel, spec.stride),
                              conv_output_size(w, spec.kernel, spec.stride), spec.out)
        else:
            fan_in = int(math.prod(in_shape))
            self.weight = nn.Parameter(torch.empty(spec.out, fan_in))
            self.out_shape = (spec.out,)
        norm_channels = in_channels if spec.kind == "conv" else fan_in
        self.pre = None
        self.post = None
        if spec.pre_norm and norm.on_psp:
            self.pre = PSPNorm(norm, norm_channels, model.lam)
        elif spec.pre_norm and norm.on_membrane:
            raise ConfigError(f"norm {norm.value} acts on the membrane: write the marker after "
                              f"the layer ('8c3n'), not before ('n8c3')")
        if spec.post_norm and norm.on_membrane:
            theta = SRMParams(**(model.srm or {})).theta if self.neuron_kind is NeuronKind.SRM else \
                CubaParams(**(model.cuba or {})).threshold
            gamma = 1.0 if norm is NormKind.TDBN else model.init_gain * theta
            self.post = MembraneNorm(norm, spec.out, model.steps, theta=theta, gamma_init=gamma)
        elif spec.post_norm and norm.on_psp:
            raise ConfigError(f"norm {norm.value} acts on the PSP: write the marker before the "
                              f"layer ('n8c3'), not after ('8c3n')")
        if self.neuron_kind is NeuronKind.SRM:
            self.neuron = SRMNeuron(SRMParams(**(model.srm or {})))
            theta = self.neuron.params.theta
        else:
            self.neuron = CubaNeuron(CubaParams(**(model.cuba or {})))
            theta = self.neuron.params.threshold
        self._init(fan_in, theta, model)

    def _init(self, fan_in: int, theta: float, model: ModelSpec) -> None:
        if model.init == "theta":
            # z = W a with unit-RMS a has std init_gain * theta: the net fires from step one.
            nn.init.normal_(self.weight, 0.0, model.init_gain * theta / math.sqrt(fan_in))
        elif model.init == "paper":
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # PyTorch's default
            with torch.no_grad():
                self.weight.mul_(model.weight_scale)
        else:
            raise ConfigError(f"unknown init {model.init!r}; expected 'theta' or 'paper'")

    def export_hdf5(self, handle) -> None:
        """lava-dl's block convention: describe this layer in an h5py group.

        Writes the *trained, unfolded* float description: ``type`` (conv/dense), ``shape``
        (C, H, W) or (F,), ``weight`` (conv: (out, in, kh, kw) as netx reads it after its
        own flip; dense: (out, in) with inputs in this project's (H, W, C) flatten order),
        ``stride``/``padding``, ``neuron/*`` (the neuron's ``device_params``) and
        ``norm/*`` (kind, lambda, running statistics).  Folding and quantization for
        Lava are the exporter's job (psplava.export); this hook never mutates the layer.
        """
        import numpy as np

        kind = self.spec.kind
        handle.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
        shape = self.out_shape[::-1] if kind == "conv" else self.out_shape
        handle.create_dataset("shape", data=np.array(shape))
        w = self.weight.detach().cpu().numpy()
        handle.create_dataset("weight", data=w)
        if kind == "conv":
            handle.create_dataset("stride", data=np.array([self.spec.stride] * 2))
            handle.create_dataset("padding", data=np.array([self.spec.kernel // 2] * 2))
        for key, value in self.neuron.device_params.items():
            handle.create_dataset(f"neuron/{key}", data=value)
        for name, norm in (("pre_norm", self.pre), ("post_norm", self.post)):
            if norm is None:
                continue
            handle.create_dataset(f"{name}/kind", data=norm.kind.value)
            for key, value in norm.state_dict().items():
                handle.create_dataset(f"{name}/{key}", data=value.cpu().numpy())
            if hasattr(norm, "lam"):
                handle.create_dataset(f"{name}/lambda", data=norm.lam)

    # ------------------------------------------------------------------ deployment form
    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None, float | None]:
        """The layer with its normalization folded (eval semantics), float64, differentiable
        in the weights: ``(weight, bias, lam)``.

        - PSP-BN: ``a_hat = a s_c``, ``s_c = (m2_c + lambda)^-1/2`` (running statistics), so
          ``W a_hat = W' a`` with ``W'[o, c, ...] = W[o, c, ...] s_c``.  Exact.
        - causal PSP-LN: ``W a / g + r >= theta`` <=> ``W a >= g (theta - r)``,
          ``g = sqrt(m2(t) + lambda)``: the paper's Eq. 18 dynamic threshold; W unchanged.
        - whole-window PSP-LN needs the future's statistics and BNTT per-step statistics:
          refused (:class:`FoldError`).
        - BN / tdBN: ``k (gamma (z - mu) / sqrt(var + eps) + beta)`` folds into
          ``W' = W k gamma / sqrt(var + eps)`` per output channel and a bias
          ``b = k (beta - gamma mu / sqrt(var + eps))``.
        """
        w = self.weight.double()
        bias = None
        dyn = None
        conv = self.spec.kind == "conv"
        if self.pre is not None:
            if self.pre.kind is NormKind.PSP_BN:
                s = torch.rsqrt(self.pre.running_m2.double() + self.pre.lam)
                w = w * (s.view(1, -1, 1, 1) if conv else s.view(1, -1))
            elif self.pre.kind is NormKind.CAUSAL_PSP_LN:
                dyn = float(self.pre.lam)
            else:
                raise FoldError("whole-window PSP-LN uses statistics of the whole recording, "
                                "which a chip cannot know in advance; train or fine-tune with "
                                "'causal_psp_ln' (psplava train --init-from CKPT --set "
                                "model.norm=causal_psp_ln)")
        if self.post is not None:
            m = self.post
            if m.kind is NormKind.BNTT:
                raise FoldError("BNTT normalizes each time step with its own statistics and "
                                "cannot be folded into static weights; use psp_bn, "
                                "causal_psp_ln, bn or tdbn")
            inv = torch.rsqrt(m.running_var[0].double() + m.eps)
            g = m.weight[0].double() * inv * m.out_scale
            w = w * (g.view(-1, 1, 1, 1) if conv else g.view(-1, 1))
            bias = m.out_scale * (m.bias[0].double() - m.weight[0].double()
                                  * m.running_mean[0].double() * inv)
        return w, bias, dyn

    def hardware(self, k_max: float | None = None) -> LayerHardware:
        """Fold, scale and quantize as the exporter writes the layer (straight-through
        gradients to the float parameters)."""
        k_max = self.k_max if k_max is None else float(k_max)
        w, bias, dyn = self.folded()
        p = self.neuron.params
        if self.neuron_kind is NeuronKind.SRM:
            w = w * p.psp_gain  # the alpha PSP's gain e / tau_s folds into the weights
            theta, theta_k_max = p.theta, loihi.SRM_THETA_K_MAX
        else:
            theta, theta_k_max = p.threshold, loihi.VTH_MANT_MAX
        with torch.no_grad():
            bias_max = float(bias.abs().max()) if bias is not None else 0.0
            scale = loihi.choose_scale(max(float(w.abs().max()), bias_max), theta, k_max,
                                       theta_k_max)
        wq = ste(loihi.quantize_weight(w.detach() * scale), w * scale)
        bq = None if bias is None else ste(torch.round(bias.detach() * scale), bias * scale)
        return LayerHardware(kind=self.spec.kind, weight=wq, bias=bq, scale=scale,
                             neuron=self.neuron.hardware(scale), lam=dyn,
                             weight_float=w.detach(), stride=self.spec.stride,
                             padding=self.spec.kernel // 2 if self.spec.kind == "conv" else 0)

    def forward_loihi(self, s: torch.Tensor) -> torch.Tensor:
        """Exactly the exported layer's integer dynamics (see :mod:`psplava.loihi`)."""
        hw = self.hardware()
        if self.neuron_kind is NeuronKind.SRM:
            tau_s = self.neuron.params.tau_s
            y = loihi_ops.integer_psp(s, tau_s)
        else:
            y = s.double()
        if self.spec.kind == "dense" and y.dim() > 3:
            y = y.flatten(2)
        if self.training and self.pre is not None and self.pre.kind is NormKind.PSP_BN:
            # PSP-BN keeps tracking its running statistics (used from the next step on)
            a = y.detach() * (self.neuron.params.psp_gain / loihi.PSP_UNIT) \
                if self.neuron_kind is NeuronKind.SRM else y.detach()
            self.pre.track(a)
        T, N = y.shape[:2]
        if self.spec.kind == "conv":
            z = loihi_ops.integer_synapse(_to_nchw(y), hw.weight, "conv", hw.stride, hw.padding)
            z = _from_nchw(z, T, N)
        else:
            z = loihi_ops.integer_synapse(y.reshape(T * N, -1), hw.weight, "dense")
            z = z.reshape(T, N, -1)
        tau_rho, scale_rho = self.neuron.surrogate()
        if self.neuron_kind is NeuronKind.SRM:
            if hw.bias is not None:
                z = z + hw.bias * loihi.PSP_UNIT
            gain = None
            if hw.lam is not None:
                gain = self._dynamic_gain(y, tau_s, hw.lam)
            out = loihi_ops.srm_spikes(z, gain, hw.neuron, hw.scale * loihi.PSP_UNIT,
                                       tau_rho, scale_rho)
        else:
            bias = None if hw.bias is None else hw.bias.detach().to(torch.int64)
            out = loihi_ops.cuba_spikes(loihi.delay_one(z), bias, hw.neuron,
                                        hw.scale * 2 ** loihi.CUBA_SHIFT, tau_rho, scale_rho)
        return out.to(s.dtype)  # spikes are 0/1: exact in the input's dtype

    @staticmethod
    def _dynamic_gain(y: torch.Tensor, tau_s: float, lam: float) -> torch.Tensor:
        """``sqrt(m2(t) + lambda)`` (T, N): the exact value of the file's moment process,
        with the gradient of the same float formula."""
        exact = loihi.threshold_gain(loihi.causal_m2(y.detach().to(torch.int64), tau_s), lam)
        m2 = causal_second_moment(y * (math.e / (tau_s * loihi.PSP_UNIT)))  # float PSP units
        return ste(exact, torch.sqrt(m2 + lam))

    def _synapse(self, a: torch.Tensor, w: torch.Tensor, stride: int, padding: int
                 ) -> torch.Tensor:
        if self.spec.kind == "conv":
            T, N = a.shape[:2]
            z = F.conv2d(_to_nchw(a), w, stride=stride, padding=padding)
            return _from_nchw(z, T, N)
        return a @ w.t()

    def synaptic_input(self, s: torch.Tensor) -> torch.Tensor:
        """``a`` of the incoming spikes (alpha PSP for SRM, the spikes for CUBA)."""
        return self.neuron.psp(s) if self.neuron_kind is NeuronKind.SRM else s

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if self.arithmetic is Arithmetic.LOIHI:
            return self.forward_loihi(s)
        a = self.synaptic_input(s)
        if self.spec.kind == "dense" and a.dim() > 3:
            a = a.flatten(2)
        if self.pre is not None:
            a = self.pre(a)
        z = self._synapse(a, self.weight, self.spec.stride,
                          self.spec.kernel // 2 if self.spec.kind == "conv" else 0)
        if self.post is not None:
            z = self.post(z)
        return self.neuron(z)


class SNN(nn.Module):
    """A feed-forward spiking network built from a :class:`ModelSpec`.

    ``forward(x)`` takes input spikes (T, N, H, W, C) and returns the output layer's
    spikes (T, N, classes).  After each forward pass ``last_rates`` holds the mean firing
    rate (spikes per neuron per step) of every layer.
    """

    def __init__(self, spec: ModelSpec | dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
        NormKind(self.spec.norm)
        self.input_shape, layer_specs = parse_arch(self.spec.arch)
        shape: tuple[int, ...] = self.input_shape
        layers = []
        for ls in layer_specs:
            layer = SpikingLayer(ls, shape, self.spec)
            layers.append(layer)
            shape = layer.out_shape
        self.layers = nn.ModuleList(layers)
        self.num_classes = int(math.prod(shape))
        self.last_rates: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} does not match the network's "
                             f"(T, N, {', '.join(map(str, self.input_shape))})")
        rates = []
        s = x
        if Arithmetic(self.spec.arithmetic) is Arithmetic.LOIHI:
            lag = self.latency
            if lag:
                s = torch.cat([x, x.new_zeros((lag, *x.shape[1:]))], dim=0)
        for layer in self.layers:
            s = layer(s)
            rates.append(float(s.detach().mean()))
        self.last_rates = rates
        return s

    @property
    def latency(self) -> int:
        """Steps the output lags the input in loihi arithmetic (and in the exported file);
        the loihi forward appends that many empty steps so that no output is cut off."""
        return loihi.latency(NeuronKind(self.spec.neuron).hardware_type, len(self.layers))

    def layer_spikes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's spikes (each (T', N, ...)) for input x, in the model's arithmetic."""
        outs: list[torch.Tensor] = []
        s = x
        if Arithmetic(self.spec.arithmetic) is Arithmetic.LOIHI and self.latency:
            s = torch.cat([x, x.new_zeros((self.latency, *x.shape[1:]))], dim=0)
        for layer in self.layers:
            s = layer(s)
            outs.append(s)
        return outs
