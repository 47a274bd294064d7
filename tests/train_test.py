"""End to end: train, resume, evaluate and vocode with the tiny config."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile
from flax import traverse_util

import subscale
from configs import tiny
from subscale import commands
from subscale import errors
from subscale import evaluation
from subscale import models
from subscale import pretrained
from subscale import sparsity
from subscale import train
from tests import summaries_test


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("tiny"))
    config = tiny.get_config()
    result = train.train_and_evaluate(config, workdir)
    return config, workdir, result


def test_train_writes_metrics_and_checkpoints(trained):
    config, workdir, result = trained
    assert result["step"] == config.train.num_steps
    assert np.isfinite(result["dev_bits"])
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [x["step"] for x in lines if "loss_bits" in x] == [1, 2, 3, 4]
    saved = [int(x) for x in os.listdir(os.path.join(workdir, "checkpoints"))]
    assert max(saved) == 4


def test_train_writes_tensorboard_scalars_beside_the_metrics(trained):
    config, workdir, _ = trained
    values = summaries_test.read_values(workdir)
    steps = [step for step, _ in values["train/loss_bits"]]
    assert steps[: config.train.num_steps] == [1, 2, 3, 4]
    assert {
        "train/learning_rate",
        "train/samples_per_second",
        "dev/bits",
        "dev/coarse_bits",
        "dev/fine_bits",
    } <= summaries_test.scalar_tags(values)


def test_restart_continues_the_step_count(trained, tmp_path):
    config, workdir, _ = trained
    more = tiny.get_config()
    more.train.num_steps = 6
    result = train.train_and_evaluate(more, workdir)
    assert result["step"] == 6
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    steps = [x["step"] for x in lines if "loss_bits" in x]
    assert steps[-2:] == [5, 6]


def test_warm_start_continues_an_exported_model(trained, tmp_path):
    _, workdir, _ = trained
    model = str(tmp_path / "model")
    start = pretrained.export(workdir, model)["step"]
    config = tiny.get_config()
    config.train.init_from = model
    config.train.num_steps = start + 2
    config.train.warmup_steps = 4
    config.train.decay_steps = 100  # the same schedule when num_steps grows
    warm = str(tmp_path / "warm")
    params, step = train._warm_start(config, warm, fresh=True)
    assert step == start
    state = train.Trainer(config, step).warm_state(params, step)
    assert int(state.step) == start
    exported = subscale.load(model).params
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, exported)
    for path, mask in traverse_util.flatten_dict(state.masks).items():
        kernel = traverse_util.flatten_dict(state.params)[path]
        np.testing.assert_array_equal(mask != 0, kernel != 0)

    result = train.train_and_evaluate(config, warm)
    assert result["step"] == start + 2
    with open(os.path.join(warm, train.WARM_START_FILE)) as f:
        assert json.load(f)["step"] == start
    # Resuming keeps the warm-up from the recorded start, not from step 0.
    config.train.num_steps = start + 3
    config.train.init_from = ""
    train.train_and_evaluate(config, warm)
    lines = [json.loads(x) for x in open(os.path.join(warm, "metrics.jsonl"))]
    logged = {x["step"]: x["learning_rate"] for x in lines if "loss_bits" in x}
    assert sorted(logged) == [start + 1, start + 2, start + 3]
    _, schedule = train.make_optimizer(config, start)
    for s, rate in logged.items():
        assert rate == pytest.approx(float(schedule(s - 1)))
    base = train.make_optimizer(config)[1]
    assert logged[start + 1] == pytest.approx(float(base(start)) / 4)


def test_the_warm_started_optimizer_takes_its_first_step_at_the_ramped_rate():
    config = tiny.get_config()
    config.train.warmup_steps = 5
    config.train.num_steps = 100
    optimizer, schedule = train.make_optimizer(config, 40)
    params = {"w": jnp.zeros(3)}
    updates, _ = optimizer.update({"w": jnp.full(3, 1e-3)}, optimizer.init(params))
    expected = float(train.make_optimizer(config)[1](40)) / 5
    assert float(schedule(40)) == pytest.approx(expected)
    np.testing.assert_allclose(updates["w"], -expected, rtol=1e-4)


def test_the_cooldown_falls_linearly_from_the_schedule_to_the_end_value():
    config = tiny.get_config()
    config.train.warmup_steps = 5
    config.train.decay_steps = 1_000  # a long run's schedule ...
    config.train.num_steps = 100  # ... cooled down over its steps 80 to 100
    long_run = train.make_optimizer(config)[1]
    config.train.cooldown_steps = 20
    schedule = train.make_optimizer(config)[1]
    end = config.train.learning_rate * config.train.end_lr_factor
    for step in (0, 3, 40, 79, 80):
        assert float(schedule(step)) == pytest.approx(float(long_run(step)))
    start = float(long_run(80))
    assert start > 5 * end
    assert float(schedule(90)) == pytest.approx((start + end) / 2)
    assert float(schedule(95)) == pytest.approx(start + 0.75 * (end - start))
    assert float(schedule(100)) == pytest.approx(end)


def test_warm_start_from_a_missing_model_names_the_field(tmp_path):
    config = tiny.get_config()
    config.train.init_from = "no-such-model"
    with pytest.raises(errors.SubscaleError, match=r"^train.init_from: no-such-model"):
        train.train_and_evaluate(config, str(tmp_path / "w"))


def test_evaluate_prints_finite_bits(trained, capsys):
    config, workdir, _ = trained
    result = evaluation.evaluate(config, workdir)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.isfinite(printed["eval_bits"]) and printed == result
    assert os.path.exists(os.path.join(workdir, "eval.json"))


def test_vocode_writes_wav_of_the_right_length(trained, tmp_path):
    _, workdir, _ = trained
    clip = os.path.join(
        subscale.input_pipeline.DEMO_DIR,
        "train",
        "it_IT_m_Carlo",
        "queue-thankyou.flac",
    )
    code = commands.run("vocode", None, workdir, input_path=clip, output=str(tmp_path))
    assert code == 0
    out, rate = soundfile.read(tmp_path / "queue-thankyou.wav", dtype="int16")
    original, _ = soundfile.read(clip)
    assert rate == 16_000
    assert out.shape[0] == (original.shape[0] // 200) * 200
    assert (tmp_path / "queue-thankyou.png").exists()


def test_load_gives_the_trained_model(trained):
    config, workdir, _ = trained
    vocoder = subscale.load(workdir)
    assert vocoder.config.model.hidden_size == config.model.hidden_size
    mel = np.full((3, config.data.n_mels), -4.0, np.float32)
    wave = vocoder.generate(mel, seed=1)
    assert wave.shape == (600,) and wave.dtype == np.float32
    assert np.all(np.abs(wave) <= 1.0)


def _random_batch(trainer, rng):
    """Two crops of random samples with constant mel frames, training shapes."""
    example = trainer.example()
    return dict(
        samples=rng.integers(-3_000, 3_000, (2, 400), dtype=np.int16),
        mel=np.tile(example["mel"], (2, 1, 1)) - 4.0,
    )


def test_train_step_keeps_hand_masked_weights_at_zero():
    trainer = train.Trainer(tiny.get_config())
    state = trainer.init_state(0)
    r = np.asarray(models.matrix(state.params, "R"))
    mask = (np.random.default_rng(0).uniform(size=r.shape) < 0.5).astype(r.dtype)
    masks = models.matrix_tree({"R": jnp.asarray(mask)})
    state = state.replace(masks=masks, params=sparsity.apply_masks(state.params, masks))
    batch = _random_batch(trainer, np.random.default_rng(1))
    for _ in range(3):
        state, metrics = trainer.train_step(state, trainer.shard(batch))
    after = np.asarray(models.matrix(state.params, "R"))
    assert int(state.step) == 3 and bool(metrics["finite"])
    assert np.all(after[mask == 0] == 0)
    assert np.mean(after[mask == 1] != r[mask == 1]) > 0.9


def test_weight_decay_is_decoupled_and_spares_biases_and_the_optimizer_state():
    """`train.weight_decay` = w: a step takes the Adam step and also lr * w of
    each matrix as it was before the step; biases take the Adam step alone;
    the optimizer state is the one the run without decay keeps."""
    batch = _random_batch(train.Trainer(tiny.get_config()), np.random.default_rng(1))
    results = {}
    for decay in (0.0, 0.5):
        config = tiny.get_config()
        config.train.warmup_steps = 0
        config.train.weight_decay = decay
        trainer = train.Trainer(config)
        state = trainer.init_state(0)
        before = jax.device_get(state.params)
        state, _ = trainer.train_step(state, trainer.shard(batch))
        results[decay] = (jax.device_get(state.params), jax.device_get(state.opt_state))
        rate = float(trainer.schedule(0)) * decay
    assert rate > 0
    plain, decayed = results[0.0][0], results[0.5][0]
    flat_before = traverse_util.flatten_dict(before)
    flat_plain = traverse_util.flatten_dict(plain)
    for key, value in traverse_util.flatten_dict(decayed).items():
        old = flat_before[key]
        expected = flat_plain[key] - rate * old if old.ndim >= 2 else flat_plain[key]
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
    assert np.abs(flat_before[("cell", "R")]).max() * rate > 1e-6  # it did decay
    plain_opt, decayed_opt = results[0.0][1], results[0.5][1]
    structure = jax.tree_util.tree_structure
    assert structure(plain_opt) == structure(decayed_opt)
    jax.tree_util.tree_map(np.testing.assert_array_equal, plain_opt, decayed_opt)


def test_the_training_tail_changes_the_loss_alone():
    """`train.tail_mass` = 0 under `model.tail_mass` = eps trains exactly as a
    model without the tail (loss and parameters) while the trainer's model,
    the one evaluation scores, keeps the tail."""
    batch = _random_batch(train.Trainer(tiny.get_config()), np.random.default_rng(1))
    results = {}
    for model_tail, train_tail in ((0.0, None), (2.0**-8, 0.0)):
        config = tiny.get_config()
        config.model.tail_mass = model_tail
        config.train.tail_mass = train_tail
        trainer = train.Trainer(config)
        assert trainer.model.cfg.tail_mass == model_tail
        state, metrics = trainer.train_step(trainer.init_state(0), trainer.shard(batch))
        results[model_tail] = (
            float(metrics["loss_bits"]),
            jax.device_get(state.params),
        )
    # Without the override the tail changes this loss (16.01254 against
    # 16.01266 bits) and every parameter after the step.
    assert results[2.0**-8][0] == results[0.0][0]
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, results[2.0**-8][1], results[0.0][1]
    )


def test_the_training_tail_must_be_a_probability():
    config = tiny.get_config()
    config.train.tail_mass = 1.0
    with pytest.raises(errors.SubscaleError, match="train.tail_mass"):
        train.Trainer(config)


def test_weight_decay_must_be_non_negative():
    config = tiny.get_config()
    config.train.weight_decay = -0.1
    with pytest.raises(errors.SubscaleError, match="train.weight_decay"):
        train.Trainer(config)


def test_the_moving_average_follows_the_parameters():
    """`train.ema_decay`: after each step the average moves (1 - d) of the way
    to the new parameters, d ramping up to the decay; pruned weights stay
    zeros in it; evaluation takes it."""
    config = tiny.get_config()
    config.train.ema_decay = 0.6
    trainer = train.Trainer(config)
    state = trainer.init_state(0)
    r = np.asarray(models.matrix(state.params, "R"))
    mask = (np.random.default_rng(0).uniform(size=r.shape) < 0.5).astype(r.dtype)
    masks = models.matrix_tree({"R": jnp.asarray(mask)})
    params = sparsity.apply_masks(state.params, masks)
    ema = jax.tree_util.tree_map(jnp.copy, params)
    state = state.replace(masks=masks, params=params, ema=ema)
    expected = jax.device_get(params)
    batch = _random_batch(trainer, np.random.default_rng(1))
    for step in range(1, 4):
        state, _ = trainer.train_step(state, trainer.shard(batch))
        d = min(0.6, (1 + step) / (10 + step))
        new = jax.device_get(state.params)
        expected = jax.tree_util.tree_map(
            lambda e, p, d=d: d * e + (1 - d) * p, expected, new
        )
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
        jax.device_get(state.ema),
        expected,
    )
    average = np.asarray(models.matrix(state.ema, "R"))
    assert np.all(average[mask == 0] == 0)
    assert not np.allclose(average, models.matrix(state.params, "R"))
    assert train.inference_params(state) is state.ema
    assert train.inference_params(state.replace(ema={})) is state.params


def test_nonfinite_loss_stops_and_keeps_the_checkpoint(tmp_path):
    config = tiny.get_config()
    config.train.num_steps = 2
    workdir = str(tmp_path)
    train.train_and_evaluate(config, workdir)
    poisoned = tiny.get_config()
    poisoned.train.num_steps = 4
    poisoned.train.learning_rate = 1e30
    poisoned.train.clip_norm = 1e30
    with pytest.raises(errors.SubscaleError, match="non-finite .* at step"):
        train.train_and_evaluate(poisoned, workdir)
    saved = [int(x) for x in os.listdir(os.path.join(workdir, "checkpoints"))]
    assert max(saved) == 2
    r = models.matrix(subscale.load(workdir).params, "R")
    assert np.all(np.isfinite(np.asarray(r)))


def test_nonfinite_skip_counts_and_keeps_params(tmp_path):
    config = tiny.get_config()
    config.train.num_steps = 3
    config.train.learning_rate = 1e30
    config.train.clip_norm = 1e30
    config.train.nonfinite = "skip"
    result = train.train_and_evaluate(config, str(tmp_path))
    assert result["skipped"] >= 1
    params = subscale.load(str(tmp_path)).params
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(params))


def test_subscale_config_through_every_mode(tmp_path):
    config = tiny.get_config()
    config.model.subscale_factor = 4
    config.model.future_horizon = 1
    config.model.lookback = 2
    config.train.num_steps = 2
    workdir = str(tmp_path / "w")
    train.train_and_evaluate(config, workdir)
    assert np.isfinite(evaluation.evaluate(config, workdir)["eval_bits"])
    clip = os.path.join(
        subscale.input_pipeline.DEMO_DIR,
        "train",
        "it_IT_m_Carlo",
        "queue-thankyou.flac",
    )
    assert (
        commands.run(
            "vocode",
            None,
            workdir,
            input_path=clip,
            output=str(tmp_path / "out"),
            stream=True,
        )
        == 0
    )
    vocoder = subscale.load(workdir)
    mel = vocoder.features(soundfile.read(clip, dtype="float32")[0], 16_000)[:7]
    samples = np.zeros(7 * 200, np.int16)
    log_p = vocoder.log_prob(samples, mel)
    assert log_p.shape == (1400,) and np.all(np.isfinite(log_p))
    waves = vocoder.generate([mel, mel[:3]], seed=2)
    assert [w.shape for w in waves] == [(1400,), (600,)]
    streamed = np.concatenate(
        list(vocoder.generate_stream(mel, chunk_frames=2, seed=4))
    )
    np.testing.assert_array_equal(streamed, vocoder.generate(mel, seed=4))


@pytest.mark.parametrize(
    "dtype,factor",
    [("bfloat16", 1), pytest.param("float16", 4, marks=pytest.mark.slow)],
)
def test_low_precision_compute_trains_and_samples(dtype, factor):
    # model.dtype is a documented config value: every mode must run with it.
    config = tiny.get_config()
    config.model.dtype = dtype
    if factor > 1:
        config.model.subscale_factor = factor
        config.model.future_horizon = 2
        config.model.lookback = 2
    trainer = train.Trainer(config)
    state = trainer.init_state(0)
    rng = np.random.default_rng(1)
    batch = _random_batch(trainer, rng)
    state, metrics = trainer.train_step(state, trainer.shard(batch))
    assert int(state.step) == 1 and bool(metrics["finite"])
    vocoder = subscale.create(config, seed=0)
    mel = vocoder.features(rng.normal(0, 0.1, 2_000).astype(np.float32), 16_000)
    audio = vocoder.generate(mel, seed=0)
    assert audio.shape == (2_000,) and audio.dtype == np.float32
    assert np.isfinite(vocoder.log_prob((audio * 32_767).astype(np.int16), mel)).all()
