r"""Batch size vs quality: Subscale WaveRNN at B = 1 .. 16 against batching baselines.

Trains one model per subscale factor B (and a few future horizons F at B = 16)
with the same hidden size and the same training budget (steps, and samples per
step: crops get longer and batches smaller as B grows, so that every row of a
crop has at least `MIN_COLUMNS` columns), then scores each on held-out clips:

- NLL in bits per sample, teacher-forced (`train.evaluate` on the held-out
  folder, the same crops for every B), and on the clips (`Vocoder.log_prob`);
- vocoding quality of generated speech against the original
  (`subscale/metrics.py`): log-mel distance, MCD, F0 RMSE and voicing
  disagreement, wideband PESQ and STOI when `pesq` / `pystoi` are installed;
- near the seams of a chunked generation and away from them: the seams of
  fold-and-crossfade at N chunks, for every system (the same windows);
- speed: samples per second of every sampler, timed side by side in this run.

Baselines on the same clips: fold-and-crossfade batching with the B = 1 model
at N = 4 and 16 chunks, Griffin-Lim from the same log-mel features, and the
original audio itself (the metrics' ideal values). See `subscale/baselines.py`.

Everything goes under --workdir: `runs/<system>/` (training workdirs, ignored by
git), `audio/` and `spectrograms/` (wavs and PNGs), `cells/` (one JSON per
finished measurement), and the results: `results.jsonl` (one line per system),
`results.md`, `quality_vs_B.png`, `speed_vs_B.png`, `seams.png` and
`report.html` (audio players and spectrograms side by side). A re-run skips
every finished training run and measurement; a run with more --num_steps
resumes the trainings.

Run (from the repository root; the full run trains 7 demo-size models, about
15 minutes each on 2 CPU cores):
  pip install -e '.[experiments]'   # PESQ and STOI (optional)
  python -m experiments.batch_size_vs_quality
  python -m experiments.batch_size_vs_quality --quick --workdir=/tmp/bsq_quick
  python -m experiments.batch_size_vs_quality --eval_dir=/data/other_speakers \
      --base_config.train.num_steps=20000 --workdir=/tmp/bsq_long
"""

import dataclasses
import html
import json
import math
import os
import statistics
import sys
import time
from typing import Any

import jax
import numpy as np
import tqdm
from absl import app
from absl import flags
from absl import logging
from matplotlib import figure
from ml_collections import config_flags

import subscale
from experiments import common
from subscale import audio
from subscale import baselines
from subscale import config_validation
from subscale import input_pipeline
from subscale import metrics
from subscale import models
from subscale import train

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
config_flags.DEFINE_config_file(
    "base_config",
    os.path.join(REPO, "configs", "demo.py"),
    "Config every model starts from (hidden size, data, optimiser, budget).",
    lock_config=True,
)
flags.DEFINE_list("factors", None, "Subscale factors B. [1,2,4,8,16]")
flags.DEFINE_list(
    "horizons", None, "Extra future horizons F at B = 16. [4,64]; quick [4]"
)
flags.DEFINE_integer("future_horizon", 16, "F of every B > 1 in the B sweep.")
flags.DEFINE_integer("lookback", 32, "W of every B > 1.")
flags.DEFINE_integer(
    "num_steps", None, "Training steps per model. [base config's]; quick [10]"
)
flags.DEFINE_string(
    "workdir",
    "experiments/results/batch_size_vs_quality",
    "Root folder for the training runs and the results.",
)
flags.DEFINE_integer("clips", None, "Held-out clips scored. [6]; quick [2]")
flags.DEFINE_float("clip_seconds", None, "Seconds per clip. [2.0]; quick [1.0]")
flags.DEFINE_string(
    "eval_dir", "", "Held-out audio folder (default: the dev split of the corpus)."
)
flags.DEFINE_list("fold_chunks", ["4", "16"], "N of the fold-and-crossfade baseline.")
flags.DEFINE_float("overlap_ms", 25.0, "Fold-and-crossfade overlap (whole frames).")
flags.DEFINE_float("seam_ms", None, "Half-width of a seam window. [50]; quick [20]")
flags.DEFINE_integer("repeats", None, "Timing rounds (median). [3]; quick [1]")
flags.DEFINE_integer("report_clips", 3, "Clips with players in report.html.")
flags.DEFINE_bool(
    "quick",
    False,
    "Tiny models (configs/tiny.py sizes) and short clips: the whole pipeline "
    "in a few minutes.",
)

