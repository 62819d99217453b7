"""Initialization (recipes B5, E19): symmetry breaking and activation statistics at init."""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasguide.activations import RELU_LIKE, SIGMOID_LIKE, TANH_LIKE, activation_kind
from kerasguide.checks._keras import (
    all_layers,
    as_array,
    as_data,
    float_leaves,
    keras,
    noise_off,
    num_examples,
    preserve_state,
    take,
    variable_name,
)
from kerasguide.checks.result import CheckResult
from kerasguide.training import io_structure

__all__ = ["check_initialization", "activation_stats"]



def activation_stats(output: np.ndarray, activation: str, saturation: float = 0.99) -> dict[str, Any]:
    """Statistics of one layer's activations on a probe batch (recipe E19).

    A unit is a channel (the last axis). `dead_fraction`: the fraction of
    ReLU-like units that are <= 0 for every example and position (they pass
    no gradient). `saturated_fraction`: the fraction of tanh-like values with
    `|a| > saturation`, of sigmoid-like values outside `[1 - s, s]`, or of
    softmax rows whose top probability exceeds `saturation`.

    Example:

    >>> stats = activation_stats(np.array([[0.0, 1.0], [0.0, 2.0]]), "relu")
    >>> stats["dead_fraction"]
    0.5
    """
    out = np.asarray(output, dtype=np.float64)
    units = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out.reshape(-1, 1)
    stats: dict[str, Any] = {
        "activation": activation,
        "std": float(units.std()),
        "mean": float(units.mean()),
        "units": int(units.shape[1]),
        "dead_fraction": 0.0,
        "saturated_fraction": 0.0,
    }
    if activation in RELU_LIKE:
        stats["dead_fraction"] = float(np.mean(np.all(units <= 0.0, axis=0)))
    elif activation in TANH_LIKE:
        stats["saturated_fraction"] = float(np.mean(np.abs(units) > saturation))
    elif activation in SIGMOID_LIKE:
        stats["saturated_fraction"] = float(np.mean((units > saturation) | (units < 1.0 - saturation)))
    elif activation == "softmax":
        stats["saturated_fraction"] = float(np.mean(units.max(axis=1) > saturation))
    return stats


def _symmetry_problems(model: keras.Model) -> tuple[dict[str, str], str | None]:
    """Weight tensors that cannot break symmetry: all zero, all equal, or identical units."""
    problems: dict[str, str] = {}
    last_layer = None
    for layer in all_layers(model):
        if layer.trainable_weights and not isinstance(layer, keras.Model):
            last_layer = layer
    last_weights = {id(v) for v in (last_layer.trainable_weights if last_layer is not None else [])}
    output_problem = None
    for variable in model.trainable_weights:
        if len(variable.shape) < 2:
            continue  # biases and batch-norm parameters start constant by design
        values = np.asarray(variable.numpy())
        if values.size < 2:
            continue
        if np.all(values == values.reshape(-1)[0]):
            kind = "all_zero" if values.reshape(-1)[0] == 0 else "all_equal"
        else:
            columns = values.reshape(-1, values.shape[-1])
            if columns.shape[1] > 1 and np.all(columns == columns[:, :1]):
                kind = "identical_units"
            else:
                continue
        name = variable_name(variable)
        if id(variable) in last_weights:
            output_problem = name  # an output layer may start at zero: a warning only
        problems[name] = kind
    return problems, output_problem


