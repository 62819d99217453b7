"""TensorBoard event files written in plain Python, and one shared writer per folder.

Used by the monitors, the epoch-scalar callback, the schedules and the LR
finder. Importing it loads no TensorFlow (TensorBoard's protos are plain
protobuf); TensorBoard's `EventFileWriter` loads it on first use where it
is installed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer import record_writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

try:
    import crc32c as _crc32c
except ImportError:  # pragma: no cover - TensorBoard's own checksum then
    _crc32c = None

__all__ = ["EventWriter", "shared_writer", "acquire_writer", "release_writer", "flush_all", "writer_key"]


def _masked_crc32c(data: bytes) -> int:
    """TensorBoard's masked CRC-32C of a record, computed in C (the same value as its pure-Python one)."""
    x = _crc32c.crc32c(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


if _crc32c is not None:
    # TensorBoard's writer checksums every record in pure Python: about 6 ms for a first-layer image's
    # PNG, on the monitors' epoch-end work; the C library gives the same number in microseconds.
    record_writer.masked_crc32c = _masked_crc32c


class EventWriter:
    """TensorBoard summaries written in plain Python: scalars, histograms, images, text.

    Written by hand (on TensorBoard's own `EventFileWriter` and protos)
    because each `tf.summary` op costs an eager call or a tracing: a few
    dozen per epoch would be most of the monitors' budget on a small model.
    Events are queued and written by TensorBoard's background thread.

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
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self._writer = EventFileWriter(str(log_dir), flush_secs=30)
        self._described: set[str] = set()
        self._grouping = False
        self._pending: tuple[int, list] | None = None

    def _add(self, tag: str, tensor, plugin_metadata, step: int) -> None:
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
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)])
        self._add(tag, tensor,
                  lambda: scalar_metadata.create_summary_metadata(display_name=tag, description=description), step)

    def histogram(self, tag: str, edges, counts, step: int, description: str = "") -> None:
        """A histogram from bucket `edges` (k + 1 values) and `counts` (k)."""
        edges = np.asarray(edges, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.float64)
        if len(counts) == 0 or len(edges) != len(counts) + 1 or not np.all(np.isfinite(edges)):
            return
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1).astype("<f8")
        # The proto by hand: `make_tensor_proto` costs about 0.1 ms, a dozen of them per epoch.
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_content=buckets.tobytes())
        tensor.tensor_shape.dim.add(size=len(counts))
        tensor.tensor_shape.dim.add(size=3)
        self._add(tag, tensor,
                  lambda: histogram_metadata.create_summary_metadata(display_name=tag, description=description),
                  step)

    def image(self, tag: str, png: bytes, height: int, width: int, step: int, description: str = "") -> None:
        """One PNG image."""
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[str(width).encode(), str(height).encode(),
                                                                             png])
        tensor.tensor_shape.dim.add(size=3)
        self._add(tag, tensor,
                  lambda: image_metadata.create_summary_metadata(display_name=tag, description=description), step)

    def text(self, tag: str, text: str, step: int, description: str = "") -> None:
        """Markdown text (TensorBoard's Text tab)."""
        self._add(tag, tensor_util.make_tensor_proto(np.array(text.encode("utf-8"), dtype=object)),
                  lambda: text_metadata.create_summary_metadata(display_name=tag, description=description), step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# One writer per log directory, shared by every user: TensorBoard reads a
# run folder's event files one after the other, so two live writers in one
# folder would hide each other's data while training.
_WRITERS: dict[str, EventWriter] = {}
_USERS: dict[str, int] = {}


def _key(log_dir: str | Path) -> str:
    return str(Path(log_dir).resolve())


def writer_key(log_dir: str | Path) -> str:
    """The folder's key among the shared writers: `shared_writer(key)` finds its writer without a `resolve()`."""
    return _key(log_dir)


def shared_writer(log_dir: str | Path) -> EventWriter:
    """The `EventWriter` of a folder, created once and shared until `release_writer` closes it."""
    writer = _WRITERS.get(log_dir) if isinstance(log_dir, str) else None  # a resolved key: no `resolve()` call
    if writer is not None:
        return writer
    key = _key(log_dir)
    writer = _WRITERS.get(key)
    if writer is None:
        writer = EventWriter(key)
        _WRITERS[key] = writer
    return writer


def acquire_writer(log_dir: str | Path) -> None:
    """One user more of a folder's writer: `release_writer` closes it when the last user releases it.

    Creates nothing: the writer itself is made by the first `shared_writer` call.
    """
    key = _key(log_dir)
    _USERS[key] = _USERS.get(key, 0) + 1


def release_writer(log_dir: str | Path, force: bool = False) -> None:
    """One user less of a folder's writer; the last one (or `force`) closes it (no thread left behind)."""
    key = _key(log_dir)
    _USERS[key] = max(0, _USERS.get(key, 0) - 1)
    if (_USERS[key] == 0 or force) and key in _WRITERS:
        _WRITERS.pop(key).close()
        _USERS.pop(key, None)


def flush_all() -> None:
    """Flush every open shared writer (the monitors', the schedule's, the epoch scalars')."""
    for writer in list(_WRITERS.values()):
        writer.flush()
