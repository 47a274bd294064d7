"""Corpus listing, cached features, training crops and evaluation crops.

Notation: b batch, t samples, f mel frames, hop samples per frame.

A corpus is a folder of audio files (searched recursively, split into train and
dev by a hash of each file's relative path), a `manifest.csv` with `file` and
`split` columns, or an LJSpeech-style `metadata.csv` (`id|text|normalized`
lines, audio in `wavs/<id>.wav`, split by the same hash). Every file must be
mono and not silent; a file at another sample rate is resampled unless
`data.resample` is off. A bad file is a one-line error naming it, or, with
`data.skip_bad_files`, a warning that lists it. Every utterance is held as int16
samples trimmed to a multiple of hop and its unpadded log-mel (see `audio.mel`
for the frame alignment).

A training crop of seq_len samples starting at frame a comes with the mel frames
[a - mel_pad, a + seq_len // hop + mel_pad): the crop's own frames plus mel_pad
real neighbours on each side (silence, LOG_MEL_FLOOR, beyond the utterance).
Batches depend only on (seed, step), so a resumed run sees the same data.
"""

import csv
import dataclasses
import hashlib
import os

import numpy as np
from absl import logging

from subscale import audio
from subscale import errors
from subscale import files
from subscale import linear_prediction

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# "subscale:NAME" names a corpus shipped inside the package, so that a config
# can name it without an absolute path that holds on one machine only.
PACKAGE_PREFIX = "subscale:"
DEMO_CORPUS = PACKAGE_PREFIX + "demo_data"
DEMO_DIR = os.path.join(PACKAGE_DIR, "demo_data")
MANIFEST = "manifest.csv"
# LJSpeech's layout: `metadata.csv` lines `id|text|normalized text`, the audio
# in `wavs/<id>.wav` beside it.
METADATA = "metadata.csv"
METADATA_AUDIO = "wavs"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SPLITS = ("train", "dev")
# A file whose loudest sample stays below this (in int16 steps, about -60 dBFS)
# holds no signal to learn from.
SILENCE_PEAK = 32
# How to skip bad files instead of stopping at the first, for the error messages.
_SKIP_HINT = "data.skip_bad_files=True skips such files"
# Bump when the cached arrays change meaning, so old cache files are not reused.
_CACHE_VERSION = 1


# eq=False: the fields hold arrays, which have no single truth value.
@dataclasses.dataclass(frozen=True, eq=False)
class Utterance:
    """One audio file, ready for cropping.

    Attributes:
      path: the audio file.
      split: "train" or "dev".
      samples: int16 [t], t a multiple of hop (read-only).
      mel: float32 [t // hop, n_mels], unpadded log-mel (read-only).
    """

    path: str
    split: str
    samples: np.ndarray
    mel: np.ndarray


def resolve_corpus(path):
    """The file or folder a corpus name stands for.

    Args:
      path: `PACKAGE_PREFIX` + a path inside the package (`DEMO_CORPUS` is the
        embedded demo corpus), or any other path.

    Returns:
      The absolute path of a package corpus; any other `path` unchanged.
    """
    if isinstance(path, str) and path.startswith(PACKAGE_PREFIX):
        return os.path.join(PACKAGE_DIR, path[len(PACKAGE_PREFIX) :])
    return path


def display_path(path):
    """`path` as results and logs name it, without the machine's folders.

    Args:
      path: a corpus name (see `resolve_corpus`) or a path; "" stays "".

    Returns:
      "subscale/..." inside the package (the same in a checkout and in an
      installed copy), else a relative `path` as given (e.g.
      "../shared/data/manifest.csv"), else the path relative to the repository
      root when the package sits in a checkout and `path` is under its root,
      else the absolute path.
    """
    if not path:
        return path
    given = resolve_corpus(path)
    path = os.path.abspath(given)
    if _is_within(path, PACKAGE_DIR):
        relative = os.path.relpath(path, PACKAGE_DIR)
        return _slashed(os.path.join(os.path.basename(PACKAGE_DIR), relative))
    if not os.path.isabs(given):
        return _slashed(given)
    repo = os.path.dirname(PACKAGE_DIR)
    if os.path.isfile(os.path.join(repo, "pyproject.toml")) and _is_within(path, repo):
        return _slashed(os.path.relpath(path, repo))
    return path


def _is_within(path, folder):
    return os.path.commonpath([path, folder]) == folder


