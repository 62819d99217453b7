"""Scores of class probabilities: accuracy, log-loss, and an ensemble's against its members (recipe J34).

Pure NumPy; the ensemble tools and distillation share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["average_probabilities", "accuracy", "log_loss", "ensemble_metrics"]

_EPS = 1e-7  # the clip Keras applies to probabilities before a log


def average_probabilities(member_probs: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean over members of their class probabilities.

    Args:
        member_probs: Array `(members, examples, classes)` of probabilities.
        weights: One non-negative weight per member; equal if None.
            Defaults to `None`.

    Returns:
        Array `(examples, classes)`; each row still sums to 1.

    Example:

    >>> average_probabilities(np.array([[[1.0, 0.0]], [[0.5, 0.5]]])).tolist()
    [[0.75, 0.25]]
    """
    member_probs = np.asarray(member_probs, dtype=np.float64)
    if member_probs.ndim != 3 or member_probs.shape[0] == 0:
        raise ValueError(
            f"Argument `member_probs` must have shape (members, examples, classes). "
            f"Received: shape={member_probs.shape}"
        )
    if weights is None:
        return member_probs.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (member_probs.shape[0],) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"Argument `weights` must be {member_probs.shape[0]} non-negative numbers, not all 0. "
            f"Received: weights={list(weights)}"
        )
    return np.tensordot(w / w.sum(), member_probs, axes=1)


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of examples whose most probable class is the label."""
    return float(np.mean(np.argmax(probs, axis=-1) == np.asarray(y).reshape(-1)))


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log probability of the label (probabilities clipped at 1e-7, as Keras does)."""
    y = np.asarray(y).reshape(-1).astype(int)
    p = np.clip(np.asarray(probs, dtype=np.float64)[np.arange(len(y)), y], _EPS, 1.0)
    return float(-np.mean(np.log(p)))


def ensemble_metrics(
    member_probs: np.ndarray, y: np.ndarray, names: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Accuracy and log-loss of each member, of the mean member, and of the ensemble.

    Because `-log` is convex, the ensemble's log-loss is never above the mean
    member's (Jensen); its accuracy usually is above it when members differ.

    Returns:
        `{"members": [{name, accuracy, log_loss}], "mean_member": {...},
        "best_member": {...}, "ensemble": {...}, "examples": N}`.
    """
    member_probs = np.asarray(member_probs, dtype=np.float64)
    names = list(names) if names is not None else [f"member {i}" for i in range(len(member_probs))]
    members = [
        {"name": n, "accuracy": accuracy(p, y), "log_loss": log_loss(p, y)}
        for n, p in zip(names, member_probs, strict=True)
    ]
    combined = average_probabilities(member_probs, weights)
    best = max(members, key=lambda m: (m["accuracy"], -m["log_loss"]))
    return {
        "members": members,
        "mean_member": {
            "accuracy": float(np.mean([m["accuracy"] for m in members])),
            "log_loss": float(np.mean([m["log_loss"] for m in members])),
        },
        "best_member": dict(best),
        "ensemble": {"accuracy": accuracy(combined, y), "log_loss": log_loss(combined, y)},
        "examples": int(len(np.asarray(y).reshape(-1))),
    }
