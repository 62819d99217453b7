"""One lifecycle for every command's run directory: `run`, `check` and `lr-find` open, record and close alike.

Open: config.toml and run.json's header (`status = "running"`), the `start`
event. Close, whatever happened in between: Ctrl-C or SIGTERM (also wrapped
by TensorFlow) is `interrupted`, a `StopRun` its own status, any other error
`failed` with its message (traceback in error.txt), a bad config `failed`
and re-raised; then the final record (status, ended, seconds, error), the
final stages (report, diagnosis...: best effort) and the `end` event. A
completed run whose last checkpoint or a final stage could not be written
(a full disk, Ctrl-C during the report) ends `completed_with_errors`, its
run.json's `errors` naming what is missing.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kerasguide import locks
from kerasguide._logging import get_logger
from kerasguide.config import RunConfig
from kerasguide.errors import CommandFailed, ConfigError
from kerasguide.interrupts import INTERRUPTED, StopRun, clear_interrupt_request, unwrapped_interrupts
from kerasguide.progress import Progress
from kerasguide.rundir import RunDir, owner_fields, utc_now
from kerasguide.spine.record import resolved_config, run_header

__all__ = ["CommandRun", "CommandFailed", "command_run", "CONFIG_HEADER"]

logger = get_logger()

CONFIG_HEADER = "The resolved run config: every default filled in. Re-run with `kerasguide run` on this file."


@dataclass
class CommandRun:
    """A command's run directory while it runs: set its outcome with `finish` (else it is `completed`)."""

    run_dir: RunDir
    progress: Progress
    what: str = "run"
    started: float = field(default_factory=time.perf_counter)
    status: str = "completed"
    error: str | None = None
    stop_reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # what could not be written (a checkpoint, the report)

    def finish(self, status: str, error: str | None = None, stop_reason: str | None = None, **fields: Any) -> None:
        """The outcome the final record gets, with more run.json fields."""
        self.status, self.error, self.stop_reason = status, error, stop_reason
        self.fields.update(fields)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)


@contextlib.contextmanager
def command_run(
    run_dir: RunDir,
    config: RunConfig,
    config_path: str | None,
    progress: Progress,
    *,
    kind: str | None = None,
    what: str = "run",
    header: dict[str, Any] | None = None,
    start: dict[str, Any] | None = None,
    before_record: Callable[[CommandRun], None] | None = None,
    final_stages: Sequence[tuple[str, Callable[[], Any]]] = (),
    reraise: bool = True,
    reopen: bool = False,
) -> Iterator[CommandRun]:
    """Open `run_dir` for a command, run the block, and record its outcome whatever it was.

    Args:
        run_dir: The new run directory.
        config: The resolved config (written as config.toml).
        config_path: Recorded in run.json.
        progress: Where the `start`, `stage` (of the final stages) and `end` events go.
        kind: run.json's `kind` (`"check"`, `"lr_find"`; None for a whole run).
        what: The command's name in log lines. Defaults to `"run"`.
        header: More fields of run.json's header.
        start: More fields of the `start` event.
        before_record: Called with the `CommandRun` before the final record
            (a run saves its last checkpoint there); an error it raises is
            one of the run's `errors`.
        final_stages: `(name, function)` pairs called after the final
            record, each best effort (a failure is a warning and one of the
            run's `errors`; Ctrl-C skips the rest).
        reraise: Re-raise an interruption after recording it, and an error
            as `CommandFailed` (`check`, `lr-find`); with False the block's
            outcome is only recorded (`run` returns its status). A
            `ConfigError` is always re-raised.
        reopen: The run directory is an earlier run's (`run --resume`): its
            config.toml and run.json's header stay; `header` holds the fields
            that change, the new owner is added. Defaults to `False`.
    """
    clear_interrupt_request()  # a request before this command is not about it
    # The run directory's lock while it runs: whoever resumes or repairs it later sees a live owner.
    lock = locks.acquire(run_dir.path, what)
    try:
        yield from _command_run(run_dir, config, config_path, progress, kind=kind, what=what, header=header,
                                start=start, before_record=before_record, final_stages=final_stages,
                                reraise=reraise, reopen=reopen)
    finally:
        lock.release()


