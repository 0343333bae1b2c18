"""The network builder: SRM or CUBA layers with PSP or membrane normalization.

A network is fully described by a plain ``dict`` (its *spec*: architecture string,
neuron, norm, their parameters, steps), so a checkpoint rebuilds it on its own.

Per synaptic layer, for input spikes ``s`` of shape (T, N, H, W, C) or (T, N, F):

    SRM:  a = psp(s) -> [PSP norm] -> z = W a -> [membrane norm] -> s' = SRM(z)
    CUBA: a = s      -> [PSP norm] -> z = W a -> [membrane norm] -> s' = CUBA(z)

Convs run as ``conv2d`` on a (T*N, C, H, W) channels-last view of the time-major
tensor; lava-dl's ``synapse.Conv`` (conv3d over NCHWT) is 2-4x slower on a CPU
(DESIGN.md sec. 2), which is why the synapse is not lava-dl's here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from psplava.errors import ConfigError
from psplava.train.arch import LayerSpec, conv_output_size, parse_arch
from psplava.train.neuron import CubaNeuron, CubaParams, SRMNeuron, SRMParams
from psplava.train.norm import MembraneNorm, NormKind, PSPNorm


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


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
        norm = NormKind(model.norm)
        self.neuron_kind = model.neuron
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
            theta = SRMParams(**(model.srm or {})).theta if model.neuron == "srm" else \
                CubaParams(**(model.cuba or {})).threshold
            gamma = 1.0 if norm is NormKind.TDBN else model.init_gain * theta
            self.post = MembraneNorm(norm, spec.out, model.steps, theta=theta, gamma_init=gamma)
        elif spec.post_norm and norm.on_psp:
            raise ConfigError(f"norm {norm.value} acts on the PSP: write the marker before the "
                              f"layer ('n8c3'), not after ('8c3n')")
        if model.neuron == "srm":
            self.neuron = SRMNeuron(SRMParams(**(model.srm or {})))
            theta = self.neuron.params.theta
        elif model.neuron == "cuba":
            self.neuron = CubaNeuron(CubaParams(**(model.cuba or {})))
            theta = self.neuron.params.threshold
        else:
            raise ConfigError(f"unknown neuron {model.neuron!r}; expected 'srm' or 'cuba'")
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

    def synaptic_input(self, s: torch.Tensor) -> torch.Tensor:
        """``a`` of the incoming spikes (alpha PSP for SRM, the spikes for CUBA)."""
        return self.neuron.psp(s) if self.neuron_kind == "srm" else s

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        a = self.synaptic_input(s)
        if self.spec.kind == "dense" and a.dim() > 3:
            a = a.flatten(2)
        if self.pre is not None:
            a = self.pre(a)
        if self.spec.kind == "conv":
            T, N = a.shape[:2]
            z = F.conv2d(_to_nchw(a), self.weight, stride=self.spec.stride,
                         padding=self.spec.kernel // 2)
            z = _from_nchw(z, T, N)
        else:
            z = a @ self.weight.t()
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
        for layer in self.layers:
            s = layer(s)
            rates.append(float(s.detach().mean()))
        self.last_rates = rates
        return s
