"""The exported-model format and the models shipped in the package."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import subscale
from experiments import benchmark_sampling
from experiments import export_pretrained
from subscale import audio
from subscale import baselines
from subscale import commands
from subscale import distribution
from subscale import errors
from subscale import input_pipeline
from subscale import models
from subscale import pretrained
from subscale import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_WORKDIR = os.path.join(ROOT, "tests", "testdata", "old_workdir")
# A dev-split file of the shared corpus (the embedded demo corpus is part of
# it, and its dev files are dev files there): never seen by speech16k.
DEV_CLIP = os.path.join(
    input_pipeline.DEMO_DIR, "train", "en_US_f_Allison", "vm-tomakecall.flac"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """tests/testdata/old_workdir (tiny, 50 % sparse) exported as a model."""
    root = tmp_path_factory.mktemp("exported")
    workdir = str(root / "workdir")
    shutil.copytree(OLD_WORKDIR, workdir)
    dest = str(root / "model")
    info = pretrained.export(workdir, dest, info=dict(name="tiny"))
    return workdir, dest, info


def test_an_exported_model_computes_what_its_workdir_does(exported):
    workdir, dest, info = exported
    assert info == dict(name="tiny", step=4)
    assert sorted(os.listdir(dest)) == ["config.json", "info.json", "params.npz"]
    expected = np.load(os.path.join(workdir, "expected.npz"))
    from_workdir = subscale.load(workdir)
    from_export = subscale.load(dest)
    assert from_export.config.model == from_workdir.config.model
    assert from_export.config.data.to_dict() == {
        **from_workdir.config.data.to_dict(),
        "cache_dir": "",
    }
    log_p = from_export.log_prob(expected["samples"], expected["mel"])
    np.testing.assert_array_equal(
        log_p, from_workdir.log_prob(expected["samples"], expected["mel"])
    )
    np.testing.assert_allclose(log_p, expected["log_prob"], rtol=1e-5, atol=1e-5)
    # Pruned weights travel as exact zeros: no masks needed.
    kernel = np.asarray(models.matrix(from_export.params, "R"))
    assert 0.4 < np.mean(kernel == 0) < 0.6


def test_an_exported_config_starts_from_scratch(tmp_path):
    """A workdir continued from a resume bundle exports a config that trains
    the same model from scratch: no path to the bundle."""
    workdir = str(tmp_path / "workdir")
    shutil.copytree(OLD_WORKDIR, workdir)
    path = os.path.join(workdir, "config.json")
    config = json.load(open(path))
    config["train"]["resume_from"] = "experiments/results/x/resume"
    with open(path, "w") as f:
        json.dump(config, f)
    pretrained.export(workdir, str(tmp_path / "model"))
    shipped = json.load(open(tmp_path / "model" / "config.json"))
    assert shipped["train"]["resume_from"] == ""
    for field, value in config["model"].items():
        assert shipped["model"][field] == value, field


def test_an_export_that_does_not_fit_its_config_names_the_file(exported, tmp_path):
    _, dest, _ = exported
    broken = str(tmp_path / "broken")
    shutil.copytree(dest, broken)
    params_path = os.path.join(broken, pretrained.PARAMS_FILE)
    with np.load(params_path) as stored:
        arrays = dict(stored)
    first = sorted(arrays)[0]
    arrays[first] = np.zeros((3, 3), np.float32)
    np.savez(params_path, **arrays)
    with pytest.raises(subscale.SubscaleError, match=f"params.npz: {first} has shape"):
        subscale.load(broken)
    del arrays[first]
    np.savez(params_path, **arrays)
    with pytest.raises(subscale.SubscaleError, match="does not fit config.json"):
        subscale.load(broken)


def test_an_unknown_name_lists_the_packaged_models():
    with pytest.raises(subscale.SubscaleError) as raised:
        subscale.load("speech99k")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("speech99k: neither a workdir nor a pretrained model")
    for name in subscale.pretrained_models():
        assert name in message


def test_the_cli_reports_an_unknown_model_in_one_line(capsys, tmp_path):
    code = commands.run(
        "vocode",
        None,
        None,
        model="speech99k",
        input_path=DEV_CLIP,
        output=str(tmp_path),
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "speech99k" in err and "(pretrained models: " in err
    assert commands.run("train", None, str(tmp_path), model="x") == 1
    assert "--model: --mode=train" in capsys.readouterr().err


def test_evaluate_a_model_whose_corpus_is_missing(exported, tmp_path, capsys):
    _, dest, _ = exported
    moved = str(tmp_path / "model")
    shutil.copytree(dest, moved)
    config_path = os.path.join(moved, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["data"]["train_dir"] = str(tmp_path / "gone" / "manifest.csv")
    with open(config_path, "w") as f:
        json.dump(config, f)
    assert commands.run("evaluate", None, None, model=moved) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gone/manifest.csv" in err and "--input" in err


def test_evaluate_a_model_on_a_folder_without_a_workdir(exported, tmp_path, capsys):
    _, dest, _ = exported
    folder = tmp_path / "held_out"
    folder.mkdir()
    shutil.copy(DEV_CLIP, folder / "clip.flac")
    assert commands.run("evaluate", None, None, model=dest, input_path=str(folder)) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 4 and np.isfinite(result["eval_bits"])
    assert result["data"] == str(folder)
    assert not os.path.exists(os.path.join(dest, "eval.json"))


# The shipped model.


def test_speech16k_is_packaged_and_small():
    assert "speech16k" in subscale.pretrained_models()
    folder = pretrained.path_of("speech16k")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert size <= 25 * 2**20
    with open(os.path.join(folder, pretrained.INFO_FILE)) as f:
        info = json.load(f)
    assert info["name"] == "speech16k" and info["step"] > 0


@pytest.fixture(scope="module")
def speech16k():
    return subscale.load("speech16k")


@pytest.fixture(scope="module")
def dev_clip(speech16k):
    rate = speech16k.config.data.sample_rate
    wave = audio.load(DEV_CLIP, rate)
    return wave, speech16k.features(wave, rate, name=DEV_CLIP)


def test_speech16k_vocodes_deterministically(speech16k, dev_clip):
    _, mel = dev_clip
    mel = mel[:24]  # 0.3 s
    first = speech16k.generate(mel, seed=3)
    assert first.shape == (24 * speech16k.hop_length,)
    assert np.all(np.isfinite(first)) and np.max(np.abs(first)) > 0
    np.testing.assert_array_equal(first, speech16k.generate(mel, seed=3))
    assert not np.array_equal(first, speech16k.generate(mel, seed=4))


def test_speech16k_predicts_a_dev_clip_better_than_lpc(speech16k, dev_clip):
    """NLL on a held-out clip below the forward-adaptive LPC coder's."""
    wave, mel = dev_clip
    samples = audio.to_int16(wave)[: mel.shape[0] * speech16k.hop_length]
    bits = -np.mean(speech16k.log_prob(samples, mel)) / np.log(2)
    lpc = min(
        float(np.mean(baselines.lpc_bits(samples, order=order))) for order in (16, 32)
    )
    assert bits < lpc


