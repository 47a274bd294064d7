"""The held-out clips, and every metric of a generated waveform against one."""

import dataclasses
import os

import numpy as np
from absl import logging

import subscale
from subscale import audio
from subscale import baselines
from subscale import input_pipeline
from subscale import metrics


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    """A held-out clip: samples [f * hop] and mel [f, m] of the whole utterance.

    Attributes:
      name: file stem of its outputs (the path in the corpus and the start).
      path: the utterance's path relative to the corpus.
      start_frame: where the clip starts in the utterance.
      samples: int16 [f * hop].
      mel: float32 [f, m].
    """

    name: str
    path: str
    start_frame: int
    samples: np.ndarray
    mel: np.ndarray

    @property
    def spec(self):
        return dict(path=self.path, start_frame=self.start_frame, frames=len(self.mel))


def clip_set(base, options):
    """Where `load_clips` takes the clips from, named without the machine's
    folders."""
    if options.eval_dir:
        return input_pipeline.display_path(options.eval_dir)
    return f"{input_pipeline.display_path(base.data.train_dir)} (dev split)"


def load_clips(base, options):
    """Up to `clips` held-out clips, one per utterance, each centred in it."""
    d = base.data
    mel_cfg = audio.MelConfig.from_config(d)
    if options.eval_dir:
        root, splits = options.eval_dir, input_pipeline.SPLITS
    else:
        root, splits = d.train_dir, ("dev",)
    root = input_pipeline.resolve_corpus(root)
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
    # A manifest names files relative to its own folder.
    folder = root if os.path.isdir(root) else os.path.dirname(root)
    for u in long_enough:
        start = (u.mel.shape[0] - frames) // 2
        path = os.path.relpath(u.path, folder)
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
    """The fold-and-crossfade overlap in whole frames (at least one)."""
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
