"""``patch(peer)``: put a matrixnms drop-in where a detector looks up its Matrix NMS function.

The function is replaced in its defining module and in every module already imported (``sys.modules``)
that holds the very same function object under any name: re-exporting packages and the heads that did
``from ... import mask_matrix_nms``. Modules imported later get the drop-in through those re-exports.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Peer:
    project: str  # for messages
    package: str  # the top-level package to install
    module: str  # the module that defines the function
    function: str
    replacement: str  # "module:function" in matrixnms.compat


# Where each code base defines its Matrix NMS, taken from those projects' source layouts: mmdetection 3.x
# (re-exported from mmdet.models.layers, used by mmdet.models.dense_heads.solo_head and solov2_head); the
# SOLO repository (WXinlong/SOLO, a fork of mmdetection 1.x, hence the package name mmdet; re-exported from
# mmdet.core); AdelaiDet (adet). mmdetection 2.x is not covered.
PEERS: dict[str, Peer] = {
    "mmdet": Peer("mmdetection 3.x", "mmdet", "mmdet.models.layers.matrix_nms", "mask_matrix_nms",
                  "matrixnms.compat.mmdet:mask_matrix_nms"),
    "solo": Peer("SOLO", "mmdet", "mmdet.core.post_processing.matrix_nms", "matrix_nms",
                 "matrixnms.compat.solo:matrix_nms"),
    "adelaidet": Peer("AdelaiDet", "adet", "adet.modeling.solov2.utils", "matrix_nms",
                      "matrixnms.compat.adelaidet:matrix_nms"),
}


class Patch:
    """The undo handle :func:`patch` returns; a context manager that undoes on exit.

    Attributes:
        peer: the peer's key (``"mmdet"``, ``"solo"``, ``"adelaidet"``).
        replaced: ``"module.name"`` of every attribute replaced.
    """

    def __init__(self, peer: str, replacement: Callable[..., Any],
                 sites: list[tuple[types.ModuleType, str, Any]]) -> None:
        self.peer = peer
        self._replacement = replacement
        self._sites = sites

    @property
    def replaced(self) -> list[str]:
        return [f"{module.__name__}.{name}" for module, name, _ in self._sites]

    def undo(self) -> None:
        """Put the original back wherever the drop-in still is (a later rebinding is left alone); a second
        call does nothing."""
        for module, name, original in reversed(self._sites):
            if module.__dict__.get(name) is self._replacement:
                setattr(module, name, original)
        self._sites = []

    def __enter__(self) -> Patch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.undo()

    def __repr__(self) -> str:
        return f"<matrixnms.compat.Patch {self.peer!r}: {', '.join(self.replaced) or 'undone'}>"


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def patch(peer: str) -> Patch:
    """Replace ``peer``'s Matrix NMS with the matrixnms drop-in of the same signature, everywhere it is bound.

    Args:
        peer: ``"mmdet"`` (mmdetection 3.x ``mask_matrix_nms``), ``"solo"`` (SOLO's ``matrix_nms``) or
            ``"adelaidet"`` (AdelaiDet's ``matrix_nms``).

    Returns:
        Patch: already applied; ``.undo()`` or leaving a ``with`` block restores the original.

    Raises:
        ValueError: unknown ``peer``.
        ImportError: the peer's package is not importable, or has no such function (another version).
    """
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {tuple(PEERS)}, got {peer!r}")
    spec = PEERS[peer]
    try:
        defining = importlib.import_module(spec.module)
    except ImportError as exc:
        raise ImportError(f"patch({peer!r}) needs {spec.project} (package {spec.package!r}): cannot import "
                          f"{spec.module} ({type(exc).__name__}: {exc})", name=spec.package) from exc
    original = defining.__dict__.get(spec.function)
    if original is None:
        raise ImportError(f"patch({peer!r}): {spec.module} has no {spec.function}; is this {spec.project}?",
                          name=spec.package)
    replacement = _load(spec.replacement)
    sites = [(defining, spec.function, original)]
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType) or module is defining:
            continue
        sites += [(module, name, value) for name, value in list(vars(module).items()) if value is original]
    for module, name, _ in sites:
        setattr(module, name, replacement)
    return Patch(peer, replacement, sites)


__all__ = ["PEERS", "Patch", "patch"]
