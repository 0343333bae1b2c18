"""Export to .net: stock-netx compatibility, quantization report, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from psplava.cli import main
from psplava.export.exporter import export_checkpoint
from psplava import loihi
from psplava.netfile import FORMAT_VERSION, format_needed, read_netfile
from psplava.train.config import DEFAULTS, deep_merge
from psplava.train.model import SNN
from psplava.train.checkpoint import save_checkpoint


def _checkpoint(tmp_path, neuron="cuba", norm="psp_bn", arch="34x34x2-n4c3s2-n6c3s2-n10",
                init_gain=1.0):
    torch.manual_seed(0)
    spec = {"arch": arch, "neuron": neuron, "norm": norm, "steps": 30, "init_gain": init_gain}
    model = SNN(spec)
    model.train()
    with torch.no_grad():
        model((torch.rand(30, 2, 34, 34, 2) < 0.1).float())
    cfg = deep_merge(DEFAULTS, {"model": spec, "data": {"steps": 30, "dt_ms": 1.0,
                                                          "dataset": "digits", "root": None}})
    path = tmp_path / f"{neuron}_{norm}.pt"
    save_checkpoint(path, model, cfg)
    return path, model


def test_quantize_helpers():
    w = torch.tensor([0.5, -1.0, 3.9, 0.0], dtype=torch.float64)
    k = loihi.choose_scale(float(w.abs().max()), theta=10.0, k_max=64.0)
    assert k == 64.0
    q = loihi.quantize_weight(w * k)
    assert q.tolist() == [32, -64, 250, 0]
    # Loihi's 8-bit mixed-sign weights are even integers: odd products round to even ones
    assert loihi.quantize_weight(torch.tensor([3.0, -5.0, 7.2], dtype=torch.float64)).tolist() \
        == [4.0, -4.0, 8.0]
    assert float((w - q / k).abs().max()) <= 1.0 / k
    assert loihi.choose_scale(10.0, 10.0) == 16.0  # 10 * 16 = 160 <= 254
    assert loihi.choose_scale(0.01, 10.0) == 1024.0  # capped by k_max
    assert loihi.quantize_decay(np.exp(-0.1)) == round(4096 * (1 - np.exp(-0.1)))


def test_cuba_psp_bn_export_loads_in_stock_netx(tmp_path):
    from lava.lib.dl import netx

    ckpt, model = _checkpoint(tmp_path)
    out = tmp_path / "cuba.net"
    report = export_checkpoint(ckpt, out)
    assert [r["type"] for r in report] == ["conv", "conv", "dense"]
    assert all(r["weight_rel_rms_error"] < 0.02 for r in report), report
    net = netx.hdf5.Network(net_config=str(out))
    assert len(net) == 3  # conv, conv, dense (input and flatten add no process)
    assert tuple(net.inp.shape) == (34, 34, 2) and tuple(net.out.shape) == (10,)
    f = read_netfile(out)
    assert f.version == format_needed(f.layers) == 3 and [l.type for l in f.layers] == \
        ["input", "conv", "conv", "flatten", "dense"]
    # the PSP-BN scale is folded into the integer weights (input channels of layer 1)
    s = model.layers[1].pre.scale().numpy()
    w = model.layers[1].weight.detach().numpy() * s[None, :, None, None]
    k = f.layers[2].quant["scale"]
    assert np.abs(f.layers[2].weight / k - w).max() <= 1.0 / k + 1e-9
    with h5py.File(out) as h:
        assert len(h.attrs["checkpoint_sha256"]) == 64
        assert json.loads(h.attrs["config"])["model"]["norm"] == "psp_bn"


def test_srm_causal_export_and_cli(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, "srm", "causal_psp_ln")
    out = tmp_path / "srm.net"
    assert main(["export", str(ckpt), "-o", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(res["layers"]) == 3
    f = read_netfile(out)
    assert f.layers[1].model.type_name == "SRM" and \
        f.layers[1].dynamic_threshold == loihi.DynamicThreshold(0.1)
    assert main(["inspect", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["format"] == 5


def test_format_1_srm_files_are_refused(tmp_path):
    """Format 1 SRM layers used 2**8-unit PSPs: reading them as format 2 would be silently
    wrong, so the reader refuses them by name."""
    ckpt, _ = _checkpoint(tmp_path, "srm", "none", arch="34x34x2-4c3s2-10")
    out = tmp_path / "old.net"
    export_checkpoint(ckpt, out)
    with h5py.File(out, "a") as h:
        h.attrs["psplava_format"] = 1
    with pytest.raises(Exception, match="re-export"):
        read_netfile(out)


def test_export_refuses_whole_window_psp_ln_and_bntt(tmp_path, capsys):
    ckpt, _ = _checkpoint(tmp_path, "srm", "psp_ln")
    out = tmp_path / "x.net"
    assert main(["export", str(ckpt), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "causal_psp_ln" in err and not out.exists()
    assert not list(tmp_path.glob(".x.net*"))  # no partial file left behind
    assert main(["export", str(ckpt), "-o", str(out), "--causal-eval", "--dataset", "digits",
                 "--split", "test", "--limit", "4"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["exported"] is False and res["samples"] == 4 and "accuracy_change" in res
    ckpt, _ = _checkpoint(tmp_path, "srm", "bntt", arch="34x34x2-4c3s2n-10")
    assert main(["export", str(ckpt), "-o", str(out)]) == 2
    assert "BNTT" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad files
@pytest.fixture
def good_net(tmp_path):
    ckpt, _ = _checkpoint(tmp_path)
    out = tmp_path / "good.net"
    export_checkpoint(ckpt, out)
    return out


def _edit(path, fn):
    with h5py.File(path, "r+") as h:
        fn(h)


def _inspect_error(capsys, path):
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_unknown_layer_type(good_net, capsys):
    def fn(h):
        del h["layer/2/type"]
        h["layer/2"].create_dataset("type", (1,), "S10", [b"pool"])
    _edit(good_net, fn)
    err = _inspect_error(capsys, good_net)
    assert "layer/2" in err and "unknown layer type 'pool'" in err


def test_unknown_neuron_type(good_net, capsys):
    def fn(h):
        del h["layer/1/neuron/type"]
        h["layer/1/neuron"].create_dataset("type", data="ALIF")
    _edit(good_net, fn)
    err = _inspect_error(capsys, good_net)
    assert "layer/1/neuron" in err and "'ALIF'" in err


def test_missing_field(good_net, capsys):
    _edit(good_net, lambda h: h["layer/1"].__delitem__("stride"))
    err = _inspect_error(capsys, good_net)
    assert "layer/1" in err and "'stride'" in err


def test_mismatched_shapes(good_net, capsys):
    def fn(h):
        w = h["layer/2/weight"][()]
        del h["layer/2/weight"]
        h["layer/2"].create_dataset("weight", data=w[:, :3])
    _edit(good_net, fn)
    err = _inspect_error(capsys, good_net)
    assert "layer/2" in err and "'weight'" in err and "input channels" in err


def test_newer_version(good_net, capsys):
    _edit(good_net, lambda h: h.attrs.__setitem__("psplava_format", FORMAT_VERSION + 1))
    assert "newer" in _inspect_error(capsys, good_net)


def test_truncated_and_non_hdf5(good_net, tmp_path, capsys):
    data = good_net.read_bytes()
    cut = tmp_path / "cut.net"
    cut.write_bytes(data[: len(data) // 2])
    assert "cut.net" in _inspect_error(capsys, cut)
    txt = tmp_path / "notes.net"
    txt.write_text("hello")
    assert "not a readable HDF5" in _inspect_error(capsys, txt)


def test_reads_lava_dl_written_file(tmp_path):
    """A file written by lava-dl's own slayer blocks reads as stock netx (format 0)."""
    from conftest import lava_dl_netfile

    f = read_netfile(lava_dl_netfile(tmp_path))
    assert f.version == 0
    assert [l.type for l in f.layers] == ["input", "conv", "conv", "flatten", "dense"]
    assert f.layers[1].model.type_name == "CUBA" and f.layers[1].weight.shape == (4, 2, 3, 3)


