"""Averaged weights (recipe J35): the optimizer's EMA used for evaluation, and Polyak/SWA averaging.

"Maintain a second copy of the network's weights in memory that maintains an
exponentially decaying sum of previous weights during training ... this
smoothed version of the weights almost always achieves better validation
error." Keras' optimizers keep that copy (`use_ema=True`, config
`optimizer.ema`); `EMAWeights` makes it the copy that is validated each
epoch, checkpointed and kept at the end. `WeightAveraging` is the plain
(equal-weight) average of the weights at the end of the last N epochs.

`SnapshotCheckpoints` keeps the last epochs' (or cycles') weights for a
snapshot ensemble (J34).

Example:

```python
model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss=..., metrics=...)
model.fit(x, y, validation_data=(xv, yv), callbacks=[EMAWeights()])
# val_* metrics were computed with the averaged weights; the model now holds them.
```
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasguide.training import save_model_atomic

__all__ = ["EMAWeights", "WeightAveraging", "SnapshotCheckpoints", "ema_variables", "averaging_callbacks"]

logger = logging.getLogger("kerasguide")


def _base_optimizer(model: keras.Model):
    optimizer = model.optimizer
    return getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps the real one


def ema_variables(model: keras.Model) -> list[tuple[Any, Any]]:
    """`(variable, its moving average)` pairs of a model compiled with `use_ema=True`.

    Empty before the optimizer is built (before the first training step).
    Raises `ValueError` when the optimizer does not keep an EMA.
    """
    optimizer = _base_optimizer(model)
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        raise ValueError(
            "EMA weights need an optimizer with `use_ema=True` (config: [optimizer] ema = true). "
            f"Received: use_ema={getattr(optimizer, 'use_ema', None)}"
        )
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        return []
    return list(zip(optimizer._trainable_variables, averages, strict=True))


class EMAWeights(keras.callbacks.Callback):
    """Validate, checkpoint and keep the optimizer's exponential moving average of the weights.

    Before every validation pass the EMA weights are put in the model and the
    raw ones put back afterwards, so the `val_*` metrics are those of the
    averaged weights. With `swap_on_epoch` the EMA weights also stay in the
    model from the end of each epoch to the start of the next, so callbacks
    placed after this one (best checkpoint, snapshots) see and save them.
    When `fit` ends the optimizer writes the EMA into the model
    (`finalize_variable_values`): the model keeps the averaged weights.

    Written instead of using `keras.callbacks.SwapEMAWeights` as is: that
    callback swaps the two copies in place, and when training stops before
    the last epoch (EarlyStopping, the divergence guard) Keras'
    `finalize_variable_values` then copies the *raw* weights, parked in the
    EMA slot, over the model, and the average is lost. This one keeps the raw
    weights in host memory instead and never touches the EMA variables.

    Args:
        swap_on_epoch: Keep the EMA weights in the model between epochs, for
            the callbacks after this one. Defaults to `True`.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True), loss="mse")
    model.fit(x, y, validation_split=0.2, epochs=3, callbacks=[EMAWeights()])
    ```
    """

    def __init__(self, swap_on_epoch: bool = True):
        super().__init__()
        self.swap_on_epoch = bool(swap_on_epoch)
        self._raw: list[np.ndarray] | None = None
        self._hold = False

    def get_config(self) -> dict[str, Any]:
        return {"swap_on_epoch": self.swap_on_epoch}

    # -- the swap: raw values to host memory, EMA into the model, and back.
    def _put_ema(self) -> None:
        if self._raw is not None:
            return
        pairs = ema_variables(self.model)
        if not pairs:  # the optimizer is not built yet: nothing to average
            return
        self._raw = [np.array(keras.ops.convert_to_numpy(var)) for var, _ in pairs]
        for var, average in pairs:
            var.assign(average)

    def _put_raw(self) -> None:
        if self._raw is None:
            return
        for (var, _), value in zip(ema_variables(self.model), self._raw, strict=True):
            var.assign(value)
        self._raw = None

    @property
    def ema_in_model(self) -> bool:
        """True while the model holds the EMA weights and the raw ones are parked here."""
        return self._raw is not None

    def on_train_begin(self, logs=None):
        ema_variables(self.model)  # fail early, with a message, without use_ema
        self._raw = None
        self._hold = False

    def on_epoch_begin(self, epoch, logs=None):
        self._hold = False
        self._put_raw()

    def on_test_begin(self, logs=None):
        self._put_ema()

    def on_test_end(self, logs=None):
        if not self._hold:
            self._put_raw()

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._put_ema()
            self._hold = True

    def on_train_end(self, logs=None):
        # `fit` has already written the EMA into the model (finalize_variable_values);
        # the raw copy parked here is simply dropped.
        self._raw = None
        self._hold = False


class WeightAveraging(keras.callbacks.Callback):
    """Plain (Polyak / SWA-style) average of the weights at the end of the last `epochs` epochs.

    At the end of training the model's weights are replaced by the equal-weight
    average of the weights it had at the end of each of the last `epochs`
    epochs (all weights, including BatchNorm's moving statistics, which are
    averaged too rather than recomputed). The per-epoch `val_*` metrics are
    those of the raw weights; evaluate the model after `fit` for the average.
    If training stops early, whatever epochs were collected are averaged.

    Args:
        epochs: How many final epochs to average. Defaults to `5`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[WeightAveraging(epochs=5)])
    model.evaluate(xv, yv)  # the average of epochs 16..20
    ```
    """

    def __init__(self, epochs: int = 5):
        super().__init__()
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs <= 0:
            raise ValueError(f"Argument `epochs` must be an integer > 0. Received: epochs={epochs!r}")
        self.epochs = int(epochs)

    def get_config(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def on_train_begin(self, logs=None):
        self._sum: list[np.ndarray] | None = None
        self.averaged = 0

    def on_epoch_end(self, epoch, logs=None):
        total = (self.params or {}).get("epochs") or 0
        if epoch < total - self.epochs:
            return
        weights = self.model.get_weights()
        if self._sum is None:
            self._sum = [np.array(w, dtype=np.float64) for w in weights]
        else:
            for acc, w in zip(self._sum, weights, strict=True):
                acc += w
        self.averaged += 1

    def on_train_end(self, logs=None):
        if not self.averaged:
            return
        current = self.model.get_weights()
        self.model.set_weights(
            [(acc / self.averaged).astype(w.dtype) for acc, w in zip(self._sum, current, strict=True)]
        )
        logger.info("weights averaged over the last %d epochs", self.averaged)


def averaging_callbacks(config) -> list[keras.callbacks.Callback]:
    """The callbacks `optimizer.ema` and `ensemble.average_epochs` ask for (order matters:
    `EMAWeights` first, so the averaging and checkpoints after it see the EMA weights)."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.optimizer.ema:
        callbacks.append(EMAWeights(swap_on_epoch=True))
    if config.ensemble.average_epochs:
        callbacks.append(WeightAveraging(config.ensemble.average_epochs))
    return callbacks


