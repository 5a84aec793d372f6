"""What every Numba kernel module shares: host views of the inputs, results in the caller's library, and one
pool of helper threads.

Inputs and results. The kernels serve NumPy arrays and Torch CPU tensors; a CPU tensor shares its memory with
NumPy (``Tensor.numpy()``), so nothing is copied on the way in unless a kernel needs another dtype or a
contiguous layout, and a NumPy result goes back to a torch caller through ``torch.from_numpy`` (no copy).

Threads. A parallel call runs on the calling thread and ``numba.get_num_threads() - 1`` helpers from one
process-wide pool. The count is read per call, so ``NUMBA_NUM_THREADS`` and ``numba.set_num_threads`` both
apply, and ``numba.set_num_threads`` can never exceed ``NUMBA_NUM_THREADS``, so a pool of that size minus one
serves every call. The kernels are ``nogil`` functions run on plain threads, not ``prange`` regions: a
fork-join ``prange`` region waits for every thread to be scheduled, and GNU OpenMP (Numba's default threading
layer where installed) spin-waits between regions; on a machine whose cores are busy either turns a 1 ms call
into a 10 to 100 ms one, more than the whole computation. Here the caller does its share of the work itself,
never waits for a helper that has not started (``run_claimed``) and idle helpers sleep. Calls are thread-safe:
concurrent calls share the pool.

Two ways to share work:

- ``run_claimed(worker, total, threads, *args)``: the threads claim the ``total`` items one at a time from an
  atomic counter (``take_ticket``), so uneven items (the rows of a triangular pair loop) balance themselves;
  it returns when every item is done.
- ``run_shares(fn, tasks, threads, *args)``: thread ``t`` runs the interleaved share ``t, t + threads, ...``
  of the tasks; it returns when every share is done.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from typing import Any, Callable

import array_api_compat
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._typing import Array

# --- inputs and results -----------------------------------------------------------------------------------


def view(x: Array) -> np.ndarray:
    """A NumPy view of a NumPy array or Torch CPU tensor, with its strides (never a copy)."""
    if array_api_compat.is_torch_array(x):
        return x.detach().numpy()
    return np.asarray(x)


def host(x: Array, dtype: Any = None) -> np.ndarray:
    """A C-contiguous NumPy array of ``x`` (``dtype``: converted to it): ``view(x)`` itself when it already is
    contiguous of that dtype, else a copy."""
    return np.ascontiguousarray(view(x), dtype=dtype)


def wrap(values: np.ndarray, like: Array, dtype: Any = None) -> Array:
    """``values`` in the library of ``like``: a Torch tensor sharing its memory for a torch ``like``, else the
    NumPy array; ``dtype`` (of that library): converted to it (no copy when it already has it)."""
    if array_api_compat.is_torch_array(like):
        import torch

        result = torch.from_numpy(values)
        return result if dtype is None else result.to(dtype)
    return values if dtype is None else values.astype(dtype, copy=False)


# --- threads ------------------------------------------------------------------------------------------------


def thread_count(work: float, serial_below: float) -> int:
    """Threads for a call: Numba's current thread count (``numba.set_num_threads``, by default
    ``NUMBA_NUM_THREADS``), or 1 when ``work`` is below ``serial_below`` (a second thread would cost more
    than it saves)."""
    return 1 if work < serial_below else max(1, numba.get_num_threads())


_POOL: futures.Executor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    # a forked child inherits the pool object but none of its threads: work submitted to it would never run
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _helpers(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[futures.Future]:
    """Submit ``fn(*args)`` for each ``args`` of ``calls`` to the helper pool (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = futures.ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                               thread_name_prefix="matrixnms")
    return [_POOL.submit(fn, *args) for args in calls]


def is_vector_and_index(array: Any, dtype: Any, index: Any) -> bool:
    """Whether Numba types ``array``, ``index`` are a 1-D ``dtype`` array and an integer (an intrinsic's typer)."""
    return (isinstance(array, types.Array) and array.dtype == dtype and array.ndim == 1
            and isinstance(index, types.Integer))


def element_pointer(context: Any, builder: Any, sig: Any, args: Any) -> Any:
    """LLVM pointer to ``array[index]`` for an intrinsic ``(array, index)`` accepted by ``is_vector_and_index``."""
    array = context.make_array(sig.args[0])(context, builder, args[0])
    offset = context.cast(builder, args[1], sig.args[1], types.intp)
    return builder.gep(array.data, [offset])


@intrinsic
def take_ticket(typingctx: Any, counters: Any, which: Any):
    """Atomically add 1 to ``counters[which]`` (int64) and return its previous value."""
    if not is_vector_and_index(counters, types.int64, which):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any):
        pointer = element_pointer(context, builder, sig, args)
        return builder.atomic_rmw("add", pointer, ir.Constant(ir.IntType(64), 1), "seq_cst")

    return types.int64(counters, which), codegen


# the state of a run_claimed call (int64[3]): next item to claim, items finished, next scratch slot
NEXT, DONE, SLOT = 0, 1, 2


def run_claimed(worker: Callable[..., None], total: int, threads: int, *args: Any) -> None:
    """``worker(state, total, *args)`` on the calling thread and ``threads - 1`` helpers at once.

    The worker claims items with ``take_ticket(state, NEXT)`` until it gets one >= ``total``, adds 1 to
    ``state[DONE]`` per finished item, and may claim a scratch slot < ``threads`` with ``take_ticket(state,
    SLOT)``. This returns when every item is done: the caller works too and never waits for a helper that has
    not started (a late helper finds nothing left).
    """
    state = np.zeros(3, np.int64)
    helpers = _helpers(worker, [(state, total, *args)] * (threads - 1)) if threads > 1 and total > 1 else []
    worker(state, total, *args)
    while state[DONE] < total:  # items a helper claimed and is still working on
        for helper in helpers:
            if helper.done() and helper.exception() is not None:
                raise helper.exception()
        time.sleep(0)


def run_shares(fn: Callable[..., None], tasks: int, threads: int, *args: Any) -> None:
    """``fn(*args, first, step)`` for first = 0 .. step - 1, step = min(threads, tasks): interleaved shares of
    the ``tasks``, share 0 on the calling thread; returns when every share is done."""
    threads = max(1, min(threads, tasks))
    helpers = _helpers(fn, [(*args, first, threads) for first in range(1, threads)]) if threads > 1 else []
    fn(*args, 0, threads)
    for helper in helpers:
        helper.result()


__all__ = ["view", "host", "wrap", "thread_count", "is_vector_and_index", "element_pointer", "take_ticket", "NEXT",
           "DONE", "SLOT", "run_claimed", "run_shares"]
