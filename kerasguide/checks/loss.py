"""Initial loss at chance (recipe D12) and regularization raises the loss (D13)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kerasguide.checks._keras import (
    MultiLoss,
    as_data,
    concat,
    data_loss,
    heads_of,
    keras,
    loss_kind,
    loss_name,
    noise_off,
    num_examples,
    pick,
    preserve_state,
    resolve_loss,
    subset,
    take,
    variable_name,
)
from kerasguide.checks.expectations import (
    REGRESSION_KINDS,
    class_prior,
    expected_initial_loss,
    regression_bounds,
    within_tolerance,
)
from kerasguide.checks.result import CheckResult

__all__ = ["check_initial_loss", "check_regularization"]

# The zero-output end of a regression expectation this many times the constant's end: targets far
# from 0 (uncentered), which a fresh output must first travel to.
_UNCENTERED = 4.0


def _probe(x, y, examples: int, seed: int) -> tuple[Any, Any]:
    return subset(x, y, examples, seed)


def _mean_loss(model, loss, x, y, batch_size: int) -> tuple[float, dict[str, float], Any]:
    """The mean data loss over batches, each head's mean loss, and the outputs (joined)."""
    total, count, outputs = 0.0, 0, []
    per_head: dict[str, float] = {}
    names = getattr(model, "output_names", None)
    for i in range(0, num_examples(x), batch_size):
        xb, yb = take(x, slice(i, i + batch_size)), take(y, slice(i, i + batch_size))
        pred = model(xb, training=True)
        n = num_examples(xb)
        total += float(data_loss(loss, yb, pred, names)) * n
        if isinstance(loss, MultiLoss):
            for head in loss.heads:
                value = float(data_loss(head.loss, pick(yb, head, names), pick(pred, head, names)))
                per_head[head.name] = per_head.get(head.name, 0.0) + value * n
        count += n
        outputs.append(as_data(keras.tree.map_structure(np.asarray, pred)))
    return total / count, {k: v / count for k, v in per_head.items()}, concat(outputs)


def _expectation(
    loss: Any, y: np.ndarray, outputs: np.ndarray, num_classes: int | None, tolerance: float
) -> dict[str, Any]:
    """The expected initial range of one head's loss, or the reason there is none."""
    kind, params = loss_kind(loss)
    name = str(getattr(loss, "name", None) or loss_name(loss))
    out: dict[str, Any] = {"kind": kind, "loss_function": name}
    if kind is None:
        out["reason"] = f"no expected initial value for loss {name}"
        return out
    y_arr = np.asarray(y)
    if kind in REGRESSION_KINDS:
        if not np.issubdtype(y_arr.dtype, np.number):
            out["reason"] = f"the targets of loss {name} are not numbers"
            return out
        t = y_arr.astype(np.float64).reshape(len(y_arr), -1)
        low, high = expected_initial_loss(kind, targets=t, delta=params.get("delta", 1.0))
        out.update(low=low, high=high, prior=None, params=params)
        out["accept"] = regression_bounds(kind, low, high, t, delta=params.get("delta", 1.0), tolerance=tolerance)
        return out
    width = outputs.shape[-1] if outputs.ndim > 1 else 1
    classes = int(num_classes or width)
    out["num_classes"] = classes
    if kind == "binary_crossentropy":
        prior = y_arr.reshape(len(y_arr), -1).astype(np.float64).mean(axis=0)
    else:
        if classes < 2 and y_arr.ndim == 2:
            classes = y_arr.shape[1]
        prior = class_prior(y_arr, classes)
    low, high = expected_initial_loss(
        kind, prior, label_smoothing=params.get("label_smoothing", 0.0), margin=params.get("margin", 1.0)
    )
    out.update(low=low, high=high, prior=prior, params=params)
    return out


