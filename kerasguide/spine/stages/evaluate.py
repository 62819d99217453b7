"""The "evaluate" stage: the final validation (and test) metrics, into run.json.

Every compiled metric (accuracy, or a regression's mae and rmse) with the
loss, on validation and test, and the last epoch's training values.
"""

from __future__ import annotations

from kerasguide.spine.context import RunContext
from kerasguide.training import make_tf_dataset


def stage_evaluate(ctx: RunContext) -> None:
    cfg = ctx.config
    ds = ctx.dataset
    final: dict[str, float] = {}
    for prefix, x, y in (("val_", ds.x_val, ds.y_val), ("test_", ds.x_test, ds.y_test)):
        if x is None:
            continue
        values = ctx.model.evaluate(make_tf_dataset(x, y, cfg.train.batch_size, False, 0), verbose=0,
                                    return_dict=True)
        final.update({prefix + k: float(v) for k, v in values.items()})
    if ctx.history:
        last = ctx.history[-1]
        for key in ("loss", "accuracy", "mae", "rmse"):
            if key in last:
                final[key] = float(last[key])
    ctx.update_run(final_metrics=final)
