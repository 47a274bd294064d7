"""Training and evaluation: `train_step`, `eval_step`, `train_and_evaluate`.

Notation: b batch, t samples per crop.

The train state is a pytree (`TrainState`); `train_step` is pure, jitted once,
with the state donated. The step draws no random numbers: the data of a step,
input noise included, is drawn on the host from (seed, step) alone, so a resumed
run computes exactly what an uninterrupted one would. Data parallel: one `data`
mesh axis over all devices, parameters replicated, batches sharded along it; the
same code runs multi-host after `jax.distributed.initialize()`.

Metrics stay on the device until a log step (or a checkpoint save), where the
host fetches them, checks that every loss and gradient since the last check was
finite, and writes them to `metrics.jsonl`.
"""

import dataclasses
import json
import math
import os
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from absl import logging
from flax import traverse_util

from subscale import audio
from subscale import checkpointing
from subscale import config_validation
from subscale import errors
from subscale import evaluation
from subscale import files
from subscale import input_pipeline
from subscale import models
from subscale import plots
from subscale import pretrained
from subscale import resume
from subscale import sharding
from subscale import signals
from subscale import sparsity
from subscale import summaries
from subscale import workdir_lock

LN2 = math.log(2.0)


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    opt_state: Any
    masks: Any  # pruning masks ({} when dense), see sparsity.py
    skipped: jax.Array  # int32 scalar: non-finite steps skipped
    # train.carry_state: {"h": [batch * B, H]} the rows' states after the last
    # crop, which the next crop of the same batch slot starts from; else {}.
    carried: Any = flax.struct.field(default_factory=dict)
    # train.ema_decay > 0: the moving average of `params` (same tree) that
    # evaluation, export and inference use (`inference_params`); else {}.
    ema: Any = flax.struct.field(default_factory=dict)


def inference_params(state):
    """The weights a state is evaluated and exported with: the moving average
    when the run keeps one, else the parameters."""
    return state.ema or state.params


def ema_update(ema, params, step, decay):
    """The moving average after the update that reached `step` (>= 1).

    The decay ramps up as min(decay, (1 + step) / (10 + step)), so that the
    average forgets the initial weights within the first steps; a run that
    starts keeping it late (ema = params) takes `decay` from its first update.
    """
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree_util.tree_map(lambda e, p: e + (1.0 - d) * (p - e), ema, params)


def decay_weights(params, old, rate):
    """Decoupled weight decay (AdamW): `params` minus `rate` times the weights
    before the update, on the matrices only (ndim >= 2; biases are not
    decayed).

    `rate` is the learning rate of the update times `train.weight_decay`, so
    the decay follows the schedule as in AdamW. It is applied in the train
    step rather than inside the optax chain so that the optimizer state, and
    with it every checkpoint and resume bundle, keeps the same tree with the
    decay on or off: a run can take it up from any step of a run without it.
    """
    return jax.tree_util.tree_map(
        lambda p, w: p - rate * w if w.ndim >= 2 else p, params, old
    )


def _with_cooldown(schedule, start, length, end):
    """`schedule` until `start`, then a straight line from its value there to
    `end` over `length` steps (reached at step start + length)."""
    top = schedule(start)

    def cooled(step):
        frac = jnp.clip((step - start) / length, 0.0, 1.0)
        return jnp.where(step < start, schedule(step), top + (end - top) * frac)

    return cooled