# Grid columns per training crop at least (B > 1): rows of shorter crops spend
# most of the crop in the zero-state start-up and in the context network's
# zero padding (it reads W + F + 1 = 49 columns at the defaults).
MIN_COLUMNS = 200
GRIFFIN_LIM_ITERS = 32


@dataclasses.dataclass(frozen=True)
class Options:
    """What to run. The defaults are the full experiment; `quick_options` gives
    those of --quick."""

    workdir: str
    factors: tuple = (1, 2, 4, 8, 16)
    horizons: tuple = (4, 64)
    future_horizon: int = 16
    lookback: int = 32
    num_steps: int | None = None  # None: the base config's
    clips: int = 6
    clip_seconds: float = 2.0
    eval_dir: str = ""
    fold_chunks: tuple = (4, 16)
    overlap_ms: float = 25.0
    seam_ms: float = 50.0
    repeats: int = 3
    report_clips: int = 3
    quick: bool = False


QUICK = dict(
    horizons=(4,),
    num_steps=10,
    clips=2,
    clip_seconds=1.0,
    seam_ms=20.0,
    repeats=1,
)


def quick_options(**given):
    """Options of a --quick run; `given` overrides any field."""
    return Options(**{**QUICK, "quick": True, **given})


@dataclasses.dataclass(frozen=True, eq=False)
class System:
    """One column of the comparison.

    Attributes:
      name: short label, also the folder name of its files.
      kind: "model" (a trained Subscale WaveRNN; B = 1 is plain WaveRNN),
        "fold" (fold-and-crossfade with the B = 1 model), "griffin_lim" or
        "original".
      factor: B of a model, N chunks of a fold, else 0.
      horizon: F of a model with B > 1, else 0.
      config: the training config of a model, else None.
    """

    name: str
    kind: str
    factor: int = 0
    horizon: int = 0
    config: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """A held-out clip: samples [f * hop] and mel [f, m] of the whole utterance."""

    name: str
    path: str
    start_frame: int
    samples: np.ndarray
    mel: np.ndarray

    @property
    def spec(self):
        return dict(path=self.path, start_frame=self.start_frame, frames=len(self.mel))


def model_name(factor, horizon):
    return "B1" if factor == 1 else f"B{factor}_F{horizon}"


def base_for(config, options):
    """The base config of the experiment (the tiny sizes in quick mode)."""
    config = config.copy_and_resolve_references()
    if options.quick:
        common.shrink_to_tiny(config)
    if options.num_steps is not None:
        config.train.num_steps = options.num_steps
    if options.quick:
        # One log, eval and checkpoint at the end: the steps are the cheap part.
        steps = config.train.num_steps
        config.train.log_every_steps = steps
        config.train.eval_every_steps = steps
        config.train.checkpoint_every_steps = steps
    if options.eval_dir:
        config.data.eval_dir = options.eval_dir
    if not config.data.cache_dir:
        config.data.cache_dir = os.path.join(options.workdir, "runs", "cache")
    # The same eval crops for every B, so that the NLLs compare.
    if not config.data.eval_seq_len:
        config.data.eval_seq_len = config.data.seq_len * config.train.batch_size
    return config


