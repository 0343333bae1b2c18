"""Conversions that start a fine-tune: SRM -> CUBA, and an unnormalized model -> PSP norm.

**Unnormalized -> PSP-BN / PSP-LN / causal PSP-LN** (:func:`add_psp_norm`, issue 21's
warm start).  A layer with a PSP norm computes ``z = W' a / sqrt(m2 + lambda)``; the
unnormalized source computes ``z = W a``.  The conversion measures ``m2`` of every layer's
input PSP on a calibration batch run through the source and sets ``W' = W sqrt(M + lambda)``:

- PSP-BN: ``M`` per input channel, also set as the running second moment, so the
  converted network *in inference* computes exactly what the source computes;
- PSP-LN and causal PSP-LN: ``M`` = the batch mean of the per-sample whole-window ``m2``
  (a per-layer scalar): exact for a sample whose ``m2`` is the batch mean, close for the
  rest, and the fine-tune learns the difference.

Everything folds as before (the weights or the dynamic threshold), so the result deploys.

**SRM -> CUBA**: the start of a fine-tune onto Loihi 2's stock neuron.

Public Lava has no neuron microcode for SRM layers (``docs/loihi2.md``), so a model that
must run on a chip today has to become CUBA.  The two neurons share their synaptic filter:

- SRM: ``z(t) = W a(t)`` with the alpha PSP ``a(t) = (e / tau_s) sum_{k>=1} k q^k s(t-k)``,
  ``q = decay_per_step(tau_s)`` (:mod:`psplava.neurons.srm`); spike when ``z + r >= theta``, with the
  refractory drop ``r`` (-2 theta, decaying with tau_r).
- CUBA (lava-dl): ``i <- (1 - du) i + W' s``, ``v <- (1 - dv) v + i``; with ``du = dv = 1 - q``
  ``v(t) = W' sum_{k>=0} (k + 1) q^k s(t-k)``, and this project's CUBA layer sees its input
  one step late (``loihi.delay_one``), so ``v(t) = W' sum_{k>=1} k q^(k-1) s(t-k)``:
  **equal to the SRM's z(t) when ``W' = (e / tau_s) q W``** (times ``theta_cuba / theta``
  when the thresholds differ); spike when ``v >= theta_cuba``.
- What does not carry over: the refractory drop becomes CUBA's reset to 0 (the current
  stays, so a strongly driven CUBA neuron fires again sooner), and each CUBA layer adds a
  step of latency.  The fine-tune (``psplava train --init-from SRM_CKPT`` with
  ``model.neuron: cuba``) learns the difference; its start and end accuracies are measured
  (``start.json`` and ``metrics.jsonl`` of the run).

PSP-BN: the SRM layer normalizes its input *PSP* per channel (``1 / sqrt(m2_a + lambda)``),
the CUBA layer its input *spikes* (``1 / sqrt(m2_s + lambda)``, ``m2_s`` = the channel's
mean squared spike count).  The conversion measures ``m2_s`` on a calibration batch run
through the SRM model, sets it as the CUBA layer's running statistics and multiplies the
weights by ``sqrt(m2_s + lambda) / sqrt(m2_a + lambda)`` so both normalized synapses give the
same ``z``.  Whole-window and causal PSP-LN (a per-sample scale) and the membrane norms
(BN, BNTT, tdBN: statistics of z itself, in other units) are refused by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from psplava.errors import ConfigError
from psplava.neurons import srm
from psplava.train.model import SNN
from psplava.train.neurons import training_neuron
from psplava.train.neurons.cuba import CubaNeuron
from psplava.train.neurons.srm import SRMNeuron
from psplava.train.norm import NormKind, sample_m2_mean

_CONVERTIBLE_NORMS = (NormKind.NONE, NormKind.PSP_BN)


@dataclass(frozen=True)
class NormWarmStart:
    """What :func:`add_psp_norm` measured: each layer's input ``m2`` (mean over channels;
    None for a layer without the norm marker)."""

    kind: ClassVar[str] = "norm warm start"
    norm: str
    layer_m2: tuple[float | None, ...]

    def to_json(self) -> dict[str, Any]:
        """``start.json``'s ``conversion``."""
        return {"kind": self.kind, "norm": self.norm,
                "layers": [{"m2": m} for m in self.layer_m2]}