def make_optimizer(config, start_step=0):
    """Adam with global-norm clipping on a warm-up + cosine decay schedule.

    Args:
      config: the run's config (`train.learning_rate` and the schedule fields).
      start_step: the step a warm-started run (`train.init_from`) begins at,
        with fresh Adam moments: the schedule continues from there, scaled by
        a second linear warm-up of `train.warmup_steps` so that the fresh
        moments do not take full-size steps at once.

    With `train.cooldown_steps` = n > 0, the last n steps of the run leave
    the schedule and fall linearly from its value at step num_steps - n to
    the end value: with `train.decay_steps` set beyond num_steps, a short run
    cools down a long run's weights at any step of its schedule.

    Returns:
      (optimizer, schedule): `schedule(step)` is the learning rate of the
      update that takes the state from `step` to `step + 1`.
    """
    t = config.train
    decay = int(t.decay_steps) or max(int(t.num_steps), int(t.warmup_steps) + 1)
    end = float(t.learning_rate) * float(t.end_lr_factor)
    base = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(t.learning_rate),
        warmup_steps=int(t.warmup_steps),
        decay_steps=decay,
        end_value=end,
    )
    cooldown = int(t.get("cooldown_steps", 0))
    if cooldown:
        base = _with_cooldown(base, int(t.num_steps) - cooldown, cooldown, end)
    if start_step:
        warmup = max(int(t.warmup_steps), 1)

        def schedule(step):
            ramp = jnp.clip((step - start_step + 1) / warmup, 0.0, 1.0)
            return base(step) * ramp
    else:
        schedule = base
    # The optimizer counts its own updates from 0, which is step start_step.
    return optax.chain(
        optax.clip_by_global_norm(float(t.clip_norm)),
        optax.adam(lambda count: schedule(count + start_step)),
    ), schedule


def create_train_state(config, model, optimizer, key):
    """A fresh state: parameters from `key`, masks for the configured pruning."""
    # Split as when the state held a second key, so that a seed still gives
    # the parameters it gave before (and that `api.create` gives).
    init_key, _ = jax.random.split(key)
    params, masks = sparsity.init_params(
        model.cfg, sparsity.SparsityConfig.from_config(config), init_key
    )
    carried = {}
    if config.train.get("carry_state", False):
        rows = config.train.batch_size * model.cfg.subscale_factor
        carried = {"h": jnp.zeros((rows, model.cfg.hidden_size), jnp.float32)}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        masks=masks,
        skipped=jnp.zeros((), jnp.int32),
        carried=carried,
        ema=params if config.train.get("ema_decay", 0.0) else {},
    )


def nll_bits(model, params, batch, margins=(0, 0), initial_state=None):
    """Sum of -log2 P over the batch's samples, their count (weights apply),
    and the rows' states after the crop.

    `batch["inputs"]`, when present, holds the autoregressive inputs with
    `margins` columns of context around the crop (see
    `models.SubscaleWaveRNN.__call__`); `initial_state` [b * B, H] the rows'
    states before it (None: zeros).
    """
    log_c, log_f, final = models.apply_to_batch(
        model, params, batch, margins, "log_probs_from", initial_state
    )
    log_p = log_c + log_f
    weights = batch.get("weights")
    if weights is None:
        weights = jnp.ones(log_p.shape[:1], log_p.dtype)
    total = -(log_p.sum(axis=-1) * weights).sum() / LN2
    return total, weights.sum() * log_p.shape[-1], final


def train_step(
    state,
    batch,
    *,
    model,
    optimizer,
    nonfinite,
    margins=(0, 0),
    ema_decay=0.0,
    weight_decay=0.0,
    schedule=None,
):
    """One optimizer step. Pure; jit with the state donated.

    Args:
      state: TrainState.
      batch: dict(samples=int16 [b, t], mel=float32 [b, t // hop + 2 MEL_PAD, m]),
        and optionally inputs (noisy inputs with context margins) and, with
        carried states, reset=bool [b] (the slot starts a new utterance).
      model: the Flax module.
      optimizer: the optax transformation.
      nonfinite: "stop" (apply anyway; the host stops at the next check) or
        "skip" (leave params and optimizer state unchanged, count the step).
      margins: context columns (left, right) around the crop in batch inputs.
      ema_decay: the decay of `state.ema` (kept when the state has one).
      weight_decay: `train.weight_decay`: the decoupled decay per unit of
        learning rate (`decay_weights`; 0 = off).
      schedule: the learning rate of the update from each step (needed with
        weight_decay).

    Returns:
      (new state, metrics dict of scalars).
    """

    initial = None
    if state.carried:
        # A slot that starts a new utterance starts from zeros; gradients do
        # not flow into the previous crop (truncated backpropagation).
        rows = state.carried["h"].shape[0] // batch["samples"].shape[0]
        keep = ~jnp.repeat(batch["reset"], rows)[:, None]
        initial = jax.lax.stop_gradient(state.carried["h"] * keep)

    def loss_fn(params):
        total, count, final = nll_bits(model, params, batch, margins, initial)
        return total / count, final

    (loss, final), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if weight_decay:
        rate = schedule(state.step) * weight_decay
        params = decay_weights(params, state.params, rate)
    params = sparsity.apply_masks(params, state.masks)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    skipped = state.skipped
    if nonfinite == "skip":
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree_util.tree_map(keep, params, state.params)
        opt_state = jax.tree_util.tree_map(keep, opt_state, state.opt_state)
        skipped = skipped + (~finite).astype(jnp.int32)
    carried = {"h": final.astype(jnp.float32)} if state.carried else {}
    ema = state.ema
    if ema:
        # Pruned weights stay exact zeros in the average too.
        ema = sparsity.apply_masks(
            ema_update(ema, params, state.step + 1, ema_decay), state.masks
        )
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        skipped=skipped,
        carried=carried,
        ema=ema,
    )
    metrics = dict(loss_bits=loss, grad_norm=grad_norm, finite=finite, skipped=skipped)
    return new_state, metrics