def check_initial_loss(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    num_classes: int | None = None,
    tolerance: float = 0.25,
    examples: int = 512,
    batch_size: int = 128,
    seed: int = 0,
) -> CheckResult:
    """Initial loss at chance: the data loss of a fresh model vs its expected value (recipe D12).

    The data loss alone (the loss function on the model's outputs, no
    regularization terms, dropout and noise off) is averaged over a few
    batches and compared with what chance predicts (see
    `expected_initial_loss`): `ln C` for softmax cross-entropy with
    balanced classes, integer or one-hot labels (2.302 for 10), the entropy
    of the class prior when they are unbalanced (adjusted for label
    smoothing); for binary cross-entropy with a sigmoid, `ln 2` and the
    entropy of the label prior (`ln 2` when balanced); `C - 1` for the
    multiclass hinge; for regression losses on real targets the loss of a
    zero output and of the best constant (MSE: `mean(y^2)` and `var(y)`,
    the targets' variance for centered targets; MAE: `mean|y|` and
    `mean|y - median|`; Huber and log-cosh alike). A loss far above chance
    means the output layer's weights are too large; far below, the labels
    leak or the model is not fresh. A model with several outputs is
    checked output by output (its losses as compiled, with their weights).
    Any other loss is skipped: "no expected initial value for loss X".
    Weights, batch-norm statistics and optimizer state are restored
    afterwards.

    Args:
        model: A freshly initialized Keras model (compiled, or pass `loss`).
        x: Training inputs (an array, or a dict or list of arrays).
        y: Training labels (integer ids or one-hot) or targets (a dict or
            list of them for several outputs).
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        num_classes: Classes; the model's output width if None.
            Defaults to `None`.
        tolerance: Relative tolerance around the expected range.
            Defaults to `0.25`.
        examples: Examples averaged over (a random subset). Defaults to `512`.
        batch_size: Batch size of the forward passes. Defaults to `128`.
        seed: Picks the subset. Defaults to `0`.

    Returns:
        A `CheckResult` named `initial_loss`; `details` hold the measured
        and expected losses (`loss`, `expected_loss`, `expected_low`,
        `expected_high`, `uniform_loss`, `prior_loss`), and per output
        `details["heads"]` for a model with several.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = kerasguide.checks.check_initial_loss(model, x_train, y_train)
    print(result.measured, result.expected)   # e.g. 2.36 2.303
    ```
    """
    if tolerance <= 0:
        raise ValueError(f"Argument `tolerance` must be > 0. Received: tolerance={tolerance}")
    loss = resolve_loss(model, loss)
    x, y = _probe(x, y, examples, seed)
    with preserve_state(model), noise_off(model):
        measured, per_head, outputs = _mean_loss(model, loss, x, y, batch_size)
    names = getattr(model, "output_names", None)
    heads = heads_of(loss)
    judged: dict[str, dict[str, Any]] = {}
    for head in heads:
        out_h = np.asarray(pick(outputs, head, names))
        y_h = np.asarray(pick(y, head, names))
        entry = _expectation(head.loss, y_h, out_h, num_classes if len(heads) == 1 else None, tolerance)
        entry["loss"] = per_head.get(head.name, measured)
        entry["weight"] = head.weight
        entry["output_mean"] = float(np.mean(out_h))
        entry["output_std"] = float(np.std(out_h))
        if "low" in entry:
            entry["ok"], entry["expected"] = within_tolerance(entry["loss"], entry["low"], entry["high"], tolerance)
            if "accept" in entry:  # regression: the bounds of `regression_bounds`
                lowest, highest = entry["accept"]
                entry["ok"] = bool(math.isfinite(entry["loss"]) and lowest <= entry["loss"] <= highest)
        judged[head.name] = entry
    if len(heads) == 1:
        return _single_result(judged[heads[0].name], measured, y, tolerance, len_x=num_examples(x))
    return _multi_result(judged, measured, tolerance, num_examples(x))


