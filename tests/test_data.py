"""Data readers, binning, the saccade emulator, encodings and their error messages."""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import numpy as np
import pytest

from psplava.cli import main
from psplava.data import Binning, bin_events, make_dataset, train_val_split
from psplava.data.digits import Digits, SaccadeParams, emulate_recording, _sklearn_digits
from psplava.data.events import decode_nmnist_bytes, read_nmnist_file
from psplava.data.fmnist import Encoding, EncodingKind, encode_image, load_fmnist_arrays, read_idx
from psplava.data.nmnist import NMNIST, index_nmnist
from psplava.errors import DataError

from conftest import encode_nmnist_events


# ----------------------------------------------------------------------------- N-MNIST
def test_reader_agrees_with_tonic(nmnist_root):
    import tonic

    files = sorted((nmnist_root / "train").glob("*.bs2"))
    assert len(files) == 1000
    for f in files[::5]:
        ours = read_nmnist_file(f)
        ref = tonic.io.read_mnist_file(str(f), dtype=tonic.datasets.NMNIST.dtype)
        assert len(ours) == len(ref), f
        for field in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(ours[field], ref[field].astype(np.int64), err_msg=f"{f} {field}")


def test_overflow_markers_add_8192us():
    raw = encode_nmnist_events([1, 0, 2], [2, 240, 3], [1, 0, 0], [100, 0, 50])
    ev = decode_nmnist_bytes(np.frombuffer(raw, np.uint8))
    assert ev["t"].tolist() == [100, 8192 + 50]
    assert ev["x"].tolist() == [1, 2] and ev["p"].tolist() == [1, 0]


@pytest.mark.parametrize("dt_ms,steps", [(1.0, 300), (3.0, 100), (0.5, 50)])
def test_binned_sum_equals_distinct_in_window_events(nmnist_root, dt_ms, steps):
    ds = NMNIST(nmnist_root, "train", Binning(dt_ms, steps))
    for i in (0, 17, 423):
        ev = ds.events(i)
        x, _ = ds[i]
        assert x.shape == (steps, 34, 34, 2) and x.dtype == np.float32
        step = np.floor(ev["t"] / (dt_ms * 1000)).astype(np.int64)
        inside = step < steps
        tuples = set(zip(step[inside], ev["y"][inside], ev["x"][inside], ev["p"][inside]))
        assert x.sum() == len(tuples)  # binary bins: same-bin collisions count once
        counts = bin_events(ev, Binning(dt_ms, steps, binary=False))
        assert counts.sum() == inside.sum()  # count mode keeps every in-window event
        t0, y0, x0, p0 = next(iter(tuples))
        assert x[t0, y0, x0, p0] == 1.0


def test_official_layout_and_split_names(tmp_path, nmnist_root):
    src = sorted((nmnist_root / "train").glob("*.bs2"))[:4]
    for split in ("Train", "Test"):
        for k, f in enumerate(src):
            d = tmp_path / split / str(k % 2)
            d.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, d / f"{k}.bin")
    items = index_nmnist(tmp_path, "test")
    assert [lab for _, lab in items] == [0, 0, 1, 1]
    ds = NMNIST(tmp_path, "train")
    assert len(ds) == 4 and ds[0][0].shape == (300, 34, 34, 2)


def test_event_cache_roundtrip(tmp_path, nmnist_root):
    small = tmp_path / "d" / "train"
    small.mkdir(parents=True)
    with open(small / "labels.csv", "w") as f:
        f.write("sample,label\n1,5\n2,0\n")
    for i in (1, 2):
        shutil.copy(nmnist_root / "train" / f"{i}.bs2", small / f"{i}.bs2")
    cache = tmp_path / "cache.npz"
    a = NMNIST(tmp_path / "d", "train", cache=cache)
    assert cache.is_file()
    b = NMNIST(tmp_path / "d", "train", cache=cache)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(b.events(0), read_nmnist_file(small / "1.bs2"))