class Trainer:
    """Everything one run needs: model, optimizer, mesh, jitted steps."""

    def __init__(self, config, start_step=0):
        config_validation.validate(config, num_devices=jax.device_count())
        self.config = config
        self.model_config = models.ModelConfig.from_config(config)
        self.model = models.SubscaleWaveRNN(self.model_config)
        # The loss's model differs only by `train.tail_mass` (same parameters):
        # evaluation scores `self.model`, the distribution that ships.
        loss_tail = config.train.get("tail_mass")
        self.loss_model = models.SubscaleWaveRNN(
            self.model_config
            if loss_tail is None
            else dataclasses.replace(self.model_config, tail_mass=float(loss_tail))
        )
        self.mel_config = audio.MelConfig.from_config(config.data)
        self.optimizer, self.schedule = make_optimizer(config, start_step)
        self.mesh, self.replicated, self.sharded = sharding.data_mesh()
        self.margins = input_pipeline.context_columns(config)
        self.train_step = jax.jit(
            lambda s, b: train_step(
                s,
                b,
                model=self.loss_model,
                optimizer=self.optimizer,
                nonfinite=config.train.nonfinite,
                margins=self.margins,
                ema_decay=float(config.train.get("ema_decay", 0.0)),
                weight_decay=float(config.train.get("weight_decay", 0.0)),
                schedule=self.schedule,
            ),
            donate_argnums=0,
        )
        self.nll = evaluation.NllEvaluator(
            self.model, self.margins, config.train.batch_size, self.shard
        )

    def example(self):
        """A zero batch of the training shapes (for init and abstract states)."""
        d = self.config.data
        frames = d.seq_len // d.hop_length + 2 * models.MEL_PAD
        return dict(
            samples=np.zeros((1, d.seq_len), np.int16),
            mel=np.zeros((1, frames, d.n_mels), np.float32),
        )

    def init_state(self, seed):
        state = jax.jit(
            lambda key: create_train_state(
                self.config, self.model, self.optimizer, key
            ),
            out_shardings=self.replicated,
        )(jax.random.PRNGKey(seed))
        return state

    def warm_state(self, params, step):
        """A state at `step` holding trained `params` (an exported model) with
        fresh optimizer moments; pruning masks keep the exact zeros."""
        state = self.init_state(self.config.train.seed)
        params = jax.tree_util.tree_map(
            lambda old, new: jnp.asarray(new, old.dtype), state.params, params
        )
        flat = traverse_util.flatten_dict(params)
        masks = traverse_util.unflatten_dict(
            {
                path: (flat[path] != 0).astype(mask.dtype)
                for path, mask in traverse_util.flatten_dict(state.masks).items()
            }
        )
        return jax.device_put(
            state.replace(
                step=jnp.asarray(step, jnp.int32),
                params=params,
                opt_state=self.optimizer.init(params),
                masks=masks,
                ema=jax.tree_util.tree_map(jnp.copy, params) if state.ema else {},
            ),
            self.replicated,
        )

    def abstract_state(self):
        shapes = jax.eval_shape(
            lambda key: create_train_state(
                self.config, self.model, self.optimizer, key
            ),
            jax.random.PRNGKey(0),
        )
        return checkpointing.abstract(shapes, self.replicated)

    def shard(self, batch):
        return jax.device_put(batch, self.sharded)


