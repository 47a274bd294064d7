"""Bad inputs: each gives one line naming the file or field, and changes nothing.

Most cases call `commands.run`, the function the CLI calls; a few run the CLI in
a subprocess to check the exit code and that no traceback is printed. Denied
permissions and full disks are simulated by patching the call that meets them,
since file modes do not stop root.
"""

import builtins
import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile

import subscale
from configs import my_corpus
from configs import tiny
from subscale import audio
from subscale import commands
from subscale import errors
from subscale import input_pipeline
from subscale import pretrained
from subscale import train
from subscale import workdir_lock
from tests import input_pipeline_test

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


def _deny(monkeypatch, module, name, path, code=errno.EACCES):
    """Makes `module.name(p, ...)` raise OSError(code) for p under `path`."""
    real = getattr(module, name)

    def denied(target, *args, **kwargs):
        if str(target).startswith(str(path)):
            raise OSError(code, os.strerror(code), str(target))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(module, name, denied)


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


def test_unreadable_folder(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    shutil.copy(CLIP, folder)
    _deny(monkeypatch, os, "scandir", folder)
    _fails(
        capsys,
        "train",
        _config(data__train_dir=str(folder)),
        str(tmp_path / "w"),
        "locked: cannot read the folder (Permission denied)",
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


@pytest.mark.parametrize("kept", [200, 17_000])
def test_truncated_flac(capsys, tmp_path, kept):
    folder = tmp_path / "corpus"
    folder.mkdir()
    data = open(CLIP, "rb").read()
    (folder / "cut.flac").write_bytes(data[:kept])
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
    soundfile.write(folder / "short.wav", np.full(300, 0.1, np.float32), 16_000)
    _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "data.seq_len",
    )


def test_nan_in_an_audio_file(capsys, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    wave = np.zeros(8_000, np.float32)
    wave[100] = np.nan
    soundfile.write(folder / "nan.wav", wave, 16_000, subtype="FLOAT")
    err = _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder)),
        str(tmp_path / "w"),
        "nan.wav",
    )
    assert "NaN" in err


@pytest.mark.parametrize("case", sorted(input_pipeline_test.BAD_FILES))
def test_bad_corpus_file(capsys, tmp_path, case):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(CLIP, folder)
    path, problem = input_pipeline_test.write_bad_file(folder, case, 16_000)
    err = _fails(
        capsys,
        "train",
        _config(data__train_dir=_as_train(folder), data__resample=False),
        str(tmp_path / "w"),
        path,
        problem,
        "data.skip_bad_files=True skips such files",
    )
    assert "queue-thankyou" not in err


def test_bad_ljspeech_metadata(capsys, tmp_path):
    (tmp_path / "wavs").mkdir()
    shutil.copy(CLIP, tmp_path / "wavs" / "a.flac")
    (tmp_path / "metadata.csv").write_text("a|Thank you.|Thank you.\n")
    _fails(
        capsys,
        "train",
        _config(data__train_dir=str(tmp_path)),
        str(tmp_path / "w"),
        "metadata.csv: 1 listed file(s) missing",
        "a.wav",
    )


def test_the_example_corpus_config_names_its_placeholder_folder(capsys, tmp_path):
    config = my_corpus.get_config()
    _fails(capsys, "train", config, str(tmp_path / "w"), "/path/to/my_corpus")


@pytest.mark.parametrize(
    "rows,message",
    [
        (["file,split", "gone.flac,train"], "missing, first"),
        (["file,split", "a.flac,test"], "'test' is not train or dev"),
        (["name,part", "a.flac,train"], "missing column(s) file, split"),
    ],
)
def test_bad_manifest(capsys, tmp_path, rows, message):
    shutil.copy(CLIP, tmp_path / "a.flac")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    err = _fails(
        capsys,
        "train",
        _config(data__train_dir=str(tmp_path)),
        str(tmp_path / "w"),
        "manifest.csv",
    )
    assert message in err


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


def test_damaged_and_mismatched_mels_name_the_input(trained):
    vocoder = subscale.load(trained[1])
    good = np.full((4, 80), -4.0, np.float32)
    nan = good.copy()
    nan[2, 7] = np.nan
    cases = [
        ([good, nan], "mel[1]: contains NaN or inf (1 values; the first, nan, at "),
        ([good, good[:0]], "mel[1]: shape (0, 80), expected [frames >= 1, 80]"),
        (good[:, :64], "mel: shape (4, 64), expected [frames >= 1, 80]"),
        ([], "mel: an empty list, nothing to generate"),
        ([["a", "b"]], "mel[0]: not an array of numbers"),
        # A mel in dB (20 log10) instead of natural-log magnitudes.
        (good * 20 / np.log(10), "mel: values from -34.7 to -34.7, outside"),
        # Of power: silence at twice the floor.
        (np.full((4, 80), 2 * audio.LOG_MEL_FLOOR), "not dB, power"),
    ]
    for mel, message in cases:
        with pytest.raises(errors.SubscaleError) as raised:
            vocoder.generate(mel)
        assert message in str(raised.value)
        assert "\n" not in str(raised.value)
    for method in (vocoder.generate_stream, vocoder.generate):
        with pytest.raises(errors.SubscaleError, match="inf, at frame 2, band 7"):
            method(np.where(np.isnan(nan), np.inf, nan))


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


