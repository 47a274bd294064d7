r"""The demo vocoder trained on your own corpus: copy this file and edit train_dir.

`data.train_dir` takes any of these layouts (`input_pipeline.list_audio`):

- a folder of audio files (wav, flac, ogg, mp3, aiff), searched recursively;
  a stable 5 % of the files (by a hash of each relative path) is the dev split;
- an LJSpeech folder: `metadata.csv` with `id|text|normalized text` lines and
  the audio in `wavs/<id>.wav` (dev split by the same hash), or the path of
  that `metadata.csv`;
- a `manifest.csv` with `file` (relative to the manifest) and `split` (train or
  dev) columns, or a folder holding one.

Files must be mono; files at another rate are resampled to 16 kHz (said once in
the log) unless `data.resample=False`. An unreadable, empty, stereo or silent
file stops the run with one line naming it; `--config.data.skip_bad_files=True`
logs and skips such files instead.

Run:
  python -m subscale.main --config=configs/my_corpus.py --workdir=workdirs/mine \
      --config.data.train_dir=/path/to/my_corpus
  tensorboard --logdir=workdirs/mine
"""

from configs import demo


def get_config():
    config = demo.get_config()
    config.data.train_dir = "/path/to/my_corpus"  # your folder, LJSpeech or manifest
    config.data.resample = True  # other sample rates are resampled to 16 kHz
    config.data.skip_bad_files = False  # True: log and skip bad files
    config.train.num_steps = 20_000  # a real corpus deserves more than the demo
    config.train.checkpoint_every_steps = 1_000  # resumable: rerun to continue
    config.train.eval_every_steps = 1_000  # dev NLL and free-running clips
    config.train.vocode_every_steps = 5_000  # a dev clip as wav + PNG (and TB)
    return config
