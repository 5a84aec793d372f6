"""Running exported graphs: onnxruntime and OpenVINO's CPU plugin, and checking them against ``matrix_nms``.

``onnx_runner`` opens one graph in one runtime (OpenVINO with an optional ``INFERENCE_PRECISION_HINT``);
``verify_onnx`` runs a SOLO-like scene through every installed runtime and precision the CPU offers and
compares with the eager ``matrix_nms`` (what ``matrixnms export --verify`` does). Re-exported by
``matrixnms.export``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Sequence, Tuple

import torch

RUNTIMES = ("onnxruntime", "openvino")
# OpenVINO's INFERENCE_PRECISION_HINT values and the OPTIMIZATION_CAPABILITIES entry that makes each real
_PRECISION_CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


def openvino_precisions() -> Tuple[str, ...]:
    """The ``INFERENCE_PRECISION_HINT`` values OpenVINO's CPU plugin executes here: ``"f32"`` and, where its
    ``OPTIMIZATION_CAPABILITIES`` list them, ``"bf16"`` / ``"f16"`` (requesting one the CPU lacks silently
    runs f32). Needs ``openvino``."""
    import openvino

    capabilities = set(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return tuple(hint for hint, capability in _PRECISION_CAPABILITY.items() if capability in capabilities)


def onnx_runner(path: str | os.PathLike, runtime: str = "onnxruntime", *, precision: Optional[str] = None,
                threads: int = 0) -> Any:
    """A CPU session for an ONNX file: a callable taking ``{input name: ndarray}`` and returning
    ``{output name: ndarray}``.

    Args:
        path: the .onnx file.
        runtime: ``"onnxruntime"`` or ``"openvino"`` (its CPU plugin).
        precision: OpenVINO only: ``INFERENCE_PRECISION_HINT`` (``"f32"``, ``"bf16"``, ``"f16"``); None keeps
            the plugin's default (bf16 on CPUs with bf16 support).
        threads: intra-op threads (0: the runtime's default).
    """
    import numpy as np

    if runtime == "onnxruntime":
        if precision is not None:
            raise ValueError("precision is an OpenVINO setting; onnxruntime runs the graph's types")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # idle threads that spin between runs would steal the CPU from whatever runs next
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda feed: dict(zip(names, session.run(names, feed)))
    if runtime == "openvino":
        import openvino

        config = {} if precision is None else {"INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        request = compiled.create_infer_request()
        outputs = [(o.get_any_name(), o) for o in compiled.outputs]

        def run(feed: dict) -> dict:
            # share_inputs: OpenVINO reads the caller's arrays instead of copying them (the masks: N * H * W bytes)
            result = request.infer(feed, share_inputs=True)
            return {name: np.array(result[port]) for name, port in outputs}

        return run
    raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")


def installed_runtimes() -> Tuple[str, ...]:
    """The runtimes of ``RUNTIMES`` whose package is installed."""
    from importlib.util import find_spec

    return tuple(r for r in RUNTIMES if find_spec(r) is not None)


def verify_onnx(path: str | os.PathLike, num_candidates: int, mask_size: Optional[Sequence[int]] = None, *,
                boxes: bool = False, labels: bool = False, valid: bool = True, mask_dtype: str = "bool",
                runtimes: Optional[Sequence[str]] = None, **options: Any) -> str:
    """Run a file written by ``to_onnx`` in each runtime on a SOLO-like scene and compare with ``matrix_nms``.

    The scene is the benchmarks' (``matrixnms.scenes``, 80 classes); every argument but ``path`` and
    ``runtimes`` is the one given to ``to_onnx`` (``options``: kernel, sigma, score_threshold,
    post_threshold, pre_top_k, post_top_k). OpenVINO runs with its default settings and with
    ``INFERENCE_PRECISION_HINT`` set to each precision the CPU executes (``openvino_precisions``).

    Args:
        runtimes: names from ``RUNTIMES``; None: onnxruntime, and OpenVINO when it is installed.

    Returns:
        str: one line per runtime and setting (rows that agree, CPU time of the call).

    Raises:
        RuntimeError: the first ``num_valid`` rows differ from ``matrix_nms`` (indices, or decayed scores
            beyond rtol 1e-5, atol 1e-6).
        ImportError: ``onnxruntime`` (or a runtime named in ``runtimes``) is not installed.
    """
    import numpy as np

    from .nms import matrix_nms
    from .scenes import box_scene, mask_scene

    if runtimes is None:
        runtimes = ("onnxruntime",) + tuple(r for r in installed_runtimes() if r != "onnxruntime")
    n = num_candidates
    if boxes:
        scene = box_scene(n, num_classes=80)
        items = scene.boxes
    else:
        scene = mask_scene(n, height=mask_size[0], width=mask_size[1], num_classes=80)
        items = scene.masks
    scores, scene_labels = scene.scores, scene.labels
    feed = {"scores": scores, "boxes" if boxes else "masks": items if boxes else items.astype(mask_dtype)}
    if labels:
        feed["labels"] = scene_labels
    if valid:
        feed["valid"] = np.ones(n, dtype=bool)
    ref_keep, ref_decayed = matrix_nms(
        torch.from_numpy(scores), **{"boxes" if boxes else "masks": torch.from_numpy(items)},
        labels=torch.from_numpy(scene_labels) if labels else None, backend="generic", **options)
    settings = []
    for runtime in runtimes:
        if runtime == "openvino":
            settings += [(runtime, None)] + [(runtime, hint) for hint in openvino_precisions()]
        else:
            settings.append((runtime, None))
    lines = []
    for runtime, precision in settings:
        run = onnx_runner(path, runtime, precision=precision)
        run(feed)  # warm-up: the first call of a session allocates
        start = time.perf_counter()
        out = run(feed)
        seconds = time.perf_counter() - start
        keep, decayed, count = out["keep"], out["decayed"], int(out["num_valid"])
        where = runtime if runtime != "openvino" else f"openvino ({precision or 'default settings'})"
        if count != len(ref_keep) or not np.array_equal(keep[:count], ref_keep.numpy()) or not np.allclose(
                decayed[:count], ref_decayed.numpy(), rtol=1e-5, atol=1e-6):
            raise RuntimeError(f"{where} and matrix_nms disagree on {path}")
        lines.append(f"verified in {where}: {count} rows agree with matrix_nms; CPU {seconds * 1e3:.1f} ms")
    return "\n".join(lines)
