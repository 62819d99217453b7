"""Layers Keras lacks: DropConnect (recipe C11).

Keras has inverted `Dropout` (activations dropped, kept ones scaled by
`1/(1-p)` in training so inference needs no change). DropConnect drops
*weights* instead: each forward pass in training multiplies the kernel by a
fresh Bernoulli mask, with the same inverted scaling.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["DropConnectDense"]


@keras.saving.register_keras_serializable(package="kerasguide")
class DropConnectDense(keras.layers.Dense):
    """A `Dense` layer whose weights are dropped at random in training (DropConnect).

    In training every kernel entry is kept with probability `1 - rate` and
    scaled by `1 / (1 - rate)` (inverted scaling), so at inference the layer
    is a plain `Dense` and needs no change. Biases are not dropped.

    Args:
        units: Output units.
        rate: Fraction of weights dropped, in `[0, 1)`. Defaults to `0.5`.
        seed: Seed of the masks. Defaults to `None`.
        **kwargs: Everything `keras.layers.Dense` takes.

    Example:

    >>> import numpy as np
    >>> layer = DropConnectDense(4, rate=0.5)
    >>> layer(np.ones((2, 3), "float32"), training=False).shape
    (2, 4)
    """

    def __init__(self, units: int, rate: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(units, **kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Argument `rate` must be in [0, 1). Received: rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        kernel = self.kernel
        if training and self.rate > 0:
            keep = keras.random.uniform(ops.shape(kernel), seed=self.seed_generator) >= self.rate
            kernel = ops.where(keep, kernel / (1.0 - self.rate), ops.zeros_like(kernel))
        outputs = ops.matmul(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
