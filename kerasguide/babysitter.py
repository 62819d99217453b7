"""`Babysitter`: anyone's `model.fit`, watched and recorded as a kerasguide run directory.

One Keras callback brings what `kerasguide run` records to a fit you wrote
yourself: run.json (status, seed, versions, fingerprints of the arrays it is
shown), metrics.csv, the best checkpoint, TensorBoard scalars and the
monitors (recipes E16-E20) in `tb/`, their records in `monitor/`, and at the
end of training (also after Ctrl-C, SIGTERM or a divergence) diagnosis.json
and report.md. `kerasguide diagnose`, `kerasguide board`, `kerasguide runs`
and the desktop app read the folder like any run.

```python
sitter = kerasguide.Babysitter("runs/my-fit", x=x_train, y=y_train, validation_data=(x_val, y_val))
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=20, callbacks=[sitter])
print([f.code for f in sitter.findings])
```

Keras calls no callback when `fit` ends by an exception, so the first
Ctrl-C or SIGTERM (in the main thread) asks `fit` to stop after the current
step instead, and the run ends `interrupted` with everything written; a
second one interrupts at once. Used as a context manager (`with
Babysitter(...) as sitter: model.fit(...)`), a fit that raises is recorded
too (`interrupted` or `failed`); `finish()` does it by hand.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasguide._logging import get_logger
from kerasguide.callbacks import BestCheckpoint, EpochScalars, RunRecorder
from kerasguide.data import fingerprint
from kerasguide.diagnosis import Finding, findings_markdown, write_diagnosis
from kerasguide.interrupts import INTERRUPTED, is_interrupt
from kerasguide.monitors import default_monitors, finish_monitors
from kerasguide.provenance import git_commit, versions
from kerasguide.report import write_report
from kerasguide.rundir import RunDir, owner_fields, utc_now
from kerasguide.tasks import metric_direction
from kerasguide.tb_events import release_writer, shared_writer
from kerasguide.training import save_model_atomic
from kerasguide.user_data import n_examples, take

__all__ = ["Babysitter"]

logger = get_logger()

_HOOKS = (
    "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
    "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
)


def _arrays(data: Any) -> list[np.ndarray] | None:
    """The NumPy arrays of `x`, `y` or a `(x, y)` pair (dicts and lists of arrays too), or None for a stream."""
    if data is None:
        return []
    if isinstance(data, dict):
        parts = [_arrays(v) for v in data.values()]
    elif isinstance(data, (tuple, list)):
        parts = [_arrays(v) for v in data]
    else:
        try:
            return [np.asarray(data)] if hasattr(data, "shape") and hasattr(data, "dtype") else None
        except Exception:  # noqa: BLE001 - a tensor NumPy cannot view: no fingerprint, nothing else lost
            return None
    if any(p is None for p in parts):
        return None
    return [a for p in parts for a in p]


def _image_shape(x: Any) -> tuple[int, ...] | None:
    arrays = _arrays(x)
    if arrays and len(arrays) == 1 and arrays[0].ndim in (3, 4):
        return tuple(int(d) for d in arrays[0].shape[1:])
    return None


class Babysitter(keras.callbacks.Callback):
    """Record a `model.fit` you wrote as a complete kerasguide run directory (recipes E16-E20, I32).

    Args:
        run_dir: The run directory to create. A folder that already holds a
            run (a run.json) is refused: nothing recorded is overwritten.
        x: The training inputs (arrays, or a dict/list of arrays): their
            fingerprint goes into run.json and a sample of them is the
            monitors' probe batch (histograms, dead units, first-layer
            images). Defaults to `None` (no probe; the update ratios, the
            per-batch loss and the divergence guard still run).
        y: The training targets, with `x`. Defaults to `None`.
        validation_data: `(x_val, y_val)`, for its fingerprint. Defaults to `None`.
        name: The run's name in run.json and the runs browser. Defaults to
            the folder's name.
        seed: The seed you set (`keras.utils.set_random_seed`), recorded so
            the run can be repeated. Defaults to `None`.
        monitor: The logged metric whose best epoch is kept and checkpointed;
            `"auto"` is `val_accuracy` when the model logs it, else
            `val_loss`. Defaults to `"auto"`.
        checkpoints: Keep `checkpoints/best-*.keras` and `last.keras`.
            Defaults to `True`.
        monitors: Run the babysitting monitors. Defaults to `True`.
        probe_batch: Examples in the probe batch. Defaults to `64`.
        histogram_every_epochs: Defaults to `1`.
        images_every_epochs: Defaults to `5`.
        divergence_factor: Stop when the smoothed loss passes this times its
            start (status `diverged`). Defaults to `4.0`.
        handle_signals: Turn the first Ctrl-C/SIGTERM during `fit` into a
            clean stop (main thread only). Defaults to `True`.

    Attributes:
        run_dir: The `RunDir`.
        status: `running`, then `completed`, `diverged`, `interrupted` or `failed`.
        findings: The diagnosis, once training ended.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        x: Any = None,
        y: Any = None,
        validation_data: Sequence[Any] | None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        monitor: str = "auto",
        checkpoints: bool = True,
        monitors: bool = True,
        probe_batch: int = 64,
        histogram_every_epochs: int = 1,
        images_every_epochs: int = 5,
        divergence_factor: float = 4.0,
        handle_signals: bool = True,
    ):
        super().__init__()
        path = Path(run_dir)
        if (path / "run.json").exists():
            raise ValueError(f"Argument `run_dir` already holds a run ({path / 'run.json'}): pass a new folder. "
                             f"Received: run_dir={str(run_dir)!r}")
        if path.exists() and not path.is_dir():
            raise ValueError(f"Argument `run_dir` is a file, not a folder. Received: run_dir={str(run_dir)!r}")
        if not isinstance(probe_batch, int) or probe_batch < 1:
            raise ValueError(f"Argument `probe_batch` must be an integer >= 1. Received: probe_batch={probe_batch!r}")
        if (x is None) != (y is None):
            raise ValueError("Arguments `x` and `y` go together (the probe batch needs both). "
                             f"Received: x={'None' if x is None else '...'}, y={'None' if y is None else '...'}")
        self.run_dir = RunDir(path)
        self.x, self.y, self.validation_data = x, y, validation_data
        self.name = name or path.name
        self.seed = seed
        self.monitor = monitor
        self.checkpoints = checkpoints
        self.monitors = monitors
        self.probe_batch = probe_batch
        self.histogram_every_epochs = histogram_every_epochs
        self.images_every_epochs = images_every_epochs
        self.divergence_factor = divergence_factor
        self.handle_signals = handle_signals
        self.status = "created"
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.findings: list[Finding] = []
        self.history: list[dict[str, float]] = []
        self._children: list[keras.callbacks.Callback] = []
        self._best: BestCheckpoint | None = None
        self._recorder: RunRecorder | None = None
        self._monitor_name: str | None = None
        self._own_keys: set[str] | None = None
        self._started = 0.0
        self._signals: dict[int, Any] = {}
        self._stop_requested = False

    # ------------------------------------------------------------ Keras hooks
    def set_model(self, model):
        super().set_model(model)
        for child in self._children:
            child.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for child in self._children:
            child.set_params(params)

    def on_train_begin(self, logs=None):
        if self.status == "running":
            raise RuntimeError("this Babysitter is watching a fit already: one Babysitter per fit")
        if self.status != "created":
            raise RuntimeError(f"this Babysitter recorded a fit in {self.run_dir.path} already: "
                               "make a new one (and a new folder) for the next fit")
        self.status = "running"
        self._started = time.perf_counter()
        self.run_dir.path.mkdir(parents=True, exist_ok=True)
        self.run_dir.update_run(**self._header())
        self._children = self._make_children()
        for child in self._children:
            child.set_model(self.model)
            child.set_params(self.params)
        self._install_signals()
        logger.info("babysitting this fit in %s", self.run_dir.path)
        for child in self._children:
            child.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._monitor_name is None:
            self._resolve_monitor(logs or {})
        if self._own_keys is None:  # the model's own metrics, before the monitors add theirs
            self._own_keys = {k for k in (logs or {}) if k != "learning_rate"}
        for child in self._children:
            child.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        for child in self._children:
            child.on_train_end(logs)
        if self._stop_requested:
            self._finish("interrupted", INTERRUPTED, "interrupted")
        else:
            self._finish("completed" if self.status == "running" else self.status, self.error, self.stop_reason)

    # ---------------------------------------------------------- by hand
    def finish(self, error: BaseException | str | None = None) -> list[Finding]:
        """Record a fit that ended without `on_train_end` (an exception): `interrupted` or `failed`.

        Does nothing once the run is recorded. Returns the findings.
        """
        if self.status != "running":
            return self.findings
        if error is None or is_interrupt(error if isinstance(error, BaseException) else None):
            self._finish("interrupted", INTERRUPTED, "interrupted", ended_by_exception=True)
        else:
            text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            if isinstance(error, BaseException):
                self.run_dir.write_text("error.txt", "".join(
                    traceback.format_exception(type(error), error, error.__traceback__)))
            self._finish("failed", text, None, ended_by_exception=True)
        return self.findings

    def __enter__(self) -> Babysitter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.status == "running":
            self.finish(exc if exc is not None else "fit ended without on_train_end")
        return False

    # ------------------------------------------------------------- pieces
    def _header(self) -> dict[str, Any]:
        model = self.model
        compiled = getattr(model, "optimizer", None) is not None
        header: dict[str, Any] = {
            "format_version": 1,
            "kind": "fit",
            "name": self.name,
            "status": "running",
            "started": utc_now(),
            "ended": None,
            "seed": self.seed,
            "config_path": None,
            "command": " ".join(sys.argv),
            "versions": versions(),
            "git": git_commit(Path.cwd()),
            "model": {
                "class": type(model).__name__,
                "optimizer": type(model.optimizer).__name__ if compiled else None,
                "loss": _describe(getattr(model, "loss", None)),
            },
            "epochs_planned": (self.params or {}).get("epochs"),
            "steps_per_epoch": (self.params or {}).get("steps"),
            **owner_fields(),  # readers tell a killed fit from a running one
        }
        try:
            header["parameters"] = int(model.count_params())
        except ValueError:  # not built yet: Keras builds it on the first batch
            pass
        data: dict[str, Any] = {"name": "model.fit"}
        prints: dict[str, str] = {}
        for split, part in (("train", (self.x, self.y)), ("validation", self.validation_data)):
            arrays = _arrays(part) if part is not None else None
            if arrays:
                prints[split] = fingerprint(*arrays)
                data[split] = n_examples(part[0]) if isinstance(part, (tuple, list)) else None
        header["data"] = data
        if prints:
            header["fingerprints"] = prints
        return header

    def _resolve_monitor(self, logs: dict[str, Any]) -> None:
        """`monitor="auto"`, once the first epoch's logs show what the model reports.

        An accuracy if there is one (`val_` first), else the loss: validation first.
        """
        names = [k for k in logs if np.ndim(logs[k]) == 0]

        def accuracy(validation: bool) -> str | None:
            found = [k for k in names if k.endswith("accuracy") and k.startswith("val_") == validation]
            return min(found, key=len) if found else None  # `val_accuracy` before `val_sparse_categorical_accuracy`

        self._set_monitor(accuracy(True) or ("val_loss" if "val_loss" in names else None) or accuracy(False)
                          or "loss")

    def _set_monitor(self, name: str) -> None:
        self._monitor_name = name
        self._recorder.monitor = name
        if self._best is not None:  # before its first epoch: nothing to carry over
            self._best.monitor = name
            self._best.mode = metric_direction(name)
            self._best.best = math.inf if self._best.mode == "min" else -math.inf

    def _make_children(self) -> list[keras.callbacks.Callback]:
        monitor = None if self.monitor == "auto" else self.monitor
        self._monitor_name = monitor
        monitor = monitor or "val_loss"  # "auto": set at the first epoch's end
        children: list[keras.callbacks.Callback] = []
        if self.monitors:
            probe_x = probe_y = None
            n = n_examples(self.x) if _arrays(self.x) else 0
            if n:
                keep = np.sort(np.random.default_rng(self.seed or 0).choice(n, size=min(self.probe_batch, n),
                                                                             replace=False))
                probe_x, probe_y = take(self.x, keep), take(self.y, keep)

            def on_diverge(reason: str) -> None:
                self.status = "diverged"
                self.stop_reason = f"divergence guard: {reason}"

            children += default_monitors(
                probe_x, probe_y, log_dir=self.run_dir.tb_dir / "monitor", record_dir=self.run_dir.monitor_dir,
                image_shape=_image_shape(self.x), histogram_every_epochs=self.histogram_every_epochs,
                images_every_epochs=self.images_every_epochs, divergence_factor=self.divergence_factor,
                on_diverge=on_diverge,
            )
        # Monitors first: what they add to `logs` reaches metrics.csv, the checkpoint and TensorBoard.
        self._recorder = RunRecorder(self.run_dir, monitor, history=self.history)
        children.append(self._recorder)
        if self.checkpoints:
            self._best = BestCheckpoint(self.run_dir.checkpoints_dir, monitor=monitor)
            children.append(self._best)
        children.append(EpochScalars(self.run_dir.tb_dir))
        return children

    def _install_signals(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return

        def stop(signum, frame):
            if self._stop_requested:  # the second one: at once
                self._restore_signals()
                raise KeyboardInterrupt
            self._stop_requested = True
            self.model.stop_training = True
            logger.warning("stopping this fit after the current step (again to interrupt at once); "
                           "the run is recorded in %s", self.run_dir.path)

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._signals[signum] = signal.signal(signum, stop)
            except (ValueError, OSError):  # not the main thread of the main interpreter
                pass

    def _restore_signals(self) -> None:
        for signum, handler in self._signals.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass
        self._signals.clear()

    def _finish(self, status: str, error: str | None, stop_reason: str | None,
                ended_by_exception: bool = False) -> None:
        self._restore_signals()
        if ended_by_exception:
            finish_monitors(self._children)  # Keras skipped on_train_end
            try:
                if self._best is not None:
                    self._best.flush()  # a no-op when everything is on disk
            except Exception as flush_error:  # noqa: BLE001 - the record matters more
                logger.warning("could not save the best checkpoint: %s", flush_error)
            for folder in ("train", "validation"):
                release_writer(self.run_dir.tb_dir / folder, force=True)
        self.status, self.error, self.stop_reason = status, error, stop_reason
        if self.checkpoints:
            try:
                save_model_atomic(self.model, self.run_dir.checkpoints_dir / "last.keras")
            except Exception as save_error:  # noqa: BLE001 - e.g. a subclassed model without get_config
                logger.warning("could not save checkpoints/last.keras: %s: %s", type(save_error).__name__,
                               save_error)
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items()
                 if k in (self._own_keys or ()) and isinstance(v, float) and math.isfinite(v)}
        fields: dict[str, Any] = {"status": status, "ended": utc_now(),
                                  "seconds": round(time.perf_counter() - self._started, 3),
                                  "error": error, "stop_reason": stop_reason, "final_metrics": final}
        try:
            fields["parameters"] = int(self.model.count_params())
        except ValueError:
            pass
        self.run_dir.update_run(**fields)
        try:
            self.findings = write_diagnosis(self.run_dir)
            writer = shared_writer(self.run_dir.tb_dir / "monitor")
            writer.text("diagnosis", findings_markdown(self.findings), max(1, len(self.history)),
                        "what kerasguide diagnose found in this fit (recipes E16-E20)")
            release_writer(self.run_dir.tb_dir / "monitor", force=True)
        except Exception as diagnosis_error:  # noqa: BLE001 - a view, never a reason to lose the record
            logger.warning("diagnosis failed: %s: %s", type(diagnosis_error).__name__, diagnosis_error)
        for finding in self.findings:
            log = logger.warning if finding.severity in ("warning", "error") else logger.info
            log("diagnosis: %s %s: %s", finding.severity, finding.code, finding.advice)
        try:
            write_report(self.run_dir)
        except Exception as report_error:  # noqa: BLE001
            logger.warning("report.md failed: %s: %s", type(report_error).__name__, report_error)
        logger.info("fit %s: %s (report: %s)", status, self.run_dir.path, self.run_dir.report_md)


def _describe(loss: Any) -> Any:
    """A compiled loss as JSON-friendly text: a name, or per-output names."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        return {k: _describe(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_describe(v) for v in loss]
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    return str(name)


def _forward(hook: str):
    def method(self, *args, **kwargs):
        for child in self._children:
            getattr(child, hook)(*args, **kwargs)

    method.__name__ = hook
    method.__doc__ = f"Passes `{hook}` on to the monitors and recorders."
    return method


# Keras calls every hook of every callback: the Babysitter passes each on to the callbacks it holds.
for _hook in _HOOKS:
    if _hook != "on_epoch_end":
        setattr(Babysitter, _hook, _forward(_hook))