def test_netfile_schema_round_trip(tmp_path):
    """The writer and the reader share one dataclass: every field survives a round trip."""
    from psplava.export.exporter import build_layers
    from psplava.netfile import write_netfile

    _, model = _checkpoint(tmp_path, "srm", "causal_psp_ln")
    layers, _ = build_layers(model)
    write_netfile(tmp_path / "rt.net", layers, {"note": "round trip"})
    back = read_netfile(tmp_path / "rt.net")
    assert back.attrs["note"] == "round trip" and len(back.layers) == len(layers)
    for a, b in zip(layers, back.layers):
        assert (a.index, a.type, tuple(a.shape)) == (b.index, b.type, tuple(b.shape))
        for f in ("weight", "bias"):
            x, y = getattr(a, f), getattr(b, f)
            assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))
        assert a.neuron == b.neuron and a.dynamic_threshold == b.dynamic_threshold
        assert a.quant == pytest.approx(b.quant)
        if a.type == "conv":
            assert (tuple(a.stride), tuple(a.padding)) == (b.stride, b.padding)


# --------------------------------------------------------------------------- values
_GOLDEN = Path(__file__).parent / "data" / "golden_srm_causal.net"


def _with(tmp_path, key: str, value, dtype=None) -> Path:
    """A copy of a valid golden file with dataset ``key`` replaced by ``value``."""
    import shutil

    import h5py

    p = tmp_path / "bad.net"
    shutil.copy(_GOLDEN, p)
    with h5py.File(p, "r+") as f:
        del f[key]
        f.create_dataset(key, data=np.asarray(value, dtype=dtype))
    return p


