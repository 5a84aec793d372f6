"""Deployable Matrix NMS: a static-shape Torch formulation for torch.compile, TorchScript and ONNX.

``matrix_nms`` filters candidates by value (thresholds, top-k), so its output length depends on the data.
Compilers and exporters need shapes fixed in advance; this module reformulates the same computation so that
every intermediate has a shape known from the input shapes and the static options alone:

- ``N`` candidate rows come in; padding rows are switched off by ``valid`` (and non-finite scores are
  never candidates).
- Thresholds become boolean masks: ``scores >= score_threshold`` marks candidates, ``decayed >=
  post_threshold`` marks survivors; nothing is removed.
- Both sorts are exact ranks from pairwise comparisons (score descending, ties by lower input index), so
  the order never depends on whether a runtime's sort or TopK is stable.
- The ``K = min(pre_top_k, N)`` best candidates are decayed (a (K, K) IoU matrix), and ``P = post_top_k``
  rows come out (``P = K`` when ``post_top_k`` is None): ``keep`` (P,) int64 indices padded with ``-1``,
  ``decayed`` (P,) scores padded with ``0``, and ``num_valid`` () int64, the number of real rows.

The first ``num_valid`` rows equal ``matrixnms.matrix_nms`` on the valid rows with the same options: the
same indices in the same order (decayed score descending, ties by lower index) and the same decayed scores
(float32: within 1e-5 relative). The decay follows ``matrixnms._generic`` operation for operation (gaussian
minimum taken over exponents, linear duplicates ignored as suppressors), so no NaN or inf appears.

Limits of the static graph:

- Mask intersections and areas are exact integer counts, under any precision setting of a runtime. The
  masks become uint8 and go through one custom op, ``matrixnms::overlap_counts``: eager, compiled and
  scripted Torch count with a float32 matmul (exact while ``H * W <= 2**24``, the limit checked for every
  path); the ONNX graph cuts the frame into a grid of cells (``COUNT_GRID``, 8 x 8 where the sides divide),
  finds which masks have pixels in each cell, and counts each cell's masks with one batched
  ``MatMulInteger`` (uint8 x uint8 -> int32), summed in int32. No float op touches the masks, so OpenVINO's
  bf16 / f16 ``INFERENCE_PRECISION_HINT`` (its CPU default where the CPU has bf16) cannot round a count,
  and the graph has no float MatMul or Conv: OpenVINO's CPU plugin keeps the float ops after the last such
  "significant" node (here: all of them, the IoU, decay and ranking) in f32. A runtime that lowers every
  float op to fp16 (TensorRT with the FP16 flag and no precision constraints) would round IoUs and decayed
  scores, so near-ties could be reordered: keep it in FP32 (no ``--fp16`` in trtexec; TensorRT is not
  tested here). ``export_onnx`` passes the lowering (``ONNX_TRANSLATIONS``); export a model by other means
  with ``custom_translation_table=ONNX_TRANSLATIONS``.
- Memory: (N, H, W) uint8 masks, (cells, m, H * W / cells) uint8 for the m masks of the most crowded cell,
  (K, K) IoU and (N, N) booleans for the ranking. Time grows with the masks' spread: a mask is counted only
  in the cells it reaches, so SOLO's compact masks cost a fraction of the whole-frame product (which
  ``COUNT_GRID = 1`` computes, and which masks covering the whole frame cost anyway).
- Inside a compiled or exported graph values are not checked (no data-dependent errors are possible):
  eager calls raise for NaN scores, non-binary masks and inverted boxes; a graph treats a non-finite score
  as not a candidate and computes inverted boxes without raising.

Tooling choices (torch 2.13):

- TorchScript: ``torch.jit.script`` (``script_module``), not ``torch.jit.trace``. The formulation has no
  data-dependent control flow, so both work, but scripting keeps the optional ``labels`` / ``valid``
  inputs and stays shape-generic (any N, H, W), while a trace bakes one input signature and silently
  drops the branches it did not take. (Both are deprecated in torch 2.13 in favour of torch.export, and
  torch warns that they may break on Python 3.14+; ``script_module`` silences the deprecation warning.)
- ONNX: the torch.export-based exporter (``torch.onnx.export(..., dynamo=True)``, needs ``onnxscript``),
  not the TorchScript-based one: it is torch's default and maintained path, the TorchScript exporter is
  deprecated, and a model whose forward calls ``matrix_nms_static`` exports through the same path. Its
  minimum opset is 18.

In a model: hold a ``MatrixNMS`` in the post-processing and call it in ``forward`` on fixed-size candidate
tensors (mark the ones below a strict threshold or the padding with ``valid``); gather the kept rows with
``keep.clamp(min=0)`` and zero the rows at or beyond ``num_valid``; export the whole model with
``export_onnx``. ``matrixnms export --help`` (the command line, in ``matrixnms.cli``) exports the
standalone graph.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import _config
# the overlap-count op and the exporter's lowerings (export_onnx passes them; torch.onnx.export(...,
# custom_translation_table=ONNX_TRANSLATIONS) to export a model some other way)
from ._onnx_ops import ONNX_TRANSLATIONS, overlap_counts  # noqa: F401
from ._validate import check_export_model, check_nms_options, check_onnx_graph, check_static_form
# the runtimes that run the exported graphs, importable from here as before
from .export_runtimes import RUNTIMES, installed_runtimes, onnx_runner, openvino_precisions, verify_onnx  # noqa: F401

# eager float32 sums of 0/1 values (the intersection counts) are exact up to 2**24 (the check reads _config)
MAX_MASK_PIXELS = _config.EXACT_F32
MIN_OPSET = 18
DEFAULT_OPSET = 18
OUTPUT_NAMES = ("keep", "decayed", "num_valid")


# --------------------------------------------------------------------------------------------------------
# The static-shape core. Written in the TorchScript subset (type annotations, no closures, no keyword-only
# arguments) so that one function serves eager, torch.compile, torch.jit.script and torch.export.
# --------------------------------------------------------------------------------------------------------


def _rank_first(first: Tensor, key: Tensor, tiebreak: Tensor, count: int) -> Tensor:
    """Positions of the ``count`` first items in the order: ``first`` items by key descending, then the rest.

    Ties (equal key, or two non-``first`` items) go to the lower ``tiebreak``. The rank of item j is the
    number of items that precede it, counted from pairwise comparisons: a strict total order, so the ranks
    are a permutation and picking rank r needs no sort (its stability would depend on the runtime).

    Args:
        first (Tensor[M], bool): items ordered before the others. Their keys must not be NaN.
        key (Tensor[M], float): sort key, larger first.
        tiebreak (Tensor[M], int64): distinct values, lower first.
        count (int): how many positions to return, <= M.

    Returns:
        Tensor[count], int64: positions into the M items, in order.
    """
    lower = tiebreak[:, None] < tiebreak[None, :]
    f_i = first[:, None]
    f_j = first[None, :]
    k_i = key[:, None]
    k_j = key[None, :]
    by_key = (k_i > k_j) | ((k_i == k_j) & lower)
    # (written with & and | only: onnxruntime's Where has no boolean kernel)
    before = (f_i & ~f_j) | (f_i & f_j & by_key) | (~f_i & ~f_j & lower)
    rank = before.to(torch.int64).sum(0)
    slots = torch.arange(count, dtype=torch.int64, device=first.device)
    positions = torch.arange(first.shape[0], dtype=torch.int64, device=first.device)
    # exactly one item holds each rank: a one-hot row per slot picks it
    hit = rank[None, :] == slots[:, None]
    return (hit.to(torch.int64) * positions[None, :]).sum(1)


def _safe_ratio(inter: Tensor, union: Tensor) -> Tensor:
    """inter / union, 0 where union is 0 (two empty masks, two zero-area boxes), exactly 1 where inter = union.

    The exact 1 matters: a duplicate's linear decay is then exactly 0 in every runtime. OpenVINO may divide
    by multiplying with a reciprocal, which can leave x / x one ulp below 1 and reorder the zero-decayed
    duplicates (ties broken by index) behind a real, tiny decayed score.
    """
    positive = union > 0
    one = union.new_ones(())
    # 0-d fills broadcast: a full-size ones_like / zeros_like would be folded into the ONNX file as data
    ratio = torch.where(inter >= union, one, inter / torch.where(positive, union, one))
    return torch.where(positive, ratio, union.new_zeros(()))


# The ONNX overlap counts split the frame into a grid of cells (at most COUNT_GRID x COUNT_GRID; each side is
# divided by its largest divisor <= COUNT_GRID) and multiply, per cell, only the masks with pixels in it.
# Measured (benchmarks/test_bench_export.py, N = 500, 200 x 336, 80 labels, 2-core AMD EPYC): see the README's
# Deploying table; COUNT_GRID = 1 is one cell, the whole frame (every non-empty mask against every other).
COUNT_GRID = 8


def _mask_iou_sorted(masks: Tensor, order: Tensor, dtype: torch.dtype) -> Tensor:
    """(K, K) IoU of ``masks[order]`` from exact integer overlap counts, valid for i <= j (all the decay reads)."""
    grid = 1
    if not torch.jit.is_scripting():  # the grid only shapes the ONNX graph (a global: not scriptable)
        grid = COUNT_GRID
    inter = torch.ops.matrixnms.overlap_counts(masks.to(torch.uint8), order, grid).to(dtype)
    # |A_i| = |A_i and A_i|: the areas are the diagonal, no second pass over the pixels
    area = torch.diagonal(inter)
    return _safe_ratio(inter, area[:, None] + area[None, :] - inter)


def _box_iou_sorted(boxes: Tensor, order: Tensor, dtype: torch.dtype) -> Tensor:
    """(K, K) IoU of ``boxes[order]``, torchvision's box_iou with 0 for a zero union."""
    b = boxes.index_select(0, order).to(dtype)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    width = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp(min=0)
    height = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = width * height
    return _safe_ratio(inter, area[:, None] + area[None, :] - inter).clamp(0, 1)


