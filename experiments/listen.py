r"""A listening page: held-out clips as each system vocodes them, side by side.

For each of --num_clips clips (the first --clip_seconds of utterances spread
over the held-out set, `evaluation.clips`): the original and every system as
an audio player, each with its log-mel spectrogram, and the row of
free-running metrics of that clip (`evaluation.score_clips`: log-mel distance,
loudness correlation, quiet-frame excess, STOI, PESQ when installed). A table
of the means over the clips heads the page.

Systems: a packaged model's name (`speech16k`), a training workdir or an
exported model folder (anything `subscale.load` reads; vocoded from the clip's
mel with the model's own sampling settings, `evaluation.free_running`), and
`griffin_lim` (`baselines.griffin_lim` of the same mel). Clips: `dev` is the
dev split of the first model's training corpus (the demo corpus of
configs/default.py when only griffin_lim is listed); any other value is a
folder, manifest or LJSpeech folder whose every file is a candidate.

Writes OUT/index.html with the audio (16-bit FLAC) under OUT/audio/, the
spectrograms under OUT/spectrograms/ and the scores in OUT/scores.json; the
command is in OUT/README.md. experiments/browser_check.py checks the page in
a headless Chromium.

Run (from the repository root, with ../shared beside it for speech16k):
  python -m experiments.listen --systems=speech16k,griffin_lim --clips=dev
  python -m experiments.listen --systems=speech16k,griffin_lim,workdirs/mine \
      --clips=dev --out=/tmp/listen
"""

import dataclasses
import html
import os
import re
import sys
import tempfile

from absl import app
from absl import flags

import subscale
from configs import default
from experiments import common
from experiments import compare
from subscale import audio
from subscale import baselines
from subscale import errors
from subscale import evaluation
from subscale import input_pipeline
from subscale import plots

FLAGS = flags.FLAGS
GRIFFIN_LIM = "griffin_lim"
ORIGINAL = "original"
AUDIO_EXTENSION = ".flac"  # lossless, half a WAV; Chromium, Firefox, Safari play it
# (score key, column title, decimals) of the metrics row.
COLUMNS = compare.FREE_RUNNING_COLUMNS


def define_flags():
    flags.DEFINE_list(
        "systems",
        ["speech16k", GRIFFIN_LIM],
        f"Packaged model names, workdirs, exported model folders or {GRIFFIN_LIM}.",
    )
    flags.DEFINE_string(
        "clips", "dev", "dev (the first model's dev split), or a corpus folder."
    )
    flags.DEFINE_integer("num_clips", 4, "Clips on the page.")
    flags.DEFINE_float("clip_seconds", 3.0, "Seconds per clip (at most).")
    flags.DEFINE_string("out", "experiments/results/listen", "Folder of the page.")
    flags.DEFINE_integer("seed", 0, "Seed of the models' sampling.")


@dataclasses.dataclass
class System:
    """One column of the page: `vocoder` None for Griffin-Lim."""

    name: str
    vocoder: object = None


def load_systems(names):
    """[System] of --systems; a model is anything `subscale.load` reads."""
    systems = []
    for name in names:
        label = _label(name)
        if label in [s.name for s in systems] + [ORIGINAL]:
            raise errors.SubscaleError(f"--systems: {name} is listed twice")
        vocoder = None if name == GRIFFIN_LIM else subscale.load(name)
        systems.append(System(label, vocoder))
    if not systems:
        raise errors.SubscaleError("--systems: name at least one system")
    return systems


def _label(name):
    """A system's name on the page and in file names."""
    base = os.path.basename(os.path.normpath(name)) or name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base)


def held_out_clips(systems, clips, num_clips, clip_seconds, scratch):
    """(clip list of `evaluation.clips`, audio.MelConfig of their features).

    Raises:
      SubscaleError: a model's features differ from those of the clips.
    """
    models = [s for s in systems if s.vocoder is not None]
    config = models[0].vocoder.config if models else default.get_config()
    config = config.copy_and_resolve_references()
    mel_cfg = audio.MelConfig.from_config(config.data)
    for s in models:
        if s.vocoder.mel_config != mel_cfg:
            raise errors.SubscaleError(
                f"--systems: {s.name} is conditioned on other features "
                f"({s.vocoder.mel_config}) than {models[0].name} ({mel_cfg})"
            )
    config.data.cache_dir = os.path.join(scratch, "cache")
    if clips != "dev":
        config.data.eval_dir = clips
    utterances = input_pipeline.eval_utterances(config, scratch)
    clip_list = evaluation.clips(
        utterances, num_clips, clip_seconds, mel_cfg.hop_length, mel_cfg.sample_rate
    )
    # Numbered: two speakers may read prompts of the same file name.
    clip_list = [
        (f"{n + 1}-{name}", samples, mel)
        for n, (name, samples, mel) in enumerate(clip_list)
    ]
    return clip_list, mel_cfg


def vocode(system, clip_list, mel_cfg, seed=0):
    """[float32 waveform] of each clip as `system` generates it from its mel."""
    if system.vocoder is None:
        return [baselines.griffin_lim(mel, mel_cfg) for _, _, mel in clip_list]
    v = system.vocoder
    _, generated = evaluation.free_running(
        v.model_config, v.params, clip_list, mel_cfg, v.config.sampling, seed
    )
    return generated


