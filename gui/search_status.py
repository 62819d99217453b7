"""A search's budget before Tune starts, and its status and Stop while it runs: short CLI children.

`TunePreview` runs `kerasguide tune CONFIG --dry-run --json` (trials x epochs
per stage and a time estimated from real training steps) and hands the JSON
to the app, which asks to confirm before the search is queued. `SearchWatch`
follows a running search with `kerasguide search-status DIR --json` every few
seconds (TensorFlow-free: a fraction of a second each) and stops it with
`search-status DIR --stop`: the master finishes its running trials, records
`stopped`, and Tune resumes it later. Both are QProcess children, as every
job is: the app never imports the search code (it loads keras-tuner).
"""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from .jobs import child_process

__all__ = ["TunePreview", "SearchWatch", "budget_html", "status_text", "duration"]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def budget_html(budget: dict[str, Any]) -> str:
    """`tune --dry-run --json`'s budget as an HTML table: stage, trials x epochs, epochs, time; the totals."""
    rows = "".join(
        f"<tr><td>{r['stage']}</td><td>{html.escape(str(r['label']))}</td><td align='right'>{r['trials']} x "
        f"{r['epochs']}</td><td align='right'>{r['total_epochs']}</td><td align='right'>{duration(r.get('seconds'))}"
        "</td></tr>" for r in budget.get("rows", []))
    table = ("<table cellspacing='0' cellpadding='3'><tr><th>stage</th><th></th><th>trials x epochs</th>"
             f"<th>epochs</th><th>time</th></tr>{rows}<tr><td><b>total</b></td><td></td><td align='right'><b>"
             f"{budget.get('trials')} trials</b></td><td align='right'><b>{budget.get('total_epochs')}</b></td>"
             f"<td align='right'><b>{duration(budget.get('seconds'))}</b></td></tr></table>")
    timing = budget.get("timing") or {}
    how = ""
    if timing:
        how = (f"<p>Estimated from {timing.get('timed_steps')} real training steps: "
               f"{1000 * timing.get('step_seconds', 0):.1f} ms a step, {timing.get('train_steps_per_epoch')} steps "
               f"an epoch, {timing.get('trial_overhead_seconds', 0):.1f} s a trial to set up and record.</p>")
    notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in budget.get("notes", []))
    return table + how + notes


def status_text(status: dict[str, Any]) -> str:
    """`search-status --json` in one or two lines for the Jobs tab."""
    metric = (status.get("objective") or {}).get("metric", "score")
    parts = [f"search {status.get('status')}"]
    for row in status.get("running", []):
        parts.append(f"trial {row['stage']}.{row['trial_id']} epoch {row['epochs_done']}/{row['epochs']} "
                     f"({row['where']})")
    best = status.get("best")
    if best and best.get("score") is not None:
        parts.append(f"best {metric} {best['score']:.4f} (trial {best['stage']}.{best['trial_id']})")
    if status.get("eta_seconds") is not None:
        parts.append(f"ETA {duration(status['eta_seconds'])}, {status.get('remaining_trials')} trials to start")
    if status.get("stop_requested"):
        parts.append("stop requested: the running trials finish")
    return " · ".join(parts)


def _last_line(data: bytes) -> str:
    lines = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class TunePreview(QObject):
    """`tune ARGS --dry-run --json` in a child process.

    Signals:
        ready(dict): the budget.
        failed(str): the CLI's last line on stderr (or why it did not start).
    """

    ready = Signal(dict)
    failed = Signal(str)

    def __init__(self, program: list[str], tune_args: list[str], parent: QObject | None = None):
        super().__init__(parent)
        self.argv = [*program, "tune", *tune_args, "--dry-run", "--json"]
        self.process = child_process(self)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

    def start(self) -> None:
        self.process.start(self.argv[0], self.argv[1:])

    def kill(self) -> None:
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()
            self.process.waitForFinished(5000)

    def _finished(self, code: int, _status) -> None:
        out = bytes(self.process.readAllStandardOutput())
        if code == 0:
            try:
                self.ready.emit(json.loads(out.decode("utf-8")))
                return
            except ValueError:
                pass
        self.failed.emit(_last_line(bytes(self.process.readAllStandardError())) or f"exit code {code}")

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.failed.emit(f"could not start {self.argv[0]}")


class SearchWatch(QObject):
    """Follows one search directory: `search-status DIR --json` every `interval_ms`; `stop()` asks it to stop.

    Signals:
        updated(dict): the status, after every poll.
        stopRequested(str): the CLI's answer to `--stop`.
    """

    updated = Signal(dict)
    stopRequested = Signal(str)

    def __init__(self, program: list[str], search_dir: str, interval_ms: int = 3000, parent: QObject | None = None):
        super().__init__(parent)
        self.program = list(program)
        self.search_dir = search_dir
        self.status: dict[str, Any] | None = None
        self._poll = child_process(self)
        self._poll.finished.connect(self._polled)
        self._stop = child_process(self)
        self._stop.finished.connect(self._stopped)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.poll()
        self.timer.start()

    def poll(self) -> None:
        if self._poll.state() == QProcess.ProcessState.NotRunning:
            argv = [*self.program, "search-status", self.search_dir, "--json"]
            self._poll.start(argv[0], argv[1:])

    def stop(self, now: bool = False) -> None:
        """Ask the search to stop gracefully (`--now`: interrupt its running trials too)."""
        if self._stop.state() == QProcess.ProcessState.NotRunning:
            argv = [*self.program, "search-status", self.search_dir, "--stop", *(["--now"] if now else [])]
            self._stop.start(argv[0], argv[1:])

    def close(self) -> None:
        self.timer.stop()
        for process in (self._poll, self._stop):
            if process.state() != QProcess.ProcessState.NotRunning:
                process.waitForFinished(5000)
                if process.state() != QProcess.ProcessState.NotRunning:
                    process.kill()
                    process.waitForFinished(2000)

    def _polled(self, code: int, _status) -> None:
        if code != 0:
            return
        try:
            status = json.loads(bytes(self._poll.readAllStandardOutput()).decode("utf-8"))
        except ValueError:
            return
        self.status = status
        self.updated.emit(status)

    def _stopped(self, code: int, _status) -> None:
        out = _last_line(bytes(self._stop.readAllStandardOutput()))
        self.stopRequested.emit(out or _last_line(bytes(self._stop.readAllStandardError())) or f"exit code {code}")
        self.poll()
