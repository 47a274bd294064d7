r"""Demo WaveRNN: small enough to train on 2 CPU cores in about 15 minutes.

Trains on the embedded demo corpus (`subscale/demo_data`, 197 s of speech) with
the recipe that won the recipe ablation (`experiments/recipe_ablation.py`,
docs/design.md "Training recipe"): a linear prediction from the mel fed to the
cell and centring both softmaxes (the LP prior), pre-emphasis of the modelled
waveform and real samples around each crop as context.

Run:
  python -m subscale.main --config=configs/demo.py --workdir=/tmp/demo
  python -m subscale.main --config=configs/demo.py --workdir=/tmp/demo \
      --mode=vocode --output=/tmp/demo/vocoded \
      --input=subscale/demo_data/train/en_US_f_Allison/vm-tomakecall.flac
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.hidden_size = 256  # small GRU state: fast on a CPU
    config.model.cond_channels = 64  # mel conditioning width
    config.data.seq_len = 800  # 50 ms crops: short scans train faster per sample
    config.train.batch_size = 16  # crops per step: small batches, more updates
    config.model.lp_order = 16  # linear prediction from the mel (the largest gain)
    config.model.lp_prior = True  # both softmaxes centred on that prediction
    config.data.pre_emphasis = 0.85  # model x[t] - 0.85 x[t-1]; de-emphasised after
    config.data.crop_context = True  # real samples around each crop as context
    config.train.num_steps = 1_600  # about 15 minutes on 2 cores
    config.train.learning_rate = 8e-3  # high: the budget is short (beat 2e-3 and 4e-3)
    config.train.warmup_steps = 100  # short warm-up
    config.train.checkpoint_every_steps = 200  # a kill loses at most 200 steps
    config.train.log_every_steps = 25  # metrics cadence
    config.train.eval_every_steps = 800  # dev NLL cadence
    config.train.eval_crops = 64  # dev crops per evaluation
    config.train.vocode_every_steps = 800  # dev clip wav + PNG cadence
    return config
