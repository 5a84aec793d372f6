"""The methods of each family: :class:`Method` and the builders of the library's paths and the baselines."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Callable, Iterable

import numpy as np

from .._dispatch import resolve
from .cases import FAMILIES, IOU_THRESHOLD, SIGMA, Case, cases, scene
from .checks import (
    check_boxes, check_coco_boxes, check_fast, check_floor, check_greedy, check_mask_iou, check_matrix_nms,
    check_paper, check_soft, coco_rles, fortran_uint8, numpy_any_boxes,
)
from .machine import threads_of
from .places import PATHS, place_name, place_reason, place_suffix, timed, to_library

# The kernel (``_dispatch`` op) behind each family's library call.
_OPS = {"masks": "mask_decay", "boxes": "box_decay", "mask_iou": "mask_iou", "masks_to_boxes": "masks_to_boxes"}


@dataclass(frozen=True)
class Method:
    """One way of processing a case's input, with what it times.

    ``build(case)`` prepares the inputs (conversions, encodings: not timed) and returns the zero-argument
    callable that is timed; ``check(case, result)`` raises AssertionError when its result is wrong.
    """

    key: str
    family: str
    title: str
    role: str  # "library", "paper", "greedy", "baseline", "floor", "reference"
    library: str
    device: str
    what: str
    includes_iou: bool
    thread_kind: str
    build: Callable[[Case], Callable[[], Any]]
    check: Callable[[Case, Any], None]
    backend: str | None = None
    op: str | None = None
    only_labelled: bool | None = None  # True: labelled cases only; False: class-agnostic only
    requires: tuple[str, ...] = ()

    @property
    def place(self) -> str:
        return place_suffix(self.library, self.device)

    def skip_reason(self, case: Case) -> str | None:
        """Why this method does not run on ``case`` here, or None when it does."""
        for package in self.requires:
            if find_spec(package) is None:
                return f"{package} not installed"
        reason = place_reason(self.library, self.device)
        if reason:
            return reason
        if self.backend not in (None, "generic", "auto"):
            try:
                resolve(self.op, _probe(self.library, self.device), self.backend)
            except ImportError:  # the backend's package is not installed
                return f"{self.backend} not installed"
            except ValueError:  # no kernel for the op on this backend (or no op)
                return f"no {self.backend!r} kernel registered for {self.op} on {self.place} arrays"
        return None

    def applies(self, case: Case) -> bool:
        """False for a case the method is not meant for (``nms`` on labelled boxes, ``batched_nms`` without)."""
        return self.only_labelled is None or self.only_labelled == case.labelled

    def threads(self) -> str:
        kind = self.thread_kind
        if kind == "auto":  # whatever backend="auto" runs
            chosen = auto_backend(self.op, self.library, self.device)
            kind = chosen if chosen in ("numba", "torch") else "torch" if self.library == "torch" else "serial"
        return threads_of(kind)

    def info(self, case: Case) -> dict[str, Any]:
        """What a result of this method on ``case`` is: stored in pytest-benchmark's extra_info and the JSON."""
        return {
            "group": case.group, "family": case.family, "n": case.n, "num_classes": case.num_classes,
            "height": case.height, "width": case.width, "seed": case.seed,
            "method": self.key, "title": self.title, "role": self.role, "library": self.library,
            "device": self.device, "place": self.place, "backend": self.backend,
            "auto": self.backend is not None and self.backend == auto_backend(self.op, self.library, self.device),
            "includes_iou": self.includes_iou, "threads": self.threads(), "what": self.what,
        }


def _probe(library: str, device: str) -> Any:
    return to_library(np.zeros((1, 1, 1), dtype=bool), library, device)


def auto_backend(op: str | None, library: str, device: str) -> str | None:
    """The backend ``backend="auto"`` picks for ``op`` on ``library``/``device`` arrays ("generic" if none)."""
    if op is None or place_reason(library, device):
        return None
    return resolve(op, _probe(library, device), "auto")[0]


def _labels_kw(case: Case, place: tuple[str, str]) -> dict[str, Any]:
    s = scene(case)
    return {} if s.labels is None else {"labels": to_library(s.labels, *place)}


def _mask_inputs(case: Case, place: tuple[str, str]) -> tuple[Any, Any, Any]:
    """(scores, masks, labels or None) of the case's mask scene, in the library and on the device of ``place``."""
    s = scene(case)
    return to_library(s.scores, *place), to_library(s.masks, *place), _labels_kw(case, place).get("labels")


