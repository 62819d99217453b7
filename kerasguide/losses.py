"""Losses Keras lacks: the multiclass SVM (Weston-Watkins) hinge with integer labels.

Keras' `categorical_hinge` is the Crammer-Singer form (max over wrong
classes, one-hot labels). The recipe's multiclass SVM sums the margins over
every wrong class, so a fresh network with near-zero scores has loss `C - 1`
(recipe D12); that is what the initial-loss check expects.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["MulticlassHinge", "SparseMeanSquaredError"]


@keras.saving.register_keras_serializable(package="kerasguide")
class MulticlassHinge(keras.losses.Loss):
    """`sum_{j != y} max(0, s_j - s_y + margin)` with integer labels `y`.

    Args:
        margin: The margin Delta. Defaults to `1.0`.
        name: Defaults to `"multiclass_hinge"`.

    Example:

    >>> import numpy as np
    >>> float(MulticlassHinge()(np.array([0]), np.zeros((1, 10))))
    9.0
    """

    def __init__(self, margin: float = 1.0, name: str = "multiclass_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        if margin <= 0:
            raise ValueError(f"Argument `margin` must be > 0. Received: margin={margin}")
        self.margin = margin

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        classes = ops.shape(y_pred)[-1]
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        onehot = ops.one_hot(y_true, classes, dtype=y_pred.dtype)
        correct = ops.sum(y_pred * onehot, axis=-1, keepdims=True)
        margins = ops.maximum(0.0, y_pred - correct + self.margin) * (1.0 - onehot)
        return ops.sum(margins, axis=-1)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="kerasguide")
class SparseMeanSquaredError(keras.losses.Loss):
    """Mean squared error between scores and the one-hot encoding of integer labels.

    Example:

    >>> import numpy as np
    >>> float(SparseMeanSquaredError()(np.array([1]), np.array([[0.0, 1.0]])))
    0.0
    """

    def __init__(self, name: str = "sparse_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        classes = ops.shape(y_pred)[-1]
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        onehot = ops.one_hot(y_true, classes, dtype=y_pred.dtype)
        return ops.mean(ops.square(y_pred - onehot), axis=-1)