@dataclass(frozen=True)
class SrmToCuba:
    """What :func:`srm_to_cuba` did: each layer's weight gain, and whether the CUBA decays
    match the SRM's PSP (an equivalent start) or not."""

    kind: ClassVar[str] = "SRM -> CUBA"
    weight_gains: tuple[float, ...]
    tau_s: float
    matching_decay: float        # CUBA's current and voltage decay that equal the PSP
    current_decay: float         # the config's
    voltage_decay: float
    calibrated: bool             # PSP-BN's statistics measured on a calibration batch

    @property
    def decays_match(self) -> bool:
        return bool(abs(self.current_decay - self.matching_decay) < 1e-3
                    and abs(self.voltage_decay - self.matching_decay) < 1e-3)

    def to_json(self) -> dict[str, Any]:
        """``start.json``'s ``conversion``."""
        return {"kind": self.kind, "layers": [{"weight_gain": g} for g in self.weight_gains],
                "tau_s": self.tau_s, "matching_decay": self.matching_decay,
                "current_decay": self.current_decay, "voltage_decay": self.voltage_decay,
                "decays_match": self.decays_match, "calibrated": self.calibrated}


#: a fine-tune's conversion summary
Conversion = NormWarmStart | SrmToCuba


def _same_layers(src: SNN, dst: SNN, source: str) -> None:
    names = lambda m: {k: tuple(v.shape) for k, v in m.named_parameters()}  # noqa: E731
    if names(src) != names(dst):
        raise ConfigError(f"{source}: cannot convert: its layers differ from the config's "
                          f"(architecture {src.spec.arch!r} against {dst.spec.arch!r})")


def add_psp_norm(src: SNN, dst: SNN, calibration: Callable[[], torch.Tensor] | None,
                 source: str = "checkpoint") -> NormWarmStart:
    """Load the unnormalized network ``src`` into ``dst`` (same neuron and layers, a PSP
    norm), with the measured PSP scale folded into the weights (module docstring).
    Returns what it measured."""
    norm = NormKind(dst.spec.norm)
    if NormKind(src.spec.norm) is not NormKind.NONE or not norm.on_psp:
        raise ConfigError(f"{source}: a norm warm start goes from norm none to a PSP norm, "
                          f"not {src.spec.norm} to {dst.spec.norm}")
    if src.spec.neuron != dst.spec.neuron:
        raise ConfigError(f"{source}: a norm warm start keeps the neuron "
                          f"({src.spec.neuron} against {dst.spec.neuron})")
    _same_layers(src, dst, source)
    if any(layer.shortcut is not None for layer in dst.layers):
        raise ConfigError(f"{source}: a norm warm start of residual blocks is not supported "
                          "(the shortcut carries the normalized PSP, which the weights of "
                          "the block cannot rescale)")
    if calibration is None:
        raise ConfigError(f"{source}: a norm warm start needs a calibration batch")
    x = calibration()
    src.eval()
    layer_m2: list[float | None] = []
    with torch.no_grad():
        outs = src.layer_spikes(x)
        inputs = [x] + outs[:-1]
        dst.load_state_dict(src.state_dict(), strict=False)
        for i, (a, b) in enumerate(zip(src.layers, dst.layers)):
            if b.pre is None:   # a layer written without the norm marker
                layer_m2.append(None)
                continue
            psp = a.normalized_input(inputs[i][: x.shape[0]]).double()  # src: no norm
            if norm is NormKind.PSP_BN:
                m2 = psp.square().mean(dim=tuple(range(psp.dim() - 1)))      # (C,)
                b.pre.running_m2.copy_(m2.to(b.pre.running_m2))
            else:
                m2 = sample_m2_mean(psp)  # a per-layer scalar
                if getattr(b.pre, "prior_steps", 0.0):  # causal PSP-LN's prior starts here
                    b.pre.prior_m2.copy_(m2.to(b.pre.prior_m2))
            gain = torch.sqrt(m2 + b.pre.lam)
            if gain.dim():
                gain = gain.view((1, -1, 1, 1) if a.spec.kind == "conv" else (1, -1))
            b.weight.copy_((a.weight.detach().double() * gain).to(b.weight))
            layer_m2.append(round(float(m2.mean()), 6))
    return NormWarmStart(norm=norm.value, layer_m2=tuple(layer_m2))


