r"""speech16k: the packaged pretrained Subscale WaveRNN (B = 16) for 16 kHz speech.

The recipe of `demo_subscale.py` (linear prediction from the mel, pre-emphasis,
crop context; `experiments/recipe_ablation.py`) with a larger cell, trained on
the train split of every file in `../shared/data/manifest.csv` (37 minutes, two
voices) for many CPU-hours, its dev split kept out. The size is chosen so that
B = 16 vocodes faster than real time on 2 CPU cores. The trained weights ship
in `subscale/pretrained/speech16k/` (see `subscale/pretrained/README.md`, the
model card, and `experiments/export_pretrained.py`).

The run resumes exactly from its last checkpoint, so the budget can be reached
in pieces. Run from the repository root, with `../shared` beside it:
  python -m subscale.main --config=configs/speech16k.py --workdir=runs/speech16k
"""

from configs import demo_subscale


def get_config():
    config = demo_subscale.get_config()
    config.data.train_dir = "../shared/data/manifest.csv"  # all 37 minutes
    config.model.hidden_size = 384  # faster than real time at B = 16 on 2 cores
    config.model.cond_channels = 96  # mel conditioning width
    config.train.batch_size = 4  # crops per step: 4 x 3,200 samples
    config.train.num_steps = 14_000  # over 4 CPU-hours (resumable)
    config.train.learning_rate = 4e-3  # lower than the demo: a long budget
    config.train.warmup_steps = 200  # linear warm-up
    config.train.end_lr_factor = 0.05  # cosine decay to 2e-4
    config.train.checkpoint_every_steps = 250  # a kill loses at most 250 steps
    config.train.keep_checkpoints = 2  # newest checkpoints kept
    config.train.log_every_steps = 50  # metrics cadence
    config.train.eval_every_steps = 1_000  # dev NLL and free-running cadence
    config.train.eval_crops = 64  # dev crops per evaluation
    config.train.eval_clips = 4  # dev clips vocoded free-running per evaluation
    config.train.vocode_every_steps = 0  # the evaluation's clips suffice
    # Sampling only (training ignores it): a cooler softmax lowers the excess
    # noise that de-emphasis lifts into the low bands (BENCHMARKS.md).
    config.sampling.temperature = 0.6
    return config
