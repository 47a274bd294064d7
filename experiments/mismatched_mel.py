r"""How a vocoder behaves on a mel that does not fit its audio exactly.

A text-to-speech front end hands the vocoder mels that are a little off: too
loud or too quiet by a dB or two, or describing speech of another voice than
the one the vocoder was trained on. For each of --clips held-out clips (dev
utterances of at least --clip_seconds, spread over the split) and each case:

- `own`: the clip's own mel;
- `+1dB`, `-2dB`, ...: its mel shifted by --db_shifts (every band, every
  frame), which describes the clip scaled by that gain;
- `other`: the mel of the clip half the list away (another prompt, usually
  another voice),

it reports, averaged over the clips:

- the teacher-forced NLL of the clip's own audio under the case's mel, mean
  and worst sample: what the mismatch costs the model's likelihood;
- `gain_db`, the level of the free-running output against the output from
  the own mel (a +2 dB mel should give +2 dB), and the free-running metrics
  (log-mel distance with per-band bias, loudness correlation, STOI, PESQ)
  against the audio the mel describes.

Writes `--output`.{md,jsonl}.

Run (from the repository root, with `../shared` beside it):
  python -m experiments.mismatched_mel --model=speech16k \
      --output=experiments/results/speech16k/mismatched_mel
"""

import json
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

import subscale
from experiments import common
from experiments import compare
from subscale import evaluation
from subscale import input_pipeline

FLAGS = flags.FLAGS
LN2 = np.log(2.0)
DB = np.log(10.0) / 20.0  # 1 dB of magnitude in the natural-log mel


def define_flags():
    flags.DEFINE_string("model", "speech16k", "Packaged model name or workdir.")
    flags.DEFINE_integer("clips", 12, "Held-out clips.")
    flags.DEFINE_float("clip_seconds", 2.0, "Seconds per clip (every clip as long).")
    flags.DEFINE_list("db_shifts", ["-2", "-1", "1", "2"], "Mel shifts in dB.")
    flags.DEFINE_string("output", None, "Results path, without extension.")
    flags.mark_flag_as_required("output")


def held_out_clips(vocoder, count, seconds, workdir):
    """`count` clips of exactly `seconds` (whole frames) from the held-out
    utterances at least that long: [(voice/prompt, int16 samples, mel)]."""
    d = vocoder.config.data
    frames = int(seconds * d.sample_rate) // d.hop_length
    utterances = [
        u
        for u in input_pipeline.eval_utterances(vocoder.config, workdir)
        if u.mel.shape[0] >= frames
    ]
    clip_list = evaluation.clips(
        utterances, count, seconds, d.hop_length, d.sample_rate
    )
    who = evaluation.clip_voices(vocoder.config, utterances, count)
    return [
        (f"{voice}/{name}", samples, mel)
        for voice, (name, samples, mel) in zip(who, clip_list, strict=True)
    ]


def cases(clip_list, shifts):
    """{case: [(the mel to vocode, the clip it describes)]}, one per clip, in
    the order of `clip_list`.

    A shift of s dB scales the clip's audio by 10^(s/20), which adds s dB to
    every band of its log-mel; `other` gives clip i the mel of clip i + n/2 of
    the n clips, which describes that clip."""
    out = {"own": [(c[2], c) for c in clip_list]}
    for shift in shifts:
        scaled = []
        for name, samples, mel in clip_list:
            wave = np.clip(np.round(samples * 10 ** (shift / 20)), -32768, 32767)
            mel = mel + np.float32(shift * DB)
            scaled.append((mel, (name, wave.astype(np.int16), mel)))
        out[f"{shift:+g}dB"] = scaled
    n = len(clip_list)
    if n > 1:
        others = [clip_list[(i + n // 2) % n] for i in range(n)]
        out["other"] = [(c[2], c) for c in others]
    return out


def measure(vocoder, clip_list, shifts, seed=0):
    """One record per case: the NLL (mean and worst) of each clip's own audio
    under the case's mel (what the mismatch costs the likelihood), the
    output's gain over the own mel's output, and the free-running metrics of
    the output against the clip the mel describes."""
    by_case = cases(clip_list, shifts)
    mels = [mel for pairs in by_case.values() for mel, _ in pairs]
    waves = iter(vocoder.generate(mels, seed=seed))  # one batched call
    generated = {case: [next(waves) for _ in pairs] for case, pairs in by_case.items()}
    own_rms = [_rms(w) for w in generated["own"]]
    records = []
    for case, pairs in by_case.items():
        bits = [
            -vocoder.log_prob(samples, mel) / LN2
            for (mel, _), (_, samples, _) in zip(pairs, clip_list, strict=True)
        ]
        gains = [
            20 * np.log10(_rms(w) / r)
            for w, r in zip(generated[case], own_rms, strict=True)
        ]
        records.append(
            dict(
                case=case,
                clips=len(pairs),
                nll_bits=float(np.mean(np.concatenate(bits))),
                worst_bits=float(max(b.max() for b in bits)),
                gain_db=float(np.mean(gains)),
                **evaluation.score_clips(
                    [clip for _, clip in pairs],
                    generated[case],
                    vocoder.mel_config,
                    vocoder.hop_length,
                ),
            )
        )
    return records


def _rms(wave):
    return float(np.sqrt(np.mean(np.square(wave)) + 1e-12))


COLUMNS = (
    ("nll_bits", "NLL bits", 3),
    ("worst_bits", "worst sample", 1),
    ("gain_db", "gain dB", 2),
    *compare.FREE_RUNNING_COLUMNS,
)


def markdown(records, command, clip_list, model, rate):
    seconds = clip_list[0][1].shape[0] / rate if clip_list else 0
    return "\n".join(
        [
            f"# {model}: mismatched mels",
            "",
            *common.provenance(command),
            f"- {len(clip_list)} held-out clips of {seconds:g} s: "
            + ", ".join(name for name, _, _ in clip_list)
            + ".",
            "- NLL: of each clip's own audio under the mel, teacher-forced. Gain: "
            "the free-running output's level over the own mel's output. The "
            "rest: the output against the audio the mel describes.",
            "",
            compare.table([r["case"] for r in records], records, COLUMNS),
        ]
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    command = common.command_line("mismatched_mel")
    vocoder = subscale.load(FLAGS.model)
    shifts = [float(s) for s in FLAGS.db_shifts]
    start = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        clip_list = held_out_clips(vocoder, FLAGS.clips, FLAGS.clip_seconds, scratch)
    records = measure(vocoder, clip_list, shifts)
    for r in records:
        r.update(model=FLAGS.model, seconds=round(time.time() - start, 1))
        print(json.dumps(common.clean(r)), flush=True)
    common.write_jsonl(FLAGS.output + ".jsonl", records)
    rate = vocoder.config.data.sample_rate
    text = markdown(records, command, clip_list, FLAGS.model, rate)
    common.write_text(FLAGS.output + ".md", text)
    print(text)


if __name__ == "__main__":
    define_flags()
    app.run(main)