def model_config(base, factor, horizon, lookback):
    """`base` at subscale factor B with the same samples per training step.

    Crops are k times longer and batches k times smaller, k the smallest divisor
    of the batch size that gives each row MIN_COLUMNS columns (else the batch).
    """
    config = base.copy_and_resolve_references()
    d, t, m = config.data, config.train, config.model
    need = -(-factor * MIN_COLUMNS // d.seq_len)
    k = next(
        (k for k in range(need, t.batch_size + 1) if t.batch_size % k == 0),
        t.batch_size,
    )
    d.seq_len *= k
    t.batch_size //= k
    m.subscale_factor = factor
    m.future_horizon = horizon if factor > 1 else 0
    m.lookback = lookback if factor > 1 else 0
    config_validation.validate(config)
    return config


def make_systems(base, options):
    """Models of the B sweep and the F sweep at B = 16, then the baselines."""
    pairs = [(b, options.future_horizon if b > 1 else 0) for b in options.factors]
    pairs += [(16, f) for f in options.horizons]
    systems = [
        System(
            model_name(b, f), "model", b, f, model_config(base, b, f, options.lookback)
        )
        for b, f in dict.fromkeys(pairs)
    ]
    if 1 in options.factors:
        systems += [System(f"fold{n}", "fold", n) for n in options.fold_chunks]
    else:
        logging.warning("No B = 1 model: the fold-and-crossfade baseline is skipped.")
    systems += [System("griffin_lim", "griffin_lim"), System("original", "original")]
    return systems


def run_dir(options, system):
    return os.path.join(options.workdir, "runs", system.name)


def train_models(systems, options):
    """Trains every model that has no checkpoint at num_steps yet."""
    common.make_runs_folder(options.workdir)
    for system in systems:
        if system.kind != "model":
            continue
        workdir = run_dir(options, system)
        steps = system.config.train.num_steps
        done = common.latest_step(workdir, system.config)
        if done is not None and done >= steps:
            logging.info("%s: reusing %s (step %d).", system.name, workdir, done)
            continue
        logging.info("%s: training to step %d in %s.", system.name, steps, workdir)
        start = time.perf_counter()
        result = train.train_and_evaluate(system.config, workdir)
        logging.info(
            "%s: trained in %.0f s, dev %.4f bits.",
            system.name,
            time.perf_counter() - start,
            result.get("dev_bits", float("nan")),
        )


def load_clips(base, options):
    """Up to `clips` held-out clips, one per utterance, each centred in it."""
    d = base.data
    mel_cfg = audio.MelConfig.from_config(d)
    if options.eval_dir:
        root, splits = options.eval_dir, input_pipeline.SPLITS
    else:
        root, splits = d.train_dir, ("dev",)
    utterances = input_pipeline.load_corpus(
        root,
        mel_cfg,
        dev_fraction=float(d.dev_fraction),
        cache_dir=d.cache_dir,
        splits=splits,
    )
    frames = int(options.clip_seconds * d.sample_rate) // d.hop_length
    long_enough = [u for u in utterances if u.mel.shape[0] >= frames]
    if not long_enough:
        raise subscale.SubscaleError(
            f"{root}: no held-out file of at least {options.clip_seconds} s"
        )
    if len(long_enough) > options.clips:
        keep = np.linspace(0, len(long_enough) - 1, options.clips).round()
        long_enough = [long_enough[int(i)] for i in keep]
    elif len(long_enough) < options.clips:
        logging.warning(
            "Only %d held-out files of at least %.1f s: %d clips, not %d.",
            len(long_enough),
            options.clip_seconds,
            len(long_enough),
            options.clips,
        )
    clips = []
    hop = d.hop_length
    for u in long_enough:
        start = (u.mel.shape[0] - frames) // 2
        path = os.path.relpath(u.path, root)
        # The whole relative path: speakers of a corpus often share file names.
        stem = os.path.splitext(path)[0].replace(os.sep, "-")
        clips.append(
            Clip(
                name=f"{stem}_{start}",
                path=path,
                start_frame=start,
                samples=np.asarray(u.samples[start * hop : (start + frames) * hop]),
                mel=np.asarray(u.mel[start : start + frames]),
            )
        )
    return clips


def overlap_frames(base, options):
    frame_ms = 1e3 * base.data.hop_length / base.data.sample_rate
    return max(1, round(options.overlap_ms / frame_ms))


def seam_masks(num_frames, base, options):
    """{N: (near, away)} bool [f] masks around the fold-and-crossfade seams."""
    hop = base.data.hop_length
    radius = options.seam_ms * 1e-3 * base.data.sample_rate
    masks = {}
    for n in options.fold_chunks:
        _, seams = baselines.chunk_bounds(num_frames, n, overlap_frames(base, options))
        near = metrics.near_mask(num_frames, [s * hop for s in seams], radius, hop)
        masks[n] = (near, ~near)
    return masks


class Reference:
    """The original of a clip, analysed once: waveform, log-mel, F0 track."""

    def __init__(self, clip, base, options):
        d = base.data
        self.mel_cfg = audio.MelConfig.from_config(d)
        self.wave = audio.to_float(clip.samples)
        self.mel = audio.mel(self.wave, self.mel_cfg)
        self.f0 = metrics.f0_track(self.wave, d.sample_rate, d.hop_length)
        self.masks = seam_masks(self.mel.shape[0], base, options)


def score(reference, wave, sample_rate, hop):
    """Every metric of `wave` against the clip's original."""
    est_mel = audio.mel(wave, reference.mel_cfg)
    est_f0 = metrics.f0_track(wave, sample_rate, hop)
    result = dict(
        lmd_db=metrics.log_mel_distance(reference.mel, est_mel),
        mcd_db=metrics.mel_cepstral_distortion(reference.mel, est_mel),
        **metrics.f0_error(reference.f0, est_f0),
        pesq_wb=metrics.pesq_wb(reference.wave, wave, sample_rate),
        stoi=metrics.stoi(reference.wave, wave, sample_rate),
    )
    for n, (near, away) in reference.masks.items():
        for where, mask in (("near", near), ("away", away)):
            result[f"lmd_db_{where}{n}"] = metrics.log_mel_distance(
                reference.mel, est_mel, mask
            )
            result[f"mcd_db_{where}{n}"] = metrics.mel_cepstral_distortion(
                reference.mel, est_mel, mask
            )
    return result


def _clean(value):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path, record):
    common.write_text(path, json.dumps(_clean(record), indent=1) + "\n")


