"""What nonlinearity a layer applies, and the families that decide what "dead" and "saturated" mean (B5, E19).

Shared by the sanity checks (activations at init) and the monitors (the probe
batch during training), so both name a layer's activation alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RELU_LIKE", "TANH_LIKE", "SIGMOID_LIKE", "activation_kind"]

# A unit of these is dead when it is <= 0 for every example (it passes no gradient).
RELU_LIKE = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "hard_silu", "hard_swish",
             "mish", "celu", "prelu")
# These saturate near +-1 ...
TANH_LIKE = ("tanh", "softsign", "hard_tanh")
# ... and these near 0 and 1.
SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")

# Keras' activation layers, by class name along the MRO: this module imports no Keras (the monitors'
# maths stay NumPy only) and still sees a subclass of `keras.layers.ReLU`.
_LAYER_KINDS = {"LeakyReLU": "leaky_relu", "ReLU": "relu", "ELU": "elu", "PReLU": "prelu", "Softmax": "softmax"}


def activation_kind(layer: Any) -> str | None:
    """The nonlinearity a Keras layer applies (`"relu"`, `"tanh"`, ...), or None if it is linear."""
    for cls in type(layer).__mro__:
        name = _LAYER_KINDS.get(cls.__name__) if cls.__module__.startswith("keras") else None
        if name is not None:
            return "leaky_relu" if name == "relu" and getattr(layer, "negative_slope", 0) else name
    fn = getattr(layer, "activation", None)
    if fn is None or not callable(fn):
        return None
    name = (getattr(fn, "__name__", None) or type(fn).__name__).lower()
    return None if name == "linear" else name
