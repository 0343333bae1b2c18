"""A CUBA ``.net`` file through NIR into snnTorch, against psplava's bit-exact reference
engine, layer by layer, on held-out recordings of the file's run.

    .venv/bin/python scripts/nir_compare.py results/deployed/cuba_psp_bn/model.net --limit 20

For each neuron layer k the graph is cut after k (``to_nir(layers[:k+1])``), imported with
``snntorch.import_nir.import_from_nir`` and stepped; its spikes are compared with the
reference engine's layer k shifted by k steps (Lava's synapses deliver one step late, NIR's
edges at once).  Prints per-layer spike counts and the fraction of (neuron, step) pairs
that differ, and how often the two predict the same class; last line JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import numpy as np


def main() -> None:
    import torch
    from snntorch.import_nir import import_from_nir

    from psplava.data import dataset_from_config
    from psplava.export.nir_export import to_nir
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import run_fixed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    net = read_netfile(args.model)
    ds = dataset_from_config(json.loads(net.attrs["config"]), "val", None, None, args.limit)
    cut = [i for i, layer in enumerate(net.layers) if layer.type in ("conv", "dense")]
    L = len(cut)
    models = []
    for i in cut:
        with contextlib.redirect_stdout(io.StringIO()):   # the importer's chatter
            models.append(import_from_nir(to_nir(net.layers[:i + 1])))
    ref_counts, nir_counts, diff, total = np.zeros(L), np.zeros(L), np.zeros(L), np.zeros(L)
    same_class = 0
    for s in range(len(ds)):
        x, _ = ds[s]
        T = x.shape[0]
        xp = np.concatenate([x, np.zeros((L, *x.shape[1:]), x.dtype)])[:, None]
        ref = run_fixed(net, xp)
        xt = torch.from_numpy(xp).float().permute(0, 1, 4, 2, 3)
        for k, model in enumerate(models):
            for m in model.modules():   # snnTorch keeps neuron state in the modules:
                if hasattr(m, "reset_mem"):   # every recording starts from rest
                    m.reset_mem()
            state, outs = None, []
            with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                for t in range(T):
                    o, state = model(xt[t], state) if state is not None else model(xt[t])
                    outs.append(o.reshape(-1))
            sn = torch.stack(outs).numpy() > 0
            r = ref[k][k + 1:k + 1 + T, 0]
            r = r.transpose(0, 3, 1, 2).reshape(T, -1) if r.ndim == 4 else r.reshape(T, -1)
            ref_counts[k] += r.sum()
            nir_counts[k] += sn.sum()
            diff[k] += (r != sn).sum()
            total[k] += r.size
            if k == L - 1:
                same_class += int(r.sum(0).argmax() == sn.sum(0).argmax())
    print(f"{'layer':>5} {'reference spikes':>17} {'snnTorch spikes':>16} {'count diff':>10} "
          f"{'pairs differing':>15}")
    for k in range(L):
        print(f"{cut[k]:5d} {ref_counts[k]:17.0f} {nir_counts[k]:16.0f} "
              f"{(nir_counts[k] - ref_counts[k]) / max(ref_counts[k], 1):+10.2%} "
              f"{diff[k] / total[k]:15.3%}")
    print(f"same predicted class: {same_class} / {len(ds)}")
    print(json.dumps({"samples": len(ds), "layers": cut, "reference_spikes": ref_counts.tolist(),
                      "snntorch_spikes": nir_counts.tolist(),
                      "pairs_differing": (diff / total).tolist(),
                      "same_class": same_class}))


if __name__ == "__main__":
    main()
