"""matrixnms.compat: the mmdetection, SOLO and AdelaiDet drop-ins and ``compat.patch``.

Each shim is checked against hand-worked cases of its peer, against ``matrix_nms`` / the float64 reference
through the documented mapping (code sigma = 1 / paper sigma, ``-1`` = off, ``filter_thr`` ->
``post_threshold``, ``nms_pre`` -> ``pre_top_k``, ``max_num`` -> ``post_top_k``), and against mmdetection's
algorithm transcribed in ``matrixnms.bench.transcription`` where that one is well defined (no ties, no NaN).
mmdetection, SOLO and AdelaiDet cannot be installed here (compiled mmcv / detectron2 ops), so ``patch`` is
tested on a stand-in module tree with their module paths (a test double built below, not their code).
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import strategies
from helpers import RTOL, assert_close, needs_cuda
from matrixnms import compat, matrix_nms
from matrixnms.compat import adelaidet, mmdet, solo

torch = pytest.importorskip("torch")

from matrixnms.bench.transcription import mmdet_mask_matrix_nms_torch as mmdet_transcription  # noqa: E402

# --- hand-worked cases ------------------------------------------------------------------------------------
# The chain: 1x4 masks A = cols 0-1, B = cols 1-2, C = cols 2-3, one label, scores 0.9, 0.8, 0.7.
# IoU(A, B) = IoU(B, C) = 1/3, IoU(A, C) = 0; cmax = 0, 1/3, 1/3. B is decayed by A: gaussian
# exp(-2 * (1/9 - 0)) (code sigma 2), linear (1 - 1/3) / 1; C's only overlap is B, itself decayed by 1/3:
# its term is f(1/3) / f(1/3) = 1, so C keeps 0.7 and comes out before B.
CHAIN = np.array([[[1, 1, 0, 0]], [[0, 1, 1, 0]], [[0, 0, 1, 1]]], dtype=bool)
CHAIN_SCORES = np.array([0.9, 0.8, 0.7])
CHAIN_DECAYED = {"gaussian": [0.9, 0.8 * math.exp(-2 / 9), 0.7], "linear": [0.9, 0.8 * 2 / 3, 0.7]}


def _t(x, dtype=None):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _labels(n, label=0):
    return torch.full((n,), label, dtype=torch.int64)


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_mmdet_chain_of_three_sorted_by_decayed_score(kernel):
    scores, labels, masks, keep = mmdet.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), kernel=kernel)
    expected = CHAIN_DECAYED[kernel]
    assert _np(keep).tolist() == [0, 2, 1]  # mmdetection sorts by decayed score, limits or not
    np.testing.assert_allclose(_np(scores), [expected[0], expected[2], expected[1]], rtol=RTOL["float64"])
    np.testing.assert_array_equal(_np(masks), CHAIN[[0, 2, 1]])
    assert _np(labels).tolist() == [0, 0, 0]


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_solo_and_adelaidet_chain_of_three_in_input_order(kernel):
    args = _t(CHAIN), _labels(3), _t(CHAIN_SCORES)
    np.testing.assert_allclose(_np(solo.matrix_nms(*args, kernel=kernel)), CHAIN_DECAYED[kernel], rtol=RTOL["float64"])
    decayed = adelaidet.matrix_nms(_labels(3), _t(CHAIN), None, _t(CHAIN_SCORES), kernel=kernel)
    np.testing.assert_allclose(_np(decayed), CHAIN_DECAYED[kernel], rtol=RTOL["float64"])


def test_chain_is_what_the_mmdetection_transcription_gives():
    ours = mmdet.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES, torch.float32))
    peer = mmdet_transcription(_t(CHAIN), _labels(3), _t(CHAIN_SCORES, torch.float32))
    for a, b in zip(ours, peer):
        np.testing.assert_allclose(_np(a), _np(b), rtol=RTOL["float32"])


def test_solo_sorts_unsorted_input_itself():
    # two masks with IoU 1/3, the higher score second: SOLO as written decays the 0.9 (it takes input order
    # for score order) and returns [0.5, 0.9 e^(-2/9)]; the drop-in decays the 0.5
    masks, scores = _t(CHAIN[:2]), _t([0.5, 0.9])
    expected = [0.5 * math.exp(-2 / 9), 0.9]
    np.testing.assert_allclose(_np(solo.matrix_nms(masks, _labels(2), scores)), expected, rtol=RTOL["float64"])
    np.testing.assert_allclose(_np(adelaidet.matrix_nms(_labels(2), masks, None, scores)), expected,
                               rtol=RTOL["float64"])
    # on sorted input, SOLO's answer: the sort keeps equal scores in input order, the earlier one higher
    tied = _np(solo.matrix_nms(masks, _labels(2), _t([0.5, 0.5])))
    np.testing.assert_allclose(tied, [0.5, 0.5 * math.exp(-2 / 9)], rtol=RTOL["float64"])


def test_three_duplicates_gaussian_as_the_peers():
    masks = _t(np.repeat(CHAIN[:1], 3, axis=0))
    e = math.exp(-2)  # every later copy: exp(-2 * 1) / exp(0); the middle one's term is e / e = 1
    np.testing.assert_allclose(_np(solo.matrix_nms(masks, _labels(3), _t(CHAIN_SCORES))), [0.9, 0.8 * e, 0.7 * e],
                               rtol=RTOL["float64"])


def test_three_duplicates_linear_are_finite_where_the_peer_gives_nan():
    masks, scores = _t(np.repeat(CHAIN[:1], 3, axis=0)), _t(CHAIN_SCORES, torch.float32)
    peer_scores = _np(mmdet_transcription(masks, _labels(3), scores, kernel="linear")[0])
    assert np.isnan(peer_scores).any()  # 0 / 0: the second copy divides by 1 - cmax = 0
    out, _, _, keep = mmdet.mask_matrix_nms(masks, _labels(3), scores, kernel="linear")
    assert _np(keep).tolist() == [0, 1, 2]
    np.testing.assert_array_equal(_np(out), np.float32([0.9, 0, 0]))
    solo_scores = solo.matrix_nms(masks, _labels(3), scores, kernel="linear")
    np.testing.assert_array_equal(_np(solo_scores), np.float32([0.9, 0, 0]))


@pytest.mark.parametrize("empties", [2, 3])
def test_empty_masks_are_finite_where_the_peer_gives_nan(empties):
    masks = np.zeros((empties + 1, 1, 4), dtype=bool)
    masks[-1] = CHAIN[0]
    scores = _t(np.linspace(0.9, 0.5, empties + 1), torch.float32)
    assert np.isnan(_np(mmdet_transcription(_t(masks), _labels(empties + 1), scores)[0])).any()  # union 0
    out, _, _, keep = mmdet.mask_matrix_nms(_t(masks), _labels(empties + 1), scores)
    assert _np(keep).tolist() == list(range(empties + 1))  # an empty mask overlaps nothing: all keep
    np.testing.assert_array_equal(_np(out), _np(scores))
    np.testing.assert_array_equal(_np(solo.matrix_nms(_t(masks), _labels(empties + 1), scores)), _np(scores))


def test_labels_keep_masks_of_other_classes_apart():
    decayed = solo.matrix_nms(_t(CHAIN), _t([0, 1, 0]), _t(CHAIN_SCORES))
    np.testing.assert_allclose(_np(decayed), CHAIN_SCORES, rtol=RTOL["float64"])


@pytest.mark.parametrize("kwargs, keep", [
    (dict(filter_thr=0.65), [0, 2]),  # B decays to 0.64, below
    (dict(filter_thr=0.64), [0, 2, 1]),
    (dict(nms_pre=2), [0, 1]),  # C never enters
    (dict(max_num=2), [0, 2]),  # the two highest decayed
    (dict(nms_pre=2, max_num=1), [0]),
    (dict(filter_thr=0, nms_pre=0, max_num=0), [0, 2, 1]),  # each limit only when > 0
    (dict(filter_thr=-5.0, nms_pre=-3, max_num=-1), [0, 2, 1]),
    (dict(nms_pre=10, max_num=10), [0, 2, 1]),
])
def test_mmdet_limits(kwargs, keep):
    scores, labels, masks, kept = mmdet.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), **kwargs)
    assert _np(kept).tolist() == keep
    np.testing.assert_allclose(_np(scores), np.array(CHAIN_DECAYED["gaussian"])[keep], rtol=RTOL["float64"])
    np.testing.assert_array_equal(_np(masks), CHAIN[keep])


def _assert_mmdet_empty(result, scores, labels, masks):
    out_scores, out_labels, out_masks, keep = result
    assert tuple(out_scores.shape) == (0,) and out_scores.dtype == scores.dtype
    assert tuple(out_labels.shape) == (0,) and out_labels.dtype == labels.dtype
    assert tuple(out_masks.shape) == (0, *masks.shape[-2:]) and out_masks.dtype == masks.dtype
    assert tuple(keep.shape) == (0,) and keep.dtype == labels.dtype  # mmdetection: labels.new_zeros(0)
    assert all(isinstance(r, torch.Tensor) for r in result)


@pytest.mark.parametrize("label_dtype", [torch.int64, torch.int32])
def test_mmdet_empty_input_returns_its_empty_shapes(label_dtype):
    masks, labels, scores = torch.zeros((0, 5, 7), dtype=torch.bool), torch.zeros(0, dtype=label_dtype), torch.zeros(0)
    result = mmdet.mask_matrix_nms(masks, labels, scores, filter_thr=0.05, nms_pre=500, max_num=100)
    _assert_mmdet_empty(result, scores, labels, masks)
    _assert_mmdet_empty(mmdet_transcription(masks, labels, scores), scores, labels, masks)


def test_mmdet_everything_filtered_returns_the_same_empty_shapes():
    masks, labels, scores = _t(CHAIN), _labels(3).int(), _t(CHAIN_SCORES, torch.float32)
    _assert_mmdet_empty(mmdet.mask_matrix_nms(masks, labels, scores, filter_thr=0.95), scores, labels, masks)
    _assert_mmdet_empty(mmdet_transcription(masks, labels, scores, filter_thr=0.95), scores, labels, masks)


def test_solo_and_adelaidet_empty_input_give_an_empty_array():
    masks, labels, scores = torch.zeros((0, 5, 7), dtype=torch.bool), torch.zeros(0, dtype=torch.int64), torch.zeros(0)
    for out in (solo.matrix_nms(masks, labels, scores), adelaidet.matrix_nms(labels, masks, None, scores)):
        assert isinstance(out, torch.Tensor) and tuple(out.shape) == (0,) and out.dtype == scores.dtype


def test_mask_area_is_used_for_the_union():
    # areas given as 4 instead of 2: IoU(A, B) = 1 / (4 + 4 - 1) = 1/7, as in the peers' formula
    areas = _t([4.0, 4.0, 4.0])
    expected = 0.8 * math.exp(-2 / 49)
    mmdet_scores = mmdet.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), mask_area=areas)[0]
    assert _np(mmdet_scores)[1] == pytest.approx(expected)
    assert _np(solo.matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), sum_masks=areas))[1] == pytest.approx(expected)
    assert _np(adelaidet.matrix_nms(_labels(3), _t(CHAIN), areas, _t(CHAIN_SCORES)))[1] == pytest.approx(expected)


# --- against matrix_nms and the reference, through the documented mapping ---------------------------------

@st.composite
def peer_problems(draw):
    """(scores float64, masks bool, labels int64, mmdetection's options) with the peers' -1 / 0 = off."""
    m = draw(strategies.masks(max_n=10, max_side=12))
    n = len(m)
    options = {
        "kernel": draw(st.sampled_from(["gaussian", "linear"])),
        "sigma": draw(st.sampled_from([2.0, 0.5, 10.0])),
        "filter_thr": draw(st.sampled_from([-1, 0, 0.05, 0.3])),
        "nms_pre": draw(st.sampled_from([-1, 0]) | st.integers(1, n + 1)),
        "max_num": draw(st.sampled_from([-1, 0]) | st.integers(1, n + 1)),
    }
    return draw(strategies.scores(n)), m, draw(strategies.labels(n)), options


def mapping(options):
    """The documented mapping from mmdetection's options to matrix_nms's."""
    return {"kernel": options["kernel"], "sigma": 1 / options["sigma"],
            "post_threshold": options["filter_thr"] if options["filter_thr"] > 0 else None,
            "pre_top_k": options["nms_pre"] if options["nms_pre"] > 0 else None,
            "post_top_k": options["max_num"] if options["max_num"] > 0 else None}


@given(peer_problems())
def test_mmdet_agrees_with_matrix_nms_and_the_reference(problem):
    s, m, lab, options = problem
    scores, labels, masks, keep = mmdet.mask_matrix_nms(_t(m), _t(lab), _t(s), **options)
    expected_keep, expected = matrix_nms(_t(s), _t(m), labels=_t(lab), **mapping(options))
    assert _np(keep).tolist() == _np(expected_keep).tolist()
    np.testing.assert_array_equal(_np(scores), _np(expected))
    ref_keep, ref = reference.matrix_nms(s, m, labels=lab, **mapping(options))
    assert _np(keep).tolist() == ref_keep
    assert_close(_np(scores), np.array(ref), "float64")
    np.testing.assert_array_equal(_np(labels), lab[ref_keep])
    np.testing.assert_array_equal(_np(masks), m[ref_keep])


@given(peer_problems())
def test_solo_and_adelaidet_agree_with_the_reference_in_input_order(problem):
    s, m, lab, options = problem
    kernel, sigma = options["kernel"], options["sigma"]
    ref_keep, ref = reference.matrix_nms(s, m, labels=lab, kernel=kernel, sigma=1 / sigma)
    expected = np.zeros(len(s))
    expected[ref_keep] = ref
    assert_close(_np(solo.matrix_nms(_t(m), _t(lab), _t(s), kernel=kernel, sigma=sigma)), expected, "float64")
    assert_close(_np(adelaidet.matrix_nms(_t(lab), _t(m), None, _t(s), sigma=sigma, kernel=kernel)), expected,
                 "float64")


def _distinct(s):
    """float32 scores without ties (torch.sort's order of equal scores is unspecified): steps of 1e-3."""
    return s.astype(np.float32) + np.arange(len(s), dtype=np.float32) * np.float32(1e-3)


@given(peer_problems())
def test_mmdet_agrees_with_the_transcription_where_that_is_defined(problem):
    s, m, lab, options = problem
    del options["filter_thr"], options["max_num"]  # thresholds at float32 ulps are not the point here
    s = _distinct(s)
    peer = mmdet_transcription(_t(m), _t(lab), _t(s), **options)
    assume(np.isfinite(_np(peer[0])).all())  # where the peer is NaN, see the degenerate cases
    ours = mmdet.mask_matrix_nms(_t(m), _t(lab), _t(s), **options)
    by_index = {i: v for i, v in zip(_np(peer[3]).tolist(), _np(peer[0]).tolist())}
    assert sorted(_np(ours[3]).tolist()) == sorted(by_index)
    np.testing.assert_allclose(_np(ours[0]), [by_index[i] for i in _np(ours[3]).tolist()], rtol=RTOL["float32"],
                               atol=1e-6)


@given(peer_problems())
def test_solo_on_sorted_input_is_the_peer_answer(problem):
    # SOLO's result on sorted input = the transcription's decayed scores put back in input order
    s, m, lab, options = problem
    s = np.sort(_distinct(s))[::-1].copy()
    peer_scores, _, _, peer_keep = mmdet_transcription(_t(m), _t(lab), _t(s), kernel=options["kernel"],
                                                       sigma=options["sigma"])
    assume(np.isfinite(_np(peer_scores)).all())
    expected = np.zeros(len(s), np.float32)
    expected[_np(peer_keep)] = _np(peer_scores)
    out = solo.matrix_nms(_t(m), _t(lab), _t(s), kernel=options["kernel"], sigma=options["sigma"])
    np.testing.assert_allclose(_np(out), expected, rtol=RTOL["float32"], atol=1e-6)


# --- dtypes, libraries, devices ---------------------------------------------------------------------------

@pytest.mark.parametrize("score_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mask_dtype", [bool, np.uint8, np.float32])
def test_dtypes_round_trip(score_dtype, mask_dtype):
    masks, scores = CHAIN.astype(mask_dtype), CHAIN_SCORES.astype(score_dtype)
    dtype = np.dtype(score_dtype).name
    out, labels, out_masks, keep = mmdet.mask_matrix_nms(_t(masks), _labels(3), _t(scores))
    assert out.dtype == _t(scores).dtype and out_masks.dtype == _t(masks).dtype and keep.dtype == torch.int64
    assert_close(_np(out), np.array(CHAIN_DECAYED["gaussian"])[[0, 2, 1]], dtype)
    for decayed in (solo.matrix_nms(_t(masks), _labels(3), _t(scores)),
                    adelaidet.matrix_nms(_labels(3), _t(masks), None, _t(scores))):
        assert isinstance(decayed, torch.Tensor) and decayed.dtype == _t(scores).dtype
        assert_close(_np(decayed), np.array(CHAIN_DECAYED["gaussian"]), dtype)


def test_numpy_in_numpy_out():
    labels = np.zeros(3, np.int64)
    out, out_labels, masks, keep = mmdet.mask_matrix_nms(CHAIN, labels, CHAIN_SCORES, max_num=2)
    assert all(isinstance(r, np.ndarray) for r in (out, out_labels, masks, keep))
    assert keep.tolist() == [0, 2]
    assert isinstance(solo.matrix_nms(CHAIN, labels, CHAIN_SCORES), np.ndarray)
    assert isinstance(adelaidet.matrix_nms(labels, CHAIN, None, CHAIN_SCORES), np.ndarray)
    empty = mmdet.mask_matrix_nms(CHAIN[:0], labels[:0], CHAIN_SCORES[:0])
    assert [r.shape for r in empty] == [(0,), (0,), (0, 1, 4), (0,)]


@needs_cuda
def test_cuda_tensors_stay_on_the_device():
    masks, labels, scores = _t(CHAIN).cuda(), _labels(3).cuda(), _t(CHAIN_SCORES).cuda()
    assert all(r.is_cuda for r in mmdet.mask_matrix_nms(masks, labels, scores, filter_thr=0.05))
    assert solo.matrix_nms(masks, labels, scores).is_cuda
    assert adelaidet.matrix_nms(labels, masks, None, scores).is_cuda


# --- kernels and errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: mmdet.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), kernel="gauss"),
    lambda: solo.matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), kernel="Gaussian"),
])
def test_unknown_kernel_is_both_notimplemented_and_valueerror(call):
    with pytest.raises(NotImplementedError, match="kernel must be one of"):
        call()
    with pytest.raises(ValueError, match="kernel must be one of"):
        call()