def _decay(iou: Tensor, pairs: Tensor, gaussian: bool, sigma: float) -> Tensor:
    """Matrix NMS decay (K,) of sorted candidates from their IoU and the (i < j, same label) pair mask."""
    zero = iou.new_zeros(())
    one = iou.new_ones(())
    iou = torch.where(pairs, iou.clamp(0, 1), zero)
    # cmax[i]: the largest IoU of candidate i with a higher-scored candidate of its label
    cmax = iou.amax(0)
    if gaussian:
        # candidate i may itself be suppressed: compensate by f(cmax[i]); the min is taken over exponents
        # so that no exp() overflows
        exponent = torch.where(pairs, (cmax[:, None] * cmax[:, None] - iou * iou) / sigma, zero)
        decay = torch.exp(exponent.amin(0))
    else:
        compensation = 1 - cmax
        usable = compensation > 0  # a duplicate (cmax = 1) of a higher candidate no longer suppresses
        denominator = torch.where(usable, compensation, one)
        ratio = torch.where(pairs & usable[:, None], (1 - iou) / denominator[:, None], one)
        decay = ratio.amin(0)
    return decay.clamp(0, 1)


def _static_core(
    scores: Tensor, masks: Optional[Tensor], boxes: Optional[Tensor], labels: Optional[Tensor],
    valid: Optional[Tensor], gaussian: bool, sigma: float, score_threshold: float, post_threshold: float,
    pre_top_k: int, post_top_k: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """The static-shape Matrix NMS; inputs already checked. Thresholds -inf and top-k -1 mean unset."""
    n = scores.shape[0]
    device = scores.device
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    k = n if pre_top_k < 0 else min(pre_top_k, n)
    p = k if post_top_k < 0 else post_top_k
    m = min(p, k)

    keep = torch.full((p,), -1, dtype=torch.int64, device=device)
    decayed_out = torch.zeros((p,), dtype=scores.dtype, device=device)
    num_valid = torch.zeros((), dtype=torch.int64, device=device)
    if m == 0:
        return keep, decayed_out, num_valid

    candidate = torch.isfinite(scores) & (scores >= score_threshold)
    if valid is not None:
        candidate = candidate & valid
    index = torch.arange(n, dtype=torch.int64, device=device)
    # pre_top_k: the K best candidates by score (ties: lower index); non-candidates fill the tail, flagged
    order = _rank_first(candidate, scores, index, k)
    in_play = candidate.index_select(0, order)

    if masks is not None:
        iou = _mask_iou_sorted(masks, order, dtype)
    elif boxes is not None:
        iou = _box_iou_sorted(boxes, order, dtype)
    else:
        raise ValueError("matrix_nms_static needs exactly one of masks or boxes, got neither")

    position = torch.arange(k, dtype=torch.int64, device=device)
    pairs = (position[:, None] < position[None, :]) & in_play[:, None] & in_play[None, :]
    if labels is not None:
        sorted_labels = labels.index_select(0, order)
        pairs = pairs & (sorted_labels[:, None] == sorted_labels[None, :])
    decay = _decay(iou, pairs, gaussian, sigma)
    decayed = scores.index_select(0, order).to(dtype) * decay

    survives = in_play & (decayed >= post_threshold)
    # post_top_k: the P best survivors by decayed score, ties by lower input index
    ranked = _rank_first(survives, decayed, order, m)
    count = torch.clamp(survives.to(torch.int64).sum(), max=p)
    filled = torch.arange(m, dtype=torch.int64, device=device) < count
    top_keep = torch.where(filled, order.index_select(0, ranked), torch.full_like(ranked, -1))
    top_decayed = decayed.index_select(0, ranked).to(scores.dtype)
    top_decayed = torch.where(filled, top_decayed, torch.zeros_like(top_decayed))
    if m < p:
        top_keep = torch.cat([top_keep, keep[m:]])
        top_decayed = torch.cat([top_decayed, decayed_out[m:]])
    return top_keep, top_decayed, count


# --------------------------------------------------------------------------------------------------------
# Checks (Python, outside the graph) and the public API.
# --------------------------------------------------------------------------------------------------------


def _options(
    kernel: Any, sigma: Any, score_threshold: Any, post_threshold: Any, pre_top_k: Any, post_top_k: Any,
) -> Tuple[bool, float, float, float, int, int]:
    """Validated static options as the core takes them: (gaussian, sigma, thresholds or -inf, top-k or -1)."""
    sigma, score_threshold, post_threshold, pre_top_k, post_top_k = check_nms_options(
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
    return (
        kernel == "gaussian",
        sigma,
        -math.inf if score_threshold is None else score_threshold,
        -math.inf if post_threshold is None else post_threshold,
        -1 if pre_top_k is None else pre_top_k,
        -1 if post_top_k is None else post_top_k,
    )


# TorchScript cannot compile the Python-side checks; scripting skips the branch that calls them.
_check = torch.jit.unused(check_static_form)


def matrix_nms_static(
    scores: Tensor,
    masks: Optional[Tensor] = None,
    *,
    boxes: Optional[Tensor] = None,
    labels: Optional[Tensor] = None,
    valid: Optional[Tensor] = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    score_threshold: Optional[float] = None,
    post_threshold: Optional[float] = None,
    pre_top_k: Optional[int] = None,
    post_top_k: Optional[int] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Matrix NMS with output shapes fixed by the input shapes and options: traceable, compilable, exportable.

    Same semantics and options as ``matrixnms.matrix_nms`` (see the module docstring for the static-shape
    contract); padded rows are marked invalid instead of removed.

    Args:
        scores (Tensor[N], floating): detection scores, any order.
        masks (Tensor[N, H, W], bool or 0/1): binary masks, ``H * W <= 2**24``; exactly one of masks/boxes.
        boxes (Tensor[N, 4], real): ``x1, y1, x2, y2`` boxes.
        labels (Tensor[N], int, optional): class labels; IoU across labels counts as 0. None: class-agnostic.
        valid (Tensor[N], bool, optional): False marks padding rows, which are never candidates.
        kernel: ``"gaussian"`` ``f(x) = exp(-x^2 / sigma)`` or ``"linear"`` ``f(x) = 1 - x``.
        sigma: the paper's gaussian sigma (> 0); SOLO / mmdetection's ``sigma=2.0`` is ``0.5`` here.
        score_threshold: candidates need ``score >= score_threshold``.
        post_threshold: results need ``decayed >= post_threshold``.
        pre_top_k: decay only the K = min(pre_top_k, N) highest-scored candidates (static).
        post_top_k: P, the number of output rows (static); None means K.

    Returns:
        (Tensor[P] int64, Tensor[P] scores.dtype, Tensor[] int64): ``keep`` indices into the input ordered by
        decayed score (descending, ties by lower index) and padded with -1; their ``decayed`` scores padded
        with 0; ``num_valid``, the number of real rows (``keep[:num_valid]`` equals matrix_nms's ``keep``).
    """
    options = _options(kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
    _check(scores, masks, boxes, labels, valid)
    return _static_core(scores, masks, boxes, labels, valid, *options)


class MatrixNMS(torch.nn.Module):
    """``matrix_nms_static`` as a module: options fixed at construction, ready for script / compile / export.

    ``torch.jit.script(MatrixNMS(...))`` works (see ``script_module``), as do ``torch.compile(module,
    fullgraph=True)`` and ``torch.onnx.export(module, ..., dynamo=True)`` (see ``to_onnx``). A model's
    post-processing can hold one as a submodule and call it in its forward.

    Args:
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k: as ``matrix_nms_static``.
    """

    def __init__(
        self,
        *,
        kernel: Literal["gaussian", "linear"] = "gaussian",
        sigma: float = 0.5,
        score_threshold: Optional[float] = None,
        post_threshold: Optional[float] = None,
        pre_top_k: Optional[int] = None,
        post_top_k: Optional[int] = None,
    ) -> None:
        super().__init__()
        (self.gaussian, self.sigma, self.score_threshold, self.post_threshold, self.pre_top_k,
         self.post_top_k) = _options(kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k)
        self.kernel = kernel

    def forward(
        self, scores: Tensor, masks: Optional[Tensor] = None, boxes: Optional[Tensor] = None,
        labels: Optional[Tensor] = None, valid: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Args and returns as ``matrix_nms_static`` (masks may be given positionally, boxes by keyword)."""
        if not torch.jit.is_scripting():
            _check(scores, masks, boxes, labels, valid)
        return _static_core(scores, masks, boxes, labels, valid, self.gaussian, self.sigma,
                            self.score_threshold, self.post_threshold, self.pre_top_k, self.post_top_k)

    def extra_repr(self) -> str:
        return (f"kernel={self.kernel!r}, sigma={self.sigma}, score_threshold={self.score_threshold}, "
                f"post_threshold={self.post_threshold}, pre_top_k={self.pre_top_k}, post_top_k={self.post_top_k}")


def script_module(module: MatrixNMS) -> torch.jit.ScriptModule:
    """``torch.jit.script(module)`` without torch 2.13's deprecation warning for torch.jit.

    The scripted module accepts any N, H, W (static options only). It does not check its inputs: a call
    without masks and boxes raises ``torch.jit.Error``; values are not checked (as in any graph).
    """
    if not isinstance(module, MatrixNMS):
        raise TypeError(f"module must be a MatrixNMS, got {type(module).__name__}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        return torch.jit.script(module)


# --------------------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------------------


class _OnnxGraph(torch.nn.Module):
    """Positional inputs (scores, masks or boxes, labels?, valid?) so the ONNX inputs get stable names."""

    def __init__(self, nms: MatrixNMS, use_boxes: bool) -> None:
        super().__init__()
        self.nms = nms
        self.use_boxes = use_boxes

    def forward(self, scores: Tensor, items: Tensor, labels: Optional[Tensor] = None,
                valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        if self.use_boxes:
            return self.nms(scores, boxes=items, labels=labels, valid=valid)
        return self.nms(scores, items, labels=labels, valid=valid)


def to_onnx(
    path: str | os.PathLike,
    num_candidates: int,
    mask_size: Optional[Sequence[int]] = None,
    *,
    boxes: bool = False,
    labels: bool = False,
    valid: bool = True,
    mask_dtype: Literal["bool", "uint8"] = "bool",
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 0.5,
    score_threshold: Optional[float] = None,
    post_threshold: Optional[float] = None,
    pre_top_k: Optional[int] = None,
    post_top_k: Optional[int] = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export static-shape Matrix NMS to one self-contained ONNX file (torch.export-based exporter).

    Graph inputs (in this order): ``scores`` float32 (N,); ``masks`` (N, H, W) bool, or uint8 with
    ``mask_dtype="uint8"``, or ``boxes`` float32 (N, 4); ``labels`` int64 (N,) when ``labels=True``; ``valid``
    bool (N,) when ``valid=True`` (False marks padding). Outputs: ``keep`` int64 (P,) padded with -1, ``decayed`` float32 (P,) padded with 0,
    ``num_valid`` int64 (), as ``matrix_nms_static``. Options are baked into the graph.

    Args:
        path: the .onnx file to write (parent directories are created).
        num_candidates (int): N, the fixed number of input rows (pad with ``valid = False``).
        mask_size ((int, int)): (H, W) of the masks, H * W <= 2**24; exactly one of mask_size / boxes.
        boxes: export the box variant.
        labels: add a ``labels`` input (class-aware); False exports class-agnostic NMS.
        valid: add a ``valid`` input.
        mask_dtype: ``"bool"`` or ``"uint8"`` (0 / 1 values; not checked in the graph), the ``masks`` input's
            type. uint8 saves the graph one conversion of every pixel: OpenVINO's CPU plugin converts bool
            with a reference kernel, about a third of the graph's time at N = 500, 200 x 336.
        kernel, sigma, score_threshold, post_threshold, pre_top_k, post_top_k: as ``matrix_nms_static``.
        opset: ONNX opset, >= 18 (the exporter's minimum); 18 is tested in onnxruntime and OpenVINO
            (TensorRT is not tested here).

    Returns:
        Path: ``path``.

    Raises:
        ImportError: ``onnx`` or ``onnxscript`` (needed by torch.onnx's exporter) is not installed.
    """
    n = check_onnx_graph(num_candidates, mask_size, boxes, pre_top_k, post_top_k, opset, MIN_OPSET, mask_dtype)

    nms = MatrixNMS(kernel=kernel, sigma=sigma, score_threshold=score_threshold, post_threshold=post_threshold,
                    pre_top_k=pre_top_k, post_top_k=post_top_k)
    items = (torch.zeros((n, 4), dtype=torch.float32) if boxes
             else torch.zeros((n, *mask_size), dtype=getattr(torch, mask_dtype)))
    args = (
        torch.linspace(1, 0, n, dtype=torch.float32), items,
        torch.zeros(n, dtype=torch.int64) if labels else None,
        torch.ones(n, dtype=torch.bool) if valid else None,
    )
    input_names = ["scores", "boxes" if boxes else "masks"] + (["labels"] if labels else []) + (
        ["valid"] if valid else [])
    return export_onnx(_OnnxGraph(nms, use_boxes=boxes), args, path, input_names=input_names,
                       output_names=OUTPUT_NAMES, opset=opset)


def export_onnx(
    model: torch.nn.Module,
    args: Tuple[Any, ...],
    path: str | os.PathLike,
    *,
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export any module whose forward calls ``MatrixNMS`` / ``matrix_nms_static`` (e.g. a detector with its
    post-processing) the way ``to_onnx`` does: torch.export-based exporter, static shapes, one file.

    Args:
        model: the module, put in eval mode here.
        args: example inputs of the deployed shapes (tensors; None entries are not graph inputs).
        path: the .onnx file to write (parent directories are created); weights are stored inside it,
            so the model must stay under protobuf's 2 GiB.
        input_names, output_names: names of the graph's (non-None) inputs and outputs.
        opset: ONNX opset, >= 18.

    Returns:
        Path: ``path``.

    Raises:
        ImportError: ``onnx`` or ``onnxscript`` (needed by torch.onnx's exporter) is not installed.
    """
    check_export_model(model, args, opset, MIN_OPSET)
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise ImportError(f"ONNX export needs the package {package!r} (pip install onnx onnxscript)") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the exporter's notices (e.g. torchvision ops it skips registering) are not the caller's business
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), args, str(path), opset_version=opset, dynamo=True,
                              custom_translation_table=ONNX_TRANSLATIONS,
                              input_names=None if input_names is None else list(input_names),
                              output_names=None if output_names is None else list(output_names),
                              external_data=False, verbose=False)
    finally:
        logger.setLevel(level)
    return path


# --------------------------------------------------------------------------------------------------------
# Multiclass (PaddlePaddle / OpenVINO MatrixNms-8 semantics)
# --------------------------------------------------------------------------------------------------------

MULTICLASS_INPUT_NAMES = ("boxes", "scores")
MULTICLASS_OUTPUT_NAMES = ("out", "rois_num", "index")


class _MulticlassGraph(torch.nn.Module):
    """``multiclass_matrix_nms_padded`` on its array-API path, options fixed: (boxes, scores) in."""

    def __init__(self, options: dict) -> None:
        super().__init__()
        self.options = options

    def forward(self, boxes: Tensor, scores: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        from .multiclass import multiclass_matrix_nms_padded

        return multiclass_matrix_nms_padded(boxes, scores, backend="generic", **self.options)


def to_onnx_multiclass(
    path: str | os.PathLike,
    batch: int,
    num_classes: int,
    num_boxes: int,
    *,
    score_threshold: float,
    post_threshold: float,
    nms_top_k: Optional[int],
    keep_top_k: Optional[int],
    kernel: Literal["gaussian", "linear"] = "linear",
    sigma: float = 0.5,
    background_label: int = 0,
    normalized: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``multiclass_matrix_nms_padded`` (Paddle's / OpenVINO ``MatrixNms-8``'s semantics) to ONNX.

    Graph inputs: ``boxes`` float32 (B, M, 4), ``scores`` float32 (B, C, M). Outputs, as
    ``multiclass_matrix_nms_padded``: ``out`` float32 (B, K, 6) rows ``[label, score, x1, y1, x2, y2]``
    padded with ``[-1, 0, 0, 0, 0, 0]``, ``rois_num`` int64 (B,), ``index`` int64 (B, K) (``b * M + m``, -1 in
    padding). Its sorts are stable sorts, lowered to TopK with an exact integer tie-break (ties: lower box,
    then lower class, as ``multiclass_matrix_nms``); no float matmul, so no precision hint changes a result.

    Args:
        path: the .onnx file to write.
        batch, num_classes, num_boxes: B, C, M, the static input shapes (M <= 46340, and
            ``(classes - background) * min(M, nms_top_k) <= 46340``: the stable sort's integer keys).
        score_threshold, post_threshold, nms_top_k, keep_top_k, kernel, sigma, background_label, normalized:
            as ``multiclass_matrix_nms``.
        opset: ONNX opset, >= 18.

    Returns:
        Path: ``path``.
    """
    for name, value in (("batch", batch), ("num_classes", num_classes), ("num_boxes", num_boxes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    options = dict(score_threshold=score_threshold, post_threshold=post_threshold, nms_top_k=nms_top_k,
                   keep_top_k=keep_top_k, kernel=kernel, sigma=sigma, background_label=background_label,
                   normalized=normalized)
    xy = torch.rand((batch, num_boxes, 2), generator=torch.Generator().manual_seed(0)) * 100
    example = (torch.cat([xy, xy + 10], dim=2), torch.rand((batch, num_classes, num_boxes)))
    graph = _MulticlassGraph(options)
    graph(*example)  # every argument checked before exporting (errors name it)
    return export_onnx(graph, example, path, input_names=MULTICLASS_INPUT_NAMES,
                       output_names=MULTICLASS_OUTPUT_NAMES, opset=opset)


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["export", *sys.argv[1:]]))


# --------------------------------------------------------------------------------------------------------
# Batches: (B, N, ...) inputs, one MatrixNMS per image inside the graph
# --------------------------------------------------------------------------------------------------------

from ._validate import check_batched_static_form  # noqa: E402  (appended section: the batched sibling)

_check_batched = torch.jit.unused(check_batched_static_form)


class BatchedMatrixNMS(torch.nn.Module):
    """``MatrixNMS`` over a batch: (B, N) scores, (B, N, H, W) masks or (B, N, 4) boxes, (B, N) labels and
    valid in; (B, P) ``keep``, (B, P) ``decayed`` and (B,) ``num_valid`` out, row b being ``MatrixNMS`` on
    image b (P as ``matrix_nms_static``: ``post_top_k``, else ``min(pre_top_k, N)``, else N).

    The graph holds one ``MatrixNMS`` call per image (B is static: the loop over it is unrolled by
    torch.compile, torch.export and the ONNX exporter, and scripted as a loop by TorchScript), so every change
    to the single-image static form applies here too. Rows at or beyond ``num_valid[b]`` are padding; the
    first ``num_valid[b]`` equal ``batched_matrix_nms`` (and ``matrix_nms`` on image b's valid candidates).
    Eager calls check the batch's shapes and dtypes, then each image as ``MatrixNMS`` does (values included:
    a NaN score is rejected even where ``valid`` is False, as in the single-image static form).
    Export: ``export_onnx(BatchedMatrixNMS(...), (scores, masks, None, labels, valid), path)``.

    Args:
        **options: ``MatrixNMS``'s keyword options (kernel, sigma, score_threshold, post_threshold,
            pre_top_k, post_top_k), passed to the one ``MatrixNMS`` that every image goes through.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.nms = MatrixNMS(**options)

    def width(self, n: int) -> int:
        """P, the result columns for N candidates per image."""
        if self.nms.post_top_k >= 0:
            return self.nms.post_top_k
        return n if self.nms.pre_top_k < 0 else min(self.nms.pre_top_k, n)

    def forward(
        self, scores: Tensor, masks: Optional[Tensor] = None, boxes: Optional[Tensor] = None,
        labels: Optional[Tensor] = None, valid: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Args and returns as ``batched_matrix_nms`` (P columns as above; masks positional, boxes by keyword)."""
        if not torch.jit.is_scripting():
            _check_batched(scores, masks, boxes, labels, valid)
        keeps = []
        decays = []
        counts = []
        for b in range(scores.shape[0]):
            image_masks: Optional[Tensor] = None
            image_boxes: Optional[Tensor] = None
            image_labels: Optional[Tensor] = None
            image_valid: Optional[Tensor] = None
            if masks is not None:
                image_masks = masks[b]
            if boxes is not None:
                image_boxes = boxes[b]
            if labels is not None:
                image_labels = labels[b]
            if valid is not None:
                image_valid = valid[b]
            keep, decayed, count = self.nms(scores[b], image_masks, image_boxes, image_labels, image_valid)
            keeps.append(keep)
            decays.append(decayed)
            counts.append(count)
        if len(keeps) == 0:  # B = 0: nothing to stack
            p = self.width(scores.shape[1])
            return (torch.zeros((0, p), dtype=torch.int64, device=scores.device),
                    torch.zeros((0, p), dtype=scores.dtype, device=scores.device),
                    torch.zeros((0,), dtype=torch.int64, device=scores.device))
        return torch.stack(keeps), torch.stack(decays), torch.stack(counts)

    def extra_repr(self) -> str:
        return "batch of: " + self.nms.extra_repr()
