"""Data check (recipe A2): finite inputs, labels in range, classes present, train-only statistics, leaks.

Needs no model. TensorFlow is touched only to refit a Keras
`Normalization` layer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import keras
import numpy as np
from sklearn.base import clone

from kerasguide.checks.result import CheckResult
from kerasguide.data import Preprocessor, fingerprint

__all__ = ["check_data", "shared_duplicates", "preprocessing_fitted_on_train"]


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def _row_hashes(x: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def shared_duplicates(x_train: np.ndarray, x_val: np.ndarray) -> list[int]:
    """Indices of validation examples that also appear, byte for byte, in training.

    Example:

    >>> shared_duplicates(np.array([[1, 2], [3, 4]]), np.array([[3, 4], [5, 6]]))
    [0]
    """
    x_train, x_val = np.asarray(x_train), np.asarray(x_val)
    if x_train.dtype != x_val.dtype:
        x_val = x_val.astype(x_train.dtype)
    seen = set(_row_hashes(x_train))
    return [i for i, h in enumerate(_row_hashes(x_val)) if h in seen]


def _close(a: np.ndarray | None, b: np.ndarray | None, rtol: float = 1e-4) -> tuple[bool, float]:
    if a is None or b is None:
        return a is None and b is None, 0.0
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        return False, float("inf")
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-12)
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff <= rtol * scale + 1e-9, diff / scale


def _stats(pre: Any, refit_on: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(stored statistics, the same statistics refitted on `refit_on`), or None if unknown."""
    if isinstance(pre, Preprocessor):
        fresh = Preprocessor(pre.mode, pre.k, pre.epsilon).fit(refit_on)
        names = ("mean", "scale", "eigenvalues")
        return {n: getattr(pre, n) for n in names}, {n: getattr(fresh, n) for n in names}
    if hasattr(pre, "adapt") and hasattr(pre, "mean") and hasattr(pre, "variance"):  # keras Normalization
        fresh = keras.layers.Normalization(axis=pre.axis)
        fresh.adapt(refit_on)
        return (
            {"mean": _array(pre.mean), "variance": _array(pre.variance)},
            {"mean": _array(fresh.mean), "variance": _array(fresh.variance)},
        )
    if hasattr(pre, "mean_") or hasattr(pre, "min_"):  # scikit-learn transformers
        fresh = clone(pre).fit(refit_on.reshape(len(refit_on), -1))
        names = [
            n for n in ("mean_", "scale_", "var_", "min_", "data_min_", "components_") if hasattr(pre, n)
        ]
        stored = {n: getattr(pre, n) for n in names}
        refit = {n: getattr(fresh, n) for n in names}
        if "components_" in stored:  # eigenvectors are defined up to sign
            stored["components_"] = np.abs(stored["components_"])
            refit["components_"] = np.abs(refit["components_"])
        return stored, refit
    return None


def preprocessing_fitted_on_train(
    pre: Any, raw_train: np.ndarray, raw_val: np.ndarray | None = None
) -> dict[str, Any]:
    """Recompute the preprocessing statistics on the raw training split and compare (recipe A2).

    Supports kerasguide's `Preprocessor`, a Keras `Normalization` layer and
    scikit-learn transformers (`StandardScaler`, `MinMaxScaler`, `PCA`, ...).

    Returns:
        `{"checked": bool, "train_only": bool, "max_difference": float,
        "matches_train_plus_validation": bool | None, ...}`.
    """
    raw_train = _array(raw_train)
    pair = _stats(pre, raw_train)
    if pair is None:
        return {"checked": False, "reason": f"unknown preprocessor type {type(pre).__name__}"}
    stored, refit = pair
    result: dict[str, Any] = {"checked": True, "type": type(pre).__name__, "mismatched": []}
    worst = 0.0
    for name in stored:
        ok, diff = _close(stored[name], refit[name])
        worst = max(worst, diff)
        if not ok:
            result["mismatched"].append(name)
    result["max_difference"] = worst
    result["train_only"] = not result["mismatched"]
    if not result["train_only"] and raw_val is not None:
        both = np.concatenate([raw_train, _array(raw_val)], axis=0)
        pair_all = _stats(pre, both)
        if pair_all is not None:
            stored_all, refit_all = pair_all
            result["matches_train_plus_validation"] = all(
                _close(stored_all[n], refit_all[n])[0] for n in stored_all
            )
    if isinstance(pre, Preprocessor) and pre.fitted_on:
        result["fingerprint_matches"] = pre.fitted_on == fingerprint(raw_train)
    return result


