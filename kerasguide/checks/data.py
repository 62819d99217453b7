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


def _data(x: Any) -> Any:
    """An array, or a dict/list/tuple of arrays (several inputs or outputs), as NumPy."""
    if isinstance(x, dict):
        return {k: _data(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(len(getattr(v, "shape", ())) >= 1 for v in x):
        return type(x)(_data(v) for v in x)
    return _array(x)


def _leaves(x: Any) -> list[tuple[str, np.ndarray]]:
    """`(name, array)` for every array of a structure (name "" for a single array)."""
    if isinstance(x, dict):
        return [(str(k), v) for k, v in x.items()]
    if isinstance(x, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(x)]
    return [("", x)]


def _length(x: Any) -> int:
    lengths = {len(a) for _, a in _leaves(x)}
    return lengths.pop() if len(lengths) == 1 else -1


def _row_hashes(x: Any) -> list[bytes]:
    # One hash per example over all its arrays (a dict or list of inputs: every input of the example).
    flats = [np.ascontiguousarray(a.reshape(len(a), -1)) for _, a in _leaves(x)]
    return [hashlib.blake2b(b"".join(f[i].tobytes() for f in flats), digest_size=16).digest()
            for i in range(len(flats[0]))]


def shared_duplicates(x_train: Any, x_val: Any) -> list[int]:
    """Indices of validation examples that also appear, byte for byte, in training.

    `x_train` and `x_val` are arrays, or the same dict/list structure of
    arrays (an example then repeats when all its inputs do).

    Example:

    >>> shared_duplicates(np.array([[1, 2], [3, 4]]), np.array([[3, 4], [5, 6]]))
    [0]
    """
    x_train, x_val = _data(x_train), _data(x_val)
    train, val = _leaves(x_train), _leaves(x_val)
    if [k for k, _ in train] != [k for k, _ in val]:
        return []
    aligned = [v if t.dtype == v.dtype else v.astype(t.dtype) for (_, t), (_, v) in zip(train, val, strict=True)]
    if isinstance(x_val, dict):
        x_val = dict(zip(x_val, aligned, strict=True))
    elif isinstance(x_val, (list, tuple)):
        x_val = type(x_val)(aligned)
    else:
        x_val = aligned[0]
    seen = set(_row_hashes(x_train))
    return [i for i, h in enumerate(_row_hashes(x_val)) if h in seen]


def _is_onehot(y: np.ndarray) -> bool:
    """Rows of 0/1 with a single 1: one-hot encoded class labels."""
    if y.ndim != 2 or y.shape[1] < 2 or len(y) == 0:
        return False
    finite = y[np.all(np.isfinite(y), axis=1)] if np.issubdtype(y.dtype, np.floating) else y
    return bool(len(finite) and np.all(np.isin(finite, (0, 1))) and np.all(finite.sum(axis=1) == 1))


def _guess_classification(y: np.ndarray) -> bool:
    """Integer dtype, one-hot rows, or few integer-valued floats in one column: class labels."""
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return True
    if not np.issubdtype(y.dtype, np.number):
        return False
    if _is_onehot(y):
        return True
    finite = y[np.isfinite(y)] if np.issubdtype(y.dtype, np.floating) else y
    single = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    return bool(single and np.all(np.mod(finite, 1) == 0) and len(np.unique(finite)) <= max(2, len(y) // 2))


def _label_problems(
    labels_by_split: dict[str, np.ndarray], num_classes: int | None, where: str
) -> tuple[list[str], dict[str, Any]]:
    """Class labels in range, integers, every class in train and validation; `where` names the output."""
    problems: list[str] = []
    details: dict[str, Any] = {}
    onehot = any(_is_onehot(y) for y in labels_by_split.values())
    width = next((y.shape[1] for y in labels_by_split.values() if y.ndim == 2 and y.shape[1] > 1), None)
    labels = {
        k: y.reshape(-1) if y.ndim == 1 or y.shape[-1] == 1 else y.argmax(axis=-1)
        for k, y in labels_by_split.items()
    }
    # NaN/Inf labels are reported apart; the class bookkeeping uses the finite ones.
    labels = {k: v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v for k, v in labels.items()}
    all_labels = np.concatenate(list(labels.values()))
    if not np.all(np.mod(all_labels, 1) == 0):
        problems.append(f"{where}labels are not integer class ids")
    # One-hot labels: as many classes as the rows are wide.
    classes = int(num_classes or (width if onehot and width else 0)
                  or (int(np.max(all_labels)) + 1 if all_labels.size else 0))
    details["num_classes"] = classes
    details["label_encoding"] = "one-hot" if onehot else "class ids"
    low, high = (float(np.min(all_labels)), float(np.max(all_labels))) if all_labels.size else (0, 0)
    details["label_range"] = [low, high]
    if low < 0 or high >= classes:
        problems.append(f"{where}labels span {low:g}..{high:g}, outside 0..{classes - 1}")
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
                f"{where}class{'es' if len(absent) > 1 else ''} {_ids(absent)} missing from the {split} split"
            )
    details["class_counts"] = counts
    details["missing_classes"] = missing
    return problems, details


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
    num_classes: int | dict[str, int | None] | None = None,
    x_test=None,
    y_test=None,
    preprocessor: Any = None,
    raw_train=None,
    raw_val=None,
    classification: bool | dict[str, bool | None] | None = None,
) -> CheckResult:
    """Data: finite, labelled in range, every class in both splits, statistics from train only (A2).

    Fails on NaN or Inf in any split (inputs, labels or regression
    targets), labels outside `[0, num_classes)` or
    not integers, a class missing from the training or validation split,
    and preprocessing statistics that differ from the same statistics
    recomputed on the raw training split alone (validation data leaked into
    the normalization: recipe A2). Validation examples that also appear in
    the training split are counted and reported (a warning).

    Inputs may be a dict or list of arrays (several inputs), labels
    integer class ids, one-hot rows (as many classes as the rows are wide)
    or real-valued targets, for which the class checks are skipped (the
    reason in `details["class_checks"]`); a dict or list of targets (several
    outputs) is checked output by output (`details["heads"]`).

    Args:
        x_train: Training inputs (an array, or a dict or list of arrays), or a
            kerasguide `Dataset` (then the other arrays, the preprocessor and
            the raw splits come from it).
        y_train: Training labels. Defaults to `None`.
        x_val: Validation inputs. Defaults to `None`.
        y_val: Validation labels. Defaults to `None`.
        num_classes: Classes (per output name for several outputs); the
            width of one-hot labels, else `max(label) + 1`, if None.
            Defaults to `None`.
        x_test: Test inputs (checked for NaN/Inf). Defaults to `None`.
        y_test: Test labels. Defaults to `None`.
        preprocessor: The fitted preprocessing: a kerasguide `Preprocessor`,
            a Keras `Normalization` layer or a scikit-learn transformer.
            Defaults to `None`.
        raw_train: The training split before preprocessing (needed to
            recompute the statistics). Defaults to `None`.
        raw_val: The validation split before preprocessing (names a
            train+validation leak). Defaults to `None`.
        classification: Whether the labels are class ids (per output name
            for several outputs); guessed from their dtype and values if
            None (integers, one-hot rows, or few integer-valued floats).
            Defaults to `None`.

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
    splits = {k: (_data(x), None if y is None else _data(y)) for k, (x, y) in splits.items()}
    problems: list[str] = []
    warnings: list[str] = []
    details: dict[str, Any] = {"examples": {k: int(_length(x)) for k, (x, _) in splits.items()}}

    # NaN / Inf in the inputs, and in the labels or regression targets (every array of a structure)
    nonfinite: dict[str, dict[str, int]] = {}
    nonfinite_labels: dict[str, dict[str, int]] = {}
    for split, (x, y) in splits.items():
        n_x, n_y = _length(x), (_length(y) if y is not None else _length(x))
        if n_x < 0:
            problems.append(f"the {split} inputs differ in length: {[len(a) for _, a in _leaves(x)]}")
        elif n_y != n_x:
            problems.append(f"the {split} split has {n_x} examples but {n_y} labels")
        for kind, values, found in (("inputs", x, nonfinite), ("labels", y, nonfinite_labels)):
            if values is None:
                continue
            leaves = [a for _, a in _leaves(values) if np.issubdtype(a.dtype, np.floating)]
            nan = sum(int(np.isnan(a).sum()) for a in leaves)
            inf = sum(int(np.isinf(a).sum()) for a in leaves)
            if nan or inf:
                found[split] = {"nan": nan, "inf": inf}
                problems.append(f"the {split} {kind} hold {nan} NaN and {inf} Inf values")
    details["nonfinite"] = nonfinite
    details["nonfinite_labels"] = nonfinite_labels

    # labels: integers in range, every class in train and validation; per output for several outputs
    heads = [name for name, _ in _leaves(splits["train"][1])]
    several = len(heads) > 1 or heads != [""]
    head_details: dict[str, Any] = {}
    for head in heads:
        by_split = {
            split: dict(_leaves(y))[head] for split, (_, y) in splits.items() if y is not None and head in dict(_leaves(y))
        }
        wanted = classification.get(head) if isinstance(classification, dict) else classification
        is_class = _guess_classification(by_split["train"]) if wanted is None else bool(wanted)
        classes = num_classes.get(head) if isinstance(num_classes, dict) else num_classes
        entry: dict[str, Any] = {"classification": bool(is_class)}
        if is_class:
            found, label_details = _label_problems(by_split, classes, f"output {head!r}: " if several else "")
            problems.extend(found)
            entry.update(label_details)
        else:
            entry["class_checks"] = "skipped: real-valued targets (regression), no classes to check"
        head_details[head] = entry
    if several:
        details["classification"] = any(e["classification"] for e in head_details.values())
        details["heads"] = head_details
    else:
        details.update(head_details[""])

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
            _data(raw_train) if raw_train is not None and raw_val is not None else splits["train"][0]
        )
        source_val = (
            _data(raw_val) if raw_train is not None and raw_val is not None else splits["validation"][0]
        )
        shared = shared_duplicates(source_train, source_val)
        n_val = max(_length(_data(source_val)), 1)
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
    if not details["classification"]:
        labels = "real-valued targets (no class checks)"
    elif several and not all(e["classification"] for e in details["heads"].values()):
        labels = "class labels in range and every class in both splits where an output has classes"
    else:
        labels = "labels in range, every class in both splits"
    advice = f"Data: finite, {labels}, preprocessing {checked} (recipe A2)."
    return CheckResult("data", True, 0, 0, 0, advice, "A2", "info", details)


def _ids(ids: list[int]) -> str:
    text = ", ".join(str(i) for i in ids[:8])
    return text + (", ..." if len(ids) > 8 else "")
