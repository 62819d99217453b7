"""Data sources, the validation split and preprocessing fitted on train only.

Recipes A1-A3. The rule that matters most here (A2): preprocessing statistics
are computed on the training split and only then applied to validation and
test. `load_dataset` makes the other order impossible: it splits first, then
fits a `Preprocessor` on `x_train` alone, and records the fingerprint of the
data it was fitted on so that a check can prove it afterwards.

Regression (`data.task`, see `kerasguide.config`): targets stay in their own
units (never standardized, so predictions need no inverse transform); the
split is not stratified, `num_classes` is 0, and the training targets' mean
and std are recorded in the summary (the diagnosis compares errors with the
variance) and given to the model, whose output layer starts at their mean.

The image loader reads folders with Keras' utilities.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

from kerasguide._logging import import_tensorflow
from kerasguide.config import ConfigError, DataConfig
from kerasguide.io import atomic_write_bytes
from kerasguide.streams import (
    count_stream,
    describe_paths,
    image_stream,
    index_images,
    read_images,
    stream_sample,
)
from kerasguide.tasks import REGRESSION_SOURCES
from kerasguide.user_data import flat_arrays, is_structured, load_python_source, n_examples, shape_of

import_tensorflow()  # before Keras: hides TensorFlow's start-up chatter

import keras  # noqa: E402

__all__ = [
    "Dataset",
    "Preprocessor",
    "DataError",
    "load_dataset",
    "load_arrays",
    "fingerprint",
]

logger = logging.getLogger("kerasguide")


class DataError(ConfigError):
    """Data that cannot be loaded or used. Its message is one line for a user."""


def fingerprint(*arrays: np.ndarray) -> str:
    """A sha256 over the arrays' dtypes, shapes and bytes (data identity, recipe I32)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


