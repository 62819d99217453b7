"""Auto-repair (`kerasguide fix`): each diagnosis finding mapped to a config change, re-run, compared.

- `plan.py`: `plan_repair(config, findings, record)`, the pure mapping from
  codes to changes (no TensorFlow), and `apply_repair`.
- `fix.py`: `fix_run(run_dir, rounds)`, the loop: plan, write the changed
  config, run it (as `kerasguide run` does), diagnose, repeat; each run.json
  names its `parent` and its `repair`.
- `compare.py`: the chain's before and after (fix.json, fix.md, fix.png).

`fix_run` loads TensorFlow (it trains); `plan_repair` does not, and this
package's `__init__` imports `fix` only when `fix_run` is asked for (PEP 562).
"""

from __future__ import annotations

from typing import Any

from kerasguide.repair.plan import REPAIRS, Repair, apply_repair, config_diff, flat_config, plan_repair

__all__ = ["REPAIRS", "Repair", "plan_repair", "apply_repair", "config_diff", "flat_config", "fix_run", "FixResult",
           "RepairError", "load_fix"]

_LAZY = ("fix_run", "FixResult", "RepairError", "load_fix")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from kerasguide.repair import fix  # trains: TensorFlow only when asked for

        return getattr(fix, name)
    raise AttributeError(f"module 'kerasguide.repair' has no attribute {name!r}")
