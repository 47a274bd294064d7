r"""Command line: train, evaluate or vocode.

`subscale ARGS` (the console command that `pip install` puts on the PATH) is
`python -m subscale.main ARGS`:

  python -m subscale.main --model=speech16k --mode=vocode \
      --input=speech.flac --output=/tmp/out
  python -m subscale.main --config=configs/demo.py --workdir=/tmp/demo
  python -m subscale.main --config=configs/demo.py --workdir=/tmp/demo \
      --mode=evaluate
  python -m subscale.main --config=configs/demo.py --workdir=/tmp/demo \
      --mode=vocode --input=speech.flac --output=/tmp/out

Kept short on purpose: flags, then one call into the library (`commands.run`),
which tests, experiments and Colab call too.
"""

import os
import sys

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from subscale import commands

config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/NAME.py).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and outputs.")
flags.DEFINE_string(
    "model",
    None,
    "evaluate, vocode: a packaged model (subscale.pretrained_models()) or an "
    "exported model folder, instead of --config and --workdir.",
)
flags.DEFINE_enum("mode", "train", commands.MODES, "What to run.")
flags.DEFINE_string(
    "input",
    None,
    "vocode: an audio file or a folder of them; evaluate: a folder to score "
    "instead of the dev split.",
)
flags.DEFINE_string("output", None, "vocode: folder for the wav and PNG files.")
flags.DEFINE_bool("stream", False, "vocode: write audio chunk by chunk as it is made.")
flags.DEFINE_bool(
    "jax_distributed", False, "Call jax.distributed.initialize() (multi-host)."
)
flags.DEFINE_string("coordinator", None, "Multi-host: coordinator HOST:PORT.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
FLAGS = flags.FLAGS


def parse_flags(argv):
    """Parses flags; a bad flag or config override is one line and exit 1."""
    try:
        rest = FLAGS(argv)
        FLAGS.config  # noqa: B018 - loads the config file now, to report it here
        return rest
    except Exception as e:  # noqa: BLE001 - every parse error is the user's input
        message = " ".join(str(e).replace("\\n", " ").split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.jax_distributed:
        jax.distributed.initialize(
            FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id
        )
    sys.exit(
        commands.run(
            FLAGS.mode,
            FLAGS.config,
            FLAGS.workdir,
            input_path=FLAGS.input,
            output=FLAGS.output,
            stream=FLAGS.stream,
            model=FLAGS.model,
        )
    )


def run():
    """The `subscale` console command ([project.scripts] in pyproject.toml).

    Config files import their base (`from configs import default`) from the
    folder the command runs in, as `python -m` finds them; a console script
    does not put that folder on the path by itself.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
