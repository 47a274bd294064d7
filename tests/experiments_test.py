"""experiments/batch_size_vs_quality: budgets, outputs and resuming."""

import json
import os

import numpy as np
import pytest
import soundfile
from absl import flags

from configs import demo
from experiments.batch_size_vs_quality import experiment
from experiments.batch_size_vs_quality import main
from experiments.batch_size_vs_quality import scoring
from experiments.batch_size_vs_quality import systems as systems_lib

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
OUTPUTS = (
    "results.jsonl",
    "results.md",
    "quality_vs_B.png",
    "speed_vs_B.png",
    "seams.png",
    "report.html",
)


@pytest.mark.parametrize("quick", [False, True])
def test_every_model_gets_the_same_budget(quick, tmp_path):
    options = (
        experiment.quick_options(workdir=str(tmp_path))
        if quick
        else experiment.Options(workdir=str(tmp_path))
    )
    base = systems_lib.base_for(demo.get_config(), options)
    systems = systems_lib.make_systems(base, options)
    models = [s for s in systems if s.kind == "model"]
    names = [s.name for s in models]
    assert names[:5] == ["B1", "B2_F16", "B4_F16", "B8_F16", "B16_F16"]
    assert names[5:] == [f"B16_F{f}" for f in options.horizons]
    budgets = {s.config.data.seq_len * s.config.train.batch_size for s in models}
    assert budgets == {base.data.seq_len * base.train.batch_size}
    for s in models:
        c = s.config
        assert c.model.hidden_size == base.model.hidden_size
        assert c.train.num_steps == base.train.num_steps
        assert c.data.eval_seq_len == base.data.eval_seq_len
        assert c.data.seq_len % s.subscale_factor == 0
    if not quick:
        b16 = next(s for s in models if s.name == "B16_F16").config
        assert (b16.data.seq_len, b16.train.batch_size) == (3_200, 4)
    kinds = [s.kind for s in systems]
    assert kinds[-4:] == ["fold", "fold", "griffin_lim", "original"]


def _check_outputs(root, records, clips, report_clips=3):
    for name in OUTPUTS:
        assert os.path.getsize(os.path.join(root, name)) > 0, name
    lines = [json.loads(x) for x in open(os.path.join(root, "results.jsonl"))]
    assert lines == records
    html = open(os.path.join(root, "report.html")).read()
    for r in records:
        assert r["clips"] == clips
        assert r["lmd_db"] is not None and r["mcd_db"] is not None
        assert r["clip_set"] == "subscale/demo_data (dev split)"
        measured = os.listdir(os.path.join(root, "cells", r["system"]))
        assert len([f for f in measured if f.endswith(".wav")]) == clips
        folder = os.path.join(root, "audio", r["system"])
        wavs = sorted(os.listdir(folder))
        assert len(wavs) == min(clips, report_clips)
        for wav in wavs:
            assert f"audio/{r['system']}/{wav}" in html
            png = os.path.join(root, "spectrograms", r["system"], wav[:-4] + ".png")
            assert os.path.exists(png)
    for cache in ("runs", "cells"):  # only the results are for git
        assert open(os.path.join(root, cache, ".gitignore")).read() == "*\n"
    by_name = {r["system"]: r for r in records}
    assert by_name["original"]["lmd_db"] == 0.0
    model = records[0]  # the first system is a trained model
    assert model["nll_bits"] > 0
    assert model["samples_per_second"] > 0


def test_clips_of_a_manifest_are_named_from_its_folder(tmp_path):
    """A manifest's files are named by their path under the manifest's folder
    (not "..-folder-..."), voice folder included."""
    rate = demo.get_config().data.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(rate * 3 // 2) / rate)
    for name in ("a", "b"):
        (tmp_path / "voice").mkdir(exist_ok=True)
        soundfile.write(str(tmp_path / "voice" / f"{name}.wav"), tone, rate)
    (tmp_path / "manifest.csv").write_text(
        "file,split\nvoice/a.wav,dev\nvoice/b.wav,train\n"
    )
    base = demo.get_config()
    base.data.train_dir = str(tmp_path / "manifest.csv")
    base.data.cache_dir = str(tmp_path / "cache")
    options = experiment.Options(workdir=str(tmp_path), clips=2, clip_seconds=1.0)
    (clip,) = scoring.load_clips(base, options)
    assert clip.path == os.path.join("voice", "a.wav")
    assert clip.name.startswith("voice-a_"), clip.name


@pytest.mark.slow  # the command-line test below runs the same pipeline
def test_small_run_writes_every_output_and_resumes(tmp_path):
    """One tiny model (B = 1) with every baseline and output, then a re-run."""
    root = str(tmp_path)
    options = experiment.quick_options(
        workdir=root,
        factors=(1,),
        horizons=(),
        num_steps=2,
        clips=1,
        fold_chunks=(4,),
    )
    records = experiment.run(demo.get_config(), options)
    assert [r["system"] for r in records] == ["B1", "fold4", "griffin_lim", "original"]
    _check_outputs(root, records, clips=1)
    assert os.path.exists(os.path.join(root, "runs", "B1", "checkpoints", "2"))

    cells = os.path.join(root, "cells")
    stamps = {
        os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
        for d, _, files in os.walk(cells)
        for f in files
    }
    again = experiment.run(demo.get_config(), options)
    assert again == records
    for path, stamp in stamps.items():
        assert os.path.getmtime(path) == stamp, f"{path} was measured again"


def test_quick_mode_from_the_command_line(tmp_path):
    """The --quick pipeline through `main`, with B = 1 and its fold
    baseline, two training steps and one clip (the seven-model quick run takes
    minutes): the CI smoke test of the experiment's command line."""
    root = str(tmp_path)
    argv = [
        "batch_size_vs_quality",
        "--quick",
        f"--workdir={root}",
        f"--base_config={os.path.join(CONFIGS, 'demo.py')}",
        "--num_steps=2",
        "--clips=1",
        "--report_clips=1",
        "--factors=1",
        "--horizons=",
        "--fold_chunks=4",
    ]
    # Flags of their own, so that the test leaves absl's global FLAGS alone.
    fv = flags.FlagValues()
    main.define_flags(fv)
    fv(argv)
    main.main(["batch_size_vs_quality"], fv)
    records = [json.loads(x) for x in open(os.path.join(root, "results.jsonl"))]
    names = [r["system"] for r in records]
    assert names == ["B1", "fold4", "griffin_lim", "original"]
    assert os.path.exists(os.path.join(root, "runs", "B1", "checkpoints", "2"))
    _check_outputs(root, records, clips=1, report_clips=1)