@pytest.mark.parametrize("name", ["gauss", "Gaussian", "matrix", ""])
def test_adelaidet_takes_any_other_kernel_name_for_gaussian(name):
    args = _labels(3), _t(CHAIN), None, _t(CHAIN_SCORES)
    np.testing.assert_array_equal(_np(adelaidet.matrix_nms(*args, kernel=name)), _np(adelaidet.matrix_nms(*args)))


M3, L3, S3 = _t(CHAIN), _labels(3), _t(CHAIN_SCORES)


@pytest.mark.parametrize("call, error, message", [
    (lambda: adelaidet.matrix_nms(L3, M3, None, S3, kernel=None), TypeError, "kernel must be a string"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, sigma=0), ValueError, "sigma must be > 0"),
    (lambda: solo.matrix_nms(M3, L3, S3, sigma=-2.0), ValueError, "sigma must be > 0"),
    (lambda: solo.matrix_nms(M3, L3, S3, sigma="2"), TypeError, "sigma must be a real number, got str"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, nms_pre=2.5), TypeError, r"nms_pre must be an int \(-1: off\), got f"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, max_num=None), TypeError, "max_num must be an int"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, filter_thr="0.05"), TypeError, "filter_thr must be a real number"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, filter_thr=float("nan")), ValueError, "filter_thr must be a number"),
    (lambda: mmdet.mask_matrix_nms(M3, _labels(2), S3), ValueError, r"labels must have shape \(3,\), got \(2,\)"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3, mask_area=_t([1.0])), ValueError, r"mask_area must have shape \(3,\)"),
    (lambda: mmdet.mask_matrix_nms(M3, L3, S3.long()), TypeError, "scores must be floating, got int64"),
    (lambda: solo.matrix_nms(M3[:2], L3, S3), ValueError, "seg_masks must have one mask per score: expected 3, got 2"),
    (lambda: solo.matrix_nms(M3 * 0.5, L3, S3), ValueError, "seg_masks must hold only 0 and 1"),
    (lambda: solo.matrix_nms(M3, L3.float(), S3), TypeError, "cate_labels must be integers, got float32"),
    (lambda: solo.matrix_nms(M3, L3, _t([0.9, float("nan"), 0.7])), ValueError, "cate_scores must be finite, got NaN"),
    (lambda: adelaidet.matrix_nms(L3, M3, _t([-1.0, 1, 1]), S3), ValueError, "sum_masks must be >= 0"),
    (lambda: adelaidet.matrix_nms(L3.numpy(), M3, None, S3), TypeError, "cate_labels is numpy but cate_scores is"),
    (lambda: compat.patch("detectron2"), ValueError, r"peer must be one of \('mmdet', 'solo', 'adelaidet'\)"),
])
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- patch on a stand-in module tree ----------------------------------------------------------------------
# A test double: empty modules under the peers' module paths (matrixnms.compat.PEERS), holding a stand-in
# function where the peer defines its Matrix NMS and importing it where the peer's heads do.
STAND_INS = {
    "mmdet": ("mmdet.models.layers.matrix_nms", "mask_matrix_nms",
              ["mmdet.models.layers", "mmdet.models.dense_heads.solo_head", "mmdet.models.dense_heads.solov2_head"]),
    "solo": ("mmdet.core.post_processing.matrix_nms", "matrix_nms",
             ["mmdet.core.post_processing", "mmdet.core", "mmdet.models.anchor_heads.solov2_head"]),
    "adelaidet": ("adet.modeling.solov2.utils", "matrix_nms", ["adet.modeling.solov2.solov2"]),
}


