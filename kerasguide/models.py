"""Model builders from the config: MLP, CNN (1-D and 2-D), or the user's own.

Recipes B4-B8 and C9-C11: the initializer, bias constant, batch norm placed
after the dense/conv and before the nonlinearity, dropout, L1/L2 on weights
(not biases unless asked) and a max-norm constraint all come from the
config's `model` section. The output layer is a softmax for cross-entropy
(Keras turns it back into logits inside the loss) and linear scores for the
hinge and MSE losses; one sigmoid unit for a binary task; for regression a
linear unit per target column, rescaled to the targets' units (`data.task`).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kerasguide.builders import build_user_model, load_user_builder  # noqa: F401  (load_user_builder: re-exported)
from kerasguide.config import ConfigError, ModelConfig, OptimizerConfig, RunConfig
from kerasguide.initializers import SparseInitializer
from kerasguide.layers import DropConnectDense
from kerasguide.losses import MulticlassHinge, SparseMeanSquaredError
from kerasguide.tasks import task_settings

__all__ = [
    "build_model",
    "make_initializer",
    "make_regularizer",
    "make_optimizer",
    "make_loss",
    "make_metrics",
    "load_user_builder",
]


def make_initializer(config: ModelConfig, seed: int | None = None) -> keras.initializers.Initializer:
    """The kernel initializer named by `model.kernel_initializer` (recipes B4-B6)."""
    name = config.kernel_initializer
    if name == "sparse":
        # He scaling over the k real inputs keeps the activations' variance.
        return SparseInitializer(k=config.sparse_k, stddev=(2.0 / config.sparse_k) ** 0.5, seed=seed)
    if name == "normal":
        return keras.initializers.RandomNormal(stddev=config.init_stddev, seed=seed)
    if name == "zeros":
        return keras.initializers.Zeros()
    return keras.initializers.get({"class_name": name, "config": {"seed": seed}})


def make_regularizer(config: ModelConfig) -> keras.regularizers.Regularizer | None:
    """L1, L2 or elastic net `l1*|w| + l2*w^2` (Keras' L1L2), or None (recipe C9)."""
    if config.l1 == 0 and config.l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=config.l1, l2=config.l2)


def _layer_kwargs(config: ModelConfig, seed: int | None, index: int) -> dict[str, Any]:
    regularizer = make_regularizer(config)
    kwargs: dict[str, Any] = {
        "kernel_initializer": make_initializer(config, None if seed is None else seed + index),
        "bias_initializer": keras.initializers.Constant(config.bias_init),
        "kernel_regularizer": regularizer,
        "bias_regularizer": regularizer if config.regularize_bias else None,
    }
    if config.max_norm is not None:
        kwargs["kernel_constraint"] = keras.constraints.MaxNorm(config.max_norm)
    return kwargs


def _activation(name: str) -> keras.layers.Layer:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01)
    return keras.layers.Activation(name)


def _block(x, layer: keras.layers.Layer, config: ModelConfig, dropout: bool = True):
    x = layer(x)
    if config.batch_norm:
        # Recipe B8: BN after the linear map, before the nonlinearity.
        x = keras.layers.BatchNormalization()(x)
    x = _activation(config.activation)(x)
    if dropout and config.dropout > 0:
        x = keras.layers.Dropout(config.dropout)(x)
    return x