def test_bad_sampling_arguments(trained):
    vocoder = subscale.load(trained[1])
    mel = np.full((3, 80), -4.0, np.float32)
    with pytest.raises(errors.SubscaleError, match="temperature=0"):
        vocoder.generate(mel, temperature=0)
    # Raised by the call, before any chunk is asked for.
    for chunk_frames in (0, -2):
        with pytest.raises(errors.SubscaleError, match="chunk_frames"):
            vocoder.generate_stream(mel, chunk_frames)
    with pytest.raises(errors.SubscaleError, match="mel"):
        vocoder.generate_stream(mel[:, :10], 2)


def test_checkpoint_of_other_features(capsys, trained):
    config, workdir = trained
    before = _snapshot(workdir)
    other = tiny.get_config()
    other.data.sample_rate = 22_050
    _fails(capsys, "evaluate", other, workdir, "data.sample_rate=16000", "22050")
    assert _snapshot(workdir) == before


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
        ("train.cooldown_steps", 10**9),
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


def test_unwritable_workdir(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny(monkeypatch, os, "makedirs", locked)
    _deny(monkeypatch, builtins, "open", locked)
    # A new workdir in a locked folder, and an existing locked workdir.
    _fails(capsys, "train", tiny.get_config(), str(locked / "w"), "locked/w")
    _fails(capsys, "train", tiny.get_config(), str(locked), "not writable")
    assert not os.listdir(locked)


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


def _truncate(folder):
    """Cuts every file of `folder` to half its length."""
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            os.truncate(path, os.path.getsize(path) // 2)


def _corrupt(folder):
    """Flips 64 bytes in the middle of each of the state's data files."""
    data = os.path.join(folder, "state", "d")
    for name in os.listdir(data):
        path = os.path.join(data, name)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            chunk = f.read(64)
            f.seek(-len(chunk), os.SEEK_CUR)
            f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.parametrize("damage", [_truncate, _corrupt])
def test_a_damaged_newest_checkpoint_gives_way_to_the_one_before(
    capsys, caplog, trained, tmp_path, damage
):
    workdir = str(tmp_path / "w")
    shutil.copytree(trained[1], workdir)
    checkpoints = os.path.join(workdir, "checkpoints")
    newest, previous = os.path.join(checkpoints, "2"), os.path.join(checkpoints, "1")
    damage(newest)
    damaged = _snapshot(newest)
    params = subscale.load(workdir).params
    assert f"{newest}: cannot restore this checkpoint" in caplog.text
    assert f"restored the one before it instead: {previous}" in caplog.text
    without = str(tmp_path / "without")
    shutil.copytree(trained[1], without)
    shutil.rmtree(os.path.join(without, "checkpoints", "2"))
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, params, subscale.load(without).params
    )

    # Training resumes from step 1 and moves the damaged one out of its way.
    more = tiny.get_config()
    more.train.num_steps = 3
    assert commands.run("train", more, workdir) == 0, capsys.readouterr().err
    assert sorted(os.listdir(checkpoints)) == ["1", "2", "3"]
    aside = os.path.join(workdir, "damaged_checkpoints", "2")
    assert _snapshot(aside) == {
        path.replace(newest, aside): data for path, data in damaged.items()
    }
    assert subscale.load(workdir).params.keys() == params.keys()


def test_checkpoints_of_which_none_restores_stop_the_run(capsys, trained, tmp_path):
    config, _ = trained
    workdir = str(tmp_path / "w")
    shutil.copytree(trained[1], workdir)
    for step in ("1", "2"):
        _truncate(os.path.join(workdir, "checkpoints", step))
    before = _snapshot(workdir)
    for mode in ("train", "evaluate"):
        err = _fails(capsys, mode, config, workdir, f"error: {workdir}: none of its")
        assert "2 checkpoints restores" in err
        assert f"{workdir}/checkpoints/2: cannot restore" in err
    with pytest.raises(errors.SubscaleError, match="none of its 2 checkpoints"):
        subscale.load(workdir)
    assert _snapshot(workdir) == before


def test_a_lock_left_by_a_dead_run_is_taken_over(capsys, caplog, trained, tmp_path):
    workdir = str(tmp_path / "w")
    shutil.copytree(trained[1], workdir)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    lock = os.path.join(workdir, workdir_lock.LOCK_FILE)
    with open(lock, "w") as f:
        json.dump(dict(pid=pid, host=socket.gethostname()), f)
    more = tiny.get_config()
    more.train.num_steps = 3
    assert commands.run("train", more, workdir) == 0, capsys.readouterr().err
    assert (
        f"{workdir}: taking over the lock of process {pid} on "
        f"{socket.gethostname()}, which has stopped" in caplog.text
    )
    with open(lock) as f:
        assert f.read() == ""  # released


def test_reading_a_workdir_in_training_needs_no_lock(capsys, trained, tmp_path):
    config, workdir = trained
    with workdir_lock.acquire(workdir):
        # Another training is refused, naming this process...
        _fails(capsys, "train", config, workdir, workdir, f"process {os.getpid()}")
        # ...but reading the workdir is not.
        assert subscale.load(workdir).params
        out = str(tmp_path / "out")
        assert commands.run("vocode", None, workdir, input_path=CLIP, output=out) == 0
    assert commands.run("evaluate", config, workdir) == 0


def test_a_failed_export_leaves_the_model_folder_as_it_was(
    trained, tmp_path, monkeypatch
):
    dest = tmp_path / "model"
    dest.mkdir()
    old = {name: f"old {name}" for name in ("params.npz", "config.json", "info.json")}
    for name, text in old.items():
        (dest / name).write_text(text)
    real_open = builtins.open

    def full(path, mode="r", *args, **kwargs):
        if str(path).startswith(str(dest)) and str(path).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(errors.SubscaleError, match="No space left on device"):
        pretrained.export(trained[1], str(dest))
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in dest.iterdir()} == old
    pretrained.export(trained[1], str(dest))
    assert sorted(p.name for p in dest.iterdir()) == sorted(old)
    assert subscale.load(str(dest)).params


