"""Export a run's model for use elsewhere, with its preprocessing built in: it takes raw inputs.

`kerasguide export RUN_DIR --format keras|savedmodel|tflite` writes the
run's best (or last) checkpoint behind Keras layers that do what the saved
`preprocess.npz` does (recipe A2), so the artefact gives the outputs
`kerasguide predict` gives for the same raw inputs:

- `center` / `standardize`: a `keras.layers.Normalization` holding the
  training split's mean and variance (one per feature: every axis of an
  example kept);
- `pca` / `whiten`: `Flatten`, a `Normalization` that subtracts the mean,
  then a fixed `Dense` projection (the components, divided by the square
  roots of the eigenvalues plus epsilon for `whiten`), not trainable;
- `none` or no `preprocess.npz` (several inputs): the model as it is.

Formats: `keras` (`model.save`, a `.keras` file), `savedmodel`
(`model.export(path, format="tf_saved_model")`, the `serve` endpoint) and
`tflite` (`tf.lite.TFLiteConverter.from_saved_model` on such an export).
Everything is written beside its target under a temporary name and renamed
when complete: a format the model cannot take leaves nothing at the target.

Raw inputs are what the run's data source gives before preprocessing: for
an `images:` run, pixels already divided by 255 (as `kerasguide predict`
reads a folder).

Example:

```python
result = kerasguide.export_model("runs/20261123-...-digits-mlp-0a5c59", "tflite", "digits.tflite")
print(result.path, result.signature)
```
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasguide._logging import get_logger
from kerasguide.config import ConfigError
from kerasguide.data import Preprocessor
from kerasguide.inference import Predictor, load_predictor
from kerasguide.io import atomic_dir, atomic_path, atomic_write_bytes

__all__ = ["FORMATS", "ExportError", "ExportResult", "preprocessing_layers", "raw_input_model", "export_model"]

logger = get_logger()

FORMATS = ("keras", "savedmodel", "tflite")
_DEFAULT_OUT = {"keras": "model.keras", "savedmodel": "savedmodel", "tflite": "model.tflite"}


class ExportError(ConfigError):
    """A model that a format cannot take. Its message is one line: the format and the converter's first error line."""


@dataclass
class ExportResult:
    """Where `export_model` wrote, in which format, and the inputs the artefact takes."""

    path: Path
    format: str
    signature: str
    preprocessing: str = "none"  # the preprocess.npz mode built in


def preprocessing_layers(pre: Preprocessor | None) -> list[keras.layers.Layer]:
    """Keras layers that compute `pre.transform` on a batch (an empty list for none).

    Args:
        pre: A fitted `Preprocessor`, or None.

    Example:

    ```python
    pre = Preprocessor("whiten").fit(x_train)
    y = keras.Sequential([keras.Input(x_train.shape[1:]), *preprocessing_layers(pre)])(x)
    ```
    """
    if pre is None or pre.mode == "none":
        return []
    if not pre.fitted:
        raise ValueError("Argument `pre` must be fitted. Received: an unfitted Preprocessor")
    mean = np.asarray(pre.mean, np.float32)
    if pre.mode in ("center", "standardize"):
        variance = np.square(pre.scale) if pre.mode == "standardize" else np.ones_like(pre.mean)
        # One statistic per feature: every axis of an example is kept, the saved flat statistics in its shape.
        shape = tuple(pre.input_shape)
        axis = tuple(range(1, len(shape) + 1)) if len(shape) > 1 else -1
        return [keras.layers.Normalization(axis=axis, mean=mean.reshape(shape),
                                           variance=np.asarray(variance, np.float32).reshape(shape),
                                           name="preprocess")]
    components = np.asarray(pre.components, np.float64)
    if pre.mode == "whiten":
        components = components / np.sqrt(pre.eigenvalues + pre.epsilon)
    projection = keras.layers.Dense(components.shape[1], use_bias=False, trainable=False, name="preprocess_projection")
    projection.build((None, components.shape[0]))
    projection.set_weights([components.astype(np.float32)])
    return [keras.layers.Flatten(name="preprocess_flatten"),
            keras.layers.Normalization(axis=-1, mean=mean, variance=np.ones_like(mean), name="preprocess_center"),
            projection]


