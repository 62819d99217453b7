"""Initializers Keras lacks: sparse initialization (recipe B6).

Keras has He/Kaiming (`he_normal`, `he_uniform`: std `sqrt(2/fan_in)`, for
ReLU) and Xavier/Glorot (`glorot_*`) already, with `fan_in` of a conv kernel
being `channels * k * k` (recipe B4); kerasguide uses those as they are.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["SparseInitializer"]


@keras.saving.register_keras_serializable(package="kerasguide")
class SparseInitializer(keras.initializers.Initializer):
    """Sparse initialization: each unit connected to exactly `k` random inputs.

    Every output unit (the last axis of the kernel) gets `k` non-zero weights
    drawn from a normal distribution with standard deviation `stddev`, at
    input positions chosen at random; all its other weights are zero. Unlike
    an all-zero init this still breaks symmetry (recipes B5, B6). For a conv
    kernel the inputs of a unit are its `k x k x channels` taps.

    Args:
        k: Non-zero inputs per unit; capped at the fan-in. Defaults to `10`.
        stddev: Standard deviation of the non-zero weights. Defaults to `1.0`.
        seed: Integer seed for reproducibility. Defaults to `None`.

    Example:

    >>> init = SparseInitializer(k=3, seed=0)
    >>> w = init((20, 4))
    >>> [int(c) for c in (w.numpy() != 0).sum(axis=0)]
    [3, 3, 3, 3]
    """

    def __init__(self, k: int = 10, stddev: float = 1.0, seed: int | None = None):
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"Argument `k` must be a positive integer. Received: k={k}")
        if stddev <= 0:
            raise ValueError(f"Argument `stddev` must be > 0. Received: stddev={stddev}")
        self.k = k
        self.stddev = stddev
        self.seed = seed
        self._calls = 0

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError(f"SparseInitializer needs a kernel of rank >= 2. Received: shape={shape}")
        fan_in = int(np.prod(shape[:-1]))
        units = shape[-1]
        k = min(self.k, fan_in)
        # Built with NumPy: the per-unit choice of k positions without
        # replacement has no keras.ops equivalent.
        seed = None if self.seed is None else self.seed + self._calls
        self._calls += 1
        rng = np.random.default_rng(seed)
        kernel = np.zeros((fan_in, units), dtype=np.float64)
        for unit in range(units):
            rows = rng.choice(fan_in, size=k, replace=False)
            kernel[rows, unit] = rng.normal(0.0, self.stddev, size=k)
        dtype = keras.backend.standardize_dtype(dtype or keras.backend.floatx())
        return keras.ops.convert_to_tensor(kernel.reshape(shape), dtype=dtype)

    def get_config(self):
        return {"k": self.k, "stddev": self.stddev, "seed": self.seed}