class Preprocessor:
    """Per-feature preprocessing fitted on training data only (recipes A1, A2).

    Modes: `none`, `center` (subtract the mean), `standardize` (and divide by
    the std), `pca` (project the centered data on the top `k` eigenvectors of
    its covariance) and `whiten` (PCA, then divide each component by
    `sqrt(eigenvalue + epsilon)`).

    Written with NumPy rather than scikit-learn's scalers because whitening
    with an additive epsilon on the eigenvalues (the form the recipe gives)
    and one save format for all five modes are not what sklearn offers.

    Args:
        mode: One of the modes above. Defaults to `"standardize"`.
        k: Components kept by `pca`/`whiten`; all if None. Defaults to `None`.
        epsilon: Added to eigenvalues (whiten) and to the std (standardize).
            Defaults to `1e-5`.

    Example:

    >>> import numpy as np
    >>> pre = Preprocessor("standardize").fit(np.array([[0.0], [2.0]]))
    >>> pre.transform(np.array([[1.0]])).tolist()
    [[0.0]]
    """

    MODES = ("none", "center", "standardize", "pca", "whiten")

    def __init__(self, mode: str = "standardize", k: int | None = None, epsilon: float = 1e-5):
        if mode not in self.MODES:
            raise ValueError(f"Argument `mode` must be one of {self.MODES}. Received: mode={mode!r}")
        if epsilon <= 0:
            raise ValueError(f"Argument `epsilon` must be > 0. Received: epsilon={epsilon}")
        self.mode = mode
        self.k = k
        self.epsilon = epsilon
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.eigenvalues: np.ndarray | None = None
        self.fitted_on: str | None = None
        self.fitted_n: int = 0
        self.input_shape: tuple[int, ...] | None = None

    @property
    def fitted(self) -> bool:
        return self.input_shape is not None

    def fit(self, x: np.ndarray) -> Preprocessor:
        """Compute the statistics from `x` (the training split) and nothing else."""
        x = np.asarray(x)
        self.input_shape = tuple(x.shape[1:])
        self.fitted_on = fingerprint(x)
        self.fitted_n = int(x.shape[0])
        if self.mode == "none":
            return self
        flat = x.reshape(len(x), -1).astype(np.float64)
        self.mean = flat.mean(axis=0)
        if self.mode == "standardize":
            # A feature constant on the training split keeps scale 1: dividing
            # by epsilon would blow up any non-zero value it takes elsewhere.
            std = flat.std(axis=0)
            self.scale = np.where(std > self.epsilon, std, 1.0)
        if self.mode in ("pca", "whiten"):
            centered = flat - self.mean
            cov = centered.T @ centered / max(len(flat) - 1, 1)
            eigenvalues, vectors = np.linalg.eigh(cov)
            order = np.argsort(eigenvalues)[::-1]
            k = self.k or flat.shape[1]
            if k > flat.shape[1]:
                raise DataError(
                    f"data.pca_k = {k} exceeds the {flat.shape[1]} features of the data; "
                    f"use at most {flat.shape[1]}"
                )
            self.components = vectors[:, order[:k]]
            self.eigenvalues = np.maximum(eigenvalues[order[:k]], 0.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the fitted statistics; the output is float32."""
        if not self.fitted:
            raise RuntimeError("Preprocessor.transform called before fit")
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"Expected examples of shape {self.input_shape}. Received: {tuple(x.shape[1:])}"
            )
        if self.mode == "none":
            return x.astype(np.float32)
        flat = x.reshape(len(x), -1).astype(np.float64) - self.mean
        if self.mode == "standardize":
            flat = flat / self.scale
        if self.mode in ("center", "standardize"):
            return flat.reshape(x.shape).astype(np.float32)
        projected = flat @ self.components
        if self.mode == "whiten":
            projected = projected / np.sqrt(self.eigenvalues + self.epsilon)
        return projected.astype(np.float32)

    def output_shape(self) -> tuple[int, ...]:
        if self.mode in ("pca", "whiten"):
            return (int(self.components.shape[1]),)
        return tuple(self.input_shape)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save with the run (`preprocess.npz`)."""
        state: dict[str, Any] = {
            "mode": np.array(self.mode),
            "epsilon": np.array(self.epsilon),
            "k": np.array(-1 if self.k is None else self.k),
            "input_shape": np.array(self.input_shape, dtype=np.int64),
            "fitted_on": np.array(self.fitted_on or ""),
            "fitted_n": np.array(self.fitted_n),
        }
        for name in ("mean", "scale", "components", "eigenvalues"):
            value = getattr(self, name)
            if value is not None:
                state[name] = value
        return state

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save atomically as .npz so that inference applies the same transform."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.state())
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preprocessor:
        with np.load(path, allow_pickle=False) as data:
            k = int(data["k"])
            pre = cls(str(data["mode"]), None if k < 0 else k, float(data["epsilon"]))
            pre.input_shape = tuple(int(v) for v in data["input_shape"])
            pre.fitted_on = str(data["fitted_on"]) or None
            pre.fitted_n = int(data["fitted_n"])
            for name in ("mean", "scale", "components", "eigenvalues"):
                if name in data:
                    setattr(pre, name, data[name])
        return pre


@dataclass
class Dataset:
    """The split, preprocessed arrays of a run, and what is known about them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int = 0
    image_shape: tuple[int, ...] | None = None
    preprocessor: Preprocessor | None = None
    raw_train: np.ndarray | None = field(default=None, repr=False)
    raw_val: np.ndarray | None = field(default=None, repr=False)
    task: str = "classification"
    target_mean: np.ndarray | None = None  # regression: per target column, on the training split
    target_std: np.ndarray | None = None
    # Streamed data: each split a tf.data pipeline of raw examples (images: unbatched; a python: source's
    # datasets: batched as given); x_train/x_val then hold a bounded sample of them, for the checks.
    streams: dict[str, Any] = field(default_factory=dict, repr=False)
    sizes: dict[str, int] = field(default_factory=dict)
    batches_per_split: dict[str, int] = field(default_factory=dict)
    stream_batched: bool = False
    class_names: list[str] | None = None
    stream_prints: dict[str, str] = field(default_factory=dict)

    @property
    def streamed(self) -> bool:
        """True when the splits are streams (x_train and x_val are then samples of them)."""
        return bool(self.streams)

    def has_split(self, name: str) -> bool:
        if self.streamed:
            return name in self.streams
        return {"train": True, "validation": True, "test": self.x_test is not None}[name]

    def size(self, name: str) -> int:
        """How many examples the split holds (the whole stream, not its sample)."""
        if self.streamed:
            return int(self.sizes.get(name, 0))
        x = {"train": self.x_train, "validation": self.x_val, "test": self.x_test}[name]
        return 0 if x is None else n_examples(x)

    def steps(self, name: str, batch_size: int) -> int:
        """Batches in one pass over the split (a python: source's datasets keep their own batch size)."""
        if self.stream_batched:
            return int(self.batches_per_split[name])
        return max(1, -(-self.size(name) // batch_size))

    @property
    def input_shape(self) -> Any:
        """One example's shape: a tuple, or a dict or list of them (several inputs)."""
        return shape_of(self.x_train)

    @property
    def target_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Regression: `(mean, std)` of the training targets, per column; None otherwise."""
        return None if self.target_mean is None else (self.target_mean, self.target_std)

    def fingerprints(self) -> dict[str, str]:
        if self.streamed:
            return dict(self.stream_prints)
        prints = {
            "train": fingerprint(*flat_arrays(self.x_train), *flat_arrays(self.y_train)),
            "validation": fingerprint(*flat_arrays(self.x_val), *flat_arrays(self.y_val)),
        }
        if self.x_test is not None:
            prints["test"] = fingerprint(*flat_arrays(self.x_test), *flat_arrays(self.y_test))
        return prints

    def summary(self) -> dict[str, Any]:
        summary = {
            "name": self.name,
            "train": self.size("train"),
            "validation": self.size("validation"),
            "test": self.size("test") if self.has_split("test") else 0,
            "input_shape": self.input_shape if is_structured(self.x_train) else list(self.input_shape),
            "num_classes": int(self.num_classes),
            "task": self.task,
            **(_target_summary(self.target_mean, self.target_std) if self.task == "regression" else {}),
        }
        if self.class_names is not None:
            summary["class_names"] = list(self.class_names)
        if self.streamed:
            summary["streamed"] = True
            summary["sample"] = n_examples(self.x_train)  # what the checks ran on
            if self.preprocessor is not None:
                summary["preprocess_fitted_on"] = self.preprocessor.fitted_n
            if self.stream_batched:
                summary["batches"] = dict(self.batches_per_split)
        return summary


def _target_summary(mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    # One number for one target column, a list for several. The variance is what an MSE of predicting
    # the mean comes to (averaged over the columns, as Keras' MSE averages them).
    one = mean.size == 1
    return {
        "target_width": int(mean.size),
        "target_mean": float(mean[0]) if one else [float(v) for v in mean],
        "target_std": float(std[0]) if one else [float(v) for v in std],
        "target_variance": float(np.mean(np.square(std))),
    }


# ---------------------------------------------------------------- raw sources
@dataclass
class _Raw:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None


def _load_diabetes() -> _Raw:
    # 442 patients: age, sex, BMI, blood pressure and six blood serum values in their own units (not
    # scikit-learn's pre-scaled copy: the preprocessing is fitted here, on the training split), and a
    # measure of the disease's progression a year later (25-346). Ships with scikit-learn: offline.
    x, y = load_diabetes(return_X_y=True, scaled=False)
    return _Raw(x.astype(np.float32), y.astype(np.float32))


def _load_digits() -> _Raw:
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return _Raw(x, bunch.target.astype(np.int64), image_shape=(8, 8, 1))


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    # Generated offline from the package's templates (never `get_dataset`,
    # which downloads). Cached for the process: generation takes ~1.5 s.
    data = make_dataset(get_dataset_args())
    return (
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
    )


def _load_mnist1d() -> _Raw:
    x, y, x_test, y_test = _mnist1d_arrays()
    return _Raw(x.copy(), y.copy(), x_test.copy(), y_test.copy())


def _require_file(path: str, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"data.source: {what} {path!r} does not exist")
    return file


def _load_npz(path: str) -> _Raw:
    file = _require_file(path, "npz file")
    try:
        with np.load(file, allow_pickle=False) as data:
            keys = set(data.files)
            if {"x_train", "y_train"} <= keys:
                raw = _Raw(data["x_train"], data["y_train"])
                if {"x_test", "y_test"} <= keys:
                    raw.x_test, raw.y_test = data["x_test"], data["y_test"]
                return raw
            if {"x", "y"} <= keys:
                return _Raw(data["x"], data["y"])
    except (OSError, ValueError) as error:
        raise DataError(f"data.source: cannot read npz file {path!r}: {error}") from None
    raise DataError(
        f"data.source: npz file {path!r} has arrays {sorted(keys)}; "
        "it needs x and y, or x_train, y_train (and optionally x_test, y_test)"
    )


def _load_csv(path: str, label_column: str) -> _Raw:
    file = _require_file(path, "csv file")
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"data.source: cannot read csv file {path!r}: {error}") from None
    if not header:
        raise DataError(f"data.source: csv file {path!r} is empty")
    if label_column not in header:
        raise DataError(
            f"data.label_column = {label_column!r} is not a column of {path!r}; "
            f"columns: {', '.join(header[:20])}"
        )
    index = header.index(label_column)
    labels_raw = [row[index].strip() for row in rows]
    try:
        features = np.array(
            [[float(v) for i, v in enumerate(row) if i != index] for row in rows], dtype=np.float32
        )
    except ValueError as error:
        raise DataError(f"data.source: csv file {path!r} has a non-numeric feature: {error}") from None
    # Numbers stay numbers (whole ones are class ids, others regression targets); names are
    # classes, mapped to 0..C-1 in sorted order.
    try:
        values = np.array([float(v) for v in labels_raw], dtype=np.float64)
    except ValueError:
        names = sorted(set(labels_raw))
        return _Raw(features, np.array([names.index(v) for v in labels_raw], dtype=np.int64))
    whole = values.size > 0 and np.all(np.mod(values, 1) == 0)
    return _Raw(features, values.astype(np.int64) if whole else values.astype(np.float32))


def _load_keras_dataset(name: str) -> _Raw:
    module = getattr(keras.datasets, name)
    try:
        (x, y), (x_test, y_test) = module.load_data()
    except Exception as error:  # Keras raises many kinds when it cannot fetch.
        raise DataError(
            f"data.source = {name!r}: Keras could not load it ({type(error).__name__}); it is "
            f"downloaded on first use and cached in ~/.keras/datasets, and this machine seems "
            f"offline. Put the file there, or use digits, mnist1d or npz:PATH"
        ) from None
    x = x.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    if x.ndim == 3:
        x, x_test = x[..., None], x_test[..., None]
    return _Raw(x, y.reshape(-1).astype(np.int64), x_test, y_test.reshape(-1).astype(np.int64),
                image_shape=tuple(x.shape[1:]))


def _load_raw(config: DataConfig) -> _Raw:
    source = config.source
    if source == "digits":
        return _load_digits()
    if source == "mnist1d":
        return _load_mnist1d()
    if source == "diabetes":
        return _load_diabetes()
    if source.startswith("npz:"):
        return _load_npz(source[4:])
    if source.startswith("csv:"):
        return _load_csv(source[4:], config.label_column)
    if source.startswith("images:"):
        raise DataError("images: sources are streamed; read them with load_dataset")
    return _load_keras_dataset(source)


def load_arrays(config: DataConfig) -> _Raw:
    """The raw arrays of a source, unsplit and unprocessed (for checks and tools)."""
    return _load_raw(config)


def _task_of(config: DataConfig, raw: _Raw, hint: str | None) -> str:
    """`data.task`, else the task the rest of the config implies, else what the targets look like."""
    if config.task != "auto":
        return config.task
    if hint:
        return hint
    if config.source in REGRESSION_SOURCES:
        return "regression"
    y = np.asarray(raw.y)
    if np.issubdtype(y.dtype, np.floating) and y.size and not np.all(np.mod(y, 1) == 0):
        return "regression"  # whole numbers in floats stay class ids, as they always were
    return "classification"


def _validate_raw(raw: _Raw, source: str, task: str = "classification") -> None:
    if raw.x.shape[0] != raw.y.shape[0]:
        raise DataError(
            f"data.source {source!r}: {raw.x.shape[0]} examples but {raw.y.shape[0]} labels"
        )
    if raw.x.shape[0] < 2:
        raise DataError(f"data.source {source!r}: needs at least 2 examples")
    if task == "regression":
        for name in ("y", "y_test"):
            y = getattr(raw, name)
            if y is None:
                continue
            if not np.issubdtype(np.asarray(y).dtype, np.number) or np.asarray(y).ndim > 2:
                raise DataError(f"data.source {source!r}: regression targets must be numbers, one column "
                                f"or a table of columns; got {np.asarray(y).dtype} of shape {np.shape(y)}")
            y = np.asarray(y, dtype=np.float32)
            setattr(raw, name, y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y)
        return
    if not np.issubdtype(raw.y.dtype, np.integer):
        if np.all(np.mod(raw.y, 1) == 0):
            raw.y = raw.y.astype(np.int64)
        else:
            raise DataError(f"data.source {source!r}: labels must be integer class ids (quantities to "
                            'predict: set data.task = "regression")')
    if raw.y.ndim != 1:
        raw.y = raw.y.reshape(-1)
    if raw.y.min() < 0:
        raise DataError(f"data.source {source!r}: labels must be >= 0")
    if task == "binary" and raw.y.max() > 1:
        raise DataError(f'data.task = "binary" needs labels 0 and 1; {source!r} has '
                        f'{len(np.unique(raw.y))} classes (use data.task = "classification")')


def split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One shuffled validation split (recipe A3), stratified by class unless `stratify` is False
    (regression targets)."""
    by_class = None
    if stratify:
        counts = np.bincount(y)
        by_class = y if counts[counts > 0].min() >= 2 else None
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=fraction, random_state=seed, shuffle=True, stratify=by_class
        )
    except ValueError:
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=fraction, random_state=seed, shuffle=True, stratify=None
        )
    return x_train, x_val, y_train, y_val


def split_three(x: Any, y: np.ndarray, config: DataConfig, seed: int, stratify: bool = True) -> tuple[Any, ...]:
    """Train, validation and (with `data.test_fraction`) test: `(x_train, x_val, x_test, y_train, y_val, y_test)`,
    the test parts None without a test fraction."""
    x_test = y_test = None
    if config.test_fraction > 0:
        x, x_test, y, y_test = split(x, y, config.test_fraction, seed + 7919, stratify=stratify)
    # The validation fraction stays a fraction of the whole source.
    fraction = config.validation_fraction / (1.0 - config.test_fraction)
    x_train, x_val, y_train, y_val = split(x, y, fraction, seed, stratify=stratify)
    return x_train, x_val, x_test, y_train, y_val, y_test


def load_dataset(config: DataConfig, seed: int = 0, task: str | None = None) -> Dataset:
    """Load, split, subset and preprocess a source; statistics from train only.

    The task (`data.task`; "auto": see `kerasguide.config.DataConfig.task`) decides the targets'
    type: integer class ids, or float targets in their own units (regression: no stratified split,
    `num_classes` 0, their training mean and std in the dataset). `dataset.task` is what it found:
    `kerasguide.tasks.apply_task(config, dataset.task)` makes the rest of the config agree.

    Args:
        config: The config's `data` section.
        seed: Shuffles the split and picks the subset. Defaults to `0`.
        task: The task the rest of the run config implies when `data.task` is "auto"
            (`kerasguide.tasks.config_task`: a regression loss, say). Defaults to `None`.

    Example:

    >>> from kerasguide.config import DataConfig
    >>> ds = load_dataset(DataConfig(source="digits"))
    >>> ds.x_train.shape[1], ds.num_classes
    (64, 10)
    """
    if config.source.startswith("python:"):
        return _python_dataset(config, seed, task)
    if config.source.startswith("images:"):
        return _image_dataset(config, seed, task)
    raw = _load_raw(config)
    task = _task_of(config, raw, task)
    _validate_raw(raw, config.source, task)
    regression = task == "regression"
    if raw.x_test is not None and config.test_fraction > 0:
        logger.info("data.source %r has its own test split; data.test_fraction = %g is not used",
                    config.source, config.test_fraction)
    if raw.x_test is None and config.test_fraction > 0:
        x_train, x_val, raw.x_test, y_train, y_val, raw.y_test = split_three(raw.x, raw.y, config, seed,
                                                                              stratify=not regression)
    else:
        x_train, x_val, y_train, y_val = split(raw.x, raw.y, config.validation_fraction, seed,
                                               stratify=not regression)
    if config.subset is not None and config.subset < len(x_train):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(x_train), size=config.subset, replace=False))
        x_train, y_train = x_train[keep], y_train[keep]
    pre = Preprocessor(config.preprocess, config.pca_k, config.epsilon)
    pre.fit(x_train)  # training split only: recipe A2, by construction.
    mean = std = None
    if regression:
        num_classes, dtype = 0, np.float32
        columns = y_train.reshape(len(y_train), -1).astype(np.float64)
        mean, std = columns.mean(axis=0), columns.std(axis=0)
    else:
        labels = [raw.y] + ([raw.y_test] if raw.y_test is not None else [])
        num_classes, dtype = int(max(int(v.max()) for v in labels) + 1), np.int64
        if config.task == "auto" and num_classes > 100:
            logger.warning("data.source %r: its %d whole-number targets are read as %d classes; if they are "
                           'quantities, set data.task = "regression"', config.source, len(raw.y), num_classes)
    x_test = pre.transform(raw.x_test) if raw.x_test is not None else None
    image_shape = raw.image_shape
    if image_shape is None and raw.x.ndim == 4:
        image_shape = tuple(raw.x.shape[1:])
    return Dataset(
        name=config.source,
        x_train=pre.transform(x_train),
        y_train=y_train.astype(dtype),
        x_val=pre.transform(x_val),
        y_val=y_val.astype(dtype),
        x_test=x_test,
        y_test=None if raw.y_test is None else raw.y_test.astype(dtype),
        num_classes=num_classes,
        image_shape=image_shape if config.preprocess not in ("pca", "whiten") else None,
        preprocessor=pre,
        raw_train=x_train,
        raw_val=x_val,
        task=task,
        target_mean=mean,
        target_std=std,
    )