def _is_writer():
    """Whether this process writes the workdir's files (one per shared workdir)."""
    return jax.process_index() == 0


def _append_jsonl(path, record):
    if not _is_writer():
        return
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _keep_metrics_until(path, step):
    """Drops the lines a killed run logged after the checkpoint it resumes from.

    The resumed run logs those steps again, so `metrics.jsonl` ends up as an
    uninterrupted run writes it; a line cut short by the kill goes too.
    """
    if not _is_writer() or not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if line.endswith("\n") and record.get("step", 0) <= step:
                kept.append(line)
    files.write_text(path, "".join(kept))


def _check_finite(history, first_step):
    """Raises if any step in `history` (fetched metrics) was non-finite."""
    for offset, finite in enumerate(history):
        if not finite:
            raise errors.SubscaleError(
                f"non-finite loss or gradient at step {first_step + offset + 1}; "
                "stopped without saving it (the last checkpoint is intact). "
                'Lower train.learning_rate or set train.nonfinite="skip"'
            )


WARM_START_FILE = "warm_start.json"


def _warm_start(config, workdir, fresh):
    """(params or None, start step) of a run with `train.init_from` set.

    The first run in `workdir` (`fresh`: no checkpoint yet) reads the exported
    model (a folder or a packaged name), checks that it fits the config, and
    records where it started in `warm_start.json`; a resumed run reads that
    record, so its schedule is the one the first run had, whatever the model
    folder holds by then, and `init_from` no longer matters. Otherwise (None, 0).
    """
    record_path = os.path.join(workdir, WARM_START_FILE)
    source = config.train.get("init_from", "")
    if not fresh:
        if not os.path.isfile(record_path):
            return None, 0
        with open(record_path) as f:
            return None, int(json.load(f)["step"])
    if not source:
        return None, 0
    try:
        path = pretrained.locate(source)
        saved, params, info = pretrained.read(path)
        checkpointing.check_compatible(saved, config, path)
    except errors.SubscaleError as e:
        raise errors.SubscaleError(f"train.init_from: {e}") from e
    step = int(info.get("step", 0))
    if step >= config.train.num_steps:
        raise errors.SubscaleError(
            f"train.init_from={source}: the model is at step {step}, not below "
            f"train.num_steps={config.train.num_steps}"
        )
    if _is_writer():
        record = dict(init_from=source, path=path, step=step, info=info)
        files.write_text(record_path, json.dumps(record, indent=2) + "\n")
    return params, step


def train_and_evaluate(config, workdir):
    """Trains (resuming from the latest checkpoint) and evaluates on dev.

    A run with no checkpoint starts from scratch, or, with `train.resume_from`,
    exactly where a resume bundle's run stopped (`resume.py`), or, with
    `train.init_from`, from an exported model's parameters and step
    (`_warm_start`). A newest
    checkpoint that does not restore gives way to the one before it (and moves
    to `damaged_checkpoints/`); checkpoints of which none restores stop the run.

    The run holds the workdir's lock (`workdir_lock`): a second run on the same
    workdir is refused. SIGTERM or SIGINT stops it after the current step with a
    checkpoint of that step (`signals`); it then returns normally, with
    `stopped_by` (the signal's name) in the metrics dict.

    Returns:
      The final metrics dict (step, dev_bits, ...).
    """
    config_validation.validate(config, num_devices=jax.device_count())
    _make_workdir(workdir)
    lock = workdir_lock.acquire(workdir) if _is_writer() else None
    try:
        return _train_and_evaluate(config, workdir)
    finally:
        if lock is not None:
            lock.release()