class SnapshotCheckpoints(keras.callbacks.Callback):
    """Keep the weights of the last `keep` epochs (or cycles) for a snapshot ensemble.

    "Taking different checkpoints of a single network over time ... and using
    those to form an ensemble ... very cheap." The snapshots are held in
    memory and written once, when training ends (also when it is stopped
    early), as `snapshot-epoch=NNN.keras` in `directory`; older snapshot
    files there are removed. With a cyclical learning rate, set `every` to
    the cycle length in epochs: the snapshots are then taken at the end of
    each cycle, where the learning rate is lowest (Huang et al., 2017).

    Args:
        directory: Where the snapshot files go.
        keep: How many snapshots to keep. Defaults to `5`.
        every: Take one snapshot every `every` epochs (counted from the
            first). Defaults to `1`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[SnapshotCheckpoints("ckpt", keep=5)])
    members = members_from_snapshots("ckpt")
    ```
    """

    def __init__(self, directory: str | os.PathLike[str], keep: int = 5, every: int = 1):
        super().__init__()
        for arg, value in (("keep", keep), ("every", every)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Argument `{arg}` must be an integer > 0. Received: {arg}={value!r}")
        self.directory = Path(directory)
        self.keep = int(keep)
        self.every = int(every)

    def on_train_begin(self, logs=None):
        self.snapshots: list[tuple[int, list[np.ndarray]]] = []
        self.written: list[Path] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        self.snapshots.append((epoch + 1, [np.array(w) for w in self.model.get_weights()]))
        del self.snapshots[: -self.keep]

    def on_train_end(self, logs=None):
        self.flush()

    def flush(self) -> list[Path]:
        """Write the snapshots held in memory; returns their paths."""
        if not self.snapshots:
            return []
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self.model.get_weights()
        paths = []
        try:
            for epoch, weights in self.snapshots:
                self.model.set_weights(weights)
                path = self.directory / f"snapshot-epoch={epoch:03d}.keras"
                save_model_atomic(self.model, path)
                paths.append(path)
        finally:
            self.model.set_weights(current)
        for old in self.directory.glob("snapshot-epoch=*.keras"):
            if old not in paths:
                old.unlink()
        self.written = paths
        return paths