def _python_dataset(config: DataConfig, seed: int, task: str | None) -> Dataset:
    """A `python:PATH:FUNCTION` source: the function's splits as given (`kerasguide.user_data`)."""
    found = load_python_source(config, seed, task)
    if "streams" in found:
        return _python_streams(config, found)
    (x_train, y_train), (x_val, y_val) = found["splits"]["train"], found["splits"]["validation"]
    x_test, y_test = found["splits"].get("test", (None, None))
    pre = None
    if not is_structured(x_train) and config.preprocess != "none":
        pre = Preprocessor(config.preprocess, config.pca_k, config.epsilon).fit(x_train)  # training split: A2
    elif is_structured(x_train) and config.preprocess != "none":
        logger.info("data.source: several inputs: data.preprocess = %r applies to one input array only; "
                    "the inputs are used as %s gives them", config.preprocess, found["where"])
    transform = pre.transform if pre is not None else (lambda x: x)
    regression = found["task"] == "regression"
    mean = std = None
    if regression and not is_structured(y_train):
        y_train, y_val = np.asarray(y_train, np.float32), np.asarray(y_val, np.float32)
        columns = y_train.reshape(len(y_train), -1).astype(np.float64)
        mean, std = columns.mean(axis=0), columns.std(axis=0)
    elif not is_structured(y_train) and not found["one_hot"]:
        y_train, y_val = (np.asarray(y, np.int64).reshape(-1) for y in (y_train, y_val))
        y_test = None if y_test is None else np.asarray(y_test, np.int64).reshape(-1)
    image_shape = tuple(x_train.shape[1:]) if not is_structured(x_train) and x_train.ndim == 4 else None
    return Dataset(
        name=config.source, x_train=transform(x_train), y_train=y_train, x_val=transform(x_val), y_val=y_val,
        x_test=None if x_test is None else transform(x_test), y_test=y_test, num_classes=found["num_classes"],
        image_shape=image_shape, preprocessor=pre, raw_train=None if is_structured(x_train) else x_train,
        raw_val=None if is_structured(x_val) else x_val, task=found["task"], target_mean=mean, target_std=std,
    )


