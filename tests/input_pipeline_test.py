"""Tests of subscale.input_pipeline and of the embedded demo corpus."""

import csv
import functools
import os
import shutil

import numpy as np
import pytest
import soundfile

from configs import default
from subscale import audio
from subscale import errors
from subscale import input_pipeline
from tests import audio_test

CFG = audio_test.CFG  # the same small 8 kHz analysis
HOP = CFG.hop_length
# Lengths of the synthetic files in samples; two are not multiples of HOP.
LENGTHS = {"a/one.wav": 2_000, "a/two.flac": 1_390, "b/three.wav": 4_130}


@pytest.fixture
def corpus(tmp_path):
    """A folder of short noise files at CFG.sample_rate."""
    root = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    for name, length in LENGTHS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = (rng.normal(0, 3_000, length)).astype(np.int16)
        soundfile.write(str(path), samples, CFG.sample_rate)
    return str(root)


def _noise(rate, seconds=0.5, channels=1):
    """float [t] (or [t, channels]) noise loud enough not to count as silence."""
    shape = (int(rate * seconds), channels) if channels > 1 else int(rate * seconds)
    return np.random.default_rng(0).normal(0, 0.1, shape).astype(np.float32)


# A bad file of each kind: {case: (file name, the problem its error names,
# write(path, rate))}. Shared with tests/bad_input_test.py.
BAD_FILES = {
    "zero_bytes": (
        "zero.wav",
        "an empty file (0 bytes)",
        lambda p, r: p.write_bytes(b""),
    ),
    "no_samples": (
        "nothing.wav",
        "the audio has no samples",
        lambda p, r: soundfile.write(p, np.zeros(0, np.float32), r),
    ),
    "not_audio": (
        "notes.wav",
        "not a readable audio file",
        lambda p, r: p.write_text("this is not audio"),
    ),
    "stereo": (
        "stereo.wav",
        "2 channels; a training corpus must be mono",
        lambda p, r: soundfile.write(p, _noise(r, channels=2), r),
    ),
    "silent": (
        "silent.wav",
        "silent (peak 0 of 32768",
        lambda p, r: soundfile.write(p, np.zeros(r // 2, np.float32), r),
    ),
    "refused_rate": (
        "fast.wav",
        "Hz, not data.sample_rate=",
        lambda p, r: soundfile.write(p, _noise(2 * r), 2 * r),
    ),
}


def write_bad_file(folder, case, rate):
    """Writes the bad file of `case` into `folder`; returns (path, problem)."""
    name, problem, write = BAD_FILES[case]
    write(folder / name, rate)
    return str(folder / name), problem


def _utterances(lengths, seed=0):
    """In-memory noise utterances with their true mel."""
    rng = np.random.default_rng(seed)
    out = []
    for i, length in enumerate(lengths):
        samples = rng.normal(0, 3_000, length).astype(np.int16)
        mel = audio.mel(audio.to_float(samples), CFG)
        out.append(input_pipeline.Utterance(f"u{i}", "train", samples, mel))
    return out


def test_list_audio_folder_is_sorted_and_hash_split(corpus):
    listed = input_pipeline.list_audio(corpus, dev_fraction=0.5)
    paths = [os.path.relpath(p, corpus) for p, _ in listed]
    assert paths == sorted(LENGTHS)
    assert listed == input_pipeline.list_audio(corpus, dev_fraction=0.5)
    assert {s for _, s in input_pipeline.list_audio(corpus, 0.0)} == {"train"}
    assert {s for _, s in input_pipeline.list_audio(corpus, 1.0)} == {"dev"}


def test_hash_split_does_not_depend_on_the_folder_location(corpus, tmp_path):
    copy = str(tmp_path / "elsewhere" / "copy")
    shutil.copytree(corpus, copy)
    for dev_fraction in (0.3, 0.7):
        here = input_pipeline.list_audio(corpus, dev_fraction)
        there = input_pipeline.list_audio(copy, dev_fraction)
        assert [s for _, s in here] == [s for _, s in there]


def _two_row_manifest(corpus):
    """manifest.csv in `corpus`: b/three.wav (speaker x, dev), a/one.wav (y, train)."""
    manifest = os.path.join(corpus, "manifest.csv")
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "speaker", "split"])
        writer.writerow(["b/three.wav", "x", "dev"])
        writer.writerow(["a/one.wav", "y", "train"])
    return manifest


