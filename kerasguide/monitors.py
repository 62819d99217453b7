"""Babysitting monitors (recipes E16-E20): Keras callbacks for anyone's `model.fit`.

Keras' `TensorBoard` callback under TF2 writes weight histograms only
(gradient histograms were dropped, tensorflow#31173; activation histograms
never worked, tensorflow#39755). These callbacks bring them back, cheaply,
and record every signal in the run directory so that the diagnosis
(`kerasguide.diagnosis`), the report and the desktop app read them without
TensorBoard:

- `UpdateRatioMonitor`: `||dw|| / ||w||` per trainable tensor, measured
  inside the compiled train step from the actual update (any optimizer,
  any schedule, `steps_per_execution` kept), summarized per layer
  (recipe E18, target about 1e-3).
- `LossMonitor`: the loss of every batch (its wiggle, recipe E16), the
  train/validation accuracy gap (E17), added to the epoch logs.
- `ProbeMonitor`: activation, gradient and weight histograms per layer on a
  fixed probe batch, in one extra compiled function, with the fraction of
  dead ReLU units and saturated tanh/sigmoid units (E19).
- `FirstLayerImages`: the first layer's weights as an image grid (E20),
  in TensorBoard and as PNG files.
- `DivergenceGuard`: stops training cleanly on a non-finite loss or a
  smoothed loss above `factor` times its starting value.

Files (format version 1) in `record_dir` (a run's `monitor/`), each rewritten
atomically at every epoch end, one JSON object per line and epoch:
`update_ratio.jsonl`, `loss.jsonl`, `probe.jsonl`, `images.jsonl` (+ the
`first_layer_epoch=NNN.png` files) and `divergence.json`; the keys are
listed in each callback's docstring.

Where the time goes: at an epoch end each monitor takes what it needs from
the model on the training thread (the probe a copy of the weights and,
once traced, its forward and backward pass on it; the images a copy of
one kernel; the others a few numbers) and hands the rest to one
background thread, run at the lowest CPU priority: the probe's tracing,
histograms, PNG encoding, TensorBoard events and record files. `model.fit`
spends most of an epoch in a compiled call that releases the GIL, so this
work overlaps with the next epoch's training. `fit()` returns once it is
done (`on_train_end` waits), with every record complete.

How the in-step measurements work: after its update, Keras' optimizer
applies each variable's `constraint` inside the compiled step. The
update-ratio and loss monitors wrap that constraint (returning the value
unchanged after the original constraint) with a function that records the
step's numbers into their own variables; the wrap is removed in
`on_train_end`. No extra Python call per step, so `steps_per_execution`
keeps its speed. Under a multi-replica strategy (or a backend other than
TensorFlow) they fall back to comparing weights across one execution.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kerasguide._logging import get_logger, import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasguide.rundir import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

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

logger = get_logger()

_RELU_LIKE = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "celu", "prelu")
_TANH_LIKE = ("tanh", "softsign", "hard_tanh")
_SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")
_HIST_BINS = 16
_WRITE_SECONDS = 1.0  # records are rewritten at most this often (and at the end of training)

class EventWriter:
    """TensorBoard summaries written in plain Python: scalars, histograms, images, text.

    Written by hand (on TensorBoard's own `EventFileWriter` and protos)
    because TensorFlow's `tf.summary` ops cost about a millisecond each when
    eager, or a tracing when compiled: a few dozen per epoch would be most
    of the monitors' budget on a small model. Events are queued and written
    by TensorBoard's background thread.

    Args:
        log_dir: The TensorBoard run folder.

    Example:

    ```python
    writer = EventWriter("runs/x/tb/monitor")
    writer.scalar("update_ratio/dense", -3.1, step=1)
    writer.flush()
    ```
    """

    def __init__(self, log_dir: str | Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self._writer = EventFileWriter(str(log_dir), flush_secs=30)
        self._described: set[str] = set()
        self._grouping = False
        self._pending: tuple[int, list] | None = None

    def _add(self, tag: str, tensor, plugin_metadata, step: int) -> None:
        from tensorboard.compat.proto import summary_pb2

        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        if tag not in self._described:  # metadata once per tag, as tf.summary does
            value.metadata.CopyFrom(plugin_metadata())
            self._described.add(tag)
        if self._pending is not None:
            if self._pending[0] == int(step):
                self._pending[1].append(value)
                return
            self._send(*self._pending)
            self._pending = None
        if self._grouping:
            self._pending = (int(step), [value])
            return
        self._send(int(step), [value])

    def _send(self, step: int, values: list) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

    def __enter__(self) -> EventWriter:
        """Group what is written inside `with writer:` into one event per step (fewer, larger events)."""
        self._grouping = True
        return self

    def __exit__(self, *exc) -> None:
        self._grouping = False
        if self._pending is not None:
            self._send(*self._pending)
            self._pending = None

    def scalar(self, tag: str, value: float, step: int, description: str = "") -> None:
        """One scalar (TensorBoard's Scalars tab)."""
        from tensorboard.compat.proto import tensor_pb2, types_pb2
        from tensorboard.plugins.scalar import metadata

        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)])
        self._add(tag, tensor, lambda: metadata.create_summary_metadata(display_name=tag, description=description),
                  step)

    def histogram(self, tag: str, edges, counts, step: int, description: str = "") -> None:
        """A histogram from bucket `edges` (k + 1 values) and `counts` (k)."""
        from tensorboard.plugins.histogram import metadata
        from tensorboard.util import tensor_util

        edges = np.asarray(edges, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.float64)
        if len(counts) == 0 or len(edges) != len(counts) + 1 or not np.all(np.isfinite(edges)):
            return
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1)
        self._add(tag, tensor_util.make_tensor_proto(buckets),
                  lambda: metadata.create_summary_metadata(display_name=tag, description=description), step)

    def image(self, tag: str, png: bytes, height: int, width: int, step: int, description: str = "") -> None:
        """One PNG image."""
        from tensorboard.plugins.image import metadata
        from tensorboard.util import tensor_util

        tensor = tensor_util.make_tensor_proto(np.array([str(width).encode(), str(height).encode(), png], dtype=object))
        self._add(tag, tensor, lambda: metadata.create_summary_metadata(display_name=tag, description=description),
                  step)

    def text(self, tag: str, text: str, step: int, description: str = "") -> None:
        """Markdown text (TensorBoard's Text tab)."""
        from tensorboard.plugins.text import metadata
        from tensorboard.util import tensor_util

        self._add(tag, tensor_util.make_tensor_proto(np.array(text.encode("utf-8"), dtype=object)),
                  lambda: metadata.create_summary_metadata(display_name=tag, description=description), step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# One writer per log directory, shared by all monitors: TensorBoard reads a
# run folder's event files one after the other, so two live writers in one
# folder would hide each other's data while training.
_WRITERS: dict[str, EventWriter] = {}
_USERS: dict[str, int] = {}


def shared_writer(log_dir: str | Path) -> EventWriter:
    """The `EventWriter` of a folder, created once and shared until `release_writer` closes it."""
    key = str(Path(log_dir).resolve())
    writer = _WRITERS.get(key)
    if writer is None:
        writer = EventWriter(key)
        _WRITERS[key] = writer
    return writer


def release_writer(log_dir: str | Path, force: bool = False) -> None:
    """One user less of a folder's writer; the last one (or `force`) closes it (no thread left behind)."""
    key = str(Path(log_dir).resolve())
    _USERS[key] = max(0, _USERS.get(key, 0) - 1)
    if (_USERS[key] == 0 or force) and key in _WRITERS:
        _WRITERS.pop(key).close()
        _USERS.pop(key, None)


def _round(value: Any, digits: int = 6) -> Any:
    """Floats to `digits` significant digits (compact JSON); NaN/Inf kept for the writer to null."""
    if isinstance(value, float):  # the common case first: this runs on every record
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    if isinstance(value, np.floating):
        return _round(float(value), digits)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------ pure helpers
def loss_noise(losses: Any) -> float:
    """The wiggle of a loss curve: the step-to-step jitter of the log-loss.

    `std(diff(log(loss))) / sqrt(2)`: for a loss that is a smooth trend
    times independent noise of relative size `s`, this is about `s`,
    whatever the trend (the difference removes it). NaN with fewer than 3
    finite positive values.

    Example:

    >>> round(loss_noise([1.0, 1.0, 1.0, 1.0]), 3)
    0.0
    """
    values = np.asarray([v for v in np.asarray(losses, dtype=np.float64).ravel() if np.isfinite(v) and v > 0])
    if len(values) < 3:
        return math.nan
    return float(np.std(np.diff(np.log(values))) / math.sqrt(2.0))


def roughness(tiles: np.ndarray) -> float:
    """How noisy a stack of 2-D weight images is: about 1 for white noise, near 0 when smooth.

    For each tile, the mean squared difference between neighbouring pixels
    (both directions) divided by twice the tile's variance; averaged over
    the tiles that are at least 2x2 and not constant. NaN if there are none.

    Example:

    >>> smooth = np.tile(np.linspace(0, 1, 8), (8, 1))[None]
    >>> roughness(smooth) < 0.1
    True
    """
    tiles = np.asarray(tiles, dtype=np.float64)
    if tiles.ndim == 2:
        tiles = tiles[None]
    tiles = tiles.reshape(tiles.shape[0], tiles.shape[1], tiles.shape[2], -1).mean(axis=-1)
    if tiles.shape[1] < 2 or tiles.shape[2] < 2:
        return math.nan
    var = tiles.var(axis=(1, 2))
    dx = (np.diff(tiles, axis=2) ** 2).mean(axis=(1, 2))
    dy = (np.diff(tiles, axis=1) ** 2).mean(axis=(1, 2))
    keep = var > 0
    if not keep.any():
        return math.nan
    return float(np.mean((dx[keep] + dy[keep]) / 2.0 / (2.0 * var[keep])))


def weight_grid(kernel: np.ndarray, image_shape: tuple[int, ...] | None = None, max_tiles: int = 256,
                scale: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """First-layer weights as a grid image (recipe E20).

    A dense kernel `(fan_in, units)` gives one tile per unit, reshaped to
    `image_shape` when `fan_in` matches it (else to the nearest square, or a
    1-pixel-high strip); a conv kernel `(k, k, c_in, filters)` gives one
    `k x k` tile per filter (RGB when `c_in == 3`, else the channels' mean);
    a 1-D conv kernel `(k, c_in, filters)` a `c_in x k` tile. Each tile is
    scaled to [0, 1] on its own, tiles are laid out in a near-square grid
    with a 1-pixel border and the grid is enlarged (nearest neighbour) by
    `scale` (0: to about 320 pixels wide).

    Args:
        kernel: The first layer's kernel.
        image_shape: `(h, w, c)` of the inputs of a dense layer. Defaults to `None`.
        max_tiles: At most this many tiles. Defaults to `256`.
        scale: Integer enlargement; 0 picks one. Defaults to `0`.

    Returns:
        `(grid, tiles)`: a `uint8` array `(H, W, 1 or 3)` and the tiles
        `(n, h, w, c)` as floats (before scaling), for `roughness`.

    Example:

    >>> grid, tiles = weight_grid(np.random.rand(64, 16), (8, 8, 1))
    >>> tiles.shape
    (16, 8, 8, 1)
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        fan_in, units = kernel.shape
        cols = kernel.T[:max_tiles]
        if image_shape is not None and int(np.prod(image_shape)) == fan_in:
            shape = tuple(int(s) for s in image_shape)
            if len(shape) == 2:
                shape = (*shape, 1)
            elif len(shape) == 1:
                shape = (1, shape[0], 1)
        else:
            side = int(round(math.sqrt(fan_in)))
            shape = (side, side, 1) if side * side == fan_in else (1, fan_in, 1)
        tiles = cols.reshape((len(cols), *shape))
    elif kernel.ndim == 3:  # Conv1D (k, c_in, filters)
        tiles = np.transpose(kernel, (2, 1, 0))[:max_tiles][..., None]
    elif kernel.ndim == 4:  # Conv2D (k, k, c_in, filters)
        tiles = np.transpose(kernel, (3, 0, 1, 2))[:max_tiles]
    else:
        raise ValueError(f"Argument `kernel` must have rank 2, 3 or 4. Received: shape={kernel.shape}")
    tiles = np.nan_to_num(tiles, nan=0.0, posinf=0.0, neginf=0.0)  # a diverged run still gets a picture
    if tiles.shape[-1] not in (1, 3):
        tiles = tiles.mean(axis=-1, keepdims=True)
    n, h, w, c = tiles.shape
    low = tiles.reshape(n, -1).min(axis=1).reshape(n, 1, 1, 1)
    high = tiles.reshape(n, -1).max(axis=1).reshape(n, 1, 1, 1)
    norm = (tiles - low) / np.where(high - low > 0, high - low, 1.0)
    cols_n = int(math.ceil(math.sqrt(n * h / max(w, 1)))) if h > 1 else max(1, int(math.ceil(math.sqrt(n) / 4)))
    cols_n = max(1, min(n, cols_n))
    rows_n = int(math.ceil(n / cols_n))
    # Each cell is a tile with a 1-pixel border below and to its right; one reshape lays the
    # cells out (a Python loop over 256 tiles took most of the grid's time), the pad adds the
    # top and left borders.
    cells = np.ones((rows_n * cols_n, h + 1, w + 1, c))
    cells[:n, :h, :w] = norm
    grid = cells.reshape(rows_n, cols_n, h + 1, w + 1, c).transpose(0, 2, 1, 3, 4)
    grid = np.pad(grid.reshape(rows_n * (h + 1), cols_n * (w + 1), c), ((1, 0), (1, 0), (0, 0)), constant_values=1.0)
    if scale <= 0:
        scale = max(1, min(16, 320 // max(grid.shape[1], 1)))
    grid = (grid * 255).round().astype(np.uint8)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1), tiles


def activation_kind(layer: keras.layers.Layer) -> str | None:
    """The nonlinearity a layer applies (`"relu"`, `"tanh"`, ...), or None if it is linear."""
    kinds = {
        keras.layers.LeakyReLU: "leaky_relu",
        keras.layers.ReLU: "relu",
        keras.layers.ELU: "elu",
        keras.layers.PReLU: "prelu",
        keras.layers.Softmax: "softmax",
    }
    for cls, name in kinds.items():
        if isinstance(layer, cls):
            return "leaky_relu" if name == "relu" and getattr(layer, "negative_slope", 0) else name
    fn = getattr(layer, "activation", None)
    if fn is None or not callable(fn):
        return None
    name = (getattr(fn, "__name__", None) or type(fn).__name__).lower()
    return None if name == "linear" else name


def _unit_stats(values: np.ndarray, kind: str | None, saturation: float = 0.99) -> dict[str, float]:
    """Dead fraction (units <= 0 on the whole batch) and saturated fraction of one layer's output."""
    units = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
    stats = {"mean": float(units.mean()), "std": float(units.std()), "dead_fraction": 0.0, "saturated_fraction": 0.0}
    if kind in _RELU_LIKE:
        stats["dead_fraction"] = float(np.mean(np.all(units <= 0.0, axis=0)))
    elif kind in _TANH_LIKE:
        stats["saturated_fraction"] = float(np.mean(np.abs(units) > saturation))
    elif kind in _SIGMOID_LIKE:
        stats["saturated_fraction"] = float(np.mean((units > saturation) | (units < 1.0 - saturation)))
    return stats


def _layer_of_variables(model: keras.Model) -> dict[int, str]:
    """id(variable) -> name of the (innermost) layer that owns it."""
    owners: dict[int, str] = {}

    def visit(layer, prefix=""):
        for sub in getattr(layer, "layers", None) or getattr(layer, "_layers", []) or []:
            visit(sub)
        for variable in layer.trainable_weights:
            owners.setdefault(id(variable), layer.name)

    for layer in model.layers:
        visit(layer)
    return owners


def _var_name(variable) -> str:
    return getattr(variable, "path", None) or variable.name


def _is_multi_replica(model: keras.Model) -> bool:
    strategy = getattr(model, "distribute_strategy", None)
    return bool(strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) > 1)


# ---------------------------------------------------------- in-step hooks
class _ConstraintHook:
    """A variable constraint that first applies the original one, then records (never changes) the value.

    Keras' optimizers call `variable.constraint(variable)` inside the
    compiled step right after the update: the only place where a callback
    can see every step's new weights without its own Python call.
    """

    def __init__(self, inner: Callable | None, fn: Callable[[Any], None]):
        self.inner = inner
        self.fn = fn

    def __call__(self, value):
        if self.inner is not None:
            value = self.inner(value)
        self.fn(value)
        return value


def _install_hook(variable, fn: Callable[[Any], None]) -> _ConstraintHook:
    hook = _ConstraintHook(variable.constraint, fn)
    variable.constraint = hook
    return hook


def _remove_hook(variable, hook: _ConstraintHook) -> None:
    current = variable.constraint
    if current is hook:
        variable.constraint = hook.inner
        return
    while isinstance(current, _ConstraintHook):
        if current.inner is hook:
            current.inner = hook.inner
            return
        current = current.inner


def _retrace(model: keras.Model) -> None:
    # The step is traced on its first call: a new train function picks up the
    # hooks just installed (or drops the ones just removed).
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def _read_and_reset(counter: tf.Variable, *others: tf.Variable) -> Callable[[], Any]:
    """A compiled `() -> (counter, *others)` that also zeroes `counter`: one call instead of three eager ops.

    Called at every execution's or epoch's end; eager reads and assigns cost
    about 0.1 ms each, a visible part of a small model's epoch. Traced now,
    not at its first call.
    """

    def take():
        values = [tf.identity(counter)] + [tf.identity(v) for v in others]
        with tf.control_dependencies(values):
            counter.assign(tf.zeros_like(counter))
        return values[0] if not others else tuple(values)

    function = tf.function(take, autograph=False)
    function.get_concrete_function()
    return function


# ------------------------------------------------------- the background
# The monitors' epoch-end work that does not need the model as it is right
# now (histograms, PNG encoding, TensorBoard events, record files, and the
# probe's own forward/backward pass on a snapshot of the weights) runs on one
# background thread, in order. When it runs matters as much as where: the
# training thread takes and releases the GIL dozens of times an epoch (every
# eager op, the data iterator, the callbacks), and each time a busy Python
# thread holds it, it waits up to the interpreter's switch interval (5 ms):
# a background thread that simply ran at an epoch's end slowed a small
# model's epoch by more than its own work. So the work is queued at the
# epoch's end and handed to the thread at the next `on_train_batch_begin`,
# just before the training thread enters the compiled execution (one call
# that releases the GIL for most of an epoch with `steps_per_execution`).
# Written by hand (a queue, a one-thread executor, futures per callback):
# Keras runs every callback on the training thread.
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()
_QUEUE: list[tuple[Any, Callable[..., None], tuple]] = []


def _lower_priority() -> None:
    """Run the calling thread at the lowest CPU priority (Linux: a thread's own nice value).

    Training keeps its cores: the scheduler gives the monitors' thread what
    the training threads leave idle. At the same priority the background
    work slowed a digits MLP's compiled epoch by about its own CPU time;
    in one interleaved measurement the first-layer images cost +13 ms an
    epoch at nice 0 and +4 ms at nice 19 (all monitors together: +23 ms and
    +16 ms, within this machine's noise). Elsewhere (no per-thread priority)
    nothing changes.
    """
    if not sys.platform.startswith("linux"):  # elsewhere a thread id is not a valid `setpriority` target
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kerasguide-monitor",
                                           initializer=_lower_priority)
        return _EXECUTOR


