"""Keras plumbing shared by the checks: losses, state restoring, noise off, float64 clone."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
from keras import ops  # noqa: E402

from kerasguide.losses import MulticlassHinge, SparseMeanSquaredError  # noqa: E402

__all__ = [
    "resolve_loss",
    "loss_kind",
    "data_loss",
    "preserve_state",
    "noise_off",
    "all_layers",
    "clone_float64",
    "accuracy",
    "as_array",
    "predict_batches",
    "variable_name",
]


def as_array(x: Any) -> np.ndarray:
    """A NumPy array of `x` (arrays, tensors, lists)."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def variable_name(variable) -> str:
    """The variable's path (`dense/kernel`), or its name."""
    return str(getattr(variable, "path", None) or getattr(variable, "name", "variable"))


# ------------------------------------------------------------------- losses
def resolve_loss(model: keras.Model, loss: Any = None) -> Any:
    """The loss to check: `loss` if given, else the compiled model's loss."""
    if loss is None:
        loss = getattr(model, "loss", None)
    if loss is None:
        raise ValueError(
            "The model is not compiled and no `loss` was given: compile the model or pass loss=..."
        )
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError("Models with several losses are not supported by the checks; pass one `loss`.")
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    return loss


def _loss_name(loss: Any) -> str:
    fn = getattr(loss, "fn", None)  # LossFunctionWrapper
    for candidate in (fn, loss):
        name = getattr(candidate, "__name__", None)
        if name:
            return name
    return type(loss).__name__


def loss_kind(loss: Any) -> tuple[str | None, dict[str, float]]:
    """Which `expected_initial_loss` kind a loss is, and its parameters.

    Returns `(kind, params)`; kind None when the loss is unknown.
    """
    params: dict[str, float] = {}
    kwargs = getattr(loss, "_fn_kwargs", {}) or {}
    smoothing = getattr(loss, "label_smoothing", kwargs.get("label_smoothing", 0.0)) or 0.0
    if isinstance(loss, MulticlassHinge):
        return "multiclass_hinge", {"margin": float(loss.margin)}
    if isinstance(loss, SparseMeanSquaredError):
        return "mse_onehot", params
    name = _loss_name(loss).lower()
    if "smoothed_crossentropy" in name or "smoothedsparsecrossentropy" in name:
        return "crossentropy", {"label_smoothing": float(smoothing)}
    if "binary" in name and "crossentropy" in name:
        return "binary_crossentropy", {"label_smoothing": float(smoothing)}
    if "categorical_crossentropy" in name or "categoricalcrossentropy" in name:
        return "crossentropy", {"label_smoothing": float(smoothing)}
    if "categorical_hinge" in name or "categoricalhinge" in name:
        return "crammer_singer_hinge", {"margin": 1.0}
    if name in ("mean_squared_error", "meansquarederror", "mse"):
        return "mse", params
    return None, params


def data_loss(loss: Any, y_true, y_pred):
    """The mean data loss alone: the loss function on predictions, no `model.losses`.

    Calls `Loss.call` (the per-example function) and averages, rather than
    `Loss.__call__`, which casts to the loss's own dtype (float32) and would
    throw away the float64 precision of the gradient check.
    """
    if isinstance(loss, keras.losses.Loss):
        values = loss.call(y_true, y_pred)
    else:
        values = loss(y_true, y_pred)
    return ops.mean(values)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Argmax accuracy for class scores, or None when the task is not classification."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2 or y_pred.shape[1] < 2:
        return None
    if y_true.ndim == 2 and y_true.shape == y_pred.shape:
        labels = y_true.argmax(axis=1)
    elif y_true.size == len(y_pred) and np.all(np.mod(y_true, 1) == 0):
        labels = y_true.reshape(-1).astype(np.int64)
    else:
        return None
    return float(np.mean(y_pred.argmax(axis=1) == labels))


