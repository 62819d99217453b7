"""Inference from a run directory: its checkpoint with the preprocessing it was trained with.

The preprocessing statistics were fitted on the run's training split and saved
as `preprocess.npz` (recipe A2); a `Predictor` applies exactly that transform
to raw inputs before the model sees them. A run without `preprocess.npz` (a
`python:` source with several inputs, or `data.preprocess = "none"` there)
takes its inputs as given.

`predict_to_csv` is what `kerasguide predict RUN_DIR INPUT` does: it reads
INPUT batch by batch and writes one CSV row per example as it goes (the file
appears, atomically, when the last row is written):

- an `.npz` file: the array `x`, else `x_test`, else its only array (a model
  with several inputs: one array per input, by the input's name);
- a `.csv` file: the training csv's feature columns, its label column
  (`data.label_column`) dropped when present;
- a folder of images (any depth): read by `keras.utils.image_dataset_from_directory`
  at the run's `data.image_size` and `data.color_mode`, pixels divided by
  255 as the run's `images:` source does.

Columns: `id` (the row index, or an image's path), then for a classification
`predicted` (the class id, or its name when run.json's data summary has
`class_names`) and `p_<class>` per class; binary (one sigmoid unit)
`predicted` 0/1 and `p_1`; a regression `prediction` (or `prediction_0`,
... per target). An output that is not a softmax or sigmoid gives `score_<class>`
columns instead of `p_` (a hinge-trained model's scores are no probabilities).

A search directory (`kerasguide tune`) stands for its best model: the copy
in its `best/` folder (see `kerasguide.search.runner`), else its best
trial's run directory.

Example:

```python
predictor = kerasguide.load_predictor("runs/20261123-...-digits-mlp-0a5c59")
probabilities = predictor.predict(raw_inputs)
kerasguide.predict_to_csv(predictor, "new.npz", "predictions.csv")
```
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import kerasguide.initializers  # noqa: F401  (registers custom objects for loading)
import kerasguide.layers  # noqa: F401
import kerasguide.losses  # noqa: F401
from kerasguide._logging import get_logger
from kerasguide.config import ConfigError, RunConfig, load_config
from kerasguide.data import Preprocessor
from kerasguide.io import atomic_path
from kerasguide.rundir import read_json

__all__ = ["Predictor", "Predictions", "load_predictor", "resolve_run_dir", "find_checkpoint", "predict_to_csv"]

logger = get_logger()

_PROBABILITY_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy")


def _first_line(error: BaseException) -> str:
    # Keras' and TensorFlow's errors can run to a page; a user gets one line.
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _shape_text(shape: tuple | None) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Predictor:
    """A trained model and its fitted preprocessing, ready for raw inputs.

    Args:
        model: The trained Keras model.
        preprocessor: The `Preprocessor` fitted on the training split; None
            when the inputs are used as given. Defaults to `None`.
        task: `"classification"`, `"binary"` or `"regression"` (run.json's
            data summary); None to read it from the model's output.
            Defaults to `None`.
        class_names: One name per class, for the `predicted` column.
            Defaults to `None` (class ids).
        config: The run's config (csv label column, image size). Defaults to `None`.
        source: The checkpoint the model was loaded from. Defaults to `None`.

    Example:

    ```python
    predictor = kerasguide.load_predictor("runs/20261123-...-digits-mlp-0a5c59")
    probabilities = predictor.predict(raw_images)
    labels = predictor.predict_classes(raw_images)
    ```
    """

    def __init__(self, model, preprocessor: Preprocessor | None = None, task: str | None = None,
                 class_names: list[str] | None = None, config: RunConfig | None = None,
                 source: Path | None = None):
        self.model = model
        self.preprocessor = preprocessor
        self.task = task
        self.class_names = list(class_names) if class_names else None
        self.config = config
        self.source = source

    # ------------------------------------------------------------ inputs
    @property
    def input_names(self) -> list[str] | None:
        """The names of a several-input model's inputs (the keys it takes); None for one input."""
        structure = _input_structure(self.model)
        if isinstance(structure, dict):
            return list(structure)
        if isinstance(structure, (list, tuple)) and len(structure) > 1:
            return [t.name for t in structure]
        return None

    def input_shape(self, name: str | None = None) -> tuple | None:
        """The shape of one raw example (of input `name`); None where the model does not say."""
        if name is None and self.preprocessor is not None:
            return tuple(self.preprocessor.input_shape)
        structure = _input_structure(self.model)
        if isinstance(structure, dict):
            tensor = structure.get(name)
        elif isinstance(structure, (list, tuple)):
            names = [t.name for t in structure]
            tensor = structure[names.index(name)] if name in names else structure[0] if len(structure) == 1 else None
        else:
            tensor = structure
        return None if tensor is None else tuple(tensor.shape[1:])

    def check_shape(self, given: tuple, where: str, name: str | None = None) -> None:
        """Bad input (one line naming both shapes) when `given` is not the shape of one example."""
        expected = self.input_shape(name)
        if expected is None:
            return
        given = tuple(int(d) for d in given)
        if len(given) != len(expected) or any(e is not None and e != g for e, g in zip(expected, given, strict=True)):
            what = f" for input {name!r}" if name else ""
            raise ConfigError(f"{where}: examples of shape {_shape_text(given)}{what}; the model takes "
                              f"{_shape_text(expected)}")

    def transform(self, x: Any) -> Any:
        """The saved preprocessing applied to raw inputs (a dict or list of inputs: as given)."""
        if self.preprocessor is None or isinstance(x, (dict, list, tuple)):
            return x
        return self.preprocessor.transform(np.asarray(x))

    # ------------------------------------------------------------ outputs
    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (or scores, or values) for raw inputs."""
        return self.model.predict(self.transform(x), batch_size=batch_size, verbose=0)

    def predict_batch(self, x: Any) -> Any:
        """The model's outputs for one batch of raw inputs, as NumPy."""
        return self.model.predict_on_batch(self.transform(x))

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict(x), axis=-1)

    def outputs_probabilities(self) -> bool:
        """Whether the model ends in a softmax or sigmoid (else its outputs are scores or values)."""
        layer = self.model.layers[-1] if getattr(self.model, "layers", None) else None
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.Softmax):
            return True
        if activation is not None:
            return activation in (keras.activations.softmax, keras.activations.sigmoid)
        # A subclassed model says nothing of its last step: the loss it was trained with does.
        return self.config is not None and self.config.train.loss in _PROBABILITY_LOSSES


