"""TensorBoard summaries, read back from the event files.

tests/train_test.py checks that a training run writes them.
"""

import io
import os
import struct

import numpy as np
import soundfile
from tensorboardX.proto import event_pb2

from configs import tiny
from subscale import audio
from subscale import summaries

MEL_CFG = audio.MelConfig.from_config(tiny.get_config().data)


def read_events(folder):
    """The Events of the event files in `folder`, file by file.

    An event file is a TFRecord file: each record is its length (uint64), a
    CRC of the length (uint32), a serialized Event, and a CRC of it (uint32).
    """
    events = []
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents."):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        position = 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position : position + 8])
            start = position + 12
            events.append(event_pb2.Event.FromString(data[start : start + length]))
            position = start + length + 4
    return events


def read_values(folder):
    """{tag: [(step, Summary.Value)]} of the event files in `folder`."""
    values = {}
    for event in read_events(folder):
        for value in event.summary.value:
            values.setdefault(value.tag, []).append((event.step, value))
    return values


def scalar_tags(values):
    return {tag for tag, v in values.items() if v[0][1].HasField("simple_value")}


def test_writer_writes_scalars_audio_and_spectrograms(tmp_path):
    config = tiny.get_config()
    writer = summaries.Writer(str(tmp_path), config, step=0)
    writer.train(dict(step=1, loss_bits=8.5, learning_rate=1e-3, steps_per_second=2))
    samples = (np.sin(np.arange(1_600) / 5.0) * 8_000).astype(np.int16)
    clip_list = [("hello", samples, audio.mel(audio.to_float(samples), MEL_CFG))]
    generated = [np.zeros(1_600, np.float32) + 0.01]
    record = dict(dev_bits=7.0, dev_coarse_bits=3.0, dev_fine_bits=4.0, dev_stoi=0.5)
    writer.evaluation(2, record, clip_list, generated, MEL_CFG)
    writer.close()

    values = read_values(str(tmp_path))
    assert scalar_tags(values) == {
        "train/loss_bits",
        "train/learning_rate",
        "train/steps_per_second",
        "train/samples_per_second",
        "dev/bits",
        "dev/coarse_bits",
        "dev/fine_bits",
        "dev/stoi",
    }
    [(step, per_second)] = values["train/samples_per_second"]
    assert step == 1
    expected = 2 * config.train.batch_size * config.data.seq_len
    assert per_second.simple_value == expected
    assert values["dev/coarse_bits"][0][0] == 2

    [(step, sound)] = values["dev_clips/hello/audio"]
    wave, rate = soundfile.read(io.BytesIO(sound.audio.encoded_audio_string))
    assert (step, rate, wave.shape) == (2, 16_000, (1_600,))
    np.testing.assert_allclose(wave, 0.01, atol=1e-4)
    [(step, picture)] = values["dev_clips/hello/spectrogram"]
    assert step == 2
    assert picture.image.encoded_image_string.startswith(b"\x89PNG")
    # Two panels (the original and the vocoded clip) of 10 x 3 inches at 100 dpi.
    assert (picture.image.width, picture.image.height) == (1_000, 600)


def test_a_resumed_run_hides_the_events_after_its_checkpoint(tmp_path):
    config = tiny.get_config()
    writer = summaries.Writer(str(tmp_path), config, step=0)
    for step in (1, 2, 3):
        writer.train(dict(step=step, loss_bits=9.0))
    writer.close()
    # Resumed from the checkpoint of step 2: step 3 is logged again, after a
    # SessionLog START at step 3, from which TensorBoard drops the older events.
    writer = summaries.Writer(str(tmp_path), config, step=2)
    writer.train(dict(step=3, loss_bits=8.0))
    writer.close()
    starts = [
        e.step
        for e in read_events(str(tmp_path))
        if e.session_log.status == event_pb2.SessionLog.START
    ]
    assert starts == [3]
    losses = [
        (s, v.simple_value) for s, v in read_values(str(tmp_path))["train/loss_bits"]
    ]
    assert losses == [(1, 9.0), (2, 9.0), (3, 9.0), (3, 8.0)]


def test_tensorboard_off_writes_no_event_file(tmp_path):
    config = tiny.get_config()
    config.train.tensorboard = False
    writer = summaries.Writer(str(tmp_path), config, step=0)
    writer.train(dict(step=1, loss_bits=8.0, steps_per_second=2.0))
    writer.close()
    assert os.listdir(tmp_path) == []
