"""`CheckResult`: what every sanity check returns, and how results are shown.

`checks.json` (in a run directory) is a JSON list of `CheckResult.to_dict()`
objects with the keys `name, passed, measured, expected, tolerance, advice,
recipe, severity, details`. The desktop app and the diagnosis engine read
it: keep these keys. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckResult", "SEVERITIES", "format_table", "failure_lines", "all_passed", "first_line"]

SEVERITIES = ("error", "warning", "info")


@dataclass
class CheckResult:
    """The outcome of one sanity check.

    Args:
        name: The check's name (`initial_loss`, `regularization`, `overfit`,
            `gradients`, `initialization`, `data`).
        passed: False when the check found a bug that should stop training.
        measured: The measured value. Defaults to `None`.
        expected: The value a healthy model shows. Defaults to `None`.
        tolerance: How far `measured` may be from `expected` (its meaning is
            the check's: relative for the initial loss, the failure threshold
            for the gradient check). Defaults to `None`.
        advice: One sentence: what is wrong and what to do, citing the
            recipe. Defaults to `""`.
        recipe: The recipe number(s), e.g. `"D12"`. Defaults to `""`.
        severity: `"error"` (a failed check), `"warning"` (passed, with a
            finding worth a look) or `"info"`. Defaults to `"info"`; a result
            that did not pass is always `"error"`.
        details: Check-specific data (JSON-able). Defaults to `{}`.

    Example:

    ```python
    result = kerasguide.checks.check_initial_loss(model, x, y)
    if not result.passed:
        print(result.advice)
    ```
    """

    name: str
    passed: bool
    measured: float | None = None
    expected: float | None = None
    tolerance: float | None = None
    advice: str = ""
    recipe: str = ""
    severity: str = "info"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"Argument `severity` must be one of {SEVERITIES}. Received: severity={self.severity!r}"
            )
        self.passed = bool(self.passed)
        if not self.passed:
            self.severity = "error"
        for name in ("measured", "expected", "tolerance"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, float(value))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with the checks.json keys."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Read back one entry of checks.json (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _status(result: CheckResult) -> str:
    if not result.passed:
        return "FAIL"
    if result.details.get("skipped"):
        return "skipped"
    return "warn" if result.severity == "warning" else "pass"


def format_table(results: Iterable[CheckResult]) -> str:
    """A plain-text table: one row per check (status, measured, expected, recipe)."""
    rows = [("check", "result", "measured", "expected", "recipe")]
    for r in results:
        rows.append((r.name, _status(r), _num(r.measured), _num(r.expected), r.recipe))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in rows
    )


def failure_lines(results: Iterable[CheckResult], warnings: bool = True) -> list[str]:
    """One line per failed check (and per warning, if asked): `FAILED name: advice`."""
    lines = []
    for r in results:
        if not r.passed:
            lines.append(f"FAILED {r.name}: {r.advice}")
        elif warnings and r.severity == "warning":
            lines.append(f"warning {r.name}: {r.advice}")
    return lines


def all_passed(results: Iterable[CheckResult]) -> bool:
    """True when no check failed (warnings do not count)."""
    return all(r.passed for r in results)


def first_line(error: BaseException) -> str:
    """An exception's first non-empty line: advice is one line (Keras' errors can run to a page)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")
