"""N-MNIST (Orchard et al. 2015) from the official layout or a flat ``labels.csv`` layout.

Accepted layouts under ``root``:

(a) official: ``root/Train/<digit>/<id>.bin`` and ``root/Test/<digit>/<id>.bin``
(b) flat:     ``root/<split>/labels.csv`` (columns ``sample,label``) beside ``<id>.bs2``
              or ``<id>.bin`` -- the layout of ``../shared/data/nmnist_small``.

``split`` is ``train`` or ``test``; either capitalisation of the folder is found.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from psplava.data.events import NMNIST_SENSOR, Binning, bin_events, read_nmnist_file
from psplava.errors import DataError, atomic_path

SPLITS = ("train", "test")


def split_dir(root: Path, split: str) -> Path:
    """``root/Train`` or ``root/train`` (etc.) -- whichever exists."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not root.exists():
        raise DataError(f"{root}: dataset root does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: dataset root is not a directory")
    for name in (split.capitalize(), split, split.upper()):
        if (root / name).is_dir():
            return root / name
    hint = ("; --split val scores the recordings a run held out of the training split"
            if split == "test" else "")
    raise DataError(f"{root}: no '{split.capitalize()}' or '{split}' folder for split "
                    f"{split!r}{hint}")


def _read_labels_csv(path: Path) -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a byte-order mark is fine
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["sample", "label"]:
                raise DataError(f"{path}: malformed labels.csv: first line must be 'sample,label', "
                                f"got {','.join(header) if header else 'an empty file'!r}")
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != 2:
                    raise DataError(f"{path}: malformed labels.csv at line {lineno}: expected 2 "
                                    f"columns 'sample,label', got {len(row)}")
                sample, label = row[0].strip(), row[1].strip()
                try:
                    value = int(label)
                except ValueError:
                    raise DataError(f"{path}: malformed labels.csv at line {lineno}: label "
                                    f"{label!r} is not an integer") from None
                if not 0 <= value <= 9:
                    raise DataError(f"{path}: malformed labels.csv at line {lineno}: label "
                                    f"{value} outside 0-9")
                if not sample or "/" in sample or "\\" in sample:
                    raise DataError(f"{path}: malformed labels.csv at line {lineno}: bad sample "
                                    f"id {sample!r}")
                if sample in seen:
                    what = "duplicate" if seen[sample] == value else "conflicting"
                    raise DataError(f"{path}: malformed labels.csv at line {lineno}: {what} "
                                    f"entry for sample {sample!r}")
                seen[sample] = value
                rows.append((sample, value))
    except UnicodeDecodeError:
        raise DataError(f"{path}: malformed labels.csv: not a text file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    return rows


def _natural_key(p: Path) -> tuple:
    return (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)


def index_nmnist(root: str | Path, split: str) -> list[tuple[Path, int]]:
    """List ``(file, label)`` pairs of a split, in a deterministic order."""
    base = split_dir(Path(root), split)
    labels_csv = base / "labels.csv"
    items: list[tuple[Path, int]] = []
    if labels_csv.is_file():
        for sample, label in _read_labels_csv(labels_csv):
            for ext in (".bs2", ".bin"):
                f = base / f"{sample}{ext}"
                if f.is_file():
                    items.append((f, label))
                    break
            else:
                raise DataError(f"{labels_csv}: names sample {sample!r} but neither "
                                f"{sample}.bs2 nor {sample}.bin exists in {base}")
    else:
        for digit in range(10):
            d = base / str(digit)
            if d.is_dir():
                files = sorted((f for f in d.iterdir() if f.suffix in (".bin", ".bs2")),
                               key=_natural_key)
                items.extend((f, digit) for f in files)
    if not items:
        raise DataError(f"{base}: no N-MNIST recordings found (expected labels.csv or "
                        "<digit>/<id>.bin folders)")
    return items


def _stamps(files: list[Path]) -> np.ndarray:
    """(size, mtime in ns) of each file: what the event cache is keyed on besides names."""
    out = np.zeros((len(files), 2), dtype=np.int64)
    for i, f in enumerate(files):
        st = Path(f).stat()
        out[i] = (st.st_size, st.st_mtime_ns)
    return out


class NMNIST:
    """Real N-MNIST recordings as binned spike tensors ``(T, H, W, 2)``.

    Args:
        root: dataset root (see module docstring for the accepted layouts).
        split: ``train`` or ``test``.
        binning: time binning (default 1 ms x 300 steps).
        cache: optional ``.npz`` path; decoded events of the whole split are stored there
            on first use and read back afterwards (binning stays on the fly: it is cheap).
    """

    sensor = NMNIST_SENSOR
    num_classes = 10

    def __init__(self, root: str | Path, split: str = "train", binning: Binning = Binning(),
                 cache: str | Path | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.binning = binning
        self.items = index_nmnist(self.root, split)
        self.labels = np.array([label for _, label in self.items], dtype=np.int64)
        self._events: list[np.ndarray] | None = None
        if cache is not None:
            self._events = self._load_cache(Path(cache))

    def _load_cache(self, cache: Path) -> list[np.ndarray]:
        """The split's decoded events from ``cache`` when it was made from the same files,
        the same content as far as size and modification time tell (names alone would
        serve a recording that has since been replaced or emptied); else decoded anew and
        the cache rewritten."""
        names = np.array([str(f) for f, _ in self.items])
        stamps = _stamps([f for f, _ in self.items])
        if cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    fresh = ("stamps" in z.files and z["names"].shape == names.shape
                             and (z["names"] == names).all()
                             and np.array_equal(z["stamps"], stamps))
                    if fresh:
                        ev, off = z["events"], z["offsets"]
                        return [ev[off[i]:off[i + 1]] for i in range(len(names))]
            except (OSError, ValueError, KeyError, EOFError):
                pass  # an unreadable cache is rebuilt, never trusted
        events = [read_nmnist_file(f) for f, _ in self.items]
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in events])])
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, names=names, stamps=stamps, events=np.concatenate(events),
                         offsets=offsets)
        return events

    def __len__(self) -> int:
        return len(self.items)

    def events(self, index: int) -> np.ndarray:
        """The raw events of sample ``index`` (structured array, fields x, y, t, p)."""
        if self._events is not None:
            return self._events[index]
        return read_nmnist_file(self.items[index][0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return bin_events(self.events(index), self.binning, self.sensor), int(self.labels[index])
