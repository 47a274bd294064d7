"""Evaluation: teacher-forced NLL with its breakdown, and free-running quality.

Notation: b crops, t samples per crop, B subscale factor, n = t / B columns.

A vocoder is judged by what it generates, not only by how well it predicts
the next sample of real audio: a model with a good NLL can still free-run into
noise. So an evaluation reports both, on held-out data (the dev split, or
every file of `data.eval_dir`):

- NLL in bits per sample on fixed crops (`input_pipeline.eval_crops`), split
  into its coarse and fine parts, into subscale row 0 and the other rows
  (B > 1), and into the columns near the crop edges and the middle;
  `mel_gain_bits` is how much worse the NLL gets when every crop is
  conditioned on another crop's mel (how much the model uses its mel).
- Free-running quality on `eval_clips` fixed clips (the first
  `eval_clip_seconds` of utterances spread over the split), vocoded from their
  own mel with the config's sampling settings: log-mel distance, loudness
  correlation and quiet-frame excess (`metrics.py`), STOI, and PESQ when the
  optional `pesq` package is installed.

Every quantity is a sum on the device and a division on the host, so the
numbers do not depend on the batch size.
"""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from subscale import audio
from subscale import checkpointing
from subscale import files
from subscale import input_pipeline
from subscale import metrics
from subscale import models
from subscale import sampling

LN2 = math.log(2.0)
# Keys of `nll_sums`, divided by the count of the same prefix on the host.
_PARTS = ("coarse", "fine", "row0", "rows", "edge", "middle")


