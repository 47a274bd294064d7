"""Kill and resume, non-finite steps, determinism and many devices.

Training runs in subprocesses of the CLI (the kill test must kill a process)
on a four-file synthetic corpus. They share a JAX compilation cache, filled by
the first, uninterrupted run, so a restart costs start-up and not compilation.

Slow cases (more kills, more seeds): `python -m pytest -q -m slow
tests/reliability_test.py`.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import soundfile

import subscale
from configs import tiny
from subscale import checkpointing
from subscale import errors
from subscale import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 20
CHECKPOINT_EVERY = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three 1 s training files and one dev file (tones in a little noise)."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    rows = ["file,split"]
    for n in range(4):
        wave = 0.3 * np.sin(2 * np.pi * (150 + 50 * n) * t)
        wave += 0.02 * rng.standard_normal(t.shape)
        soundfile.write(folder / f"u{n}.flac", wave.astype(np.float32), 16_000)
        rows.append(f"u{n}.flac,{'dev' if n == 3 else 'train'}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment with a shared persistent compilation cache."""
    return dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
    )


def _train_args(workdir, corpus, *overrides):
    return [
        sys.executable,
        "-m",
        "subscale.main",
        "--config=configs/tiny.py",
        f"--workdir={workdir}",
        f"--config.data.train_dir={corpus}",
        f"--config.train.num_steps={STEPS}",
        f"--config.train.checkpoint_every_steps={CHECKPOINT_EVERY}",
        f"--config.train.eval_every_steps={STEPS}",
        *overrides,
    ]


def _run(args, env=None, timeout=300):
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def _metrics(workdir):
    """Complete lines of metrics.jsonl, without the timing fields."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    records = [json.loads(line) for line in text.split("\n")[:-1]]
    for record in records:
        for field in ("steps_per_second", "cpu_seconds", "time"):
            record.pop(field, None)
    return records


def _logged_step(workdir):
    try:
        return max([r["step"] for r in _metrics(workdir)], default=0)
    except ValueError:  # a line being written
        return 0


def _saves_in_flight(workdir, since):
    """Orbax's temporary folders (a save not yet complete) touched after `since`."""
    folder = os.path.join(workdir, "checkpoints")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            if "tmp" in name and os.stat(os.path.join(folder, name)).st_mtime >= since:
                found.append(name)
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return found


