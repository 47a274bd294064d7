r"""speech16k, second edition: the packaged Subscale WaveRNN (B = 16) for 16 kHz speech.

The recipe of `demo_subscale.py` (linear prediction from the mel, its prior on
both softmaxes as logistic bin masses with a uniform tail, pre-emphasis, crop
context; docs/design.md) at hidden 384, trained on the train split of every
file in `../shared/data/manifest.csv` (four voices, 129.7 minutes with the dev
split) for a billion trained samples (80,000 steps of 4 x 3,200), its dev split
kept out. Hidden 384: B = 16 generation runs about 3x real time on 2 CPU
cores at this size on the shipped sampling path (BENCHMARKS.md), and the CPU
time per trained sample, which grows with the square of the size, is what
limits reaching the budget on 2 cores.

The budget is reached in pieces of a few hours, each continuing the previous
one exactly (step, schedule, data order, Adam moments) from the resume bundle
committed in `experiments/results/speech16k/resume/`; see
`experiments/results/speech16k/README.md`. The first edition (hidden 384,
two voices, 14,000 steps) is described by its own config.json in
`subscale/pretrained/speech16k/` until this run replaces it.

Run from the repository root, with `../shared` beside it:
  python -m subscale.main --config=configs/speech16k.py --workdir=runs/speech16k
  # on a new machine, continue from the committed bundle:
  python -m subscale.main --config=configs/speech16k.py --workdir=runs/speech16k \
      --config.train.resume_from=experiments/results/speech16k/resume
"""

from configs import demo_subscale


def get_config():
    config = demo_subscale.get_config()
    config.data.train_dir = "../shared/data/manifest.csv"  # four voices
    config.model.hidden_size = 384  # about 3x real time at B = 16 on 2 cores
    config.model.cond_channels = 96  # mel conditioning width
    config.train.batch_size = 4  # crops per step: 4 x 3,200 samples
    config.train.num_steps = 80_000  # 1.02 billion trained samples (resumable)
    config.train.learning_rate = 3e-3  # peak: a long budget
    config.train.warmup_steps = 500  # linear warm-up
    config.train.end_lr_factor = 0.05  # cosine decay to 1.5e-4
    # Evaluated and shipped: a moving average of the weights over about 1,000
    # steps (kept from step 15,110 on; BENCHMARKS.md, "Weight averaging").
    config.train.ema_decay = 0.999
    config.train.checkpoint_every_steps = 250  # a kill loses at most 250 steps
    config.train.keep_checkpoints = 2  # newest checkpoints kept
    config.train.log_every_steps = 50  # metrics cadence
    config.train.eval_every_steps = 2_000  # dev NLL and free-running cadence
    config.train.eval_crops = 64  # dev crops per evaluation
    config.train.eval_clips = 4  # dev clips vocoded free-running per evaluation
    config.train.vocode_every_steps = 0  # the evaluation's clips suffice
    # Sampling only (training ignores it): a cooler softmax lowers the excess
    # noise that de-emphasis lifts into the low bands (BENCHMARKS.md).
    config.sampling.temperature = 0.6
    return config
