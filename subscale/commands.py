"""The command-line modes (train, evaluate, vocode) behind `main.py`.

`run` turns every bad input into one line on stderr and a non-zero exit code:
a SubscaleError names the file or config field and what is wrong.
"""

import os
import sys

import numpy as np
import soundfile
from absl import logging

from subscale import api
from subscale import audio
from subscale import errors
from subscale import evaluation
from subscale import files
from subscale import input_pipeline
from subscale import plots

MODES = ("train", "evaluate", "vocode")


def run(mode, config, workdir, *, input_path=None, output=None, stream=False):
    """Runs one mode; returns the process exit code (0 on success)."""
    try:
        if mode not in MODES:
            raise errors.SubscaleError(f"--mode={mode!r}: choose from {MODES}")
        if not workdir:
            raise errors.SubscaleError("--workdir is required")
        if mode == "train":
            # Imported here: evaluating and vocoding need no optimizer stack.
            from subscale import train

            train.train_and_evaluate(config, workdir)
        elif mode == "evaluate":
            evaluation.evaluate(config, workdir)
        else:
            vocode(workdir, input_path, output, stream=stream)
    except errors.SubscaleError as e:
        _report(str(e))
        return 1
    except OSError as e:
        _report(f"{e.filename or workdir}: {e.strerror or e}")
        return 1
    return 0


def _report(message):
    print("error: " + " ".join(message.split()), file=sys.stderr)


def vocode(workdir, input_path, output, *, stream=False, chunk_frames=100):
    """Vocodes a file, or every audio file under a folder, into `output`."""
    if not input_path:
        raise errors.SubscaleError("--input is required for --mode=vocode")
    if not output:
        raise errors.SubscaleError("--output is required for --mode=vocode")
    if os.path.isdir(input_path):
        files = [p for p, _ in input_pipeline.list_audio(input_path)]
    elif os.path.exists(input_path):
        files = [input_path]
    else:
        raise errors.SubscaleError(f"{input_path}: no such file or folder")
    vocoder = api.load(workdir)
    rate = vocoder.config.data.sample_rate
    for path in files:
        original = audio.load(path, rate)
        mel = vocoder.features(original, rate, name=path)
        name = os.path.splitext(os.path.basename(path))[0]
        wav = os.path.join(output, name + ".wav")
        if stream:
            generated = _write_stream(
                wav, vocoder.generate_stream(mel, chunk_frames), rate
            )
        else:
            generated = vocoder.generate(mel)
            audio.write_wav(wav, generated, rate)
        plots.save_spectrogram_png(
            os.path.join(output, name + ".png"),
            original[: generated.shape[0]],
            generated,
            vocoder.mel_config,
        )
        logging.info("Vocoded %s -> %s", path, wav)
        print(wav, flush=True)


def _write_stream(path, chunks, rate):
    """Writes chunks to a wav as they arrive (atomically); returns the audio."""
    pieces = []

    def write(tmp):
        with soundfile.SoundFile(tmp, "w", rate, 1, "PCM_16", format="WAV") as f:
            for chunk in chunks:
                f.write(audio.to_int16(chunk))
                pieces.append(chunk)

    files.atomic_write(path, write)
    return np.concatenate(pieces)
