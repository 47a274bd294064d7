"""experiments/listen.py: the listening page and the files it plays and shows.

The check in a real browser (experiments/browser_check.py) needs Chromium,
which CI lacks; experiments/results/listen/README.md records it.
"""

import re

import numpy as np
import pytest
import soundfile

import subscale
from configs import tiny
from experiments import listen
from subscale import errors


def _tiny_model():
    return listen.System("tiny", subscale.create(tiny.get_config()))


def _griffin_lim():
    return listen.System(listen.GRIFFIN_LIM)


@pytest.mark.parametrize(
    "make_systems,num_clips",
    [
        ((_griffin_lim,), 1),
        # A model's sampler compiles and runs: ten seconds more.
        pytest.param((_tiny_model, _griffin_lim), 2, marks=pytest.mark.slow),
    ],
)
def test_page_plays_and_shows_every_system_of_every_clip(
    make_systems, num_clips, tmp_path
):
    systems = [make() for make in make_systems]
    clip_list, mel_cfg = listen.held_out_clips(
        systems, "dev", num_clips, 0.5, str(tmp_path / "scratch")
    )
    assert len(clip_list) == num_clips
    out = tmp_path / "page"
    record = listen.build(systems, clip_list, mel_cfg, str(out), "listen --quick")

    page = (out / "index.html").read_text()
    players = re.findall(r"<audio [^>]*src='([^']+)'", page)
    images = re.findall(r"<img [^>]*src='([^']+)'", page)
    columns = 1 + len(systems)  # the original and every system
    assert len(players) == len(images) == num_clips * columns
    for n, (name, samples, _) in enumerate(clip_list):
        row = players[n * columns : (n + 1) * columns]
        for src in row:
            assert src.startswith(f"audio/{name}/")
            wave, rate = soundfile.read(out / src, dtype="int16")
            assert rate == 16_000 and wave.shape == samples.shape
        original, _ = soundfile.read(out / row[0], dtype="int16")
        np.testing.assert_array_equal(original, samples)
    for src in images:
        assert (out / src).read_bytes().startswith(b"\x89PNG")

    assert list(record["systems"]) == [s.name for s in systems]
    for scores in record["systems"].values():
        assert len(scores["clips"]) == num_clips
        assert {"log_mel_db", "loudness_corr"} <= set(scores["mean"])
    griffin_lim = record["systems"]["griffin_lim"]["clips"][-1]["log_mel_db"]
    assert f"<td>{griffin_lim:.2f}</td>" in page
    assert (out / "scores.json").is_file() and (out / "README.md").is_file()


def test_unknown_or_repeated_systems_are_one_line_errors():
    with pytest.raises(errors.SubscaleError, match="nope"):
        listen.load_systems(["nope"])
    with pytest.raises(errors.SubscaleError, match="listed twice"):
        listen.load_systems([listen.GRIFFIN_LIM, listen.GRIFFIN_LIM])