def _release() -> None:
    """Hand every queued piece of monitor work to the background thread, in order."""
    with _EXECUTOR_LOCK:
        jobs = _QUEUE[:]
        _QUEUE.clear()
    if jobs:
        executor = _executor()
        for callback, fn, args in jobs:
            callback._futures.append(executor.submit(callback._guarded, fn, *args))


# ------------------------------------------------------------ base class
class MonitorCallback(keras.callbacks.Callback):
    """Shared logic of the monitors: a shared TensorBoard writer, per-epoch records on disk, cadence.

    Subclasses set `record_name` and call `self._add_record(dict)` once per
    epoch; the records are kept in `self.records` and, with a `record_dir`,
    rewritten atomically to `<record_dir>/<record_name>.jsonl`. State is
    reset in `on_train_begin`, so one instance can serve several `fit()`
    calls. Work handed to `self._submit(fn)` runs on the monitors'
    background thread (in order; `background = False` runs it at once);
    `on_train_end` waits for it, so `records` and the files are complete
    when `fit()` returns. Summaries and records are only written from there.

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

    # state
    def on_train_begin(self, logs=None):
        self._drain()
        self.records = []
        self._lines: list[str] = []
        self._written = -math.inf
        self._written_lines = 0
        if self.log_dir is not None:
            key = str(self.log_dir.resolve())
            _USERS[key] = _USERS.get(key, 0) + 1
        self._epochs = (self.params or {}).get("epochs")

    def _due(self, epoch: int) -> bool:
        last = self._epochs is not None and epoch + 1 >= self._epochs
        return (epoch + 1) % self.every_epochs == 0 or last or bool(getattr(self.model, "stop_training", False))

    # outputs
    @property
    def writer(self):
        """The shared summary writer of `log_dir`, or None."""
        return None if self.log_dir is None else shared_writer(self.log_dir)

    def _add_record(self, record: dict[str, Any]) -> None:
        record = _round(record)
        self.records.append(record)
        if self.record_dir is None:
            return
        # Each line is serialized once; the file is rewritten whole (atomic rename), so a kill
        # never leaves half a file, at most once a second (about 1 ms each: several per epoch
        # would show on a small model) and at the end of training.
        self._lines.append(json.dumps(_finite_or_none(record), allow_nan=True) + "\n")
        if time.perf_counter() - self._written >= _WRITE_SECONDS:
            self._write_records()

    def _write_records(self) -> None:
        if self.record_dir is None or not self._lines or self._written_lines == len(self._lines):
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.record_dir / f"{self.record_name}.jsonl", "".join(self._lines))
        self._written = time.perf_counter()
        self._written_lines = len(self._lines)

    # the background
    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue `fn(*args)` for the background thread (run from the next execution's start, in order).

        Runs it at once when `background` is False.
        """
        if not self.background:
            self._guarded(fn, *args)
            return
        self._futures = [f for f in self._futures if not f.done()]
        with _EXECUTOR_LOCK:
            _QUEUE.append((self, fn, args))

    def on_train_batch_begin(self, batch, logs=None):
        # The training thread is about to enter the compiled execution: the queued work runs now.
        if _QUEUE:
            _release()

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as error:  # a monitor must never stop the training
            if not self._errors:
                logger.warning("%s: %s: %s", type(self).__name__, type(error).__name__, error)
            self._errors.append(f"{type(error).__name__}: {error}")

    def _drain(self) -> None:
        """Wait for every piece of work this callback handed to the background thread."""
        _release()
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def on_train_end(self, logs=None):
        self._drain()
        self._write_records()
        if self.log_dir is not None:
            release_writer(self.log_dir)