@pytest.mark.parametrize("key, value, message", [
    ("layer/1/weight", "nan", "NaN or infinite"),
    ("layer/1/weight", "half", "non-integer"),
    ("layer/1/weight", "big", "> 256"),
    ("layer/1/neuron/vThMant", 0, "'vThMant' has 0 < 1"),
    ("layer/1/neuron/psDecay", 5000, "'psDecay' has 5000 > 4096"),
    ("layer/1/neuron/tauS", 0.0, "'tauS' must be a positive number"),
    ("layer/1/neuron/tauS", float("nan"), "'tauS' must be a positive number"),
    ("layer/1/dynamicThreshold/lambda", -1.0, "'lambda' must be a positive number"),
    ("layer/1/stride", [0, 0], "'stride' has 0 < 1"),
    ("layer/1/shape", [8, -17, 17], "'shape' has -17 < 1"),
])
def test_reader_checks_values(tmp_path, key, value, message):
    import h5py

    from psplava.netfile import NetFileError, read_netfile

    if key.endswith("weight"):
        with h5py.File(_GOLDEN) as f:
            w = f[key][()].astype(np.float64)
        w.flat[3] = {"nan": np.nan, "half": 0.5, "big": 1000.0}[value]
        value = w
    with pytest.raises(NetFileError, match=message.replace("(", r"\(")):
        read_netfile(_with(tmp_path, key, value))


def test_reader_refuses_a_huge_declared_dataset_before_reading(tmp_path):
    """A small file whose weight dataset declares terabytes (chunked, never written) fails
    at once, naming the field, without allocating."""
    import shutil
    import time

    import h5py

    from psplava.netfile import NetFileError, read_netfile

    p = tmp_path / "huge.net"
    shutil.copy(_GOLDEN, p)
    with h5py.File(p, "r+") as f:
        del f["layer/1/weight"]
        f.create_dataset("layer/1/weight", shape=(1 << 20, 1 << 20, 3, 3), dtype="f8",
                         chunks=(1, 1, 3, 3))
    assert p.stat().st_size < 1 << 20
    t0 = time.time()
    with pytest.raises(NetFileError, match="'weight' declares"):
        read_netfile(p)
    assert time.time() - t0 < 5


def test_reader_refuses_a_non_integer_format_version(tmp_path):
    import shutil

    import h5py

    from psplava.netfile import NetFileError, read_netfile

    p = tmp_path / "v.net"
    shutil.copy(_GOLDEN, p)
    with h5py.File(p, "r+") as f:
        f.attrs["psplava_format"] = "two"
    with pytest.raises(NetFileError, match="'psplava_format' must be an integer"):
        read_netfile(p)


def test_written_files_follow_the_umask(tmp_path):
    """Files written atomically get the user's umask, not mkstemp's 0600."""
    import os

    from psplava.errors import atomic_path

    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".a.txt.*"))


def test_export_refuses_nan_parameters(tmp_path, capsys):
    spec = {"arch": "34x34x2-n4c3s2-n10", "neuron": "srm", "norm": "psp_bn", "steps": 10}
    model = SNN(spec)
    with torch.no_grad():
        next(iter(model.parameters())).view(-1)[0] = float("nan")
    cfg = deep_merge(DEFAULTS, {"model": spec, "data": {"steps": 10, "dataset": "digits"}})
    save_checkpoint(tmp_path / "nan.pt", model, cfg)
    out = tmp_path / "nan.net"
    assert main(["export", str(tmp_path / "nan.pt"), "-o", str(out), "--eval-samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite" in err[0] and "nan.pt" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".nan.net*"))


def test_atomic_write_handles_long_names_and_full_disks(tmp_path, monkeypatch):
    """Any legal name (255 bytes) works; a failing write (as on a full disk) leaves no
    file and no temp file behind."""
    import builtins
    import errno

    from psplava.errors import atomic_path
    from psplava.netfile import read_netfile, write_netfile

    golden = read_netfile(Path(__file__).parent / "data" / "golden_srm_causal.net")
    long_name = tmp_path / ("m" * 251 + ".net")
    write_netfile(long_name, golden.layers, {})
    assert len(read_netfile(long_name).layers) == len(golden.layers)

    real_open = builtins.open

    def full_disk(file, mode="r", *a, **k):
        if "w" in mode and str(file).endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(OSError):
        write_netfile(tmp_path / "full.net", golden.layers, {})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [long_name.name]
