"""The monitors' background thread: one worker, lowest CPU priority, work released between executions.

The epoch-end work that does not need the model as it is right now
(histograms, PNG encoding, TensorBoard events, record files, the probe's
pass on a snapshot of the weights) runs on one background thread, in order.
It is queued at the epoch's end and released at the next
`on_train_batch_begin`, just before the training thread enters the compiled
execution, which releases the GIL: a busy Python thread beside the training
thread's many short GIL hand-offs would slow the epoch by more than its own
work. Written by hand (a queue, a one-thread executor, futures per
callback) because Keras runs every callback on the training thread.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["lower_priority", "executor", "queue", "pending", "release", "run_pending_here"]

_EXECUTOR: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()
_QUEUE: list[tuple[Callable[..., None], tuple, Callable[[Future], Any]]] = []


def lower_priority() -> None:
    """Run the calling thread at the lowest CPU priority (Linux: a thread's own nice value).

    Training keeps its cores: the scheduler gives the monitors' thread only
    what the training threads leave idle. Elsewhere (no per-thread priority)
    nothing changes.
    """
    if not sys.platform.startswith("linux"):  # elsewhere a thread id is not a valid `setpriority` target
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def executor() -> ThreadPoolExecutor:
    """The one-thread executor of the monitors, created at its first use."""
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kerasguide-monitor",
                                           initializer=lower_priority)
        return _EXECUTOR


def queue(fn: Callable[..., None], args: tuple, keep: Callable[[Future], Any]) -> None:
    """Queue `fn(*args)` for the background thread; `keep` receives its `Future` once `release` submits it."""
    with _LOCK:
        _QUEUE.append((fn, args, keep))


def pending() -> bool:
    """Whether any work is queued and not yet released."""
    return bool(_QUEUE)


def release() -> None:
    """Hand every queued piece of work to the background thread, in order."""
    with _LOCK:
        jobs = _QUEUE[:]
        _QUEUE.clear()
    if jobs:
        pool = executor()
        for fn, args, keep in jobs:
            keep(pool.submit(fn, *args))


def run_pending_here() -> None:
    """Run the queued work on the calling thread, after the work already released (the end of a fit).

    Training is over, so nothing is gained by leaving it to the lowest-priority thread, which a busy
    machine starves: a fit's end would wait on it (about a second for a short trial's probe trace).
    """
    with _LOCK:
        jobs = _QUEUE[:]
        _QUEUE.clear()
    if not jobs:
        return
    if _EXECUTOR is not None:
        _EXECUTOR.submit(lambda: None).result()  # one thread, in order: what was released before is done
    for fn, args, keep in jobs:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # noqa: BLE001 - kept for the caller's `result()`, as the executor would
            future.set_exception(error)
        keep(future)