def _complete_checkpoints(workdir):
    folder = os.path.join(workdir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return [int(name) for name in names if name.isdigit()]


def _run_and_kill(args, env, log, when, timeout=120):
    """Starts `args` (stderr to `log`) and SIGKILLs it once `when(started)` holds.

    Returns:
      (exit code, negative when killed; step it resumed from, or 0).
    """
    started = time.time()
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        while proc.poll() is None and not when(started):
            assert time.time() - started < timeout, "neither finished nor killed"
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        code = proc.wait()
    with open(log) as f:
        resumed = re.search(r"Resumed from step (\d+)", f.read())
    return code, int(resumed.group(1)) if resumed else 0


def _kill_plan(seed, kills, duration):
    """Seeded kill moments (kind, value), kind one of

    step: once step `value` is logged (and a checkpoint after step 1 is complete,
      so that the next run resumes from the middle);
    save: while the next checkpoint is being written;
    time: `value` seconds after the start (start-up included).
    """
    rng = np.random.default_rng(seed)

    def draw(kind):
        if kind == "step":
            return kind, int(rng.integers(2, STEPS))
        if kind == "time":
            return kind, float(rng.uniform(0.05, 0.25) * duration)
        return kind, None

    plan = [draw("step"), draw("save"), draw("time")]
    while len(plan) < kills:
        plan.append(draw(str(rng.choice(["step", "save", "time"]))))
    return plan[:kills]


def _state(workdir):
    """The full train state of the newest checkpoint, restored with orbax."""
    config = checkpointing.load_config(workdir)
    trainer = train.Trainer(config)
    mngr = checkpointing.manager(workdir, config, read_only=True)
    state, step = checkpointing.restore(mngr, trainer.abstract_state())
    return step, jax.tree_util.tree_leaves(jax.device_get(state))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus, env):
    """(workdir, seconds) of an uninterrupted run of STEPS steps."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    started = time.time()
    done = _run(_train_args(workdir, corpus), env)
    assert done.returncode == 0, done.stderr[-2000:]
    return workdir, time.time() - started


def _assert_same_run(workdir_a, workdir_b):
    """Same final train state, bit for bit, and the same logged metrics."""
    step_a, state_a = _state(workdir_a)
    step_b, state_b = _state(workdir_b)
    assert step_a == step_b == STEPS
    for a, b in zip(state_a, state_b, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _metrics(workdir_a) == _metrics(workdir_b)


def test_training_twice_gives_identical_states(tmp_path, corpus, env, straight):
    done = _run(_train_args(str(tmp_path), corpus), env)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_run(straight[0], str(tmp_path))


def _kill_and_resume(tmp_path, corpus, env, straight, seed, kills):
    straight, duration = straight
    resumed = str(tmp_path / "resumed")
    args = _train_args(resumed, corpus)
    runs = []
    for n, (kind, value) in enumerate(_kill_plan(seed, kills, duration)):
        first = _logged_step(resumed)
        if kind == "step":
            target = max(value, first + 1)

            def when(_, target=target):
                return _logged_step(resumed) >= target and any(
                    step > 1 for step in _complete_checkpoints(resumed)
                )
        elif kind == "save":

            def when(since, first=first):
                return _logged_step(resumed) > first and _saves_in_flight(
                    resumed, since
                )
        else:

            def when(since, value=value):
                return time.time() - since >= value

        since = time.time()
        code, resumed_from = _run_and_kill(args, env, tmp_path / f"{n}.log", when)
        in_flight = _saves_in_flight(resumed, since)
        runs.append((kind, value, code, resumed_from, _logged_step(resumed), in_flight))
    code, resumed_from = _run_and_kill(
        args, env, tmp_path / "last.log", lambda _: False
    )
    runs.append(("none", None, code, resumed_from, _logged_step(resumed), []))
    print("runs (kill, value, exit code, resumed from, logged, saving):", runs)

    killed = -signal.SIGKILL
    assert runs[-1][2] == 0, open(tmp_path / "last.log").read()[-2000:]
    assert runs[0][2] == killed and runs[1][2] == killed, runs
    assert runs[1][5], f"no save was in flight at the 'save' kill: {runs}"
    assert max(run[3] for run in runs) > 1, "never resumed from the middle"
    # Replayed steps log the same numbers, and every step is logged once.
    _assert_same_run(straight, resumed)


def test_kill_and_resume_is_bit_identical(tmp_path, corpus, env, straight):
    _kill_and_resume(tmp_path, corpus, env, straight, seed=0, kills=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_often_and_resume_is_bit_identical(tmp_path, corpus, env, straight, seed):
    _kill_and_resume(tmp_path, corpus, env, straight, seed=seed, kills=6)


def test_nonfinite_stop_on_the_cli_keeps_complete_checkpoints(tmp_path, corpus, env):
    workdir = str(tmp_path)
    poisoned = _run(
        _train_args(
            workdir,
            corpus,
            "--config.train.num_steps=6",
            "--config.train.checkpoint_every_steps=2",
            "--config.train.learning_rate=1e30",
            "--config.train.clip_norm=1e30",
        ),
        env,
    )
    assert poisoned.returncode == 1
    assert "Traceback" not in poisoned.stderr
    error = poisoned.stderr.strip().splitlines()[-1]
    assert error.startswith("error: non-finite loss or gradient at step 3"), error
    # The save of step 2 was still in flight when step 3 failed: it completes.
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
    step, _ = _state(workdir)
    assert step == 2
    params = jax.tree_util.tree_leaves(subscale.load(workdir).params)
    assert all(np.all(np.isfinite(x)) for x in params)


DEVICES = """
import hashlib, json, sys, jax, numpy as np, subscale
from configs import tiny
from subscale import api, train
config = tiny.get_config()
config.data.train_dir = sys.argv[2]
config.train.batch_size = 8
config.train.num_steps = 5
config.train.eval_every_steps = 5
train.train_and_evaluate(config, sys.argv[1])
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
vocoder = subscale.create(config, seed=3)
rng = np.random.default_rng(0)
mels = [rng.uniform(-8, 0, (n, 80)).astype(np.float32)
        for n in (2, 3, 1, 2, 2, 3, 1, 2)]