def test_the_readme_command_vocodes_with_the_packaged_model(tmp_path):
    """The CLI, in a fresh process, as the README's first command runs it."""
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "subscale.main",
            "--model=speech16k",
            "--mode=vocode",
            f"--input={DEV_CLIP}",
            f"--output={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["vm-tomakecall.png", "vm-tomakecall.wav"]


def test_a_warm_started_curve_continues_the_exported_one(tmp_path):
    before = dict(
        cpu_hours=1.0, wall_hours=0.5, runs_with_cpu_counter=1, first=100.0, last=200.0
    )
    record = dict(init_from="m", path="m", step=10, info=dict(step=10, training=before))
    (tmp_path / train.WARM_START_FILE).write_text(json.dumps(record))
    curve_path = tmp_path / "learning_curve.jsonl"
    curve_path.write_text(
        "".join(
            json.dumps(dict(step=s, dev_bits=9.0, cpu_hours=s / 10)) + "\n"
            for s in (5, 10, 15)
        )  # 15: a later export of the same model
    )
    points, spent_before, warm = export_pretrained.earlier_pieces(
        str(tmp_path), str(curve_path)
    )
    assert [p["step"] for p in points] == [5, 10]
    assert warm == dict(step=10, init_from="m")
    records = [
        dict(
            step=15, loss_bits=9.0, steps_per_second=1.0, cpu_seconds=720.0, time=300.0
        ),
        dict(
            step=20, loss_bits=9.0, steps_per_second=1.0, cpu_seconds=1440.0, time=305.0
        ),
        dict(step=20, dev_bits=8.5),
    ]
    spent = export_pretrained.add_costs(
        spent_before, export_pretrained.cost(records, start_step=10)
    )
    assert spent["cpu_hours"] == pytest.approx(1.4)
    assert spent["wall_hours"] == pytest.approx(0.5 + 10 / 3600)
    assert spent["runs_with_cpu_counter"] == 2
    assert (spent["first"], spent["last"]) == (100.0, 305.0)
    new = export_pretrained.curve(records, spent_before["cpu_hours"], start_step=10)
    assert [(p["step"], p["cpu_hours"]) for p in new] == [(20, pytest.approx(1.4))]
    # A workdir trained from scratch has no earlier pieces.
    assert export_pretrained.earlier_pieces(str(tmp_path / "x"), str(curve_path)) == (
        [],
        None,
        None,
    )