def _library_methods(family: str) -> list[Method]:
    from .. import masks as masks_module
    from ..nms import matrix_nms

    out = []
    for key, library, device, backend in PATHS:
        place = (library, device)
        name = place_name(library, device)
        if device == "cuda":
            thread_kind = "gpu"
        elif backend in ("numba", "torch"):
            thread_kind = backend
        elif library == "torch":
            thread_kind = "torch"
        else:  # NumPy generic: BLAS matmul for mask IoU, plain (single-threaded) NumPy otherwise
            thread_kind = "blas" if family in ("masks", "mask_iou") else "serial"

        def build(case: Case, place: tuple[str, str] = place, backend: str = backend) -> Callable[[], Any]:
            s = scene(case)
            scores = to_library(s.scores, *place)
            kw = _labels_kw(case, place)
            if family == "masks":
                m = to_library(s.masks, *place)
                fn = lambda: matrix_nms(scores, m, sigma=SIGMA, backend=backend, **kw)  # noqa: E731
            elif family == "boxes":
                b = to_library(s.boxes, *place)
                fn = lambda: matrix_nms(scores, boxes=b, sigma=SIGMA, backend=backend, **kw)  # noqa: E731
            elif family == "mask_iou":
                m = to_library(s.masks, *place)
                fn = lambda: masks_module.mask_iou(m, backend=backend)  # noqa: E731
            else:
                m = to_library(s.masks, *place)
                fn = lambda: masks_module.masks_to_boxes(m, backend=backend)  # noqa: E731
            return timed(fn, *place)

        if family in ("masks", "boxes"):
            thing = "mask IoU" if family == "masks" else "box IoU"
            title = f"matrix_nms {backend} ({name})"
            what = (f"matrixnms.matrix_nms(..., backend={backend!r}) on {name} input, unsorted float32 scores: "
                    f"sort + {thing} + decay")
            check = check_matrix_nms
        elif family == "mask_iou":
            title = f"mask_iou {backend} ({name})"
            what = f"matrixnms.mask_iou(masks, backend={backend!r}) on {name} input: the (N, N) IoU"
            check = check_mask_iou
        else:
            title = f"masks_to_boxes {backend} ({name})"
            what = f"matrixnms.masks_to_boxes(masks, backend={backend!r}) on {name} input: (N, 4) xyxy boxes"
            check = check_boxes
        out.append(Method(
            key=key,
            family=family, title=title, role="library", library=library, device=device, what=what,
            includes_iou=family in ("masks", "boxes", "mask_iou"), thread_kind=thread_kind, build=build,
            check=check, backend=backend, op=_OPS[family],
        ))
    return out


def _paper_method(library: str, device: str) -> Method:
    from .transcription import paper_matrix_nms_numpy, paper_matrix_nms_torch

    place = (library, device)
    name = place_name(library, device)

    def build(case: Case) -> Callable[[], Any]:
        scores, m, labels = _mask_inputs(case, place)
        fn = paper_matrix_nms_numpy if library == "numpy" else paper_matrix_nms_torch
        return timed(lambda: fn(scores, m, labels, "gauss", SIGMA), *place)

    key = f"paper-{place_suffix(library, device)}"
    return Method(
        key=key, family="masks", title=f"paper Fig. 1 ({name} f32)", role="paper", library=library,
        device=device,
        what=(f"the paper's Figure 1 transcribed literally in {name} float32: sort + gather, float cast, "
              "IoU by matmul, N x N decay (IoU included)"),
        includes_iou=True, thread_kind="gpu" if device == "cuda" else "blas" if library == "numpy" else "torch",
        build=build, check=check_paper,
    )


def _greedy_detector(library: str, device: str) -> Method:
    from .transcription import greedy_mask_nms_numpy, greedy_mask_nms_torch

    place = (library, device)
    name = place_name(library, device)

    def build(case: Case) -> Callable[[], Any]:
        scores, m, labels = _mask_inputs(case, place)
        fn = greedy_mask_nms_numpy if library == "numpy" else greedy_mask_nms_torch
        return timed(lambda: fn(scores, m, IOU_THRESHOLD, labels), *place)

    how = "bool AND + count over the surviving later masks" if library == "numpy" else \
        "float32 matrix-vector product with the later masks"
    key = f"greedy-{place_suffix(library, device)}"
    return Method(
        key=key, family="masks", title=f"greedy as detectors ({name})", role="greedy", library=library,
        device=device,
        what=(f"greedy mask NMS (IoU > {IOU_THRESHOLD}) as detection code writes it, {name}: per kept mask, "
              f"its IoU with the later ones ({how}); per class when labelled (IoU included)"),
        includes_iou=True, thread_kind="gpu" if device == "cuda" else "serial" if library == "numpy" else "torch",
        build=build, check=check_greedy,
    )