def _image_dataset(config: DataConfig, seed: int, task: str | None) -> Dataset:
    """An `images:DIR` source, streamed (`kerasguide.streams`): split by file, a bounded sample in memory."""
    folder = index_images(config.source[len("images:"):], tuple(config.image_size), config.color_mode)
    explicit = config.task if config.task != "auto" else task
    if explicit == "regression":
        raise DataError('data.source: an image folder\'s classes are its subfolders; data.task = "regression" '
                        "needs targets: return them from a python: source")
    if explicit == "binary" and len(folder.class_names) != 2:
        raise DataError(f'data.task = "binary" needs 2 classes; {config.source!r} has {len(folder.class_names)} '
                        'subfolders (use data.task = "classification")')
    index = np.arange(len(folder.paths))
    train, val, test, _, _, _ = split_three(index, folder.labels, config, seed)
    if config.subset is not None and config.subset < len(train):
        train = np.sort(np.random.default_rng(seed).choice(train, size=config.subset, replace=False))
    size, mode = tuple(config.image_size), config.color_mode
    # The sample the preprocessing is fitted on and the checks run on: training images only (A2), at random.
    sample = np.random.default_rng(seed).permutation(train)[: config.sample]
    raw_train = read_images(folder.paths[sample], size, mode)
    raw_val = read_images(folder.paths[val[: config.sample]], size, mode)
    pre = Preprocessor(config.preprocess, config.pca_k, config.epsilon).fit(raw_train)
    splits = {"train": train, "validation": val, **({"test": test} if test is not None else {})}
    streams = {name: image_stream(folder.paths[ids], folder.labels[ids], size, mode, shuffle=name == "train",
                                  seed=seed) for name, ids in splits.items()}
    logger.info("images %s: %d files in %d classes, streamed from disk; preprocessing fitted on %d training images",
                folder.root, len(folder.paths), len(folder.class_names), len(sample))
    return Dataset(
        name=config.source, x_train=pre.transform(raw_train), y_train=folder.labels[sample],
        x_val=pre.transform(raw_val), y_val=folder.labels[val[: config.sample]],
        num_classes=len(folder.class_names), image_shape=raw_train.shape[1:] if config.preprocess not in (
            "pca", "whiten") else None, preprocessor=pre, raw_train=raw_train, raw_val=raw_val,
        task=explicit or "classification", streams=streams, sizes={k: len(v) for k, v in splits.items()},
        class_names=folder.class_names, stream_prints={k: describe_paths(folder.paths[v]) for k, v in splits.items()},
    )


