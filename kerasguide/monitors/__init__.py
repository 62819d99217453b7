"""Babysitting monitors (recipes E16-E20): Keras callbacks for anyone's `model.fit`.

Keras' `TensorBoard` callback under TF2 writes weight histograms only
(gradient histograms were dropped, tensorflow#31173; activation histograms
never worked, tensorflow#39755). These callbacks bring them back, cheaply,
and record every signal in the run directory so that the diagnosis
(`kerasguide.diagnosis`), the report and the desktop app read them without
TensorBoard:

- `UpdateRatioMonitor`: `||dw|| / ||w||` per trainable tensor, measured
  inside the compiled train step (any optimizer, `steps_per_execution`
  kept), summarized per layer (E18, target about 1e-3).
- `LossMonitor`: the loss of every batch (its wiggle, E16) and the
  train/validation accuracy gap (E17), added to the epoch logs.
- `ProbeMonitor`: activation, gradient and weight histograms per layer on a
  fixed probe batch, with the fraction of dead ReLU and saturated
  tanh/sigmoid units (E19).
- `FirstLayerImages`: the first layer's weights as an image grid (E20), in
  TensorBoard and as PNG files.
- `DivergenceGuard`: stops training cleanly on a non-finite loss or a
  smoothed loss above `factor` times its start.

Files (format version 1) in `record_dir` (a run's `monitor/`), rewritten
atomically, one JSON object per line and epoch: `update_ratio.jsonl`,
`loss.jsonl`, `probe.jsonl`, `images.jsonl` (+ `first_layer_epoch=NNN.png`)
and `divergence.json`; each callback's docstring lists the keys. The
epoch-end work runs on one low-priority background thread
(`kerasguide.monitors.background`) and is complete when `fit()` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kerasguide._logging import import_tensorflow

# TensorFlow and Keras with their start-up chatter hidden, before any submodule imports them.
import_tensorflow()

import keras  # noqa: E402

from kerasguide import tb_events  # noqa: E402
from kerasguide.monitors.base import MonitorCallback  # noqa: E402
from kerasguide.monitors.guard import DivergenceGuard  # noqa: E402
from kerasguide.monitors.images import FirstLayerImages  # noqa: E402
from kerasguide.monitors.loss import LossMonitor  # noqa: E402
from kerasguide.monitors.probe import ProbeMonitor, activation_kind  # noqa: E402
from kerasguide.monitors.signals import loss_noise, roughness, weight_grid  # noqa: E402
from kerasguide.monitors.update_ratio import UpdateRatioMonitor  # noqa: E402

# Aliases for old callers: the event writer lives in `kerasguide.tb_events`.
from kerasguide.tb_events import EventWriter, release_writer, shared_writer  # noqa: E402

__all__ = [
    "MonitorCallback",
    "EventWriter",
    "shared_writer",
    "release_writer",
    "UpdateRatioMonitor",
    "LossMonitor",
    "ProbeMonitor",
    "FirstLayerImages",
    "DivergenceGuard",
    "default_monitors",
    "finish_monitors",
    "loss_noise",
    "weight_grid",
    "roughness",
    "activation_kind",
]


def default_monitors(
    x_probe=None,
    y_probe=None,
    *,
    log_dir: str | Path | None = None,
    record_dir: str | Path | None = None,
    image_shape: tuple[int, ...] | None = None,
    update_ratio_every: int = 1,
    histogram_every_epochs: int = 1,
    images_every_epochs: int = 5,
    divergence_factor: float = 4.0,
    on_diverge: Callable[[str], None] | None = None,
    every_batches: int | None = None,
) -> list[keras.callbacks.Callback]:
    """Every monitor at the given cadence, as `kerasguide run` uses them.

    Args:
        x_probe: Probe batch inputs; None skips the `ProbeMonitor`. Defaults to `None`.
        y_probe: Probe batch targets. Defaults to `None`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.
        image_shape: For `FirstLayerImages`. Defaults to `None`.
        update_ratio_every: Steps between update ratios; 0 = the first step of
            every execution. Defaults to `1`.
        histogram_every_epochs: Defaults to `1`.
        images_every_epochs: Defaults to `5`.
        divergence_factor: Defaults to `4.0`.
        on_diverge: Passed to the guard. Defaults to `None`.
        every_batches: Also probe and draw every N executions. Defaults to `None`.

    Example:

    ```python
    model.fit(x, y, epochs=5, callbacks=default_monitors(x[:64], y[:64], log_dir="tb/monitor"))
    ```
    """
    monitors: list[keras.callbacks.Callback] = [
        UpdateRatioMonitor(update_ratio_every, log_dir=log_dir, record_dir=record_dir),
        LossMonitor(log_dir=log_dir, record_dir=record_dir),
    ]
    if x_probe is not None and y_probe is not None:
        monitors.append(ProbeMonitor(x_probe, y_probe, every_epochs=histogram_every_epochs,
                                     every_batches=every_batches, log_dir=log_dir, record_dir=record_dir))
    monitors.append(FirstLayerImages(image_shape, every_epochs=images_every_epochs, log_dir=log_dir,
                                     record_dir=record_dir))
    monitors.append(DivergenceGuard(divergence_factor, on_diverge=on_diverge, record_dir=record_dir))
    return monitors


def finish_monitors(callbacks) -> None:
    """Wait for the monitors' background work and write their records: what `on_train_end` does.

    For a fit that ended by an exception (Ctrl-C, SIGTERM, a failure), where
    Keras never calls `on_train_end`: the records of the epochs done reach
    the disk before anything reads them.
    """
    for callback in callbacks:
        if isinstance(callback, MonitorCallback):
            callback.finish()
    tb_events.flush_all()  # the schedule's and the epoch scalars' writers too