def test_list_audio_manifest(corpus):
    manifest = _two_row_manifest(corpus)
    expected = [
        (os.path.join(corpus, "b/three.wav"), "dev"),
        (os.path.join(corpus, "a/one.wav"), "train"),
    ]
    assert input_pipeline.list_audio(corpus) == expected
    assert input_pipeline.list_audio(manifest) == expected


def test_voices_are_the_manifest_speakers_else_the_first_folder(corpus):
    paths = [os.path.join(corpus, name) for name in ("a/one.wav", "b/three.wav")]
    top = os.path.join(corpus, "top.wav")
    assert input_pipeline.voices([*paths, top], corpus) == ["a", "b", ""]
    manifest = _two_row_manifest(corpus)
    two = os.path.join(corpus, "a", "two.flac")  # not listed: its folder
    for root in (corpus, manifest):
        assert input_pipeline.voices([*paths, two], root) == ["y", "x", "a"]


def test_list_audio_manifest_missing_file(corpus):
    with open(os.path.join(corpus, "manifest.csv"), "w") as f:
        f.write("file,split\na/one.wav,train\na/gone.wav,dev\n")
    with pytest.raises(errors.SubscaleError, match="gone.wav"):
        input_pipeline.list_audio(corpus)


def test_list_audio_manifest_bad_split(corpus):
    with open(os.path.join(corpus, "manifest.csv"), "w") as f:
        f.write("file,split\na/one.wav,test\n")
    with pytest.raises(errors.SubscaleError, match="line 2"):
        input_pipeline.list_audio(corpus)


def test_list_audio_errors(tmp_path):
    with pytest.raises(errors.SubscaleError, match="missing_dir"):
        input_pipeline.list_audio(str(tmp_path / "missing_dir"))
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no audio")
    with pytest.raises(errors.SubscaleError, match="no audio files"):
        input_pipeline.list_audio(str(empty))
    with pytest.raises(errors.SubscaleError, match="notes.txt"):
        input_pipeline.list_audio(str(empty / "sub" / "notes.txt"))


def test_load_corpus_trims_and_uses_the_cache(corpus, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    first = input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.0, cache_dir=cache)
    assert [u.samples.shape[0] for u in first] == [2_000, 1_360, 4_120]
    for u in first:
        assert u.samples.dtype == np.int16 and u.split == "train"
        assert u.mel.shape == (u.samples.shape[0] // HOP, CFG.n_mels)
    assert len(os.listdir(cache)) == len(LENGTHS)

    def fail(*args):
        raise AssertionError("audio.load called despite the cache")

    monkeypatch.setattr(audio, "load", fail)
    second = input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.0, cache_dir=cache)
    for a, b in zip(first, second, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.mel, b.mel)


def test_load_corpus_min_samples(corpus):
    kept = input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.0, min_samples=1_500)
    assert [os.path.basename(u.path) for u in kept] == ["one.wav", "three.wav"]
    with pytest.raises(errors.SubscaleError, match="longest 4120"):
        input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.0, min_samples=9_000)


def test_load_corpus_missing_split(corpus):
    with pytest.raises(errors.SubscaleError, match="no dev files"):
        input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.0, splits=("dev",))


def _ljspeech(root, ids, rate):
    """An LJSpeech folder: metadata.csv and wavs/<id>.wav for each id."""
    (root / "wavs").mkdir(parents=True)
    for utterance_id in ids:
        soundfile.write(root / "wavs" / f"{utterance_id}.wav", _noise(rate, 0.2), rate)
    lines = [f'{i}|Say "{n}", twice.|Say "{n}", twice.' for n, i in enumerate(ids)]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_list_audio_ljspeech_folder_or_metadata_split_by_hash(tmp_path):
    ids = [f"LJ001-{n:04d}" for n in (3, 1, 2, 10, 7, 5)]
    root = _ljspeech(tmp_path / "LJSpeech", ids, CFG.sample_rate)
    listed = input_pipeline.list_audio(str(root), dev_fraction=0.5)
    assert [p for p, _ in listed] == [str(root / "wavs" / f"{i}.wav") for i in ids]
    assert listed == input_pipeline.list_audio(
        str(root / "metadata.csv"), dev_fraction=0.5
    )
    # The split is the one a plain folder of the same wavs gets.
    (root / "metadata.csv").unlink()
    as_folder = dict(input_pipeline.list_audio(str(root), dev_fraction=0.5))
    assert dict(listed) == as_folder
    assert set(as_folder.values()) == {"train", "dev"}


def test_load_corpus_ljspeech(tmp_path):
    root = _ljspeech(tmp_path / "lj", ["a", "b"], CFG.sample_rate)
    utterances = input_pipeline.load_corpus(str(root), CFG, dev_fraction=0.0)
    assert [os.path.basename(u.path) for u in utterances] == ["a.wav", "b.wav"]
    assert [u.samples.shape[0] for u in utterances] == [1_600, 1_600]


