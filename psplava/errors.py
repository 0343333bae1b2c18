"""User-facing errors.

Anything raised as :class:`PsplavaError` is a problem with the user's input (a file, a
flag, a config) rather than a bug: the CLI prints its message on one line and exits
with status 2, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PsplavaError(Exception):
    """A clear, one-line problem with user input; the CLI exits with status 2."""


class DataError(PsplavaError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class ConfigError(PsplavaError):
    """A configuration value is missing or invalid."""


def check_output(output: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = (),
                 suffixes: tuple[str, ...] = (), what: str = "output") -> Path:
    """Refuse an output path that would destroy an input or that names another format:
    the same file as an input (hard links and symlinks included), an existing directory,
    or a suffix outside ``suffixes`` (when given).  Returns the path."""
    out = Path(output)
    if out.is_dir():
        raise PsplavaError(f"{out}: the {what} is a directory; give a file name")
    if suffixes and out.suffix.lower() not in suffixes:
        raise PsplavaError(f"{out}: the {what} must end with {' or '.join(suffixes)} "
                           f"(the suffix says another format)")
    for src in inputs:
        src = Path(src)
        try:
            same = out.exists() and src.exists() and os.path.samefile(out, src)
        except OSError:
            same = False
        if same or out.resolve() == src.resolve():
            raise PsplavaError(f"{out}: the {what} is the input {src}; writing it would "
                               f"destroy the input")
    return out


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed, so a failed write never leaves a
    half-written file behind (and never clobbers an older good one).
    """
    path = Path(path)
    if path.is_dir():
        raise PsplavaError(f"{path}: is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the temp name stays legal for any legal target name (NAME_MAX is 255 bytes)
        stem = path.name.encode()[:200].decode(errors="ignore")
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise unwritable(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes it 0600; give it the user's umask instead
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename is not None and Path(exc.filename).parent == tmp_path.parent:
            raise unwritable(path, exc) from None   # writing or renaming the output
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def unwritable(path: str | os.PathLike, exc: OSError) -> PsplavaError:
    """One line for an output that cannot be written (a directory, a read-only mount, a
    pseudo-filesystem, a path under a file, a full disk)."""
    return PsplavaError(f"{path}: cannot write the output ({exc.strerror or exc})")


def writable_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder that exists (created) and takes files, else one line."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise PsplavaError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".psplava-probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise unwritable(out, exc) from None
    return out