def _peer_function(*args, **kwargs):
    raise AssertionError("the stand-in peer function was called: patch did not replace it")


def _module(monkeypatch, dotted):
    """The stand-in module ``dotted`` and its parents, registered in sys.modules (undone after the test)."""
    parts, parent = dotted.split("."), None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        if not getattr(module, "_stand_in", False):
            module = types.ModuleType(name)
            module._stand_in = True
            monkeypatch.setitem(sys.modules, name, module)
        if parent is not None:
            monkeypatch.setattr(parent, parts[depth - 1], module, raising=False)
        parent = module
    return parent


@pytest.fixture
def stand_in(monkeypatch, request):
    peer = request.param
    defining, function, users = STAND_INS[peer]
    monkeypatch.setattr(_module(monkeypatch, defining), function, _peer_function, raising=False)
    for user in users:
        monkeypatch.setattr(_module(monkeypatch, user), function, _peer_function, raising=False)
    aliased = _module(monkeypatch, f"{defining.split('.')[0]}.aliased_user")
    monkeypatch.setattr(aliased, "nms_fn", _peer_function, raising=False)  # imported under another name
    bystander = _module(monkeypatch, f"{defining.split('.')[0]}.bystander")
    monkeypatch.setattr(bystander, function, lambda: "another function of the same name", raising=False)
    return peer, defining, function, users