def check_data(
    x_train,
    y_train=None,
    x_val=None,
    y_val=None,
    *,
    num_classes: int | None = None,
    x_test=None,
    y_test=None,
    preprocessor: Any = None,
    raw_train=None,
    raw_val=None,
    classification: bool | None = None,
) -> CheckResult:
    """Data: finite, labelled in range, every class in both splits, statistics from train only (A2).

    Fails on NaN or Inf in any split (inputs, labels or regression
    targets), labels outside `[0, num_classes)` or
    not integers, a class missing from the training or validation split,
    and preprocessing statistics that differ from the same statistics
    recomputed on the raw training split alone (validation data leaked into
    the normalization: recipe A2). Validation examples that also appear in
    the training split are counted and reported (a warning).

    Args:
        x_train: Training inputs, or a kerasguide `Dataset` (then the other
            arrays, the preprocessor and the raw splits come from it).
        y_train: Training labels. Defaults to `None`.
        x_val: Validation inputs. Defaults to `None`.
        y_val: Validation labels. Defaults to `None`.
        num_classes: Classes; `max(label) + 1` if None. Defaults to `None`.
        x_test: Test inputs (checked for NaN/Inf). Defaults to `None`.
        y_test: Test labels. Defaults to `None`.
        preprocessor: The fitted preprocessing: a kerasguide `Preprocessor`,
            a Keras `Normalization` layer or a scikit-learn transformer.
            Defaults to `None`.
        raw_train: The training split before preprocessing (needed to
            recompute the statistics). Defaults to `None`.
        raw_val: The validation split before preprocessing (names a
            train+validation leak). Defaults to `None`.
        classification: Whether the labels are class ids; guessed from
            their dtype if None. Defaults to `None`.

    Returns:
        A `CheckResult` named `data`: `measured` counts the problems found.

    Example:

    ```python
    norm = keras.layers.Normalization()
    norm.adapt(raw_train)
    result = kerasguide.checks.check_data(
        norm(raw_train), y_train, norm(raw_val), y_val, preprocessor=norm, raw_train=raw_train
    )
    ```
    """
    if hasattr(x_train, "x_train") and y_train is None:
        ds = x_train
        x_train, y_train, x_val, y_val = ds.x_train, ds.y_train, ds.x_val, ds.y_val
        x_test, y_test = ds.x_test, ds.y_test
        num_classes = num_classes or ds.num_classes or None
        preprocessor = preprocessor if preprocessor is not None else ds.preprocessor
        raw_train = raw_train if raw_train is not None else ds.raw_train
        raw_val = raw_val if raw_val is not None else ds.raw_val
    if y_train is None:
        raise ValueError("Argument `y_train` is required (or pass a Dataset as the first argument)")
    splits = {"train": (x_train, y_train)}
    if x_val is not None:
        splits["validation"] = (x_val, y_val)
    if x_test is not None:
        splits["test"] = (x_test, y_test)
    splits = {k: (_array(x), None if y is None else _array(y)) for k, (x, y) in splits.items()}
    problems: list[str] = []
    warnings: list[str] = []
    details: dict[str, Any] = {"examples": {k: int(len(x)) for k, (x, _) in splits.items()}}

    # NaN / Inf in the inputs, and in the labels or regression targets
    nonfinite: dict[str, dict[str, int]] = {}
    nonfinite_labels: dict[str, dict[str, int]] = {}
    for split, (x, y) in splits.items():
        if len(x) != (len(y) if y is not None else len(x)):
            problems.append(f"the {split} split has {len(x)} examples but {len(y)} labels")
        for kind, values, found in (("inputs", x, nonfinite), ("labels", y, nonfinite_labels)):
            if values is None or not np.issubdtype(values.dtype, np.floating):
                continue
            nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
            if nan or inf:
                found[split] = {"nan": nan, "inf": inf}
                problems.append(f"the {split} {kind} hold {nan} NaN and {inf} Inf values")
    details["nonfinite"] = nonfinite
    details["nonfinite_labels"] = nonfinite_labels

    # labels: integers in range, every class in train and validation
    y_tr = splits["train"][1]
    if classification is None:
        finite = y_tr[np.isfinite(y_tr)] if np.issubdtype(y_tr.dtype, np.floating) else y_tr
        classification = np.issubdtype(y_tr.dtype, np.integer) or (
            y_tr.ndim == 1
            and np.all(np.mod(finite, 1) == 0)
            and len(np.unique(finite)) <= max(2, len(y_tr) // 2)
        )
    details["classification"] = bool(classification)
    if classification:
        labels = {
            k: y.reshape(-1) if y.ndim == 1 or y.shape[-1] == 1 else y.argmax(axis=-1)
            for k, (_, y) in splits.items()
            if y is not None
        }
        # NaN/Inf labels are reported above; the class bookkeeping uses the finite ones.
        labels = {
            k: v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v for k, v in labels.items()
        }
        all_labels = np.concatenate(list(labels.values()))
        if not np.all(np.mod(all_labels, 1) == 0):
            problems.append("labels are not integer class ids")
        classes = int(num_classes or (int(np.max(all_labels)) + 1 if all_labels.size else 0))
        details["num_classes"] = classes
        low, high = (float(np.min(all_labels)), float(np.max(all_labels))) if all_labels.size else (0, 0)
        details["label_range"] = [low, high]
        if low < 0 or high >= classes:
            problems.append(f"labels span {low:g}..{high:g}, outside 0..{classes - 1}")
        counts = {}
        missing: dict[str, list[int]] = {}
        for split in ("train", "validation"):
            if split not in labels:
                continue
            c = np.bincount(np.clip(labels[split].astype(np.int64), 0, None), minlength=classes)[:classes]
            counts[split] = c.tolist()
            absent = [int(i) for i in np.flatnonzero(c == 0)]
            if absent:
                missing[split] = absent
                problems.append(
                    f"class{'es' if len(absent) > 1 else ''} {_ids(absent)} missing from the {split} split"
                )
        details["class_counts"] = counts
        details["missing_classes"] = missing

    # preprocessing statistics fitted on the training split only (A2)
    if preprocessor is not None:
        if raw_train is None:
            details["preprocessing"] = {"checked": False, "reason": "raw_train not given"}
        else:
            pre = preprocessing_fitted_on_train(preprocessor, raw_train, raw_val)
            details["preprocessing"] = pre
            if pre.get("checked") and not pre["train_only"]:
                leak = " (they match train + validation)" if pre.get("matches_train_plus_validation") else ""
                problems.append(
                    f"the preprocessing statistics ({', '.join(pre['mismatched'])}) were not fitted on "
                    f"the training split alone{leak}"
                )

    # duplicates shared between training and validation
    if "validation" in splits:
        source_train = (
            _array(raw_train) if raw_train is not None and raw_val is not None else splits["train"][0]
        )
        source_val = (
            _array(raw_val) if raw_train is not None and raw_val is not None else splits["validation"][0]
        )
        shared = shared_duplicates(source_train, source_val)
        n_val = max(len(source_val), 1)
        details["duplicates"] = {
            "count": len(shared),
            "fraction": len(shared) / n_val,
            "examples": shared[:10],
        }
        if shared:
            warnings.append(
                f"{len(shared)} validation examples ({len(shared) / n_val:.1%}) also appear in training"
            )
    details["problems"] = problems
    details["warnings"] = warnings
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        advice = f"Data: {problems[0]}{more}; fix the data before training (recipe A2)."
        return CheckResult("data", False, len(problems), 0, 0, advice, "A2", "error", details)
    if warnings:
        advice = (
            f"Data: {warnings[0]}: validation accuracy is optimistic; deduplicate across splits (recipe A2)."
        )
        return CheckResult("data", True, 0, 0, 0, advice, "A2", "warning", details)
    checked = (
        "fitted on the training split only"
        if (details.get("preprocessing") or {}).get("checked")
        else "not checked"
    )
    advice = (
        f"Data: finite, labels in range, every class in both splits, preprocessing {checked} (recipe A2)."
    )
    return CheckResult("data", True, 0, 0, 0, advice, "A2", "info", details)


def _ids(ids: list[int]) -> str:
    text = ", ".join(str(i) for i in ids[:8])
    return text + (", ..." if len(ids) > 8 else "")