# ------------------------------------------------------- update ratios
class UpdateRatioMonitor(MonitorCallback):
    """Update:weight ratio `||w_t - w_{t-1}|| / ||w_{t-1}||` per trainable tensor (recipe E18).

    Measured from the actual update (whatever the optimizer and schedule),
    inside the compiled step every `every_steps` steps, or at the first
    step of every execution (`every_steps=0`: the cheapest, one gated
    branch per step), so `steps_per_execution` keeps its speed (see the
    module docstring). At
    each epoch end: the mean ratio of each tensor over the measured steps,
    and per layer the RMS ratio `sqrt(sum ||dw||^2 / sum ||w||^2)` over the
    layer's tensors and steps. A healthy ratio is about 1e-3; much lower
    means the learning rate is too low, much higher too high. Under a
    multi-replica strategy the ratio is measured across each execution and
    divided by its number of steps (exact for `steps_per_execution=1`).

    Adds `update_ratio` (median over layers) to the epoch logs. Record
    (`update_ratio.jsonl`): `{"epoch", "steps", "median", "layers": {layer:
    ratio}, "tensors": {path: ratio}}`. TensorBoard scalars
    `update_ratio/<layer>` and `update_ratio_tensor/<path>` (log10).

    Args:
        every_steps: Measure every N training steps; 0: the first step of
            every execution. Defaults to `1`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.

    Example:

    ```python
    monitor = UpdateRatioMonitor()
    model.fit(x, y, epochs=3, callbacks=[monitor])
    monitor.records[-1]["layers"]          # {"dense": 0.0012, ...}
    ```
    """

    record_name = "update_ratio"
    _force_fallback = False  # tests: compare weights across executions even when in-step works

    def __init__(self, every_steps: int = 1, log_dir=None, record_dir=None):
        super().__init__(log_dir, record_dir)
        if not isinstance(every_steps, int) or every_steps < 0:
            raise ValueError(f"Argument `every_steps` must be an integer >= 0. Received: every_steps={every_steps}")
        self.every_steps = every_steps
        self._hooks: list[tuple[Any, _ConstraintHook]] = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._remove_hooks()
        self._vars = list(self.model.trainable_weights)
        owners = _layer_of_variables(self.model)
        self._names = [_var_name(v) for v in self._vars]
        self._layers = [owners.get(id(v), _var_name(v).split("/")[0]) for v in self._vars]
        self._in_step = (not self._force_fallback and bool(self._vars) and not _is_multi_replica(self.model)
                         and keras.backend.backend() == "tensorflow")
        self._executions = 0
        n = len(self._vars)
        if self._in_step:
            self._prev = [tf.Variable(tf.cast(v.value, tf.float32), trainable=False) for v in self._vars]
            self._acc = tf.Variable(tf.zeros(4 * n + 1, tf.float32), trainable=False)
            self._armed = tf.Variable(0.0, trainable=False)
            self._take = _read_and_reset(self._acc)
            last = self._vars[-1]
            self._hooks.append((last, _install_hook(last, self._step_fn())))
            _retrace(self.model)
        else:
            self._acc_np = np.zeros(4 * n + 1)

    def _step_fn(self) -> Callable[[Any], None]:
        # Runs in the last variable's constraint: every variable has its new
        # (constrained) value by then, the last one is handed in.
        every = self.every_steps
        optimizer = self.model.optimizer
        variables = self._vars
        prevs, acc, armed = self._prev, self._acc, self._armed

        def current(value):
            return [tf.cast(v.value, tf.float32) for v in variables[:-1]] + [tf.cast(value, tf.float32)]

        def measure(values):
            # Few passes over each tensor (on a small model every elementwise op over a kernel is a
            # visible part of the step): one read of the previous value, the difference, and the
            # fused sum of squares `l2_loss` (sum(t**2) / 2) of each (XLA has it; not EuclideanNorm).
            olds = [tf.identity(p) for p in prevs]
            d2 = 2.0 * tf.stack([tf.nn.l2_loss(v - p) for v, p in zip(values, olds, strict=True)])
            p2 = 2.0 * tf.stack([tf.nn.l2_loss(p) for p in olds])
            valid = tf.cast(p2 > 0.0, tf.float32)  # a zero tensor (a fresh bias) has no ratio yet
            ratio = tf.sqrt(d2 / tf.maximum(p2, 1e-30)) * valid
            acc.assign_add(tf.concat([ratio, d2, p2, valid, [1.0]], 0))

        def save(values):
            for v, p in zip(values, prevs, strict=True):
                p.assign(v)

        def fn(value):
            if every == 1:
                values = current(value)
                measure(values)
                save(values)
                return
            if every == 0:
                # The first step of each execution; the weights before it were saved from Python.
                def first():
                    measure(current(value))
                    armed.assign(0.0)
                    return tf.constant(0)

                tf.cond(armed > 0.0, first, lambda: tf.constant(0))
                return
            step = tf.cast(optimizer.iterations, tf.int64)  # steps done before this one

            def due():
                measure(current(value))
                return tf.constant(0)

            def before_due():
                save(current(value))
                return tf.constant(0)

            tf.cond(step % every == 0, due, lambda: tf.constant(0))
            tf.cond((step + 1) % every == 0, before_due, lambda: tf.constant(0))

        return fn

    def on_train_batch_begin(self, batch, logs=None):
        super().on_train_batch_begin(batch, logs)
        if self._in_step:
            if self.every_steps == 0:
                for variable, prev in zip(self._vars, self._prev, strict=True):
                    prev.assign(variable.value if variable.dtype == "float32" else tf.cast(variable.value, tf.float32))
                self._armed.assign(1.0)
            return
        self._executions += 1
        self._snapshot = None
        if (self._executions - 1) % max(self.every_steps, 1) == 0:
            self._snapshot = [np.asarray(v.value, dtype=np.float64) for v in self._vars]
            self._snapshot_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self._in_step or getattr(self, "_snapshot", None) is None:
            return
        # Across one execution: the step's average movement (exact with one step per execution).
        steps = max(1, int(self.model.optimizer.iterations.numpy()) - self._snapshot_step)
        n = len(self._vars)
        for i, variable in enumerate(self._vars):
            old = self._snapshot[i]
            d2 = float(np.sum((np.asarray(variable.value, dtype=np.float64) - old) ** 2)) / steps ** 2
            p2 = float(np.sum(old ** 2))
            self._acc_np[i] += math.sqrt(d2 / p2) if p2 > 0 else 0.0
            self._acc_np[n + i] += d2
            self._acc_np[2 * n + i] += p2
            self._acc_np[3 * n + i] += float(p2 > 0)
        self._acc_np[-1] += 1
        self._snapshot = None

    def on_epoch_end(self, epoch, logs=None):
        n = len(self._vars)
        if self._in_step:
            values = self._take().numpy().astype(np.float64)
        else:
            values = self._acc_np
            self._acc_np = np.zeros(4 * n + 1)
        steps = int(values[-1])
        if steps == 0:
            return
        tensors = {name: float(values[i] / values[3 * n + i]) if values[3 * n + i] else math.nan
                   for i, name in enumerate(self._names)}
        sums: dict[str, list[float]] = {}
        for i, layer in enumerate(self._layers):
            total = sums.setdefault(layer, [0.0, 0.0])
            total[0] += values[n + i]
            total[1] += values[2 * n + i]
        layers = {layer: math.sqrt(d2 / p2) if p2 > 0 else math.nan for layer, (d2, p2) in sums.items()}
        finite = [r for r in layers.values() if math.isfinite(r) and r > 0]
        median = float(np.median(finite)) if finite else math.nan
        if logs is not None:
            logs["update_ratio"] = median
        self._submit(self._write_epoch, epoch, {"epoch": epoch + 1, "steps": steps, "median": median,
                                                "layers": layers, "tensors": tensors})

    def _write_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        writer = self.writer
        if writer is not None:
            with writer:
                for prefix, items in (("update_ratio", record["layers"]), ("update_ratio_tensor", record["tensors"])):
                    for name, ratio in items.items():
                        if ratio > 0 and math.isfinite(ratio):
                            writer.scalar(f"{prefix}/{name}", math.log10(ratio), epoch + 1,
                                          "log10 ||dw||/||w|| per step (recipe E18; healthy about -3)")
        self._add_record(record)

    def _remove_hooks(self) -> None:
        if not self._hooks:
            return
        for variable, hook in self._hooks:
            _remove_hook(variable, hook)
        self._hooks = []
        if self.model is not None:
            _retrace(self.model)

    def on_train_end(self, logs=None):
        self._remove_hooks()
        super().on_train_end(logs)