def _input_structure(model) -> Any:
    try:
        return model.input
    except (AttributeError, ValueError):  # a subclassed model has no symbolic input
        return None


def resolve_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The run directory that holds the model: `run_dir` itself, or a search directory's best model.

    A search directory's `best/` (a copy of its best trial, kept up to date
    by the search), else its best trial's own run directory.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory")
    if not (path / "search.json").is_file() or (path / "run.json").is_file():
        return path
    state = read_json(path / "search.json", default={}) or {}
    best_dir = path / ((state.get("best_model") or {}).get("dir") or "best")
    if (best_dir / "checkpoints").is_dir():
        return best_dir
    # Caught while best/ is being replaced (the trial it copies), or a search from before best/ was kept.
    for best in (state.get("best_model") or {}, state.get("best") or {}):
        if best.get("run_dir"):
            return (path / best["run_dir"]).resolve()
    raise ConfigError(f"{path}: the search has no best model yet (no trial has finished with a score)")


def find_checkpoint(run_dir: str | os.PathLike[str], which: str = "best") -> Path:
    """A run's best checkpoint (`checkpoints/best-*.keras`, else `last.keras`) or its last one."""
    if which not in ("best", "last"):
        raise ValueError(f"Argument `which` must be 'best' or 'last'. Received: which={which!r}")
    path = Path(run_dir)
    checkpoints = path / "checkpoints"
    found = sorted(checkpoints.glob("best-*.keras")) if which == "best" else []
    checkpoint = found[-1] if found else checkpoints / "last.keras"
    if checkpoint.is_file():
        return checkpoint
    weights = sorted(checkpoints.glob("*.weights.h5"))
    if weights:
        raise ConfigError(f"{path}: its checkpoints hold weights only ({weights[-1].name}; Keras could not save "
                          "the model whole): build the model with its builder and call load_weights")
    raise ConfigError(f"{path}: no {which} checkpoint in {checkpoints} (did the run train?)")