def _single_result(entry: dict[str, Any], measured: float, y, tolerance: float, len_x: int) -> CheckResult:
    details: dict[str, Any] = {
        "loss": measured,
        "loss_function": entry["loss_function"],
        "kind": entry["kind"],
        "num_classes": entry.get("num_classes"),
        "examples": int(len_x),
        "output_mean": entry["output_mean"],
        "output_std": entry["output_std"],
    }
    if "low" not in entry:
        return CheckResult(
            "initial_loss", True, measured, None, tolerance,
            f"Skipped: {entry['reason']}; check by hand that it starts at chance (recipe D12).",
            "D12", "warning", {**details, "skipped": True, "reason": entry["reason"]},
        )
    kind, params, low, high = entry["kind"], entry["params"], entry["low"], entry["high"]
    ok, expected = entry["ok"], entry["expected"]
    details.update(
        expected_loss=expected,
        expected_low=low,
        expected_high=high,
        uniform_loss=high if kind == "crossentropy" else None,
        prior_loss=low if kind == "crossentropy" else None,
        label_smoothing=params.get("label_smoothing"),
    )
    if kind == "huber":
        details["delta"] = params.get("delta", 1.0)
    if "accept" in entry:
        details["accepted_range"] = [float(v) for v in entry["accept"]]
    prior = entry.get("prior")
    if prior is not None and kind != "binary_crossentropy":
        details["class_prior"] = [round(float(p), 6) for p in prior]
    if ok:
        spread = f"; with a fresh output's spread up to {entry['accept'][1]:.4g}" if "accept" in entry else ""
        advice = f"Initial loss {measured:.4g} is at chance ({_range(low, high)}{spread}) (recipe D12)."
        severity = "info"
        note = _uncentered_note(kind, measured, low, high, y)
        if note:
            advice = f"Initial loss {measured:.4g} is at chance ({_range(low, high)}{spread}), but {note}"
            severity = "warning"
            details["uncentered_targets"] = True
        return CheckResult("initial_loss", True, measured, expected, tolerance, advice, "D12", severity, details)
    return CheckResult("initial_loss", False, measured, expected, tolerance,
                       _failure_advice(measured, low, high, accept=entry.get("accept")), "D12", "error", details)


def _uncentered_note(kind: str | None, measured: float, low: float, high: float, y) -> str | None:
    """A sentence when regression targets sit far from 0 and the fresh output starts at 0."""
    if kind not in REGRESSION_KINDS or not (low > 0 and high > _UNCENTERED * low and measured > 2.0 * low):
        return None
    t = np.asarray(y, dtype=np.float64)
    return (f"the targets are far from 0 (mean {float(t.mean()):.4g}, std {float(t.std()):.4g}) while a fresh "
            "output starts near 0: standardize the targets, or start the output layer's bias at their mean, "
            f"which starts the loss at {low:.4g} (recipe D12).")


def _failure_advice(measured: float, low: float, high: float, what: str = "Initial loss", accept=None) -> str:
    if not math.isfinite(measured):
        return (
            f"{what} is {measured}: the network produces NaN or Inf before any training; "
            "check the inputs for NaN and the output layer (recipe D12)."
        )
    if measured > high:
        if accept is not None:  # regression
            return (
                f"{what} {measured:.4g}, expected {_range(low, high)} (at most {accept[1]:.4g}: the fresh "
                "output spreads more than the targets do): the output layer's weights are too large; check "
                "its initializer and activation, and that the inputs are standardized (recipe D12)."
            )
        return (
            f"{what} {measured:.4g}, expected {_range(low, high)}: the output layer's weights "
            "are too large; check its initializer and activation (recipe D12)."
        )
    return (
        f"{what} {measured:.4g} is below chance ({_range(low, high)}): the model is not "
        "freshly initialized, or the labels leak into the inputs (recipe D12)."
    )


def _multi_result(judged: dict[str, dict[str, Any]], measured: float, tolerance: float, len_x: int) -> CheckResult:
    heads = {}
    for name, entry in judged.items():
        heads[name] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in entry.items()
                       if k not in ("params",)}
        if entry.get("prior") is not None:
            heads[name]["prior"] = [round(float(p), 6) for p in entry["prior"]]
    details: dict[str, Any] = {"loss": measured, "examples": int(len_x), "heads": heads,
                               "loss_function": " + ".join(e["loss_function"] for e in judged.values())}
    known = {n: e for n, e in judged.items() if "low" in e}
    if not known:
        reasons = "; ".join(e["reason"] for e in judged.values())
        return CheckResult("initial_loss", True, measured, None, tolerance,
                           f"Skipped: {reasons}; check by hand that each output starts at chance (recipe D12).",
                           "D12", "warning", {**details, "skipped": True, "reason": reasons})
    expected = sum(e["weight"] * e["expected"] for e in known.values())
    failed = {n: e for n, e in known.items() if not e["ok"]}
    unknown = [f"{n}: {e['reason']}" for n, e in judged.items() if "low" not in e]
    details.update(expected_loss=expected, not_checked=unknown)
    if failed:
        name, e = next(iter(failed.items()))
        advice = _failure_advice(e["loss"], e["low"], e["high"], what=f"The initial loss of output {name!r}",
                                 accept=e.get("accept"))
        return CheckResult("initial_loss", False, measured, expected, tolerance, advice, "D12", "error", details)
    listed = ", ".join(f"{n} {e['loss']:.4g} ({_range(e['low'], e['high'])})" for n, e in known.items())
    advice = f"Initial losses at chance: {listed}"
    advice += f"; not checked: {'; '.join(unknown)}" if unknown else ""
    return CheckResult("initial_loss", True, measured, expected, tolerance, advice + " (recipe D12).", "D12",
                       "warning" if unknown else "info", details)


