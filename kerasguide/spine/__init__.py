"""The spine of kerasguide: a run's stages in order, and the one lifecycle of every command's run directory.

- `run(config)`: what `kerasguide run` does (`loop.py`), the stages in
  `stages/` one module each, sharing a `RunContext` (`context.py`).
- `command_run` (`lifecycle.py`): open a run directory (config.toml,
  run.json's header from `record.py`), record the outcome whatever it is
  (interrupted, failed with its message, a `StopRun`'s status), run the
  final stages. `run`, `check_config` and `lr_find_config` (`commands.py`)
  all use it.

The recipes never import this package; it imports them. (Named `spine`, not `run`: `kerasguide.run` is the documented `run()` function, and a subpackage of that name would replace it on import.)
"""

from kerasguide.interrupts import StopRun
from kerasguide.spine.commands import check_config, lr_find_config
from kerasguide.spine.context import RunContext, RunResult
from kerasguide.spine.lifecycle import CommandFailed, CommandRun, command_run
from kerasguide.spine.loop import resume, run
from kerasguide.spine.record import run_header
from kerasguide.spine.stages import FINAL_STAGES, STAGES

__all__ = [
    "run",
    "resume",
    "RunContext",
    "RunResult",
    "StopRun",
    "check_config",
    "lr_find_config",
    "command_run",
    "CommandRun",
    "CommandFailed",
    "run_header",
    "STAGES",
    "FINAL_STAGES",
]