def load_predictor(run_dir: str | os.PathLike[str], which: str = "best") -> Predictor:
    """Load a run's `best` (or `last`) checkpoint with its preprocessing, task and class names.

    `run_dir` may be a search directory: its best model.
    """
    checkpoint = find_checkpoint(resolve_run_dir(run_dir), which)
    path = checkpoint.parent.parent
    try:
        model = keras.models.load_model(checkpoint, compile=False)
    except Exception as error:  # a damaged or foreign file: Keras raises many kinds; one line, exit 2
        raise ConfigError(f"{checkpoint}: cannot load this checkpoint: {_first_line(error)}") from None
    pre = Preprocessor.load(path / "preprocess.npz") if (path / "preprocess.npz").is_file() else None
    config = None
    if (path / "config.toml").is_file():
        try:
            config = load_config(path / "config.toml")
        except ConfigError:  # a config another version wrote: predict without its extras
            logger.warning("%s: config.toml cannot be read; csv and image inputs use the defaults",
                           path / "config.toml")
    data = (read_json(path / "run.json", default={}) or {}).get("data") or {}
    return Predictor(model, pre, task=data.get("task"), class_names=data.get("class_names"), config=config,
                     source=checkpoint)


# ---------------------------------------------------------------- predict INPUT
@dataclass
class Predictions:
    """What `predict_to_csv` wrote: the CSV, its rows, and what it read."""

    path: Path
    rows: int
    took: str


def _npz_batches(predictor: Predictor, file: Path, batch_size: int) -> Iterator[tuple[list, Any]]:
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{file}: cannot read this npz file: {_first_line(error)}") from None
    with data:
        arrays = list(data.files)
        names = predictor.input_names
        if names:
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ConfigError(f"{file}: the model takes the inputs {', '.join(names)}; the npz holds "
                                  f"{', '.join(arrays) or 'no arrays'} (missing {', '.join(missing)})")
            x = {n: data[n] for n in names}
            took = f"arrays {', '.join(names)}"
        else:
            key = "x" if "x" in arrays else "x_test" if "x_test" in arrays else arrays[0] if len(arrays) == 1 else None
            if key is None:
                raise ConfigError(f"{file}: no array named x or x_test among {', '.join(arrays) or 'none'}; "
                                  "save the inputs as x")
            x = {None: data[key]}
            took = f"array {key}"
    lengths = {len(v) if v.ndim else 0 for v in x.values()}
    if len(lengths) != 1:
        raise ConfigError(f"{file}: its input arrays have different lengths ({sorted(lengths)})")
    for name, value in x.items():
        if value.ndim == 0:
            raise ConfigError(f"{file}: array {name or key} is a single number, not examples")
        predictor.check_shape(value.shape[1:], str(file), name)
    n = lengths.pop()
    first = next(iter(x.values()))
    logger.info("%s: %s, %d examples of shape %s", file, took, n, _shape_text(first.shape[1:]))
    for start in range(0, n, batch_size):
        part = {k: v[start:start + batch_size] for k, v in x.items()}
        yield list(range(start, start + len(next(iter(part.values()))))), part.get(None, part)


