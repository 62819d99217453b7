"""Gradient check (recipe D15): analytic gradients against centered differences in float64."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from kerasguide.checks._keras import (
    as_array,
    as_data,
    cast_floats,
    clone_float64,
    data_loss,
    is_floating,
    keras,
    noise_off,
    resolve_loss,
    take,
    to_tensors,
    variable_name,
)
from kerasguide.checks.expectations import classify_error, gradient_step, is_kink, relative_error
from kerasguide.checks.result import CheckResult, first_line

__all__ = ["check_gradients"]

_EPS64 = float(np.finfo(np.float64).eps)


def _pick_coordinates(grad: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """The largest analytic entry (where a wrong scale shows most) plus random others.

    Random coordinates alone may all land on zero gradients (dead units,
    sparse weights); the largest alone would miss a gradient that is zero
    where it should not be.
    """
    size = grad.size
    if size <= count:
        return list(range(size))
    first = int(np.argmax(np.abs(grad.reshape(-1))))
    rest = rng.choice(size - 1, size=count - 1, replace=False)
    return [first] + [int(i) + (1 if i >= first else 0) for i in rest]


def check_gradients(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    examples: int = 4,
    coords: int = 4,
    good: float = 1e-7,
    acceptable: float = 1e-4,
    bug: float = 1e-2,
    training: bool = True,
    seed: int = 0,
) -> CheckResult:
    """Gradient check: every trainable tensor's analytic gradient vs a numerical one (recipe D15).

    The model is cloned to float64 (the model itself is not touched), its
    dropout and noise layers switched off, and the data loss alone
    evaluated on a few examples. For `coords` coordinates of *every*
    trainable tensor (biases and batch-norm parameters included; the
    largest analytic entry and random others), the analytic gradient is
    compared with the centered difference `(f(w+h) - f(w-h)) / 2h` (only
    trainable float parameters are perturbed, never the inputs), with a
    step `h` chosen per tensor (`gradient_step`), by the relative error
    `|a - n| / max(|a|, |n|)`. Kinks (a ReLU, abs or max input within
    `+-h` of its breakpoint, found as a jump between the forward and
    backward differences) are reported apart, not as failures.

    Thresholds: below `good` the gradient is right; up to `acceptable` it
    is usual with kinks and depth (passes); up to `bug` suspicious
    (passes, with a warning); above `bug` a bug (fails, naming the tensor
    and coordinate). This is the check that finds wrong hand-written
    gradients (`tf.custom_gradient`).

    Args:
        model: The Keras model (Functional, Sequential, or subclassed with
            `get_config`); compiled, or pass `loss`.
        x: Inputs (an array, or a dict or list of arrays); the first
            `examples` are used. Float inputs are cast to float64, integer
            inputs (token ids for an `Embedding`) are fed as they are.
        y: Labels or targets (a dict or list for several outputs).
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        examples: Examples in the batch. Defaults to `4`.
        coords: Coordinates per tensor. Defaults to `4`.
        good: Relative error below which a gradient is right.
            Defaults to `1e-7`.
        acceptable: Relative error tolerated (kinks, depth). Defaults to `1e-4`.
        bug: Relative error above which the check fails. Defaults to `1e-2`.
        training: Call the model in training mode (batch-norm on batch
            statistics); noise layers are off either way. Defaults to `True`.
        seed: Picks the random coordinates. Defaults to `0`.

    Returns:
        A `CheckResult` named `gradients`: `measured` is the largest relative
        error outside kinks; `details["tensors"]` lists every checked
        coordinate per tensor, `details["worst"]` the worst one.

    Example:

    ```python
    result = kerasguide.checks.check_gradients(model, x_train, y_train)
    if not result.passed:
        print(result.details["worst"])   # {"tensor": "my_dense/kernel", "index": [3, 1], ...}
    ```
    """
    for name, value in (("examples", examples), ("coords", coords)):
        if value <= 0:
            raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    if not 0 < good <= acceptable <= bug:
        raise ValueError(
            f"Arguments must satisfy 0 < good <= acceptable <= bug. Received: good={good}, "
            f"acceptable={acceptable}, bug={bug}"
        )
    loss = resolve_loss(model, loss)
    # Float inputs and targets in float64; integer inputs (token ids) and labels stay as they are: only
    # the weights are perturbed, never the data.
    x = cast_floats(take(as_data(x), slice(0, examples)), np.float64)
    y = cast_floats(take(as_data(y), slice(0, examples)), np.float64)
    try:
        clone = clone_float64(model, x)
    except Exception as error:  # an exotic model: say so, do not stop the run
        return CheckResult(
            "gradients",
            True,
            None,
            good,
            bug,
            f"Could not clone the model to float64 ({type(error).__name__}: {first_line(error)}); "
            "gradient check skipped: give the custom layers get_config (recipe D15).",
            "D15",
            "warning",
            {"skipped": True, "error": str(error)},
        )
    # Only float parameters can be perturbed by a small step (an integer variable has no gradient).
    variables = [v for v in clone.trainable_variables if is_floating(v.dtype)]
    not_float64 = [variable_name(v) for v in variables if str(v.dtype) != "float64"]
    xt, yt = to_tensors(x), to_tensors(y)
    names = getattr(clone, "output_names", None) or getattr(model, "output_names", None)
    rng = np.random.default_rng(seed)
    tensors: dict[str, Any] = {}
    worst: dict[str, Any] | None = None
    kinks = 0
    counts = {"good": 0, "acceptable": 0, "suspicious": 0, "bug": 0, "kink": 0}
    with noise_off(clone):

        @tf.function
        def loss_value():
            return data_loss(loss, yt, clone(xt, training=training), names)

        with tf.GradientTape() as tape:
            f0_tensor = data_loss(loss, yt, clone(xt, training=training), names)
        grads = tape.gradient(f0_tensor, variables)
        f0 = float(loss_value())  # the same graph as the perturbed evaluations
        for variable, grad in zip(variables, grads, strict=False):
            name = variable_name(variable)
            if name in not_float64:
                continue  # a float32 difference cannot resolve a float64 step: reported apart
            values = np.array(variable.numpy(), dtype=np.float64)
            # An embedding's gradient is sparse (IndexedSlices): dense here, zero for the rows not looked up.
            analytic_all = (
                np.zeros_like(values)
                if grad is None
                else np.asarray(as_array(tf.convert_to_tensor(grad)), dtype=np.float64)
            )
            h = gradient_step(values)
            flat = values.reshape(-1)
            entries = []
            worst_here = 0.0
            for index in _pick_coordinates(analytic_all, coords, rng):
                original = flat[index]
                flat[index] = original + h
                variable.assign(values)
                f_plus = float(loss_value())
                flat[index] = original - h
                variable.assign(values)
                f_minus = float(loss_value())
                flat[index] = original
                variable.assign(values)
                numeric = (f_plus - f_minus) / (2.0 * h)
                analytic = float(analytic_all.reshape(-1)[index])
                noise = _EPS64 * max(abs(f_plus), abs(f_minus), abs(f0), 1e-300) / h
                kink = is_kink((f_plus - f0) / h, (f0 - f_minus) / h, noise)
                if max(abs(analytic), abs(numeric)) <= 100.0 * noise:
                    error = 0.0  # both zero at this precision
                else:
                    error = relative_error(analytic, numeric)
                status = classify_error(error, kink, good, acceptable, bug)
                counts[status] += 1
                kinks += kink
                coordinate = [int(i) for i in np.unravel_index(index, values.shape)] if values.ndim else []
                entries.append(
                    {
                        "index": coordinate,
                        "analytic": analytic,
                        "numeric": numeric,
                        "error": error,
                        "status": status,
                    }
                )
                if not kink:
                    worst_here = max(worst_here, error)
                    if worst is None or error > worst["error"]:
                        worst = {
                            "tensor": name,
                            "index": coordinate,
                            "analytic": analytic,
                            "numeric": numeric,
                            "error": error,
                        }
            tensors[name] = {
                "shape": list(values.shape),
                "step": h,
                "max_error": worst_here,
                "no_gradient": grad is None,
                "coords": entries,
            }
    bad = [n for n, t in tensors.items() if any(c["status"] == "bug" for c in t["coords"])]
    measured = worst["error"] if worst else 0.0
    details: dict[str, Any] = {
        "examples": int(len(keras.tree.flatten(x)[0])),
        "coords_per_tensor": coords,
        "dtype": "float64",
        "loss_at_weights": f0,
        "thresholds": {"good": good, "acceptable": acceptable, "bug": bug},
        "counts": counts,
        "kinks": kinks,
        "failing_tensors": bad,
        "worst": worst,
        "tensors": tensors,
    }
    if not_float64:
        details["not_float64"] = not_float64
    checked = sum(len(t["coords"]) for t in tensors.values())
    if bad:
        w = worst if worst and worst["tensor"] in bad else _worst_in(tensors, bad[0])
        others = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        advice = (
            f"Gradient of {w['tensor']}{w['index']} is wrong: analytic {w['analytic']:.6g} vs numerical "
            f"{w['numeric']:.6g} (relative error {w['error']:.2g}){others}; check that layer's "
            "gradient (recipe D15)."
        )
        return CheckResult("gradients", False, measured, good, bug, advice, "D15", "error", details)
    severity = "warning" if counts["suspicious"] or not_float64 else "info"
    kink_note = f", {kinks} at kinks (ignored)" if kinks else ""
    if counts["suspicious"]:
        advice = (
            f"Largest relative error {measured:.2g} at {worst['tensor']}{worst['index']} is above "
            f"{acceptable:g}: suspicious for float64, check that layer's gradient (recipe D15)."
        )
    elif not_float64:
        advice = (
            f"Tensors {', '.join(not_float64[:3])} did not become float64 (their layers fix a dtype), "
            "so the check is less precise there (recipe D15)."
        )
    else:
        advice = (
            f"Analytic and numerical gradients agree on {checked} coordinates of {len(tensors)} tensors "
            f"(largest relative error {measured:.2g}{kink_note}) (recipe D15)."
        )
    return CheckResult("gradients", True, measured, good, bug, advice, "D15", severity, details)


def _worst_in(tensors: dict[str, Any], name: str) -> dict[str, Any]:
    entry = max((c for c in tensors[name]["coords"] if c["status"] == "bug"), key=lambda c: c["error"])
    return {"tensor": name, **entry}