def _baseline_methods(family: str) -> list[Method]:
    """The library's own greedy NMS and Soft-NMS, on NumPy and Torch (backend="auto")."""
    from .. import baselines

    out = []
    for library, device in (("numpy", "cpu"), ("torch", "cpu"), ("torch", "cuda")):
        place = (library, device)
        name = place_name(library, device)
        suffix = place_suffix(library, device)
        thread_kind = "gpu" if device == "cuda" else "auto"

        if family == "masks":
            def build_greedy(case: Case, place: tuple[str, str] = place) -> Callable[[], Any]:
                s = scene(case)
                scores, m = to_library(s.scores, *place), to_library(s.masks, *place)
                kw = _labels_kw(case, place)
                return timed(lambda: baselines.mask_nms(m, scores, IOU_THRESHOLD, **kw), *place)

            out.append(Method(
                key=f"mask_nms-{suffix}", family=family, title=f"mask_nms ({name})", role="baseline",
                library=library, device=device,
                what=(f"matrixnms.mask_nms(IoU > {IOU_THRESHOLD}) on {name} input, backend='auto': library IoU "
                      "matrix + greedy loop (IoU included)"),
                includes_iou=True, thread_kind=thread_kind, build=build_greedy, check=check_greedy,
                backend="auto", op="mask_iou_sorted",
            ))
            out += _matrix_hard_methods(place, thread_kind)
        else:
            for which in ("nms", "batched_nms"):
                def build_nms(case: Case, place: tuple[str, str] = place, which: str = which) -> Callable[[], Any]:
                    s = scene(case)
                    scores, b = to_library(s.scores, *place), to_library(s.boxes, *place)
                    if which == "nms":
                        return timed(lambda: baselines.nms(b, scores, IOU_THRESHOLD), *place)
                    labels = to_library(s.labels, *place)
                    return timed(lambda: baselines.batched_nms(b, scores, labels, IOU_THRESHOLD), *place)

                out.append(Method(
                    key=f"{which}-{suffix}", family=family, title=f"{which} ({name})", role="greedy",
                    library=library, device=device,
                    what=(f"matrixnms.{which}(IoU > {IOU_THRESHOLD}) on {name} input, backend='auto': greedy box "
                          f"NMS{' per class' if which == 'batched_nms' else ''} (IoU included)"),
                    includes_iou=True, thread_kind=thread_kind, build=build_nms, check=check_greedy,
                    backend="auto", op="greedy_boxes", only_labelled=which == "batched_nms",
                ))

        def build_soft(case: Case, place: tuple[str, str] = place) -> Callable[[], Any]:
            s = scene(case)
            scores = to_library(s.scores, *place)
            data = ({"masks": to_library(s.masks, *place)} if family == "masks"
                    else {"boxes": to_library(s.boxes, *place)})
            kw = _labels_kw(case, place)
            return timed(lambda: baselines.soft_nms(scores, sigma=SIGMA, **data, **kw), *place)

        out.append(Method(
            key=f"soft_nms-{suffix}", family=family, title=f"soft_nms ({name})", role="baseline", library=library,
            device=device,
            what=(f"matrixnms.soft_nms(gaussian, sigma={SIGMA}, score_threshold=0.001) on {name} input, "
                  f"backend='auto': {'library IoU matrix + ' if family == 'masks' else ''}sequential re-selection "
                  "(IoU included)"),
            includes_iou=True, thread_kind=thread_kind, build=build_soft, check=check_soft, backend="auto",
            op="mask_iou_sorted" if family == "masks" else "soft_nms_boxes",
        ))
    return out


def _matrix_hard_methods(place: tuple[str, str], thread_kind: str) -> list[Method]:
    """Fast NMS and Cluster-NMS on masks (backend="auto"): the library IoU matrix + one or a few matrix steps."""
    from .. import matrix_baselines

    library, device = place
    name = place_name(library, device)
    out = []
    for which, how, check in (("fast_nms", "one matrix step (suppressed masks still suppress)", check_fast),
                              ("cluster_nms", "matrix steps to greedy's fixed point", check_greedy)):
        def build(case: Case, which: str = which) -> Callable[[], Any]:
            scores, m, labels = _mask_inputs(case, place)
            fn = getattr(matrix_baselines, which)
            return timed(lambda: fn(scores, m, labels=labels, iou_threshold=IOU_THRESHOLD), *place)

        out.append(Method(
            key=f"{which}-{place_suffix(library, device)}", family="masks", title=f"{which} ({name})",
            role="baseline", library=library, device=device,
            what=(f"matrixnms.{which}(IoU > {IOU_THRESHOLD}) on {name} input, backend='auto': library IoU matrix + "
                  f"{how} (IoU included)"),
            includes_iou=True, thread_kind=thread_kind, build=build, check=check, backend="auto",
            op="mask_iou_sorted",
        ))
    return out