def test_ljspeech_malformed_line_and_missing_wav(tmp_path):
    root = _ljspeech(tmp_path / "lj", ["a", "b"], CFG.sample_rate)
    metadata = root / "metadata.csv"
    metadata.write_text("a|A.|A.\nno pipe here\n")
    with pytest.raises(errors.SubscaleError, match="metadata.csv line 2: expected"):
        input_pipeline.list_audio(str(root))
    metadata.write_text("a|A.|A.\ngone|Gone.|Gone.\n")
    with pytest.raises(errors.SubscaleError, match="missing, first .*gone.wav"):
        input_pipeline.list_audio(str(root))
    kept = input_pipeline.list_audio(str(root), 0.0, skip_bad_files=True)
    assert kept == [(str(root / "wavs" / "a.wav"), "train")]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_skip_bad_files_lists_and_skips_each_bad_file(case, tmp_path, caplog):
    folder = tmp_path / "corpus"
    folder.mkdir()
    soundfile.write(folder / "good.wav", _noise(CFG.sample_rate), CFG.sample_rate)
    path, problem = write_bad_file(folder, case, CFG.sample_rate)
    load = functools.partial(
        input_pipeline.load_corpus, str(folder), CFG, dev_fraction=0.0, resample=False
    )
    with pytest.raises(errors.SubscaleError) as raised:
        load()
    assert path in str(raised.value) and problem in str(raised.value)
    assert "data.skip_bad_files=True" in str(raised.value)
    kept = load(skip_bad_files=True)
    assert [os.path.basename(u.path) for u in kept] == ["good.wav"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(path in w and problem in w for w in warnings), warnings
    assert any(w.startswith("Skipped 1 bad file(s)") for w in warnings), warnings


def test_other_rates_are_resampled_and_said_once(corpus, caplog):
    fast = os.path.join(corpus, "fast.wav")
    soundfile.write(fast, _noise(2 * CFG.sample_rate), 2 * CFG.sample_rate)
    caplog.set_level("INFO")
    for split in input_pipeline.SPLITS:
        utterances = input_pipeline.load_corpus(
            corpus, CFG, dev_fraction=0.5, splits=(split,)
        )
    every = input_pipeline.load_corpus(corpus, CFG, dev_fraction=0.5)
    resampled = next(u for u in every if u.path == fast)
    assert resampled.samples.shape[0] == CFG.sample_rate // 2
    said = [r.getMessage() for r in caplog.records if "resampling" in r.getMessage()]
    assert len(said) == 1, said
    assert f"1 at {2 * CFG.sample_rate} Hz" in said[0]
    assert utterances


def _batches(utterances, seed=0):
    return input_pipeline.TrainBatches(
        utterances, seq_len=400, batch_size=8, hop_length=HOP, mel_pad=3, seed=seed
    )


def test_train_batches_depend_only_on_seed_and_step():
    utterances = _utterances([1_200, 3_000, 800])
    batches = _batches(utterances)
    a, b = batches.get(7), _batches(utterances).get(7)
    assert a["samples"].shape == (8, 400) and a["samples"].dtype == np.int16
    assert a["mel"].shape == (8, 400 // HOP + 6, CFG.n_mels)
    assert a["mel"].dtype == np.float32
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["samples"], batches.get(8)["samples"])
    assert not np.array_equal(
        a["samples"], _batches(utterances, seed=1).get(7)["samples"]
    )


def test_train_batch_mel_is_aligned_with_its_crop():
    utterances = _utterances([440, 1_200, 3_000])
    batch = _batches(utterances).get(3)
    frames = 400 // HOP
    for samples, mel in zip(batch["samples"], batch["mel"], strict=True):
        # Noise never repeats, so the first hop of samples identifies the crop.
        found = [
            (u, a)
            for u in utterances
            for a in range(u.samples.shape[0] // HOP - frames + 1)
            if np.array_equal(u.samples[a * HOP : (a + 1) * HOP], samples[:HOP])
        ]
        assert len(found) == 1
        u, a = found[0]
        np.testing.assert_array_equal(samples, u.samples[a * HOP : a * HOP + 400])
        recomputed = audio.mel(audio.to_float(u.samples), CFG)
        np.testing.assert_allclose(
            mel, audio.pad_mel(recomputed, 3)[a : a + frames + 6], atol=1e-5
        )


def test_train_batches_pick_utterances_by_length():
    utterances = _utterances([1_000, 3_000])
    batches = input_pipeline.TrainBatches(
        utterances, seq_len=1_000, batch_size=1_000, hop_length=HOP, mel_pad=0, seed=0
    )
    samples = batches.get(0)["samples"]
    first = np.mean([np.array_equal(s, utterances[0].samples) for s in samples])
    assert 0.2 < first < 0.3


def test_train_batches_validate_seq_len():
    utterances = _utterances([1_000])
    with pytest.raises(errors.SubscaleError, match="data.seq_len"):
        input_pipeline.TrainBatches(
            utterances, seq_len=410, batch_size=2, hop_length=HOP, mel_pad=3, seed=0
        )
    with pytest.raises(errors.SubscaleError, match="data.seq_len"):
        input_pipeline.TrainBatches(
            utterances, seq_len=1_040, batch_size=2, hop_length=HOP, mel_pad=3, seed=0
        )


def test_eval_crops_and_batched():
    utterances = _utterances([1_000, 300, 2_000])
    crops = input_pipeline.eval_crops(
        utterances, seq_len=400, hop_length=HOP, mel_pad=2
    )
    assert crops["samples"].shape == (2 + 0 + 5, 400)
    assert crops["mel"].shape == (7, 400 // HOP + 4, CFG.n_mels)
    np.testing.assert_array_equal(crops["weights"], np.ones(7))
    np.testing.assert_array_equal(crops["samples"][1], utterances[0].samples[400:800])
    padded = audio.pad_mel(utterances[2].mel, 2)
    np.testing.assert_array_equal(crops["mel"][3], padded[10:24])

    subset = input_pipeline.eval_crops(
        utterances, seq_len=400, hop_length=HOP, mel_pad=2, max_crops=3
    )
    np.testing.assert_array_equal(subset["samples"], crops["samples"][[0, 3, 6]])

    batches = list(input_pipeline.batched(crops, 3))
    assert [b["samples"].shape[0] for b in batches] == [3, 3, 3]
    np.testing.assert_array_equal(batches[-1]["weights"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(batches[1]["samples"], crops["samples"][3:6])


def test_demo_corpus_is_small_complete_and_readable():
    root = input_pipeline.DEMO_DIR
    with open(os.path.join(root, "manifest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    listed = {row["file"] for row in rows}
    on_disk = set()
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            total += os.path.getsize(path)
            if name.endswith(".flac"):
                on_disk.add(os.path.relpath(path, root).replace(os.sep, "/"))
    assert listed == on_disk
    assert total <= 5_000_000
    assert {row["split"] for row in rows} == {"train", "dev"}
    assert len({row["speaker"] for row in rows if row["split"] == "train"}) == 2
    entries = input_pipeline.list_audio(root)
    assert len(entries) == len(rows)
    x = audio.load(entries[0][0], 16_000)
    assert x.ndim == 1 and np.isfinite(x).all()
    assert soundfile.info(entries[0][0]).samplerate == 16_000


def test_the_default_config_names_the_demo_corpus_without_a_machine_path():
    train_dir = default.get_config().data.train_dir
    assert train_dir == input_pipeline.DEMO_CORPUS
    assert not os.path.isabs(train_dir)
    assert input_pipeline.resolve_corpus(train_dir) == input_pipeline.DEMO_DIR
    by_name = input_pipeline.list_audio(train_dir)
    assert by_name == input_pipeline.list_audio(input_pipeline.DEMO_DIR)


def test_resolve_corpus_leaves_other_paths_alone(tmp_path):
    for path in (str(tmp_path), "relative/corpus", "", "x/subscale:demo_data"):
        assert input_pipeline.resolve_corpus(path) == path


def test_display_path_is_relative_to_the_package_or_the_repository(tmp_path):
    assert input_pipeline.display_path(input_pipeline.DEMO_CORPUS) == (
        "subscale/demo_data"
    )
    clip = os.path.join(input_pipeline.DEMO_DIR, "train", "x.flac")
    assert input_pipeline.display_path(clip) == "subscale/demo_data/train/x.flac"
    repo = os.path.dirname(input_pipeline.PACKAGE_DIR)
    configs = os.path.join(repo, "configs")
    assert input_pipeline.display_path(configs) == "configs"
    assert input_pipeline.display_path(str(tmp_path)) == str(tmp_path)
    assert input_pipeline.display_path("") == ""
    # A relative path is shown as given: it names no machine folder.
    assert input_pipeline.display_path("../shared/data/./manifest.csv") == (
        "../shared/data/manifest.csv"
    )