def _csv_batches(predictor: Predictor, file: Path, batch_size: int) -> Iterator[tuple[list, Any]]:
    if predictor.input_names:
        raise ConfigError(f"{file}: the model takes several inputs ({', '.join(predictor.input_names)}); "
                          "give them as an npz file, one array per input")
    label = predictor.config.data.label_column if predictor.config is not None else "label"
    try:
        handle = open(file, newline="", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{file}: cannot read this csv file: {error.strerror or error}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as error:
            raise ConfigError(f"{file}: cannot read this csv file: {_first_line(error)}") from None
        if not header:
            raise ConfigError(f"{file}: the csv file is empty")
        drop = header.index(label) if label in header else None
        width = len(header) - (drop is not None)
        predictor.check_shape((width,), f"{file} ({width} feature columns)")
        logger.info("%s: %d feature columns%s", file, width,
                    f", label column {label!r} dropped" if drop is not None else "")
        ids: list[int] = []
        rows: list[list[float]] = []
        index = 0  # the row's number among the data rows: its id
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigError(f"{file}: line {reader.line_num} has {len(row)} cells, the header {len(header)}")
                try:
                    rows.append([float(v) for i, v in enumerate(row) if i != drop])
                except ValueError as error:
                    raise ConfigError(f"{file}: line {reader.line_num} has a non-numeric feature: {error}") from None
                ids.append(index)
                index += 1
                if len(rows) == batch_size:
                    yield ids, np.asarray(rows, np.float32)
                    ids, rows = [], []
        except (UnicodeDecodeError, csv.Error) as error:
            raise ConfigError(f"{file}: cannot read this csv file: {_first_line(error)}") from None
        if rows:
            yield ids, np.asarray(rows, np.float32)


def _image_settings(predictor: Predictor, folder: Path) -> tuple[tuple[int, int], str]:
    config = predictor.config
    if config is not None and config.data.source.startswith("images:"):
        return tuple(config.data.image_size), config.data.color_mode
    expected = predictor.input_shape()
    # A run trained on image arrays (npz:, a python: source) reads images at its own input's size.
    if expected is not None and len(expected) == 3 and None not in expected and expected[-1] in (1, 3, 4):
        return tuple(expected[:2]), {1: "grayscale", 3: "rgb", 4: "rgba"}[expected[-1]]
    what = _shape_text(expected) if expected is not None else "inputs that are no images"
    raise ConfigError(f"{folder}: a folder of images gives examples of shape (height, width, channels); the "
                      f"model takes {what}")


def _image_batches(predictor: Predictor, folder: Path, batch_size: int) -> Iterator[tuple[list, Any]]:
    if predictor.input_names:
        raise ConfigError(f"{folder}: the model takes several inputs ({', '.join(predictor.input_names)}); "
                          "give them as an npz file, one array per input")
    size, mode = _image_settings(predictor, folder)
    try:
        # Keras lists the files (any depth, in order) and decodes and resizes them batch by batch,
        # as the run's images: source did.
        images = keras.utils.image_dataset_from_directory(
            folder, labels=None, shuffle=False, image_size=size, color_mode=mode, batch_size=batch_size,
            verbose=False)
    except ValueError as error:
        raise ConfigError(f"{folder}: {_first_line(error)}") from None
    paths = list(images.file_paths)
    predictor.check_shape(tuple(images.element_spec.shape[1:]), f"{folder} (images at {size[0]}x{size[1]} {mode})")
    logger.info("%s: %d images, read at %dx%d %s", folder, len(paths), size[0], size[1], mode)
    start = 0
    iterator = iter(images)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:  # a file with an image's name that does not decode
            raise ConfigError(f"{folder}: an image could not be read: {_first_line(error)}") from None
        x = batch.numpy() / 255.0  # the 0..1 scale the run's images: source trained on
        yield paths[start:start + len(x)], x
        start += len(x)


class _Columns:
    """The CSV's header and rows for a model's outputs."""

    def __init__(self, predictor: Predictor, outputs: Any):
        self.several = isinstance(outputs, (dict, list, tuple))
        if self.several:
            items = outputs.items() if isinstance(outputs, dict) else enumerate(outputs)
            self.names = [str(k) for k, _ in items]
            widths = [int(np.prod(np.shape(v)[1:])) for v in (outputs.values() if isinstance(outputs, dict) else outputs)]
            self.header = ["id"] + [f"{n}_{j}" if w > 1 else n for n, w in zip(self.names, widths, strict=True)
                                    for j in range(w)]
            return
        width = int(np.prod(np.shape(outputs)[1:]))
        task = predictor.task
        probabilities = predictor.outputs_probabilities()
        if task is None:
            task = "regression" if not probabilities else "binary" if width == 1 else "classification"
        if task == "classification" and width == 1:
            task = "binary"
        self.task = task
        self.probabilities = probabilities
        prefix = "p_" if probabilities else "score_"
        names = predictor.class_names
        # Binary: one unit for two named classes; otherwise one name per output column.
        self.class_names = names if names and len(names) == (2 if task == "binary" else width) else None
        if task == "regression":
            columns = ["prediction"] if width == 1 else [f"prediction_{j}" for j in range(width)]
        elif task == "binary":
            columns = ["predicted", f"{prefix}{self.class_names[1] if self.class_names else 1}"]
        else:
            columns = ["predicted"] + [f"{prefix}{c}" for c in (self.class_names or range(width))]
        self.header = ["id", *columns]

    def rows(self, ids: list, outputs: Any) -> Iterator[list[str]]:
        if self.several:
            values = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
            flat = np.concatenate([np.asarray(v).reshape(len(ids), -1) for v in values], axis=1)
            for i, row in zip(ids, flat, strict=True):
                yield [str(i), *map(str, row)]
            return
        flat = np.asarray(outputs).reshape(len(ids), -1)
        if self.task == "regression":
            for i, row in zip(ids, flat, strict=True):
                yield [str(i), *map(str, row)]
            return
        if self.task == "binary":
            # A sigmoid's 0.5 is a logit's 0.
            predicted = (flat[:, 0] >= (0.5 if self.probabilities else 0.0)).astype(int)
        else:
            predicted = np.argmax(flat, axis=1)
        for i, label, row in zip(ids, predicted, flat, strict=True):
            name = self.class_names[label] if self.class_names else str(label)
            yield [str(i), name, *map(str, row)]


def predict_to_csv(
    predictor: Predictor | str | os.PathLike[str],
    input: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    which: str = "best",
) -> Predictions:
    """Predict every example of an npz file, a csv file or a folder of images; write one CSV row each.

    Args:
        predictor: A `Predictor`, or a run (or search) directory to load one from.
        input: An `.npz` file, a `.csv` file or a folder of images.
        out: The CSV to write. Defaults to `None`: `predictions-<input name>.csv`
            in the run directory given.
        batch_size: Examples read and predicted at a time. Defaults to `256`.
        which: `"best"` or `"last"` checkpoint, when `predictor` is a directory.
            Defaults to `"best"`.

    Returns:
        `Predictions`: the CSV's path, its number of rows and what was read.

    Raises:
        ConfigError: one line, for an input that cannot be read or whose
            examples do not have the shape the model takes.
    """
    if batch_size < 1:
        raise ConfigError(f"Argument `batch_size` must be >= 1. Received: batch_size={batch_size}")
    if not isinstance(predictor, Predictor):
        run_dir = Path(predictor)
        predictor = load_predictor(run_dir, which)
    else:
        run_dir = predictor.source.parent.parent if predictor.source is not None else Path(".")
    file = Path(input)
    if file.is_dir():
        batches, took = _image_batches(predictor, file, batch_size), "images"
    elif not file.is_file():
        raise ConfigError(f"{file}: no such file or folder (an .npz or .csv file, or a folder of images)")
    elif file.suffix.lower() == ".npz":
        batches, took = _npz_batches(predictor, file, batch_size), "npz"
    elif file.suffix.lower() == ".csv":
        batches, took = _csv_batches(predictor, file, batch_size), "csv"
    else:
        raise ConfigError(f"{file}: not an .npz or .csv file or a folder of images")
    target = Path(out) if out is not None else run_dir / f"predictions-{file.stem or file.name}.csv"
    rows = 0
    with atomic_path(target) as tmp:
        with open(tmp, "x", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            columns = None
            for ids, x in batches:
                outputs = predictor.predict_batch(x)
                if columns is None:
                    columns = _Columns(predictor, outputs)
                    writer.writerow(columns.header)
                writer.writerows(columns.rows(ids, outputs))
                rows += len(ids)
            if columns is None:
                raise ConfigError(f"{file}: holds no examples")
    return Predictions(target, rows, took)
