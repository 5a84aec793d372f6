"""Peak resident memory of one call, in a fresh child process."""

from __future__ import annotations

import gc
import multiprocessing
import time
from typing import Any

import numpy as np

from ..scenes import MASK_HEIGHT, MASK_WIDTH, mask_scene
from .cases import SIGMA

MEMORY_METHODS = ("matrix_nms", "matrix_nms-generic", "paper-numpy")
# A generous estimate for matrix_nms, used only to decide skips: the bound the benchmarks hold it to (the same
# 1.5 GiB, at N = 10,000) is an acceptance target, in the repository's benchmarks/targets.py.
MATRIX_NMS_ESTIMATE_BYTES = int(1.5 * 2**30)


def memory_estimate(method: str, n: int, height: int = MASK_HEIGHT, width: int = MASK_WIDTH) -> int:
    """A generous upper estimate of a method's peak memory beyond the input, in bytes (to decide skips)."""
    if method == "paper-numpy":
        # the float32 (N, H*W) copy plus about eight float32 (N, N) arrays alive at once
        return 4 * n * height * width + 8 * 4 * n * n
    return MATRIX_NMS_ESTIMATE_BYTES


def available_memory() -> int:
    """MemAvailable from /proc/meminfo in bytes (0 when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _status(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_call(method: str, masks: np.ndarray, scores: np.ndarray, labels: np.ndarray | None) -> Any:
    from .transcription import paper_matrix_nms_numpy
    from ..nms import matrix_nms

    if method == "matrix_nms":
        return matrix_nms(scores, masks, labels=labels, sigma=SIGMA)
    if method == "matrix_nms-generic":
        return matrix_nms(scores, masks, labels=labels, sigma=SIGMA, backend="generic")
    return paper_matrix_nms_numpy(scores, masks, labels, "gauss", SIGMA)


def _trim() -> None:
    """Hand freed heap memory back to the kernel (glibc's ``malloc_trim``): memory the scene's construction freed
    would otherwise stay resident and be reused by the call unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measured(call: Any) -> dict[str, Any]:
    """Run ``call()`` once and report the peak resident memory it added (see :func:`peak_memory`)."""
    import resource

    gc.collect()
    _trim()
    baseline = _status("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    # without the reset, the lifetime peak (which includes building the scene) bounds the call's from above
    peak = _status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del out
    return {"baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "increase_bytes": max(0, peak - baseline),
            "peak_counter_reset": reset, "seconds": seconds}


def _memory_child(conn: Any, method: str, n: int, num_classes: int | None, height: int, width: int,
                  seed: int) -> None:
    try:
        # warm up on a small scene: imports, JIT compilation and allocator pools are not the call's memory
        small = mask_scene(min(n, 64), height=height, width=width, num_classes=num_classes, seed=seed + 1)
        _memory_call(method, small.masks, small.scores, small.labels)
        del small
        s = mask_scene(n, height=height, width=width, num_classes=num_classes, seed=seed)
        result = _measured(lambda: _memory_call(method, s.masks, s.scores, s.labels))
        conn.send({"method": method, "n": n, "num_classes": num_classes, "height": height, "width": width,
                   "input_bytes": int(s.masks.nbytes + s.scores.nbytes + (0 if s.labels is None else s.labels.nbytes)),
                   **result})
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _form_input(form: str, scene: Any) -> tuple[Any, int]:
    """The scene's masks in ``form`` ("rle" or "crops") and their bytes."""
    if form == "rle":
        return scene.rles, sum(len(r["counts"]) for r in scene.rles)
    return scene.crops, sum(c.nbytes for c in scene.crops.crops) + int(scene.crops._sparse.data.nbytes)


def _forms_child(conn: Any, form: str, n: int, height: int, width: int, seed: int) -> None:
    from ..nms import matrix_nms
    from ..scenes import highres_scene

    try:
        small = highres_scene(min(n, 32), height=min(height, 300), width=min(width, 400), seed=seed + 1)
        matrix_nms(small.scores, _form_input(form, small)[0], sigma=SIGMA)  # warm-up, as above
        del small
        scene = highres_scene(n, height=height, width=width, seed=seed)
        masks, input_bytes = _form_input(form, scene)
        scores = scene.scores
        del scene  # only the form under test stays resident
        result = _measured(lambda: matrix_nms(scores, masks, sigma=SIGMA))
        conn.send({"method": f"matrix_nms-{form}", "n": n, "num_classes": None, "height": height, "width": width,
                   "input_bytes": int(input_bytes), **result})
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _in_child(target: Any, args: tuple, label: str, timeout: float) -> dict[str, Any]:
    """The dict a fresh ``spawn``-ed child running ``target(conn, *args)`` sends back."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(send, *args))
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise TimeoutError(f"the memory child for {label} took more than {timeout:.0f} s")
        result = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the memory child for {label} died with exit code {child.exitcode} "
                           "(killed for memory?)") from None
    finally:
        if child.is_alive():
            child.join(5)
        if child.is_alive():
            child.terminate()
            child.join()
    if "error" in result:
        raise RuntimeError(f"the memory child for {label} failed: {result['error']}")
    return result


def peak_memory(method: str, n: int, *, num_classes: int | None = None, height: int = MASK_HEIGHT,
                width: int = MASK_WIDTH, seed: int = 0, timeout: float = 1800.0) -> dict[str, Any]:
    """Peak resident memory of one call of ``method`` on a mask scene, beyond the input, in a child process.

    The child (a fresh ``spawn``-ed interpreter) builds the scene, warms the method up on a small scene,
    records its resident memory, resets the kernel's peak counter, calls the method once and reports the
    peak. ``increase_bytes`` is the peak minus the resident memory just before the call (input included
    there), i.e. what the call itself needed.

    Args:
        method: ``"matrix_nms"`` (backend="auto"), ``"matrix_nms-generic"`` or ``"paper-numpy"``.
        n, num_classes, height, width, seed: the scene.
        timeout: seconds to wait for the child.

    Returns:
        dict with ``increase_bytes``, ``peak_rss_bytes``, ``baseline_rss_bytes``, ``input_bytes``,
        ``seconds`` (the call alone) and ``peak_counter_reset``.
    """
    if method not in MEMORY_METHODS:
        raise ValueError(f"method must be one of {MEMORY_METHODS}, got {method!r}")
    return _in_child(_memory_child, (method, n, num_classes, height, width, seed), f"{method} at N={n}", timeout)


def peak_memory_forms(form: str, n: int = 300, *, height: int = 3000, width: int = 4000, seed: int = 0,
                      timeout: float = 1800.0) -> dict[str, Any]:
    """Peak resident memory of one ``matrix_nms`` call on a :func:`~matrixnms.scenes.highres_scene`'s masks as
    COCO RLE (``form="rle"``) or :class:`~matrixnms.CroppedMasks` (``"crops"``), beyond the input, measured as
    :func:`peak_memory` does; only the form under test is resident during the call."""
    if form not in ("rle", "crops"):
        raise ValueError(f"form must be 'rle' or 'crops', got {form!r}")
    return _in_child(_forms_child, (form, n, height, width, seed), f"matrix_nms on {form} at N={n}", timeout)
