"""The ``matrixnms`` command: ``matrixnms bench | export | demo``; parsers and exit codes.

    matrixnms bench --quick                        # N = 100 and 500, fewer rounds: the table of ratios
    matrixnms bench --json bench.json --plot bench.png   # the standard cases of ``pytest benchmarks``
    matrixnms bench --families masks --sizes 500   # one family, one size
    matrixnms export nms.onnx -n 500 --mask-size 200 336 --labels --verify   # static-shape graph to ONNX
    matrixnms demo --help                          # the SOLOv2 reference demo (solov2_ref.demo)
    matrixnms sweep val.parquet --gt val_gt.json --method matrix --sigma 0.25 0.5 1 --out sweep/
    matrixnms rescore val.parquet --out results.json --method matrix --kernel linear   # COCO results

``python -m matrixnms`` and ``python -m matrixnms.export`` (= ``matrixnms export``) run the same parsers.
Exit status: 0 on success; 2 for bad arguments or a missing optional package (the message names the package
and the extra that installs it); 1 when a written file fails its check (``export --verify``, ``bench --plot``
without results to plot). Nothing here imports torch or ``solov2_ref`` until a command needs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

DEMO_MODULE = "solov2_ref.demo"
# the extra of pyproject.toml that installs a command's optional packages, where it is not the command's name
_EXTRA_OF_PACKAGE = {"onnx": "export", "onnxscript": "export", "onnxruntime": "export", "openvino": "export"}


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 100,500, got {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be integers >= 1, got {text!r}")
    return sizes


def _image(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 200x336, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"height and width must be >= 1, got {text!r}")
    return height, width


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _families(text: str) -> list[str]:
    from .bench import FAMILIES

    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"families must be among {', '.join(FAMILIES)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matrixnms",
                                     description="Matrix NMS (SOLOv2): benchmarks, ONNX export and demo.")
    commands = parser.add_subparsers(dest="command", metavar="{bench,export,demo,sweep,rescore}")
    bench = commands.add_parser(
        "bench", help="time matrix_nms against the paper's code and traditional NMS",
        description=("Time every available path of matrix_nms against the paper's Figure 1 transcribed in NumPy "
                     "and Torch, greedy NMS and Soft-NMS, on seeded SOLO-like scenes (the cases of "
                     "`pytest benchmarks`); print medians and ratios, optionally write JSON and a plot."))
    bench.add_argument("--quick", action="store_true", help="N = 100 and 500 masks, fewer rounds")
    bench.add_argument("--json", metavar="FILE", help="write every measurement, the ratios and the targets as JSON")
    bench.add_argument("--plot", metavar="FILE.png", help="write a log-log plot of time vs N (masks and boxes)")
    bench.add_argument("--families", type=_families, default=None,
                       help="comma-separated subset of masks,boxes,mask_iou,masks_to_boxes (default: all)")
    bench.add_argument("--sizes", type=_sizes, default=None, help="override N, e.g. 100,500")
    bench.add_argument("--image", type=_image, default=None, help="mask size HEIGHTxWIDTH (default 200x336)")
    bench.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    bench.add_argument("--threads", type=_positive, default=None,
                       help="limit Numba, Torch and BLAS (with threadpoolctl) to this many threads")
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_export_parser(commands)
    commands.add_parser("demo", help="run the SOLOv2 reference demo (arguments go to the demo; try --help)",
                        add_help=False)
    _add_tuning_parsers(commands)
    return parser


# --- sweep and rescore: NMS variants over a candidate file (matrixnms.tuning) -----------------------------

# the options each --method takes (each a list of values in a sweep); see matrixnms.tuning.variants
_METHOD_OPTIONS = {"matrix": ("kernel", "sigma", "post_threshold"), "greedy": ("iou", "post_threshold"),
                   "soft": ("sigma", "post_threshold"), "none": ("post_threshold",)}


class _MethodAction(argparse.Action):
    """``--method NAME`` opens a group; the grid options after it belong to that group until the next one."""

    def __call__(self, parser, namespace, values, option_string=None):
        groups = list(getattr(namespace, "methods", None) or [])
        groups.append((values, {}))
        namespace.methods = groups


class _GridAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        groups = getattr(namespace, "methods", None)
        if not groups:
            parser.error(f"{option_string} must follow a --method (e.g. --method matrix {option_string} ...)")
        method, options = groups[-1]
        if self.dest not in _METHOD_OPTIONS[method]:
            takes = ", ".join("--" + o.replace("_", "-") for o in _METHOD_OPTIONS[method])
            parser.error(f"--method {method} takes {takes}, not {option_string}")
        if self.dest in options:
            parser.error(f"{option_string} given twice for one --method {method}")
        options[self.dest] = list(values)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _add_variant_options(sub: argparse.ArgumentParser, many: bool) -> None:
    nargs = "+" if many else 1
    group = sub.add_argument_group(
        "NMS variants", "--method opens a group; the options after it, up to the next --method, belong to it"
        + (" and take lists: the grid is every combination within each group, all groups together."
           if many else ". One value each.")
        + " Default: --method matrix --kernel gaussian --sigma 0.5 --post-threshold 0.05 (SOLOv2's).")
    group.add_argument("--method", action=_MethodAction, choices=tuple(_METHOD_OPTIONS), default=None,
                       dest="methods", help="matrix, greedy (mask_nms), soft or none")
    group.add_argument("--kernel", action=_GridAction, nargs=nargs, choices=("gaussian", "linear"),
                       help="matrix: the decay kernel(s)")
    group.add_argument("--sigma", action=_GridAction, nargs=nargs, type=_fraction,
                       help="matrix gaussian / soft: the paper's sigma (SOLO's sigma 2.0 is 0.5 here)")
    group.add_argument("--iou", action=_GridAction, nargs=nargs, type=_fraction,
                       help="greedy: suppress when IoU > this")
    group.add_argument("--post-threshold", action=_GridAction, nargs=nargs, type=_fraction,
                       help="keep results whose final score is >= this (default 0.05)")
    group.add_argument("--pre-top-k", type=_positive, default=500, help="candidates per image the NMS sees (500)")
    group.add_argument("--post-top-k", type=_positive, default=100, help="results kept per image (100)")
    run = sub.add_argument_group("engine")
    run.add_argument("--engine", choices=("ray", "local"), default=None,
                     help="ray (default when ray is installed): Ray Data; local: one process, same numbers")
    run.add_argument("--num-cpus", type=_positive, default=None, help="CPUs of the local Ray cluster (default: all)")
    run.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto, ray://head:10001)")
    run.add_argument("--cpus-per-worker", type=_positive, default=1,
                     help="CPUs (Numba / Torch threads) of each Ray NMS task (1)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_tuning_parsers(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep", help="score a grid of NMS variants with COCO mask AP on a candidate file",
        description="Run every NMS variant of a grid over every image of a candidate file (Parquet, "
                    "matrixnms.tuning.candidates) and score each with COCO mask AP; print a table sorted by AP and "
                    "write results.md, sweep.json and sweep.png to --out.",
        epilog="example: matrixnms sweep val.parquet --gt val_gt.json --method matrix --kernel gaussian linear "
               "--sigma 0.1 0.25 0.5 1 2 --post-threshold 0.05 0.1 --method greedy --iou 0.3 0.5 0.7 --out sweep/")
    sweep.add_argument("candidates", type=Path, help="the candidate file (.parquet)")
    sweep.add_argument("--gt", type=Path, required=True, help="COCO ground-truth JSON of the same images")
    sweep.add_argument("--out", type=Path, required=True, help="directory for results.md, sweep.json, sweep.png")
    sweep.add_argument("--evaluator", choices=("pycocotools", "faster-coco-eval"), default="pycocotools",
                       help="COCOeval implementation (default pycocotools)")
    sweep.add_argument("--compare-engines", action="store_true",
                       help="run the local and the ray engines in one run: times, ratio, identical tables")
    _add_variant_options(sweep, many=True)
    rescore = commands.add_parser(
        "rescore", help="apply one NMS variant to a candidate file and stream COCO results (JSON)",
        description="Apply one NMS variant to every image of a candidate file and write COCO results (RLE "
                    "segmentations, xywh boxes, scores) incrementally, in bounded memory.")
    rescore.add_argument("candidates", type=Path, help="the candidate file (.parquet)")
    rescore.add_argument("--out", type=Path, required=True, help="the COCO results JSON to write")
    _add_variant_options(rescore, many=False)


def _variants(args: argparse.Namespace) -> list:
    from .tuning.variants import grid

    return grid(args.methods or [("matrix", {})], pre_top_k=args.pre_top_k, post_top_k=args.post_top_k)


def _tuning(args: argparse.Namespace) -> int:
    try:
        from .tuning import engines, sweep
        from .tuning.candidates import CandidateError
    except ImportError as error:
        return _missing_ray(args.command, error)
    if args.command == "rescore" and args.methods and len(args.methods) > 1:
        print("matrixnms rescore: give one --method (one variant)", file=sys.stderr)
        return 2
    engine = args.engine or engines.default_engine()
    run = dict(engine=engine, num_cpus=args.num_cpus, address=args.address, cpus_per_worker=args.cpus_per_worker,
               progress=not args.no_progress)
    try:
        variants = _variants(args)
        if not args.candidates.exists():
            raise FileNotFoundError(f"no candidate file {args.candidates}")
        if args.command == "rescore":
            written = sweep.rescore(args.candidates, variants[0], args.out, **run)
            print(f"{variants[0].name}: wrote {written} detections to {args.out}")
            return 0
        if args.compare_engines:
            run.pop("engine")
            compared = sweep.compare_engines(args.candidates, args.gt, variants, evaluator=args.evaluator, **run)
            rows = compared["ray"]
            with_startup = (compared["ray_seconds"] + compared["ray_startup_seconds"]) / compared["local_seconds"]
            print(f"local engine {compared['local_seconds']:.1f} s, ray engine {compared['ray_seconds']:.1f} s "
                  f"(+ {compared['ray_startup_seconds']:.1f} s Ray start-up): ratio {compared['ratio']:.2f} "
                  f"({with_startup:.2f} with the start-up); "
                  f"AP tables {'identical' if compared['identical'] else 'DIFFERENT'}")
        else:
            rows = sweep.sweep(args.candidates, args.gt, variants, evaluator=args.evaluator, **run)
    except ImportError as error:
        return _missing_ray(args.command, error)
    except (CandidateError, ValueError, FileNotFoundError) as error:
        print(f"matrixnms {args.command}: {error}", file=sys.stderr)
        return 2
    paths = sweep.write_outputs(rows, args.out, args.candidates)
    print(sweep.format_table(rows))
    print(f"\nbest: {rows[0]['name']} (AP {100 * rows[0]['AP']:.2f}); wrote " + ", ".join(map(str, paths.values())))
    if args.compare_engines and not compared["identical"]:
        return 1
    return 0


def _missing_ray(command: str, error: ImportError) -> int:
    package = error.name.partition(".")[0] if error.name else None
    print(f"matrixnms {command} needs the package {package!r}: pip install \"matrixnms[ray]\" "
          "(or --engine local without ray)", file=sys.stderr)
    return 2


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="export static-shape Matrix NMS to ONNX (torch, onnx, onnxscript)",
        description="Export static-shape Matrix NMS to ONNX (inputs: scores, masks|boxes, [labels], [valid]; "
                    "outputs: keep, decayed, num_valid).")
    export.add_argument("output", type=Path, help="the .onnx file to write")
    export.add_argument("--num-candidates", "-n", type=int, required=True, help="N, fixed input rows")
    kind = export.add_mutually_exclusive_group(required=True)
    kind.add_argument("--mask-size", type=int, nargs=2, metavar=("H", "W"), help="export the mask variant")
    kind.add_argument("--boxes", action="store_true", help="export the box variant")
    export.add_argument("--labels", action="store_true", help="add a labels input (class-aware NMS)")
    export.add_argument("--no-valid", dest="valid", action="store_false", help="no valid (padding) input")
    export.add_argument("--mask-dtype", choices=("bool", "uint8"), default="bool",
                        help="type of the masks input (uint8: 0/1, faster in OpenVINO)")
    export.add_argument("--kernel", choices=("gaussian", "linear"), default="gaussian")
    export.add_argument("--sigma", type=float, default=0.5, help="paper's sigma (SOLO's 2.0 is 0.5 here)")
    export.add_argument("--score-threshold", type=float, default=None)
    export.add_argument("--post-threshold", type=float, default=None)
    export.add_argument("--pre-top-k", type=int, default=None)
    export.add_argument("--post-top-k", type=int, default=None)
    # None: to_onnx's default (matrixnms.export.DEFAULT_OPSET), so that parsing needs no torch
    export.add_argument("--opset", type=int, default=None,
                        help="ONNX opset, >= 18 (default: matrixnms.export.DEFAULT_OPSET)")
    export.add_argument("--verify", action="store_true",
                        help="run the file in onnxruntime and, when installed, OpenVINO (default settings and "
                             "each INFERENCE_PRECISION_HINT the CPU executes) on a synthetic scene and compare "
                             "with matrix_nms")


def _missing(command: str, error: ImportError) -> int:
    """Say which package ``command`` lacks and which extra installs it; the exit status of that case."""
    package = error.name.partition(".")[0] if error.name else None
    extra = _EXTRA_OF_PACKAGE.get(package, command)
    what = f"the package {package!r}" if package else f"a package it could not import ({error})"
    print(f"matrixnms {command} needs {what}: pip install \"matrixnms[{extra}]\"", file=sys.stderr)
    return 2


def _export(args: argparse.Namespace) -> int:
    try:
        from . import export
    except ImportError as error:
        return _missing("export", error)
    mask_size = None if args.mask_size is None else tuple(args.mask_size)
    shape = dict(boxes=args.boxes, labels=args.labels, valid=args.valid, mask_dtype=args.mask_dtype)
    options = dict(kernel=args.kernel, sigma=args.sigma, score_threshold=args.score_threshold,
                   post_threshold=args.post_threshold, pre_top_k=args.pre_top_k, post_top_k=args.post_top_k)
    opset = {} if args.opset is None else {"opset": args.opset}
    try:
        path = export.to_onnx(args.output, args.num_candidates, mask_size, **shape, **options, **opset)
    except (TypeError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    if args.verify:
        try:
            print(export.verify_onnx(path, args.num_candidates, mask_size, **shape, **options))
        except ImportError as error:
            return _missing("export", error)
        except RuntimeError as error:
            print(f"verification FAILED: {error}", file=sys.stderr)
            return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    from . import bench

    families = args.families or list(bench.FAMILIES)
    mode = "quick" if args.quick else "full"
    if args.threads is not None:
        limits = bench.set_threads(args.threads)
        print("threads: " + ", ".join(f"{k} {v}" for k, v in limits.items()))
    info = bench.machine_info()
    print(f"matrixnms bench ({mode}): {info['cpu']}, {info['cores']} cores; numpy {info['numpy']} "
          f"(BLAS threads {info['blas_threads']})"
          + (f", torch {info['torch']} ({info.get('torch_threads')} threads)" if "torch" in info else "")
          + (f", numba {info['numba']} ({info.get('numba_threads')} threads)" if "numba" in info else "")
          + (f", pycocotools {info['pycocotools']}" if "pycocotools" in info else "")
          + (f"; GPU {info['gpu']}" if "gpu" in info else "; no GPU"), flush=True)
    result = bench.run(families, mode, sizes=args.sizes, image=args.image, seed=args.seed,
                       progress=not args.no_progress, targets=bench.repository_targets())
    skipped = [(s["group"], s["method"], s["reason"]) for s in result["skipped"]]
    print(bench.format_table(result["results"], skipped, result["targets"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"\nwrote {args.json}")
    if args.plot:
        if any(r["family"] in ("masks", "boxes") for r in result["results"]):
            bench.plot(result["results"], args.plot, result["machine"])
            print(f"wrote {args.plot}")
        else:
            print(f"no mask or box results to plot; {args.plot} not written", file=sys.stderr)
            return 1
    return 0


def _demo(argv: list[str]) -> int:
    import importlib

    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ImportError as error:
        if error.name in ("solov2_ref", DEMO_MODULE):
            # solov2_ref ships in the source distribution next to matrixnms, not in every installation
            print("matrixnms demo: the SOLOv2 reference demo (solov2_ref.demo) is not part of this installation; "
                  "install matrixnms from a source checkout with `pip install -e \".[demo]\"`.", file=sys.stderr)
            return 2
        return _missing("demo", error)
    try:
        status = demo.main(argv)
    except ImportError as error:  # the demo imports tqdm, and for --onnx onnxruntime, when it runs
        return _missing("demo", error)
    return 0 if status is None else int(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``matrixnms`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # everything after "demo" belongs to the demo's own parser (including --help)
        return _demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "export":
        return _export(args)
    if args.command in ("sweep", "rescore"):
        return _tuning(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
