"""``psplava export CKPT -o MODEL.net``."""

from __future__ import annotations

import argparse
import json
import sys

from psplava.argtypes import count_int, positive_int, refuse_unused
from psplava.errors import PsplavaError, check_output


def _cmd_export(args: argparse.Namespace) -> int:
    # heavy: checkpoints and the exporter load torch and lava-dl
    from psplava.device import resolve_device
    from psplava.export.exporter import export_checkpoint
    from psplava.train.checkpoint import load_checkpoint
    from psplava.train.norm import NormKind

    check_output(args.output, (args.checkpoint,), (f".{args.format}",))
    if not args.causal_eval:
        refuse_unused(args, ("dataset", "root", "split", "limit"),
                      "without --causal-eval (export's own accuracy check reads the "
                      "checkpoint's held-out recordings; see --eval-samples)")
    if args.split is None:
        args.split = "test"
    if args.k_max is not None:
        # heavy: torch
        from psplava import loihi

        try:
            loihi.check_k_max(args.k_max, "--k-max")
        except ValueError as exc:
            raise PsplavaError(str(exc)) from None
    if args.device is not None:
        resolve_device(args.device)  # a bad device is refused before any work
    norm = NormKind(load_checkpoint(args.checkpoint)["model_spec"].get("norm", "psp_ln"))
    if args.causal_eval and norm is NormKind.PSP_LN:
        return _causal_eval(args)
    if args.format == "nir":
        return _export_nir(args)
    report = export_checkpoint(args.checkpoint, args.output, k_max=args.k_max)
    print(f"{'layer':>5} {'type':6} {'neuron':6} {'scale':>8} {'w rel rms err':>14} "
          f"{'w max err':>10} {'th mant':>8}")
    for r in report:
        print(f"{r['layer']:5d} {r['type']:6} {r['neuron']:6} {r['scale']:8.3g} "
              f"{r['weight_rel_rms_error']:14.4%} {r['weight_max_abs_error']:10.4g} "
              f"{r['threshold_mantissa']:8d}")
    print(f"wrote {args.output}")
    res = {"output": str(args.output), "layers": report}
    if args.eval_samples > 0:
        res["accuracy"] = _held_out_accuracy(args.checkpoint, args.eval_samples, args.device)
    print(json.dumps(res))
    return 0


def _held_out_accuracy(ckpt: str, samples: int, device: str | None = None) -> dict | None:
    """Accuracy of the float model and of the exported (loihi) arithmetic on the first
    ``samples`` held-out recordings of the checkpoint's config, when its data is at hand."""
    # heavy: the training loop loads lava-dl
    from psplava.train.checkpoint import load_checkpoint
    from psplava.train.trainer import evaluate

    cfg = load_checkpoint(ckpt)["config"]
    split = "val" if int(cfg.get("data", {}).get("val_count") or 0) > 0 else "test"
    try:
        bar = sys.stderr.isatty()  # tqdm bars with ETA on a terminal, silent in logs
        flt = evaluate(ckpt, split=split, limit=samples, arithmetic="float", progress=bar,
                       device=device)
        exp = evaluate(ckpt, split=split, limit=samples, arithmetic="loihi", progress=bar,
                       device=device)
    except PsplavaError as exc:
        print(f"(no accuracy check: the config's data is not at hand: {exc})", file=sys.stderr)
        return None
    diff = exp["accuracy"] - flt["accuracy"]
    print(f"accuracy on {exp['samples']} held-out ({split}) samples: float model "
          f"{flt['accuracy']:.4f}, exported arithmetic {exp['accuracy']:.4f} ({diff:+.4f}) "
          f"on {exp['device']}")
    if abs(diff) > 0.02:
        print(f"WARNING: the exported network's accuracy differs from the float model's by "
              f"{abs(diff) * 100:.1f} points; fine-tune in the chip's arithmetic: psplava train "
              f"--init-from {ckpt} --set model.arithmetic=loihi ...", file=sys.stderr)
    return {"split": split, "samples": exp["samples"], "float": flt["accuracy"],
            "exported": exp["accuracy"], "difference": diff, "warning": abs(diff) > 0.02,
            "device": exp["device"]}


def _export_nir(args: argparse.Namespace) -> int:
    """The same folded, quantized layers as the .net file, written as a NIR graph, then
    read back with ``nir.read`` (a file that does not round-trip is an error)."""
    # heavy: NIR, checkpoints and the exporter load torch and lava-dl
    import nir

    from psplava.export.exporter import build_layers
    from psplava.export.nir_export import write_nir
    from psplava.train.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(args.checkpoint))
    layers, _ = build_layers(model, args.k_max)
    write_nir(args.output, layers)
    try:
        graph = nir.read(str(args.output))
    except Exception as exc:  # noqa: BLE001 - nir's own reader, reported as one line
        raise PsplavaError(f"{args.output}: written but nir cannot read it back ({exc})")
    print(f"wrote {args.output} (NIR: {len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    print(json.dumps({"output": str(args.output), "format": "nir",
                      "nodes": sorted(graph.nodes), "edges": len(graph.edges)}))
    return 0


