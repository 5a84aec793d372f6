"""The README's quick-start and mask-form code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(title: str) -> list[str]:
    """The ```python blocks of the README section ``## title``."""
    text = README.read_text()
    section = text[text.index(f"## {title}\n"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def quick_start_blocks() -> list[str]:
    return section_blocks("Quick start")


def test_readme_has_a_numpy_and_a_torch_quick_start():
    blocks = quick_start_blocks()
    assert len(blocks) == 2 and "import torch" in blocks[1]


@pytest.mark.parametrize("index", [0, 1])
def test_quick_start_runs(index):
    block = quick_start_blocks()[index]
    if "import torch" in block:
        pytest.importorskip("torch")
    exec(compile(block, f"README quick start {index}", "exec"), {})


def test_readme_shows_every_mask_form():
    blocks = "\n".join(section_blocks("Masks from any segmenter"))
    for needle in ("json.loads", "CroppedMasks(", "point_masks", 'metric="ios"'):
        assert needle in blocks


@pytest.mark.parametrize("index", range(4))
def test_mask_forms_run(index):
    block = section_blocks("Masks from any segmenter")[index]
    exec(compile(block, f"README masks from any segmenter {index}", "exec"), {})
