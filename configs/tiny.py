r"""Tiny model for tests: trains in seconds.

Run:
  python -m subscale.main --config=configs/tiny.py --workdir=/tmp/tiny
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.hidden_size = 16  # tiny GRU state
    config.model.cond_channels = 8  # tiny conditioning
    config.model.context_summary = 4  # tiny context summary (B > 1 overrides)
    config.model.context_channels = 4  # tiny context
    config.data.seq_len = 400  # 2 frames per crop
    config.data.eval_seq_len = 0  # eval crops as long as training crops
    config.train.batch_size = 2  # crops per step
    config.train.num_steps = 4  # a few steps
    config.train.learning_rate = 1e-3  # visible movement in few steps
    config.train.warmup_steps = 1  # no real warm-up
    config.train.checkpoint_every_steps = 2  # exercise checkpoints
    config.train.log_every_steps = 1  # every step
    config.train.eval_every_steps = 4  # once at the end
    config.train.eval_crops = 4  # a few dev crops
    config.train.vocode_every_steps = 0  # no vocoding during training
    config.train.vocode_seconds = 0.1  # short when enabled
    config.train.eval_clips = 0  # no free-running clips at evaluation (tests opt in)
    config.train.eval_clip_seconds = 0.1  # short when enabled
    return config
