"""The "monitors" stage: the config's `[monitor]` callbacks (recipes E16-E20) and the divergence guard.

Summaries go to the run's `tb/monitor`, records to `monitor/`. The
divergence guard ends the run with status `diverged` (not a crash).
"""

from __future__ import annotations

import numpy as np

from kerasguide.monitors import default_monitors
from kerasguide.spine.context import RunContext
from kerasguide.user_data import n_examples, take


def stage_monitors(ctx: RunContext) -> None:
    cfg = ctx.config.monitor
    if not cfg.enabled:
        return
    ds = ctx.dataset
    total = n_examples(ds.x_train)
    keep = np.sort(np.random.default_rng(ctx.config.train.seed).choice(total, size=min(cfg.probe_batch, total),
                                                                         replace=False))

    def on_diverge(reason: str) -> None:
        ctx.status = "diverged"
        ctx.stop_reason = f"divergence guard: {reason}"

    ctx.callbacks.extend(default_monitors(
        take(ds.x_train, keep), take(ds.y_train, keep),
        log_dir=ctx.run_dir.tb_dir / "monitor",
        record_dir=ctx.run_dir.monitor_dir,
        image_shape=ds.image_shape,
        update_ratio_every=cfg.update_ratio_every,
        histogram_every_epochs=cfg.histogram_every_epochs,
        images_every_epochs=cfg.images_every_epochs,
        divergence_factor=cfg.divergence_factor,
        on_diverge=on_diverge,
    ))
