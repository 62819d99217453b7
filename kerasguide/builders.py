"""Your own model in the config: a `python:PATH:FUNCTION` builder, a keras-tuner `HyperModel`, a saved `.keras`.

A builder is any callable in a Python file; kerasguide passes it only the
arguments it names, from `hp`, `config`, `input_shape` and `num_classes`:

```python
def build(hp, input_shape, num_classes):
    units = hp.Int("units", 16, 256, sampling="log", default=64)
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(units, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
```

`hp` is a keras-tuner `HyperParameters`: outside a search each declaration
returns the value the config gives in `[model.hp]`, else its `default`;
`kerasguide tune` searches the declared ones together with the config's
keys. `python:PATH:NAME` may also name a `keras_tuner.HyperModel` subclass
(its `build(hp)` is called). A builder may return a compiled model, whose
optimizer, loss and metrics the run keeps, or an uncompiled one, compiled
from the config.

`keras:PATH.keras` starts from a saved model (fine-tuning); `model.freeze`
freezes its first N layers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kerasguide._logging import import_tensorflow
from kerasguide.config import ConfigError, RunConfig
from kerasguide.errors import one_line

import_tensorflow()  # before keras-tuner imports Keras: hides TensorFlow's start-up chatter

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

import kerasguide.initializers  # noqa: E402, F401  (registers custom objects for loading)
import kerasguide.layers  # noqa: E402, F401
import kerasguide.losses  # noqa: E402, F401

__all__ = [
    "DeclaredHyperParameters",
    "load_user_builder",
    "call_builder",
    "build_user_model",
    "load_saved_model",
    "declared_hyperparameters",
    "is_compiled",
    "user_code_record",
    "data_code_record",
]

_ARGUMENTS = ("hp", "config", "input_shape", "num_classes")


class DeclaredHyperParameters(kt.HyperParameters):
    """keras-tuner's `HyperParameters`, refusing a name declared twice with another range.

    keras-tuner returns the first declaration's value for the second one
    silently; a builder that declares `units` as 16..64 in one place and
    32..512 in another would search neither as written.
    """

    def _declare(self, kind: str, name: str, settings: dict[str, Any]):
        seen = getattr(self, "_declared", None)
        if seen is None:
            seen = self._declared = {}
        key = self._get_name(name) if hasattr(self, "_get_name") else name
        settings = {k: v for k, v in settings.items() if k not in ("parent_name", "parent_values")}
        if key in seen and seen[key] != (kind, settings):
            first_kind, first = seen[key]
            raise ConfigError(
                f"model.kind: the builder declares hyperparameter {name!r} twice with different ranges "
                f"({first_kind} {first} and {kind} {settings}); give each its own name"
            )
        seen[key] = (kind, settings)

    def Choice(self, name, values, ordered=None, default=None, parent_name=None, parent_values=None):  # noqa: N802
        self._declare("Choice", name, {"values": list(values), "ordered": ordered, "default": default})
        return super().Choice(name, values, ordered=ordered, default=default, parent_name=parent_name,
                              parent_values=parent_values)

    def Int(self, name, min_value, max_value, step=None, sampling="linear", default=None,  # noqa: N802
            parent_name=None, parent_values=None):
        self._declare("Int", name, {"min_value": min_value, "max_value": max_value, "step": step,
                                    "sampling": sampling, "default": default})
        return super().Int(name, min_value, max_value, step=step, sampling=sampling, default=default,
                           parent_name=parent_name, parent_values=parent_values)

    def Float(self, name, min_value, max_value, step=None, sampling="linear", default=None,  # noqa: N802
              parent_name=None, parent_values=None):
        self._declare("Float", name, {"min_value": min_value, "max_value": max_value, "step": step,
                                      "sampling": sampling, "default": default})
        return super().Float(name, min_value, max_value, step=step, sampling=sampling, default=default,
                             parent_name=parent_name, parent_values=parent_values)

    def Boolean(self, name, default=False, parent_name=None, parent_values=None):  # noqa: N802
        self._declare("Boolean", name, {"default": default})
        return super().Boolean(name, default=default, parent_name=parent_name, parent_values=parent_values)

    def Fixed(self, name, value, parent_name=None, parent_values=None):  # noqa: N802
        self._declare("Fixed", name, {"value": value})
        return super().Fixed(name, value, parent_name=parent_name, parent_values=parent_values)


def load_user_builder(path: str, name: str, key: str = "model.kind") -> Callable[..., Any]:
    """Import `name` from the Python file `path` (explicit user code, recorded in run.json).

    A `keras_tuner.HyperModel` subclass (or instance) comes back as its bound `build(hp)`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{key}: builder file {path!r} does not exist")
    module_name = f"kerasguide_user_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{key}: cannot import {path!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as exit_:  # a `sys.exit()` in the user's file is its error, not kerasguide's exit code
        raise ConfigError(f"{key}: importing {path!r} called sys.exit({exit_.code!r})") from None
    except Exception as error:
        raise ConfigError(one_line(f"{key}: importing {path!r} failed: {type(error).__name__}: {error}")) from None
    builder = getattr(module, name, None)
    if isinstance(builder, type) and issubclass(builder, kt.HyperModel):
        try:
            builder = builder()
        except Exception as error:
            raise ConfigError(f"{key}: {name}() in {path} (a HyperModel) could not be made: "
                              f"{type(error).__name__}: {error}") from None
    if isinstance(builder, kt.HyperModel):
        hypermodel = builder

        def build(hp):  # keras-tuner wraps `build` in (hp, *args, **kwargs): call it with `hp` alone
            return hypermodel.build(hp)

        return build
    if not callable(builder):
        raise ConfigError(f"{key}: {path!r} has no function {name!r}")
    return builder