REPLACEMENTS = {"mmdet": mmdet.mask_matrix_nms, "solo": solo.matrix_nms, "adelaidet": adelaidet.matrix_nms}


@pytest.mark.parametrize("stand_in", list(STAND_INS), indirect=True)
def test_patch_replaces_every_binding_and_undo_restores_them(stand_in):
    peer, defining, function, users = stand_in
    root = defining.split(".")[0]
    handle = compat.patch(peer)
    replacement = REPLACEMENTS[peer]
    for name in [defining, *users]:
        assert getattr(sys.modules[name], function) is replacement
    assert sys.modules[f"{root}.aliased_user"].nms_fn is replacement
    assert getattr(sys.modules[f"{root}.bystander"], function)() == "another function of the same name"
    assert f"{defining}.{function}" in handle.replaced and peer in repr(handle)
    handle.undo()
    for name in [defining, *users]:
        assert getattr(sys.modules[name], function) is _peer_function
    assert sys.modules[f"{root}.aliased_user"].nms_fn is _peer_function
    handle.undo()  # a second undo does nothing
    assert getattr(sys.modules[defining], function) is _peer_function


@pytest.mark.parametrize("stand_in", ["mmdet"], indirect=True)
def test_patch_as_a_context_manager_runs_the_drop_in(stand_in):
    with compat.patch("mmdet"):
        head = sys.modules["mmdet.models.dense_heads.solov2_head"]
        scores, _, _, keep = head.mask_matrix_nms(_t(CHAIN), _labels(3), _t(CHAIN_SCORES), filter_thr=0.05)
        assert _np(keep).tolist() == [0, 2, 1]
    assert sys.modules["mmdet.models.dense_heads.solov2_head"].mask_matrix_nms is _peer_function


