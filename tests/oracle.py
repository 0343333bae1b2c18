"""An independent oracle for ``.net`` files, written from ``docs/netfile.md`` only.

It shares no code with psplava: it reads the HDF5 file with h5py and steps every neuron
with plain Python integers (``int``), one sample, one step, one neuron at a time.  Slow, and
meant only for the tiny networks of the golden tests.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

S = 4096  # PSP state units per spike (docs/netfile.md, "SRM")
U = 16    # PSP message units per spike: the message is (y + 128) // 256


def _txt(v) -> str:
    v = v[()] if hasattr(v, "shape") else v
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode() if isinstance(v, bytes) else str(v)


def _round_decay(v: int, d: int) -> int:
    p = v * (4096 - d)
    return (1 if p > 0 else -1 if p < 0 else 0) * ((abs(p) + 2048) // 4096)


def _trunc_decay(v: int, d: int) -> int:
    p = v * (4096 - d)
    return (1 if p > 0 else -1 if p < 0 else 0) * (abs(p) // 4096)


def _wrap24(v: int) -> int:
    return (v + (1 << 23)) % (1 << 24) - (1 << 23)


def read(path):
    layers = []
    with h5py.File(path, "r") as f:
        for i in range(len(f["layer"])):
            g = f["layer"][str(i)]
            L = {"type": _txt(g["type"]), "shape": tuple(int(v) for v in g["shape"][()])}
            for k in ("weight", "bias", "stride", "padding"):
                if k in g:
                    L[k] = np.asarray(g[k][()]).astype(np.int64)
            if "neuron" in g:
                L["neuron"] = {k: (_txt(g["neuron"][k]) if k in ("type", "refractory")
                                   else g["neuron"][k][()].item()) for k in g["neuron"]}
                n = L["neuron"]
                # format 5 stores the time constants alone: 12-bit decays
                # round(4096 (1 - exp(-1/tau))) (docs/netfile.md, "SRM")
                for key, tau in (("psDecay", "tauS"), ("refDecay", "tauR")):
                    if tau in n and key not in n:
                        n[key] = int(round(4096 * (1 - math.exp(-1 / float(n[tau])))))
            if "dynamicThreshold" in g:
                d = g["dynamicThreshold"]
                L["lambda"] = float(d["lambda"][()])
                if "priorSteps" in d:
                    L["prior"] = (float(d["prior"][()]), float(d["priorSteps"][()]))
            L["skips"] = []
            for j in sorted(g["skip"].keys(), key=int) if "skip" in g else []:
                k = g["skip"][j]
                sk = {"source": int(k["source"][()]), "mode": _txt(k["mode"])}
                if sk["mode"] == "conv":
                    sk.update(type="conv", shape=L["shape"],
                              weight=np.asarray(k["weight"][()]).astype(np.int64),
                              stride=np.asarray(k["stride"][()]), padding=np.asarray(
                                  k["padding"][()]))
                sk["index"] = i
                L["skips"].append(sk)
            L["index"] = i
            layers.append(L)
    return layers


def _synapse(L, msg, in_chw):
    """Integer synaptic input (flat list, (C, H, W) order) of an integer message in
    (C, H, W) order."""
    if L["type"] == "dense":
        W = L["weight"]
        return [sum(int(W[o, i]) * int(msg[i]) for i in range(len(msg)) if msg[i])
                for o in range(W.shape[0])]
    C, H, Wd = in_chw
    W = L["weight"]  # (out, in, kh, kw)
    oc, oh, ow = L["shape"]
    k = W.shape[2]
    st, pd = int(L["stride"][0]), int(L["padding"][0])
    m = np.asarray(msg, dtype=object).reshape(C, H, Wd)
    out = []
    for o in range(oc):
        for yy in range(oh):
            for xx in range(ow):
                acc = 0
                for c in range(C):
                    for dy in range(k):
                        for dx in range(k):
                            iy, ix = yy * st - pd + dy, xx * st - pd + dx
                            if 0 <= iy < H and 0 <= ix < Wd and m[c, iy, ix]:
                                acc += int(W[o, c, dy, dx]) * int(m[c, iy, ix])
                out.append(_wrap24(acc))
    return out


def run(path, x: np.ndarray) -> list[np.ndarray]:
    """Spikes of every neuron layer, each (T, n) in (C, H, W) flatten order, for one sample
    ``x`` of shape (T, C, H, W) (0/1)."""
    layers = read(path)
    in_chw = layers[0]["shape"]
    net = [L for L in layers if L["type"] in ("conv", "dense")]
    srm = net[0]["neuron"]["type"] == "SRM"
    T = x.shape[0]
    spikes_in = [list(map(int, x[t].reshape(-1))) for t in range(T)]
    outs = []
    shape = in_chw
    # residual networks (format 3 "skip" inputs): every layer's spikes, shape and membrane
    # input per step, by file index
    hist = {0: (spikes_in, in_chw, None)}
    for L in net:
        n_out = int(np.prod(L["shape"]))
        p = L["neuron"]
        s_out = [[0] * n_out for _ in range(T)]
        if srm:
            dq = int(p["psDecay"])
            dr = int(p["refDecay"])
            theta = int(p["vThMant"]) * U
            alpha = p["refractory"] == "alpha"
            g_ref = round(-2 * theta * math.e / float(p["tauR"])) if alpha else -2 * theta
            n_in = len(spikes_in[0])
            px, py = [0] * n_in, [0] * n_in
            rx, ry = [0] * n_out, [0] * n_out
            sq_sum = 0
            bias = [0] * n_out
            if "bias" in L:
                per = n_out // len(L["bias"])
                bias = [int(L["bias"][j // per]) * U for j in range(n_out)]
            c = math.e / (float(p["tauS"]) * U)
            z_hist = []
            for t in range(T):
                # the PSP at step t depends on input spikes before t
                msg = [(v + 128) // 256 for v in py]
                sq_sum += sum(v * v for v in msg)
                z = _synapse(L, msg, shape)
                for sk in L["skips"]:
                    src_spikes, src_shape, src_z = hist[sk["source"]]
                    if sk["mode"] == "membrane":
                        z = [a + b for a, b in zip(z, src_z[t])]
                    else:  # the source's PSP (this layer's decay) through the skip's conv
                        st = sk.setdefault("state", ([0] * len(src_spikes[0]),
                                                     [0] * len(src_spikes[0])))
                        smsg = [(v + 128) // 256 for v in st[1]]
                        z = [a + b for a, b in zip(z, _synapse(sk, smsg, src_shape))]
                        for i, sp in enumerate(src_spikes[t]):
                            inc = S * sp
                            st[0][i], st[1][i] = (_round_decay(st[0][i] + inc, dq),
                                                  _round_decay(st[1][i] + st[0][i] + inc, dq))
                z_hist.append(z)
                if "prior" in L:   # format 4: the running mean starts from a prior
                    p_m2, n0 = L["prior"]
                    m2 = ((c * c) * (float(sq_sum) / float(n_in)) + n0 * p_m2) / \
                        (float(t + 1) + n0)
                else:
                    m2 = (c * c) * (float(sq_sum) / float((t + 1) * n_in))
                for j in range(n_out):
                    zj = z[j] + bias[j]
                    if "lambda" in L:
                        fire = float(zj) >= math.sqrt(m2 + L["lambda"]) * float(theta - ry[j])
                    else:
                        fire = zj + ry[j] >= theta
                    s_out[t][j] = int(fire)
                    inc = g_ref if fire else 0
                    if alpha:
                        rx[j], ry[j] = (_round_decay(rx[j] + inc, dr),
                                        _round_decay(ry[j] + rx[j] + inc, dr))
                    else:
                        ry[j] = _round_decay(ry[j] + inc, dr)
                for i in range(n_in):
                    inc = S * spikes_in[t][i]
                    px[i], py[i] = (_round_decay(px[i] + inc, dq),
                                    _round_decay(py[i] + px[i] + inc, dq))
        else:
            du, dv = int(p["iDecay"]), int(p["vDecay"])
            vth = int(p["vThMant"]) << 6
            u, v = [0] * n_out, [0] * n_out
            prev = [0] * len(spikes_in[0])  # the synapse delivers last step's spikes
            for t in range(T):
                a = _synapse(L, prev, shape)
                for j in range(n_out):
                    cur = _trunc_decay(u[j], du) + (a[j] << 6)
                    if cur > (1 << 23):
                        cur -= 1 << 24
                    elif cur <= -(1 << 23):
                        cur += 1 << 24
                    u[j] = cur
                    vv = max(min(_trunc_decay(v[j], dv) + u[j], (1 << 23) - 1), -(1 << 23) + 1)
                    fire = vv > vth
                    v[j] = 0 if fire else vv
                    s_out[t][j] = int(fire)
                prev = spikes_in[t]
        outs.append(np.array(s_out, dtype=np.int8))
        hist[L["index"]] = (s_out, L["shape"], z_hist if srm else None)
        spikes_in = s_out
        shape = L["shape"]
    return outs