# -------------------------------------------------------- state and noise
def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of the model, nested ones included."""
    try:
        return list(model._flatten_layers(include_self=False, recursive=True))
    except AttributeError:  # pragma: no cover - not a Keras 3 layer
        return list(getattr(model, "layers", []))


@contextlib.contextmanager
def preserve_state(model: keras.Model, optimizer: Any = None) -> Iterator[None]:
    """Restore every model variable (and the optimizer's) on exit, whatever happens.

    Batch-norm moving statistics, seed generator states and the optimizer's
    slots and iteration count are variables too: a check leaves no trace.
    """
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    variables = list(model.variables)
    if optimizer is not None and not isinstance(optimizer, str):
        variables += list(getattr(optimizer, "variables", []))
    saved = [np.array(v.numpy(), copy=True) for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=False):
            variable.assign(value)


# Keras' stochastic layers and the attribute that switches each off. Layers of
# other libraries (e.g. a DropConnect) are recognized by name and a `rate`.
_NOISE_ATTRS = {
    keras.layers.Dropout: ("rate",),  # SpatialDropout1D/2D/3D are Dropouts
    keras.layers.GaussianNoise: ("stddev",),
    keras.layers.GaussianDropout: ("rate",),
    keras.layers.AlphaDropout: ("rate",),
}
_NOISE_NAME = re.compile(r"drop|noise", re.IGNORECASE)


def _noise_attrs(layer) -> tuple[str, ...]:
    for cls, attrs in _NOISE_ATTRS.items():
        if isinstance(layer, cls):
            return attrs
    if _NOISE_NAME.search(type(layer).__name__):
        return tuple(a for a in ("rate", "stddev") if isinstance(getattr(layer, a, None), (int, float)))
    return ()


@contextlib.contextmanager
def noise_off(model: keras.Model) -> Iterator[list[str]]:
    """Dropout and noise layers off (rate/stddev 0) while training-mode calls run.

    Batch normalization keeps its training behaviour (batch statistics), so
    the checks see the network training sees, minus its noise. Yields the
    names of the layers switched off; restores them on exit.
    """
    saved = []
    for layer in all_layers(model):
        for attr in _noise_attrs(layer):
            saved.append((layer, attr, getattr(layer, attr)))
            setattr(layer, attr, 0.0)
    try:
        yield [layer.name for layer, _, _ in saved]
    finally:
        for layer, attr, value in saved:
            setattr(layer, attr, value)


def predict_batches(model: keras.Model, x: np.ndarray, batch_size: int = 256, training: bool = True):
    """Model outputs on `x` in batches, as one NumPy array."""
    outputs = [
        as_array(model(x[i : i + batch_size], training=training)) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


# ------------------------------------------------------------ float64 clone
def _is_floating(dtype) -> bool:
    try:
        return np.issubdtype(np.dtype(keras.backend.standardize_dtype(dtype)), np.floating)
    except TypeError:
        return False


def clone_float64(model: keras.Model, sample: np.ndarray) -> keras.Model:
    """A copy of `model` computing in float64, with the model's weights.

    Functional and Sequential models are cloned layer by layer with each
    layer's dtype policy set to float64 (nested models recursively); a
    subclassed model is rebuilt from its config with `floatx` set to
    float64. Weights are copied, cast to float64.

    Raises:
        ValueError: when the model cannot be cloned (e.g. a subclassed model
            without `get_config`) or the clone's weights do not line up.
    """

    def clone_layer(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    clone = None
    inputs = getattr(model, "inputs", None)
    if inputs and (isinstance(model, keras.Sequential) or hasattr(model, "_operations")):
        new_inputs = [
            keras.Input(
                shape=tuple(t.shape[1:]),
                dtype="float64" if _is_floating(t.dtype) else t.dtype,
                name=getattr(t, "name", None),
            )
            for t in inputs
        ]
        clone = keras.models.clone_model(
            model,
            input_tensors=new_inputs if len(new_inputs) > 1 else new_inputs[0],
            clone_function=clone_layer,
            recursive=True,
        )
    else:
        # Layers made in a subclassed model's __init__ take the global dtype
        # policy: set it (and floatx) to float64 while the model is rebuilt.
        previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        try:
            try:
                config = model.get_config()
                if isinstance(config, dict) and "dtype" in config:
                    config["dtype"] = "float64"
                clone = model.__class__.from_config(config)
            except (NotImplementedError, TypeError) as error:
                raise ValueError(f"cannot rebuild {type(model).__name__} from its config: {error}") from None
            clone(sample[:1].astype(np.float64) if _is_floating(sample.dtype) else sample[:1], training=False)
        finally:
            keras.config.set_floatx(previous_floatx)
            keras.config.set_dtype_policy(previous_policy)
    source, target = model.weights, clone.weights
    if len(source) != len(target):
        raise ValueError(f"the float64 clone has {len(target)} weights, the model {len(source)}")
    for src, dst in zip(source, target, strict=False):
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"weight {variable_name(src)} has shape {src.shape} but its clone {dst.shape}")
        dst.assign(np.asarray(src.numpy()).astype(dst.dtype))
    return clone
