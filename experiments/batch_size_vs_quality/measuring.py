"""Every system on every clip: audio, metrics, NLL and speed, resumable.

Each finished measurement is a cell under `<workdir>/cells/`: a JSON file with
the key it was made for (system, checkpoint step, clip, seed and analysis
settings) and its result, plus the wav it scored. A re-run reuses every cell
whose key still matches, so only what changed is measured again.
"""

import math
import os
import shutil
import statistics
import time

import jax
import tqdm
from absl import logging

import subscale
from experiments import common
from experiments.batch_size_vs_quality import scoring
from experiments.batch_size_vs_quality import systems as systems_lib
from subscale import audio
from subscale import baselines
from subscale import evaluation
from subscale import files
from subscale import metrics
from subscale import plots

GRIFFIN_LIM_ITERS = 32


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
            s.name: common.latest_step(systems_lib.run_dir(options, s), s.config)
            for s in systems
            if s.kind == "model"
        }
        self._vocoders = {}
        self._references = {}
        self.analysis = dict(
            seam_ms=options.seam_ms,
            fold_chunks=list(options.fold_chunks),
            overlap_frames=scoring.overlap_frames(base, options),
            mcd_coefficients=metrics.MCD_COEFFICIENTS,
            metrics=metrics.available(),
        )
        common.make_ignored_folder(options.workdir, "cells")

    def path(self, *parts):
        return os.path.join(self.options.workdir, *parts)

    def vocoder(self, name):
        if name not in self._vocoders:
            self._vocoders[name] = subscale.load(
                systems_lib.run_dir(self.options, self.system(name))
            )
        return self._vocoders[name]

    def system(self, name):
        return next(s for s in self.systems if s.name == name)

    def reference(self, clip):
        if clip.name not in self._references:
            self._references[clip.name] = scoring.Reference(
                clip, self.base, self.options
            )
        return self._references[clip.name]

    def source_step(self, system):
        """Checkpoint step a system's audio comes from (None: no model)."""
        return None if system.model is None else self.steps[system.model]

    def cell_key(self, system, clip, seed):
        return dict(
            system=system.name,
            step=self.source_step(system),
            clip=clip.spec,
            seed=seed,
            analysis=self.analysis,
        )

    def report_clips(self):
        """The clips report.html plays, with their audio and spectrograms."""
        return self.clips[: self.options.report_clips]

    def generate(self, system, mel, seed):
        """float32 [f * hop] audio of a model or baseline for mel [f, m]."""
        if system.kind == "model":
            return self.vocoder(system.name).generate(mel, seed=seed)
        if system.kind == "fold":
            model = self.vocoder(system.model)
            wave, _ = baselines.fold_and_crossfade(
                model.sample_fn,
                model.params,
                mel,
                jax.random.PRNGKey(seed),
                self.hop,
                system.num_chunks,
                scoring.overlap_frames(self.base, self.options),
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
            wav = self.path("cells", system.name, clip.name + ".wav")
            key = self.cell_key(system, clip, seed)
            cell = common.read_cell(path, key)
            if cell is None or not os.path.exists(wav):
                if system.kind == "original":
                    wave = audio.to_float(clip.samples)
                else:
                    wave = self.generate(system, clip.mel, seed)
                audio.write_wav(wav, wave, self.rate)
                result = scoring.score(self.reference(clip), wave, self.rate, self.hop)
                if system.kind == "model":
                    log_p = self.vocoder(system.name).log_prob(clip.samples, clip.mel)
                    result["clip_nll_bits"] = -float(log_p.mean()) / math.log(2)
                cell = dict(key=key, metrics=result)
                common.write_json(path, cell)
                logging.info(
                    "%s / %s: log-mel %.2f dB, MCD %.2f dB.",
                    system.name,
                    clip.name,
                    result["lmd_db"],
                    result["mcd_db"],
                )
                # The report's copy and spectrogram were made from an older wav.
                for stale in (
                    self.path("audio", system.name, clip.name + ".wav"),
                    self.path("spectrograms", system.name, clip.name + ".png"),
                ):
                    if os.path.exists(stale):
                        os.remove(stale)
            cells[system.name].append(cell["metrics"])
        return cells

    def examples(self):
        """The report's clips of every system: the wav under `audio/` and its
        spectrogram, the original above it, under `spectrograms/`."""
        mel_cfg = audio.MelConfig.from_config(self.base.data)
        for system in self.systems:
            for clip in self.report_clips():
                measured = self.path("cells", system.name, clip.name + ".wav")
                wav = self.path("audio", system.name, clip.name + ".wav")
                if not os.path.exists(wav):
                    files.atomic_write(
                        wav, lambda tmp, src=measured: shutil.copyfile(src, tmp)
                    )
                png = self.path("spectrograms", system.name, clip.name + ".png")
                if os.path.exists(png):
                    continue
                wave = audio.load(wav, self.rate)
                original = None
                if system.kind != "original":
                    original = audio.to_float(clip.samples)
                plots.save_spectrogram_png(png, original, wave, mel_cfg)

    def nll(self):
        """{model: held-out NLL in bits/sample} (`evaluation.evaluate`)."""
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
            cell = common.read_cell(path, key)
            if cell is None:
                logging.info("%s: evaluating the held-out NLL.", system.name)
                evaluated = evaluation.evaluate(
                    system.config, systems_lib.run_dir(self.options, system)
                )
                cell = dict(key=key, metrics=evaluated)
                common.write_json(path, cell)
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
        cell = common.read_cell(path, key)
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
        common.write_json(path, dict(key=key, metrics=result))
        return result
