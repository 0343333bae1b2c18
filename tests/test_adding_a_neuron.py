"""docs/design.md, "Adding a neuron": the walk-through's two modules, run as written.

The two Python blocks of that section are written to two modules
(``psplava.neurons.srm_adaptive`` and ``psplava.train.neurons.srm_adaptive``), imported,
and a toy neuron type (SRM with an adaptive threshold) goes through the whole chain: a
training step, export, the file read back and run in the reference engine and in Lava.
No source file of the repository is added or changed for it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "design.md"
T = 30
SPEC = {"arch": "12x12x2-n6c3s2-n10", "neuron": "srm_adaptive", "norm": "psp_bn",
        "steps": T, "init_gain": 2.5, "srm": {"tau_a": 15.0, "adapt": 0.4}}


def _blocks() -> list[str]:
    text = DOC.read_text()
    section = text[text.index("## Adding a neuron"):]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _load(name: str, code: str, folder: Path):
    """Import ``code`` as module ``name`` (its parent package gets the attribute)."""
    path = folder / (name.replace(".", "_") + ".py")
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, leaf = name.rpartition(".")
    setattr(sys.modules[parent], leaf, module)
    return module


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import psplava.neurons
    import psplava.train.neurons

    names = ("psplava.neurons.srm_adaptive", "psplava.train.neurons.srm_adaptive")
    for name in names:
        rel = Path(*name.split(".")[1:]).with_suffix(".py")
        assert not (ROOT / rel).exists() and not (ROOT / "psplava" / rel).exists(), \
            "the walk-through must not need a source file of its own"
    blocks = _blocks()
    assert len(blocks) == 2, "the section holds the core module and the training module"
    folder = tmp_path_factory.mktemp("toy_neuron")
    core = _load(names[0], blocks[0], folder)
    train = _load(names[1], blocks[1], folder)
    yield core, train
    psplava.neurons.REGISTRY.pop("SRMA", None)
    psplava.train.neurons.TRAINING_NEURONS.pop("srm_adaptive", None)
    for name in names:
        sys.modules.pop(name, None)


def _x(n: int = 3, seed: int = 0) -> np.ndarray:
    """Spikes in the reference engine's layout (T, N, H, W, C)."""
    return (np.random.default_rng(seed).random((T, n, 12, 12, 2)) < 0.15)


def test_a_toy_neuron_trains_exports_and_runs_in_both_engines(toy, tmp_path):
    from psplava.deploy.plan import plan
    from psplava.export.exporter import export_checkpoint
    from psplava.netfile import NeuronGroup, read_netfile
    from psplava.sim.fixed import internal_to_lava, run_fixed
    from psplava.sim.lava_engine import run_lava
    from psplava.train.config import DEFAULTS, deep_merge
    from psplava.train.model import SNN
    from psplava.train.checkpoint import save_checkpoint

    core, train = toy
    # a training step: gradients reach the weights through the toy's surrogate
    torch.manual_seed(0)
    model = SNN(SPEC)
    assert isinstance(model.layers[0].neuron, train.AdaptiveSRMNeuron)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    x = torch.from_numpy(_x(4).astype(np.float32))
    out = model(x)
    loss = ((out.mean(0) - 0.1) ** 2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))

    # export, and read the file back through the registry
    cfg = deep_merge(DEFAULTS, {"model": SPEC, "data": {"steps": T, "dt_ms": 1.0,
                                                         "dataset": "digits", "root": None}})
    ckpt = tmp_path / "toy.pt"
    model.eval()
    save_checkpoint(ckpt, model, cfg)
    path = tmp_path / "toy.net"
    export_checkpoint(ckpt, path)
    net = read_netfile(path)
    neurons = [l for l in net.layers if l.neuron]
    assert [l.model.type_name for l in neurons] == ["SRMA", "SRMA"]
    group = neurons[0].neuron.group()   # the file's keys, as written
    assert group["tauA"] == 15.0 and group["adapt"] == 0.4
    assert isinstance(neurons[0].hardware, core.AdaptiveHardware)
    assert net.version == 5 and "psDecay" not in group

    # the reference engine equals the model in loihi arithmetic, layer by layer
    xs = _x(3, seed=1)
    ref = run_fixed(net, xs)
    loihi_model = SNN({**SPEC, "arithmetic": "loihi"})
    loihi_model.load_state_dict(model.state_dict())
    loihi_model.eval()
    with torch.no_grad():
        own = loihi_model.layer_spikes(torch.from_numpy(xs.astype(np.float32)))
    for i, (a, b) in enumerate(zip(ref, own)):
        assert a.sum() > 10, f"layer {i} nearly silent"
        assert int((a != b.numpy().astype(bool)).sum()) == 0, f"layer {i}: model differs"

    # the adaptation acts: the same file read as plain SRM spikes more
    for l in neurons:
        group = {k: v for k, v in l.neuron.group().items() if k not in ("tauA", "adapt")}
        l.neuron = NeuronGroup.read({**group, "type": "SRM"}, "as plain SRM")
    plain = run_fixed(net, xs)
    assert sum(int(p.sum()) for p in plain) > sum(int(a.sum()) for a in ref)

    # Lava equals the reference engine, spike for spike
    for n in range(2):
        lava = run_lava(path, internal_to_lava(xs[:, n:n + 1].astype(np.int32))[0])
        assert len(lava) == len(ref)
        for i, (a, b) in enumerate(zip(lava, ref)):
            assert int((a != internal_to_lava(b[:, n:n + 1])[0]).sum()) == 0, \
                f"sample {n}, layer {i}: Lava differs"

    # the deploy plan asks the registry: the toy runs as microcode
    assert plan(read_netfile(path))["needs_microcode"] == [l.index for l in neurons]