def _command_run(run_dir, config, config_path, progress, *, kind, what, header, start, before_record, final_stages,
                 reraise, reopen):
    command = CommandRun(run_dir, progress, what)
    if reopen:
        run_dir.update_run(**(header or {}), **owner_fields())
    else:
        run_dir.write_text("config.toml", resolved_config(config, CONFIG_HEADER))
        run_dir.update_run(**run_header(config, config_path, kind=kind, **(header or {})))
    progress.emit("start", run_dir=str(run_dir.path), name=config.name, **({"kind": kind} if kind else {}),
                  **(start or {}))
    raised: BaseException | None = None
    cause: BaseException | None = None
    config_error = False
    try:
        with unwrapped_interrupts():  # Ctrl-C inside TensorFlow's C++ layer may come out wrapped
            yield command
    except StopRun as stop:
        command.finish(stop.status, stop.reason, stop_reason=stop.reason)
    except KeyboardInterrupt as interrupt:
        command.finish("interrupted", INTERRUPTED, stop_reason="interrupted")
        logger.warning("%s interrupted: keeping what was written in %s", what, run_dir.path)
        raised = interrupt if reraise else None
    except ConfigError as error:
        command.finish("failed", str(error))
        raised, config_error = error, True
    except Exception as error:
        command.finish("failed", f"{type(error).__name__}: {error}")
        run_dir.write_text("error.txt", traceback.format_exc())
        logger.error("%s failed: %s (traceback in %s)", what, command.error, run_dir.file("error.txt"))
        if reraise:
            raised, cause = CommandFailed(what, run_dir.path, command.error), error
    if before_record is not None:
        try:
            before_record(command)
        except Exception as error:  # noqa: BLE001 - the record matters more
            logger.warning("%s: %s: %s", what, type(error).__name__, error)
            command.errors.append(f"{type(error).__name__}: {error}"[:300])
    _record_outcome(run_dir, command, finishing=bool(final_stages) and not config_error)
    if not config_error:  # bad input: exit 2 with its one line, nothing more to show
        for name, stage in final_stages:
            try:
                progress.emit("stage", stage=name)
                stage()
            except KeyboardInterrupt:
                command.errors.append(f"{name} stage interrupted: not written")
                logger.warning("%s stage interrupted: the run is recorded as completed_with_errors", name)
                break
            except Exception as error:  # noqa: BLE001 - a report failure must not turn a good run bad
                logger.warning("%s stage failed: %s: %s", name, type(error).__name__, error)
                command.errors.append(f"{name} stage failed: {type(error).__name__}: {error}"[:300])
        if final_stages:
            _record_outcome(run_dir, command)
        progress.emit("end", status=command.status, run_dir=str(run_dir.path), error=command.error,
                      **({"errors": command.errors} if command.errors else {}))
    if cause is not None:
        raise raised from cause
    if raised is not None:
        raise raised


def _record_outcome(run_dir: RunDir, command: CommandRun, finishing: bool = False) -> None:
    """The final record; a completed run with `errors` is `completed_with_errors` (exit 1: something is missing).

    `finishing` marks the record while the final stages run: a reader of a run killed then knows that
    its report or diagnosis may be missing (`read_run`).
    """
    if command.errors and command.status == "completed":
        command.status = "completed_with_errors"
        logger.warning("%s completed with errors: %s", command.what, "; ".join(command.errors))
    run_dir.update_run(status=command.status, ended=utc_now(), seconds=command.seconds, error=command.error,
                       stop_reason=command.stop_reason, finishing=finishing, **command.fields,
                       **({"errors": command.errors} if command.errors else {}))
