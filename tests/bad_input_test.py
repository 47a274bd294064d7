"""Bad inputs: each gives one line naming the file or field, and changes nothing.

Most cases call `commands.run`, the function the CLI calls; a few run the CLI in
a subprocess to check the exit code and that no traceback is printed.
"""

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import subscale
from configs import tiny
from subscale import audio
from subscale import commands
from subscale import errors
from subscale import input_pipeline
from subscale import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(
    input_pipeline.DEMO_DIR, "train", "it_IT_m_Carlo", "queue-thankyou.flac"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("trained"))
    config = tiny.get_config()
    config.train.num_steps = 2
    train.train_and_evaluate(config, workdir)
    return config, workdir


def _snapshot(workdir):
    out = {}
    for folder, _, files in os.walk(workdir):
        for f in files:
            path = os.path.join(folder, f)
            out[path] = open(path, "rb").read()
    return out


def _fails(capsys, mode, config, workdir, *names, **kwargs):
    code = commands.run(mode, config, workdir, **kwargs)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for name in names:
        assert name in err, (name, err)
    return err


def _as_train(folder):
    """A manifest that puts every file of `folder` in the train split."""
    rows = ["file,split"] + [f"{name},train" for name in sorted(os.listdir(folder))]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


def _config(**data):
    config = tiny.get_config()
    for key, value in data.items():
        group, field = key.split("__")
        config[group][field] = value
    return config


def test_missing_folder(capsys, tmp_path):
    missing = str(tmp_path / "nope")
    _fails(
        capsys, "train", _config(data__train_dir=missing), str(tmp_path / "w"), missing
    )


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(
        capsys,
        "train",
        _config(data__train_dir=str(tmp_path / "empty")),
        str(tmp_path / "w"),
        "empty",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder(capsys, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    shutil.copy(CLIP, folder)
    folder.chmod(0)
    _fails(
        capsys,
        "train",
        _config(data__train_dir=str(folder)),
        str(tmp_path / "w"),
        "locked",
    )


def test_non_audio_file(capsys, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "notes.wav").write_text("this is not audio")
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "notes.wav",
    )


def test_truncated_flac(capsys, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    data = open(CLIP, "rb").read()
    (folder / "cut.flac").write_bytes(data[:200])
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "cut.flac",
    )


def test_corrupt_flac(capsys, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "noise.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "noise.flac",
    )


def test_zero_length_clip(capsys, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    soundfile.write(folder / "empty.wav", np.zeros(0, np.float32), 16_000)
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "empty.wav",
    )


def test_too_short_clips(capsys, tmp_path):
    folder = tmp_path / "data.seq_len"
    folder.mkdir()
    soundfile.write(folder / "short.wav", np.zeros(300, np.float32), 16_000)
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "data.seq_len",
    )


def test_nan_and_inf_in_api_arrays(trained):
    vocoder = subscale.load(trained[1])
    bad = np.zeros(1600, np.float32)
    bad[5] = np.nan
    with pytest.raises(errors.SubscaleError, match="audio"):
        vocoder.features(bad, 16_000)
    mel = np.zeros((4, 80), np.float32)
    mel[1, 2] = np.inf
    with pytest.raises(errors.SubscaleError, match="mel"):
        vocoder.generate(mel)


def test_wrong_mel_shape_and_n_mels(trained):
    vocoder = subscale.load(trained[1])
    with pytest.raises(errors.SubscaleError, match="n_mels=80"):
        vocoder.generate(np.zeros((4, 64), np.float32))
    with pytest.raises(errors.SubscaleError, match="mel"):
        vocoder.generate(np.zeros((4,), np.float32))
    with pytest.raises(errors.SubscaleError, match="frames"):
        vocoder.log_prob(np.zeros(500, np.int16), np.zeros((4, 80), np.float32))


def test_sample_rate_mismatch_is_resampled_and_stereo_is_mixed(trained, tmp_path):
    vocoder = subscale.load(trained[1])
    stereo = np.random.default_rng(0).uniform(-0.1, 0.1, (22_050, 2))
    mel = vocoder.features(stereo.astype(np.float32), 22_050)
    assert mel.shape == (16_000 // 200, 80)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 22_050)
    assert audio.load(str(path), 16_000).shape == (16_000,)
    with pytest.raises(errors.SubscaleError, match="sample_rate"):
        vocoder.features(stereo.astype(np.float32), 0)


@pytest.mark.parametrize(
    "field,value",
    [
        ("model.subscale_factor", 0),
        ("model.future_horizon", -1),
        ("model.lookback", -2),
        ("train.num_steps", -5),
        ("sparsity.target", 1.0),
        ("data.seq_len", 333),
        ("train.nonfinite", "ignore"),
    ],
)
def test_invalid_values(capsys, tmp_path, field, value):
    config = tiny.get_config()
    group, name = field.split(".")
    config[group][name] = value
    _fails(capsys, "train", config, str(tmp_path), field)
    assert not os.listdir(tmp_path)


def test_unknown_mode(capsys, tmp_path):
    _fails(capsys, "dance", tiny.get_config(), str(tmp_path), "--mode")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_unwritable_workdir(capsys, tmp_path):
    tmp_path.chmod(0o500)
    _fails(capsys, "train", tiny.get_config(), str(tmp_path / "w"), "w")


def test_workdir_is_a_file(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    _fails(capsys, "train", tiny.get_config(), str(target), str(target))


def test_checkpoint_from_incompatible_config(capsys, trained):
    config, workdir = trained
    before = _snapshot(workdir)
    other = tiny.get_config()
    other.model.hidden_size = 32
    _fails(capsys, "train", other, workdir, "model.hidden_size")
    _fails(capsys, "evaluate", other, workdir, "model.hidden_size")
    assert _snapshot(workdir) == before


def test_no_checkpoint_for_evaluate_and_vocode(capsys, tmp_path):
    _fails(capsys, "evaluate", tiny.get_config(), str(tmp_path), str(tmp_path))
    _fails(
        capsys,
        "vocode",
        None,
        str(tmp_path),
        str(tmp_path),
        input_path=CLIP,
        output=str(tmp_path / "out"),
    )


def test_missing_vocode_input(capsys, trained, tmp_path):
    _fails(
        capsys,
        "vocode",
        None,
        trained[1],
        "nothing.flac",
        input_path=str(tmp_path / "nothing.flac"),
        output=str(tmp_path),
    )


def test_disk_full_keeps_old_outputs(capsys, trained, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert (
        commands.run("vocode", None, trained[1], input_path=CLIP, output=str(out)) == 0
    )
    capsys.readouterr()
    wav = out / "queue-thankyou.wav"
    before = wav.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(soundfile, "write", full)
    err = _fails(
        capsys,
        "vocode",
        None,
        trained[1],
        "queue-thankyou.wav",
        input_path=CLIP,
        output=str(out),
    )
    assert "No space left" in err
    assert wav.read_bytes() == before
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "subscale.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_config_typo_and_bad_file(tmp_path):
    typo = _cli(
        "--config=configs/tiny.py",
        f"--workdir={tmp_path}",
        "--config.model.hiden_size=4",
    )
    assert typo.returncode != 0 and "Traceback" not in typo.stderr
    assert "hiden_size" in typo.stderr
    bad = _cli(
        "--config=configs/tiny.py",
        f"--workdir={tmp_path}",
        f"--config.data.train_dir={tmp_path / 'missing'}",
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "missing" in bad.stderr.strip().splitlines()[-1]