def build(systems, clip_list, mel_cfg, out, command, seed=0):
    """Writes the page, its audio, spectrograms and scores under `out`.

    Returns:
      {"clips": [clip names], "systems": {name: {"mean": scores,
      "clips": [scores per clip]}}}, as written to scores.json.
    """
    hop = mel_cfg.hop_length
    waves = {ORIGINAL: [audio.to_float(samples) for _, samples, _ in clip_list]}
    scores = {}
    for system in systems:
        waves[system.name] = vocode(system, clip_list, mel_cfg, seed)
        per_clip = [
            evaluation.score_clips([clip], [wave], mel_cfg, hop)
            for clip, wave in zip(clip_list, waves[system.name], strict=True)
        ]
        mean = evaluation.score_clips(clip_list, waves[system.name], mel_cfg, hop)
        scores[system.name] = dict(mean=mean, clips=per_clip)
    for n, (clip, _, _) in enumerate(clip_list):
        for name, clip_waves in waves.items():
            wave = clip_waves[n][: clip_list[n][1].shape[0]]
            audio.write_wav(
                os.path.join(out, _audio_path(clip, name)),
                wave,
                mel_cfg.sample_rate,
                format="FLAC",
            )
            plots.save_spectrogram_png(
                os.path.join(out, _image_path(clip, name)), None, wave, mel_cfg, name
            )
    record = dict(clips=[clip for clip, _, _ in clip_list], systems=scores)
    common.write_json(os.path.join(out, "scores.json"), record)
    common.write_text(
        os.path.join(out, "index.html"), page_html(record, clip_list, mel_cfg, command)
    )
    common.write_text(
        os.path.join(out, "README.md"), readme(record, out, command, seed)
    )
    return record


def _audio_path(clip, system):
    return f"audio/{clip}/{system}{AUDIO_EXTENSION}"


def _image_path(clip, system):
    return f"spectrograms/{clip}/{system}.png"


def _cells(scores):
    return "".join(
        f"<td>{compare._fmt(scores.get(key), digits)}</td>"
        for key, _, digits in COLUMNS
    )


def page_html(record, clip_list, mel_cfg, command):
    """The static page: means, then per clip a row per system."""
    esc = html.escape
    titles = "".join(f"<th>{esc(title)}</th>" for _, title, _ in COLUMNS)
    systems = record["systems"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>subscale: listening page</title>",
        "<style>body{font-family:sans-serif;margin:1em 2em}"
        " table{border-collapse:collapse;margin-bottom:1.5em}"
        " td,th{padding:4px 8px;border:1px solid #ccc;vertical-align:middle}"
        " img{width:480px;display:block} audio{width:260px}</style></head><body>",
        "<h1>Listening page</h1>",
        f"<p>{len(clip_list)} held-out clips at {mel_cfg.sample_rate} Hz, vocoded "
        "from their log-mel by each system; the metrics compare each with the "
        "original (<code>subscale/evaluation.py</code>). Made by "
        f"<code>{esc(command)}</code>; scores in "
        "<a href='scores.json'>scores.json</a>.</p>",
        "<h2>Means over the clips</h2>",
        f"<table><tr><th>system</th>{titles}</tr>",
    ]
    for name, s in systems.items():
        parts.append(f"<tr><th>{esc(name)}</th>{_cells(s['mean'])}</tr>")
    parts.append("</table>")
    for n, (clip, samples, _) in enumerate(clip_list):
        seconds = samples.shape[0] / mel_cfg.sample_rate
        parts.append(f"<h2>{esc(clip)} ({seconds:.1f} s)</h2>")
        parts.append(
            f"<table><tr><th>system</th><th>audio</th><th>log-mel</th>{titles}</tr>"
        )
        for name in [ORIGINAL, *systems]:
            cells = (
                _cells(systems[name]["clips"][n])
                if name in systems
                else f"<td colspan='{len(COLUMNS)}'>reference</td>"
            )
            parts.append(
                f"<tr><th>{esc(name)}</th>"
                f"<td><audio controls preload='metadata' "
                f"src='{esc(_audio_path(clip, name))}'></audio></td>"
                f"<td><img alt='log-mel of {esc(name)}' "
                f"src='{esc(_image_path(clip, name))}'></td>{cells}</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def readme(record, out, command, seed):
    page = os.path.join(out, "index.html")
    shot = os.path.join(out, "screenshot.png")
    lines = [
        "# Listening page",
        "",
        *common.provenance(command),
        f"- Systems: {', '.join(record['systems'])}; clips: "
        f"{', '.join(record['clips'])}. The models sample with their own "
        f"`config.sampling`, seed {seed}; Griffin-Lim runs 32 iterations.",
        "- Open `index.html` in a browser. Means over these clips only: "
        "other clip sets (a model's scores.md) give other means.",
        f"- `python -m experiments.browser_check --page={page} "
        f"--screenshot={shot}` loads the page in a headless Chromium, writes "
        "whether every player loaded and every image rendered to "
        "`browser_check.md`, and takes `screenshot.png`.",
        "",
    ]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    command = common.command_line("listen")
    try:
        systems = load_systems(FLAGS.systems)
        with tempfile.TemporaryDirectory() as scratch:
            clip_list, mel_cfg = held_out_clips(
                systems, FLAGS.clips, FLAGS.num_clips, FLAGS.clip_seconds, scratch
            )
        build(systems, clip_list, mel_cfg, FLAGS.out, command, FLAGS.seed)
    except errors.SubscaleError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 1
    print(os.path.join(FLAGS.out, "index.html"))
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
