r"""Sparse WaveRNN: hidden 1024 pruned to 95 % in 16x1 blocks (PAPER.md section 3).

Run:
  python -m subscale.main --config=configs/sparse.py --workdir=/tmp/sparse
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.hidden_size = 1_024  # large and sparse beats small and dense
    config.sparsity.target = 0.95  # Z: 5 % of R's weights survive
    config.sparsity.start_step = 1_000  # t0 as in the paper
    config.sparsity.ramp_steps = 200_000  # S as in the paper
    config.sparsity.every_steps = 500  # mask update interval, as in the paper
    config.sparsity.block_shape = (16, 1)  # 16 outputs share one input
    config.sparsity.prune = ("R",)  # the recurrent matrix, gates separately
    return config