batch, _ = api._spread_over_devices(np.zeros((8, 3, 80)), np.zeros(8))
sharding = getattr(batch, "sharding", None)
def digest(waves):
    return hashlib.sha1(np.concatenate(waves).tobytes()).hexdigest()
print(json.dumps(dict(
    devices=jax.device_count(),
    batch_devices=len(sharding.device_set) if sharding else 1,
    losses=[r["loss_bits"] for r in records if "loss_bits" in r],
    dev_bits=[r["dev_bits"] for r in records if "dev_bits" in r],
    eight=digest(vocoder.generate(mels, seed=1)),
    three=digest(vocoder.generate(mels[:3], seed=1)),
)))
"""


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory, corpus):
    """Results of DEVICES in a 1-device and an 8-device process, run side by side."""
    procs = {}
    for count in (1, 8):
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}"
        )
        workdir = str(tmp_path_factory.mktemp(f"devices{count}"))
        procs[count] = subprocess.Popen(
            [sys.executable, "-c", DEVICES, workdir, corpus],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for count, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        results[count] = json.loads(out.strip().splitlines()[-1])
    print("\n1 device:", results[1], "\n8 devices:", results[8])
    return results


def test_eight_devices_match_one(device_runs):
    one, eight = device_runs[1], device_runs[8]
    assert one["devices"] == one["batch_devices"] == 1
    assert eight["devices"] == eight["batch_devices"] == 8
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(eight["dev_bits"], one["dev_bits"], rtol=1e-5)
    # Sampling: 8 utterances sharded one per device, 3 replicated; same audio.
    assert eight["eight"] == one["eight"]
    assert eight["three"] == one["three"]


def test_same_seed_same_audio_across_processes(corpus, device_runs):
    config = tiny.get_config()
    config.data.train_dir = corpus
    vocoder = subscale.create(config, seed=3)
    rng = np.random.default_rng(0)
    mels = [
        rng.uniform(-8, 0, (n, 80)).astype(np.float32) for n in (2, 3, 1, 2, 2, 3, 1, 2)
    ]
    waves = vocoder.generate(mels[:3], seed=1)
    here = hashlib.sha1(np.concatenate(waves).tobytes()).hexdigest()
    assert here == device_runs[1]["three"] == device_runs[8]["three"]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, corpus):
    """--jax_distributed: 2 processes x 2 CPU devices train as 1 x 4 devices."""
    args = (
        "--config.train.batch_size=4",
        "--config.train.num_steps=4",
        "--config.train.checkpoint_every_steps=2",
        "--config.train.eval_every_steps=4",
    )
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
    )
    single = str(tmp_path / "single")
    done = _run(_train_args(single, corpus, *args), env)
    assert done.returncode == 0, done.stderr[-2000:]

    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    shared = str(tmp_path / "shared")
    port = _free_port()
    procs = [
        subprocess.Popen(
            _train_args(
                shared,
                corpus,
                *args,
                "--jax_distributed",
                f"--coordinator=localhost:{port}",
                "--num_processes=2",
                f"--process_id={n}",
            ),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]

    one, two = _metrics(single), _metrics(shared)
    assert [r["step"] for r in two] == [r["step"] for r in one]  # logged once
    for a, b in zip(one, two, strict=True):
        for key in ("loss_bits", "dev_bits"):
            if key in a:
                np.testing.assert_allclose(b[key], a[key], rtol=1e-5)
    step_a, state_a = _state(single)
    step_b, state_b = _state(shared)
    assert step_a == step_b == 4
    for a, b in zip(state_a, state_b, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def _wait_for(condition, proc, timeout=120):
    started = time.time()
    while not condition():
        assert proc.poll() is None, "the run ended before the test could act"
        assert time.time() - started < timeout, "timed out"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, corpus, env):
    """A run stopped by SIGTERM mid-way, and what a second run meanwhile met.

    Returns:
      dict(workdir, pid, code, log, checkpoints, refusal): the stopped run's
      workdir, process id, exit code, stderr and checkpoint steps; the error
      of a second training started on its workdir while it ran.
    """
    root = tmp_path_factory.mktemp("stopped")
    workdir = str(root / "workdir")
    log = root / "stderr.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            _train_args(workdir, corpus),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _wait_for(lambda: _logged_step(workdir) >= 1, proc)
        # In this process, so that it meets the run still training.
        config = tiny.get_config()
        config.data.train_dir = corpus
        with pytest.raises(errors.SubscaleError) as refusal:
            train.train_and_evaluate(config, workdir)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    return dict(
        workdir=workdir,
        pid=proc.pid,
        code=code,
        log=log.read_text(),
        checkpoints=sorted(_complete_checkpoints(workdir)),
        refusal=str(refusal.value),
    )


def test_a_second_run_on_a_workdir_in_training_is_refused(stopped):
    assert stopped["refusal"] == (
        f"{stopped['workdir']}: process {stopped['pid']} on "
        f"{socket.gethostname()} is training in this workdir (lock "
        f"{stopped['workdir']}/train.lock); wait for it to finish, stop it, or "
        "use another --workdir"
    )


def test_sigterm_saves_the_current_step_and_resumes_bit_identically(
    tmp_path, corpus, env, straight, stopped
):
    assert stopped["code"] == 0, stopped["log"][-2000:]
    assert "Received SIGTERM: stopping after this step" in stopped["log"]
    found = re.search(r"Stopped at step (\d+) on SIGTERM", stopped["log"])
    assert found, stopped["log"][-2000:]
    step = int(found.group(1))
    assert 0 < step < STEPS
    # The step it stopped at is the newest checkpoint and the last logged step.
    assert stopped["checkpoints"][-1] == step == _logged_step(stopped["workdir"])
    with open(os.path.join(stopped["workdir"], "train.lock")) as f:
        assert f.read() == ""  # released
    resumed = str(tmp_path / "resumed")
    shutil.copytree(stopped["workdir"], resumed)
    done = _run(_train_args(resumed, corpus), env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Resumed from step {step} " in done.stderr
    _assert_same_run(straight[0], resumed)


SECOND_SIGNAL = """
import time
from subscale import signals
stop = signals.StopRequest()
print("ready", flush=True)
while True:  # a save that takes long
    time.sleep(0.01)
