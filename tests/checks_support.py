"""Tiny models and planted bugs shared by the sanity-check tests."""

from __future__ import annotations

import functools

import numpy as np

from kerasguide._logging import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402


@functools.lru_cache(maxsize=1)
def digits_arrays():
    """Standardized digits, split 80/20: (x_train, y_train, x_val, y_val), float32/int64."""
    from kerasguide.config import DataConfig
    from kerasguide.data import load_dataset

    ds = load_dataset(DataConfig(source="digits"), seed=0)
    return ds.x_train, ds.y_train, ds.x_val, ds.y_val


def mlp(
    hidden: int = 16,
    activation: str = "relu",
    kernel_initializer="he_normal",
    bias_initializer="zeros",
    head_initializer=None,
    head_activation: str | None = "softmax",
    regularizer=None,
    dropout: float = 0.0,
    extra=None,
    inputs: int = 64,
    classes: int = 10,
    seed: int = 0,
) -> keras.Model:
    """Input -> Dense(hidden) -> activation [-> dropout] [-> extra layer] -> Dense(classes)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((inputs,), name="inputs")
    x = keras.layers.Dense(
        hidden,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=regularizer,
        name="hidden",
    )(inp)
    x = keras.layers.Activation(activation, name="act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop")(x)
    if extra is not None:
        x = extra(x)
    head = head_initializer or keras.initializers.VarianceScaling(0.01, "fan_avg", "uniform", seed=seed)
    out = keras.layers.Dense(classes, activation=head_activation, kernel_initializer=head, name="output")(x)
    return keras.Model(inp, out)


def compiled(model: keras.Model, loss="sparse_categorical_crossentropy", lr: float = 1e-2) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss)
    return model


# ------------------------------------------------------------- planted bugs
@keras.saving.register_keras_serializable(package="kerasguide_tests")
class NegativeL2(keras.regularizers.Regularizer):
    """A regularizer whose sign is flipped: it rewards large weights (breaks D13)."""

    def __init__(self, l2: float = 1e-2):
        self.l2 = l2

    def __call__(self, x):
        return -self.l2 * ops.sum(ops.square(x))

    def get_config(self):
        return {"l2": self.l2}


@keras.saving.register_keras_serializable(package="kerasguide_tests")
class StopGradient(keras.layers.Layer):
    """`stop_gradient` in the forward path: nothing before it can learn (breaks D14)."""

    def call(self, x):
        return ops.stop_gradient(x)


@keras.saving.register_keras_serializable(package="kerasguide_tests")
class Disconnect(keras.layers.Layer):
    """Multiplies by zero: the output no longer depends on the input (breaks D14)."""

    def call(self, x):
        return x * 0.0


@keras.saving.register_keras_serializable(package="kerasguide_tests")
class HandDense(keras.layers.Layer):
    """A dense layer with a hand-written gradient (`tf.custom_gradient`).

    `kernel_factor` / `bias_factor` != 1 plant a wrong gradient on that
    tensor only (breaks D15); the forward pass stays right.
    """

    def __init__(self, units: int, kernel_factor: float = 1.0, bias_factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_factor = kernel_factor
        self.bias_factor = bias_factor

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="random_normal", name="bias")

    def call(self, x):
        kernel_factor, bias_factor = self.kernel_factor, self.bias_factor

        @tf.custom_gradient
        def affine(x, w, b):
            def grad(dy):
                dx = tf.matmul(dy, w, transpose_b=True)
                dw = kernel_factor * tf.matmul(x, dy, transpose_a=True)
                db = bias_factor * tf.reduce_sum(dy, axis=0)
                return dx, dw, db

            return tf.matmul(x, w) + b, grad

        return affine(x, tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.bias))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_factor": self.kernel_factor,
            "bias_factor": self.bias_factor,
        }


def hand_model(kernel_factor: float = 1.0, bias_factor: float = 1.0, inputs: int = 8, classes: int = 3):
    keras.utils.set_random_seed(0)
    inp = keras.Input((inputs,))
    x = HandDense(6, kernel_factor=kernel_factor, bias_factor=bias_factor, name="hand")(inp)
    x = keras.layers.Activation("tanh")(x)
    out = keras.layers.Dense(classes, activation="softmax", name="output")(x)
    return compiled(keras.Model(inp, out))


def weights_of(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in model.variables]


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))