def test_the_trend_solves_each_target_on_its_line():
    """Metrics on exact lines in log2(samples): each budget is where its line
    crosses the target; a met target and one moving away say so."""
    per_step = 1_000
    points = [
        dict(
            step=step,
            dev_bits=9.0 - 0.1 * np.log2(step / 1_000),  # -0.1 bits per doubling
            dev_worst_bits=24.000002,  # the float32 cap
            dev_log_mel_db=8.0 + 0.01 * np.log2(step),  # getting worse
            dev_stoi=0.70 + 0.05 * np.log2(step / 1_000),
        )
        for step in (1_000, 2_000, 4_000, 8_000)
    ]
    rows = export_pretrained.trend(points, per_step, dict(lpc=9.0, griffin_lim=None))
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {"dev_bits", "dev_worst_bits", "dev_log_mel_db", "dev_stoi"}
    # 8.5 bits (LPC - 0.5) is 5 doublings past 1,000 steps of 1,000 samples.
    assert by_key["dev_bits"]["per_doubling"] == pytest.approx(-0.1)
    assert by_key["dev_bits"]["samples"] == pytest.approx(2**5 * 1e6)
    assert by_key["dev_worst_bits"]["samples"] == 0
    assert by_key["dev_log_mel_db"]["samples"] is None
    # STOI 0.95 is 5 doublings past 1,000 steps.
    assert by_key["dev_stoi"]["samples"] == pytest.approx(2**5 * 1e6)
    text = export_pretrained.trend_markdown(rows, 8e6)
    assert "not approached" in text and "| met |" in text
    assert "3.2e+07 samples (4x so far)" in text


def test_the_sampling_benchmark_times_a_packaged_models_generate(exported):
    _, dest, _ = exported
    case = benchmark_sampling.make_model_case(dest, frames=3)
    benchmark_sampling.run_rounds([case], repeats=2)
    row = dict(**benchmark_sampling.describe(case), **benchmark_sampling.figures(case))
    assert row["model"] == dest and len(case["times"]) == 2
    assert row["samples_per_second"] > 0 and row["compile_s"] > 0
    assert 0 < case["sparsity"] < 0.5  # its pruned R among dense matrices
    # What it times is the API's generate, with the model's own sampling.
    mel = case["args"][0]
    np.testing.assert_array_equal(case["fn"](mel), subscale.load(dest).generate(mel))


def test_the_headline_leaves_out_every_clip_a_choice_looked_at():
    utterances = [f"prompt{i}" for i in range(10)]
    # 2 clips over all ten take 0 and 9; 3 over the first five take 0, 2, 4.
    held = export_pretrained.unchosen(utterances, ["2", "3/5"])
    assert held == ["prompt1", "prompt3", "prompt5", "prompt6", "prompt7", "prompt8"]
    assert export_pretrained.unchosen(utterances, []) == utterances
    for bad in ("3/x", "0", "-2/5"):
        with pytest.raises(errors.SubscaleError, match=f"--choice_clips: '{bad}'"):
            export_pretrained.unchosen(utterances, [bad])


SHARED = os.path.join(ROOT, "..", "shared", "data", "train")
# Dev-split clips of two voices (the Russian one was new to the first edition).
BOUND_CLIPS = (
    os.path.join("en_US_f_Allison", "queue-thankyou.flac"),
    os.path.join("ru_RU_m_festvox_nsh", "ru_0040.flac"),
)


@pytest.fixture(scope="module")
def bound_bits():
    """speech16k's bits per sample on two dev clips (1.3 s each) with their
    own mels, and of the first with the second's."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/data is not beside the repository")
    vocoder = subscale.load("speech16k")
    clips, mels = [], []
    for name in BOUND_CLIPS:
        x = audio.load(os.path.join(SHARED, name), vocoder.config.data.sample_rate)
        mel = vocoder.features(x, vocoder.config.data.sample_rate)[:104]
        clips.append(audio.to_int16(x[: mel.shape[0] * vocoder.hop_length]))
        mels.append(mel)
    def bits(x, mel):
        return -np.asarray(vocoder.log_prob(x, mel)) / np.log(2.0)

    own = [bits(x, mel) for x, mel in zip(clips, mels)]
    other = bits(clips[0], mels[1][: mels[0].shape[0]])
    return vocoder, own, other


def test_no_sample_of_real_speech_costs_more_than_the_bound(bound_bits):
    vocoder, own, other = bound_bits
    bound = distribution.bound_bits(vocoder.model_config.tail_mass)
    assert bound == pytest.approx(24.0)
    for bits in own + [other]:
        assert bits.max() <= bound + 1e-4
    for bits in own:
        assert np.mean(bits) < 16.0


@pytest.mark.xfail(
    strict=True,
    reason="speech16k is trained with the Gaussian prior, which is overconfident "
    "where the mel misleads it: both editions spend over 16 bits a sample on "
    "this clip with the Russian voice's mel (the first 17.6, the second 17.5 at "
    "step 38,020 and 17.6 at step 52,881), under the 24-bit bound",
)
def test_another_clips_mel_costs_under_16_bits_a_sample(bound_bits):
    _, _, other = bound_bits
    assert np.mean(other) < 16.0
