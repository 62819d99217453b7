"""Keras plumbing shared by the checks: data structures, losses, state restoring, noise off, float64 clone.

Inputs and targets may be one array or a structure of arrays (a dict of
named inputs, a list of inputs, a dict of targets for a model with several
outputs); the helpers here take and slice them alike.
"""

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

from kerasguide.checks.result import first_line  # noqa: E402
from kerasguide.losses import MulticlassHinge, SparseMeanSquaredError  # noqa: E402
from kerasguide.training import io_structure  # noqa: E402

__all__ = [
    "Head",
    "MultiLoss",
    "resolve_loss",
    "heads_of",
    "pick",
    "loss_kind",
    "loss_name",
    "data_loss",
    "as_data",
    "num_examples",
    "take",
    "subset",
    "cast_floats",
    "float_leaves",
    "to_tensors",
    "is_floating",
    "preserve_state",
    "noise_off",
    "all_layers",
    "clone_float64",
    "accuracy",
    "as_array",
    "predict_batches",
    "concat",
    "variable_name",
]


def as_array(x: Any) -> np.ndarray:
    """A NumPy array of `x` (arrays, tensors, lists)."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def _is_structure(x: Any) -> bool:
    """A dict, or a list/tuple of arrays (several inputs or outputs), as opposed to one array-like."""
    if isinstance(x, dict):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(hasattr(v, "shape") and len(getattr(v, "shape", ())) >= 1 for v in x)
    return False


def as_data(x: Any) -> Any:
    """NumPy arrays of `x`: one array, or the same dict/list/tuple structure of arrays.

    A plain list of numbers is one array (labels as a list), a list of
    arrays a structure (several inputs).
    """
    if _is_structure(x):
        if isinstance(x, dict):
            return {k: as_data(v) for k, v in x.items()}
        return type(x)(as_data(v) for v in x)
    return as_array(x)


def _leaves(x: Any) -> list[np.ndarray]:
    if isinstance(x, dict):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    if isinstance(x, (list, tuple)) and _is_structure(x):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x]


def _map(fn, x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and _is_structure(x):
        return type(x)(_map(fn, v) for v in x)
    return fn(x)


def num_examples(x: Any, name: str = "x") -> int:
    """The number of examples of an array or structure (every array must agree)."""
    lengths = [len(a) if getattr(a, "ndim", 1) else 0 for a in _leaves(x)]
    if not lengths:
        raise ValueError(f"Argument `{name}` holds no arrays")
    if len(set(lengths)) > 1:
        raise ValueError(f"The arrays of `{name}` differ in length: {lengths}")
    return lengths[0]


def take(x: Any, index) -> Any:
    """`x[index]` for every array of a structure."""
    return _map(lambda a: a[index], x)


def subset(x, y, examples: int, seed: int) -> tuple[Any, Any]:
    """A random subset of `examples` examples of `(x, y)` (all of them when fewer), order kept."""
    x, y = as_data(x), as_data(y)
    n, n_y = num_examples(x, "x"), num_examples(y, "y")
    if n != n_y:
        raise ValueError(f"x and y differ in length: {n} examples, {n_y} labels")
    if n == 0:
        raise ValueError("Argument `x` is empty")
    if examples < n:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=examples, replace=False))
        x, y = take(x, keep), take(y, keep)
    return x, y


def is_floating(dtype) -> bool:
    """Whether a NumPy or Keras dtype is a floating-point one."""
    try:
        return np.issubdtype(np.dtype(keras.backend.standardize_dtype(dtype)), np.floating)
    except TypeError:
        return False


def cast_floats(x: Any, dtype) -> Any:
    """The floating arrays of a structure cast to `dtype`; integer arrays (token ids) left as they are."""
    return _map(lambda a: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a, x)


def float_leaves(x: Any) -> list[np.ndarray]:
    """The floating arrays of a structure."""
    return [a for a in _leaves(x) if np.issubdtype(np.asarray(a).dtype, np.floating)]


def to_tensors(x: Any) -> Any:
    """Tensors of every array of a structure."""
    return _map(ops.convert_to_tensor, x)


def variable_name(variable) -> str:
    """The variable's path (`dense/kernel`), or its name."""
    return str(getattr(variable, "path", None) or getattr(variable, "name", "variable"))


# ------------------------------------------------------------------- losses
class Head:
    """One output of a model and its loss: `name` (the output's), `key` into the y/prediction structures."""

    def __init__(self, name: str, key: Any, loss: Any, weight: float = 1.0):
        self.name, self.key, self.loss, self.weight = name, key, loss, float(weight)

    def __repr__(self) -> str:
        return f"Head({self.name!r}, {loss_name(self.loss)!r}, weight={self.weight:g})"


