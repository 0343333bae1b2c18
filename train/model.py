"""The network builder: SRM or CUBA layers with PSP or membrane normalization.

A network is fully described by a plain ``dict`` (its *spec*: architecture string,
neuron, norm, their parameters, steps), so a checkpoint rebuilds it on its own.

Per synaptic layer, for input spikes ``s`` of shape (T, N, H, W, C) or (T, N, F):

    SRM:  a = psp(s) -> [PSP norm] -> z = W a -> [membrane norm] -> s' = SRM(z)
    CUBA: a = s      -> [PSP norm] -> z = W a -> [membrane norm] -> s' = CUBA(z)

Residual blocks (the paper's Fig. 3, ``r16`` / ``r32s2`` in the architecture string;
``model.block`` = ``pre`` or ``post``).  With ``F(x) = norm(psp(spike(x)))``:

    pre-activation:  h_{k+1} = h_k + G(h_k),     G = Conv-F-Conv after F: the stream h is a
                     membrane input; the block's second layer adds the membrane input of
                     the layer before the block (the ``membrane`` shortcut);
    post-activation: x_{k+1} = F(h_k + G(h_k)),  h_k = F(x_k), G = Conv-F-Conv: the second
                     layer adds the block's normalized input PSP (the ``identity`` shortcut).

A block that changes the shape (stride, width) uses a 1x1 ``projection`` conv of the
block's normalized input PSP instead of the identity, in both forms.  In loihi arithmetic
the layers a membrane shortcut joins share one weight scale, so integer membrane inputs
add exactly (:meth:`SNN.hardware`).

Convs run as ``conv2d`` on a (T*N, C, H, W) channels-last view of the time-major
tensor; lava-dl's ``synapse.Conv`` (conv3d over NCHWT) is 2-4x slower on a CPU
(docs/design.md, "Training kernels"), which is why the synapse is not lava-dl's here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from psplava.errors import ConfigError
from psplava.neurons import network_latency, neuron_model
from psplava.train import loihi_ops
from psplava.train.arch import LayerSpec, Shortcut, conv_output_size, parse_arch
from psplava.train.config import Arithmetic, BlockKind, ModelSpec, NormKind
from psplava.train.deployed import Folding, LayerHardware, LoihiForward
from psplava.train.deployed import from_nchw as _from_nchw
from psplava.train.deployed import to_nchw as _to_nchw
from psplava.train.norm import MembraneNorm, PSPNorm, statistics_frozen


class SpikingLayer(Folding, LoihiForward, nn.Module):
    """One synaptic layer (conv or dense) with its norms and neurons."""

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...], model: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.arithmetic = Arithmetic(model.arithmetic)
        self.k_max = float(model.k_max)
        norm = NormKind(model.norm)
        self.neuron = model.make_neuron()
        in_channels = in_shape[-1]
        self.in_shape = tuple(in_shape)      # before pooling
        if spec.pool is not None:
            kind_, k = spec.pool
            if len(in_shape) != 3:
                raise ConfigError(f"pooling {kind_}{k} needs a spatial input, got {in_shape}")
            h, w, c = in_shape
            in_shape = (h // k, w // k, c)
            if min(in_shape) < 1:
                raise ConfigError(f"pooling by {k} of a {h}x{w} input leaves nothing")
        self.pooled_shape = tuple(in_shape)  # what the synapse sees
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
        self.shortcut: Shortcut | None = None   # set by SNN for a block's second layer
        self.proj = None
        self.short_stride = 1
        norm_channels = in_channels if spec.kind == "conv" else fan_in
        self.pre = None
        self.post = None
        if spec.block is not None and norm.on_membrane:
            raise ConfigError(f"residual blocks use PSP normalization (psp_bn, psp_ln, "
                              f"causal_psp_ln) or none, not {norm.value}")
        if spec.pre_norm and norm.on_psp:
            self.pre = PSPNorm(norm, norm_channels, model.lam, prior_steps=model.prior_steps)
        elif spec.pre_norm and norm.on_membrane:
            raise ConfigError(f"norm {norm.value} acts on the membrane: write the marker after "
                              f"the layer ('8c3n'), not before ('n8c3')")
        if spec.post_norm and norm.on_membrane:
            theta = self.neuron.threshold
            gamma = 1.0 if norm is NormKind.TDBN else model.init_gain * theta
            self.post = MembraneNorm(norm, spec.out, model.steps, theta=theta, gamma_init=gamma)
        elif spec.post_norm and norm.on_psp:
            raise ConfigError(f"norm {norm.value} acts on the PSP: write the marker before the "
                              f"layer ('n8c3'), not after ('8c3n')")
        self._init(fan_in, self.neuron.threshold, model)

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

    def _synapse(self, a: torch.Tensor, w: torch.Tensor, stride: int, padding: int
                 ) -> torch.Tensor:
        if self.spec.kind == "conv":
            T, N = a.shape[:2]
            z = F.conv2d(_to_nchw(a), w, stride=stride, padding=padding)
            return _from_nchw(z, T, N)
        return a @ w.t()

    def _pool(self, a: torch.Tensor) -> torch.Tensor:
        """The spec's pooling of a PSP tensor (T, N, H, W, C)."""
        kind, k = self.spec.pool
        T, N = a.shape[:2]
        fn = F.avg_pool2d if kind == "avg" else F.max_pool2d
        return _from_nchw(fn(_to_nchw(a), k, k), T, N)

    def synaptic_input(self, s: torch.Tensor) -> torch.Tensor:
        """``a`` of the incoming spikes (alpha PSP for SRM, the spikes for CUBA)."""
        return self.neuron.synaptic_input(s)

    def normalized_input(self, s: torch.Tensor) -> torch.Tensor:
        """``a_hat``: the PSP of the incoming spikes, pooled, flattened for a dense layer
        and normalized: what the synapse (and a block's shortcut) sees."""
        a = self.synaptic_input(s)
        if self.spec.pool is not None:
            a = self._pool(a)
        if self.spec.kind == "dense" and a.dim() > 3:
            a = a.flatten(2)
        return a if self.pre is None else self.pre(a)

    def membrane(self, a_hat: torch.Tensor) -> torch.Tensor:
        z = self._synapse(a_hat, self.weight, self.spec.stride,
                          self.spec.kernel // 2 if self.spec.kind == "conv" else 0)
        return z if self.post is None else self.post(z)

    @property
    def conv_shortcut(self) -> bool:
        """An identity or projection shortcut (a 1x1 conv of the block input's PSP)."""
        return self.shortcut is not None and self.shortcut.via_conv

    def shortcut_input(self, block_a_hat: torch.Tensor) -> torch.Tensor:
        """Float identity / projection shortcut of the block's normalized input."""
        if self.shortcut is Shortcut.IDENTITY:
            return block_a_hat
        T, N = block_a_hat.shape[:2]
        z = F.conv2d(_to_nchw(block_a_hat), self.proj, stride=self.short_stride)
        return _from_nchw(z, T, N)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """One plain layer (no shortcut); a block's layers run through :class:`SNN`."""
        if self.shortcut is not None:
            raise RuntimeError("a residual block's second layer runs inside SNN.forward")
        if self.arithmetic is Arithmetic.LOIHI:
            return self.forward_loihi(s)[0]
        return self.neuron(self.membrane(self.normalized_input(s)))


class SNN(nn.Module):
    """A spiking network built from a :class:`ModelSpec`: a chain of layers, residual
    blocks among them (their second layer adds a shortcut; see the module docstring).

    ``forward(x)`` takes input spikes (T, N, H, W, C) and returns the output layer's
    spikes (T, N, classes).  After each forward pass ``last_rates`` holds the mean firing
    rate (spikes per neuron per step) of every layer.
    """

    def __init__(self, spec: ModelSpec | dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
        norm = NormKind(self.spec.norm)
        self.input_shape, layer_specs = parse_arch(self.spec.arch)
        shape: tuple[int, ...] = self.input_shape
        layers: list[SpikingLayer] = []
        shapes = [shape]
        for i, ls in enumerate(layer_specs):
            layer = SpikingLayer(ls, shape, self.spec)
            if ls.block == "second":
                self._attach_shortcut(i, layer, layers, shapes, norm)
            layers.append(layer)
            shape = layer.out_shape
            shapes.append(shape)
        self.layers = nn.ModuleList(layers)
        self.num_classes = int(math.prod(shape))
        self.last_rates: list[float] = []

    def _attach_shortcut(self, i: int, layer: SpikingLayer, layers: list[SpikingLayer],
                         shapes: list[tuple[int, ...]], norm: NormKind) -> None:
        if i < 2:
            raise ConfigError(f"architecture {self.spec.arch!r}: a residual block needs a "
                              "layer before it (a stem conv)")
        if not neuron_model(layer.neuron.type_name).skip_inputs:
            raise ConfigError("residual blocks are built from SRM neurons (the paper's); "
                              "use model.neuron: srm")
        if norm.on_membrane:
            raise ConfigError(f"residual blocks use PSP normalization (psp_bn, psp_ln, "
                              f"causal_psp_ln) or none, not {norm.value}")
        first = layers[i - 1]
        block_in, out = shapes[i - 1], layer.out_shape
        if block_in == out:
            layer.shortcut = (Shortcut.MEMBRANE if BlockKind(self.spec.block) is BlockKind.PRE
                              else Shortcut.IDENTITY)
        else:
            layer.shortcut = Shortcut.PROJECTION
            layer.short_stride = first.spec.stride
            layer.proj = nn.Parameter(torch.empty(out[-1], block_in[-1], 1, 1))
            theta = layer.neuron.params.theta
            nn.init.normal_(layer.proj, 0.0, self.spec.init_gain * theta
                            / math.sqrt(block_in[-1]))

    def hardware(self, k_max: float | None = None) -> list[LayerHardware]:
        """Every layer as the chip runs it.  Layers joined by membrane shortcuts (a
        pre-activation stream) share one weight scale -- the smallest any of them needs --
        so that their integer membrane inputs add exactly."""
        k_max = self.spec.k_max if k_max is None else float(k_max)
        n = len(self.layers)
        firsts = [self.layers[i - 1].pre if l.conv_shortcut else None
                  for i, l in enumerate(self.layers)]
        group = list(range(n))
        for i, l in enumerate(self.layers):
            if l.shortcut is Shortcut.MEMBRANE:
                group[i] = group[i - 2]
        floats = [l.deployed_float(firsts[i]) for i, l in enumerate(self.layers)]
        scales: dict[int, float] = {}
        for i, l in enumerate(self.layers):
            k = l.needed_scale(k_max, floats[i])
            scales[group[i]] = min(scales.get(group[i], k), k)
        return [l.hardware(k_max, scales[group[i]], firsts[i], floats[i])
                for i, l in enumerate(self.layers)]

    #: recompute residual blocks in the backward pass instead of keeping their
    #: activations (``train.checkpoint_blocks``; float training only)
    checkpoint_blocks: bool = False

    def _run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's spikes, in the model's arithmetic (shortcuts included)."""
        loihi_mode = Arithmetic(self.spec.arithmetic) is Arithmetic.LOIHI
        hws = self.hardware() if loihi_mode else None
        outs: list[torch.Tensor] = []
        zs: dict[int, torch.Tensor] = {}      # membrane inputs a later shortcut adds
        fronts: dict[int, torch.Tensor] = {}  # a block's first layer's input (PSP)
        need_z = {i - 2 for i, l in enumerate(self.layers) if l.shortcut is Shortcut.MEMBRANE}
        need_front = {i - 1 for i, l in enumerate(self.layers)
                      if l.conv_shortcut}
        recompute = (self.checkpoint_blocks and not loihi_mode and self.training
                     and torch.is_grad_enabled())
        s = x
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if recompute and nxt is not None and nxt.shortcut is not None and i not in need_z:
                z_prev = zs.pop(i - 1) if nxt.shortcut is Shortcut.MEMBRANE else None
                s1, s, z = self._checkpointed_block(i, s, z_prev)
                outs += [s1, s]
                if i + 1 in need_z:
                    zs[i + 1] = z
                i += 2
                continue
            extra = None
            if layer.shortcut is Shortcut.MEMBRANE:
                extra = zs.pop(i - 2)
            if loihi_mode:
                y = layer.neuron.integer_input(s)
                if layer.conv_shortcut:
                    hw = hws[i]
                    yb = fronts.pop(i - 1)
                    T, N = yb.shape[:2]
                    extra = _from_nchw(loihi_ops.integer_synapse(
                        _to_nchw(yb), hw.short_weight, "conv", hw.short_stride, 0,
                        self.layers[i - 1].neuron.integer_range()), T, N)
                if i in need_front:
                    fronts[i] = y
                s, z = layer.forward_loihi(s, hws[i], y, extra)
            else:
                a_hat = layer.normalized_input(s)
                if i in need_front:
                    fronts[i] = a_hat
                z = layer.membrane(a_hat)
                if layer.conv_shortcut:
                    extra = layer.shortcut_input(fronts.pop(i - 1))
                if extra is not None:
                    z = z + extra
                s = layer.neuron(z)
            if i in need_z:
                zs[i] = z
            outs.append(s)
            i += 1
        return outs

    def _block(self, i: int, s: torch.Tensor, z_prev: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A residual block (layers i, i+1) in float: (spikes of both layers, the second
        layer's membrane input); ``z_prev``: the membrane shortcut's input."""
        first, second = self.layers[i], self.layers[i + 1]
        a1 = first.normalized_input(s)
        s1 = first.neuron(first.membrane(a1))
        z = second.membrane(second.normalized_input(s1))
        if second.shortcut is Shortcut.MEMBRANE:
            z = z + z_prev
        else:
            z = z + second.shortcut_input(a1)
        return s1, second.neuron(z), z

    def _checkpointed_block(self, i: int, s: torch.Tensor, z_prev: torch.Tensor | None):
        """:meth:`_block` under activation checkpointing: only its inputs are kept, and the
        backward pass runs it again (without tracking PSP-BN statistics a second time)."""
        calls = [0]

        def run(s_in, z_in):
            calls[0] += 1
            if calls[0] == 1:
                return self._block(i, s_in, z_in)
            with statistics_frozen():
                return self._block(i, s_in, z_in)

        return checkpoint(run, s, z_prev, use_reentrant=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} does not match the network's "
                             f"(T, N, {', '.join(map(str, self.input_shape))})")
        outs = self.layer_spikes(x)
        self.last_rates = [float(o.detach().mean()) for o in outs]
        return outs[-1]

    @property
    def latency(self) -> int:
        """Steps the output lags the input in loihi arithmetic (and in the exported file);
        the loihi forward appends that many empty steps so that no output is cut off."""
        return network_latency({l.neuron.type_name for l in self.layers}, len(self.layers))

    def layer_spikes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's spikes (each (T', N, ...)) for input x, in the model's arithmetic."""
        if Arithmetic(self.spec.arithmetic) is Arithmetic.LOIHI and self.latency:
            x = torch.cat([x, x.new_zeros((self.latency, *x.shape[1:]))], dim=0)
        return self._run(x)
