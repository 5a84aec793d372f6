"""``backend=`` really selects the code it names: "generic" runs the array-API kernels, "numba" the Numba ones.

Agreement tests cannot tell which path ran (both paths give the same results by design), so a silent
fallback from "numba" to "generic", or the reverse, would pass them all. Here every public call is run with
a spy in place of the registered kernel of each backend, and only the named backend's spy may be reached.
"""

from __future__ import annotations


import numpy as np
import pytest

from helpers import requires
from matrixnms import (
    _dispatch, box_iou, mask_iou, mask_nms, masks_to_boxes, matrix_nms, multiclass_matrix_nms, nms, soft_nms,
)

S = np.array([0.9, 0.8, 0.7])
M = np.zeros((3, 5, 5), dtype=bool)
M[0, :3, :3] = M[1, 1:4, 1:4] = M[2, 2:, 2:] = True
B = np.array([[0.0, 0, 3, 3], [1, 1, 4, 4], [2, 2, 5, 5]])
LABELS = np.array([0, 1, 0])

# (operation, the public call that needs it with backend=name)
CALLS = [
    ("mask_iou", lambda name: mask_iou(M, backend=name)),
    ("mask_iou", lambda name: mask_iou(M, M[:2], backend=name)),
    ("mask_decay", lambda name: matrix_nms(S, M, labels=LABELS, backend=name)),
    ("box_decay", lambda name: matrix_nms(S, boxes=B, backend=name)),
    ("masks_to_boxes", lambda name: masks_to_boxes(M, backend=name)),
    ("greedy_boxes", lambda name: nms(B, S, 0.5, backend=name)),
    ("mask_iou_sorted", lambda name: mask_nms(M, S, 0.5, backend=name)),
    ("greedy_iou", lambda name: mask_nms(M, S, 0.5, LABELS, backend=name)),
    ("mask_iou_sorted", lambda name: soft_nms(S, M, backend=name)),
    ("soft_nms_iou", lambda name: soft_nms(S, M, backend=name)),
    ("soft_nms_boxes", lambda name: soft_nms(S, boxes=B, labels=LABELS, backend=name)),
    ("multiclass_matrix_nms", lambda name: multiclass_matrix_nms(
        B[None], np.stack([S, S])[None], score_threshold=0.1, post_threshold=0.1, nms_top_k=3, keep_top_k=3,
        background_label=-1, backend=name)),
]
IDS = [f"{op}-{k}" for k, (op, _) in enumerate(CALLS)]
KERNEL_MODULES = {"generic": ("matrixnms._generic",), "numba": ("matrixnms.backends._numba",)}


def install_spies(monkeypatch, op: str) -> dict[str, list]:
    """Wrap ``op``'s registered kernel of every loaded backend; returns the calls each one received."""
    _dispatch.resolve(op, S, "generic")  # loads the generic modules, and "auto" the installed backends
    _dispatch.resolve(op, S, "auto")
    calls: dict[str, list] = {}
    for (kernel_op, name), kernel in list(_dispatch._KERNELS.items()):
        if kernel_op != op:
            continue
        calls[name] = []

        def spy(*args, _kernel=kernel, _calls=calls[name], **kwargs):
            _calls.append(args)
            return _kernel(*args, **kwargs)

        monkeypatch.setitem(_dispatch._KERNELS, (op, name), spy)
    return calls


@pytest.mark.parametrize("backend", ["generic", pytest.param("numba", marks=requires("numba"))])
@pytest.mark.parametrize("op, call", CALLS, ids=IDS)
def test_a_named_backend_runs_its_own_kernel(monkeypatch, op, call, backend):
    calls = install_spies(monkeypatch, op)
    call(backend)
    assert len(calls[backend]) == 1
    assert all(not received for name, received in calls.items() if name != backend)


@requires("numba")
@pytest.mark.parametrize("op, call", CALLS, ids=IDS)
def test_backend_auto_on_numpy_prefers_numba(monkeypatch, op, call):
    calls = install_spies(monkeypatch, op)
    call("auto")
    assert len(calls["numba"]) == 1 and not calls["generic"]


def test_box_iou_runs_the_generic_kernel(monkeypatch):
    # box_iou has no Numba kernel (and no backend= argument): NumPy input goes to the generic one
    calls = install_spies(monkeypatch, "box_iou")
    box_iou(B)
    assert len(calls["generic"]) == 1 and set(calls) == {"generic"}


@pytest.mark.parametrize("op", sorted(_dispatch.OPS))
def test_resolve_generic_returns_the_array_api_kernel(op):
    name, fn = _dispatch.resolve(op, S, "generic")
    assert name == "generic" and fn is _dispatch._KERNELS[op, "generic"]
    assert fn.__module__.startswith(KERNEL_MODULES["generic"])


def test_resolve_names_the_kernels_of_the_generic_module():
    from matrixnms import _generic

    assert _dispatch.resolve("mask_decay", S, "generic")[1] is _generic.mask_decay
    assert _dispatch.resolve("box_iou", S, "generic")[1] is _generic.box_iou


# the operations Numba has no kernel for: the generic path serves them under "auto"
NUMBA_LACKS = {"box_iou", "fast_nms_boxes", "cluster_nms_boxes"}


@requires("numba")
@pytest.mark.parametrize("op", sorted(set(_dispatch.OPS) - NUMBA_LACKS))
def test_resolve_numba_returns_a_numba_kernel(op):
    name, fn = _dispatch.resolve(op, S, "numba")
    assert name == "numba" and fn is _dispatch._KERNELS[op, "numba"]
    assert fn.__module__.startswith(KERNEL_MODULES["numba"])
    assert _dispatch.resolve(op, S, "auto") == ("numba", fn)


@requires("numba")
@pytest.mark.parametrize("op", sorted(NUMBA_LACKS))
def test_numba_without_the_operation_is_refused_and_auto_runs_generic(op):
    with pytest.raises(ValueError, match=f"backend 'numba' has no kernel for {op}"):
        _dispatch.resolve(op, S, "numba")
    assert _dispatch.resolve(op, S, "auto") == ("generic", _dispatch._KERNELS[op, "generic"])
