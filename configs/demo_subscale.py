r"""Demo Subscale WaveRNN (B = 16): `demo.py` with 16 samples per step.

Same cell size and training budget as `demo.py`, so their dev NLLs compare.

Run:
  python -m subscale.main --config=configs/demo_subscale.py --workdir=/tmp/demo16
"""

from configs import demo


def get_config():
    config = demo.get_config()
    config.model.subscale_factor = 16  # B: 16 interleaved sub-sequences
    config.model.future_horizon = 16  # F: see configs/subscale16.py
    config.model.lookback = 32  # W: see configs/subscale16.py
    config.model.context_summary = 32  # per-sample summary width
    config.model.context_channels = 64  # context fed to the cell
    config.data.seq_len = 3_200  # 200 columns of 16 rows per crop
    config.train.batch_size = 4  # crops per step: 4 x 3,200 samples, as demo.py
    return config
