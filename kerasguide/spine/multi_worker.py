"""`strategy = "multi_worker"`: this process's part in the cluster, and two fixes Keras' fit needs to train there.

The role: TF_CONFIG read by TensorFlow's own resolver; the chief (the "chief"
task, else worker 0 of a cluster without one: TensorFlow's rule) writes the
run directory, the other workers keep their files in a scratch folder
(`loop.run`).

The fixes: Keras 3's TensorFlow trainer fails under MultiWorkerMirroredStrategy
with more than one worker (keras-team/keras#20585, tensorflow/tensorflow#72388,
open as of Keras 3.15): it builds the model from a batch averaged over the
workers (an all-reduce outside a replica context: "Attempt to convert a value
(PerReplica...)"), and averages each step's scalar logs along an axis they do
not have ("Invalid reduction dimension 0"). Both are replaced, only for a
multi-worker collective strategy, by what the single-machine path does: the
build reads the first local batch (only its shapes matter), a scalar is
averaged over the workers without an axis. tests/test_multi_worker.py trains
two workers on 127.0.0.1 through them and fails first if Keras renames them.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from kerasguide._logging import get_logger
from kerasguide.config import RunConfig

__all__ = ["cluster_role", "patch_keras_for_multi_worker"]

logger = get_logger()
_PATCHED = False


def cluster_role(config: RunConfig) -> dict[str, Any] | None:
    """This process's part in a `multi_worker` run (task, index, chief, workers), None otherwise."""
    if config.train.strategy != "multi_worker" or not os.environ.get("TF_CONFIG"):
        return None
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    jobs = resolver.cluster_spec().as_dict()
    kind, index = resolver.task_type, int(resolver.task_id or 0)
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in jobs)
    return {"task": kind, "index": index, "chief": chief,
            "workers": sum(len(v) for k, v in jobs.items() if k in ("chief", "worker"))}


def patch_keras_for_multi_worker() -> None:
    """Install the two fixes (once a process; they change nothing for any other strategy)."""
    global _PATCHED
    if _PATCHED:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    multi_worker = tf_trainer._collective_all_reduce_multi_worker
    is_per_replica = tf_trainer._is_per_replica_instance
    reduce_per_replica = tf_trainer.reduce_per_replica
    symbolic_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def local_first(strategy, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not multi_worker(strategy):
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tree.map_structure(lambda v: local_first(strategy, v), next(it))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not multi_worker(strategy):
            return reduce_per_replica(values, strategy, reduction)

        def one(value):
            if not is_per_replica(value):
                return value
            rank = strategy.experimental_local_results(value)[0].shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tree.map_structure(one, values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce
    _PATCHED = True
