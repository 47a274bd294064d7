"""Evaluation: the NLL breakdown, free-running quality, loading for inference."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import subscale
from configs import tiny
from experiments import calibration
from experiments import compare
from subscale import checkpointing
from subscale import evaluation
from subscale import input_pipeline
from subscale import metrics
from subscale import models
from subscale import pretrained
from subscale import train

OLD_WORKDIR = os.path.join(os.path.dirname(__file__), "testdata", "old_workdir")


def test_loudness_metrics():
    rng = np.random.default_rng(0)
    hop = 100
    envelope = np.repeat(np.geomspace(0.001, 0.5, 40), hop)
    ref = envelope * rng.standard_normal(envelope.size)
    assert metrics.loudness_correlation(ref, ref, hop) == pytest.approx(1.0)
    assert metrics.quiet_excess_db(ref, ref, hop) == pytest.approx(0.0)
    flat = 0.1 * rng.standard_normal(envelope.size)
    assert metrics.loudness_correlation(ref, flat, hop) < 0.5
    # Noise at -20 dB fills the quiet frames, which sit near -55 dB.
    assert metrics.quiet_excess_db(ref, flat, hop) > 20.0
    levels = metrics.frame_levels(np.zeros(300), hop)
    np.testing.assert_array_equal(levels, metrics.LEVEL_FLOOR_DB)


def test_nll_parts_add_up():
    config = tiny.get_config()
    config.model.subscale_factor = 4
    config.model.future_horizon = 2
    config.model.lookback = 3
    model_cfg = models.ModelConfig.from_config(config)
    model = models.SubscaleWaveRNN(model_cfg)
    params = models.init_params(model_cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    crops = dict(
        samples=rng.integers(-3000, 3000, (3, 400)).astype(np.int16),
        mel=rng.normal(size=(3, 2 + 2 * models.MEL_PAD, 80)).astype(np.float32) - 4,
    )
    nll = evaluation.NllEvaluator(model, (0, 0), 2)
    result = nll(params, crops)
    assert result["samples"] == 1200
    assert result["bits"] == pytest.approx(result["coarse_bits"] + result["fine_bits"])
    # 100 columns: 5 at each end are edge columns, rows: 1 of 4 is row 0.
    assert result["bits"] == pytest.approx(
        0.1 * result["edge_bits"] + 0.9 * result["middle_bits"]
    )
    assert result["bits"] == pytest.approx(
        0.25 * result["row0_bits"] + 0.75 * result["rows_bits"]
    )
    other = nll(params, crops, other_mel=True)
    assert other["bits"] != pytest.approx(result["bits"])


def test_clips_are_fixed_and_spread():
    utterances = [
        input_pipeline.Utterance(
            f"/x/u{k}.flac", "dev", np.zeros(800, np.int16), np.zeros((8, 2))
        )
        for k in range(7)
    ]
    picked = evaluation.clips(utterances, 3, 0.05, 100, 8000)
    assert [name for name, _, _ in picked] == ["u0", "u3", "u6"]
    assert all(s.shape == (400,) and m.shape == (4, 2) for _, s, m in picked)
    assert evaluation.clips(utterances, 0, 1.0, 100, 8000) == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("evaluation") / "run")
    config = tiny.get_config()
    config.train.eval_clips = 2
    config.train.eval_clip_seconds = 0.5
    config.data.crop_context = True
    config.data.pre_emphasis = 0.85
    config.model.lp_order = 4
    config.train.carry_state = True
    train.train_and_evaluate(config, workdir)
    return config, workdir


def test_training_logs_free_running_metrics(trained):
    _, workdir = trained
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    dev = [r for r in records if "dev_bits" in r]
    assert dev and {"dev_coarse_bits", "dev_fine_bits", "dev_log_mel_db"} <= set(
        dev[-1]
    )
    assert "dev_loudness_corr" in dev[-1] and "dev_quiet_excess_db" in dev[-1]


def test_evaluate_reports_nll_parts_and_free_running_quality(trained, capsys):
    config, workdir = trained
    result = evaluation.evaluate(config, workdir)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == result
    for key in ("eval_bits", "coarse_bits", "fine_bits", "edge_bits", "middle_bits"):
        assert np.isfinite(result[key])
    assert "row0_bits" in result and "mel_gain_bits" in result
    assert result["clips"] == 2
    assert np.isfinite(result["log_mel_db"]) and -1 <= result["loudness_corr"] <= 1
    with open(os.path.join(workdir, "eval.json")) as f:
        assert json.loads(f.read()) == result


def test_compare_scores_a_model_on_another_runs_held_out_data(trained, tmp_path):
    """`compare.score` of an exported model whose config names a corpus that is
    not here, on its workdir's yardstick: the workdir's own figures."""
    config, workdir = trained
    model = str(tmp_path / "model")
    pretrained.export(workdir, model)
    path = os.path.join(model, "config.json")
    moved = json.load(open(path))
    moved["data"]["train_dir"] = str(tmp_path / "elsewhere")
    with open(path, "w") as f:
        json.dump(moved, f)
    kwargs = dict(clips=0, crops=2)  # the clips come from the same utterances
    own = compare.score(workdir, **kwargs)
    assert own["samples"] == 2 * (config.data.eval_seq_len or config.data.seq_len)
    assert compare.score(model, yardstick=workdir, **kwargs) == own
    with pytest.raises(subscale.SubscaleError, match="elsewhere"):
        compare.score(model, **kwargs)


def test_compare_scores_the_nll_under_another_tail(trained):
    """--tail_mass rescores the same predictions as the mixture with a uniform
    tail: no sample costs over 16 + log2(1 / tail) bits, and the bound (or its
    absence) moves the NLL; a tail outside [0, 1) is refused by its flag."""
    _, workdir = trained
    kwargs = dict(clips=0, crops=2)
    own = compare.score(workdir, **kwargs)
    wide = compare.score(workdir, tail_mass=0.25, **kwargs)
    assert wide["worst_bits"] <= 18.0 + 1e-4
    assert wide["eval_bits"] != own["eval_bits"]
    untailed = compare.score(workdir, tail_mass=0.0, **kwargs)
    assert untailed["worst_bits"] >= own["worst_bits"] - 1e-4
    with pytest.raises(subscale.SubscaleError, match="--tail_mass"):
        compare.score(workdir, tail_mass=1.5, **kwargs)


def test_calibration_nll_is_the_untailed_nll_of_compare(trained):
    """`experiments.calibration` reads the same teacher-forced predictions as
    the NLL: its coarse and fine NLL, pooled over the rows, are compare's
    without a tail; entropies lie between 0 and 8 bits."""
    _, workdir = trained
    config, params, _ = compare.restore_on(workdir)
    with compare.feature_home(workdir) as home:
        result = calibration.calibration(config, params, home, crops=2)
    untailed = compare.score(workdir, clips=0, crops=2, tail_mass=0.0)
    b = config.model.subscale_factor
    for softmax in ("coarse", "fine"):
        parts = result[softmax]
        rows = parts["rows"]["nll"] if b > 1 else 0.0
        pooled = (parts["row0"]["nll"] + (b - 1) * rows) / b
        assert pooled == pytest.approx(untailed[f"{softmax}_bits"], rel=1e-4)
        for stats in parts.values():
            assert 0 <= stats["entropy"] <= 8 and 0 <= stats["entropy_t"] <= 8
            assert 0 < stats["top"] <= 1
    table = calibration.table(["run"], [result], 0.6).splitlines()
    assert len(table) == 2 + 2 * len(result["coarse"])
    assert "NLL - entropy" in table[0]


def test_compare_by_voice_splits_the_same_clips_among_their_voices(trained):
    _, workdir = trained
    kwargs = dict(clips=3, clip_seconds=0.5, crops=1)
    plain = compare.score(workdir, **kwargs)
    split = compare.score(workdir, by_voice=True, **kwargs)
    voices = split.pop("by_voice")
    assert split == plain  # the same clips, drawn once
    assert sum(v["clips"] for v in voices.values()) == plain["clips"] == 3
    for scores in voices.values():
        assert np.isfinite(scores["log_mel_db"])
    if len(voices) == 1:
        (only,) = voices.values()
        assert only["log_mel_db"] == pytest.approx(plain["log_mel_db"])
    rows = compare.voice_table(["run"], [dict(plain, by_voice=voices)]).splitlines()
    assert len(rows) == 2 + len(voices) and rows[2].startswith("| run, ")
    # Another seed draws other audio from the same model: same NLL, other scores.
    other = compare.score(workdir, by_voice=True, seed=1, **kwargs)
    assert other["eval_bits"] == plain["eval_bits"]
    assert other["log_mel_db"] != plain["log_mel_db"]
    assert other["by_voice"] != voices


def test_restore_params_reads_no_optimizer_state(trained):
    config, workdir = trained
    _, params, masks, step = checkpointing.restore_params(workdir)
    assert step == config.train.num_steps and masks == {}
    trainer = train.Trainer(config)
    mngr = checkpointing.manager(workdir, config, read_only=True)
    try:
        state, _ = checkpointing.restore(mngr, trainer.abstract_state())
    finally:
        mngr.close()
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, state.params)


def test_a_workdir_written_before_the_recipe_fields_still_loads(tmp_path):
    """tests/testdata/old_workdir was trained by the code before the recipe
    fields and the parameter-only restore (tiny config, 50 % sparse R)."""
    workdir = str(tmp_path / "old")
    shutil.copytree(OLD_WORKDIR, workdir)
    expected = np.load(os.path.join(workdir, "expected.npz"))
    vocoder = subscale.load(workdir)
    assert vocoder.config.data.pre_emphasis == 0.0
    assert vocoder.config.model.neighbour_rows == 0
    np.testing.assert_allclose(
        vocoder.log_prob(expected["samples"], expected["mel"]),
        expected["log_prob"],
        rtol=1e-5,
        atol=1e-5,
    )
    _, _, masks, step = checkpointing.restore_params(workdir)
    kernel = models.matrix(masks, "R")
    assert step == 4 and 0.4 < 1 - float(np.mean(kernel)) < 0.6


def test_a_workdir_written_before_the_recipe_fields_resumes_training(tmp_path):
    """Its train state still holds `rng`, which TrainState has since lost, and
    lacks `ema`, which a run that now keeps a moving average starts."""
    workdir = str(tmp_path / "old")
    shutil.copytree(OLD_WORKDIR, workdir)
    saved = checkpointing.load_config(workdir)
    config = tiny.get_config()
    config.sparsity.update(saved.sparsity.to_dict())
    config.sparsity.block_shape = tuple(saved.sparsity.block_shape)
    config.sparsity.prune = tuple(saved.sparsity.prune)
    config.train.num_steps = 6
    config.train.ema_decay = 0.9
    train.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if "loss_bits" in r] == [5, 6]
    _, params, _, step = checkpointing.restore_params(workdir)
    assert step == 6
    assert 0.4 < float(np.mean(models.matrix(params, "R") == 0)) < 0.6
    config.train.ema_decay = 0.0
    _, plain, _, _ = checkpointing.restore_params(workdir, config)
    assert not np.allclose(models.matrix(params, "R"), models.matrix(plain, "R"))
