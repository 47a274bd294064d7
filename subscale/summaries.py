"""TensorBoard event files of a training run, beside its `metrics.jsonl`.

`tensorboard --logdir=WORKDIR` shows what the run logs (`train.tensorboard`,
on by default):

- scalars `train/*` at every log step: `loss_bits`, `grad_norm`,
  `learning_rate`, `steps_per_second`, `samples_per_second` (training samples:
  steps per second x `train.batch_size` x `data.seq_len`) and `skipped`;
- scalars `dev/*` at every evaluation: the dev NLL `bits` with its parts
  (`coarse_bits`, `fine_bits`, `row0_bits`, `rows_bits`, `edge_bits`,
  `middle_bits`) and the free-running metrics of the `train.eval_clips` clips
  (`log_mel_db`, `loudness_corr`, `quiet_excess_db`, `stoi`, `pesq`);
- audio `dev_clips/NAME/audio` and images `dev_clips/NAME/spectrogram` at
  every evaluation: each of those clips as vocoded, and its spectrogram under
  the original's; `vocoded/NAME/...` the same for the clip of
  `train.vocode_every_steps`.

The writer is tensorboardX: numpy and protobuf, no TensorFlow. (Flax's
`flax.metrics.tensorboard` imports TensorFlow, clu's metric writers TensorFlow
or PyTorch; see docs/design.md, "TensorBoard".)
"""

import time

import tensorboardX

from subscale import audio
from subscale import plots

# Keys of a metrics.jsonl training line written as `train/KEY` scalars.
TRAIN_KEYS = ("loss_bits", "grad_norm", "learning_rate", "steps_per_second", "skipped")


class Writer:
    """Writes one run's summaries, or nothing when disabled."""

    def __init__(self, workdir, config, step, enabled=True):
        """Opens an event file in `workdir`.

        Args:
          workdir: the run's folder (TensorBoard's --logdir).
          config: the run's config (`train.tensorboard` turns this off; the
            batch shape gives the samples per step; the mel fields the
            spectrograms).
          step: the step the run starts at; a resumed run hides the events a
            killed run wrote after it, as `metrics.jsonl` drops its lines.
          enabled: False for a process that writes no files (all but process 0).
        """
        self._writer = None
        self._samples_per_step = int(config.train.batch_size * config.data.seq_len)
        self._sample_rate = int(config.data.sample_rate)
        if not enabled or not config.train.get("tensorboard", True):
            return
        # The file name holds the time in seconds; a run resumed in the same
        # second would overwrite the last one's file without a finer suffix.
        self._writer = tensorboardX.SummaryWriter(
            workdir,
            purge_step=step + 1 if step else None,
            flush_secs=30,
            filename_suffix=f".{time.time_ns()}",
        )

    def train(self, record):
        """Scalars of a training line of metrics.jsonl (a dict with `step`)."""
        if self._writer is None:
            return
        step = record["step"]
        for key in TRAIN_KEYS:
            if key in record:
                self._writer.add_scalar(f"train/{key}", record[key], step)
        if "steps_per_second" in record:
            samples = record["steps_per_second"] * self._samples_per_step
            self._writer.add_scalar("train/samples_per_second", samples, step)

    def evaluation(self, step, record, clip_list, generated, mel_cfg):
        """The periodic evaluation: its `dev_*` scalars (as `dev/*`), and each
        free-running clip as audio and as a spectrogram image.

        Args:
          step: the training step.
          record: the evaluation's metrics.jsonl line, without `step`.
          clip_list: the clips, from `evaluation.clips`.
          generated: their vocoded float waveforms.
          mel_cfg: audio.MelConfig of the spectrograms.
        """
        if self._writer is None:
            return
        for key, value in record.items():
            if key.startswith("dev_") and isinstance(value, (int, float)):
                self._writer.add_scalar(f"dev/{key[len('dev_') :]}", value, step)
        for (name, samples, _), wave in zip(clip_list, generated, strict=True):
            original = audio.to_float(samples)
            self.clip(step, f"dev_clips/{name}", original, wave, mel_cfg)

    def clip(self, step, tag, original, generated, mel_cfg):
        """`generated` (float [t]) as audio `TAG/audio`, and its spectrogram
        under that of `original` (float [t] or None) as image
        `TAG/spectrogram` (TensorBoard shows one kind of data per tag)."""
        if self._writer is None:
            return
        rate = self._sample_rate
        self._writer.add_audio(f"{tag}/audio", generated, step, sample_rate=rate)
        pixels = plots.spectrogram_pixels(original, generated, mel_cfg)
        self._writer.add_image(f"{tag}/spectrogram", pixels, step, dataformats="HWC")

    def close(self):
        if self._writer is not None:
            self._writer.close()