def _causal_eval(args: argparse.Namespace) -> int:
    """Accuracy of the same weights with whole-window vs causal PSP-LN statistics."""
    # heavy: the training loop loads lava-dl
    from psplava.train.trainer import evaluate

    if not args.dataset:
        raise PsplavaError("--causal-eval needs --dataset (and --root) to evaluate on")
    whole = evaluate(args.checkpoint, args.dataset, args.root, args.split, args.limit)
    causal = evaluate(args.checkpoint, args.dataset, args.root, args.split, args.limit,
                      norm_override="causal_psp_ln")
    res = {"whole_window_accuracy": whole["accuracy"], "causal_accuracy": causal["accuracy"],
           "accuracy_change": causal["accuracy"] - whole["accuracy"],
           "samples": causal["samples"], "exported": False}
    print(f"not exported: whole-window PSP-LN is not causal.  The same weights with causal "
          f"PSP-LN: accuracy {causal['accuracy']:.4f} vs {whole['accuracy']:.4f} "
          f"({res['accuracy_change']:+.4f}) on {causal['samples']} samples; fine-tune with "
          f"model.norm=causal_psp_ln and export that checkpoint.")
    print(json.dumps(res))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    # heavy: the file reader loads torch
    from psplava.netfile import read_netfile

    net = read_netfile(args.model)
    print(f"{net.path}: format {net.version} ({'psplava' if net.version else 'stock netx'}), "
          f"{len(net.layers)} layers")
    prov = _provenance(net)
    if prov:
        print(f"  imported from NIR: {prov.get('file')} (framework: "
              f"{prov.get('framework') or 'not named'}; dt = {prov.get('dt')} from "
              f"{prov.get('dt_source')})")
    rows = []
    for layer in net.layers:
        extra = ""
        if layer.neuron:
            extra = f"{layer.model.type_name} v_th_mant={layer.hardware.v_th_mant}"
        if layer.dynamic_threshold:
            dyn = layer.dynamic_threshold
            extra += f" dynamic threshold (lambda={dyn.lam}" + (
                f", prior {dyn.prior:.4g} over {dyn.prior_steps:g} steps)" if dyn.prior_steps
                else ")")
        for skip in layer.skips:
            extra += f" + skip({skip.mode.value} of layer/{skip.source})"
        print(f"  {layer.index:3d} {layer.type:8s} shape={layer.shape} {extra}")
        rows.append({"index": layer.index, "type": layer.type, "shape": list(layer.shape),
                     "neuron": layer.model.type_name if layer.neuron else None,
                     "dynamic_threshold": layer.dynamic_threshold is not None,
                     "skips": [{"source": k.source, "mode": k.mode.value}
                               for k in layer.skips]})
    print(json.dumps({"path": net.path, "format": net.version, "layers": rows,
                      "provenance": prov}))
    return 0


def _provenance(net) -> dict | None:
    """Where a file came from when it was not exported from a checkpoint (``psplava
    import`` writes the ``provenance`` attribute: NIR, the framework, dt)."""
    raw = net.attrs.get("provenance")
    if raw is None:
        return None
    try:
        prov = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return {"unreadable": str(raw)[:200]}
    return prov if isinstance(prov, dict) else {"unreadable": str(raw)[:200]}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="check a .net file and list its layers")
    p.add_argument("model")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("export", help="fold, quantize and write a netx .net file")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out", "--output", dest="output", required=True,
                   help="output file (.net, or .nir with "
                   "--format nir)")
    p.add_argument("--format", choices=("net", "nir"), default="net",
                   help="net: netx HDF5 + psplava's extension (Lava); nir: a NIR graph "
                   "(CUBA networks; export/nir_export.py says what maps how)")
    p.add_argument("--k-max", type=float, default=None,
                   help="largest weight scale (integer units per float unit; lava-dl uses 64); "
                        "default: the checkpoint's model.k_max, the rule it was trained with")
    p.add_argument("--eval-samples", type=count_int, default=50,
                   help="held-out samples on which to compare the float model's accuracy with "
                        "the exported arithmetic's (0: skip); warns above 2 points")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="where the accuracy check runs: auto | cpu | cuda | cuda:N "
                        "(default: auto)")
    p.add_argument("--causal-eval", action="store_true",
                   help="for whole-window PSP-LN: evaluate the weights with causal statistics")
    p.add_argument("--dataset", choices=["nmnist", "fmnist", "digits"], default=None)
    p.add_argument("--root", default=None)
    p.add_argument("--split", default=None, choices=["train", "test"],
                   help="with --causal-eval: which recordings (default: test)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="with --causal-eval: the first N recordings")
    p.set_defaults(func=_cmd_export)
