"""The README's quick-start code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_a_numpy_and_a_torch_quick_start():
    blocks = quick_start_blocks()
    assert len(blocks) == 2 and "import torch" in blocks[1]


@pytest.mark.parametrize("index", [0, 1])
def test_quick_start_runs(index):
    block = quick_start_blocks()[index]
    if "import torch" in block:
        pytest.importorskip("torch")
    exec(compile(block, f"README quick start {index}", "exec"), {})