def cuba_weight_gain(tau_s: float, theta_srm: float, theta_cuba: float) -> float:
    """``W_cuba / W_srm`` that makes CUBA's voltage equal SRM's membrane input (see above)."""
    q = srm.decay_per_step(tau_s)
    return (theta_cuba / theta_srm) * (math.e / tau_s) * q


def matching_decay(tau_s: float) -> float:
    """CUBA's current and voltage decay (lava-dl's units: fraction lost per step) whose
    double filter is the alpha kernel of time constant ``tau_s``."""
    return 1.0 - srm.decay_per_step(tau_s)


def _spike_m2(s: torch.Tensor, dense: bool) -> torch.Tensor:
    """Mean squared input per norm channel of spikes (T, N, ..., C): what CUBA's PSP-BN
    measures (for a dense layer, per flattened input feature)."""
    if dense and s.dim() > 3:
        s = s.flatten(2)
    return s.double().square().mean(dim=tuple(range(s.dim() - 1)))


def srm_to_cuba(src: SNN, dst: SNN, calibration: Callable[[], torch.Tensor] | None = None,
                source: str = "checkpoint") -> SrmToCuba:
    """Load the SRM network ``src``'s parameters into the CUBA network ``dst`` (same
    architecture and norm), converted as the module docstring says.  Returns the gains and
    decays (and whether the decays match the PSP)."""
    if training_neuron(src.spec.neuron) is not SRMNeuron or \
            training_neuron(dst.spec.neuron) is not CubaNeuron:
        raise ConfigError(f"{source}: conversion goes from SRM to CUBA, not "
                          f"{src.spec.neuron} to {dst.spec.neuron}")
    if src.spec.arch != dst.spec.arch:
        raise ConfigError(f"{source}: cannot convert: architecture {src.spec.arch!r} differs "
                          f"from the config's {dst.spec.arch!r}")
    norm_src, norm_dst = NormKind(src.spec.norm), NormKind(dst.spec.norm)
    if norm_src is not norm_dst:
        raise ConfigError(f"{source}: cannot convert {norm_src.value} to {norm_dst.value}: an "
                          "SRM -> CUBA conversion keeps the norm")
    if norm_src not in _CONVERTIBLE_NORMS:
        raise ConfigError(f"{source}: SRM -> CUBA conversion supports norm none and psp_bn, "
                          f"not {norm_src.value} (a per-sample or membrane statistic has no "
                          "CUBA counterpart with the same weights)")
    if any(layer.spec.pool is not None for layer in src.layers):
        raise ConfigError(f"{source}: SRM -> CUBA conversion of pooled layers is not "
                          "supported (the pooled PSP and the pooled spikes differ)")
    m2s: list[torch.Tensor | None] = [None] * len(src.layers)
    if norm_src is NormKind.PSP_BN:
        if calibration is None:
            raise ConfigError(f"{source}: converting PSP-BN needs a calibration batch")
        x = calibration()
        src.eval()
        with torch.no_grad():
            outs = src.layer_spikes(x)
        inputs = [x] + outs[:-1]
        for i, layer in enumerate(src.layers):
            if layer.pre is None:   # a layer written without the norm marker
                continue
            s = inputs[i][: x.shape[0]]  # drop the loihi forward's latency padding
            m2s[i] = _spike_m2(s, layer.spec.kind == "dense")
    theta_c = float(dst.layers[0].neuron.params.threshold)
    gains: list[float] = []
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(src.layers, dst.layers)):
            p = a.neuron.params
            g = cuba_weight_gain(p.tau_s, p.theta, theta_c)
            w = a.weight.detach().double() * g
            if m2s[i] is not None:
                # keep the folded synapse: W_c * scale_c == gain * W * scale_srm
                b.pre.running_m2.copy_(m2s[i].to(b.pre.running_m2))
                ratio = a.pre.scale().double() / b.pre.scale().double()
                w = w * ratio.view((1, -1, 1, 1) if a.spec.kind == "conv" else (1, -1))
            b.weight.copy_(w.to(b.weight))
            gains.append(g)
        p = src.layers[0].neuron.params
        cp = dst.layers[0].neuron.params
    return SrmToCuba(weight_gains=tuple(gains), tau_s=p.tau_s,
                     matching_decay=matching_decay(p.tau_s), current_decay=cp.current_decay,
                     voltage_decay=cp.voltage_decay, calibrated=norm_src is NormKind.PSP_BN)
