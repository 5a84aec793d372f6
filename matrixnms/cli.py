"""The ``matrixnms`` command: ``matrixnms bench`` (timings, ratios, plot) and ``matrixnms demo``.

    matrixnms bench --quick                        # about 30 s on 2 cores: N = 100 and 500, table of ratios
    matrixnms bench --json bench.json --plot bench.png   # the full standard cases (minutes)
    matrixnms bench --families masks --sizes 500   # one family, one size
    matrixnms demo --help                          # the SOLOv2 reference demo (solov2_ref.demo)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

DEMO_MODULE = "solov2_ref.demo"


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
    parser = argparse.ArgumentParser(prog="matrixnms", description="Matrix NMS (SOLOv2): benchmarks and demo.")
    commands = parser.add_subparsers(dest="command", metavar="{bench,demo}")
    bench = commands.add_parser(
        "bench", help="time matrix_nms against the paper's code and traditional NMS",
        description=("Time every available path of matrix_nms against the paper's Figure 1 transcribed in NumPy "
                     "and Torch, greedy NMS and Soft-NMS, on seeded SOLO-like scenes (the cases of "
                     "`pytest benchmarks`); print medians and ratios, optionally write JSON and a plot."))
    bench.add_argument("--quick", action="store_true", help="N = 100 and 500 masks, fewer rounds (about 30 s)")
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
    commands.add_parser("demo", help="run the SOLOv2 reference demo (arguments go to the demo; try --help)",
                        add_help=False)
    return parser


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
    except ModuleNotFoundError as exc:
        if exc.name in ("solov2_ref", DEMO_MODULE):
            print("matrixnms demo: the SOLOv2 reference demo (solov2_ref.demo) is not part of this installation; "
                  "install matrixnms from a source checkout with `pip install -e '.[demo]'`.", file=sys.stderr)
        else:
            print(f"matrixnms demo needs the package {exc.name!r}: pip install 'matrixnms[demo]'", file=sys.stderr)
        return 2
    status = demo.main(argv)
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
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