def edge_columns(cfg, columns):
    """Columns at each end of a crop counted as "near the edge": the future
    horizon plus one (where B > 1 crops are told about missing context), at
    least a twentieth of the crop."""
    return max(cfg.future_horizon + 1, columns // 20, 1)


def row_zero(length, factor):
    """[length] bool: the folded time steps of row 0 (sub-sequence 0), the one
    drawn first, from the mel and the distant past alone."""
    return jnp.arange(length) % factor == 0


def sum_over_crops(sums, params, crops, batch_size, shard=None, maxima=()):
    """Adds up the scalars that `sums(params, batch)` (jitted) returns over the
    batches of `crops` (from `input_pipeline.eval_crops`); keys in `maxima`
    keep the largest value instead. Returns a dict of floats."""
    totals = {}
    for batch in input_pipeline.batched(crops, batch_size):
        values = sums(params, shard(batch) if shard else batch)
        for key, value in jax.device_get(values).items():
            if key in maxima:
                totals[key] = max(totals.get(key, -math.inf), float(value))
            else:
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def nll_sums(model, params, batch, margins=(0, 0), other_mel=False):
    """Sums of NLL bits over a batch, by part, and the sample counts.

    Args:
      model: a `models.SubscaleWaveRNN`.
      params: its parameters.
      batch: dict(samples int16 [b, t], mel, weights float32 [b], and
        optionally inputs, see `models.SubscaleWaveRNN.__call__`).
      margins: context columns (left, right) in `batch["inputs"]`, static.
      other_mel: condition crop k on crop k - 1's mel (the mel-use probe).

    Returns:
      dict of scalars: `bits` and `count` (all samples), `worst_bits` (the
      costliest sample) and `over16_count` (samples costing over 16 bits, worse
      than a uniform guess), and `<part>_bits`, `<part>_count` for each part
      of `_PARTS`.
    """
    cfg = model.cfg
    mel = jnp.roll(batch["mel"], 1, axis=0) if other_mel else batch["mel"]
    log_c, log_f = models.apply_to_batch(
        model, params, batch, margins, "log_probs", mel=mel
    )
    b, t = log_c.shape
    weights = batch["weights"][:, None]
    factor = cfg.subscale_factor
    columns = t // factor
    time = jnp.arange(t)
    column = time // factor
    edge_width = edge_columns(cfg, columns)
    edge = (column < edge_width) | (column >= columns - edge_width)
    bits_c = -log_c * weights / LN2
    bits_f = -log_f * weights / LN2
    total = bits_c + bits_f
    masks = dict(
        coarse=None,
        fine=None,
        row0=row_zero(t, factor),
        rows=~row_zero(t, factor),
        edge=edge,
        middle=~edge,
    )
    counted = weights > 0
    out = dict(
        bits=total.sum(),
        count=weights.sum() * t,
        worst_bits=jnp.max(jnp.where(counted, total / jnp.maximum(weights, 1e-9), 0.0)),
        over16_count=jnp.sum((total > 16.0 * weights) & counted),
    )
    for part, mask in masks.items():
        if part == "coarse":
            out["coarse_bits"] = bits_c.sum()
            out["coarse_count"] = out["count"]
        elif part == "fine":
            out["fine_bits"] = bits_f.sum()
            out["fine_count"] = out["count"]
        else:
            out[f"{part}_bits"] = (total * mask).sum()
            out[f"{part}_count"] = weights.sum() * mask.sum()
    return out


class NllEvaluator:
    """The jitted `nll_sums` of one model over fixed eval crops."""

    def __init__(self, model, margins, batch_size, shard=None):
        self.margins = tuple(margins)
        self.batch_size = batch_size
        self.shard = shard  # None: batches as they are (`sum_over_crops`)
        self._sums = jax.jit(
            functools.partial(nll_sums, model, margins=self.margins),
            static_argnames="other_mel",
        )

    def __call__(self, params, crops, other_mel=False):
        """NLL of `crops` (dict from `input_pipeline.eval_crops`) in bits/sample.

        Returns:
          dict(bits, samples, worst_bits (the costliest sample), over16_share
          (the share of samples costing over 16 bits), and `<part>_bits` for
          each part; parts that do not occur, like the other rows at B = 1,
          are left out).
        """
        totals = sum_over_crops(
            functools.partial(self._sums, other_mel=other_mel),
            params,
            crops,
            self.batch_size,
            self.shard,
            maxima=("worst_bits",),
        )
        result = dict(
            bits=totals["bits"] / totals["count"],
            samples=int(totals["count"]),
            worst_bits=totals["worst_bits"],
            over16_share=totals["over16_count"] / totals["count"],
        )
        for part in _PARTS:
            if totals[f"{part}_count"] > 0:
                result[f"{part}_bits"] = (
                    totals[f"{part}_bits"] / totals[f"{part}_count"]
                )
        return result


def clip_picks(utterances, count):
    """The indices of the utterances that `clips` takes, in order."""
    if count <= 0 or not utterances:
        return np.zeros((0,), int)
    return np.unique(np.linspace(0, len(utterances) - 1, count).round().astype(int))


def clip_voices(config, utterances, count):
    """Whose voice each clip of `clips(utterances, count, ...)` is
    (`input_pipeline.voices` of the held-out corpus)."""
    paths = [utterances[i].path for i in clip_picks(utterances, count)]
    d = config.data
    return input_pipeline.voices(paths, d.eval_dir or d.train_dir)


def clips(utterances, count, seconds, hop_length, sample_rate):
    """The fixed free-running clips: the first `seconds` of `count` utterances
    spread evenly over the list (all of them when fewer).

    Returns:
      [(name, int16 samples [frames * hop], mel [frames, n_mels])].
    """
    frames = max(1, int(seconds * sample_rate) // hop_length)
    out = []
    for index in clip_picks(utterances, count):
        u = utterances[index]
        mel = u.mel[:frames]
        name = os.path.splitext(os.path.basename(u.path))[0]
        out.append((name, u.samples[: mel.shape[0] * hop_length], mel))
    return out


def free_running(model_cfg, params, clip_list, mel_cfg, sampling_config, seed=0):
    """Vocodes each clip from its own mel and scores it against the original.

    Args:
      model_cfg: models.ModelConfig.
      params: the parameters (pruned weights are exact zeros, so a sparse model
        is sampled densely here: the same samples, without the speed-up).
      clip_list: from `clips`.
      mel_cfg: audio.MelConfig of the model's features.
      sampling_config: `config.sampling` (noise kind, temperatures, floor).
      seed: clip n is drawn with fold_in(PRNGKey(seed), n).

    Returns:
      (dict of the metrics' means over the clips, [generated float32 waveforms]);
      STOI and PESQ are left out when they cannot be computed.
    """
    if not clip_list:
        return {}, []
    hop = model_cfg.hop_length
    sample_fn = cached_sample_fn(model_cfg, sampling_config.noise)
    lengths = np.array([mel.shape[0] for _, _, mel in clip_list], np.int32)
    mels = np.full(
        (len(clip_list), lengths.max(), model_cfg.n_mels),
        audio.LOG_MEL_FLOOR,
        np.float32,
    )
    for n, (_, _, mel) in enumerate(clip_list):
        mels[n, : mel.shape[0]] = mel
    out = np.asarray(
        sample_fn(
            params,
            mels,
            jax.random.PRNGKey(seed),
            lengths,
            **shaping_kwargs(sampling_config),
        )
    )
    generated = [
        audio.to_float(out[n, : samples.shape[0]])
        for n, (_, samples, _) in enumerate(clip_list)
    ]
    return score_clips(clip_list, generated, mel_cfg, hop), generated


def score_clips(clip_list, generated, mel_cfg, hop):
    """The free-running metrics of `generated` audio against its clips.

    Args:
      clip_list: from `clips`: (name, int16 samples, log-mel) each.
      generated: one float waveform per clip, at least as long as its clip
        (a vocoder's output, or another system's such as Griffin-Lim).
      mel_cfg: audio.MelConfig of the clips' features.
      hop: samples per mel frame.

    Returns:
      Means over the clips: log_mel_db, bias_low_db, bias_mid_db and
      bias_high_db (`metrics.band_bias_db`), loudness_corr, quiet_excess_db,
      stoi, pesq (a metric is left out when no clip could compute it).
    """
    scores = []
    for (_, samples, mel), est in zip(clip_list, generated, strict=True):
        ref = audio.to_float(samples)
        est = np.asarray(est[: samples.shape[0]], np.float32)
        est_mel = audio.mel(est, mel_cfg)
        bias = metrics.band_bias_db(mel, est_mel)
        scores.append(
            dict(
                log_mel_db=metrics.log_mel_distance(mel, est_mel),
                **{f"bias_{band}_db": bias[band] for band in metrics.BAND_THIRDS},
                loudness_corr=metrics.loudness_correlation(ref, est, hop),
                quiet_excess_db=metrics.quiet_excess_db(ref, est, hop),
                stoi=metrics.stoi(ref, est, mel_cfg.sample_rate),
                pesq=metrics.pesq_wb(ref, est, mel_cfg.sample_rate),
            )
        )
    means = {}
    for key in scores[0] if scores else ():
        values = [s[key] for s in scores if s[key] is not None and np.isfinite(s[key])]
        if values:
            means[key] = float(np.mean(values))
    return means


@functools.lru_cache(maxsize=8)
def cached_sample_fn(model_cfg, noise):
    """One jitted sampler per model shape: periodic evaluations compile once."""
    return sampling.make_sample_fn(model_cfg, noise=noise)


def coarse_temperature(sampling_config):
    """`sampling.coarse_temperature`, None when 0 (= the fine temperature)."""
    value = float(sampling_config.get("coarse_temperature", 0.0))
    return value or None


def shaping_kwargs(sampling_config):
    """The `sample_fn` keyword arguments of `config.sampling`."""
    return dict(
        temperature=float(sampling_config.temperature),
        coarse_temperature=coarse_temperature(sampling_config),
        prob_floor=float(sampling_config.get("prob_floor", 0.0)),
        voiced_temperature=float(sampling_config.get("voiced_temperature", 0.0))
        or None,
    )


def data_label(config):
    """How the evaluated data is named in results, without the machine's
    folders: the eval folder, or the corpus with "(dev split)"."""
    d = config.data
    if d.eval_dir:
        return input_pipeline.display_path(d.eval_dir)
    return f"{input_pipeline.display_path(d.train_dir)} (dev split)"


def free_running_scores(config, params, utterances, by_voice=False, seed=0):
    """`clips`, `clip_seconds` and the `free_running` metrics of the
    config's `train.eval_clips` clips of `utterances`, sampled as
    `config.sampling` says (clip n with fold_in(PRNGKey(seed), n)); with
    `by_voice`, also `by_voice`: {voice: the metrics of that voice's clips and
    their count `clips`} (`input_pipeline.voices` of the held-out corpus)."""
    t, d = config.train, config.data
    count = int(t.get("eval_clips", 0))
    seconds = float(t.get("eval_clip_seconds", 2.0))
    clip_list = clips(utterances, count, seconds, d.hop_length, d.sample_rate)
    mel_cfg = audio.MelConfig.from_config(d)
    scores, generated = free_running(
        models.ModelConfig.from_config(config),
        params,
        clip_list,
        mel_cfg,
        config.sampling,
        seed,
    )
    result = dict(clips=len(clip_list), clip_seconds=seconds, **scores)
    if by_voice:
        groups = {}
        voices = clip_voices(config, utterances, count)
        for clip, wave, voice in zip(clip_list, generated, voices, strict=True):
            groups.setdefault(voice, []).append((clip, wave))
        result["by_voice"] = {}
        for voice, pairs in sorted(groups.items()):
            clip_group, waves = zip(*pairs, strict=True)
            result["by_voice"][voice] = dict(
                clips=len(pairs),
                **score_clips(clip_group, waves, mel_cfg, d.hop_length),
            )
    return result


def evaluate(
    config,
    workdir,
    params=None,
    step=None,
    write=True,
    max_crops=0,
    utterances=None,
    seed=0,
    by_voice=False,
):
    """Scores the newest checkpoint in `workdir` (or `params`) on held-out data:
    `utterances`, or `input_pipeline.eval_utterances` when None; the clips are
    drawn with `seed` (`free_running`), and with `by_voice` also scored voice
    by voice (`free_running_scores`).

    Prints one JSON line and writes it to `workdir/eval.json` (unless not
    `write`): `step`,
    `eval_bits` (NLL in bits per sample on every eval crop, or on `max_crops`
    evenly spaced ones when > 0), `eval_nats`,
    `samples`, `data`, `worst_bits` (the costliest sample) and `over16_share`
    (the share of samples costing over 16 bits), the NLL parts
    (`coarse_bits`, `fine_bits`, `row0_bits` and `rows_bits` for B > 1,
    `edge_bits`, `middle_bits`), `mel_gain_bits`
    (NLL with another crop's mel minus NLL with its own) and
    `other_mel_worst_bits`, `clips` and `clip_seconds`, and the free-running
    means over the clips (`log_mel_db`, `bias_low_db`, `bias_mid_db`,
    `bias_high_db`, `loudness_corr`, `quiet_excess_db`, `stoi`, `pesq` when
    available).

    Returns:
      The result dict.
    """
    if params is None:
        _, params, _, step = checkpointing.restore_params(workdir, config)
    model_cfg = models.ModelConfig.from_config(config)
    model = models.SubscaleWaveRNN(model_cfg)
    if utterances is None:
        utterances = input_pipeline.eval_utterances(config, workdir)
    crops = input_pipeline.eval_crops_of(config, utterances, models.MEL_PAD, max_crops)
    nll = NllEvaluator(
        model, input_pipeline.context_columns(config), config.train.batch_size
    )
    own = nll(params, crops)
    result = dict(
        step=step,
        eval_bits=own["bits"],
        eval_nats=own["bits"] * LN2,
        samples=own["samples"],
        data=data_label(config),
    )
    result.update({k: v for k, v in own.items() if k not in ("bits", "samples")})
    if len(crops["samples"]) > 1:
        other = nll(params, crops, other_mel=True)
        result["mel_gain_bits"] = other["bits"] - own["bits"]
        result["other_mel_worst_bits"] = other["worst_bits"]
    result.update(
        free_running_scores(config, params, utterances, by_voice=by_voice, seed=seed)
    )
    line = json.dumps(result)
    print(line, flush=True)
    if write and jax.process_index() == 0:
        files.write_text(os.path.join(workdir, "eval.json"), line + "\n")
    return result