def _slashed(relative):
    """A relative path with "/" separators, as in a manifest."""
    return os.path.normpath(relative).replace(os.sep, "/")


def list_audio(root, dev_fraction=0.05, skip_bad_files=False):
    """Lists the audio files of a corpus with their split.

    Args:
      root: a manifest CSV file, a folder holding `manifest.csv` (its rows are
        used: `file` relative to the manifest's folder, `split` train or dev),
        an LJSpeech `metadata.csv` or a folder holding one and `wavs/` (every
        `wavs/<id>.wav` it lists, split by a hash as for a folder), or a folder
        searched recursively for audio files; "subscale:NAME" for one inside
        the package (`resolve_corpus`).
      dev_fraction: without a manifest, the share of files put in dev, chosen
        by a hash of the path relative to `root` (the folder of a
        `metadata.csv`).
      skip_bad_files: leave out the files a manifest or metadata.csv lists but
        the folder lacks, with a warning, instead of raising.

    Returns:
      [(path, split)] in manifest or metadata order, or sorted by path for a
      folder.

    Raises:
      SubscaleError: naming the path, when it is missing, not a folder or
        list file, lists missing files or malformed lines, or holds no audio.
    """
    root = resolve_corpus(root)
    if os.path.isfile(root) and os.path.basename(root) == METADATA:
        return _read_metadata(root, dev_fraction, skip_bad_files)
    if os.path.isfile(root) and root.endswith(".csv"):
        return _read_manifest(root, skip_bad_files)
    if not os.path.exists(root):
        raise errors.SubscaleError(f"{root}: no such folder")
    if not os.path.isdir(root):
        raise errors.SubscaleError(f"{root}: not a folder or a manifest .csv file")
    manifest = os.path.join(root, MANIFEST)
    if os.path.isfile(manifest):
        return _read_manifest(manifest, skip_bad_files)
    metadata = os.path.join(root, METADATA)
    if os.path.isfile(metadata) and os.path.isdir(os.path.join(root, METADATA_AUDIO)):
        return _read_metadata(metadata, dev_fraction, skip_bad_files)
    found = []
    for folder, subfolders, names in os.walk(root, onerror=_unreadable_folder):
        subfolders.sort()
        for name in names:
            if name.lower().endswith(AUDIO_EXTENSIONS):
                found.append(os.path.join(folder, name))
    if not found:
        raise errors.SubscaleError(
            f"{root}: no audio files ({' '.join(AUDIO_EXTENSIONS)}) found"
        )
    found.sort()
    return [(path, _hash_split(path, root, dev_fraction)) for path in found]


def _unreadable_folder(error):
    """os.walk would skip the folder; a corpus with holes is an error."""
    raise errors.SubscaleError(
        f"{error.filename}: cannot read the folder ({error.strerror or error})"
    ) from error


def _hash_split(path, root, dev_fraction):
    """ "dev" for a stable dev_fraction share of relative paths, else "train"."""
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return "dev" if fraction < dev_fraction else "train"


