r"""Sparse WaveRNN: hidden 1024, R and O1..O4 pruned to 95 % in 16x1 blocks.

docs/design.md, "Sparse path". The sampler multiplies all five pruned matrices
from their kept blocks (BENCHMARKS.md: 6.1x the dense sampler at hidden 896, B = 1).

Run:
  python -m subscale.main --config=configs/sparse.py --workdir=/tmp/sparse
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.hidden_size = 1_024  # large and sparse beats small and dense
    config.sparsity.target = 0.95  # Z: 5 % of each pruned matrix survives
    config.sparsity.start_step = 1_000  # t0 as in the paper
    config.sparsity.ramp_steps = 200_000  # S as in the paper
    config.sparsity.every_steps = 500  # mask update interval, as in the paper
    config.sparsity.block_shape = (16, 1)  # 16 outputs share one input
    # R (gates separately) and the output layers: with O1..O4 dense they would
    # cost more than the sparse R in the sampling step.
    config.sparsity.prune = ("R", "O1", "O2", "O3", "O4")
    return config