def _range(low: float, high: float) -> str:
    if math.isclose(low, high, rel_tol=1e-3):
        return f"{high:.4g}"
    return f"{low:.4g} to {high:.4g}"


def check_regularization(
    model: keras.Model,
    x,
    y,
    *,
    loss: Any = None,
    factor: float = 10.0,
    examples: int = 256,
    seed: int = 0,
) -> CheckResult:
    """Raising the regularization strength must raise the loss (recipe D13).

    On the model's current weights, the data loss plus the regularization
    losses (`model.losses`: kernel, bias and activity regularizers) scaled by
    `factor` must exceed the data loss with no regularization. Keras'
    L1/L2 penalties are linear in their strength, so scaling the losses is
    scaling the strength. Each weight's penalty is listed in `details`; a
    penalty below zero (a regularizer whose sign is flipped) is named.
    A model without regularization passes with an info note.

    Args:
        model: The Keras model (compiled, or pass `loss`).
        x: Training inputs.
        y: Training labels or targets.
        loss: The loss; the compiled `model.loss` if None. Defaults to `None`.
        factor: Strength multiplier. Defaults to `10.0`.
        examples: Examples in the probe batch. Defaults to `256`.
        seed: Picks the probe batch. Defaults to `0`.

    Returns:
        A `CheckResult` named `regularization`: `measured` is the loss with
        the strength x`factor`, `expected` the data loss it must exceed.

    Example:

    ```python
    result = kerasguide.checks.check_regularization(model, x_train, y_train)
    result.details["penalties"]   # {"dense/kernel": 0.0123, ...}
    ```
    """
    if factor <= 1:
        raise ValueError(f"Argument `factor` must be > 1. Received: factor={factor}")
    loss = resolve_loss(model, loss)
    x, y = _probe(x, y, examples, seed)
    with preserve_state(model), noise_off(model):
        pred = model(x, training=True)
        base = float(data_loss(loss, y, pred, getattr(model, "output_names", None)))
        extra = [float(v) for v in model.losses]
        penalties = {
            variable_name(v): float(v.regularizer(v))
            for v in model.trainable_weights
            if getattr(v, "regularizer", None) is not None
        }
    reg = float(np.sum(extra)) if extra else 0.0
    scaled = base + factor * reg
    details = {
        "data_loss": base,
        "regularization_loss": reg,
        "scaled_loss": scaled,
        "factor": factor,
        "penalties": penalties,
        "terms": len(extra),
    }
    if not extra:
        details["skipped"] = True
        return CheckResult(
            "regularization",
            True,
            base,
            base,
            0.0,
            "The model has no regularizer: nothing to compare (recipe D13).",
            "D13",
            "info",
            details,
        )
    if scaled > base and reg > 0:
        advice = f"Regularization x{factor:g} raises the loss from {base:.4g} to {scaled:.4g} (recipe D13)."
        return CheckResult("regularization", True, scaled, base, 0.0, advice, "D13", "info", details)
    negative = [name for name, value in penalties.items() if value < 0]
    if negative:
        culprit = f"the penalty on {', '.join(negative[:3])} is {penalties[negative[0]]:.3g} < 0"
    elif reg < 0:
        culprit = f"an activity or added loss is negative ({reg:.3g})"
    else:
        culprit = "the regularization terms add nothing (a zero strength, or all-zero weights)"
    advice = (
        f"Regularization x{factor:g} does not raise the loss ({base:.4g} -> {scaled:.4g}): {culprit}; "
        "check the regularizer's sign and strength (recipe D13)."
    )
    return CheckResult("regularization", False, scaled, base, 0.0, advice, "D13", "error", details)