def _floor_method() -> Method:
    def build(case: Case) -> Callable[[], Any]:
        masks = scene(case).masks
        return lambda: np.packbits(masks.reshape(masks.shape[0], -1), axis=1)

    return Method(
        key="read-floor", family="masks", title="read floor (np.packbits)", role="floor", library="numpy",
        device="cpu",
        what="np.packbits(masks.reshape(N, -1), axis=1): one pass over the N*H*W mask bytes, no NMS",
        includes_iou=False, thread_kind="serial", build=build, check=check_floor,
    )


def _reference_methods(family: str) -> list[Method]:
    """pycocotools and plain NumPy, for the utilities (pycocotools is imported only when a case runs)."""
    if family == "mask_iou":
        def build_encode_iou(case: Case) -> Callable[[], Any]:
            from pycocotools import mask as mask_utils

            masks = scene(case).masks

            def run() -> Any:
                rles = mask_utils.encode(fortran_uint8(masks))
                return mask_utils.iou(rles, rles, [0] * len(rles))

            return run

        def build_iou(case: Case) -> Callable[[], Any]:
            from pycocotools import mask as mask_utils

            rles = coco_rles(case)
            crowd = [0] * len(rles)
            return lambda: mask_utils.iou(rles, rles, crowd)

        return [
            Method(key="pycocotools-encode-iou", family=family, title="pycocotools encode + iou", role="reference",
                   library="numpy", device="cpu",
                   what=("pycocotools: (N,H,W) bool -> Fortran uint8 (H,W,N), mask.encode, mask.iou(iscrowd=0): "
                         "RLE encoding included"),
                   includes_iou=True, thread_kind="serial", build=build_encode_iou, check=check_mask_iou,
                   requires=("pycocotools",)),
            Method(key="pycocotools-iou", family=family, title="pycocotools iou (RLE given)", role="baseline",
                   library="numpy", device="cpu",
                   what="pycocotools mask.iou on RLEs encoded beforehand (encoding not timed)",
                   includes_iou=True, thread_kind="serial", build=build_iou, check=check_mask_iou,
                   requires=("pycocotools",)),
        ]

    def build_any(case: Case) -> Callable[[], Any]:
        masks = scene(case).masks
        return lambda: numpy_any_boxes(masks)

    def build_encode_bbox(case: Case) -> Callable[[], Any]:
        from pycocotools import mask as mask_utils

        masks = scene(case).masks
        return lambda: mask_utils.toBbox(mask_utils.encode(fortran_uint8(masks)))

    def build_bbox(case: Case) -> Callable[[], Any]:
        from pycocotools import mask as mask_utils

        rles = coco_rles(case)
        return lambda: mask_utils.toBbox(rles)

    return [
        Method(key="numpy-any", family=family, title="NumPy any-reduction", role="reference", library="numpy",
               device="cpu",
               what="NumPy: masks.any over columns and over rows, first/last True by argmax (xyxy pixel edges)",
               includes_iou=False, thread_kind="serial", build=build_any, check=check_boxes),
        Method(key="pycocotools-encode-bbox", family=family, title="pycocotools encode + toBbox", role="baseline",
               library="numpy", device="cpu",
               what="pycocotools: Fortran uint8 copy, mask.encode, mask.toBbox (xywh); RLE encoding included",
               includes_iou=False, thread_kind="serial", build=build_encode_bbox, check=check_coco_boxes,
               requires=("pycocotools",)),
        Method(key="pycocotools-bbox", family=family, title="pycocotools toBbox (RLE given)", role="baseline",
               library="numpy", device="cpu", what="pycocotools mask.toBbox on RLEs encoded beforehand",
               includes_iou=False, thread_kind="serial", build=build_bbox, check=check_coco_boxes,
               requires=("pycocotools",)),
    ]


def methods(family: str) -> list[Method]:
    """Every method of ``family``, available here or not (see :meth:`Method.skip_reason`)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    out = _library_methods(family)
    if family == "masks":
        out += [_paper_method("numpy", "cpu"), _paper_method("torch", "cpu"), _paper_method("torch", "cuda")]
        out += [_greedy_detector("numpy", "cpu"), _greedy_detector("torch", "cpu"),
                _greedy_detector("torch", "cuda")]
        out += _baseline_methods(family) + [_floor_method()]
    elif family == "boxes":
        out += _baseline_methods(family)
    else:
        out += _reference_methods(family)
    return out


def jobs(families: Iterable[str], mode: str = "full", *, sizes: Iterable[int] | None = None,
         image: tuple[int, int] | None = None, seed: int = 0) -> list[tuple[Case, Method, str | None]]:
    """Every (case, method, skip reason or None) of ``families``, in group order."""
    out = []
    for family in families:
        family_methods = methods(family)
        for case in cases(family, mode, sizes=sizes, image=image, seed=seed):
            out += [(case, method, method.skip_reason(case)) for method in family_methods if method.applies(case)]
    return out
