r"""Peak memory of streaming generation: 10 minutes against 1 minute of audio.

Each length runs in a fresh subprocess that builds a model with random
parameters, streams the whole utterance with `Vocoder.generate_stream` (writing
nothing), and reports its peak resident set size (ru_maxrss). Prints one JSON
line per length and one with the ratio.

Run (from the repository root):
  python -m experiments.stream_memory --minutes=1,10 --hidden_size=64 \
      > experiments/stream_memory.jsonl

stream_memory.jsonl holds the output of that command at commit a45bcc9 on the
2-core development machine (10 minutes: 1.16x the peak RSS of 1 minute).

Soak (`--seconds`, e.g. 3600 for an hour): one process streams that much audio
and reports its resident memory after every minute of audio; then the same
utterance is streamed again in chunks of `--seam_chunk_frames`, and the two
outputs must be equal sample for sample (a SHA-1 of each), so the seams between
chunks change nothing. The summary line compares the soak's peak with a
1-minute stream's and with the memory after its own first minute:

  python -m experiments.stream_memory --seconds=3600 --hidden_size=64 \
      > experiments/stream_soak.jsonl
"""

import hashlib
import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    flags.DEFINE_list("minutes", ["1", "10"], "Audio lengths in minutes.")
    flags.DEFINE_integer("hidden_size", 64, "GRU size (memory hardly depends on it).")
    flags.DEFINE_integer("subscale_factor", 16, "B.")
    flags.DEFINE_integer("chunk_frames", 400, "Frames per streamed chunk.")
    flags.DEFINE_float("child_minutes", None, "Internal: run one length here.")
    flags.DEFINE_integer(
        "seconds", 0, "Soak: stream this many seconds of audio (0: no soak)."
    )
    flags.DEFINE_integer(
        "seam_chunk_frames", 250, "Soak: chunk size of the second, checking stream."
    )
    flags.DEFINE_bool("child_soak", False, "Internal: run the soak here.")


HOP = 200
# The child runs this module and imports `configs`, which live beside `subscale`
# in the repository; it imports no more than it needs, since its memory is the
# measurement.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vocoder_and_mel(seconds):
    """The measured model (random parameters) and a constant mel of `seconds`."""
    import numpy as np

    import subscale
    from configs import default

    config = default.get_config()
    config.model.hidden_size = FLAGS.hidden_size
    config.model.subscale_factor = FLAGS.subscale_factor
    config.model.future_horizon = 16
    config.model.lookback = 32
    config.data.seq_len = 3_200
    vocoder = subscale.create(config, seed=0)
    frames = int(seconds * config.data.sample_rate) // HOP
    return vocoder, np.full((frames, config.data.n_mels), -4.0, np.float32)


def _rss_mb():
    """The resident set size of this process now, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(minutes):
    vocoder, mel = _vocoder_and_mel(minutes * 60)
    start = time.perf_counter()
    samples = 0
    for chunk in vocoder.generate_stream(mel, FLAGS.chunk_frames):
        samples += chunk.shape[0]
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    print(
        json.dumps(
            dict(
                minutes=minutes,
                samples=samples,
                seconds=round(seconds, 1),
                peak_rss_mb=round(peak_mb, 1),
                hidden_size=FLAGS.hidden_size,
                subscale_factor=FLAGS.subscale_factor,
                chunk_frames=FLAGS.chunk_frames,
            )
        ),
        flush=True,
    )


def _stream_digest(vocoder, mel, chunk_frames, on_minute=None):
    """SHA-1 of the 16-bit audio `generate_stream` makes, chunk by chunk;
    `on_minute(seconds of audio so far)` is called after each minute of it."""
    import numpy as np

    from subscale import audio

    digest = hashlib.sha1()
    samples = 0
    rate = vocoder.config.data.sample_rate
    for chunk in vocoder.generate_stream(mel, chunk_frames):
        digest.update(np.ascontiguousarray(audio.to_int16(chunk)).tobytes())
        minutes_before = samples // (60 * rate)
        samples += chunk.shape[0]
        if on_minute and samples // (60 * rate) > minutes_before:
            on_minute(samples / rate)
    return digest.hexdigest(), samples


def soak(seconds):
    """Streams `seconds` of audio, then again in other chunks; JSON lines."""
    vocoder, mel = _vocoder_and_mel(seconds)
    start = time.perf_counter()

    def report(audio_seconds):
        record = dict(
            audio_seconds=round(audio_seconds, 1),
            rss_mb=round(_rss_mb(), 1),
            elapsed_seconds=round(time.perf_counter() - start, 1),
        )
        print(json.dumps(record), flush=True)

    digest, samples = _stream_digest(vocoder, mel, FLAGS.chunk_frames, report)
    seconds_taken = time.perf_counter() - start
    peak_mb = _peak_rss_mb()  # before the checking stream
    check, _ = _stream_digest(vocoder, mel, FLAGS.seam_chunk_frames)
    print(
        json.dumps(
            dict(
                seconds=seconds,
                samples=samples,
                stream_seconds=round(seconds_taken, 1),
                peak_rss_mb=round(peak_mb, 1),
                chunk_frames=FLAGS.chunk_frames,
                seam_chunk_frames=FLAGS.seam_chunk_frames,
                seams_exact=check == digest,
                sha1=digest,
            )
        ),
        flush=True,
    )


def _run_child(*args):
    """JSON records of this module run in a fresh process with `args`."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.stream_memory",
            *args,
            f"--hidden_size={FLAGS.hidden_size}",
            f"--subscale_factor={FLAGS.subscale_factor}",
            f"--chunk_frames={FLAGS.chunk_frames}",
            f"--seam_chunk_frames={FLAGS.seam_chunk_frames}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    return [json.loads(line) for line in out.stdout.strip().splitlines()]


def main_soak():
    one_minute = _run_child("--child_minutes=1")[-1]
    print(json.dumps(one_minute), flush=True)
    records = _run_child("--child_soak", f"--seconds={FLAGS.seconds}")
    for record in records:
        print(json.dumps(record), flush=True)
    minutes, summary = records[:-1], records[-1]
    after_first = [r["rss_mb"] for r in minutes]
    print(
        json.dumps(
            dict(
                soak_seconds=FLAGS.seconds,
                peak_rss_ratio_to_one_minute=round(
                    summary["peak_rss_mb"] / one_minute["peak_rss_mb"], 3
                ),
                rss_growth_after_first_minute=round(
                    max(after_first) / after_first[0], 3
                ),
                seams_exact=summary["seams_exact"],
            )
        )
    )


def main(argv):
    del argv
    if FLAGS.child_minutes is not None:
        child(FLAGS.child_minutes)
        return
    if FLAGS.child_soak:
        soak(FLAGS.seconds)
        return
    if FLAGS.seconds:
        main_soak()
        return
    results = []
    for minutes in map(float, FLAGS.minutes):
        line = _run_child(f"--child_minutes={minutes}")[-1]
        print(json.dumps(line), flush=True)
        results.append(line)
    print(
        json.dumps(
            dict(
                peak_rss_ratio=round(
                    results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"], 3
                ),
                lengths_minutes=[r["minutes"] for r in results],
            )
        )
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