def test_corrupt_config_json(capsys, trained, tmp_path):
    workdir = str(tmp_path / "w")
    shutil.copytree(trained[1], workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write("{not json")
    _fails(
        capsys,
        "vocode",
        None,
        workdir,
        "config.json: unreadable config",
        input_path=CLIP,
        output=str(tmp_path / "out"),
    )


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


def test_vocoding_a_clip_shorter_than_a_frame_names_it(capsys, trained, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    soundfile.write(folder / "tiny.wav", np.zeros(10, np.float32), 16_000)
    _fails(
        capsys,
        "vocode",
        None,
        trained[1],
        f"{folder / 'tiny.wav'}: 10 samples, shorter than one frame (200)",
        input_path=str(folder),
        output=str(tmp_path / "out"),
    )


def test_missing_vocode_arguments(capsys, trained, tmp_path):
    _fails(capsys, "vocode", None, trained[1], "--input", output=str(tmp_path))
    _fails(capsys, "vocode", None, trained[1], "--output", input_path=CLIP)


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


def test_disk_full_while_streaming_keeps_old_outputs(
    capsys, trained, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    args = dict(input_path=CLIP, output=str(out), stream=True)
    assert commands.run("vocode", None, trained[1], **args) == 0
    capsys.readouterr()
    wav = out / "queue-thankyou.wav"
    before = wav.read_bytes()
    writes = []

    def write(self, data):
        writes.append(len(data))
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(soundfile.SoundFile, "write", write)
    err = _fails(capsys, "vocode", None, trained[1], "queue-thankyou.wav", **args)
    assert "No space left" in err and len(writes) == 2
    assert wav.read_bytes() == before
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]


def test_disk_full_during_training_keeps_checkpoints(
    capsys, trained, tmp_path, monkeypatch
):
    config, _ = trained
    workdir = str(tmp_path / "w")
    shutil.copytree(trained[1], workdir)
    checkpoints = _snapshot(os.path.join(workdir, "checkpoints"))
    real_open = builtins.open
    metrics = os.path.join(workdir, "metrics.jsonl")

    def full(path, mode="r", *args, **kwargs):
        if str(path) == metrics and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", metrics)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    more = tiny.get_config()
    more.train.num_steps = 3
    err = _fails(capsys, "train", more, workdir, "metrics.jsonl", "No space left")
    assert "step" not in err
    assert _snapshot(os.path.join(workdir, "checkpoints")) == checkpoints


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
    mode = _cli("--config=configs/tiny.py", f"--workdir={tmp_path}", "--mode=dance")
    assert mode.returncode == 1 and "Traceback" not in mode.stderr
    assert mode.stderr.strip().splitlines() == [
        "error: flag --mode=dance: value should be one of <train|evaluate|vocode>"
    ]
