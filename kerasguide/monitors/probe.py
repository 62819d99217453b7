"""`ProbeMonitor`: activation, gradient and weight histograms per layer on a fixed probe batch (recipe E19)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasguide._logging import get_logger
from kerasguide.activations import RELU_LIKE, SIGMOID_LIKE, TANH_LIKE, activation_kind
from kerasguide.monitors.base import MonitorCallback
from kerasguide.monitors.epoch_end import epoch_end
from kerasguide.monitors.hooks import layer_of_variables, var_name
from kerasguide.monitors.signals import HIST_BINS as _HIST_BINS
from kerasguide.monitors.signals import HIST_SAMPLE as _HIST_SAMPLE
from kerasguide.tb_events import EventWriter
from kerasguide.training import io_structure

__all__ = ["ProbeMonitor", "activation_kind"]  # activation_kind: re-exported from kerasguide.activations


def _one_array_if_flat(data):
    """A list of numbers (or of rows) is one array; a dict, or a list of arrays, stays a structure."""
    if isinstance(data, (list, tuple)) and data and not all(hasattr(v, "shape") for v in data):
        return np.asarray(data)
    return data


def _lengths(data) -> str:
    """The examples in each array of a structure, for an error message."""
    lengths = [len(a) if a.ndim else "a scalar" for a in keras.tree.flatten(data)]
    return str(lengths[0]) if len(lengths) == 1 else str(lengths)

logger = get_logger()

_ACT_SAMPLE = 16384  # activation values kept for a layer's histogram (a strided sample)
_EAGER_PROBES = 3  # a fit with at most this many probes left runs them eagerly: its trace costs about four


def _sample(values, stride: int):
    """Every `stride`-th value of a flat tensor (one op: `values[::stride]` traces several)."""
    return values if stride <= 1 else tf.strided_slice(values, [0], [0], [stride], end_mask=1)


def _histograms(tensors):
    """In the graph: for each tensor, the 16-bin counts of its finite values over their own range, and that range.

    What `signals.histogram` counts in NumPy (the same strided sample of a large tensor, the same bins).
    The non-finite values are counted in the first bin, then taken out of it: `tf.boolean_mask` made
    most of the probe's tracing and set-up (segment ops over every tensor at once were 5x slower to run).
    """
    # Constants made once, not per tensor (each one is an op to trace).
    first_bin = tf.one_hot(0, _HIST_BINS, dtype=tf.int32)
    inf, zero, one, nan = (tf.constant(v) for v in (math.inf, 0.0, 1.0, [math.nan, math.nan]))
    counts, ranges = [], []
    for tensor in tensors:
        values = tf.reshape(tensor, [-1])
        size = values.shape[0]
        if size is not None and size > _HIST_SAMPLE:
            values = _sample(values, size // _HIST_SAMPLE + 1)
        finite = tf.math.is_finite(values)
        low = tf.reduce_min(tf.where(finite, values, inf))
        high = tf.reduce_max(tf.where(finite, values, -inf))
        some = low <= high  # any finite value
        low = tf.where(some, low, zero)
        high = tf.where(some, high, one)
        high = tf.where(high > low, high, low + one)
        value_range = tf.stack([low, high])
        hist = tf.histogram_fixed_width(tf.where(finite, values, low), value_range, nbins=_HIST_BINS)
        not_finite = tf.size(values) - tf.reduce_sum(tf.cast(finite, tf.int32))
        counts.append(hist - first_bin * not_finite)
        ranges.append(tf.where(some, value_range, nan))
    return tf.stack(counts), tf.stack(ranges)


def _edges_and_counts(counts: np.ndarray, value_range: np.ndarray) -> dict[str, list[float]]:
    """`{"edges", "counts"}` of a histogram counted in the graph (empty if it had no finite value)."""
    low, high = float(value_range[0]), float(value_range[1])
    if not math.isfinite(low):
        return {"edges": [], "counts": []}
    step = (high - low) / _HIST_BINS
    return {"edges": [low + i * step for i in range(_HIST_BINS)] + [high], "counts": counts.tolist()}


class ProbeMonitor(MonitorCallback):
    """Activation, gradient and weight histograms per layer on a fixed probe batch (recipe E19).

    One extra compiled function runs the probe batch through the model
    (inference mode: no dropout, no batch-norm update) on a copy of its
    weights taken at the epoch's end, takes the gradients of the data loss
    for every trainable tensor, the unit statistics and the histograms
    (counted in the graph), and returns a few small arrays. Its first call
    (the tracing) and all the summaries and records run on the monitors'
    background thread (see `kerasguide.monitors.background`), so training
    goes on meanwhile; once traced, the function itself runs at the epoch's
    end (on the weights copied in the one compiled call of every monitor,
    `kerasguide.monitors.epoch_end`), where it does not share TensorFlow's
    threads with a training step. Per layer with a
    nonlinearity: the fraction of dead ReLU units
    (<= 0 on the whole probe batch), of saturated tanh/sigmoid values
    (`|tanh| > 0.99`, sigmoid outside [0.01, 0.99]), the activations' std;
    per layer with weights: gradient and weight norms and RMS. Per-layer
    activations need a Functional or Sequential model; gradients and
    weights work for any model.

    Record (`probe.jsonl`): `{"epoch", "loss", "order": [layers with
    weights, input to output], "layers": {layer: {"kind", "dead_fraction",
    "saturated_fraction", "act_std", "act_hist"} or {"grad_norm", "grad_rms",
    "weight_norm", "weight_rms", "grad_hist", "weight_hist"}}}`; each
    `*_hist` is `{"edges", "counts"}` (16 bins, of the layer's largest
    tensor for gradients and weights). TensorBoard: histograms
    `activations/<layer>`, and `gradients/<path>` and `weights/<path>` of
    each layer's largest tensor (the record's), scalars
    `dead_fraction/<layer>`, `saturated_fraction/<layer>`,
    `gradient_norm/<layer>`.

    Args:
        x: Inputs of the probe batch (e.g. 64 training examples, as `kerasguide run`): an
            array, or a dict or list of arrays for a model with several inputs.
        y: Their targets (integer ids, one-hot rows or floats; a dict or list for several outputs).
        every_epochs: Probe every N epochs (and at the last). Defaults to `1`.
        every_batches: Also probe every N executions (`on_train_batch_end`);
            None: only at epoch ends. Defaults to `None`.
        histograms: Write TensorBoard histograms (the record keeps its
            16-bin ones anyway). Defaults to `True`.
        log_dir: TensorBoard folder. Defaults to `None`.
        record_dir: Records folder. Defaults to `None`.

    Example:

    ```python
    probe = ProbeMonitor(x_train[:256], y_train[:256])
    model.fit(x_train, y_train, epochs=3, callbacks=[probe])
    probe.records[-1]["layers"]["activation"]["dead_fraction"]
    ```
    """

    record_name = "probe"

    def __init__(self, x, y, every_epochs: int = 1, every_batches: int | None = None, histograms: bool = True,
                 log_dir=None, record_dir=None):
        super().__init__(log_dir, record_dir, every_epochs)
        if every_batches is not None and (not isinstance(every_batches, int) or every_batches <= 0):
            raise ValueError(f"Argument `every_batches` must be None or an integer > 0. Received: every_batches={every_batches}")
        # Each may be one array or a structure of them (a dict or list: several inputs or outputs), and
        # the targets integer ids, one-hot rows or floats.
        x = keras.tree.map_structure(np.asarray, _one_array_if_flat(x))
        y = keras.tree.map_structure(np.asarray, _one_array_if_flat(y))
        lengths = [len(a) if a.ndim else 0 for a in keras.tree.flatten(x) + keras.tree.flatten(y)]
        if not lengths or min(lengths) == 0 or len(set(lengths)) > 1:
            raise ValueError("Arguments `x` and `y` must be non-empty and of equal length. Received: "
                             f"{_lengths(x)} and {_lengths(y)}")
        self.x = x
        self.y = y
        self.every_batches = every_batches
        self.histograms = histograms
        self._function = None
        self._function_model = None
        self._traced = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._batches = 0
        self._probe_step = 0
        self._failed = False
        if self._function_model is not self.model:
            self._traced = False
            self._build()
        hub = epoch_end(self.model)
        for suffix, (build, due, ready) in self._parts.items():
            hub.add(self._key + suffix, build, due, ready)

    def on_train_end(self, logs=None):
        hub = epoch_end(self.model)
        for suffix in self._parts:
            hub.remove(self._key + suffix)
        super().on_train_end(logs)

    def _build(self) -> None:
        model = self.model
        self._function_model = model
        outputs = set(id(t) for t in (getattr(model, "outputs", None) or []))
        probed = []
        for layer in model.layers:
            kind = activation_kind(layer)
            if kind is None or kind == "softmax" or isinstance(layer, keras.Model):
                continue
            try:
                out = layer.output
            except (AttributeError, ValueError):
                continue
            if id(out) in outputs:
                continue
            probed.append((layer.name, kind, out))
        submodel = None
        if probed and getattr(model, "inputs", None):
            try:
                # The model's own input and output structures: a dict of inputs or of outputs stays one.
                inputs, outputs_struct = io_structure(model)
                submodel = keras.Model(inputs, {"acts": [o for _, _, o in probed], "pred": outputs_struct})
            except (ValueError, TypeError, AttributeError):
                submodel = None
        self._probed = [(name, kind) for name, kind, _ in probed] if submodel is not None else []
        weights = list(model.trainable_weights)
        trainable_ids = {id(w) for w in weights}
        # Every variable the forward pass reads (batch-norm statistics too), trainable ones first.
        variables = weights + [v for v in model.non_trainable_weights if id(v) not in trainable_ids]
        n_weights = len(weights)
        self._n_weights = n_weights
        owners = layer_of_variables(model)
        self._order: list[str] = []
        groups: dict[str, list[int]] = {}
        for i, variable in enumerate(weights):
            layer = owners.get(id(variable), var_name(variable).split("/")[0])
            if layer not in groups:
                self._order.append(layer)
            groups.setdefault(layer, []).append(i)
        self._groups = groups
        sizes = [int(np.prod(w.shape)) for w in weights]
        kernels = [max(groups[layer], key=lambda i: sizes[i]) for layer in self._order]
        probed_kinds = list(self._probed)
        names = [var_name(v) for v in weights]
        x_probe = keras.tree.map_structure(tf.constant, self.x)
        y_probe = keras.tree.map_structure(tf.constant, self.y)
        loss_fn = getattr(model, "loss", None)
        if isinstance(loss_fn, str):
            loss_fn = keras.losses.get(loss_fn)
        single = len(getattr(model, "outputs", None) or [None]) == 1
        n_examples = len(keras.tree.flatten(self.x)[0])

        def snapshot():
            # The variables' values now: training goes on while the background thread probes them.
            return [tf.identity(v.value) for v in variables]

        def probe(values):
            # The model on `values` (a snapshot), not on its live variables (Keras' StatelessScope).
            trainable = values[:n_weights]
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                with tf.GradientTape() as tape:
                    tape.watch(trainable)
                    if submodel is not None:
                        outs = submodel(x_probe, training=False)
                        acts, y_pred = list(outs["acts"]), outs["pred"]
                    else:
                        acts, y_pred = [], model(x_probe, training=False)
                    if callable(loss_fn) and single:
                        # The data loss alone: the gradients the data push through the layers (E19).
                        loss = tf.reduce_mean(loss_fn(y_probe, y_pred))
                    else:
                        loss = model.compute_loss(x=x_probe, y=y_probe, y_pred=y_pred, training=False)
            grads = tape.gradient(loss, trainable)
            # An embedding's gradient is sparse (IndexedSlices): made dense for the norms and histograms.
            grads = [tf.zeros_like(w, tf.float32) if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32)
                     for g, w in zip(grads, trainable, strict=True)]
            stats, sampled = [], []
            for (_, kind), act in zip(probed_kinds, acts, strict=True):
                units = tf.reshape(tf.cast(act, tf.float32), [-1, act.shape[-1]])
                dead = saturated = tf.constant(0.0)
                if kind in RELU_LIKE:
                    dead = tf.reduce_mean(tf.cast(tf.reduce_all(units <= 0.0, axis=0), tf.float32))
                elif kind in TANH_LIKE:
                    saturated = tf.reduce_mean(tf.cast(tf.abs(units) > 0.99, tf.float32))
                elif kind in SIGMOID_LIKE:
                    saturated = tf.reduce_mean(tf.cast((units > 0.99) | (units < 0.01), tf.float32))
                stats.append(tf.stack([dead, saturated, tf.math.reduce_std(units)]))
                size = int(np.prod(act.shape[1:])) * n_examples
                sampled.append(_sample(tf.reshape(units, [-1]), size // _ACT_SAMPLE))
            trainable = [tf.cast(w, tf.float32) for w in trainable]
            # Per layer: the sums of squares of its gradients and weights (float64, as the norms were in
            # NumPy), and the histograms of its largest tensor: a few small arrays leave the graph.
            sums = [tf.stack([tf.add_n([tf.reduce_sum(tf.square(tf.cast(t[i], tf.float64))) for i in groups[layer]])
                              for t in (grads, trainable)]) for layer in self._order]
            sampled += [grads[k] for k in kernels] + [trainable[k] for k in kernels]
            counts, ranges = _histograms(sampled) if sampled else (tf.zeros([0, _HIST_BINS], tf.int32), tf.zeros([0, 2]))
            return {"loss": loss, "act_stats": tf.stack(stats) if stats else tf.zeros([0, 3]),
                    "sums": tf.stack(sums) if sums else tf.zeros([0, 2], tf.float64),
                    "counts": counts, "ranges": ranges}

        # One compiled function for the forward pass to every activation, the backward pass to
        # every gradient, the unit statistics and the histograms (counted in the graph: in NumPy
        # they were a third of the probe's epoch-end work); autograph is off (nothing here needs
        # it, and it slows tracing). It is traced at its first call unless the fit has at most
        # `_EAGER_PROBES` probes left, which run eagerly instead, on the background thread; the small snapshot function now, so that the training thread
        # never traces it mid-fit. Once traced, it runs inside the epoch's one compiled call of
        # every monitor (`epoch_end`).
        self._snapshot = tf.function(snapshot, autograph=False)
        self._snapshot.get_concrete_function()
        self._function = tf.function(probe, autograph=False)
        self._eager = probe
        self._kernels = dict(zip(self._order, kernels, strict=True))
        self._sizes = sizes
        self._names = names
        self._key = f"probe/{id(self)}"
        self._parts = {
            # The epoch's call copies the weights for the probe, which then runs its own function on
            # them: in the epoch's call, the probe's graph took 80-130 ms more to set up, more than its
            # call saved over a 40-epoch fit.
            "/snapshot": (lambda reset: snapshot(), self._due, None),
        }

    def on_train_batch_end(self, batch, logs=None):
        if self.every_batches is None:
            return
        self._batches += 1
        if self._batches % self.every_batches == 0:
            self._probe(None)

    def on_epoch_end(self, epoch, logs=None):
        if self._due(epoch) and not self._failed:
            self._probe(epoch)

    def _probe(self, epoch: int | None) -> None:
        if self._failed:
            return
        self._probe_step += 1
        step = epoch + 1 if epoch is not None else self._probe_step
        if epoch is not None:
            values = epoch_end(self.model).take(self._key + "/snapshot", epoch)  # in the epoch's one call
        else:
            values = self._snapshot()  # one compiled call that copies the weights
        if not self._traced:
            # A probe before the function is traced runs on the background thread, while the next
            # execution trains: eagerly when few are left (a search's short trials), else the trace.
            self._submit(self._measure, epoch, step, values, None, self._few_left(epoch))
            return
        # Traced: the forward and backward pass run here, between two executions. Run beside a
        # training step, the two would share TensorFlow's thread pools and cost more.
        outputs = self._run(values)
        if outputs is not None:
            self._submit(self._measure, epoch, step, values, outputs)

    def _few_left(self, epoch: int | None) -> bool:
        """Whether at most `_EAGER_PROBES` probes are left in this fit (never with a probe every N batches)."""
        if epoch is None or self.every_batches is not None or not self._epochs:
            return False
        return (self._epochs - epoch + self.every_epochs - 1) // self.every_epochs <= _EAGER_PROBES

    def _run(self, values, eager: bool = False):
        try:
            outputs = self._eager(values) if eager else self._function(values)
        except Exception as error:  # an exotic model must not stop the training
            self._failed = True
            logger.warning("probe monitor disabled: %s: %s", type(error).__name__, error)
            return None
        self._traced = self._traced or not eager
        return outputs

    def _measure(self, epoch: int | None, step: int, values, outputs=None, eager: bool = False) -> None:
        if self._failed:
            return
        if outputs is None:
            outputs = self._run(values, eager)
            if outputs is None:
                return
        act_stats = np.asarray(outputs["act_stats"], dtype=np.float64)
        sums = np.asarray(outputs["sums"], dtype=np.float64)
        counts, ranges = np.asarray(outputs["counts"]), np.asarray(outputs["ranges"], dtype=np.float64)
        hists = [_edges_and_counts(c, r) for c, r in zip(counts, ranges, strict=True)]
        n_probed, n_layers = len(self._probed), len(self._order)
        layers: dict[str, dict[str, Any]] = {}
        for i, (name, kind) in enumerate(self._probed):
            layers[name] = {"kind": kind, "dead_fraction": act_stats[i, 0], "saturated_fraction": act_stats[i, 1],
                            "act_std": act_stats[i, 2], "act_hist": hists[i]}
        for j, layer in enumerate(self._order):
            g2, w2 = float(sums[j, 0]), float(sums[j, 1])
            n = max(sum(self._sizes[i] for i in self._groups[layer]), 1)
            layers.setdefault(layer, {}).update(
                grad_norm=math.sqrt(g2), grad_rms=math.sqrt(g2 / n), weight_norm=math.sqrt(w2),
                weight_rms=math.sqrt(w2 / n), grad_hist=hists[n_probed + j],
                weight_hist=hists[n_probed + n_layers + j])
        writer = self.writer
        if writer is not None:
            with writer:
                self._write_summaries(writer, layers, step)
        if epoch is not None:
            self._add_record({"epoch": epoch + 1, "loss": float(outputs["loss"]), "order": self._order,
                              "layers": layers})

    def _write_summaries(self, writer: EventWriter, layers, step: int) -> None:
        for name, kind in self._probed:
            entry = layers[name]
            if self.histograms:
                writer.histogram(f"activations/{name}", entry["act_hist"]["edges"], entry["act_hist"]["counts"],
                                 step, f"{kind} outputs on the probe batch (E19)")
            if kind in RELU_LIKE:
                writer.scalar(f"dead_fraction/{name}", entry["dead_fraction"], step,
                              "ReLU units <= 0 on the whole probe batch (E19)")
            else:
                writer.scalar(f"saturated_fraction/{name}", entry["saturated_fraction"], step,
                              "values saturated at the nonlinearity's ends (E19)")
        for layer in self._order:
            writer.scalar(f"gradient_norm/{layer}", layers[layer]["grad_norm"], step,
                          "norm of the probe batch's data-loss gradient (E19)")
            if self.histograms:  # one per layer (its largest tensor, the record's): a bias adds little
                name = self._names[self._kernels[layer]]
                entry = layers[layer]
                writer.histogram(f"gradients/{name}", entry["grad_hist"]["edges"], entry["grad_hist"]["counts"], step)
                writer.histogram(f"weights/{name}", entry["weight_hist"]["edges"], entry["weight_hist"]["counts"],
                                 step)