def _train_and_evaluate(config, workdir):
    mngr = checkpointing.manager(workdir, config)
    fresh = mngr.latest_step() is None
    if not fresh:
        checkpointing.check_compatible(
            checkpointing.load_config(workdir), config, workdir
        )
    warm_params, start_step = _warm_start(config, workdir, fresh)
    trainer = Trainer(config, start_step)
    t = config.train
    if _is_writer():
        checkpointing.write_config(workdir, config)
    train_utts = input_pipeline.corpus(config, workdir, ("train",))
    batches = input_pipeline.train_batches(config, train_utts, models.MEL_PAD)
    dev_utts = input_pipeline.eval_utterances(config, workdir)
    dev = input_pipeline.eval_crops_of(config, dev_utts, models.MEL_PAD, t.eval_crops)
    dev_clips = evaluation.clips(
        dev_utts,
        int(t.get("eval_clips", 0)),
        float(t.get("eval_clip_seconds", 2.0)),
        config.data.hop_length,
        config.data.sample_rate,
    )
    state, step = checkpointing.restore(mngr, trainer.abstract_state())
    if state is not None and step < mngr.latest_step():
        checkpointing.set_aside(mngr, workdir, step)
    if state is None and t.get("resume_from", ""):
        state, step = resume.start(
            t.resume_from, config, workdir, trainer.abstract_state()
        )
        logging.info("Continuing the bundle %s at step %d.", t.resume_from, step)
    elif state is None and warm_params is not None:
        state, step = trainer.warm_state(warm_params, start_step), start_step
        logging.info("Starting from %s (step %d) in %s.", t.init_from, step, workdir)
    elif state is None:
        state, step = trainer.init_state(t.seed), 0
        logging.info("Starting from scratch in %s.", workdir)
    else:
        logging.info("Resumed from step %d in %s.", step, workdir)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    _keep_metrics_until(metrics_path, step)
    summary = summaries.Writer(workdir, config, step, enabled=_is_writer())
    logging.info(
        "Model: %d parameters; %d train files; %d dev crops.",
        models.param_count(state.params),
        len(train_utts),
        len(dev["samples"]),
    )
    pending = []  # device metrics since the last host check
    last = dict(step=step)
    progress = tqdm.tqdm(
        total=t.num_steps, initial=step, unit="step", dynamic_ncols=True, disable=None
    )
    tick = time.perf_counter()
    # Multi-process runs stop together at a preemption that orbax detects.
    stop = signals.StopRequest(install=jax.process_count() == 1)
    # An error (a non-finite step, a full disk) still lets the save in flight
    # finish, so the checkpoint before it is complete.
    try:
        while step < t.num_steps:
            state = sparsity.maybe_update_masks(state, step, config)
            state, metrics = trainer.train_step(state, trainer.shard(batches.get(step)))
            pending.append(metrics)
            if len(pending) > 1:
                # At most two steps in flight: dispatch is asynchronous, and a
                # loop running far ahead would make a stop signal wait for
                # every step queued before it (49 s at the speech16k size).
                jax.block_until_ready(pending[-2]["loss_bits"])
            step += 1
            progress.update(1)
            stopping = step < t.num_steps and _stop_requested(stop, mngr, step)
            due_log = step % t.log_every_steps == 0 or step == t.num_steps
            due_save = mngr.should_save(step) or step == t.num_steps or stopping
            if due_log or due_save:
                fetched = jax.device_get(pending)
                if t.nonfinite == "stop":
                    _check_finite([m["finite"] for m in fetched], step - len(fetched))
                now = time.perf_counter()
                last = dict(
                    step=step,
                    loss_bits=float(np.mean([m["loss_bits"] for m in fetched])),
                    grad_norm=float(np.mean([m["grad_norm"] for m in fetched])),
                    skipped=int(fetched[-1]["skipped"]),
                    learning_rate=float(trainer.schedule(step - 1)),
                    steps_per_second=len(fetched) / (now - tick),
                    # CPU seconds of this process so far (all threads; resets
                    # when a run resumes) and the clock: the cost of a budget
                    # reached in pieces.
                    cpu_seconds=round(time.process_time(), 1),
                    time=round(time.time(), 1),
                )
                tick, pending = now, []
                _append_jsonl(metrics_path, last)
                summary.train(last)
                progress.set_postfix(bits=f"{last['loss_bits']:.3f}")
                logging.info("step %d: %.4f bits/sample", step, last["loss_bits"])
            if stopping:  # the evaluation due now, if any, is skipped
                checkpointing.save(mngr, step, state, config, force=True)
                last["stopped_by"] = stopping
                break
            if step % t.eval_every_steps == 0 or step == t.num_steps:
                record, generated = _periodic_evaluation(
                    trainer, inference_params(state), dev, dev_clips
                )
                last.update(step=step, dev_samples=record.pop("dev_samples"))
                last.update(record)
                _append_jsonl(metrics_path, dict(step=step, **record))
                summary.evaluation(
                    step, record, dev_clips, generated, trainer.mel_config
                )
                logging.info("step %d: dev %s", step, json.dumps(record))
            if t.vocode_every_steps and step % t.vocode_every_steps == 0:
                _vocode_dev_clip(
                    trainer,
                    inference_params(state),
                    dev_utts[0],
                    workdir,
                    step,
                    summary,
                )
            if due_save:
                checkpointing.save(mngr, step, state, config, force=step == t.num_steps)
    finally:
        progress.close()
        summary.close()
        checkpointing.close(mngr)
        stop.restore()
    if "stopped_by" in last:
        logging.warning(
            "Stopped at step %d on %s, with a checkpoint of it: run the same "
            "command again to resume in %s.",
            step,
            last["stopped_by"],
            workdir,
        )
    return last


