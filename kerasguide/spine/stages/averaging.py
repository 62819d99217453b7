"""The "averaging" stage: averaged weights and snapshots (recipes J34-J35).

`optimizer.ema` validates and keeps the EMA weights, `ensemble.average_epochs`
averages the last epochs, `ensemble.snapshots` keeps the last epochs'
checkpoints for a snapshot ensemble.
"""

from __future__ import annotations

from kerasguide.averaging import SnapshotCheckpoints, averaging_callbacks
from kerasguide.spine.context import RunContext


def stage_averaging(ctx: RunContext) -> None:
    ctx.callbacks.extend(averaging_callbacks(ctx.config))
    ens = ctx.config.ensemble
    if ens.snapshots:
        ctx.callbacks.append(SnapshotCheckpoints(ctx.run_dir.checkpoints_dir, ens.snapshots, ens.snapshot_every_epochs))