def _python_streams(config: DataConfig, found: dict[str, Any]) -> Dataset:
    """A `python:` source that returned `tf.data.Dataset`s: used as given, a sample of train in memory."""
    where, streams = found["where"], found["streams"]
    x_train, y_train = stream_sample(streams["train"], config.sample, where)
    x_val, y_val = stream_sample(streams["validation"], config.sample, where)
    counts = {name: count_stream(ds, where) for name, ds in streams.items()}
    pre = None
    if not is_structured(x_train) and config.preprocess != "none" and np.issubdtype(x_train.dtype, np.floating):
        pre = Preprocessor(config.preprocess, config.pca_k, config.epsilon).fit(x_train)  # a training sample: A2
    task, num_classes, one_hot = _stream_task(config, found, y_train)
    transform = pre.transform if pre is not None else (lambda x: x)
    mean = std = None
    if task == "regression" and not is_structured(y_train):
        columns = np.asarray(y_train, np.float64).reshape(n_examples(y_train), -1)
        mean, std = columns.mean(axis=0), columns.std(axis=0)
    logger.info("data %s: tf.data datasets, used as given (%s); preprocessing %s", where,
                ", ".join(f"{k} {b} batches" for k, (b, _) in counts.items()),
                f"fitted on {n_examples(x_train)} training examples" if pre is not None else "none")
    return Dataset(
        name=config.source, x_train=transform(x_train), y_train=y_train, x_val=transform(x_val), y_val=y_val,
        num_classes=num_classes, image_shape=tuple(x_train.shape[1:]) if not is_structured(x_train)
        and x_train.ndim == 4 else None, preprocessor=pre, raw_train=None if is_structured(x_train) else x_train,
        raw_val=None if is_structured(x_val) else x_val, task=task, target_mean=mean, target_std=std,
        streams=streams, sizes={k: e for k, (_, e) in counts.items()},
        batches_per_split={k: b for k, (b, _) in counts.items()}, stream_batched=True,
        stream_prints={k: fingerprint(*flat_arrays(s)) for k, s in (("train", x_train), ("validation", x_val))},
    )


def _stream_task(config: DataConfig, found: dict[str, Any], y: Any) -> tuple[str, int, bool]:
    """The task, class count and one-hotness a sample of the targets shows (or the config says)."""
    explicit = config.task if config.task != "auto" else found["task_hint"]
    if is_structured(y):
        return explicit or "classification", 0, False
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return explicit or "classification", int(y.shape[1]), True
    if explicit == "regression" or (explicit is None and np.issubdtype(y.dtype, np.floating)
                                    and not np.all(np.mod(y, 1) == 0)):
        return "regression", 0, False
    # Class ids from a sample: the model's output width is the better count when the sample misses a class.
    return explicit or "classification", int(y.max()) + 1, False
