"""The "evaluate" stage: the final validation (and test) metrics, into run.json, from the best checkpoint.

Every compiled metric (accuracy, or a regression's mae and rmse) with the
loss, on validation and test, measured with the best checkpoint's weights
(the model the run keeps and `predict` uses, not the last epoch's), and the
last epoch's training values. run.json's `evaluated` names the weights.
"""

from __future__ import annotations

from kerasguide._logging import get_logger
from kerasguide.spine.context import RunContext
from kerasguide.training import split_batches

logger = get_logger()


def _best_weights(ctx: RunContext):
    """The best checkpoint's weights and its epoch, or `(None, None)` when the run kept none."""
    best = ctx.best_checkpoint
    if best is None:
        return None, None
    if best.has_pending:
        best.flush()
    path = getattr(best, "best_path", None)
    if path is None or not path.exists():
        return None, None
    held = getattr(best, "best_weights", None)
    if held is not None:  # this fit's best, still in memory: the file holds the same weights
        return held, best.best_epoch
    current = ctx.model.get_weights()
    # load_weights of a .keras file loads its optimizer state too: the run's own (its last epoch's,
    # which last.keras and a continuation need) is put back with the weights.
    optimizer = getattr(ctx.model, "optimizer", None)
    state = [v.numpy() for v in optimizer.variables] if optimizer is not None else []
    try:
        ctx.model.load_weights(path)
        weights = ctx.model.get_weights()
    except Exception as error:  # noqa: BLE001 - the last weights still give metrics; say why not the best
        logger.warning("could not read the best checkpoint %s (%s): metrics from the last weights", path.name, error)
        weights = None
    ctx.model.set_weights(current)
    if optimizer is not None and len(state) == len(optimizer.variables):
        for variable, value in zip(optimizer.variables, state, strict=True):
            variable.assign(value)
    return (weights, best.best_epoch) if weights is not None else (None, None)


def stage_evaluate(ctx: RunContext) -> None:
    cfg = ctx.config
    ds = ctx.dataset
    final: dict[str, float] = {}
    weights, epoch = _best_weights(ctx)
    last = ctx.model.get_weights() if weights is not None else None
    if weights is not None:
        ctx.model.set_weights(weights)
    try:
        for prefix, split in (("val_", "validation"), ("test_", "test")):
            if not ds.has_split(split):
                continue
            values = ctx.model.evaluate(split_batches(ds, split, cfg.train.batch_size), verbose=0, return_dict=True)
            final.update({prefix + k: float(v) for k, v in values.items()})
    finally:
        if last is not None:
            ctx.model.set_weights(last)  # checkpoints/last.keras stays the last epoch's
    if ctx.history:
        last_epoch = ctx.history[-1]
        for key in ("loss", "accuracy", "mae", "rmse"):
            if key in last_epoch:
                final[key] = float(last_epoch[key])
    evaluated = ({"weights": "best", "epoch": epoch, "checkpoint": ctx.best_checkpoint.best_path.name}
                 if weights is not None else {"weights": "last", "epoch": len(ctx.history)})
    ctx.update_run(final_metrics=final, evaluated=evaluated)
