"""Kill and resume, determinism across processes, and many devices."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

import subscale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(workdir, *flags, env=None):
    return [
        sys.executable,
        "-m",
        "subscale.main",
        "--config=configs/tiny.py",
        f"--workdir={workdir}",
        *flags,
    ]


def _run(args, env=None, timeout=300):
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def _leaves(workdir):
    return jax.tree_util.tree_leaves(subscale.load(workdir).params)


def test_kill_and_resume_is_bit_identical(tmp_path):
    flags = (
        "--config.train.num_steps=12",
        "--config.train.checkpoint_every_steps=3",
        "--config.train.eval_every_steps=12",
    )
    straight = str(tmp_path / "straight")
    started = time.perf_counter()
    assert _run(_cli(straight, *flags)).returncode == 0
    duration = time.perf_counter() - started
    resumed = str(tmp_path / "resumed")
    rng = np.random.default_rng(0)
    for fraction in sorted(rng.uniform(0.5, 0.95, size=2)):
        proc = subprocess.Popen(
            _cli(resumed, *flags),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(fraction * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = _run(_cli(resumed, *flags))
    assert done.returncode == 0, done.stderr[-2000:]
    for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


GENERATE = """
import hashlib, numpy as np, subscale
from configs import tiny
vocoder = subscale.create(tiny.get_config(), seed=3)
mel = np.linspace(-6, 0, 10 * 80, dtype=np.float32).reshape(10, 80)
print(hashlib.sha1(np.asarray(vocoder.generate(mel, seed=5)).tobytes()).hexdigest())
"""


def test_same_seed_same_audio_across_processes():
    runs = [_run([sys.executable, "-c", GENERATE]) for _ in range(2)]
    hashes = [r.stdout.strip().splitlines()[-1] for r in runs]
    assert hashes[0] == hashes[1]
    from configs import tiny

    vocoder = subscale.create(tiny.get_config(), seed=3)
    mel = np.linspace(-6, 0, 10 * 80, dtype=np.float32).reshape(10, 80)
    here = hashlib.sha1(np.asarray(vocoder.generate(mel, seed=5)).tobytes())
    assert here.hexdigest() == hashes[0]


EIGHT_DEVICES = """
import json, sys, jax, numpy as np, subscale
from configs import tiny
from subscale import train
config = tiny.get_config()
config.train.batch_size = 8
config.train.num_steps = 3
config.train.vocode_every_steps = 0
train.train_and_evaluate(config, sys.argv[1])
losses = [json.loads(l)["loss_bits"] for l in open(sys.argv[1] + "/metrics.jsonl")
          if "loss_bits" in l]
vocoder = subscale.load(sys.argv[1])
mels = [np.full((n, 80), -4.0, np.float32) for n in (2, 3, 1, 2, 2, 3, 1, 2)]
audio = np.concatenate(vocoder.generate(mels, seed=1))
print(json.dumps(dict(devices=jax.device_count(), losses=losses,
                      audio=float(np.abs(audio).sum()))))
"""


def test_eight_devices_match_one(tmp_path):
    results = {}
    for count in (1, 8):
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}"
        )
        out = _run(
            [sys.executable, "-c", EIGHT_DEVICES, str(tmp_path / str(count))], env=env
        )
        assert out.returncode == 0, out.stderr[-2000:]
        results[count] = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert results[8]["devices"] == 8 and results[1]["devices"] == 1
    np.testing.assert_allclose(results[8]["losses"], results[1]["losses"], rtol=1e-5)
    np.testing.assert_allclose(results[8]["audio"], results[1]["audio"], rtol=1e-3)
