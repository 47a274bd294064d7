r"""Sparse Subscale WaveRNN 16x: the paper's fastest configuration, in small.

configs/subscale16.py at hidden 1024, R and O1..O4 pruned to 95 % in 16x1
blocks (configs/sparse.py).

Run:
  python -m subscale.main --config=configs/subscale16_sparse.py \
      --workdir=/tmp/subscale16_sparse
"""

from configs import sparse
from configs import subscale16


def get_config():
    config = subscale16.get_config()
    config.model.hidden_size = 1_024  # large and sparse
    config.sparsity = sparse.get_config().sparsity  # 95 % in 16x1 blocks
    return config
