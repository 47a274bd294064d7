"""The `subscale` console command ([project.scripts]) is `python -m subscale.main`."""

import os
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD_MODE = ["--config=configs/tiny.py", "--workdir=/unused", "--mode=dance"]
# What `python -m subscale.main` prints for BAD_MODE (tests/bad_input_test.py).
BAD_MODE_ERROR = [
    "error: flag --mode=dance: value should be one of <train|evaluate|vocode>"
]


def _entry_point():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]["subscale"]


def _run(command):
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_entry_point_parses_flags_as_python_m_subscale_main():
    # What the script that pip writes does: load the entry point and exit with
    # what it returns; run from this checkout so that its package is imported.
    script = (
        "import sys; from importlib import metadata; "
        f"sys.exit(metadata.EntryPoint('subscale', {_entry_point()!r}, "
        "'console_scripts').load()())"
    )
    out = _run([sys.executable, "-c", script, *BAD_MODE])
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == BAD_MODE_ERROR
    installed = shutil.which("subscale")
    if installed:  # after `pip install -e .`: the script on the PATH
        out = _run([installed, *BAD_MODE])
        assert out.returncode == 1, out.stderr
        assert out.stderr.strip().splitlines() == BAD_MODE_ERROR
