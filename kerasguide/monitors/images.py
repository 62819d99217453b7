"""`FirstLayerImages`: the first layer's weights as an image grid, in TensorBoard and as PNG files (recipe E20)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kerasguide._logging import get_logger
from kerasguide.io import atomic_write_bytes
from kerasguide.monitors.base import MonitorCallback
from kerasguide.monitors.epoch_end import epoch_end
from kerasguide.monitors.signals import png_bytes, roughness, weight_grid

__all__ = ["FirstLayerImages"]

logger = get_logger()

# The layers whose kernel is a bank of filters over the input: one tile per unit or filter.
_DRAWN = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv1DTranspose,
          keras.layers.Conv2DTranspose)
# Layers in front of the first filters that keep the inputs' layout: looked through.
_PASS_THROUGH = (keras.layers.Normalization, keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                 keras.layers.GroupNormalization, keras.layers.UnitNormalization)


class FirstLayerImages(MonitorCallback):
    """The first layer's weights as images (recipe E20): smooth = healthy, noisy = unconverged.

    Every `every_epochs` epochs (and at the last) the kernel of the first
    dense or conv layer becomes a grid (see `weight_grid`): a dense layer's
    units reshaped to the input image, a conv layer's kernels. Logged as the
    TensorBoard image `first_layer` and written as
    `first_layer_epoch=NNN.png`. Record (`images.jsonl`): `{"epoch", "file",
    "layer", "tiles", "roughness"}` (`roughness`: about 1 for white noise,
    near 0 for smooth filters). When the first layer with weights is not a
    dense or conv layer (an `Embedding`, an `LSTM`, a normalization layer)
    there is nothing to draw: no image, no record, the reason in `skipped`
    and the log.

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
        self.skipped: str | None = None  # why nothing is drawn, once known

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.skipped: str | None = None
        # Looked up once a fit (the layers do not change during it); a model built by its first step
        # (subclassed) at the first epoch's end.
        self._found = self._kernel() if self.model.weights else None
        self._key = f"images/{id(self)}"
        kernel = None if self._found is None else self._found[1]
        if kernel is not None:
            # The kernel is copied in the epoch's one compiled call of every monitor (`epoch_end`), at
            # every call (a small copy): the set of parts due stays the same, its function traced once.
            epoch_end(self.model).add(self._key, lambda reset: tf.identity(kernel.value))

    def on_train_end(self, logs=None):
        epoch_end(self.model).remove(self._key)
        super().on_train_end(logs)

    def _kernel(self):
        """The first layer with weights, and its kernel when it is a dense or conv layer; else a reason."""
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, (keras.Model, *_PASS_THROUGH)) or not layer.weights:
                continue
            # The first layer with weights is the one that reads the inputs. Only a dense or conv
            # layer's kernel holds one filter per unit over the input: an embedding's rows are tokens,
            # a recurrent kernel mixes the gates, a normalization layer has no filters.
            kernel = getattr(layer, "kernel", None)
            if not isinstance(layer, _DRAWN) or kernel is None or len(kernel.shape) not in (2, 3, 4):
                return layer, None, (f"the first layer with weights, {layer.name} ({type(layer).__name__}), "
                                     "has no dense or conv kernel to draw")
            return layer, kernel, None
        return None, None, "the model has no layer with weights"

    def on_epoch_end(self, epoch, logs=None):
        if self._due(epoch):
            self._capture(epoch, at_epoch_end=True)

    def _capture(self, epoch: int, at_epoch_end: bool = False) -> None:
        """Copy the kernel now (in the epoch's call at an epoch's end) and draw it on the background thread."""
        if self.skipped:
            return
        if self._found is None:
            self._found = self._kernel()
            at_epoch_end = False  # not a part of the epoch's call: copied on its own
        layer, kernel, reason = self._found
        if kernel is None:
            self.skipped = reason
            logger.info("first-layer images skipped: %s (recipe E20)", reason)
            return
        shape = self.image_shape
        if shape is None:
            input_shape = getattr(self.model, "input_shape", None)
            if isinstance(input_shape, tuple) and len(input_shape) == 4:
                shape = tuple(input_shape[1:])
        # A copy of the kernel now; the grid, the PNG and the files on the background thread.
        value = epoch_end(self.model).take(self._key, epoch) if at_epoch_end else None
        value = np.array(kernel.value) if value is None else value
        self._submit(self._draw, epoch, layer.name, value, shape)

    def _draw(self, epoch: int, layer_name: str, kernel: np.ndarray, shape) -> None:
        grid, tiles = weight_grid(kernel, shape)
        self.last_grid = grid
        record = {"epoch": epoch + 1, "layer": layer_name, "tiles": int(len(tiles)), "roughness": roughness(tiles)}
        png = png_bytes(grid)  # encoded by hand: faster than `tf.io.encode_png` on an enlarged grid
        if self.writer is not None:
            self.writer.image("first_layer", png, grid.shape[0], grid.shape[1], epoch + 1,
                              f"{layer_name}'s weights, one tile per unit/filter (E20)")
        if self.record_dir is not None:
            name = f"first_layer_epoch={epoch + 1:03d}.png"
            self.record_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.record_dir / name, png)
            record["file"] = name
        self._add_record(record)
