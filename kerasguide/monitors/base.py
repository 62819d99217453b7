"""`MonitorCallback`: what every monitor shares (a shared TensorBoard writer, records on disk, cadence)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import keras

from kerasguide import tb_events
from kerasguide._logging import get_logger
from kerasguide.io import atomic_write_text
from kerasguide.monitors import background
from kerasguide.monitors.signals import finite_or_none, round_floats

__all__ = ["MonitorCallback"]

# Pieces of work a monitor may have on the background thread, unfinished, when it queues more: a busy
# machine starves that thread, and a run killed then would lose every record still waiting.
_MAX_BACKLOG = 2

logger = get_logger()


class MonitorCallback(keras.callbacks.Callback):
    """Shared logic of the monitors: a shared TensorBoard writer, per-epoch records on disk, cadence.

    Subclasses set `record_name` and call `self._add_record(dict)` once per
    epoch; the records are kept in `self.records` and, with a `record_dir`,
    appended to `<record_dir>/<record_name>.jsonl`, one flushed line an epoch. State is
    reset in `on_train_begin`, so one instance can serve several `fit()`
    calls. Work handed to `self._submit(fn)` runs on the monitors'
    background thread (in order; `background = False` runs it at once);
    `on_train_end` waits for it (`finish`), so `records` and the files are
    complete when `fit()` returns. Summaries and records are only written
    from there.

    Args:
        log_dir: TensorBoard folder for the summaries (e.g. a run's
            `tb/monitor`); None writes no summaries. Defaults to `None`.
        record_dir: Folder for the JSON-lines records (e.g. a run's
            `monitor/`); None keeps them in memory only. Defaults to `None`.
        every_epochs: Record every N epochs (and at the last). Defaults to `1`.
    """

    record_name = "monitor"
    background = True  # epoch-end work on the background thread (False: at once, on the training thread)

    def __init__(self, log_dir: str | Path | None = None, record_dir: str | Path | None = None,
                 every_epochs: int = 1):
        super().__init__()
        self._futures: list[Future] = []
        self._errors: list[str] = []
        if not isinstance(every_epochs, int) or every_epochs <= 0:
            raise ValueError(f"Argument `every_epochs` must be an integer > 0. Received: every_epochs={every_epochs}")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.record_dir = None if record_dir is None else Path(record_dir)
        self.every_epochs = every_epochs
        self.records: list[dict[str, Any]] = []
        self._record_file = None  # this fit's open record (`_add_record`)
        self._kept: list[dict[str, Any]] | None = None  # a resumed run's records of the epochs it keeps

    def resume_records(self, epoch: int) -> None:
        """A resumed run: keep the records of epochs up to `epoch` (on disk and in `records`), append after them."""
        if self.record_dir is None:
            return
        path = self.record_dir / f"{self.record_name}.jsonl"
        kept = []
        for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else []):
            try:
                record = json.loads(line)
            except ValueError:  # the last line of a run killed mid-write
                continue
            if isinstance(record, dict) and isinstance(record.get("epoch"), int) and record["epoch"] <= epoch:
                kept.append(record)
        self._kept = kept
        if path.exists():  # now, not at the next record: readers see no epoch that will run again
            atomic_write_text(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept))

    # state
    def on_train_begin(self, logs=None):
        self._drain()
        self.records = list(self._kept or [])
        self._close_records()
        if self.log_dir is not None:
            tb_events.acquire_writer(self.log_dir)
            self._writer_key = tb_events.writer_key(self.log_dir)  # `resolve()` once a fit, not per record
        self._epochs = (self.params or {}).get("epochs")

    def _due(self, epoch: int) -> bool:
        last = self._epochs is not None and epoch + 1 >= self._epochs
        return (epoch + 1) % self.every_epochs == 0 or last or bool(getattr(self.model, "stop_training", False))

    # outputs
    @property
    def writer(self) -> tb_events.EventWriter | None:
        """The shared summary writer of `log_dir`, or None."""
        if self.log_dir is None:
            return None
        return tb_events.shared_writer(getattr(self, "_writer_key", None) or self.log_dir)

    def _add_record(self, record: dict[str, Any]) -> None:
        record = round_floats(record)
        self.records.append(record)
        if self.record_dir is None:
            return
        # One line appended and flushed per epoch: a killed run keeps every epoch recorded so far
        # (one write of a short line lands whole; readers skip a last line a kill cut short).
        if self._record_file is None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            mode = "a" if self._kept is not None else "w"  # a resumed run appends to the epochs it kept
            self._record_file = open(self.record_dir / f"{self.record_name}.jsonl", mode, encoding="utf-8")  # noqa: SIM115
        self._record_file.write(json.dumps(finite_or_none(record), allow_nan=True) + "\n")
        self._record_file.flush()

    def _close_records(self) -> None:
        record_file, self._record_file = self._record_file, None
        if record_file is not None:
            record_file.close()

    # the background
    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue `fn(*args)` for the background thread (run from the next execution's start, in order).

        Runs it at once when `background` is False.
        """
        if not self.background:
            self._guarded(fn, *args)
            return
        self._futures = [f for f in self._futures if not f.done()]
        while len(self._futures) >= _MAX_BACKLOG:
            self._futures.pop(0).result()  # the oldest first: the records stay at most this far behind
        background.queue(self._guarded, (fn, *args), self._keep)

    def _keep(self, future: Future) -> None:
        self._futures.append(future)

    def on_train_batch_begin(self, batch, logs=None):
        # The training thread is about to enter the compiled execution: the queued work runs now.
        if background.pending():
            background.release()

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as error:  # a monitor must never stop the training
            if not self._errors:
                logger.warning("%s: %s: %s", type(self).__name__, type(error).__name__, error)
            self._errors.append(f"{type(error).__name__}: {error}")

    def _drain(self) -> None:
        """Wait for every piece of work this callback handed to the background thread (queued work: run here)."""
        background.run_pending_here()
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def wait(self) -> None:
        """Wait for this monitor's background work: its records of the epochs so far are then on disk."""
        self._drain()

    def pending(self) -> list[Future]:
        """A future done once the background work queued so far is (a run's backup waits for it elsewhere).

        The background thread runs its work in order: a no-op queued now is done after all of it.
        """
        if not self.background:
            return []
        barrier: Future = Future()
        background.queue(barrier.set_result, (None,), lambda _future: None)
        return [barrier]

    def finish(self) -> None:
        """Wait for this monitor's background work and write its records (what `on_train_end` does first).

        For a fit that ended by an exception, where Keras never calls `on_train_end`.
        """
        self._drain()
        self._close_records()

    def on_train_end(self, logs=None):
        self.finish()
        if self.log_dir is not None:
            tb_events.release_writer(self.log_dir)
