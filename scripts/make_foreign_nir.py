"""Train the two foreign-framework networks of ``tests/test_nir_import.py`` and write their
NIR graphs with the frameworks' own exporters (issue 20).

- ``snntorch``: Conv2d(2, 8, 5, p1, no bias) -> AvgPool2d(2) -> Synaptic -> Conv2d(8, 16, 5) ->
  AvgPool2d(2) -> Leaky -> Flatten -> Linear(576, 10) -> Leaky, exported by
  ``snntorch.export_to_nir`` (which always writes dt = 1e-4 s);
- ``norse``: Conv2d(2, 8, 5, stride 2) -> IAF -> Conv2d(8, 16, 5, stride 2) -> IAF ->
  Conv2d(16, 10, 6) -> IAF (one neuron per class), exported by ``norse.torch.to_nir``
  (IAF has no dt: the graph means what Norse runs at dt = 1; Norse 1.1's exporter writes
  neither pooling nor Flatten, hence the strided convs and the 1x1 read-out).

Both train with their framework's own neurons and surrogate gradients on 900 of the
shared N-MNIST recordings (100 bins of 3 ms, binary, as psplava's loader bins them); the
tests compare on the other 100 (psplava's seeded validation split, ``--split val``).  Neurons reset to zero with no delay (snnTorch's
``reset_mechanism="zero", reset_delay=False``, what its NIR importer rebuilds): the graph
that is written is the network that was trained.

    .venv/bin/python scripts/make_foreign_nir.py snntorch --epochs 3
    .venv/bin/python scripts/make_foreign_nir.py norse --epochs 3

Writes ``tests/data/<framework>_nmnist.nir``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nmnist_small"
STEPS, BIN_MS, VAL = 100, 3.0, 100


def load(part: str):
    """(x (T, N, C, H, W), labels) of the training (``train``) or held-out (``val``)
    recordings: psplava's seeded split of the shared recordings (``train_val_split(1000,
    100, seed 0)``), what ``--split val --val-count 100`` selects in ``psplava import``."""
    from psplava.data import make_dataset, train_val_split

    ds = make_dataset("nmnist", DATA, "train", steps=STEPS, dt_ms=BIN_MS)
    idx = train_val_split(len(ds), VAL, 0)[0 if part == "train" else 1]
    xs = np.stack([ds[int(i)][0] for i in idx])     # (N, T, H, W, C)
    ys = np.array([ds[int(i)][1] for i in idx])
    return torch.from_numpy(xs).permute(1, 0, 4, 2, 3).contiguous(), torch.from_numpy(ys)


def snntorch_net():
    import snntorch as snn
    from snntorch import surrogate

    sg = surrogate.fast_sigmoid(slope=25)
    kw = dict(init_hidden=True, spike_grad=sg, reset_mechanism="zero", reset_delay=False)
    return torch.nn.Sequential(
        # no bias into the Synaptic layer: it would enter the current, which Loihi's bias
        # (added to the voltage) cannot hold; psplava import refuses it by name
        torch.nn.Conv2d(2, 8, 5, padding=1, bias=False), torch.nn.AvgPool2d(2),
        snn.Synaptic(alpha=0.5, beta=0.9, threshold=1.0, **kw),
        torch.nn.Conv2d(8, 16, 5), torch.nn.AvgPool2d(2),
        snn.Leaky(beta=0.9, threshold=1.0, **kw),
        torch.nn.Flatten(), torch.nn.Linear(576, 10),
        snn.Leaky(beta=0.9, threshold=1.0, output=True, **kw))


def snntorch_forward(net, x):
    from snntorch import utils

    utils.reset(net)
    out = []
    for t in range(x.shape[0]):
        spk = net(x[t])
        out.append(spk[0] if isinstance(spk, tuple) else spk)
    return torch.stack(out)


class NorseNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import norse.torch as norse

        self.seq = norse.SequentialState(
            torch.nn.Conv2d(2, 8, 5, stride=2), norse.IAFCell(),
            torch.nn.Conv2d(8, 16, 5, stride=2), norse.IAFCell(),
            torch.nn.Conv2d(16, 10, 6), norse.IAFCell())   # (10, 1, 1): one neuron a class
        # biases held at 0 (Norse 1.1's exporter needs a bias tensor): Lava adds a bias from
        # step 0, before a layer's delayed input arrives (psplava.export.nir_import); without
        # one the file maps exactly up to rounding
        for m in self.seq:
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.zeros_(m.bias)
                m.bias.requires_grad_(False)

    def forward(self, x):
        out, state = [], None
        for t in range(x.shape[0]):
            y, state = self.seq(x[t], state)
            out.append(y)
        return torch.stack(out)


def _fill_types(graph, seq: torch.nn.Sequential, sample: torch.Tensor) -> None:
    """Set the node types nirtorch left undefined (and nir.write needs: Conv2d's
    ``input_shape``) from the shapes a forward pass records; nodes are named by their
    index in ``seq``."""
    shapes = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, i=i: shapes.__setitem__(i, (tuple(inp[0].shape[1:]), tuple(
            (out[0] if isinstance(out, tuple) else out).shape[1:]))))
        for i, m in enumerate(seq)]
    if any(type(m).__module__.startswith("snntorch") for m in seq):
        from snntorch import utils

        utils.reset(seq)
    with torch.no_grad():
        seq(sample)
    for h in hooks:
        h.remove()
    for name, node in graph.nodes.items():
        if name.isdigit():
            i_shape, o_shape = shapes[int(name)]
            node.input_type = {"input": np.array(i_shape)}
            node.output_type = {"output": np.array(o_shape)}
            if hasattr(node, "input_shape"):
                node.input_shape = i_shape[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=["snntorch", "norse"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    x, y = load("train")
    n = len(y)
    if args.framework == "snntorch":
        net = snntorch_net()
        forward = lambda xb: snntorch_forward(net, xb)  # noqa: E731
    else:
        net = NorseNet()
        forward = net
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=args.lr)
    for epoch in range(args.epochs):
        perm = torch.randperm(n)
        t0, correct, total = time.time(), 0, 0
        for s in range(0, n, args.batch):
            idx = perm[s:s + args.batch]
            spk = forward(x[:, idx])
            counts = spk.sum(0).flatten(1)
            loss = torch.nn.functional.cross_entropy(counts, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((counts.argmax(1) == y[idx]).sum())
            total += len(idx)
        print(f"epoch {epoch}: train accuracy {correct / total:.3f} ({time.time() - t0:.0f} s)",
              flush=True)
    net.eval()
    out = Path(args.out or ROOT / "tests" / "data" / f"{args.framework}_nmnist.nir")
    sample = x[0, :1]   # one step of one sample; ignore_dims drops its batch axis
    if args.framework == "snntorch":
        import nirtorch
        import snntorch as snn
        from snntorch.export_nir import _extract_snntorch_module

        # snntorch.export_to_nir is this call followed by nir's infer_types, which fails
        # on conv graphs whose neurons have scalar parameters (snnTorch 1.0.0, nir 1.0.8:
        # "type mismatch: 1.output: [[ 8 16 16]] -> 2.input: []"); the nodes are snnTorch's
        graph = nirtorch.extract_nir_graph(
            net, _extract_snntorch_module, sample, model_name="snntorch",
            ignore_submodules_of=[snn.RLeaky, snn.RSynaptic], ignore_dims=[0])
        _fill_types(graph, net, sample)
    else:
        from functools import partial

        import nirtorch
        from norse.torch.utils.export_nir import _extract_norse_module

        # norse.torch.to_nir is this call without ignore_dims (its input type keeps the
        # batch axis) and with nirtorch's undefined conv types left as they are
        graph = nirtorch.extract_nir_graph(net.seq, partial(_extract_norse_module, dt=1e-3),
                                           sample, model_name="norse", ignore_dims=[0])
        _fill_types(graph, net.seq, sample)
    import nir

    # snnTorch's scalar neuron parameters are 0-d arrays, which h5py cannot compress
    nir.write(str(out), graph, compression=None)
    xv, yv = load("val")
    with torch.no_grad():
        acc = float((forward(xv).sum(0).flatten(1).argmax(1) == yv).float().mean())
    print(f"wrote {out}; accuracy of the {args.framework} model on the 100 held-out recordings: {acc:.2f}")


if __name__ == "__main__":
    main()