def test_data_info_on_shared(nmnist_root, capsys):
    assert main(["data", "info", "--dataset", "nmnist", "--root", str(nmnist_root),
                 "--split", "train", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(nmnist_root / "train" / "labels.csv") as f:
        labels = [int(r["label"]) for r in csv.DictReader(f)]
    assert info["samples"] == 1000
    assert info["class_counts"] == {str(c): labels.count(c) for c in range(10)}
    assert 2000 < info["events_per_sample"]["mean"] < 6000
    assert 290 < info["duration_ms"]["mean"] < 320


def test_data_show_writes_png(tmp_path):
    out = tmp_path / "s.png"
    assert main(["data", "show", "--dataset", "digits", "--index", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- embedded digits
def test_emulator_is_deterministic_and_plausible():
    imgs, _ = _sklearn_digits()
    a = emulate_recording(imgs[7], seed=3)
    b = emulate_recording(imgs[7], seed=3)
    c = emulate_recording(imgs[7], seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    counts = np.array([len(emulate_recording(imgs[i], seed=i)) for i in range(30)])
    # real N-MNIST recordings have ~2,700-5,000 events
    assert 2700 <= counts.mean() <= 5000, counts.mean()
    assert counts.min() > 1000
    assert np.all(np.diff(a["t"]) >= 0) and a["t"].max() < 300_000
    assert a["x"].max() < 34 and a["y"].max() < 34 and set(np.unique(a["p"])) == {0, 1}
    # both polarities in every saccade, as the digit's edges move
    for k in range(3):
        part = a[(a["t"] >= k * 100_000) & (a["t"] < (k + 1) * 100_000)]
        assert (part["p"] == 1).sum() > 200 and (part["p"] == 0).sum() > 200


def test_emulator_events_follow_the_digit():
    """Events concentrate where the digit's edges are, not uniformly."""
    imgs, _ = _sklearn_digits()
    ev = emulate_recording(imgs[0], seed=0, params=SaccadeParams(noise_hz=0.0))
    x = bin_events(ev, Binning(1.0, 300)).sum(axis=(0, 3))
    assert x[:, :2].sum() == 0  # the digit's left edge never moves below x = 2
    counts = np.sort(x.ravel())[::-1]
    half = np.searchsorted(np.cumsum(counts), counts.sum() / 2) / counts.size
    assert half < 0.3  # half of the events come from < 30 % of the pixels
    assert (x > 0).mean() < 0.8


def test_digits_dataset_splits_disjoint():
    tr, te = Digits("train"), Digits("test")
    assert len(tr) + len(te) == 1797
    assert not set(tr.indices) & set(te.indices)
    x, y = tr[0]
    assert x.shape == (300, 34, 34, 2) and 0 <= y <= 9
    np.testing.assert_array_equal(x, Digits("train")[0][0])


def test_train_val_split():
    tr, va = train_val_split(1000, 100, seed=1)
    assert len(va) == 100 and len(tr) == 900 and not set(tr) & set(va)
    np.testing.assert_array_equal(va, train_val_split(1000, 100, seed=1)[1])
    assert not np.array_equal(va, train_val_split(1000, 100, seed=2)[1])
    with pytest.raises(DataError):
        train_val_split(10, 10)


# ----------------------------------------------------------------------------- Fashion-MNIST
def _write_idx(path, arr, magic, gz=False):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labs = np.array([0, 1, 2, 3, 9], np.uint8)
    ext = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", imgs, 0x803, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", labs, 0x801, gz)
    images, labels = load_fmnist_arrays(tmp_path, "test")
    np.testing.assert_array_equal(images, imgs)
    assert labels.tolist() == [0, 1, 2, 3, 9]
    ds = make_dataset("fmnist", tmp_path, "test", steps=20)
    x, y = ds[4]
    assert x.shape == (20, 34, 34, 1) and y == 9


def test_fmnist_npz(fmnist_root):
    tr, lab_tr = load_fmnist_arrays(fmnist_root, "train")
    te, lab_te = load_fmnist_arrays(fmnist_root / "fashion_mnist.npz", "test")
    assert len(tr) == 60000 and len(te) == 10000
    assert np.bincount(lab_te).tolist() == [1000] * 10


def test_encodings():
    img = np.linspace(0, 1, 34 * 34).reshape(34, 34).astype(np.float32)
    enc = Encoding(EncodingKind.RATE, steps=400, seed=5)
    a, b = encode_image(img, enc, 3), encode_image(img, enc, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, encode_image(img, enc, 4))
    assert abs(a.mean(axis=0)[..., 0] - img).mean() < 0.03  # Bernoulli rate ~ intensity
    reg = encode_image(img, Encoding(EncodingKind.REGULAR, steps=100, gain=0.5))
    np.testing.assert_array_equal(reg.sum(axis=0)[..., 0], np.floor(100 * 0.5 * img + 1e-9))
    assert reg.shape == (100, 34, 34, 1)


# ----------------------------------------------------------------------------- bad input
def _flat(tmp_path, rows="sample,label\n1,3\n"):
    d = tmp_path / "root" / "train"
    d.mkdir(parents=True)
    (d / "labels.csv").write_text(rows)
    return tmp_path / "root", d


def _run_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def _info(root, dataset="nmnist"):
    return ["data", "info", "--dataset", dataset, "--root", str(root), "--split", "train"]


def test_error_size_not_multiple_of_5(tmp_path, capsys):
    root, d = _flat(tmp_path)
    (d / "1.bs2").write_bytes(encode_nmnist_events([1], [1], [0], [5]) + b"\x00\x01")
    err = _run_error(capsys, _info(root))
    assert "1.bs2" in err and "multiple of 5" in err


def test_error_events_outside_sensor(tmp_path, capsys):
    root, d = _flat(tmp_path)
    (d / "1.bs2").write_bytes(encode_nmnist_events([1, 40], [1, 2], [0, 1], [5, 9]))
    err = _run_error(capsys, _info(root))
    assert "1.bs2" in err and "outside the 34x34" in err and "x=40" in err


def test_error_labels_name_missing_file(tmp_path, capsys):
    root, _ = _flat(tmp_path, "sample,label\n7,3\n")
    err = _run_error(capsys, _info(root))
    assert "labels.csv" in err and "'7'" in err and "7.bs2" in err


@pytest.mark.parametrize("rows,needle", [
    ("id;class\n1;3\n", "first line must be 'sample,label'"),
    ("sample,label\n1,3,4\n", "line 2"),
    ("sample,label\n1,x\n", "not an integer"),
    ("sample,label\n1,12\n", "outside 0-9"),
    ("", "empty file"),
])
def test_error_malformed_labels(tmp_path, capsys, rows, needle):
    root, _ = _flat(tmp_path, rows)
    err = _run_error(capsys, _info(root))
    assert "labels.csv" in err and needle in err


def test_error_idx_magic_and_size(tmp_path, capsys):
    imgs = np.zeros((2, 28, 28), np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs, 0x804)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8), 0x801)
    err = _run_error(capsys, _info(tmp_path, "fmnist"))
    assert "train-images-idx3-ubyte" in err and "magic" in err
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs, 0x803)
    with open(tmp_path / "train-images-idx3-ubyte", "ab") as f:
        f.write(b"\x00" * 3)
    err = _run_error(capsys, _info(tmp_path, "fmnist"))
    assert "train-images-idx3-ubyte" in err and "does not match its header" in err
    with pytest.raises(DataError, match="magic"):
        _bad_magic(tmp_path)


def _bad_magic(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    _write_idx(p, np.zeros(3, np.uint8), 0x123)
    return read_idx(p)


@pytest.mark.parametrize("dataset", ["nmnist", "fmnist"])
def test_error_missing_root(tmp_path, capsys, dataset):
    err = _run_error(capsys, _info(tmp_path / "nope", dataset))
    assert "nope" in err and "does not exist" in err


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(DataError):
        main(["--debug"] + _info(tmp_path / "nope"))


def _flat_split(tmp_path, csv_text: str, encoding: str = "utf-8"):
    d = tmp_path / "train"
    d.mkdir(parents=True, exist_ok=True)
    (d / "labels.csv").write_text(csv_text, encoding=encoding)
    ev = encode_nmnist_events([1, 2], [3, 4], [0, 1], [10, 20])
    for name in ("a", "b"):
        (d / f"{name}.bs2").write_bytes(ev)
    return d


def test_labels_csv_with_byte_order_mark(tmp_path):
    _flat_split(tmp_path, "sample,label\na,3\nb,4\n", encoding="utf-8-sig")
    assert [label for _, label in index_nmnist(tmp_path, "train")] == [3, 4]


@pytest.mark.parametrize("text, message", [
    ("sample,label\na,3\na,3\n", "duplicate entry for sample 'a'"),
    ("sample,label\na,3\na,5\n", "conflicting entry for sample 'a'"),
])
def test_labels_csv_duplicates_refused(tmp_path, text, message):
    _flat_split(tmp_path, text)
    with pytest.raises(DataError, match=message):
        index_nmnist(tmp_path, "train")


def test_empty_and_non_regular_recordings_refused(tmp_path):
    import os

    d = _flat_split(tmp_path, "sample,label\na,3\nb,4\n")
    (d / "a.bs2").write_bytes(b"")
    with pytest.raises(DataError, match="empty recording"):
        read_nmnist_file(d / "a.bs2")
    fifo = tmp_path / "fifo.bs2"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_nmnist_file(fifo)


def test_fmnist_labels_outside_0_9_refused(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    np.savez(tmp_path / "fashion_mnist.npz", images=images, labels=np.array([1, 12, 3]),
             is_test=np.array([0, 0, 0]))
    with pytest.raises(DataError, match="outside 0-9"):
        load_fmnist_arrays(tmp_path, "train")


def test_event_cache_notices_a_changed_recording(tmp_path, nmnist_root):
    """Issue 22: the cache was keyed on file names only and served a recording that had
    since been emptied (fails before the fix: the old events come back)."""
    small = tmp_path / "d" / "train"
    small.mkdir(parents=True)
    (small / "labels.csv").write_text("sample,label\n1,5\n2,0\n")
    for i in (1, 2):
        shutil.copy(nmnist_root / "train" / f"{i}.bs2", small / f"{i}.bs2")
    cache = tmp_path / "cache.npz"
    a = NMNIST(tmp_path / "d", "train", cache=cache)
    assert len(a.events(1)) > 0
    shutil.copy(nmnist_root / "train" / "3.bs2", small / "2.bs2")   # replaced since
    b = NMNIST(tmp_path / "d", "train", cache=cache)
    np.testing.assert_array_equal(b.events(1), read_nmnist_file(small / "2.bs2"))
    assert len(b.events(1)) != len(a.events(1))
    (small / "2.bs2").write_bytes(b"")           # emptied since the cache was made
    with pytest.raises(DataError, match="empty recording"):
        NMNIST(tmp_path / "d", "train", cache=cache)
    shutil.copy(nmnist_root / "train" / "2.bs2", small / "2.bs2")
    cache.write_bytes(b"not a cache")            # an unreadable cache is rebuilt
    assert len(NMNIST(tmp_path / "d", "train", cache=cache).events(0)) > 0