@pytest.mark.parametrize("stand_in", ["mmdet"], indirect=True)
def test_undo_leaves_a_later_rebinding_alone(stand_in):
    handle = compat.patch("mmdet")
    head = sys.modules["mmdet.models.dense_heads.solo_head"]
    head.mask_matrix_nms = later = lambda *a: None
    handle.undo()
    assert head.mask_matrix_nms is later
    assert sys.modules["mmdet.models.layers.matrix_nms"].mask_matrix_nms is _peer_function


@pytest.mark.parametrize("peer, package", [("mmdet", "mmdet"), ("solo", "mmdet"), ("adelaidet", "adet")])
def test_patch_without_the_peer_raises_importerror_naming_it(monkeypatch, peer, package):
    monkeypatch.setitem(sys.modules, package, None)  # None in sys.modules: the import fails
    with pytest.raises(ImportError, match=f"package '{package}'") as info:
        compat.patch(peer)
    assert info.value.name == package


@pytest.mark.parametrize("stand_in", ["mmdet"], indirect=True)
def test_patch_of_another_version_raises_importerror(stand_in, monkeypatch):
    monkeypatch.delattr(sys.modules["mmdet.models.layers.matrix_nms"], "mask_matrix_nms")
    with pytest.raises(ImportError, match="has no mask_matrix_nms"):
        compat.patch("mmdet")
