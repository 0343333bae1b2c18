"""The ``psplava`` command line.

Errors in user input (:class:`psplava.errors.PsplavaError`) print one line to stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing.util as mp_util
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

import psplava
from psplava import __version__
from psplava.argtypes import count_int, positive_float, positive_int, steps_int
from psplava.children import kill_children
from psplava.errors import PsplavaError

# This module imports only the standard library and psplava's smallest modules, so that
# the command's signal handlers (``_main``) are in place a few tens of milliseconds after
# start.  Everything else -- the stages' commands, numpy, yaml, the datasets -- is
# imported under those handlers (``_register_stage_commands``, the data commands): a
# Ctrl-C or SIGTERM then still ends the command with one line.

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def _add_dataset_args(p: argparse.ArgumentParser, root_required: bool = False) -> None:
    p.add_argument("--dataset", required=True, choices=["nmnist", "fmnist", "digits"],
                   help="dataset name")
    p.add_argument("--root", default=None, help="dataset root (not needed for digits)")
    p.add_argument("--split", default="train", choices=["train", "test"],
                   help="the dataset's own split")
    p.add_argument("--steps", type=steps_int, default=None,
                   help="time steps T (default 300 for events, 100 for fmnist)")
    p.add_argument("--dt", type=positive_float, default=1.0, help="bin width in ms (events)")


def _cmd_data_info(args: argparse.Namespace) -> int:
    # under the command's signal handlers (module comment above)
    from psplava.data import make_dataset
    from psplava.data.inspect import dataset_info, format_info

    ds = make_dataset(args.dataset, args.root, args.split, steps=args.steps, dt_ms=args.dt)
    info = dataset_info(ds, max_event_samples=args.max_samples)
    info.update({"dataset": args.dataset, "split": args.split, "root": args.root})
    if not args.json:
        print(format_info(info, f"{args.dataset} ({args.split}) at {args.root or 'embedded'}"))
    print(json.dumps(info))   # the last stdout line is JSON on every command
    return 0


def _cmd_data_show(args: argparse.Namespace) -> int:
    # under the command's signal handlers (module comment above)
    from psplava.data import make_dataset
    from psplava.data.inspect import show_sample

    steps = args.steps or (100 if args.dataset == "fmnist" else 300)
    if args.slices > steps:
        raise PsplavaError(f"--slices {args.slices}: more slices than the {steps} steps")
    ds = make_dataset(args.dataset, args.root, args.split, steps=args.steps, dt_ms=args.dt)
    if not -len(ds) <= args.index < len(ds):
        raise PsplavaError(f"--index {args.index}: the split has {len(ds)} samples "
                           f"(0..{len(ds) - 1})")
    out = show_sample(ds, args.index % len(ds), args.out, slices=args.slices)
    print(f"wrote {out}")
    print(json.dumps({"output": str(out), "index": args.index, "slices": args.slices}))
    return 0


#: help of arguments that several commands share, by destination (filled in where a
#: command gives none, so that every argument explains itself in ``--help``)
SHARED_HELP = {
    "dataset": "dataset name (default: the one in the checkpoint's or file's config)",
    "root": "dataset folder (default: the config's, else ../shared/data/<dataset>)",
    "split": "which recordings",
    "limit": "use only the first N recordings of the split",
    "checkpoint": "a checkpoint (.pt) written by psplava train",
    "model": "a .net file (psplava's export or lava-dl's netx)",
    "config": "YAML config file (see configs/)",
    "engine": "lava: Lava's CPU simulator (fixed_pt); reference: the batched torch engine",
    "out": "output folder",
    "set": "override a config value, KEY=VALUE with a dotted key; repeatable",
    "index": "which sample of the split (0-based)",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Every argument explains itself: the shared texts where a command gives none, the
    split's own choices, and the default, stated (argparse's ``%(default)s``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
            continue
        if action.help is None and action.dest in SHARED_HELP:
            action.help = SHARED_HELP[action.dest]
            if action.dest == "split" and action.choices:
                action.help = "which recordings: " + ", ".join(action.choices) + (
                    " (val: the ones the run held out)" if "val" in action.choices else "")
        if action.help in (None, argparse.SUPPRESS) or "default" in action.help:
            continue
        if action.default not in (None, False, [], argparse.SUPPRESS) and \
                not isinstance(action, argparse._VersionAction):
            action.help += " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psplava", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks on errors and third-party import notices")
    parser.add_argument("--version", action="version", version=f"psplava {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    info = dsub.add_parser("info", help="samples, class counts, events per sample, duration")
    _add_dataset_args(info)
    info.add_argument("--limit", "--max-samples", dest="max_samples", type=positive_int,
                      default=None,
                      help="measure event statistics on at most this many samples")
    info.add_argument("--json", action="store_true",
                      help="only the JSON line (the last line is always JSON)")
    info.set_defaults(func=_cmd_data_info)
    show = dsub.add_parser("show", help="PNG of one sample: one image per saccade/time slice")
    _add_dataset_args(show)
    show.add_argument("--index", type=int, default=0)
    show.add_argument("-o", "--out", required=True, help="output PNG path")
    show.add_argument("--slices", type=positive_int, default=3, help="time slices (3 = per saccade)")
    show.set_defaults(func=_cmd_data_show)

    for register in COMMANDS.values():
        register(sub)
    _fill_help(parser)
    return parser


def _register_stage_commands() -> None:
    """Stage packages add their subcommands (train, evaluate, report, ...) here."""
    # under the command's signal handlers (module comment above); each command's own
    # module imports torch and Lava only when it runs
    from psplava.cli import import_nir as import_cli
    from psplava.cli import sim as sim_cli
    from psplava.deploy import cli as deploy_cli
    from psplava.export import cli as export_cli
    from psplava.train import cli as train_cli

    COMMANDS.setdefault("train", train_cli.register)
    COMMANDS.setdefault("export", export_cli.register)
    COMMANDS.setdefault("sim", sim_cli.register)
    COMMANDS.setdefault("deploy", deploy_cli.register)
    COMMANDS.setdefault("import", import_cli.register)
    COMMANDS.setdefault("demo", _register_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from psplava.cli.pipeline import run_demo  # loads torch, lava-dl: only for the demo

    # the packaged default (psplava/configs), wherever psplava is installed
    config = args.config or Path(psplava.__file__).resolve().parent / "configs" / \
        "demo_digits.yaml"
    print(json.dumps(run_demo(config, args.set, args.out, args.lava_samples,
                              args.test_samples, overwrite=args.overwrite)))
    return 0


def _register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train -> export -> Lava simulation on the embedded digits")
    p.add_argument("-o", "--out", default="runs/demo",
                   help="run folder (default runs/demo); an earlier demo run there is "
                   "replaced, any other run needs --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run in --out that demo did not make")
    p.add_argument("--lava-samples", type=count_int, default=None,
                   help="test digits to run through Lava (default: all --test-samples, so "
                   "every engine is scored on the same recordings)")
    p.add_argument("--limit", "--test-samples", dest="test_samples", type=positive_int,
                   default=200,
                   help="held-out digits scored by PyTorch and the reference engine")
    p.add_argument("--config", default=None, help="default: the packaged demo_digits.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_demo)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so every
    ``finally`` (temp folders, Lava's workers, run-folder locks) runs on the way out."""