def build_model(
    config: RunConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    image_shape: tuple[int, ...] | None = None,
    *,
    target_stats: tuple[Any, Any] | None = None,
) -> keras.Model:
    """Build (not compile) the network the config describes.

    Args:
        config: The run config; its `model` and `train` sections are used.
        input_shape: The shape of one preprocessed example.
        num_classes: Number of output classes (0 for regression).
        image_shape: `(h, w, c)` when the examples are images (flattened or
            not); a 2-D CNN reshapes flat inputs to it. Defaults to `None`.
        target_stats: Regression: `(mean, std)` of the training targets, a
            number or one per column (`Dataset.target_stats`); `(0, 1)` if
            None. Defaults to `None`.

    Example:

    >>> from kerasguide.config import RunConfig
    >>> model = build_model(RunConfig(), (64,), 10)
    >>> model.output_shape
    (None, 10)
    """
    mc = config.model
    seed = config.train.seed
    if mc.builder is not None or mc.saved_model is not None:
        return build_user_model(config, input_shape, num_classes)
    if not isinstance(input_shape, tuple):
        raise ConfigError(f"model.kind = {mc.kind!r} takes one input array; data.source gives several "
                          f"({input_shape}): build the model yourself (model.kind = \"python:PATH:FUNCTION\")")
    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    index = 0
    if mc.kind == "cnn":
        dims = mc.conv_dims
        if dims == "auto":
            dims = "2d" if (len(input_shape) == 3 or image_shape is not None and len(image_shape) == 3 and image_shape[0] > 1 and image_shape[1] > 1) else "1d"
        if dims == "2d":
            if len(input_shape) != 3:
                if image_shape is None or len(image_shape) != 3:
                    raise ConfigError(
                        f"model.conv_dims = '2d' needs image data; examples have shape {input_shape}"
                    )
                x = keras.layers.Reshape(image_shape)(x)
            conv, pool = keras.layers.Conv2D, keras.layers.MaxPooling2D
            flatten = keras.layers.GlobalAveragePooling2D
        else:
            if len(input_shape) == 1:
                x = keras.layers.Reshape((input_shape[0], 1))(x)
            elif len(input_shape) != 2:
                raise ConfigError(f"model.conv_dims = '1d' needs sequences; examples have shape {input_shape}")
            conv, pool = keras.layers.Conv1D, keras.layers.MaxPooling1D
            flatten = keras.layers.Flatten
        for filters in mc.filters:
            layer = conv(filters, mc.kernel_size, strides=mc.strides, padding="same",
                         use_bias=not mc.batch_norm, **_layer_kwargs(mc, seed, index))
            index += 1
            x = _block(x, layer, mc, dropout=False)
            if mc.pool > 1 and x.shape[1] >= mc.pool:
                x = pool(mc.pool)(x)
        x = flatten()(x)
    elif len(input_shape) > 1:
        x = keras.layers.Flatten()(x)
    for units in mc.hidden:
        if mc.dropconnect > 0:
            layer = DropConnectDense(units, rate=mc.dropconnect, seed=seed + index,
                                     use_bias=not mc.batch_norm, **_layer_kwargs(mc, seed, index))
        else:
            layer = keras.layers.Dense(units, use_bias=not mc.batch_norm, **_layer_kwargs(mc, seed, index))
        index += 1
        x = _block(x, layer, mc)
    head = _layer_kwargs(mc, seed, index)
    if mc.kernel_initializer in ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform"):
        # Small output scores, so the initial loss sits at chance (recipe D12); plain Glorot after a
        # He-initialized ReLU stack starts far above it (benchmarks/README.md, "output layer").
        head["kernel_initializer"] = keras.initializers.VarianceScaling(
            scale=1e-3, mode="fan_avg", distribution="uniform", seed=seed + index
        )
    head["bias_initializer"] = "zeros"
    settings = task_settings(config)
    if settings.task == "regression":
        # The network predicts standardized targets, a fixed affine map puts them back in the targets'
        # units: the loss and metrics read the real units, Adam's steps stay well scaled, and the small
        # head starts every prediction at the training mean (initial MSE = the targets' variance, D12).
        mean, std = _regression_stats(config, target_stats)
        x = keras.layers.Dense(len(mean), name="output", dtype="float32", **head)(x)
        outputs = keras.layers.Rescaling(_number_or_list(std), _number_or_list(mean), name="target_scale",
                                         dtype="float32")(x)
    elif settings.task == "binary":
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output", dtype="float32", **head)(x)
    else:
        activation = "softmax" if settings.loss == "sparse_categorical_crossentropy" else None
        outputs = keras.layers.Dense(num_classes, activation=activation, name="output", dtype="float32", **head)(x)
    return keras.Model(inputs, outputs, name=config.name.replace(".", "_").replace("-", "_"))


def _regression_stats(config: RunConfig, target_stats: tuple[Any, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    mean, std = target_stats if target_stats is not None else (0.0, 1.0)
    mean, std = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    return mean, np.where(std > 1e-12, std, 1.0)  # a constant target: scale 1


def _number_or_list(values: np.ndarray) -> float | list[float]:
    return float(values[0]) if values.size == 1 else [float(v) for v in values]


def make_optimizer(config: OptimizerConfig, learning_rate: Any) -> keras.optimizers.Optimizer:
    """The optimizer of the config (recipe F21), with EMA and clipping when asked."""
    common: dict[str, Any] = {
        "learning_rate": learning_rate,
        "use_ema": config.ema,
        "ema_momentum": config.ema_momentum,
        "clipnorm": config.clipnorm,
        "global_clipnorm": config.global_clipnorm,
    }
    if config.weight_decay is not None:
        common["weight_decay"] = config.weight_decay
    name = config.name
    if name == "sgd":
        return keras.optimizers.SGD(momentum=config.momentum, nesterov=config.nesterov, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(**common)
    if name == "adamw":
        common.setdefault("weight_decay", 0.004)
        return keras.optimizers.AdamW(beta_1=config.beta_1, beta_2=config.beta_2, **common)
    return keras.optimizers.Adam(beta_1=config.beta_1, beta_2=config.beta_2, **common)


def make_loss(config: RunConfig) -> keras.losses.Loss:
    """The loss named by `train.loss`, for the run's task (`kerasguide.tasks.task_settings`).

    `mse` is against the one-hot labels for classification (`SparseMeanSquaredError`), against the
    targets themselves for regression.
    """
    train = config.train
    settings = task_settings(config)
    if settings.task == "regression":
        if settings.loss == "huber":
            return keras.losses.Huber(delta=train.huber_delta)
        return keras.losses.MeanAbsoluteError() if settings.loss == "mae" else keras.losses.MeanSquaredError()
    if settings.task == "binary":
        return keras.losses.BinaryCrossentropy(label_smoothing=train.label_smoothing)
    if train.loss == "categorical_hinge":
        return MulticlassHinge()
    if train.loss == "mse":
        return SparseMeanSquaredError()
    if train.label_smoothing > 0:
        return _SmoothedSparseCrossentropy(train.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


@keras.saving.register_keras_serializable(package="kerasguide")
class _SmoothedSparseCrossentropy(keras.losses.Loss):
    # Keras' sparse crossentropy has no label smoothing; one-hot then smooth.
    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), classes)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_metrics(config: RunConfig) -> list[keras.metrics.Metric]:
    metrics: list[keras.metrics.Metric] = []
    settings = task_settings(config)
    for name in settings.metrics:
        if name == "accuracy" and settings.task == "binary":
            metrics.append(keras.metrics.BinaryAccuracy(name="accuracy"))
        elif name == "accuracy":
            metrics.append(keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        elif name == "top3_accuracy":
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3_accuracy"))
        elif name == "mae":
            metrics.append(keras.metrics.MeanAbsoluteError(name="mae"))
        elif name == "rmse":
            metrics.append(keras.metrics.RootMeanSquaredError(name="rmse"))
    return metrics
