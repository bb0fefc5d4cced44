"""The one training primitive: train given weights from step a to step b.

``Trainer`` knows nothing about lottery tickets. It owns a model, an optimizer
and a step counter under a ``tf.distribute`` strategy and runs a custom loop:
``strategy.run`` inside a ``tf.function`` that performs many steps per call.
``Trainer.train(RunSpec)`` trains one *run* (a parent, a child, an IMP level)
in its own directory, resuming from that directory's last checkpoint, and is
idempotent: a run whose ``results.json`` says complete is never redone.

Two things make a run explicit:

- where it starts, ``RunSpec.start``: ``FromSeed`` (W_0 drawn from a seed,
  step 0, fresh optimizer state) or ``FromCheckpoint`` (e.g. the parent's W_k,
  with its optimizer state or a fresh one), each optionally followed by a
  ``then`` function (e.g. apply a mask after rewinding). A new run never
  starts from whatever the model happens to hold, so one Trainer can train
  parents, children and levels one after another (only its compiled loops
  carry over);
- what the Trainer adds to plain training, ``TrainerHooks``, fixed when it is
  built: a model wrapper (pruning wrappers), gradient functions (mask the
  gradients of pruned weights) and post-update functions (re-apply masks
  after every optimizer step).

Instability analysis and IMP are thin orchestration over ``train``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras
from absl import logging

from tf_lottery import chief, startup
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.errors import FieldError
from tf_lottery.models import batchnorm
from tf_lottery.models import registry as model_registry
from tf_lottery.training import (
    checkpoints,
    ema,
    losses,
    optimizers,
    precision,
    run_numerics,
    schedules,
)
from tf_lottery.training.strategy import step_compiler


@dataclasses.dataclass(frozen=True)
class SgdNoise:
    """The paper's SGD noise: data order and augmentation, seeded separately."""

    data_order_seed: int
    augment_seed: int


Then = Callable[["Trainer"], None]


@dataclasses.dataclass(frozen=True)
class FromSeed:
    """A run that starts from W_0 drawn from ``seed``.

    The model's weights become those of a model freshly built from ``seed``
    (``models.registry.build_model``, then the trainer's wrapper), the step
    0, the optimizer state fresh (zero); then ``then(trainer)``, if given.
    """

    seed: int
    then: Then | None = None


@dataclasses.dataclass(frozen=True)
class FromCheckpoint:
    """A run that starts from the checkpoint ``path`` (e.g. the parent's W_k).

    Weights and step come from ``path``; the optimizer state too, unless
    ``reset_optimizer`` (then it is fresh: zero moments, and Adam's bias
    correction restarts; the LR schedule still continues from the step).
    Then ``then(trainer)``, if given (e.g. apply a mask).
    """

    path: str
    reset_optimizer: bool = False
    then: Then | None = None