def read_cell(path, key):
    """The stored cell at `path` if it was made for `key`, else None."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            cell = json.load(f)
    except (OSError, ValueError):
        return None
    return cell if cell.get("key") == _clean(key) else None


class Runner:
    """Measures every (system, clip) cell that is not done yet."""

    def __init__(self, base, options, systems, clips):
        self.base = base
        self.options = options
        self.systems = systems
        self.clips = clips
        self.rate = base.data.sample_rate
        self.hop = base.data.hop_length
        self.steps = {
            s.name: common.latest_step(run_dir(options, s), s.config)
            for s in systems
            if s.kind == "model"
        }
        self._vocoders = {}
        self._references = {}
        self.analysis = dict(
            seam_ms=options.seam_ms,
            fold_chunks=list(options.fold_chunks),
            overlap_frames=overlap_frames(base, options),
            mcd_coefficients=metrics.MCD_COEFFICIENTS,
            metrics=metrics.available(),
        )

    def path(self, *parts):
        return os.path.join(self.options.workdir, *parts)

    def vocoder(self, name):
        if name not in self._vocoders:
            self._vocoders[name] = subscale.load(
                run_dir(self.options, self.system(name))
            )
        return self._vocoders[name]

    def system(self, name):
        return next(s for s in self.systems if s.name == name)

    def reference(self, clip):
        if clip.name not in self._references:
            self._references[clip.name] = Reference(clip, self.base, self.options)
        return self._references[clip.name]

    def source_step(self, system):
        """Checkpoint step a system's audio comes from (None: no model)."""
        if system.kind == "model":
            return self.steps[system.name]
        if system.kind == "fold":
            return self.steps["B1"]
        return None

    def cell_key(self, system, clip, seed):
        return dict(
            system=system.name,
            step=self.source_step(system),
            clip=clip.spec,
            seed=seed,
            analysis=self.analysis,
        )

    def generate(self, system, mel, seed):
        """float32 [f * hop] audio of a model or baseline for mel [f, m]."""
        if system.kind == "model":
            return self.vocoder(system.name).generate(mel, seed=seed)
        if system.kind == "fold":
            b1 = self.vocoder("B1")
            wave, _ = baselines.fold_and_crossfade(
                b1.sample_fn,
                b1.params,
                mel,
                jax.random.PRNGKey(seed),
                self.hop,
                system.factor,
                overlap_frames(self.base, self.options),
            )
            return wave
        return baselines.griffin_lim(
            mel,
            audio.MelConfig.from_config(self.base.data),
            n_iter=GRIFFIN_LIM_ITERS,
            seed=seed,
        )

    def measure(self):
        """Runs every missing cell; returns {system: [cell per clip]}."""
        cells = {s.name: [] for s in self.systems}
        todo = [(s, k, c) for s in self.systems for k, c in enumerate(self.clips)]
        for system, seed, clip in tqdm.tqdm(todo, desc="cells", disable=None):
            path = self.path("cells", system.name, clip.name + ".json")
            key = self.cell_key(system, clip, seed)
            cell = read_cell(path, key)
            if cell is None:
                if system.kind == "original":
                    wave = audio.to_float(clip.samples)
                else:
                    wave = self.generate(system, clip.mel, seed)
                wav = self.path("audio", system.name, clip.name + ".wav")
                audio.write_wav(wav, wave, self.rate)
                result = score(self.reference(clip), wave, self.rate, self.hop)
                if system.kind == "model":
                    log_p = self.vocoder(system.name).log_prob(clip.samples, clip.mel)
                    result["clip_nll_bits"] = -float(log_p.mean()) / math.log(2)
                cell = dict(key=key, metrics=result)
                write_json(path, cell)
                logging.info(
                    "%s / %s: log-mel %.2f dB, MCD %.2f dB.",
                    system.name,
                    clip.name,
                    result["lmd_db"],
                    result["mcd_db"],
                )
                png = self.path("spectrograms", system.name, clip.name + ".png")
                if os.path.exists(png):
                    os.remove(png)  # made from an older wav
            cells[system.name].append(cell["metrics"])
        return cells

    def spectrograms(self):
        """Spectrogram PNGs of the report's clips, the original above each system."""
        mel_cfg = audio.MelConfig.from_config(self.base.data)
        for system in self.systems:
            for clip in self.clips[: self.options.report_clips]:
                png = self.path("spectrograms", system.name, clip.name + ".png")
                if os.path.exists(png):
                    continue
                wav = self.path("audio", system.name, clip.name + ".wav")
                wave = audio.load(wav, self.rate)
                original = None
                if system.kind != "original":
                    original = audio.to_float(clip.samples)
                audio.save_spectrogram_png(png, original, wave, mel_cfg)

    def nll(self):
        """{model: teacher-forced held-out NLL in bits/sample} (`train.evaluate`)."""
        result = {}
        for system in self.systems:
            if system.kind != "model":
                continue
            path = self.path("cells", system.name, "nll.json")
            key = dict(
                step=self.steps[system.name],
                eval_dir=system.config.data.eval_dir,
                eval_seq_len=system.config.data.eval_seq_len,
            )
            cell = read_cell(path, key)
            if cell is None:
                logging.info("%s: evaluating the held-out NLL.", system.name)
                evaluated = train.evaluate(system.config, run_dir(self.options, system))
                cell = dict(key=key, metrics=evaluated)
                write_json(path, cell)
            result[system.name] = cell["metrics"]
        return result

    def speed(self):
        """{system: samples/s} of `generate` on the first clip, round-robin.

        Timed on a clip's mel through the same calls as the scored audio, so
        the samplers compiled for the clips are reused.
        """
        clip = self.clips[0]
        timed = [s for s in self.systems if s.kind != "original"]
        path = self.path("cells", "speed.json")
        key = dict(
            systems=[s.name for s in timed],
            steps={s.name: self.source_step(s) for s in timed},
            clip=clip.spec,
            repeats=self.options.repeats,
        )
        cell = read_cell(path, key)
        if cell is not None:
            return cell["metrics"]
        times = {s.name: [] for s in timed}
        for system in timed:
            self.generate(system, clip.mel, 0)  # compile and warm up
        for _ in tqdm.trange(self.options.repeats, desc="speed", disable=None):
            for system in timed:
                start = time.perf_counter()
                self.generate(system, clip.mel, 0)
                times[system.name].append(time.perf_counter() - start)
        samples = clip.samples.shape[0]
        result = {name: samples / statistics.median(ts) for name, ts in times.items()}
        write_json(path, dict(key=key, metrics=result))
        return result