# ---------------------------------------------------------------- losses
class LossMonitor(MonitorCallback):
    """The loss of every batch and its wiggle (recipe E16), the train/validation gap (E17).

    Each step's loss is read inside the compiled step from the model's loss
    tracker (so `steps_per_execution` keeps its speed); models whose
    `train_step` does not use it get one value per execution (the mean of
    its steps, recovered from Keras' running mean). Adds to the epoch logs
    `loss_noise` (see `loss_noise`: the relative step-to-step jitter) and,
    with accuracies, `accuracy_gap` (train minus validation). Record
    (`loss.jsonl`): `{"epoch", "losses": [...], "mean", "noise", "loss",
    "val_loss", "accuracy", "val_accuracy", "accuracy_gap"}`. TensorBoard:
    `batch_loss` against the global step, `loss_noise` and `accuracy_gap`
    per epoch.

    Args:
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.
        max_losses: Keep at most this many batch losses per epoch in the
            record (evenly spaced; all are used for `noise`). Defaults to `1000`.

    Example:

    ```python
    monitor = LossMonitor()
    model.fit(x, y, epochs=2, callbacks=[monitor])
    len(monitor.records[0]["losses"])   # steps in epoch 1
    ```
    """

    record_name = "loss"

    def __init__(self, log_dir=None, record_dir=None, max_losses: int = 1000):
        super().__init__(log_dir, record_dir)
        if not isinstance(max_losses, int) or max_losses <= 0:
            raise ValueError(f"Argument `max_losses` must be an integer > 0. Received: max_losses={max_losses}")
        self.max_losses = max_losses
        self._hook = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._unhook()
        self._losses: list[float] = []
        self._running = (0, 0.0)
        self._global_step = 0
        tracker = getattr(self.model, "_loss_tracker", None)
        own_step = type(self.model).train_step is not keras.Model.train_step
        weights = self.model.trainable_weights
        self._in_step = (tracker is not None and not own_step and bool(weights)
                         and not _is_multi_replica(self.model) and keras.backend.backend() == "tensorflow")
        if self._in_step:
            capacity = int(getattr(self.model, "steps_per_execution", 1) or 1) + 1
            self._capacity = capacity
            # The tracker's running (total, count) after each step; the losses are their differences.
            self._buffer = tf.Variable(tf.zeros((capacity, 2), tf.float32), trainable=False)
            self._pos = tf.Variable(0, dtype=tf.int32, trainable=False)
            self._take = _read_and_reset(self._pos, self._buffer)
            self._last = np.zeros(2)
            buffer, pos = self._buffer, self._pos

            def fn(value):
                pair = tf.stack([tf.cast(tracker.total, tf.float32), tf.cast(tracker.count, tf.float32)])
                buffer.scatter_nd_update(tf.reshape(pos % capacity, [1, 1]), pair[None])
                pos.assign_add(1)

            # The tracker is updated before the optimizer step: any variable's hook sees this step's loss.
            self._hook = (weights[-1], _install_hook(weights[-1], fn))
            _retrace(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._losses = []
        self._running = (0, 0.0)
        if self._in_step:
            self._last = np.zeros(2)  # fit() has just reset the tracker (`_pos` is 0: read and reset below)

    def on_train_batch_end(self, batch, logs=None):
        if self._in_step:
            pos, buffer = self._take()
            n = min(int(pos), self._capacity)
            values = []
            if n:
                pairs = np.vstack([self._last[None], buffer.numpy()[:n].astype(np.float64)])
                self._last = pairs[-1]
                values = (np.diff(pairs[:, 0]) / np.maximum(np.diff(pairs[:, 1]), 1e-12)).tolist()
        else:
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            loss = float(np.asarray(loss))
            steps_before, mean_before = self._running
            steps = batch + 1
            # Keras logs the running mean of the epoch: recover this execution's mean.
            values = [(loss * steps - mean_before * steps_before) / max(steps - steps_before, 1)]
            self._running = (steps, loss)
        self._losses.extend(values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        losses = np.asarray(self._losses, dtype=np.float64)
        noise = loss_noise(losses)
        record: dict[str, Any] = {"epoch": epoch + 1}
        if len(losses) > self.max_losses:
            keep = np.linspace(0, len(losses) - 1, self.max_losses).round().astype(int)
            record["losses"] = losses[keep].tolist()
        else:
            record["losses"] = losses.tolist()
        record["mean"] = float(np.mean(losses)) if len(losses) else math.nan
        record["noise"] = noise
        logs["loss_noise"] = noise
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            if key in logs:
                record[key] = float(np.asarray(logs[key]))
        if "accuracy" in logs and "val_accuracy" in logs:
            gap = float(np.asarray(logs["accuracy"])) - float(np.asarray(logs["val_accuracy"]))
            logs["accuracy_gap"] = gap
            record["accuracy_gap"] = gap
        self._submit(self._write_epoch, epoch, record, list(self._losses), self._global_step)
        self._global_step += len(self._losses)

    def _write_epoch(self, epoch: int, record: dict[str, Any], losses: list[float], first_step: int) -> None:
        writer = self.writer
        if writer is not None:
            for i, value in enumerate(losses):
                if math.isfinite(value):
                    writer.scalar("batch_loss", value, first_step + 1 + i, "training loss of each batch (E16)")
            if math.isfinite(record["noise"]):
                writer.scalar("loss_noise", record["noise"], epoch + 1, "std of the step-to-step change of log loss (E16)")
            if "accuracy_gap" in record:
                writer.scalar("accuracy_gap", record["accuracy_gap"], epoch + 1, "train minus validation accuracy (E17)")
        self._add_record(record)

    def _unhook(self) -> None:
        if self._hook is not None:
            _remove_hook(*self._hook)
            self._hook = None
            if self.model is not None:
                _retrace(self.model)

    def on_train_end(self, logs=None):
        self._unhook()
        super().on_train_end(logs)


# ----------------------------------------------------------------- probe
_ACT_SAMPLE = 16384  # activation values kept for a layer's histogram (a strided sample)
_HIST_SAMPLE = 1 << 18  # weights/gradients: at most this many values per histogram


def _np_histogram(values: np.ndarray) -> dict[str, list[float]]:
    """16-bin histogram of the finite values over their own range: `{"edges", "counts"}`.

    Counted with `np.bincount` (five times faster than `np.histogram` on
    small arrays, where its set-up dominates).
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    if values.size > _HIST_SAMPLE:
        values = values[:: values.size // _HIST_SAMPLE + 1]
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        return {"edges": [], "counts": []}
    low, high = float(values.min()), float(values.max())
    if not high > low:
        high = low + 1.0
    index = ((values - low) * (_HIST_BINS / (high - low))).astype(np.int64)
    counts = np.bincount(np.minimum(index, _HIST_BINS - 1), minlength=_HIST_BINS)
    step = (high - low) / _HIST_BINS
    return {"edges": [low + i * step for i in range(_HIST_BINS)] + [high], "counts": counts.tolist()}


class ProbeMonitor(MonitorCallback):
    """Activation, gradient and weight histograms per layer on a fixed probe batch (recipe E19).

    One extra compiled function runs the probe batch through the model
    (inference mode: no dropout, no batch-norm update) on a copy of its
    weights taken at the epoch's end, takes the gradients of the data loss
    for every trainable tensor and the unit statistics, and returns a few
    small arrays. Its first call (the tracing) and all the histograms and
    summaries run on the monitors' background thread (see the module
    docstring), so training goes on meanwhile; once traced, the function
    itself runs at the epoch's end, where it does not share TensorFlow's
    threads with a training step. Per layer with a nonlinearity: the fraction of dead ReLU units
    (<= 0 on the whole probe batch), of saturated tanh/sigmoid values
    (`|tanh| > 0.99`, sigmoid outside [0.01, 0.99]), the activations' std;
    per layer with weights: gradient and weight norms and RMS. Per-layer
    activations need a Functional or Sequential model; gradients and
    weights work for any model.

    Record (`probe.jsonl`): `{"epoch", "loss", "order": [layers with
    weights, input to output], "layers": {layer: {"kind", "dead_fraction",
    "saturated_fraction", "act_std", "act_hist"} or {"grad_norm", "grad_rms",
    "weight_norm", "weight_rms", "grad_hist", "weight_hist"}}}`; each
    `*_hist` is `{"edges", "counts"}` (16 bins, of the layer's largest
    tensor for gradients and weights). TensorBoard: histograms
    `activations/<layer>`, `gradients/<path>`, `weights/<path>`, scalars
    `dead_fraction/<layer>`, `saturated_fraction/<layer>`,
    `gradient_norm/<layer>`.

    Args:
        x: Inputs of the probe batch (e.g. 64 training examples, as `kerasguide run`).
        y: Their targets.
        every_epochs: Probe every N epochs (and at the last). Defaults to `1`.
        every_batches: Also probe every N executions (`on_train_batch_end`);
            None: only at epoch ends. Defaults to `None`.
        histograms: Write TensorBoard histograms (the record keeps its
            16-bin ones anyway). Defaults to `True`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.

    Example:

    ```python
    probe = ProbeMonitor(x_train[:256], y_train[:256])
    model.fit(x_train, y_train, epochs=3, callbacks=[probe])
    probe.records[-1]["layers"]["activation"]["dead_fraction"]
    ```
    """

    record_name = "probe"

    def __init__(self, x, y, every_epochs: int = 1, every_batches: int | None = None, histograms: bool = True,
                 log_dir=None, record_dir=None):
        super().__init__(log_dir, record_dir, every_epochs)
        if every_batches is not None and (not isinstance(every_batches, int) or every_batches <= 0):
            raise ValueError(f"Argument `every_batches` must be None or an integer > 0. Received: every_batches={every_batches}")
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"Arguments `x` and `y` must be non-empty and of equal length. Received: {len(x)} and {len(y)}")
        self.x = x
        self.y = y
        self.every_batches = every_batches
        self.histograms = histograms
        self._function = None
        self._function_model = None
        self._traced = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._batches = 0
        self._probe_step = 0
        self._failed = False
        if self._function_model is not self.model:
            self._traced = False
            self._build()

    def _build(self) -> None:
        model = self.model
        self._function_model = model
        outputs = set(id(t) for t in (getattr(model, "outputs", None) or []))
        probed = []
        for layer in model.layers:
            kind = activation_kind(layer)
            if kind is None or kind == "softmax" or isinstance(layer, keras.Model):
                continue
            try:
                out = layer.output
            except (AttributeError, ValueError):
                continue
            if id(out) in outputs:
                continue
            probed.append((layer.name, kind, out))
        submodel = None
        if probed and getattr(model, "inputs", None):
            try:
                submodel = keras.Model(model.inputs, [o for _, _, o in probed] + list(model.outputs))
            except (ValueError, TypeError, AttributeError):
                submodel = None
        self._probed = [(name, kind) for name, kind, _ in probed] if submodel is not None else []
        weights = list(model.trainable_weights)
        trainable_ids = {id(w) for w in weights}
        # Every variable the forward pass reads (batch-norm statistics too), trainable ones first.
        variables = weights + [v for v in model.non_trainable_weights if id(v) not in trainable_ids]
        n_weights = len(weights)
        owners = _layer_of_variables(model)
        self._order: list[str] = []
        groups: dict[str, list[int]] = {}
        for i, variable in enumerate(weights):
            layer = owners.get(id(variable), _var_name(variable).split("/")[0])
            if layer not in groups:
                self._order.append(layer)
            groups.setdefault(layer, []).append(i)
        sizes = [int(np.prod(w.shape)) for w in weights]
        kernels = [max(groups[layer], key=lambda i: sizes[i]) for layer in self._order]
        n_act = len(self._probed)
        probed_kinds = list(self._probed)
        names = [_var_name(v) for v in weights]
        x_probe = tf.constant(self.x)
        y_probe = tf.constant(self.y)
        loss_fn = getattr(model, "loss", None)
        if isinstance(loss_fn, str):
            loss_fn = keras.losses.get(loss_fn)
        single = len(getattr(model, "outputs", None) or [None]) == 1
        n_examples = len(self.x)

        def snapshot():
            # The variables' values now: training goes on while the background thread probes them.
            return [tf.identity(v.value) for v in variables]

        def probe(values):
            # The model on `values` (a snapshot), not on its live variables (Keras' StatelessScope).
            trainable = values[:n_weights]
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                with tf.GradientTape() as tape:
                    tape.watch(trainable)
                    if submodel is not None:
                        outs = submodel(x_probe, training=False)
                        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
                        acts, y_pred = outs[:n_act], outs[n_act]
                    else:
                        acts, y_pred = [], model(x_probe, training=False)
                    if callable(loss_fn) and single:
                        # The data loss alone: the gradients the data push through the layers (E19).
                        loss = tf.reduce_mean(loss_fn(y_probe, y_pred))
                    else:
                        loss = model.compute_loss(x=x_probe, y=y_probe, y_pred=y_pred, training=False)
            grads = tape.gradient(loss, trainable)
            grads = [tf.zeros_like(w, tf.float32) if g is None else tf.cast(g, tf.float32)
                     for g, w in zip(grads, trainable, strict=True)]
            stats, samples = [], []
            for (_, kind), act in zip(probed_kinds, acts, strict=True):
                units = tf.reshape(tf.cast(act, tf.float32), [-1, act.shape[-1]])
                dead = saturated = tf.constant(0.0)
                if kind in _RELU_LIKE:
                    dead = tf.reduce_mean(tf.cast(tf.reduce_all(units <= 0.0, axis=0), tf.float32))
                elif kind in _TANH_LIKE:
                    saturated = tf.reduce_mean(tf.cast(tf.abs(units) > 0.99, tf.float32))
                elif kind in _SIGMOID_LIKE:
                    saturated = tf.reduce_mean(tf.cast((units > 0.99) | (units < 0.01), tf.float32))
                stats.append(tf.stack([dead, saturated, tf.math.reduce_std(units)]))
                size = int(np.prod(act.shape[1:])) * n_examples
                samples.append(tf.reshape(units, [-1])[:: max(1, size // _ACT_SAMPLE)])
            return loss, (tf.stack(stats) if stats else tf.zeros([0, 3])), samples, grads

        # One compiled function for the forward pass to every activation, the
        # backward pass to every gradient and the unit statistics; histograms
        # are counted in NumPy (in the graph they would triple its tracing
        # time). Autograph is off: nothing here needs it, and it halves tracing.
        # The probe is traced at its first call, on the background thread; the small
        # snapshot function now, so that the training thread never traces it mid-fit.
        self._snapshot = tf.function(snapshot, autograph=False)
        self._snapshot.get_concrete_function()
        self._function = tf.function(probe, autograph=False)
        self._n_weights = n_weights
        self._groups = groups
        self._kernels = dict(zip(self._order, kernels, strict=True))
        self._sizes = sizes
        self._names = names

    def on_train_batch_end(self, batch, logs=None):
        if self.every_batches is None:
            return
        self._batches += 1
        if self._batches % self.every_batches == 0:
            self._probe(None)

    def on_epoch_end(self, epoch, logs=None):
        if self._due(epoch):
            self._probe(epoch)

    def _probe(self, epoch: int | None) -> None:
        if self._failed:
            return
        self._probe_step += 1
        step = epoch + 1 if epoch is not None else self._probe_step
        values = self._snapshot()  # one compiled call that copies the weights
        if not self._traced:
            # The first probe traces the function (0.1-0.2 s of Python): on the background thread,
            # while the next execution trains.
            self._submit(self._measure, epoch, step, values)
            return
        # Traced: the forward and backward pass run here, between two executions, at their own
        # cost. Run concurrently with a training step the two share TensorFlow's thread pools:
        # on mnist1d's CNN (64 examples) +17 ms an epoch in the background against +6 ms here;
        # on the digits MLP no difference showed through the noise.
        outputs = self._run(values)
        if outputs is not None:
            self._submit(self._measure, epoch, step, values, outputs)

    def _run(self, values):
        try:
            outputs = self._function(values)
        except Exception as error:  # an exotic model must not stop the training
            self._failed = True
            logger.warning("probe monitor disabled: %s: %s", type(error).__name__, error)
            return None
        self._traced = True
        return outputs

    def _measure(self, epoch: int | None, step: int, values, outputs=None) -> None:
        if self._failed:
            return
        if outputs is None:
            outputs = self._run(values)
            if outputs is None:
                return
        loss, act_stats, samples, grads = outputs
        act_stats = np.asarray(act_stats, dtype=np.float64)
        grads = [np.asarray(g) for g in grads]
        weights = [np.asarray(w) for w in values[: self._n_weights]]
        layers: dict[str, dict[str, Any]] = {}
        for i, (name, kind) in enumerate(self._probed):
            layers[name] = {"kind": kind, "dead_fraction": act_stats[i, 0], "saturated_fraction": act_stats[i, 1],
                            "act_std": act_stats[i, 2], "act_hist": _np_histogram(np.asarray(samples[i]))}
        grad_hists = [_np_histogram(g) for g in grads]
        weight_hists = [_np_histogram(w) for w in weights]
        for layer in self._order:
            idx = self._groups[layer]
            g2 = float(sum(np.sum(np.square(grads[i], dtype=np.float64)) for i in idx))
            w2 = float(sum(np.sum(np.square(weights[i], dtype=np.float64)) for i in idx))
            n = max(sum(self._sizes[i] for i in idx), 1)
            k = self._kernels[layer]
            layers.setdefault(layer, {}).update(
                grad_norm=math.sqrt(g2), grad_rms=math.sqrt(g2 / n), weight_norm=math.sqrt(w2),
                weight_rms=math.sqrt(w2 / n), grad_hist=grad_hists[k], weight_hist=weight_hists[k])
        writer = self.writer
        if writer is not None:
            with writer:
                self._write_summaries(writer, layers, grad_hists, weight_hists, step)
        if epoch is not None:
            self._add_record({"epoch": epoch + 1, "loss": float(loss), "order": self._order, "layers": layers})

    def _write_summaries(self, writer: EventWriter, layers, grad_hists, weight_hists, step: int) -> None:
        for name, kind in self._probed:
            entry = layers[name]
            if self.histograms:
                writer.histogram(f"activations/{name}", entry["act_hist"]["edges"], entry["act_hist"]["counts"],
                                 step, f"{kind} outputs on the probe batch (E19)")
            if kind in _RELU_LIKE:
                writer.scalar(f"dead_fraction/{name}", entry["dead_fraction"], step,
                              "ReLU units <= 0 on the whole probe batch (E19)")
            else:
                writer.scalar(f"saturated_fraction/{name}", entry["saturated_fraction"], step,
                              "values saturated at the nonlinearity's ends (E19)")
        for layer in self._order:
            writer.scalar(f"gradient_norm/{layer}", layers[layer]["grad_norm"], step,
                          "norm of the probe batch's data-loss gradient (E19)")
        if self.histograms:
            for i, name in enumerate(self._names):
                writer.histogram(f"gradients/{name}", grad_hists[i]["edges"], grad_hists[i]["counts"], step)
                writer.histogram(f"weights/{name}", weight_hists[i]["edges"], weight_hists[i]["counts"], step)


# ----------------------------------------------------------------- images
class FirstLayerImages(MonitorCallback):
    """The first layer's weights as images (recipe E20): smooth = healthy, noisy = unconverged.

    Every `every_epochs` epochs (and at the last) the kernel of the first
    dense or conv layer becomes a grid (see `weight_grid`): a dense layer's
    units reshaped to the input image, a conv layer's kernels. Logged as the
    TensorBoard image `first_layer` and written as
    `first_layer_epoch=NNN.png`. Record (`images.jsonl`): `{"epoch", "file",
    "layer", "tiles", "roughness"}` (`roughness`: about 1 for white noise,
    near 0 for smooth filters).

    Args:
        image_shape: `(h, w, c)` of a dense layer's flat inputs; None: from
            the model's input shape, or square. Defaults to `None`.
        every_epochs: Defaults to `5`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Folder for the PNG files and records. Defaults to `None`.

    Example:

    ```python
    images = FirstLayerImages(image_shape=(8, 8, 1), record_dir="monitor")
    model.fit(x, y, epochs=5, callbacks=[images])
    ```
    """

    record_name = "images"

    def __init__(self, image_shape: tuple[int, ...] | None = None, every_epochs: int = 5, log_dir=None,
                 record_dir=None):
        super().__init__(log_dir, record_dir, every_epochs)
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        self.last_grid: np.ndarray | None = None

    def _kernel(self):
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.Model):
                continue
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and len(kernel.shape) in (2, 3, 4):
                return layer, kernel
        return None, None

    def on_epoch_end(self, epoch, logs=None):
        if not self._due(epoch):
            return
        layer, kernel = self._kernel()
        if kernel is None:
            return
        shape = self.image_shape
        if shape is None:
            input_shape = getattr(self.model, "input_shape", None)
            if isinstance(input_shape, tuple) and len(input_shape) == 4:
                shape = tuple(input_shape[1:])
        # A copy of the kernel now; the grid, the PNG and the files on the background thread.
        self._submit(self._draw, epoch, layer.name, np.array(kernel.value), shape)

    def _draw(self, epoch: int, layer_name: str, kernel: np.ndarray, shape) -> None:
        grid, tiles = weight_grid(kernel, shape)
        self.last_grid = grid
        record = {"epoch": epoch + 1, "layer": layer_name, "tiles": int(len(tiles)), "roughness": roughness(tiles)}
        # zlib level 1: a third of the default's time (4 ms -> 1.5 ms for a 290x290 grid), 15 % larger.
        png = tf.io.encode_png(grid, compression=1).numpy()
        if self.writer is not None:
            self.writer.image("first_layer", png, grid.shape[0], grid.shape[1], epoch + 1,
                              f"{layer_name}'s weights, one tile per unit/filter (E20)")
        if self.record_dir is not None:
            name = f"first_layer_epoch={epoch + 1:03d}.png"
            self.record_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.record_dir / name, png)
            record["file"] = name
        self._add_record(record)


# --------------------------------------------------------------- the guard
class DivergenceGuard(MonitorCallback):
    """Stop training cleanly when the loss diverges: non-finite, or smoothed above `factor` x its start.

    Checked after every execution (every batch with
    `steps_per_execution=1`) on that execution's mean loss, smoothed by a
    bias-corrected exponential moving average; the start is the first
    finite value. On divergence it sets `model.stop_training`, keeps the
    evidence in `self.reason` and `self.evidence` (and `divergence.json`),
    and calls `on_diverge(reason)`.

    Args:
        factor: Smoothed loss above `factor` x the starting loss diverges.
            Defaults to `4.0`.
        smoothing: EMA factor of the smoothed loss. Defaults to `0.9`.
        on_diverge: Called with the reason when it stops. Defaults to `None`.
        record_dir: Folder for `divergence.json`. Defaults to `None`.

    Example:

    ```python
    guard = DivergenceGuard()
    model.fit(x, y, epochs=10, callbacks=[guard])
    guard.diverged, guard.reason
    ```
    """

    record_name = "divergence"

    def __init__(self, factor: float = 4.0, smoothing: float = 0.9, on_diverge: Callable[[str], None] | None = None,
                 record_dir=None):
        super().__init__(None, record_dir)
        if not factor > 1.0:
            raise ValueError(f"Argument `factor` must be > 1. Received: factor={factor}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"Argument `smoothing` must be in [0, 1). Received: smoothing={smoothing}")
        self.factor = float(factor)
        self.smoothing = float(smoothing)
        self.on_diverge = on_diverge

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.diverged = False
        self.reason: str | None = None
        self.evidence: dict[str, float] = {}
        self._start = math.nan
        self._avg = 0.0
        self._n = 0
        self._step = 0
        self._epoch = 0
        self._running = (0, 0.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._running = (0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.diverged:
            return
        loss = float(np.asarray(loss))
        steps_before, mean_before = self._running
        steps = batch + 1
        value = (loss * steps - mean_before * steps_before) / max(steps - steps_before, 1)
        self._running = (steps, loss)
        self._step += steps - steps_before
        self.check(value)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not self.diverged and not math.isfinite(float(np.asarray(loss))):
            self._stop(f"the training loss became {float(np.asarray(loss))} in epoch {epoch + 1}", float(np.asarray(loss)))

    def check(self, value: float) -> bool:
        """Feed one loss value; returns True (and stops training) when it diverges."""
        if self.diverged:
            return True
        if not math.isfinite(value):
            self._stop(f"the training loss became {value} at step {self._step} (epoch {self._epoch + 1})", value)
            return True
        self._n += 1
        self._avg = self.smoothing * self._avg + (1.0 - self.smoothing) * value
        smoothed = self._avg / (1.0 - self.smoothing ** self._n) if self.smoothing > 0 else value
        if not math.isfinite(self._start):
            self._start = value
            return False
        if self._start > 0 and smoothed > self.factor * self._start:
            self._stop(f"the smoothed training loss {smoothed:.4g} rose above {self.factor:g}x its start "
                       f"{self._start:.4g} at step {self._step} (epoch {self._epoch + 1})", value, smoothed)
            return True
        return False

    def _stop(self, reason: str, value: float, smoothed: float = math.nan) -> None:
        self.diverged = True
        self.reason = reason
        self.evidence = {"start_loss": self._start, "loss": value, "smoothed_loss": smoothed,
                         "step": float(self._step), "epoch": float(self._epoch + 1), "factor": self.factor}
        if self.model is not None:
            self.model.stop_training = True
        logger.warning("divergence guard: %s; training stopped", reason)
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.record_dir / "divergence.json", {"reason": reason, "evidence": self.evidence})
        if self.on_diverge is not None:
            self.on_diverge(reason)


# ----------------------------------------------------------- the set of them
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


# ------------------------------------------------------------ the pipeline
def pipeline_stage(ctx) -> None:
    """The pipeline's "monitors" stage: the config's `[monitor]` callbacks into `ctx.callbacks`.

    Summaries go to the run's `tb/monitor`, records to `monitor/`. The
    divergence guard ends the run with status `diverged` (not a crash):
    it sets `ctx.status`, `ctx.stop_reason` and `model.stop_training`.
    """
    cfg = ctx.config.monitor
    if not cfg.enabled:
        return
    ds = ctx.dataset
    n = min(cfg.probe_batch, len(ds.x_train))
    keep = np.sort(np.random.default_rng(ctx.config.train.seed).choice(len(ds.x_train), size=n, replace=False))

    def on_diverge(reason: str) -> None:
        ctx.status = "diverged"
        ctx.stop_reason = f"divergence guard: {reason}"

    ctx.callbacks.extend(default_monitors(
        ds.x_train[keep], ds.y_train[keep],
        log_dir=ctx.run_dir.tb_dir / "monitor",
        record_dir=ctx.run_dir.monitor_dir,
        image_shape=ds.image_shape,
        update_ratio_every=cfg.update_ratio_every,
        histogram_every_epochs=cfg.histogram_every_epochs,
        images_every_epochs=cfg.images_every_epochs,
        divergence_factor=cfg.divergence_factor,
        on_diverge=on_diverge,
    ))


def finish_monitors(callbacks) -> None:
    """Wait for the monitors' background work and write their records: what `on_train_end` does.

    For a fit that ended by an exception (Ctrl-C, SIGTERM, a failure), where
    Keras never calls `on_train_end`: the records of the epochs done reach
    the disk before anything reads them.
    """
    for callback in callbacks:
        if isinstance(callback, MonitorCallback):
            callback._drain()
            callback._write_records()
    for writer in list(_WRITERS.values()):  # the schedule's and the epoch scalars' writers too
        writer.flush()


def diagnosis_stage(ctx) -> None:
    """The pipeline's "diagnosis" stage: write diagnosis.json, log the findings and show them in TensorBoard."""
    from kerasguide.diagnosis import findings_markdown, write_diagnosis

    finish_monitors(ctx.callbacks)  # an interrupted fit never ran on_train_end
    findings = write_diagnosis(ctx.run_dir)
    for finding in findings:
        log = logger.warning if finding.severity in ("warning", "error") else logger.info
        log("diagnosis: %s %s: %s", finding.severity, finding.code, finding.advice)
    if not findings:
        logger.info("diagnosis: nothing wrong found")
    writer = shared_writer(ctx.run_dir.tb_dir / "monitor")
    writer.text("diagnosis", findings_markdown(findings), max(1, len(ctx.history)),
                "what kerasguide diagnose found in this run (recipes E16-E20)")
    release_writer(ctx.run_dir.tb_dir / "monitor", force=True)