Start = FromSeed | FromCheckpoint


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of the engine.

    Attributes:
      run_dir: where the run's checkpoints, events and results.json live.
      end_step: T, the step at which training stops.
      noise: seeds of the run's data order and augmentation.
      start: where a new run starts (a run with a checkpoint in ``run_dir``
        resumes from it instead).
      rewind_steps: steps k at which W_k is saved permanently.
      evaluate_every: steps between evaluations (0: only at the end).
    """

    run_dir: str
    end_step: int
    noise: SgdNoise
    start: Start
    rewind_steps: tuple[int, ...] = ()
    evaluate_every: int = 0


GradientFn = Callable[[tf_keras.Model, list, list], list]
PostUpdateFn = Callable[[tf_keras.Model], None]


@dataclasses.dataclass(frozen=True)
class TrainerHooks:
    """What a Trainer adds to plain training; given when it is built.

    Attributes:
      wrap_model: transforms the freshly built model inside the strategy
        scope, before the optimizer sees its variables (e.g. holds kernels
        in pruning wrappers); checkpoints follow its layout.
      gradient_fns: ``fn(model, grads, variables) -> grads``, applied in order
        to the all-reduced gradients before clipping (e.g. masking the
        gradients of pruned weights).
      post_update_fns: ``fn(model)``, run in the replica step right after
        each optimizer update (e.g. re-applying masks).
    """

    wrap_model: Callable[[tf_keras.Model], tf_keras.Model] | None = None
    gradient_fns: tuple[GradientFn, ...] = ()
    post_update_fns: tuple[PostUpdateFn, ...] = ()


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _run_name(model_dir: str, run_dir: str) -> str:
    """A run as progress lines name it: its path under the model_dir, which
    names its replicate and k, or its level (``replicate_0/k_000000100/child_1``)."""
    name = layout.relative(model_dir, run_dir)
    return name if name != "." else (os.path.basename(run_dir.rstrip("/")) or run_dir)


class Trainer:
    """Model, optimizer and step under a strategy, with distributed loops."""

    def __init__(
        self,
        config: ExperimentConfig,
        strategy: tf.distribute.Strategy,
        pipeline: Pipeline,
        hooks: TrainerHooks | None = None,
        init_seed: int | None = None,
    ):
        """``init_seed`` (default: the recipe's) only sets the weights the model
        holds before its first run; every run sets its own (``RunSpec.start``).
        """
        self.config = config
        self.strategy = strategy
        self.pipeline = pipeline
        self.hooks = hooks or TrainerHooks()
        replicas = strategy.num_replicas_in_sync
        for field, batch in (("train.batch_size", config.train.batch_size),
                             ("data.eval_batch_size", config.data.eval_batch_size)):
            if batch % replicas:
                raise FieldError(field, f"={batch} is not divisible by the {replicas} "
                                 f"replicas of {{runtime.strategy}}={config.runtime.strategy}")
        seed = config.train.init_seed if init_seed is None else init_seed
        with strategy.scope(), precision.policy_scope(config.model.precision):
            self.model = self._build_model(seed)
            self.optimizer = precision.wrap_optimizer(optimizers.make_optimizer(
                config.optimizer, config.schedule.learning_rate), config.model.precision)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            # The moving average of the weights that is evaluated (--ema_decay).
            self.ema = (ema.WeightAverage(self.model.weights, config.optimizer.ema_decay)
                        if config.optimizer.ema_decay else None)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            **({"ema": self.ema} if self.ema is not None else {}))
        self._weights_checkpoint = tf.train.Checkpoint(model=self.model, step=self.step)
        startup.mark("model")
        # Each replica's step: one XLA computation with --jit_compile, else
        # plain ops without AutoGraph (step_compiler says why). The compiled
        # step shadows the method on this instance.
        compile_step = step_compiler(config.runtime, strategy)
        self._train_step = compile_step(self._train_step)  # type: ignore[method-assign]
        self._eval_step = compile_step(self._eval_step)  # type: ignore[method-assign]
        self._train_loop = startup.timed_first_loop(tf.function(self._train_loop_impl))
        self._eval_loop = tf.function(self._eval_loop_impl)
        self._eval_inputs: dict[str, tuple[Any, int]] = {}

    def _build_model(self, seed: int) -> tf_keras.Model:
        """The model as this trainer holds it, with W_0 drawn from ``seed``
        (call inside the strategy scope)."""
        spec, model_cfg = self.pipeline.spec, self.config.model
        # Layers (also pruning wrappers) take the --precision dtype policy.
        with precision.policy_scope(model_cfg.precision):
            model = model_registry.build_model(
                model_cfg.name, spec.num_classes, spec.image_shape, seed)
            if model_cfg.cross_replica_bn:
                batchnorm.synchronize(model)
            if self.hooks.wrap_model is not None:
                model = self.hooks.wrap_model(model)
        return model

    # -- the distributed steps ------------------------------------------------

    def _per_example_loss(self, labels: tf.Tensor, logits: tf.Tensor,
                          label_smoothing: float) -> tf.Tensor:
        return losses.cross_entropy(labels, logits, label_smoothing)

    def _train_step(self, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        variables = self.model.trainable_variables
        grads, per_example, logits = self.gradients(images, labels)
        self.optimizer.apply_gradients(
            zip(grads, variables, strict=False), skip_gradients_aggregation=True)
        for post_update_fn in self.hooks.post_update_fns:
            post_update_fn(self.model)
        if self.ema is not None:
            self.ema.update(self.step)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
            tf.float32))
        return tf.stack([tf.reduce_sum(per_example), correct])

    def gradients(self, images: tf.Tensor, labels: tf.Tensor
                  ) -> tuple[list, tf.Tensor, tf.Tensor]:
        """This replica's part of one step: the recipe's loss on its slice of
        the global batch (data loss, the model's own losses, weight decay),
        its gradient wrt the trainable variables, all-reduced over replicas,
        through the gradient hooks (e.g. masks) and clipped.

        Returns (gradients, per-example losses, logits). ``_train_step``
        applies them; ``stability.curves`` applies them to a curve's bend.
        """
        cfg = self.config.optimizer
        replicas = self.strategy.num_replicas_in_sync
        global_batch = self.config.train.batch_size
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits, aux_logits = losses.split_outputs(self.model(images, training=True))
            per_example = losses.per_example_loss(
                labels, logits, aux_logits, cfg.label_smoothing, cfg.aux_loss_weight)
            # Sum over this replica's examples / global batch: the all-reduced
            # SUM of gradients is then the gradient of the global-batch mean.
            data_loss = tf.reduce_sum(per_example) / global_batch
            loss = data_loss
            if self.model.losses:
                loss += tf.add_n(self.model.losses) / replicas
            if cfg.weight_decay:
                l2 = tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables])
                loss += 0.5 * cfg.weight_decay * l2 / replicas
            scaled_loss = precision.scale_loss(self.optimizer, loss)  # float16 only
        grads = precision.unscale_gradients(
            self.optimizer, tape.gradient(scaled_loss, variables))
        grads = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, grads)
        for gradient_fn in self.hooks.gradient_fns:
            grads = gradient_fn(self.model, grads, variables)
        if cfg.grad_clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, cfg.grad_clip_norm)
        return grads, per_example, logits

    def _train_loop_impl(self, iterator, num_steps: tf.Tensor):
        totals = tf.zeros([2])
        lr = tf.constant(0.0)
        for _ in tf.range(num_steps):
            step_totals, lr = self.one_step(iterator)
            totals += step_totals
        return totals, lr

    def one_step(self, iterator) -> tuple[tf.Tensor, tf.Tensor]:
        """One training step inside a compiled loop: the step's learning rate,
        the next global batch, every replica's update, the step counter.

        Returns the step's (summed loss, correct predictions) and its learning
        rate. ``training.packed`` calls it for several trainers in one loop.
        """
        lr = schedules.learning_rate(self.config.schedule, self.step,
                                     self.config.train.train_steps)
        self.optimizer.learning_rate.assign(lr)
        images, labels = next(iterator)
        per_replica = self.strategy.run(self._train_step, args=(images, labels))
        totals = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        self.step.assign_add(1)
        return totals, lr

    def _eval_step(self, images, labels, weights) -> tf.Tensor:
        logits, _ = losses.split_outputs(self.model(images, training=False))
        per_example = self._per_example_loss(labels, logits, 0.0)
        correct = tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
            tf.float32)
        return tf.stack([tf.reduce_sum(per_example * weights),
                         tf.reduce_sum(correct * weights), tf.reduce_sum(weights)])

    def _eval_loop_impl(self, iterator, num_batches: tf.Tensor) -> tf.Tensor:
        totals = tf.zeros([3])
        for _ in tf.range(num_batches):
            per_replica = self.strategy.run(self._eval_step, args=next(iterator))
            totals += self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return totals

    # -- evaluation -----------------------------------------------------------

    def evaluate(self, split: str) -> dict[str, float]:
        """Loss, accuracy and error of the current weights on 'test' or
        'train_eval', every example counted once (padded batches weigh 0)."""
        if split not in self._eval_inputs:
            es = self.pipeline.eval_split(split)
            dataset = self.strategy.distribute_datasets_from_function(es.dataset_fn)
            self._eval_inputs[split] = (dataset, es.num_batches)
        dataset, num_batches = self._eval_inputs[split]
        totals = self._eval_loop(iter(dataset), tf.constant(num_batches, tf.int64))
        loss_sum, correct, count = (float(v) for v in totals.numpy())
        accuracy = correct / max(count, 1.0)
        return {"loss": loss_sum / max(count, 1.0), "accuracy": accuracy,
                "error": 1.0 - accuracy, "examples": int(count)}

    def evaluate_all(self) -> dict[str, float]:
        """Test and train-subset metrics, flattened as test_accuracy etc."""
        out = {}
        for split, prefix in (("test", "test"), ("train_eval", "train")):
            for key, value in self.evaluate(split).items():
                out[f"{prefix}_{key}"] = value
        return out

    def evaluated_weights(self) -> contextlib.AbstractContextManager:
        """Within the block the model holds the weights that evaluation reports.

        With --ema_decay those are the moving averages (the trained weights
        are put back on exit); otherwise the trained weights themselves.
        ``train`` reports every metric of a run this way.
        """
        return self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()

    def restore_evaluated_weights(self, path: str) -> None:
        """Restores checkpoint ``path`` and leaves the model holding the weights
        evaluation reports for it (its moving averages with --ema_decay): the
        endpoints to interpolate between, for instance. Restore the checkpoint
        again (``restore_from``) before training on from it.
        """
        checkpoints.restore(self.checkpoint, path)
        if self.ema is not None:
            for v, value in zip(self.ema.sources, self.ema.values(), strict=True):
                v.assign(value)

    # -- state ----------------------------------------------------------------

    def restore_from(self, path: str, reset_optimizer: bool) -> None:
        """Loads weights and step from ``path``; optimizer state too unless reset.

        A reset zeroes every optimizer variable (moments and its iteration
        count, so Adam's bias correction restarts); the LR schedule still
        continues from the restored step.
        """
        if reset_optimizer:
            checkpoints.restore(self._weights_checkpoint, path)
            self._reset_optimizer()
        else:
            checkpoints.restore(self.checkpoint, path)

    def initialize(self, seed: int) -> None:
        """W_0 drawn from ``seed``, step 0 and a fresh optimizer state: the
        trainer as if it had just been built from ``seed``."""
        with self.strategy.scope():
            fresh = self._build_model(seed)
        for variable, value in zip(self.model.weights, fresh.weights, strict=True):
            variable.assign(value)
        self.step.assign(0)
        self._reset_optimizer()

    def _reset_optimizer(self) -> None:
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))

    def _start(self, start: Start) -> None:
        """Puts the run's starting state ``start`` in place."""
        if isinstance(start, FromSeed):
            self.initialize(start.seed)
        else:
            self.restore_from(start.path, start.reset_optimizer)
        if start.then is not None:
            start.then(self)
        if self.ema is not None and (isinstance(start, FromSeed) or start.reset_optimizer
                                     or start.then is not None):
            # Average from the run's own starting weights (e.g. masked W_k),
            # unless it continues a checkpoint's averages unchanged.
            self.ema.reset()

    # -- the run --------------------------------------------------------------

    def train(self, run: RunSpec) -> records.RunRecord:
        """Trains ``run`` to its end step, resuming if it was interrupted.

        Returns the run's record (also written to ``run_dir/results.json``).
        """
        # A damaged results.json is set aside; the run's final checkpoint
        # then gives its metrics back without training.
        done = store.read_run(run.run_dir)
        if done is not None and layout.is_complete(done):
            logging.info("Run %s is already complete (step %d): nothing to do.",
                         run.run_dir, done.step)
            return done
        chief.makedirs(run.run_dir)
        manager, resumed = checkpoints.resume(
            self.checkpoint, run.run_dir, self.config.runtime.keep_checkpoints)
        run_numerics.claim(run.run_dir, resumed is not None,
                           self.config.runtime.allow_numerics_change)
        if resumed:
            logging.info("Resuming %s from step %d", run.run_dir, int(self.step.numpy()))
        else:
            self._start(run.start)
        start = int(self.step.numpy())
        if start > run.end_step:
            raise ValueError(f"run {run.run_dir} is at step {start}, past its end "
                             f"{run.end_step}")
        writer = chief.summary_writer(run.run_dir)
        started = time.perf_counter()
        self._run_steps(run, manager, writer, start)
        with self.evaluated_weights():
            metrics = self.evaluate_all()
        final = checkpoints.save_final(self.checkpoint, run.run_dir)
        with writer.as_default(step=run.end_step):
            self._write_eval_summaries(metrics)
        writer.flush()
        results = records.RunRecord(
            status=layout.COMPLETE,
            step=run.end_step,
            metrics=records.Metrics.from_json(metrics),
            rewind_checkpoints={k: checkpoints.rewind_prefix(run.run_dir, k)
                                for k in checkpoints.rewind_steps_saved(run.run_dir)},
            final_checkpoint=final,
            data_order_seed=run.noise.data_order_seed,
            augment_seed=run.noise.augment_seed,
            wall_time_s_last_session=round(time.perf_counter() - started, 3),
        )
        store.write_run(run.run_dir, results)
        logging.info("Run %s complete: test accuracy %.4f, train accuracy %.4f",
                     run.run_dir, metrics["test_accuracy"], metrics["train_accuracy"])
        return results

    def _write_eval_summaries(self, metrics: dict[str, float]) -> None:
        for split in layout.SPLITS:
            for metric in ("accuracy", "loss"):
                tf.summary.scalar(layout.eval_tag(split, metric), metrics[f"{split}_{metric}"])

    def _run_steps(self, run: RunSpec, manager, writer, start: int) -> None:
        rt = self.config.runtime
        end = run.end_step
        rewinds = sorted(k for k in run.rewind_steps if k >= start)
        dataset = self.strategy.distribute_datasets_from_function(
            self.pipeline.train_dataset_fn(
                start, max(end, start + 1), run.noise.data_order_seed,
                run.noise.augment_seed))
        iterator = iter(dataset)

        def next_multiple(step: int, every: int) -> float:
            return (step // every + 1) * every if every else math.inf

        step = start
        last_log_step, last_log_time = step, time.perf_counter()
        t0 = last_log_time
        while True:
            if step in rewinds:
                checkpoints.save_rewind(self.checkpoint, run.run_dir, step)
            if step >= end:
                break
            boundary = int(min(  # a step: only the unset cadences are infinite
                end,
                next_multiple(step, rt.steps_per_loop),
                next_multiple(step, rt.checkpoint_every),
                next_multiple(step, rt.log_every),
                next_multiple(step, run.evaluate_every),
                *[k for k in rewinds if k > step],
            ))
            totals, lr = self._train_loop(iterator, tf.constant(boundary - step, tf.int64))
            n = boundary - step
            step = boundary
            loss_sum, correct = (float(v) for v in totals.numpy())
            examples = n * self.config.train.batch_size
            with writer.as_default(step=step):
                tf.summary.scalar(layout.TRAIN_LOSS, loss_sum / examples)
                tf.summary.scalar(layout.TRAIN_BATCH_ACCURACY, correct / examples)
                tf.summary.scalar(layout.TRAIN_LEARNING_RATE, float(lr))
            if run.evaluate_every and step % run.evaluate_every == 0 and step < end:
                with writer.as_default(step=step), self.evaluated_weights():
                    self._write_eval_summaries(self.evaluate_all())
            if step % rt.checkpoint_every == 0 and step < end:
                manager.save(checkpoint_number=step)
            if step % rt.log_every == 0 or step == end:
                now = time.perf_counter()
                rate = (step - last_log_step) / max(now - last_log_time, 1e-9)
                overall = (step - start) / max(now - t0, 1e-9)
                logging.info(
                    "%s step %d/%d (%.1f%%) | loss %.4f | batch acc %.2f%% | lr %.3g "
                    "| %.1f steps/s | ETA %s",
                    _run_name(self.config.runtime.model_dir, run.run_dir),
                    step, end, 100.0 * step / end, loss_sum / examples,
                    100.0 * correct / examples, float(lr), rate,
                    _format_duration((end - step) / max(overall, 1e-9)))
                writer.flush()
                last_log_step, last_log_time = step, now
        if end > start:  # else resumed at the end: its checkpoint exists
            manager.save(checkpoint_number=end)