def _mean(cells, name):
    values = [c[name] for c in cells if c.get(name) is not None]
    return float(np.mean(values)) if values else None


def summarize(runner, cells, nll, speed, options):
    """One record per system: means over the clips, NLL, speed, sizes."""
    clip_set = options.eval_dir or f"{runner.base.data.train_dir} (dev split)"
    records = []
    names = sorted({k for c in sum(cells.values(), []) for k in c})
    for system in runner.systems:
        record = dict(
            system=system.name,
            kind=system.kind,
            subscale_factor=system.factor if system.kind == "model" else None,
            future_horizon=system.horizon if system.kind == "model" else None,
            num_chunks=system.factor if system.kind == "fold" else None,
            clip_set=clip_set,
            clips=len(cells[system.name]),
            clip_seconds=options.clip_seconds,
        )
        if system.kind in ("model", "fold"):
            config = (system if system.kind == "model" else runner.system("B1")).config
            vocoder = runner.vocoder("B1" if system.kind == "fold" else system.name)
            record.update(
                hidden_size=config.model.hidden_size,
                params=models.param_count(vocoder.params),
                train_steps=runner.source_step(system),
                train_samples_per_step=config.data.seq_len * config.train.batch_size,
                train_seq_len=config.data.seq_len,
            )
        if system.kind == "model":
            record["nll_bits"] = nll[system.name]["eval_bits"]
            record["nll_samples"] = nll[system.name]["samples"]
        for name in names:
            if name == "voiced_frames":
                record[name] = int(sum(c[name] for c in cells[system.name]))
            else:
                record[name] = _mean(cells[system.name], name)
        if system.name in speed:
            record["samples_per_second"] = speed[system.name]
            record["real_time_factor"] = speed[system.name] / runner.rate
        records.append(_clean(record))
    return records


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown(records, options, command):
    """results.md: provenance, the main table and the seam table."""
    optional = ", ".join(
        f"{name} {'yes' if ok else 'not installed'}"
        for name, ok in metrics.available().items()
    )
    lines = [
        "# Batch size vs quality",
        "",
        *common.provenance(command),
        f"- Clips: {records[0]['clips']} x {options.clip_seconds} s from "
        f"{records[0]['clip_set']}. Metrics: `subscale/metrics.py` ({optional}).",
        "- NLL: teacher-forced on every held-out crop (`train.evaluate`), bits "
        "per 16-bit sample. Speed: generating the first clip, median of "
        f"{options.repeats} round-robin rounds in this run.",
        "",
        "| system | B / N | F | params | NLL (bits) | log-mel (dB) | MCD (dB) "
        "| F0 RMSE (cents) | voicing err | PESQ wb | STOI | samples/s | x real time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        bn = r["subscale_factor"] or r["num_chunks"]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["system"],
                    _fmt(bn),
                    _fmt(r["future_horizon"]),
                    _fmt(r.get("params")),
                    _fmt(r.get("nll_bits"), 3),
                    _fmt(r.get("lmd_db")),
                    _fmt(r.get("mcd_db")),
                    _fmt(r.get("f0_rmse_cents"), 0),
                    _fmt(r.get("voicing_disagreement"), 3),
                    _fmt(r.get("pesq_wb")),
                    _fmt(r.get("stoi"), 3),
                    _fmt(r.get("samples_per_second"), 0),
                    _fmt(r.get("real_time_factor"), 3),
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"Near and away from the seams: frames within {options.seam_ms:g} ms of a "
        "seam of fold-and-crossfade at N chunks (overlap "
        f"{options.overlap_ms:g} ms), and all other frames; the same windows for "
        "every system.",
        "",
    ]
    header = ["system"]
    for n in options.fold_chunks:
        header += [
            f"log-mel near N={n}",
            f"log-mel away N={n}",
            f"MCD near N={n}",
            f"MCD away N={n}",
        ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in records:
        row = [r["system"]]
        for n in options.fold_chunks:
            row += [
                _fmt(r.get(f"lmd_db_near{n}")),
                _fmt(r.get(f"lmd_db_away{n}")),
                _fmt(r.get(f"mcd_db_near{n}")),
                _fmt(r.get(f"mcd_db_away{n}")),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path):
    audio.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _nan(value):
    return np.nan if value is None else value


def _log2_axis(ax, ticks, label):
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(ticks) / 1.5, max(ticks) * 1.5)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(label)