"""


def test_a_second_signal_stops_at_once():
    proc = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        line = proc.stderr.readline()
        assert "Received SIGINT: stopping after this step" in line
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == -signal.SIGINT
        assert "Received SIGINT again: stopping at once" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# Runs the rest of its command line with writes past argv[1] bytes of a file
# failing (EFBIG), as they would on a full disk, in every library the process
# uses (TensorStore too).
SMALL_FILES_ONLY = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_a_failed_checkpoint_write_stops_and_a_later_run_resumes(
    tmp_path, corpus, env, straight, stopped
):
    workdir = str(tmp_path / "workdir")
    shutil.copytree(stopped["workdir"], workdir)
    step = stopped["checkpoints"][-1]
    before = _files(os.path.join(workdir, "checkpoints", str(step)))
    # The checkpoints' largest files are tens of kB; logs go to a pipe.
    args = _train_args(workdir, corpus)
    full = _run([sys.executable, "-c", SMALL_FILES_ONLY, "16000", *args[1:]], env)
    assert full.returncode == 1, full.stderr[-3000:]
    # Orbax logs the failed write with its traceback from its own thread, which
    # may finish after the run's one-line error: the error is the last line
    # of ours, not always the last line of all.
    ours = [x for x in full.stderr.strip().splitlines() if x.startswith("error: ")]
    error = ours[-1] if ours else full.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"error: {workdir}/checkpoints: cannot write a checkpoint ("
    ), error
    assert "File too large" in error
    assert f"the newest complete one, step {step}, is intact" in error
    assert max(_complete_checkpoints(workdir)) == step
    assert _files(os.path.join(workdir, "checkpoints", str(step))) == before

    done = _run(_train_args(workdir, corpus), env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Resumed from step {step} " in done.stderr
    _assert_same_run(straight[0], workdir)


def _files(folder):
    """{path under folder: bytes} of every file in it."""
    out = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out
