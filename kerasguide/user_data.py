"""Your own data in the config: `data.source = "python:PATH:FUNCTION"`, a function that returns the splits.

```python
# my_data.py
def load(seed):
    ...
    return {"train": (x_train, y_train), "validation": (x_val, y_val)}   # "test" too, if any
```

The function takes the arguments it names (`seed`, `config`: the `[data]`
section) and returns the splits as a dict, or as a tuple
`(x_train, y_train, x_val, y_val[, x_test, y_test])`. Inputs are NumPy
arrays, or a dict or list of arrays for a model with several inputs;
targets are class ids, one-hot rows (kept as given: compile your model
with `categorical_crossentropy`), floats (regression), or a dict of arrays
for a model with several outputs. The splits are used as given (no split,
no subset); `data.preprocess` applies to a single input array only, fitted
on the training split (recipe A2).

Or it returns `tf.data.Dataset`s, batched as `model.fit` takes them
(`{"train": train_ds, "validation": val_ds}`, or `(train_ds, val_ds[,
test_ds])`): they are streamed, never read whole into memory
(`kerasguide.streams`); their batch size and shuffling are theirs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasguide.builders import load_user_builder
from kerasguide.config import DataConfig
from kerasguide.errors import ConfigError, one_line
from kerasguide.streams import is_tf_dataset

__all__ = ["load_python_source", "n_examples", "take", "flat_arrays", "is_structured", "shape_of"]

_SPLITS = ("train", "validation", "test")


def is_structured(x: Any) -> bool:
    """True for a dict or list of arrays (a model with several inputs or outputs)."""
    return isinstance(x, (dict, list, tuple))


def flat_arrays(x: Any) -> list[np.ndarray]:
    """Every array of `x` (an array, or a dict or list of them), in a fixed order."""
    if isinstance(x, dict):
        return [a for key in sorted(x) for a in flat_arrays(x[key])]
    if isinstance(x, (list, tuple)):
        return [a for part in x for a in flat_arrays(part)]
    return [np.asarray(x)]


def n_examples(x: Any) -> int:
    """How many examples `x` holds (the first axis of its arrays)."""
    arrays = flat_arrays(x)
    return int(len(arrays[0])) if arrays else 0


def take(x: Any, index: np.ndarray) -> Any:
    """`x[index]` through dicts and lists of arrays."""
    if isinstance(x, dict):
        return {k: take(v, index) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(take(v, index) for v in x)
    return np.asarray(x)[index]


def shape_of(x: Any) -> Any:
    """The shape of one example: a tuple, or a dict or list of them."""
    if isinstance(x, dict):
        return {k: shape_of(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [shape_of(v) for v in x]
    return tuple(int(d) for d in np.asarray(x).shape[1:])


def _call(function: Callable[..., Any], where: str, config: DataConfig, seed: int) -> Any:
    try:
        names = set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        names = set()
    kwargs = {k: v for k, v in (("seed", seed), ("config", config)) if k in names}
    try:
        return function(**kwargs)
    except ConfigError:
        raise
    except SystemExit as exit_:  # the user's function exiting is its error, not kerasguide's exit code
        raise ConfigError(f"data.source: {where} called sys.exit({exit_.code!r})") from None
    except Exception as error:
        raise ConfigError(one_line(f"data.source: {where} raised {type(error).__name__}: {error}")) from None


def _as_arrays(value: Any, what: str, where: str) -> Any:
    try:
        if isinstance(value, dict):
            return {str(k): _as_arrays(v, what, where) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_as_arrays(v, what, where) for v in value]
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - anything NumPy cannot take
        raise ConfigError(f"data.source: {where} returned {what} that is no array ({type(error).__name__})") from None
    if array.dtype == object or array.ndim == 0:
        raise ConfigError(f"data.source: {where} returned {what} that is no array of numbers "
                          f"(dtype {array.dtype}, shape {array.shape})")
    return array


def _splits(result: Any, where: str) -> dict[str, tuple[Any, Any]]:
    if isinstance(result, dict) and set(result) <= set(_SPLITS) and {"train", "validation"} <= set(result):
        pairs = {k: result[k] for k in _SPLITS if k in result}
    elif isinstance(result, (tuple, list)) and len(result) in (4, 6):
        pairs = {name: (result[2 * i], result[2 * i + 1]) for i, name in enumerate(_SPLITS[: len(result) // 2])}
    else:
        raise ConfigError(f"data.source: {where} must return {{'train': (x, y), 'validation': (x, y)[, 'test': "
                          f"(x, y)]}} or (x_train, y_train, x_val, y_val[, x_test, y_test]); got "
                          f"{type(result).__name__}")
    out = {}
    for name, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"data.source: {where}: the {name!r} split must be a pair (x, y)")
        x, y = (_as_arrays(part, f"{name} {label}", where) for part, label in zip(pair, ("inputs", "targets"),
                                                                                  strict=True))
        counts = {len(a) for a in flat_arrays(x) + flat_arrays(y)}
        if len(counts) != 1:
            raise ConfigError(f"data.source: {where}: the {name!r} split's arrays differ in length {sorted(counts)}")
        out[name] = (x, y)
    return out


def _streams(result: Any, where: str) -> dict[str, Any] | None:
    """The splits as `tf.data.Dataset`s, when the function returned datasets; None for arrays."""
    if isinstance(result, dict):
        values, named = [result.get(k) for k in _SPLITS], result
    elif isinstance(result, (tuple, list)):
        values, named = list(result), None
    else:
        return None
    if not any(is_tf_dataset(v) for v in values):
        return None
    if named is not None:
        if not {"train", "validation"} <= set(named) or set(named) - set(_SPLITS):
            raise ConfigError(f"data.source: {where} must return {{'train': dataset, 'validation': dataset"
                              f"[, 'test': dataset]}}; got keys {sorted(map(str, named))}")
        pairs = {k: named[k] for k in _SPLITS if k in named}
    elif len(values) in (2, 3):
        pairs = dict(zip(_SPLITS, values, strict=False))
    else:
        raise ConfigError(f"data.source: {where} must return (train_dataset, validation_dataset[, test_dataset]); "
                          f"got {len(values)} values")
    for name, value in pairs.items():
        if not is_tf_dataset(value):
            raise ConfigError(f"data.source: {where}: the {name!r} split is a {type(value).__name__}; return "
                              "every split as a tf.data.Dataset, or every split as arrays")
    return pairs


def _is_one_hot(y: np.ndarray) -> bool:
    return (y.ndim == 2 and y.shape[1] > 1 and np.issubdtype(y.dtype, np.number)
            and bool(np.all((y == 0) | (y == 1))) and bool(np.all(y.sum(axis=1) == 1)))


def load_python_source(config: DataConfig, seed: int, task: str | None) -> dict[str, Any]:
    """The splits a `python:PATH:FUNCTION` data source returns, checked, and what they say.

    Returns a dict with `splits` ({name: (x, y)}), `task`, `num_classes`, `one_hot`.
    """
    body = config.source[len("python:"):]
    path, _, name = body.rpartition(":")
    where = f"{name}() in {path}"
    function = load_user_builder(path, name, key="data.source")
    result = _call(function, where, config, seed)
    streams = _streams(result, where)
    if streams is not None:
        return {"streams": streams, "where": where, "task_hint": config.task if config.task != "auto" else task}
    splits = _splits(result, where)
    y = splits["train"][1]
    explicit = config.task if config.task != "auto" else task  # data.task, or what the rest of the config implies
    one_hot = False
    if isinstance(y, (dict, list)):  # several outputs: the model's own compiled losses read them
        task, num_classes = explicit or "classification", 0
    elif _is_one_hot(y):
        task, num_classes, one_hot = explicit or "classification", int(y.shape[1]), True
    elif explicit == "regression" or (explicit is None and np.issubdtype(y.dtype, np.floating)
                                      and not np.all(np.mod(y, 1) == 0)):
        task, num_classes = "regression", 0
    else:
        task = explicit or "classification"
        ids = np.concatenate([np.asarray(s[1]).reshape(-1) for s in splits.values()])
        if ids.min() < 0:
            raise ConfigError(f"data.source: {where}: class ids must be >= 0")
        num_classes = int(ids.max()) + 1
    return {"splits": splits, "task": task, "num_classes": num_classes, "one_hot": one_hot, "where": where}