# Baseline line colours, apart from the default cycle of the model markers.
_BASELINE_COLORS = ("tab:red", "tab:brown", "tab:pink", "tab:gray", "tab:olive")


def plot_quality(records, path, sweep_horizon):
    """Quality vs B: one panel per metric, baselines as horizontal lines."""
    panels = [
        ("nll_bits", "NLL (bits/sample)"),
        ("lmd_db", "log-mel distance (dB)"),
        ("mcd_db", "MCD (dB)"),
        ("f0_rmse_cents", "F0 RMSE (cents)"),
        ("pesq_wb", "PESQ wb"),
        ("stoi", "STOI"),
    ]
    compared = [r for r in records if r["kind"] != "original"]
    panels = [p for p in panels if any(r.get(p[0]) is not None for r in compared)]
    fig = figure.Figure(figsize=(3.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    model_rows = [r for r in records if r["kind"] == "model"]
    sweep = sorted(
        (
            r
            for r in model_rows
            if r["subscale_factor"] == 1 or r["future_horizon"] == sweep_horizon
        ),
        key=lambda r: r["subscale_factor"],
    )
    others = [r for r in model_rows if r not in sweep]
    baseline_rows = [r for r in records if r["kind"] in ("fold", "griffin_lim")]
    factors = sorted({r["subscale_factor"] for r in model_rows})
    for ax, (name, label) in zip(axes, panels):
        ax.plot(
            [r["subscale_factor"] for r in sweep],
            [_nan(r.get(name)) for r in sweep],
            "o-",
            label=f"Subscale WaveRNN (F = {sweep_horizon})",
        )
        for r in others:
            ax.plot(r["subscale_factor"], _nan(r.get(name)), "s", label=r["system"])
        for r, color in zip(baseline_rows, _BASELINE_COLORS):
            if r.get(name) is not None:
                ax.axhline(r[name], linestyle="--", color=color, label=r["system"])
        _log2_axis(ax, factors, "subscale factor B")
        ax.set_title(label)
    handles = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(len(handles), 6),
    )
    _save_figure(fig, path)


def plot_speed(records, path, sample_rate):
    """Samples/s vs B (models) and N (fold-and-crossfade), log scales."""
    fig = figure.Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    timed = [r for r in records if r.get("samples_per_second")]
    for kind, marker, label in (
        ("model", "o", "Subscale WaveRNN, B (every F)"),
        ("fold", "^", "fold-and-crossfade with B = 1, N chunks"),
    ):
        rows = [r for r in timed if r["kind"] == kind]
        ax.plot(
            [r["subscale_factor"] or r["num_chunks"] for r in rows],
            [r["samples_per_second"] for r in rows],
            marker,
            label=label,
        )
    for r in timed:
        if r["kind"] == "griffin_lim":
            ax.axhline(
                r["samples_per_second"],
                linestyle="--",
                color="tab:gray",
                label="Griffin-Lim",
            )
    ax.axhline(sample_rate, linestyle=":", color="black", label="real time")
    ticks = sorted(
        {
            r["subscale_factor"] or r["num_chunks"]
            for r in timed
            if r["kind"] != "griffin_lim"
        }
    )
    _log2_axis(ax, ticks, "samples per step (B, or N chunks)")
    ax.set_yscale("log")
    ax.set_ylabel("samples / s")
    ax.legend(fontsize="small")
    _save_figure(fig, path)


def plot_seams(records, path, fold_chunks):
    """Log-mel distance near vs away from the seams, per system and N."""
    rows = [r for r in records if r["kind"] != "original"]
    fig = figure.Figure(
        figsize=(max(6, 1.1 * len(rows)), 3.2 * len(fold_chunks)), layout="constrained"
    )
    axes = fig.subplots(len(fold_chunks), 1, squeeze=False)[:, 0]
    x = np.arange(len(rows))
    for ax, n in zip(axes, fold_chunks):
        near = [_nan(r.get(f"lmd_db_near{n}")) for r in rows]
        away = [_nan(r.get(f"lmd_db_away{n}")) for r in rows]
        ax.bar(x - 0.2, near, 0.4, label="near the seams")
        ax.bar(x + 0.2, away, 0.4, label="away from them")
        ax.set_xticks(x, [r["system"] for r in rows], rotation=30)
        ax.set_ylabel("log-mel distance (dB)")
        ax.set_title(f"Windows around the seams of fold-and-crossfade at N = {n}")
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2
    )
    _save_figure(fig, path)