#: the interrupts the command has received.  The exception a signal raises can land inside
#: a third-party import, which may swallow it or turn it into another error (numpy's
#: ImportError); the command still ends as interrupted.
_RECEIVED: list[type] = []


def _on_signal(signum, frame) -> None:
    kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    _RECEIVED.append(kind)
    raise kind()


def _interrupted(exc: BaseException | None) -> type | None:
    """The interrupt behind an exception: KeyboardInterrupt or Terminated, directly or as
    the context of another (numba reports a signal inside a kernel as SystemError)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return type(exc)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _end_interrupted(kind: type, command: bool = True) -> int:
    """One line, the conventional status (130 for SIGINT, 143 for SIGTERM), and (for the
    command) no wait for threads Lava may have left running."""
    code = 143 if kind is Terminated else 130
    print(f"psplava: {'terminated' if code == 143 else 'interrupted'}", file=sys.stderr)
    if not command:
        return code
    _flush()
    kill_children(spare_managers=True)   # Lava's workers, a DataLoader's
    # multiprocessing's own exit work, with the shared-memory manager still alive to unlink
    # its segments (Lava's channels) and remove its temp folder
    finisher = threading.Thread(target=mp_util._run_finalizers, daemon=True)
    finisher.start()
    finisher.join(10)
    kill_children()
    os._exit(code)


def _quiet_child_signals() -> None:
    """In processes forked from the command (Lava's workers, DataLoader workers, the netx
    parser): Ctrl-C reaches the whole process group, but only the command answers it (it
    kills its children); a SIGTERM of a child ends it without a traceback."""
    # a Python-level no-op, not SIG_IGN: a program the child execs starts with the default
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ignore(signum, frame) -> None:
    """SIGINT in a child of the command: the command answers it."""


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; run as the ``psplava`` command (``argv`` None) the process ends
    here, with the signal handlers still in place through its exit work."""
    code = _main(argv)
    # a torchrun rank exits the ordinary way (os._exit while another rank still tears its
    # process group down leaves that rank waiting), unless its own teardown was abandoned
    rank = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ
    abandoned = getattr(sys.modules.get("psplava.train.runtime"), "TEARDOWN_ABANDONED",
                        [False])[0]
    if argv is None and threading.current_thread() is threading.main_thread() \
            and (not rank or abandoned):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit with ``code`` after the interpreter's exit work (atexit: multiprocessing's
    children and temp folders, ...), run while the signal handlers hold; the interpreter's
    own finalization resets them, so a signal in it would kill the process silently."""
    _flush()
    atexit._run_exitfuncs()
    _flush()
    kill_children()   # nothing of ours outlives the command
    os._exit(int(code) if isinstance(code, int) else 1)


def _flush() -> None:
    """Flush stdout and stderr before an ``os._exit`` (a closed pipe is no error here)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _main(argv: Sequence[str] | None = None) -> int:
    # the command itself (argv from the command line) ends interrupted runs with one line
    # and exit 130 / 143 (os._exit: Lava may leave threads); main([...]) in a test returns
    command = argv is None
    _RECEIVED.clear()
    if command and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
            signal.signal(signal.SIGINT, _on_signal)
        os.register_at_fork(after_in_child=_quiet_child_signals)
    args = None
    try:
        _register_stage_commands()      # light: each handler imports its stage as it runs
        parser = build_parser()
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv  # train --nproc re-runs the command under torchrun
        code = int(args.func(args) or 0)
        return _end_interrupted(_RECEIVED[0], command) if _RECEIVED else code
    except PsplavaError as exc:
        if _RECEIVED:
            return _end_interrupted(_RECEIVED[0], command)
        if args is not None and args.debug:
            raise
        print(f"psplava: error: {exc}", file=sys.stderr)
        if getattr(exc, "fatal", False):  # Lava's threads would keep the interpreter alive
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(2)
        return 2
    except (KeyboardInterrupt, Terminated) as exc:
        return _end_interrupted(type(exc), command)
    except BrokenPipeError:
        # the reader went away (``psplava inspect m.net | head -1``): stop quietly, and keep
        # the interpreter's final flush from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        # numba reports a signal inside a kernel as SystemError, numpy one inside its
        # import as ImportError: the interrupt behind them, or one received meanwhile
        kind = _interrupted(exc) or (_RECEIVED[0] if _RECEIVED else None)
        if kind is None:
            raise
        return _end_interrupted(kind, command)
    finally:
        if command and threading.current_thread() is threading.main_thread():
            # the interpreter's own shutdown (atexit work, threads) may still take a while:
            # a signal then ends it with the same line and status
            signal.signal(signal.SIGINT, _late_signal)
            signal.signal(signal.SIGTERM, _late_signal)


def _late_signal(signum, frame) -> None:
    _end_interrupted(Terminated if signum == signal.SIGTERM else KeyboardInterrupt)


if __name__ == "__main__":
    sys.exit(main())