def _stop_requested(stop, mngr, step):
    """The reason to stop after `step` (a signal's name, "preemption") or None."""
    if stop.requested:
        return stop.requested
    if jax.process_count() > 1 and mngr.reached_preemption(step):
        return "preemption"
    return None


def _periodic_evaluation(trainer, params, dev, dev_clips):
    """Dev NLL (with its parts) and free-running quality on the dev clips;
    returns (record, the clips as generated)."""
    nll = trainer.nll(params, dev)
    record = dict(dev_bits=nll.pop("bits"), dev_samples=nll.pop("samples"))
    record.update({f"dev_{key}": value for key, value in nll.items()})
    scores, generated = evaluation.free_running(
        trainer.model_config,
        params,
        dev_clips,
        trainer.mel_config,
        trainer.config.sampling,
    )
    record.update({f"dev_{key}": value for key, value in scores.items()})
    return record, generated


def _make_workdir(workdir):
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write-test-{jax.process_index()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise errors.SubscaleError(
            f"{workdir}: workdir is not writable ({e.strerror or e})"
        ) from e


def _vocode_dev_clip(trainer, params, utterance, workdir, step, summary):
    cfg = trainer.config
    frames = max(
        1, int(cfg.train.vocode_seconds * cfg.data.sample_rate) // cfg.data.hop_length
    )
    mel = utterance.mel[:frames]
    sample_fn = evaluation.cached_sample_fn(trainer.model_config, cfg.sampling.noise)
    generated = sample_fn(
        params,
        mel,
        jax.random.PRNGKey(step),
        **evaluation.shaping_kwargs(cfg.sampling),
    )
    if not _is_writer():
        return
    original = audio.to_float(utterance.samples[: mel.shape[0] * cfg.data.hop_length])
    base = os.path.join(workdir, "samples", f"step_{step}")
    audio.write_wav(
        base + ".wav", audio.to_float(np.asarray(generated)), cfg.data.sample_rate
    )
    plots.save_spectrogram_png(
        base + ".png",
        original,
        audio.to_float(np.asarray(generated)),
        trainer.mel_config,
    )
    name = os.path.splitext(os.path.basename(utterance.path))[0]
    summary.clip(
        step,
        f"vocoded/{name}",
        original,
        audio.to_float(np.asarray(generated)),
        trainer.mel_config,
    )