def report_html(records, runner, options):
    """A static page: metrics table, then players and spectrograms per clip."""
    clips = runner.clips[: options.report_clips]
    names = [r["system"] for r in records]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Batch size vs quality</title>",
        "<style>body{font-family:sans-serif} td,th{padding:4px;"
        "vertical-align:top;border:1px solid #ccc} img{width:320px}"
        " table{border-collapse:collapse}</style></head><body>",
        "<h1>Batch size vs quality</h1>",
        "<p>Tables: <a href='results.md'>results.md</a>, "
        "<a href='results.jsonl'>results.jsonl</a>.</p>",
        "<p><img src='quality_vs_B.png' style='width:100%'></p>",
        "<p><img src='speed_vs_B.png' style='width:45%'> "
        "<img src='seams.png' style='width:45%'></p>",
    ]
    summary = [
        ("NLL bits", "nll_bits", 3),
        ("log-mel dB", "lmd_db", 2),
        ("MCD dB", "mcd_db", 2),
        ("PESQ", "pesq_wb", 2),
        ("STOI", "stoi", 3),
        ("x real time", "real_time_factor", 3),
    ]
    parts.append(f"<table><tr><th></th>{head}</tr>")
    for label, name, digits in summary:
        cells = "".join(f"<td>{_fmt(r.get(name), digits)}</td>" for r in records)
        parts.append(f"<tr><th>{label}</th>{cells}</tr>")
    parts.append("</table>")
    for clip in clips:
        parts.append(f"<h2>{html.escape(clip.name)}</h2>")
        parts.append(f"<p>{html.escape(clip.path)}, from frame {clip.start_frame}</p>")
        parts.append(f"<table><tr>{head}</tr><tr>")
        for name in names:
            wav = f"audio/{name}/{clip.name}.wav"
            png = f"spectrograms/{name}/{clip.name}.png"
            parts.append(
                f"<td><audio controls preload='none' src='{html.escape(wav)}'>"
                f"</audio><br><img src='{html.escape(png)}'></td>"
            )
        parts.append("</tr></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def run(base_config, options, command=""):
    """The whole experiment; returns the summary records (one per system)."""
    logging.info("Optional metrics available: %s.", metrics.available())
    for name, ok in metrics.available().items():
        if not ok:
            logging.warning(
                "%s is not installed: its metric is skipped "
                "(pip install -e '.[experiments]').",
                name,
            )
    base = base_for(base_config, options)
    systems = make_systems(base, options)
    logging.info("Systems: %s.", ", ".join(s.name for s in systems))
    train_models(systems, options)
    clips = load_clips(base, options)
    logging.info("Clips: %s.", ", ".join(c.name for c in clips))
    runner = Runner(base, options, systems, clips)
    nll = runner.nll()
    cells = runner.measure()
    runner.spectrograms()
    speed = runner.speed()
    records = summarize(runner, cells, nll, speed, options)
    root = options.workdir
    common.write_text(
        os.path.join(root, "results.jsonl"),
        "".join(json.dumps(r) + "\n" for r in records),
    )
    table = markdown(records, options, command)
    common.write_text(os.path.join(root, "results.md"), table)
    plot_quality(
        records, os.path.join(root, "quality_vs_B.png"), options.future_horizon
    )
    plot_speed(records, os.path.join(root, "speed_vs_B.png"), runner.rate)
    plot_seams(records, os.path.join(root, "seams.png"), options.fold_chunks)
    common.write_text(
        os.path.join(root, "report.html"), report_html(records, runner, options)
    )
    print(table, flush=True)
    return records


def _ints(values):
    return None if values is None else tuple(int(v) for v in values)


def options_from_flags():
    """Options from the flags; flags left unset take the full or quick default."""
    given = dict(
        workdir=FLAGS.workdir,
        future_horizon=FLAGS.future_horizon,
        lookback=FLAGS.lookback,
        eval_dir=FLAGS.eval_dir,
        fold_chunks=_ints(FLAGS.fold_chunks),
        overlap_ms=FLAGS.overlap_ms,
        report_clips=FLAGS.report_clips,
        factors=_ints(FLAGS.factors),
        horizons=_ints(FLAGS.horizons),
        num_steps=FLAGS.num_steps,
        clips=FLAGS.clips,
        clip_seconds=FLAGS.clip_seconds,
        seam_ms=FLAGS.seam_ms,
        repeats=FLAGS.repeats,
    )
    given = {k: v for k, v in given.items() if v is not None}
    return quick_options(**given) if FLAGS.quick else Options(**given)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    command = " ".join(["python -m experiments.batch_size_vs_quality"] + sys.argv[1:])
    run(FLAGS.base_config, options_from_flags(), command=command)


if __name__ == "__main__":
    app.run(main)
