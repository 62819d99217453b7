"""Hyperparameter search, coarse to fine (recipes H25-H31): `kerasguide tune`.

- `space`: which config keys are searched, over what ranges (plain Python).
- `ranges`: border detection, narrowing and widening (pure functions).
- `oracle`: keras-tuner's oracles, starting from the config's own values.
- `tuner`: `SearchTuner`, the master loop running trials as worker processes.
- `runner`: `tune()`, the stages and the search directory.
- `report`: search.md and search.png.

Importing this package is cheap: the names that need TensorFlow and
keras-tuner are loaded on first use.

Example:

```python
import kerasguide
result = kerasguide.tune("resources/configs/digits_search.toml", out="runs")
print(result.status, result.best["values"], result.best_config)
```
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "tune": "kerasguide.search.runner",
    "SearchResult": "kerasguide.search.runner",
    "find_search": "kerasguide.search.runner",
    "SearchTuner": "kerasguide.search.tuner",
    "read_outcome": "kerasguide.search.tuner",
    "build_hyperparameters": "kerasguide.search.oracle",
    "make_oracle": "kerasguide.search.oracle",
    "write_search_report": "kerasguide.search.report",
    "ParamRange": "kerasguide.search.space",
    "DEFAULT_SPACE": "kerasguide.search.space",
    "resolve_space": "kerasguide.search.space",
    "resolve_stages": "kerasguide.search.space",
    "apply_values": "kerasguide.search.space",
    "baseline_values": "kerasguide.search.space",
    "border_side": "kerasguide.search.ranges",
    "border_findings": "kerasguide.search.ranges",
    "narrow_range": "kerasguide.search.ranges",
    "widen_range": "kerasguide.search.ranges",
    "next_ranges": "kerasguide.search.ranges",
    "rank_trials": "kerasguide.search.ranges",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kerasguide.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
