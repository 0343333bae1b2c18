"""``psplava sim``: run a ``.net`` file in Lava or the fixed-point reference engine.

A command of the glue layer: with ``--dataset`` / ``--compare`` it needs checkpoints and
datasets as well as the simulators (:mod:`psplava.cli.pipeline`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from psplava.argtypes import positive_float, positive_int, refuse_unused, steps_int
from psplava.errors import PsplavaError, atomic_path, check_output

# The file reader, the engines and the pipeline load torch and Lava (seconds): each
# function imports what it runs, so registering the command (``psplava --help``) does not.


#: largest input (elements x steps) ``sim --input`` accepts
MAX_INPUT_ELEMENTS = 1 << 30


def _load_input(path: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="r")
    except FileNotFoundError:
        raise PsplavaError(f"{path}: input file not found") from None
    except PermissionError:
        raise PsplavaError(f"{path}: permission denied") from None
    except (ValueError, OSError, EOFError) as exc:
        raise PsplavaError(f"{path}: not a readable .npy array ({exc})") from None
    if x.ndim not in (2, 4):
        raise PsplavaError(f"{path}: input has shape {x.shape}; expected (x, y, f, T) or (F, T)")
    if x.size > MAX_INPUT_ELEMENTS:
        raise PsplavaError(f"{path}: input has {x.size:,} elements, more than "
                           f"{MAX_INPUT_ELEMENTS:,}")
    if x.dtype.kind == "f":
        # other frameworks' inputs are float arrays of integers (lava-dl's tutorial
        # read_np_spikes(...).to_tensor(), tonic frames as torch tensors): exact integers
        # are taken as they are, anything else is refused
        x = np.asarray(x)
        bad = ~np.isfinite(x) | (x != np.round(x))
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise PsplavaError(f"{path}: input dtype is {x.dtype} with non-integral value "
                               f"{x[i]!r} at {tuple(int(v) for v in i)}; spikes, event "
                               "counts and graded inputs are integers")
        if x.size and np.abs(x).max() >= 2 ** 31:
            raise PsplavaError(f"{path}: input values reach {np.abs(x).max():g}, beyond 32 bits")
        return x.astype(np.int64)
    if x.dtype.kind not in "biu":
        raise PsplavaError(f"{path}: input dtype is {x.dtype}; spikes and graded inputs must "
                           "be integer, boolean or integral float arrays")
    return np.asarray(x)


#: largest event count per bin (Lava's graded input port carries 16 bits)
MAX_COUNT = (1 << 16) - 1


def _check_spikes(path: str, x: np.ndarray, net) -> None:
    """Spike inputs (every file but those starting with an input neuron): 0 or 1 into SRM
    files; event counts per bin (0 .. :data:`MAX_COUNT`) into stock netx files."""
    first = net.layers[0]
    if first.type == "input" and first.neuron:
        return  # graded a_in of the input neuron
    srm = any(not layer.model.stock_netx for layer in net.layers if layer.neuron)
    top = 1 if srm else MAX_COUNT
    if x.size and (x.min() < 0 or x.max() > top):
        what = "spike input must hold 0 and 1 only (SRM files)" if srm else \
            f"spike or event-count input must hold integers in 0..{top}"
        raise PsplavaError(f"{path}: {what}, found values in [{x.min()}, {x.max()}]")


def _pad(x: np.ndarray, steps: int) -> np.ndarray:
    if x.shape[-1] >= steps:
        return x[..., :steps]
    pad = np.zeros((*x.shape[:-1], steps - x.shape[-1]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=-1)


def _run_one(model: str, x: np.ndarray, engine: str, input_path: str = "input",
             device=None) -> np.ndarray:
    """The output layer's output, Lava order ((x, y, f, T) or (F, T)), for one input x
    (:func:`psplava.netfile.input_shape` + (T,))."""
    from psplava.netfile import input_shape, read_netfile  # heavy: torch

    net = read_netfile(model)
    _check_spikes(input_path, x, net)
    expected = input_shape(net)
    if tuple(x.shape[:-1]) != expected:
        raise PsplavaError(f"{model}: the input has shape {tuple(x.shape[:-1])} per step, the "
                           f"network expects {expected} (see docs/netfile.md, 'Input')")
    if engine == "lava":
        from psplava.sim.lava_engine import LavaNetwork  # heavy: Lava's runtime

        with LavaNetwork(model, x.shape[-1], "last", net_file=net) as lava:
            return lava.run(x[None])[-1][0]
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed  # torch

    return internal_to_lava(run_fixed(net, lava_to_internal(x), device or "cpu")[-1])[0]


def _cmd_sim(args: argparse.Namespace) -> int:
    from psplava.device import describe, resolve_device  # heavy: torch

    if args.device is not None and args.engine != "reference":
        raise PsplavaError("--device applies to --engine reference (Lava simulates on "
                           "the CPU)")
    device = resolve_device(args.device) if args.engine == "reference" else None
    if args.input:
        refuse_unused(args, ("compare", "dataset", "root", "split", "limit", "dt"),
                      "with --input (one array in, one array out; the dataset mode reads "
                      "recordings)")
        if args.output is None:
            raise PsplavaError("--input needs --output")
        check_output(args.output, (args.model, args.input), (".npy",))
        x = _load_input(args.input)
        steps = args.steps or x.shape[-1]
        if steps * (x.size // max(x.shape[-1], 1)) > MAX_INPUT_ELEMENTS:
            raise PsplavaError(f"--steps {steps} x {x.size // max(x.shape[-1], 1):,} inputs "
                               f"exceeds {MAX_INPUT_ELEMENTS:,} elements")
        x = _pad(x, steps)
        t0 = time.time()
        out = _run_one(args.model, x, args.engine, args.input, device)
        with atomic_path(args.output) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out.astype(np.uint8) if out.dtype == bool else out)
        res = {"output": str(args.output), "shape": list(out.shape), "spikes": int(out.sum()),
               "engine": args.engine, "seconds": round(time.time() - t0, 3),
               "device": describe(device) if device is not None else "cpu"}
        print(json.dumps(res))
        return 0
    # dataset mode: --dataset/--root default to the run config the file carries
    refuse_unused(args, ("output",), "without --input (the dataset mode prints accuracy and "
                  "spike counts; --input X.npy --output Y.npy runs one array)")
    if args.split is None:
        args.split = "test"
    return _sim_dataset(args)


def _sim_dataset(args: argparse.Namespace) -> int:
    from psplava.cli.pipeline import simulate_dataset  # heavy: torch, checkpoints, Lava

    res = simulate_dataset(args.model, args.dataset, args.root, args.split, args.limit,
                           args.engine, args.compare, args.steps, args.dt,
                           progress=not args.no_progress, device=args.device)
    print(f"{args.engine}: accuracy {res['accuracy']:.4f} on {res['samples']} samples")
    if "mismatches" in res:
        mm = res["mismatches"]
        print(f"spike mismatches per layer vs the checkpoint's loihi-arithmetic forward: "
              f"{mm['loihi_exact']}; vs its float model (quantization effect): {mm['float']}")
    print(json.dumps(res))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run a .net file in Lava or the reference engine")
    p.add_argument("model")
    p.add_argument("--engine", choices=["lava", "reference"], default="lava")
    p.add_argument("--input", help="one input .npy, Lava order, shape = the file's input "
                   "shape + (T,): (x, y, f, T) or (F, T) spikes, or the input neuron's a_in "
                   "(graded integers) for a file that starts with an input neuron "
                   "(docs/netfile.md, 'Input')")
    p.add_argument("--steps", type=steps_int, default=None,
                   help="steps to run (input zero-padded or cut; default: the input's T, or "
                   "the file's config in dataset mode)")
    p.add_argument("-o", "--out", "--output", dest="output",
                   help="with --input: the output .npy of the output layer's output, Lava "
                   "order")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default=None, choices=["train", "test", "val"],
                   help="val: the recordings the run (the file's config) held out (default: "
                   "test)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="first N recordings of the split")
    p.add_argument("--dt", type=positive_float, default=None, help="bin width, ms")
    p.add_argument("--compare", metavar="CKPT", default=None,
                   help="count spike mismatches per layer against this checkpoint")
    p.add_argument("--json", action="store_true", help="(the last line is always JSON)")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="reference engine: auto | cpu | cuda | cuda:N (default: auto)")
    p.set_defaults(func=_cmd_sim)