def _accepted(builder: Callable[..., Any]) -> tuple[set[str], bool]:
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # a builtin or an odd callable: give it everything by keyword
        return set(_ARGUMENTS), True
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in parameters)


def call_builder(builder: Callable[..., Any], where: str, *, hp: kt.HyperParameters | None, config: RunConfig,
                 input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Call a user's builder with the arguments it names; one line for whatever goes wrong."""
    names, any_keyword = _accepted(builder)
    given = {"hp": hp, "config": config, "input_shape": input_shape, "num_classes": num_classes}
    kwargs = {k: v for k, v in given.items() if any_keyword or k in names}
    try:
        model = builder(**kwargs)
    except ConfigError:
        raise
    except SystemExit as exit_:  # exited 7 and left run.json `running`: an error of the builder instead
        raise ConfigError(f"model.kind: {where} called sys.exit({exit_.code!r}); a builder returns a keras.Model") from None
    except Exception as error:
        raise ConfigError(one_line(f"model.kind: {where} raised {type(error).__name__}: {error}")) from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"model.kind: {where} returned {type(model).__name__}, not a keras.Model")
    return model


def _hp_for(config: RunConfig) -> DeclaredHyperParameters:
    hp = DeclaredHyperParameters()
    hp.values.update(config.model.hp)  # a declaration then returns this value instead of its default
    return hp


def build_user_model(config: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The model of a `python:` or `keras:` `model.kind`."""
    mc = config.model
    if mc.saved_model is not None:
        return load_saved_model(mc.saved_model, mc.freeze)
    path, name = mc.builder
    builder = load_user_builder(path, name)
    hp = _hp_for(config)
    model = call_builder(builder, f"{name}() in {path}", hp=hp, config=config, input_shape=input_shape,
                         num_classes=num_classes)
    _build(model, input_shape, f"{name}() in {path}")
    if not is_compiled(model):  # compiled from the config: its loss needs the output the task's labels take
        _check_output(model, config, num_classes, input_shape, f"{name}() in {path}")
    unknown = sorted(set(mc.hp) - {p.name for p in hp.space})
    if unknown:
        raise ConfigError(f"model.hp: {', '.join(unknown)}: the builder declares no such hyperparameter "
                          f"(it declares: {', '.join(p.name for p in hp.space) or 'none'})")
    return model


def _build(model: keras.Model, input_shape: tuple[int, ...], where: str) -> None:
    """Create a subclassed model's weights now (Keras waits for its first call): the checks, the parameter
    count and the first-layer images need them before training."""
    if model.built and model.weights:
        return
    try:  # a call, not `build()`: a subclassed model without its own `build` makes its layers in `call`
        model(_zeros(input_shape), training=False)
    except SystemExit as exit_:
        raise ConfigError(f"model.kind: {where}: calling the model called sys.exit({exit_.code!r})") from None
    except Exception as error:
        raise ConfigError(f"model.kind: {where}: the model cannot be built on inputs of shape {input_shape}: "
                          f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None


def _zeros(input_shape: Any) -> Any:
    return keras.tree.map_shape_structure(lambda shape: np.zeros((1, *shape), "float32"), input_shape)


def _output_shape(model: keras.Model, input_shape: Any) -> tuple[Any, ...] | None:
    """The model's single output shape (batch first), or None for several outputs or one it cannot tell."""
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):  # a subclassed model: ask a call on one example
        try:
            output = model(_zeros(input_shape), training=False)
        except Exception:  # noqa: BLE001 - _build already said whether it runs
            return None
        shape = (None, *tuple(output.shape)[1:]) if hasattr(output, "shape") else None
    if not isinstance(shape, tuple) or not all(d is None or isinstance(d, int) for d in shape):
        return None  # several outputs: their loss is the builder's to choose
    return shape


