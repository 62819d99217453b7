"""The monitors' pure maths on NumPy arrays: loss wiggle, image roughness, weight grids, histograms, PNG.

This module imports NumPy and the standard library only (no TensorFlow, no Keras).
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np

from kerasguide.activations import RELU_LIKE, SIGMOID_LIKE, TANH_LIKE

__all__ = [
    "round_floats",
    "finite_or_none",
    "loss_noise",
    "roughness",
    "weight_grid",
    "histogram",
    "png_bytes",
    "unit_stats",
]

HIST_BINS = 16
HIST_SAMPLE = 1 << 18  # weights/gradients: at most this many values per histogram (a strided sample)
_HIST_BINS, _HIST_SAMPLE = HIST_BINS, HIST_SAMPLE


def round_floats(value: Any, digits: int = 6) -> Any:
    """Floats to `digits` significant digits (compact JSON); NaN/Inf kept for the writer to null."""
    kind = type(value)
    if kind is float:  # the common cases first, by exact type: this runs on every number of every record
        return float(format(value, f".{digits}g")) if math.isfinite(value) else value
    if kind is int or kind is str or value is None:
        return value
    if kind is list and all(type(v) is int for v in value):  # a histogram's counts
        return value
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(v, digits) for v in value]
    if isinstance(value, float):
        return round_floats(float(value), digits)
    if isinstance(value, np.floating):
        return round_floats(float(value), digits)
    if isinstance(value, np.integer):
        return int(value)
    return value


def finite_or_none(value: Any) -> Any:
    """`value` with NaN/Inf floats (in dicts and lists) replaced by None."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k: finite_or_none(v) for k, v in value.items()}
    if kind is list:
        if all(type(v) is int for v in value) or all(type(v) is float and math.isfinite(v) for v in value):
            return value  # a histogram's counts, a list of finite numbers: as they are
        return [finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    values = np.asarray(losses, dtype=np.float64).ravel()
    values = values[np.isfinite(values) & (values > 0)]
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
    # cells out (no Python loop over the tiles), the pad adds the top and left borders.
    cells = np.ones((rows_n * cols_n, h + 1, w + 1, c))
    cells[:n, :h, :w] = norm
    grid = cells.reshape(rows_n, cols_n, h + 1, w + 1, c).transpose(0, 2, 1, 3, 4)
    grid = np.pad(grid.reshape(rows_n * (h + 1), cols_n * (w + 1), c), ((1, 0), (1, 0), (0, 0)), constant_values=1.0)
    if scale <= 0:
        scale = max(1, min(16, 320 // max(grid.shape[1], 1)))
    grid = (grid * 255).round().astype(np.uint8)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1), tiles


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """A `uint8` image `(H, W, 1 or 3)` as PNG bytes, each row filtered "Up" (its change from the row above).

    Written by hand for `weight_grid`'s enlarged grids: a row repeated by the enlargement filters to
    zeros, which zlib packs at once, where `tf.io.encode_png` tries every filter on every row (timings in
    benchmarks/README.md, "Monitors: where the time goes").

    Example:

    >>> png_bytes(np.zeros((2, 3, 1), np.uint8))[:4]
    b'\\x89PNG'
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    height, width, channels = image.shape
    if channels not in (1, 3):
        raise ValueError(f"Argument `image` must have 1 or 3 channels. Received: shape={image.shape}")
    rows = image.reshape(height, width * channels)
    raw = np.empty((height, 1 + width * channels), np.uint8)
    raw[:, 0] = 2  # filter type "Up"
    raw[0, 0] = 0  # the first row as it is
    raw[:, 1:] = rows
    raw[1:, 1:] -= rows[:-1]  # modulo 256, as PNG's filter is
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + _png_chunk(b"IEND", b""))


def histogram(values: np.ndarray) -> dict[str, list[float]]:
    """16-bin histogram of the finite values over their own range: `{"edges", "counts"}`.

    Counted with `np.bincount`: on small arrays `np.histogram`'s set-up dominates.
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


def unit_stats(values: np.ndarray, kind: str | None, saturation: float = 0.99) -> dict[str, float]:
    """Dead fraction (units <= 0 on the whole batch) and saturated fraction of one layer's output.

    The NumPy reference of what `ProbeMonitor` computes in its compiled function.
    """
    units = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
    stats = {"mean": float(units.mean()), "std": float(units.std()), "dead_fraction": 0.0, "saturated_fraction": 0.0}
    if kind in RELU_LIKE:
        stats["dead_fraction"] = float(np.mean(np.all(units <= 0.0, axis=0)))
    elif kind in TANH_LIKE:
        stats["saturated_fraction"] = float(np.mean(np.abs(units) > saturation))
    elif kind in SIGMOID_LIKE:
        stats["saturated_fraction"] = float(np.mean((units > saturation) | (units < 1.0 - saturation)))
    return stats
