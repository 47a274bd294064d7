"""The command-line modes (train, evaluate, vocode) behind `main.py`.

`run` turns every bad input into one line on stderr and a non-zero exit code:
a SubscaleError names the file or config field and what is wrong.
"""

import os
import sys
import tempfile

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
from subscale import pretrained

MODES = ("train", "evaluate", "vocode")


def run(
    mode, config, workdir, *, input_path=None, output=None, stream=False, model=None
):
    """Runs one mode; returns the process exit code (0 on success).

    `model` (a packaged model's name or an exported model folder) stands in
    for `config` and `workdir` in the modes that read a model; `workdir`, if
    given with it, receives evaluate's eval.json and feature cache.
    """
    try:
        if mode not in MODES:
            raise errors.SubscaleError(f"--mode={mode!r}: choose from {MODES}")
        if model and mode == "train":
            raise errors.SubscaleError(
                "--model: --mode=train starts from --config and --workdir"
            )
        if not model and not workdir:
            raise errors.SubscaleError("--workdir (or --model) is required")
        if mode == "train":
            if config is None:
                raise errors.SubscaleError("--config is required for --mode=train")
            # Imported here: evaluating and vocoding need no optimizer stack.
            from subscale import train

            train.train_and_evaluate(config, workdir)
        elif mode == "evaluate":
            _evaluate(config, workdir, model, input_path)
        else:
            vocode(model or workdir, input_path, output, stream=stream)
    except errors.SubscaleError as e:
        _report(str(e))
        return 1
    except OSError as e:
        _report(f"{e.filename or workdir}: {e.strerror or e}")
        return 1
    return 0


def _evaluate(config, workdir, model, input_path):
    """evaluate mode: a workdir's checkpoint under `config`, or `model`."""
    if input_path and not os.path.isdir(input_path):
        raise errors.SubscaleError(
            f"{input_path}: --input for --mode=evaluate must be a folder of audio"
        )
    if not model:
        if config is None:
            raise errors.SubscaleError("--config (or --model) is required")
        if input_path:
            config.data.eval_dir = input_path
        evaluation.evaluate(config, workdir)
        return
    config, params, info = pretrained.read(pretrained.locate(model))
    if input_path:
        config.data.eval_dir = input_path
    elif not os.path.exists(input_pipeline.resolve_corpus(config.data.train_dir)):
        raise errors.SubscaleError(
            f"{config.data.train_dir}: {model}'s training corpus, whose dev split "
            "it scores, is not here (run from the repository root with ../shared "
            "beside it), or score a folder of audio with --input=FOLDER"
        )
    with tempfile.TemporaryDirectory() as scratch:
        evaluation.evaluate(
            config,
            workdir or scratch,
            params=params,
            step=info.get("step"),
            write=bool(workdir),
        )


def _report(message):
    print("error: " + " ".join(message.split()), file=sys.stderr)


def vocode(workdir, input_path, output, *, stream=False, chunk_frames=100):
    """Vocodes a file, or every audio file under a folder, into `output`.

    `workdir`: anything `api.load` reads (a workdir or a model's name).
    """
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
