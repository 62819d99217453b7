"""ASHA: asynchronous successive halving that keeps its work (recipes H26, H29; issue 14).

Many short trials; whenever a worker is free, the best `1/factor` of a
rung's finished trials not yet promoted is promoted to the next rung (a
`factor`x longer budget) and *continued* from its checkpoint, so no epoch
is trained twice and no worker waits for a rung to fill (Li et al.,
"A System for Massively Parallel Hyperparameter Tuning", 2020). With no
promotion due, a new configuration starts at the first rung: the config's
own values first (H31), random ones until `startup` trials of a rung have
scores, then Optuna's TPE sampler fitted to the highest rung that has that
many. TPE draws where the good trials' density is high, so the sampled
ranges narrow around the best as the rungs fill.

The oracle is a keras-tuner `Oracle`: its decisions live in keras-tuner's
trials (`tuner/rung`, `tuner/epochs`, `tuner/initial_epoch` and, for a
promotion, `tuner/trial_id`, the parent), so keras-tuner's own state files
are all a resumed search needs, and a trial running at a kill (a promotion
too) is run again from its parent's checkpoint. The tuner
(`kerasguide.search.tuner.SearchTuner`) turns `tuner/trial_id` into
`train.init_from` and `train.initial_epoch`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from kerasguide._logging import import_tensorflow
from kerasguide.search.asha_plan import asha_plan, asha_rungs
from kerasguide.search.oracle import _BaselineFirst

import_tensorflow()

import keras_tuner as kt  # noqa: E402

__all__ = ["ASHAOracle", "asha_rungs", "asha_plan"]

_ENDED = (kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED,
          kt.engine.trial.TrialStatus.INVALID)


def _rung(trial) -> int:
    return int(trial.hyperparameters.values.get("tuner/rung", 0))


class ASHAOracle(_BaselineFirst, kt.Oracle):
    """keras-tuner oracle for ASHA with TPE sampling; see the module docstring.

    Args:
        objective: keras-tuner `Objective`.
        hyperparameters: The space (`kerasguide.search.oracle.build_hyperparameters`).
        rungs: The rungs' budgets in epochs (`asha_rungs`).
        trials: Configurations started at the first rung.
        factor: 1 in `factor` of a rung's finished trials is promoted. Defaults to `3`.
        startup: Scored trials of a rung before TPE takes over from random
            sampling. Defaults to `None`: max(5, 2 x the space's size).
        **kwargs: The other `keras_tuner.Oracle` arguments (seed, ...).
    """

    def __init__(self, objective, hyperparameters, rungs: list[int], trials: int, factor: int = 3,
                 startup: int | None = None, **kwargs):
        super().__init__(objective=objective, hyperparameters=hyperparameters, max_trials=None, **kwargs)
        if not rungs or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
            raise ValueError(f"Argument `rungs` must be increasing epochs. Received: rungs={rungs}")
        self.rungs = list(rungs)
        self.configs = int(trials)
        self.factor = int(factor)
        self.startup = startup if startup is not None else max(5, 2 * len(hyperparameters.space))

    # ------------------------------------------------------------ decisions
    def populate_space(self, trial_id):
        promotion = self._promotion()
        if promotion is not None:
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": promotion}
        started = sum(1 for t in self.trials.values() if _rung(t) == 0)
        if started < self.configs:
            values, sampler = self._sample()
            if values is not None:
                return {"status": kt.engine.trial.TrialStatus.RUNNING,
                        "values": {**values, "tuner/rung": 0, "tuner/epochs": self.rungs[0],
                                   "tuner/initial_epoch": 0, "tuner/sampler": sampler}}
        if self.ongoing_trials:  # a running trial may yet earn a promotion
            return {"status": kt.engine.trial.TrialStatus.IDLE}
        return {"status": kt.engine.trial.TrialStatus.STOPPED}

    def promotable(self, rung: int) -> list:
        """The finished trials of `rung` in its top `1/factor` that have not been promoted, best first."""
        members = [t for t in self.trials.values() if _rung(t) == rung and t.status in _ENDED]
        quota = len(members) // self.factor  # failed (and pruned) trials count: they take a place, never a promotion
        if quota == 0:
            return []
        scored = [t for t in members if t.status == kt.engine.trial.TrialStatus.COMPLETED and t.score is not None]
        scored.sort(key=lambda t: t.score, reverse=self.objective.direction == "max")
        promoted = {t.hyperparameters.values.get("tuner/trial_id") for t in self.trials.values()
                    if _rung(t) == rung + 1}
        return [t for t in scored[:quota] if t.trial_id not in promoted]

    def _promotion(self) -> dict[str, Any] | None:
        for rung in reversed(range(len(self.rungs) - 1)):  # the highest rung first: the best get there soonest
            candidates = self.promotable(rung)
            if candidates:
                parent = candidates[0]
                values = {k: v for k, v in parent.hyperparameters.values.items() if not k.startswith("tuner/")}
                return {**values, "tuner/rung": rung + 1, "tuner/epochs": self.rungs[rung + 1],
                        "tuner/initial_epoch": self.rungs[rung], "tuner/trial_id": parent.trial_id,
                        "tuner/sampler": parent.hyperparameters.values.get("tuner/sampler", "random")}
        return None

    # ------------------------------------------------------------ sampling
    def _ranked_configs(self) -> list[tuple[dict[str, Any], float]]:
        """Every finished configuration with its rank (higher is better), for TPE.

        A configuration counts by the highest rung it finished and its score there: a rung's
        scores are comparable among themselves only, and reaching a higher rung means it beat
        the others below. TPE uses only the order (its "good" fraction), so ranks suffice. A
        configuration that failed (diverged, pruned) ranks last: TPE learns where not to look.
        """
        maximize = self.objective.direction == "max"
        best: dict[str, tuple[int, float, dict[str, Any]]] = {}
        for t in self.trials.values():
            if t.status not in _ENDED:
                continue
            root = t
            while root.hyperparameters.values.get("tuner/trial_id") in self.trials:
                root = self.trials[root.hyperparameters.values["tuner/trial_id"]]
            values = {k: v for k, v in root.hyperparameters.values.items() if not k.startswith("tuner/")}
            if t.score is None or not math.isfinite(t.score):
                key = (-1, 0.0)
            else:
                key = (_rung(t), t.score if maximize else -t.score)
            if root.trial_id not in best or key > best[root.trial_id][:2]:
                best[root.trial_id] = (*key, values)
        ordered = sorted(best.values(), key=lambda item: item[:2])
        return [(values, float(rank)) for rank, (_, _, values) in enumerate(ordered)]

    def _sample(self) -> tuple[dict[str, Any] | None, str]:
        if not self.trials:
            return self._random_values(), "baseline"
        scored = sum(1 for t in self.trials.values()
                     if _rung(t) == 0 and t.status in _ENDED and t.score is not None)
        if scored < self.startup:
            return self._random_values(), "random"
        try:
            values = self._tpe_values(self._ranked_configs())
        except ValueError:  # a space Optuna cannot model (e.g. mixed-type choices): random, as before
            values = None
        if values is None or self._duplicate(values):
            return self._random_values(), "random"
        return values, "tpe"

    def _tpe_values(self, ranked: list[tuple[dict[str, Any], float]]) -> dict[str, Any] | None:
        import optuna  # only here: a search that never gets past random sampling does not pay for it

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = {hp.name: _distribution(hp) for hp in self.hyperparameters.space}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for multivariate TPE
            sampler = optuna.samplers.TPESampler(seed=(self.seed or 0) + len(self.trials), n_startup_trials=0,
                                                 multivariate=True)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for values, rank in ranked:
                params = {k: v for k, v in values.items() if k in distributions}
                if len(params) == len(distributions):
                    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=rank))
            trial = study.ask(distributions)
        return {hp.name: _cast(hp, trial.params[hp.name]) for hp in self.hyperparameters.space}


def _distribution(hp):
    import optuna

    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return optuna.distributions.CategoricalDistribution(list(hp.values))
    log = getattr(hp, "sampling", "linear") == "log"
    if isinstance(hp, kt.engine.hyperparameters.Int):
        step = 1 if log or not hp.step else int(hp.step)
        return optuna.distributions.IntDistribution(int(hp.min_value), int(hp.max_value), log=log, step=step)
    if isinstance(hp, kt.engine.hyperparameters.Float):
        step = None if log or not hp.step else float(hp.step)
        return optuna.distributions.FloatDistribution(float(hp.min_value), float(hp.max_value), log=log, step=step)
    raise ValueError(f"no TPE distribution for {type(hp).__name__}")


def _cast(hp, value):
    if isinstance(hp, kt.engine.hyperparameters.Int):
        return int(value)
    if isinstance(hp, kt.engine.hyperparameters.Float):
        return float(value)
    return value
