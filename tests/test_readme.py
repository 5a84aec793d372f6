"""The README's quick-start code computes what the loop reference computes; its mask-form code runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import reference
from helpers import assert_close

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(title: str) -> list[str]:
    """The ```python blocks of the README section ``## title``."""
    text = README.read_text()
    section = text[text.index(f"## {title}\n"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def quick_start_blocks() -> list[str]:
    return section_blocks("Quick start")


def run_block(index: int) -> tuple[dict, str]:
    """The block's namespace after running it, and what it printed."""
    block = quick_start_blocks()[index]
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, f"README quick start {index}", "exec"), namespace)
    return namespace, printed.getvalue()


def test_readme_has_a_numpy_and_a_torch_quick_start():
    blocks = quick_start_blocks()
    assert len(blocks) == 2 and "import torch" in blocks[1]


def test_numpy_quick_start_matches_the_reference():
    ns, printed = run_block(0)
    scene, keep, decayed = ns["scene"], ns["keep"], ns["decayed"]
    assert scene.masks.shape == (500, 200, 336) and scene.labels is not None
    ref_keep, ref_decayed = reference.matrix_nms_by_label(scene.scores, scene.masks, labels=scene.labels,
                                                          post_threshold=0.05, post_top_k=100)
    assert len(ref_keep) == 100  # post_top_k binds: the 100 best of more than 100 above the threshold
    assert keep.tolist() == ref_keep
    assert decayed.dtype == np.float32
    assert_close(decayed, np.asarray(ref_decayed), "float32")
    np.testing.assert_array_equal(ns["boxes"], reference.masks_to_boxes(scene.masks[keep]))
    assert printed == f"kept 100 of 500; best {ref_decayed[0]:.3f}, 100th {ref_decayed[-1]:.3f}\n"


def test_torch_quick_start_matches_the_reference():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ns, _ = run_block(1)
    keep, decayed = ns["keep"], ns["decayed"]  # the last call: class-aware Matrix NMS on boxes
    assert isinstance(keep, torch.Tensor) and keep.device == ns["scores"].device
    scores, boxes, labels = (ns[k].cpu().numpy() for k in ("scores", "boxes", "labels"))
    ref_keep, ref_decayed = reference.matrix_nms_by_label(scores, boxes=boxes, labels=labels)
    keep, decayed = keep.cpu().numpy(), decayed.cpu().numpy()
    assert sorted(keep.tolist()) == list(range(300))  # no thresholds, no top-k: every index
    # float32 rounding may swap near-equal decayed scores: compare each index's decayed score, and the order
    by_index = dict(zip(ref_keep, ref_decayed))
    assert_close(decayed, np.array([by_index[i] for i in keep.tolist()]), "float32")
    assert np.all(np.diff(decayed) <= 0)


def test_readme_shows_every_mask_form():
    blocks = "\n".join(section_blocks("Masks from any segmenter"))
    for needle in ("json.loads", "CroppedMasks(", "point_masks", 'metric="ios"'):
        assert needle in blocks


@pytest.mark.parametrize("index", range(4))
def test_mask_forms_run(index):
    block = section_blocks("Masks from any segmenter")[index]
    exec(compile(block, f"README masks from any segmenter {index}", "exec"), {})