def _check_output(model: keras.Model, config: RunConfig, num_classes: int, input_shape: Any, where: str) -> None:
    """Classification and binary models compiled from the config need (batch, classes) and (batch, 1) outputs:
    another shape was a 59-line TensorFlow dump at the first step; here it is one line naming the builder."""
    from kerasguide.tasks import task_settings

    task = task_settings(config).task
    expected = {"classification": num_classes or None, "binary": 1}.get(task)  # no classes: the data are a regression
    if expected is None:
        return  # regression: as many outputs as target columns, which the data stage knows
    shape = _output_shape(model, input_shape)
    if shape is None:
        return
    if len(shape) != 2 or shape[-1] != expected:
        raise ConfigError(f"model.kind: {where} returns a model with output shape {shape}; the {task} task of "
                          f"this data needs (None, {expected}) ({'one score per class' if task == 'classification' else 'one sigmoid probability'})")


def _file_sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError:
        return None  # no such file: the import says so


def user_code_record(config: RunConfig) -> dict[str, Any] | None:
    """run.json's `user_code` of a `python:` builder: its file, function, `hp` values and the file's sha256 (recipe
    I32, code identity), written before it is imported so that a builder that fails is recorded too."""
    if config.model.builder is None:
        return None
    path, name = config.model.builder
    return {"path": path, "function": name, "hp": dict(config.model.hp), "sha256": _file_sha256(path)}


def data_code_record(config: RunConfig) -> dict[str, Any] | None:
    """run.json's `data_code` of a `python:PATH:FUNCTION` data source: its file, function and the file's sha256."""
    source = config.data.source
    if not source.startswith("python:"):
        return None
    path, _, name = source[len("python:"):].rpartition(":")
    return {"path": path, "function": name, "sha256": _file_sha256(path)}


def declared_hyperparameters(config: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> kt.HyperParameters:
    """The hyperparameters a `python:` builder declares (it is built once, with the config's values)."""
    if config.model.builder is None:
        return kt.HyperParameters()
    path, name = config.model.builder
    hp = _hp_for(config)
    call_builder(load_user_builder(path, name), f"{name}() in {path}", hp=hp, config=config,
                 input_shape=input_shape, num_classes=num_classes)
    keras.backend.clear_session()
    return hp


def load_saved_model(path: str, freeze: int = 0) -> keras.Model:
    """A saved `.keras` model, compiled as it was saved if it was, its first `freeze` layers frozen."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"model.kind: saved model {path!r} does not exist")
    try:
        model = keras.models.load_model(file)
    except Exception as error:
        raise ConfigError(f"model.kind: cannot load {path!r} as a Keras model: {type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}") from None
    if freeze:
        layers = [layer for layer in model.layers if layer.weights]
        if freeze > len(layers):
            raise ConfigError(f"model.freeze = {freeze}: {path} has only {len(layers)} layers with weights")
        for layer in layers[:freeze]:
            layer.trainable = False
    return model


def is_compiled(model: keras.Model) -> bool:
    """True for a model that comes with its own optimizer and loss (kept by the run)."""
    return getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None