def raw_input_model(predictor: Predictor) -> keras.Model:
    """The predictor's model with its preprocessing in front: a Keras model that takes raw inputs."""
    layers = preprocessing_layers(predictor.preprocessor)
    model = predictor.model
    if not layers:
        return model
    inputs = keras.Input(shape=tuple(predictor.preprocessor.input_shape), name="raw_inputs", dtype="float32")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_raw")


def _signature(model: keras.Model) -> str:
    structure = model.input
    if isinstance(structure, dict):
        items = list(structure.items())
    else:
        items = [(t.name, t) for t in (structure if isinstance(structure, (list, tuple)) else [structure])]
    shapes = ", ".join(f"{name}: {t.dtype} ({', '.join('None' if d is None else str(d) for d in t.shape)})"
                       for name, t in items)
    return shapes


def _first_line(error: BaseException) -> str:
    """A converter's error in one line: its first, without MLIR's `loc(...)` call-site chains."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if "loc(" in line:
        # "...error: loc(callsite(...)): 'tf.Svd' op is neither a custom op nor a flex op"
        line = line.split("loc(", 1)[0].rstrip(": ") + ": " + line.rsplit("): ", 1)[-1]
    return line


@contextlib.contextmanager
def _quiet_fd2():
    """Point file descriptor 2 at /dev/null: the TFLite converter prints its MLIR diagnostics there from C++.

    The error it raises carries them too; the user gets its first line.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _write(model: keras.Model, fmt: str, target: Path) -> None:
    if fmt == "keras":
        with atomic_path(target) as tmp:
            model.save(tmp)
    elif fmt == "savedmodel":
        with atomic_dir(target) as tmp:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
    else:
        with tempfile.TemporaryDirectory(prefix="kerasguide-export-") as folder:
            model.export(folder, format="tf_saved_model", verbose=False)
            with _quiet_fd2():
                flatbuffer = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
        atomic_write_bytes(target, flatbuffer)


def export_model(
    run_dir: str | os.PathLike[str],
    format: str = "keras",
    out: str | os.PathLike[str] | None = None,
    which: str = "best",
) -> ExportResult:
    """Write a run's model, its preprocessing built in, as a `.keras` file, a SavedModel or a TFLite file.

    Args:
        run_dir: A run directory, or a search directory (its best model).
        format: `"keras"`, `"savedmodel"` or `"tflite"`. Defaults to `"keras"`.
        out: Where to write. Defaults to `None`: `export/model.keras`,
            `export/savedmodel` or `export/model.tflite` in `run_dir`.
        which: `"best"` or `"last"` checkpoint. Defaults to `"best"`.

    Returns:
        `ExportResult`: the path written, the format and the input signature.

    Raises:
        ExportError: one line, when the format's converter refuses the model;
            nothing is left at `out`.
    """
    if format not in FORMATS:
        raise ValueError(f"Argument `format` must be one of {FORMATS}. Received: format={format!r}")
    target = Path(out) if out is not None else Path(run_dir) / "export" / _DEFAULT_OUT[format]
    if format == "keras" and target.suffix != ".keras":
        raise ConfigError(f"--out {target}: a Keras model file must end in .keras")
    if format == "savedmodel" and target.is_file():
        raise ConfigError(f"--out {target}: a SavedModel is a folder; this is a file")
    predictor = load_predictor(run_dir, which)
    model = raw_input_model(predictor)
    try:
        _write(model, format, target)
    except Exception as error:  # the converters raise many kinds (ConverterError, ValueError, TypeError, ...)
        logger.debug("export as %s failed", format, exc_info=True)
        raise ExportError(f"cannot export {predictor.source} as {format}: {_first_line(error)}") from None
    pre = predictor.preprocessor
    return ExportResult(target, format, _signature(model), pre.mode if pre is not None else "none")