def check_initialization(
    model: keras.Model,
    x,
    *,
    examples: int = 256,
    max_dead: float = 0.5,
    max_saturated: float = 0.2,
    collapse: float = 1e-2,
    saturation: float = 0.99,
    seed: int = 0,
) -> CheckResult:
    """Initialization: symmetry broken, activations neither dead, saturated nor collapsed (B5, E19).

    Fails when a hidden layer's weight tensor (rank >= 2) is all zero, all
    equal, or has identical units: its units then compute and learn the
    same thing forever (recipe B5). On a probe batch (training mode, noise
    off, state restored), records per layer with a nonlinearity the
    activations' std, the fraction of dead ReLU units and of saturated
    tanh/sigmoid units, and warns when more than `max_dead` are dead, more
    than `max_saturated` saturated, or the std has collapsed below
    `collapse` times the input's std (small random weights starving a deep
    net of signal; for integer token inputs, the first embedding's std).

    Args:
        model: The freshly initialized Keras model.
        x: Inputs (an array, or a dict or list of arrays); a random probe
            batch is drawn from them.
        examples: Size of the probe batch. Defaults to `256`.
        max_dead: Dead-ReLU fraction that warns. Defaults to `0.5`.
        max_saturated: Saturated fraction that warns. Defaults to `0.2`.
        collapse: Activation std / input std that warns. Defaults to `1e-2`.
        saturation: `|tanh| > s` (sigmoid outside `[1-s, s]`) is saturated.
            Defaults to `0.99`.
        seed: Picks the probe batch. Defaults to `0`.

    Returns:
        A `CheckResult` named `initialization`: `measured` counts tensors
        that cannot break symmetry; `details["layers"]` maps each layer's
        name to `{"std", "dead_fraction", "saturated_fraction",
        "activation", ...}`.

    Example:

    ```python
    result = kerasguide.checks.check_initialization(model, x_train)
    result.details["layers"]["activation"]["dead_fraction"]   # 0.0
    ```
    """
    x = as_data(x)
    n = num_examples(x)
    if n > examples:
        x = take(x, np.sort(np.random.default_rng(seed).choice(n, size=examples, replace=False)))
    if not model.built:
        model(take(x, slice(0, 1)), training=False)
    problems, output_problem = _symmetry_problems(model)
    hidden_problems = {k: v for k, v in problems.items() if k != output_problem}
    layers: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    probed = [(layer, activation_kind(layer)) for layer in getattr(model, "layers", [])]
    probed = [
        (layer, name) for layer, name in probed if name is not None and not isinstance(layer, keras.Model)
    ]
    # The scale the activations are compared with: the float inputs' std. Token ids (integer inputs)
    # have none: there the first embedding's output is the reference.
    floats = float_leaves(x)
    input_std = float(np.std(np.concatenate([a.reshape(-1) for a in floats]))) if floats else None
    embeddings = [layer for layer in getattr(model, "layers", []) if isinstance(layer, keras.layers.Embedding)]
    references = embeddings[:1] if input_std is None else []
    note = None
    if probed or references:
        try:
            inputs, _ = io_structure(model)
            probe = keras.Model(inputs, [layer.output for layer, _ in probed] + [r.output for r in references])
        except (AttributeError, ValueError, TypeError) as error:
            probe = None
            note = f"per-layer statistics need a Functional or Sequential model ({type(error).__name__})"
        if probe is not None:
            with preserve_state(model), noise_off(model):
                outputs = probe(x, training=True)
            if not isinstance(outputs, (list, tuple)):
                outputs = [outputs]
            for (layer, name), out in zip(probed, outputs, strict=False):
                layers[layer.name] = activation_stats(as_array(out), name, saturation)
            if references:
                input_std = float(np.std(as_array(outputs[len(probed)])))
    if input_std is None:
        note = (note + "; " if note else "") + "integer inputs and no embedding: no scale to judge a collapse by"
    last = probed[-1][0].name if probed else None
    for layer_name, stats in layers.items():
        if stats["activation"] == "softmax" or layer_name == last and stats["activation"] in SIGMOID_LIKE:
            continue  # the output's saturation is the initial-loss check's business
        if stats["dead_fraction"] > max_dead:
            warnings.append(f"{stats['dead_fraction']:.0%} of {layer_name}'s ReLUs are dead")
        if stats["saturated_fraction"] > max_saturated:
            warnings.append(
                f"{stats['saturated_fraction']:.0%} of {layer_name}'s {stats['activation']} units are saturated"
            )
        if input_std is not None and input_std > 0 and stats["std"] < collapse * input_std:
            warnings.append(f"{layer_name}'s activations collapsed (std {stats['std']:.2g})")
    if output_problem:
        warnings.append(
            f"the output layer's {output_problem} starts {problems[output_problem].replace('_', ' ')}"
        )
    details: dict[str, Any] = {
        "layers": layers,
        "tensors": problems,
        "warnings": warnings,
        "input_std": input_std,
        "examples": int(num_examples(x)),
    }
    if note:
        details["note"] = note
    if hidden_problems:
        name, kind = next(iter(hidden_problems.items()))
        more = f" (and {len(hidden_problems) - 1} more)" if len(hidden_problems) > 1 else ""
        advice = (
            f"{name} is initialized {kind.replace('_', ' ')}{more}: its units stay identical and never "
            "break symmetry; use small random weights, e.g. he_normal for ReLU (recipe B5)."
        )
        return CheckResult(
            "initialization", False, len(hidden_problems), 0, 0, advice, "B5", "error", details
        )
    if warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        advice = (
            f"At initialization {warnings[0]}{more}: check the initializer's scale, the biases and "
            "the activation (recipes B4, B5, E19)."
        )
        return CheckResult("initialization", True, 0, 0, 0, advice, "B5", "warning", details)
    if note and not layers:
        advice = f"Symmetry is broken; per-layer activation statistics skipped: {note} (recipe B5)."
    else:
        advice = (
            f"Symmetry is broken and the activations of {len(layers)} layers are healthy at "
            "initialization (recipe B5)."
        )
    return CheckResult("initialization", True, 0, 0, 0, advice, "B5", "info", details)