def _read_manifest(manifest, skip_bad_files=False):
    """[(path, split)] of the rows of a manifest CSV."""
    folder = os.path.dirname(os.path.abspath(manifest))
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"file", "split"} - set(reader.fieldnames or ())
            if missing:
                raise errors.SubscaleError(
                    f"{manifest}: missing column(s) {', '.join(sorted(missing))}"
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise errors.SubscaleError(f"{manifest}: cannot read the manifest ({e})") from e
    entries = []
    for line, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise errors.SubscaleError(
                f"{manifest} line {line}: split {row['split']!r} is not train or dev"
            )
        entries.append((os.path.join(folder, row["file"]), row["split"]))
    if not entries:
        raise errors.SubscaleError(f"{manifest}: the manifest lists no files")
    return _present(manifest, entries, skip_bad_files)


def voices(paths, root):
    """Whose voice each of `paths` (files of the corpus at `root`) is.

    The `speaker` column of the manifest row that lists the file when `root`
    is a manifest corpus with that column; else the first folder of the file's
    path under the corpus folder, "" for a file at its top.
    """
    root = resolve_corpus(root)
    is_list = os.path.isfile(root) and root.endswith(".csv")
    manifest = root if is_list else os.path.join(root, MANIFEST)
    folder = os.path.abspath(os.path.dirname(root) if is_list else root)
    speakers = {}
    if os.path.basename(manifest) != METADATA and os.path.isfile(manifest):
        with open(manifest, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("speaker") and row.get("file"):
                    path = os.path.normpath(os.path.join(folder, row["file"]))
                    speakers[path] = row["speaker"]
    out = []
    for path in paths:
        path = os.path.normpath(os.path.abspath(path))
        parts = os.path.relpath(path, folder).split(os.sep)
        out.append(speakers.get(path, parts[0] if len(parts) > 1 else ""))
    return out


def _read_metadata(metadata, dev_fraction, skip_bad_files=False):
    """[(path, split)] of the `id|text|normalized` lines of an LJSpeech
    metadata.csv: `wavs/<id>.wav` beside it, split by a hash of that path."""
    folder = os.path.dirname(os.path.abspath(metadata))
    try:
        with open(metadata, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise errors.SubscaleError(f"{metadata}: cannot read the metadata ({e})") from e
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        utterance_id = line.split("|", 1)[0].strip()
        if "|" not in line or not utterance_id or "/" in utterance_id:
            raise errors.SubscaleError(
                f"{metadata} line {number}: expected id|text|normalized text "
                f"(LJSpeech), got {line[:40]!r}"
            )
        path = os.path.join(folder, METADATA_AUDIO, utterance_id + ".wav")
        entries.append((path, _hash_split(path, folder, dev_fraction)))
    if not entries:
        raise errors.SubscaleError(f"{metadata}: the metadata lists no files")
    return _present(metadata, entries, skip_bad_files)


def _present(listing, entries, skip_bad_files):
    """The `entries` whose file exists; a missing one is an error, or, with
    `skip_bad_files`, a warning."""
    missing = [path for path, _ in entries if not os.path.isfile(path)]
    if missing and not skip_bad_files:
        raise errors.SubscaleError(
            f"{listing}: {len(missing)} listed file(s) missing, first {missing[0]} "
            f"({_SKIP_HINT})"
        )
    for path in missing:
        logging.warning("Skipping %s: listed in %s but missing.", path, listing)
    missing = set(missing)
    return [(path, split) for path, split in entries if path not in missing]


def load_corpus(
    root,
    mel_cfg,
    *,
    dev_fraction=0.05,
    cache_dir=None,
    splits=SPLITS,
    min_samples=0,
    resample=True,
    skip_bad_files=False,
):
    """Loads the utterances of the requested splits, with features cached.

    Args:
      root: corpus, as for `list_audio`.
      mel_cfg: audio.MelConfig (sample rate and mel analysis).
      dev_fraction: as for `list_audio`.
      cache_dir: folder for per-file feature caches (.npz), or None for none.
        A cache entry is keyed by the file's absolute path, mtime, size and
        `mel_cfg`, so an edited file or a new config is recomputed.
      splits: which splits to return.
      min_samples: files shorter than this (after trimming to a multiple of
        hop) are skipped with a warning.
      resample: resample files at another rate than `mel_cfg.sample_rate`
        (said once in the log); False: such a file is a bad file.
      skip_bad_files: skip bad files (unreadable, empty, not mono, silent, at
        a refused rate, listed but missing), each named in a warning, instead
        of raising at the first.

    Returns:
      [Utterance] in `list_audio` order.

    Raises:
      SubscaleError: naming a bad file and what is wrong with it, or when the
        requested splits have no file of at least `min_samples` samples.
    """
    root = resolve_corpus(root)
    listed = list_audio(root, dev_fraction, skip_bad_files)
    entries = [(p, s) for p, s in listed if s in splits]
    utterances = []
    skipped = []
    bad = []
    resampled = {}  # file rate -> count
    for path, split in entries:
        try:
            rate = _check_file(path, mel_cfg.sample_rate, resample)
            samples, mel = _features(path, mel_cfg, cache_dir)
            _check_not_silent(path, samples)
        except errors.SubscaleError as e:
            if not skip_bad_files:
                raise errors.SubscaleError(f"{e} ({_SKIP_HINT})") from e
            logging.warning("Skipping a bad file: %s", e)
            bad.append(path)
            continue
        if rate != mel_cfg.sample_rate:
            resampled[rate] = resampled.get(rate, 0) + 1
        if samples.shape[0] < min_samples:
            logging.warning(
                "Skipping %s: %d samples, fewer than the %d needed.",
                path,
                samples.shape[0],
                min_samples,
            )
            skipped.append(samples.shape[0])
            continue
        samples.setflags(write=False)
        mel.setflags(write=False)
        utterances.append(Utterance(path, split, samples, mel))
    if bad:
        logging.warning(
            "Skipped %d bad file(s) of %s (data.skip_bad_files): %s",
            len(bad),
            root,
            ", ".join(bad),
        )
    if resampled:
        _say_resampled(root, resampled, mel_cfg.sample_rate)
    if not utterances:
        wanted = " or ".join(splits)
        if skipped:
            raise errors.SubscaleError(
                f"{root}: every {wanted} file is shorter than the {min_samples} "
                f"samples needed (longest {max(skipped)})"
            )
        raise errors.SubscaleError(
            f"{root}: no {wanted} files (splits come from manifest.csv if there is "
            f"one, else from a hash with data.dev_fraction={dev_fraction})"
        )
    return utterances


def _check_file(path, sample_rate, resample):
    """The sample rate of an audio file, after checking its header.

    Raises:
      SubscaleError: the file is empty, unreadable, has no samples or more
        than one channel, or is at another rate than `sample_rate` and not
        `resample`.
    """
    if os.path.getsize(path) == 0:
        raise errors.SubscaleError(f"{path}: an empty file (0 bytes)")
    info = audio.file_info(path)
    if info.frames == 0:
        raise errors.SubscaleError(f"{path}: the audio has no samples")
    if info.channels != 1:
        raise errors.SubscaleError(
            f"{path}: {info.channels} channels; a training corpus must be mono "
            "(mix it down first, e.g. sox IN OUT remix -)"
        )
    if info.samplerate != sample_rate and not resample:
        raise errors.SubscaleError(
            f"{path}: {info.samplerate} Hz, not data.sample_rate={sample_rate} "
            "(data.resample=True resamples it)"
        )
    return info.samplerate


def _check_not_silent(path, samples):
    peak = int(np.abs(samples.astype(np.int32)).max(initial=0))
    if peak < SILENCE_PEAK:
        raise errors.SubscaleError(
            f"{path}: silent (peak {peak} of 32768, below {SILENCE_PEAK})"
        )


# Corpora whose resampling was already announced: a run loads its corpus once
# per split and says so once.
_ANNOUNCED = set()


def _say_resampled(root, resampled, sample_rate):
    key = (root, tuple(sorted(resampled)), sample_rate)
    if key in _ANNOUNCED:
        return
    _ANNOUNCED.add(key)
    rates = ", ".join(f"{n} at {rate} Hz" for rate, n in sorted(resampled.items()))
    logging.info(
        "%s: resampling files to data.sample_rate=%d Hz (%s); "
        "data.resample=False refuses them instead.",
        root,
        sample_rate,
        rates,
    )


def _features(path, mel_cfg, cache_dir):
    """(int16 samples [t], float32 mel [t // hop, n_mels]) of one file, cached."""
    cache_path = None
    if cache_dir:
        cache_path = os.path.join(cache_dir, _cache_key(path, mel_cfg) + ".npz")
        if os.path.isfile(cache_path):
            try:
                with np.load(cache_path) as cached:
                    return cached["samples"], cached["mel"]
            except (OSError, ValueError, KeyError) as e:
                logging.warning("Recomputing %s: bad cache file (%s).", path, e)
    hop = mel_cfg.hop_length
    samples = audio.to_int16(audio.load(path, mel_cfg.sample_rate))
    samples = samples[: samples.shape[0] // hop * hop]
    mel = audio.mel(audio.to_float(samples), mel_cfg)
    if cache_path is not None:
        files.atomic_write(
            cache_path, lambda tmp: np.savez(tmp, samples=samples, mel=mel)
        )
    return samples, mel


def _cache_key(path, mel_cfg):
    """sha1 hex of what the cached features depend on."""
    stat = os.stat(path)
    key = (
        _CACHE_VERSION,
        os.path.abspath(path),
        stat.st_mtime_ns,
        stat.st_size,
        dataclasses.astuple(mel_cfg),
    )
    return hashlib.sha1(repr(key).encode("utf-8")).hexdigest()


class TrainBatches:
    """Random training crops; batch `step` depends only on (seed, step).

    Each crop picks an utterance with probability proportional to its length
    (among those of at least seq_len samples) and a start frame a uniformly
    among the valid ones, and returns samples [a * hop, a * hop + seq_len) with
    mel frames [a - mel_pad, a + seq_len // hop + mel_pad).
    """

    def __init__(
        self,
        utterances,
        *,
        seq_len,
        batch_size,
        hop_length,
        mel_pad,
        seed,
        pre_emphasis=0.0,
        margins=(0, 0),
        input_noise=(0.0, 0.0),
        input_noise_start=0,
        consecutive=False,
    ):
        """Precomputes the sampling tables.

        Args:
          utterances: [Utterance] to crop from.
          seq_len: samples per crop, a multiple of hop_length.
          batch_size: crops per batch.
          hop_length: samples per mel frame.
          mel_pad: neighbouring frames on each side of a crop's frames.
          seed: seed of the data order.
          pre_emphasis: coefficient of `audio.pre_emphasis`, applied to whole
            utterances before cropping (0: none).
          margins: (before, after) samples of the real waveform around each crop
            handed to the model as context inputs only (0 past the utterance).
          input_noise: (low, high) standard deviation of Gaussian noise, in
            int16 steps, added to the autoregressive inputs (never to the
            targets); each crop draws its own log-uniformly. (0, 0): none.
          input_noise_start: first step with input noise.
          consecutive: slot k of step t + 1 holds the crop that follows slot
            k of step t in the same utterance (`train.carry_state`), until the
            utterance has no whole crop left; then the slot starts a new
            utterance, drawn as above, at a random phase in its first crop,
            and the batch's `reset` marks it.

        Raises:
          SubscaleError: seq_len is not a multiple of hop_length or longer than
            every utterance.
        """
        # Its own argument: the class is also built without a checked config.
        if seq_len <= 0 or seq_len % hop_length:
            raise errors.SubscaleError(
                f"data.seq_len={seq_len}: must be a positive multiple of "
                f"data.hop_length={hop_length}"
            )
        usable = [u for u in utterances if u.samples.shape[0] >= seq_len]
        if not usable:
            longest = max((u.samples.shape[0] for u in utterances), default=0)
            raise errors.SubscaleError(
                f"data.seq_len={seq_len} is longer than every training utterance "
                f"(longest {longest} samples)"
            )
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.hop_length = hop_length
        self.mel_pad = mel_pad
        self.seed = seed
        self.frames = seq_len // hop_length
        self.margins = tuple(int(m) for m in margins)
        self.input_noise = tuple(float(x) for x in input_noise)
        self.input_noise_start = int(input_noise_start)
        # All utterances end to end, so that a batch is two fancy-index gathers.
        lengths = np.array([u.samples.shape[0] for u in usable], np.int64)
        padded = [audio.pad_mel(u.mel, mel_pad) for u in usable]
        mel_lengths = np.array([m.shape[0] for m in padded], np.int64)
        self._samples = np.concatenate(
            [audio.pre_emphasis(u.samples, pre_emphasis) for u in usable]
        )
        self._lengths = lengths
        self._mel = np.concatenate(padded)
        self._sample_offsets = np.cumsum(lengths) - lengths
        self._mel_offsets = np.cumsum(mel_lengths) - mel_lengths
        self._num_starts = lengths // hop_length - self.frames + 1
        self._probs = lengths / lengths.sum()
        self.consecutive = bool(consecutive)
        self._walk = None  # (step, which, start, reset) of consecutive slots

    def _slots(self, step):
        """(which [b], start frame [b], reset bool [b]) of the crops of `step`."""
        if not self.consecutive:
            rng = np.random.default_rng([self.seed, int(step)])
            which = rng.choice(len(self._probs), size=self.batch_size, p=self._probs)
            start = rng.integers(0, self._num_starts[which])
            return which, start, np.ones(self.batch_size, bool)
        # Each slot's walk depends only on (seed, step): it is replayed from
        # step 0 (or from the last step asked for) to reach any step, so a
        # resumed run sees the crops an uninterrupted one sees.
        if self._walk is None or self._walk[0] > step:
            which, start = self._slots_fresh(0)
            self._walk = (0, which, start, np.ones(self.batch_size, bool))
        t, which, start, reset = self._walk
        while t < step:
            t += 1
            fresh_which, fresh_start = self._slots_fresh(t)
            start = start + self.frames
            reset = start >= self._num_starts[which]
            which = np.where(reset, fresh_which, which)
            start = np.where(reset, fresh_start, start)
        self._walk = (t, which, start, reset)
        return which, start, reset

    def _slots_fresh(self, step):
        """The utterance and phase a slot that resets at `step` starts with."""
        rng = np.random.default_rng([self.seed, int(step)])
        which = rng.choice(len(self._probs), size=self.batch_size, p=self._probs)
        return which, rng.integers(0, np.minimum(self.frames, self._num_starts[which]))

    def get(self, step):
        """The batch of training step `step`.

        Returns:
          dict(samples=int16 [b, seq_len],
               mel=float32 [b, seq_len // hop + 2 * mel_pad, n_mels]), and
          inputs=int16 [b, before + seq_len + after] and inputs_valid=bool [b,
          before + seq_len + after] (False past the utterance's ends) when there
          are margins or input noise at this step; reset=bool [b] for
          consecutive crops.
        """
        which, start, reset = self._slots(step)
        first_sample = self._sample_offsets[which] + start * self.hop_length
        first_frame = self._mel_offsets[which] + start
        window = self.frames + 2 * self.mel_pad
        batch = dict(
            samples=self._samples[first_sample[:, None] + np.arange(self.seq_len)],
            mel=self._mel[first_frame[:, None] + np.arange(window)],
        )
        if self.consecutive:
            batch["reset"] = reset
        noisy = self.input_noise[1] > 0 and step >= self.input_noise_start
        if self.margins == (0, 0) and not noisy:
            return batch
        before, after = self.margins
        position = start[:, None] * self.hop_length + np.arange(
            -before, self.seq_len + after
        )
        inside = (position >= 0) & (position < self._lengths[which][:, None])
        index = self._sample_offsets[which][:, None] + np.where(inside, position, 0)
        inputs = np.where(inside, self._samples[index], 0)
        if noisy:
            noise_rng = np.random.default_rng([self.seed, int(step), 1])
            low, high = np.log(self.input_noise)
            sigma = np.exp(noise_rng.uniform(low, high, (self.batch_size, 1)))
            noise = sigma * noise_rng.standard_normal(inputs.shape)
            inputs = np.clip(np.round(inputs + noise), -32768, 32767)
        batch["inputs"] = inputs.astype(np.int16)
        batch["inputs_valid"] = inside
        return batch


def eval_crops(
    utterances,
    *,
    seq_len,
    hop_length,
    mel_pad,
    max_crops=0,
    pre_emphasis=0.0,
    margins=(0, 0),
):
    """Deterministic non-overlapping crops of every utterance, in file order.

    Each utterance gives its consecutive crops [k * seq_len, (k + 1) * seq_len);
    the remainder shorter than seq_len is dropped, and so is an utterance
    shorter than seq_len.

    Args:
      utterances: [Utterance].
      seq_len: samples per crop, a multiple of hop_length.
      hop_length: samples per mel frame.
      mel_pad: neighbouring frames on each side, as in TrainBatches.
      max_crops: if > 0 and there are more crops, an evenly spaced subset of
        this many.
      pre_emphasis: as in TrainBatches.
      margins: as in TrainBatches.

    Returns:
      dict(samples=int16 [n, seq_len],
           mel=float32 [n, seq_len // hop + 2 * mel_pad, n_mels],
           weights=float32 [n] of ones), and with margins
      inputs=int16 [n, before + seq_len + after] and inputs_valid (bool, the
      same shape: False past the utterance's ends).

    Raises:
      SubscaleError: seq_len is longer than every utterance.
    """
    frames = seq_len // hop_length
    before, after = margins
    samples, mels, inputs = [], [], []
    for u in utterances:
        padded = audio.pad_mel(u.mel, mel_pad)
        wave = audio.pre_emphasis(u.samples, pre_emphasis)
        around = np.pad(wave, (before, after))
        inside = np.pad(np.ones(wave.shape, bool), (before, after))
        for k in range(u.samples.shape[0] // seq_len):
            samples.append(wave[k * seq_len : (k + 1) * seq_len])
            mels.append(padded[k * frames : (k + 1) * frames + 2 * mel_pad])
            window = slice(k * seq_len, (k + 1) * seq_len + before + after)
            inputs.append((around[window], inside[window]))
    if not samples:
        raise errors.SubscaleError(
            f"data.seq_len={seq_len} is longer than every evaluation utterance"
        )
    if 0 < max_crops < len(samples):
        keep = np.linspace(0, len(samples) - 1, max_crops).round().astype(int)
        samples = [samples[i] for i in keep]
        mels = [mels[i] for i in keep]
        inputs = [inputs[i] for i in keep]
    crops = dict(
        samples=np.stack(samples),
        mel=np.stack(mels),
        weights=np.ones(len(samples), np.float32),
    )
    if tuple(margins) != (0, 0):
        crops["inputs"] = np.stack([x for x, _ in inputs])
        crops["inputs_valid"] = np.stack([v for _, v in inputs])
    return crops


def batched(d, batch_size):
    """Splits a dict of equal-length arrays into batches of exactly batch_size.

    The last batch is filled up by repeating earlier entries with weight 0.

    Args:
      d: dict of arrays [n, ...], optionally with `weights` [n] (else ones).
      batch_size: entries per batch.

    Yields:
      dicts with the same keys plus `weights`, arrays [batch_size, ...].
    """
    n = len(next(iter(d.values())))
    weights = d.get("weights", np.ones(n, np.float32))
    for begin in range(0, n, batch_size):
        index = np.arange(begin, begin + batch_size)
        real = index < n
        index = index % n
        batch = {key: value[index] for key, value in d.items()}
        batch["weights"] = np.where(real, weights[index], 0.0).astype(np.float32)
        yield batch


# Reading the data fields of a config, in one place for training, evaluation
# and the experiments.


def corpus(config, workdir, splits=SPLITS):
    """The utterances of `splits` of `config.data.train_dir`, features cached
    in `data.cache_dir` (default `<workdir>/cache`)."""
    return _load(config, workdir, config.data.train_dir, splits)


def eval_utterances(config, workdir):
    """The held-out utterances: every file of `data.eval_dir` when set, else the
    dev split of the corpus."""
    d = config.data
    if d.eval_dir:
        return _load(config, workdir, d.eval_dir, SPLITS)
    return corpus(config, workdir, ("dev",))


def _load(config, workdir, root, splits):
    """`load_corpus` of `root` with the fields of `config.data`."""
    d = config.data
    return load_corpus(
        root,
        audio.MelConfig.from_config(d),
        dev_fraction=float(d.dev_fraction),
        cache_dir=d.cache_dir or os.path.join(workdir, "cache"),
        splits=splits,
        resample=bool(d.get("resample", True)),
        skip_bad_files=bool(d.get("skip_bad_files", False)),
    )


def context_columns(config):
    """(left, right) grid columns of real waveform handed to the model around
    each crop as context (`data.crop_context`): what the context network, the
    previous sample and the linear predictor read before it (the lookback, at
    least one column) and after it (the future horizon)."""
    if not config.data.get("crop_context", False):
        return (0, 0)
    m = config.model
    before, _ = linear_prediction.reach(
        int(m.subscale_factor), int(m.future_horizon), int(m.get("lp_order", 0))
    )
    return (max(int(m.lookback), 1, before), int(m.future_horizon))


def _margin_samples(config):
    factor = int(config.model.subscale_factor)
    return tuple(factor * c for c in context_columns(config))


def train_batches(config, utterances, mel_pad):
    """TrainBatches of `config.data` and `config.train`."""
    d, t = config.data, config.train
    return TrainBatches(
        utterances,
        seq_len=d.seq_len,
        batch_size=t.batch_size,
        hop_length=d.hop_length,
        mel_pad=mel_pad,
        seed=t.seed,
        pre_emphasis=float(d.get("pre_emphasis", 0.0)),
        margins=_margin_samples(config),
        input_noise=tuple(t.get("input_noise", (0.0, 0.0))),
        input_noise_start=int(t.get("input_noise_start", 0)),
        consecutive=bool(t.get("carry_state", False)),
    )


def eval_crops_of(config, utterances, mel_pad, max_crops=0):
    """`eval_crops` with the crop length, emphasis and margins of `config`."""
    d = config.data
    return eval_crops(
        utterances,
        seq_len=d.get("eval_seq_len", 0) or d.seq_len,
        hop_length=d.hop_length,
        mel_pad=mel_pad,
        max_crops=max_crops,
        pre_emphasis=float(d.get("pre_emphasis", 0.0)),
        margins=_margin_samples(config),
    )