class MultiLoss:
    """The losses of a model with several outputs: the data loss is their weighted sum, as Keras computes it.

    `heads` lists each output's `Head`; targets and predictions are dicts
    (by output name) or lists (in output order).
    """

    def __init__(self, heads: list[Head]):
        self.heads = heads
        self.name = " + ".join(f"{h.weight:g} * {loss_name(h.loss)}({h.name})" if h.weight != 1.0
                               else f"{loss_name(h.loss)}({h.name})" for h in heads)


def _get_loss(loss: Any) -> Any:
    return keras.losses.get(loss) if isinstance(loss, str) else loss


def _output_names(model: keras.Model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    outputs = getattr(model, "outputs", None) or []
    return [getattr(t, "name", f"output_{i}") for i, t in enumerate(outputs)]


def resolve_loss(model: keras.Model, loss: Any = None) -> Any:
    """The loss to check: `loss` if given, else the compiled model's loss.

    A model with several outputs gets a `MultiLoss` (a dict or list of
    losses, with the compiled `loss_weights`; one loss for every output
    when a single one was given).
    """
    compiled = getattr(model, "loss", None)
    # The compiled `loss_weights` go with the compiled losses (also when those are passed back in).
    own = loss is None or loss is compiled
    if loss is None:
        loss = compiled
    if loss is None:
        raise ValueError(
            "The model is not compiled and no `loss` was given: compile the model or pass loss=..."
        )
    if isinstance(loss, MultiLoss):
        return loss
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    names = _output_names(model)
    weights = getattr(getattr(model, "_compile_loss", None), "_user_loss_weights", None) if own else None
    if isinstance(loss, dict):
        keys = list(loss)
        heads = [Head(str(k), k, _get_loss(loss[k]), _weight(weights, k, i)) for i, k in enumerate(keys)
                 if loss[k] is not None]
        return MultiLoss(heads)
    if isinstance(loss, (list, tuple)):
        heads = [Head(names[i] if i < len(names) else f"output_{i}", i, _get_loss(v), _weight(weights, i, i))
                 for i, v in enumerate(loss) if v is not None]
        return MultiLoss(heads)
    loss = _get_loss(loss)
    if len(names) > 1:  # one loss for every output, as Keras applies it
        return MultiLoss([Head(n, i, loss, _weight(weights, i, i)) for i, n in enumerate(names)])
    return loss


def _weight(weights: Any, key: Any, index: int) -> float:
    if weights is None:
        return 1.0
    if isinstance(weights, dict):
        return float(weights.get(key, 1.0))
    if isinstance(weights, (list, tuple)) and index < len(weights):
        return float(weights[index])
    return 1.0


def heads_of(loss: Any) -> list[Head]:
    """The heads of a loss: a `MultiLoss`'s, or one head named "output" for a single loss."""
    return list(loss.heads) if isinstance(loss, MultiLoss) else [Head("output", None, loss)]


def pick(data: Any, head: Head, names: list[str] | None = None) -> Any:
    """One head's part of targets or predictions: by output name in a dict, by position in a list."""
    if head.key is None or not (isinstance(data, (dict, list, tuple)) and _is_structure(data)):
        return data
    if isinstance(data, dict):
        if head.key in data:
            return data[head.key]
        if head.name in data:
            return data[head.name]
        raise ValueError(f"no targets for the output {head.name!r}; the data have {sorted(map(str, data))}")
    index = head.key if isinstance(head.key, int) else (names or []).index(head.name)
    return data[index]


def loss_name(loss: Any) -> str:
    """The loss's name (`sparse_categorical_crossentropy`, `huber_loss`, ...)."""
    if isinstance(loss, MultiLoss):
        return loss.name
    fn = getattr(loss, "fn", None)  # LossFunctionWrapper
    for candidate in (fn, loss):
        name = getattr(candidate, "__name__", None)
        if name:
            return name
    return str(getattr(loss, "name", None) or type(loss).__name__)



def loss_kind(loss: Any) -> tuple[str | None, dict[str, float]]:
    """Which `expected_initial_loss` kind a loss is, and its parameters.

    Returns `(kind, params)`; kind None when the loss is unknown.
    """
    params: dict[str, float] = {}
    kwargs = getattr(loss, "_fn_kwargs", {}) or {}
    smoothing = getattr(loss, "label_smoothing", kwargs.get("label_smoothing", 0.0)) or 0.0
    if isinstance(loss, MultiLoss):
        return None, params
    if isinstance(loss, MulticlassHinge):
        return "multiclass_hinge", {"margin": float(loss.margin)}
    if isinstance(loss, SparseMeanSquaredError):
        return "mse_onehot", params
    name = loss_name(loss).lower()
    from_logits = bool(kwargs.get("from_logits", getattr(loss, "from_logits", False)))
    if "smoothed_crossentropy" in name or "smoothedsparsecrossentropy" in name:
        return "crossentropy", {"label_smoothing": float(smoothing), "from_logits": float(from_logits)}
    if "binary" in name and "crossentropy" in name and "focal" not in name:
        return "binary_crossentropy", {"label_smoothing": float(smoothing), "from_logits": float(from_logits)}
    if "categorical_crossentropy" in name or "categoricalcrossentropy" in name:
        return "crossentropy", {"label_smoothing": float(smoothing), "from_logits": float(from_logits)}
    if "categorical_hinge" in name or "categoricalhinge" in name:
        return "crammer_singer_hinge", {"margin": 1.0}
    if name in ("mean_squared_error", "meansquarederror", "mse"):
        return "mse", params
    if name in ("mean_absolute_error", "meanabsoluteerror", "mae"):
        return "mae", params
    if name in ("huber", "huber_loss"):
        return "huber", {"delta": float(kwargs.get("delta", 1.0))}
    if name in ("log_cosh", "logcosh"):
        return "log_cosh", params
    return None, params


def _loss_values(loss: Any, y_true, y_pred):
    if isinstance(loss, keras.losses.Loss):
        return loss.call(y_true, y_pred)
    return loss(y_true, y_pred)


def data_loss(loss: Any, y_true, y_pred, names: list[str] | None = None):
    """The mean data loss alone: the loss function on predictions, no `model.losses`.

    Calls `Loss.call` (the per-example function) and averages, rather than
    `Loss.__call__`, which casts to the loss's own dtype (float32) and would
    throw away the float64 precision of the gradient check. A `MultiLoss`
    gives the weighted sum of its heads' mean losses.
    """
    if isinstance(loss, MultiLoss):
        total = 0.0
        for head in loss.heads:
            value = ops.mean(_loss_values(head.loss, pick(y_true, head, names), pick(y_pred, head, names)))
            total = total + head.weight * value
        return total
    return ops.mean(_loss_values(loss, y_true, y_pred))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, binary: bool = False,
             from_logits: bool = False) -> float | None:
    """Train accuracy of class scores, or None when the task is not classification.

    Argmax accuracy for two or more class scores (integer or one-hot
    labels); with `binary` (a binary cross-entropy: a sigmoid output, one
    column per label), the fraction of 0/1 labels on the right side of 0.5
    (of 0 for logits).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if binary:
        labels = y_true.reshape(len(y_true), -1) if len(y_true) else y_true
        scores = y_pred.reshape(len(y_pred), -1) if len(y_pred) else y_pred
        if labels.shape != scores.shape or not np.all(np.isin(labels, (0, 1))):
            return None
        return float(np.mean((scores > (0.0 if from_logits else 0.5)) == (labels > 0.5)))
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


def predict_batches(model: keras.Model, x: Any, batch_size: int = 256, training: bool = True):
    """Model outputs on `x` (an array or a structure) in batches: one NumPy array, or their structure."""
    n = num_examples(x)
    outputs = [_map(as_array, model(take(x, slice(i, i + batch_size)), training=training))
               for i in range(0, n, batch_size)]
    return concat(outputs)


def concat(parts: list[Any]) -> Any:
    """The batches of outputs (arrays, or structures of them) joined along the examples."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)) and _is_structure(first):
        return type(first)(concat([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


# ------------------------------------------------------------ float64 clone
_is_floating = is_floating


def clone_float64(model: keras.Model, sample: Any) -> keras.Model:
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
        # Float inputs become float64; integer inputs (token ids) keep their dtype.
        new_inputs = [
            keras.Input(
                shape=tuple(t.shape[1:]),
                dtype="float64" if _is_floating(t.dtype) else t.dtype,
                name=getattr(t, "name", None),
            )
            for t in inputs
        ]
        structure, _ = io_structure(model)
        if isinstance(structure, dict):  # named inputs: the clone takes the same dict
            by_name = {getattr(t, "name", None): new for t, new in zip(inputs, new_inputs, strict=True)}
            input_tensors = {k: by_name.get(getattr(v, "name", None), new_inputs[i])
                             for i, (k, v) in enumerate(structure.items())}
        else:
            input_tensors = new_inputs if len(new_inputs) > 1 else new_inputs[0]
        clone = keras.models.clone_model(
            model,
            input_tensors=input_tensors,
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
                raise ValueError(f"cannot rebuild {type(model).__name__} from its config: {first_line(error)}") from None
            clone(cast_floats(take(sample, slice(0, 1)), np.float64), training=False)
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
