r"""The demo WaveRNN with four times the training budget: about an hour on 2 CPU cores.

The same model, recipe, data, crops and peak learning rate as `demo.py`; 6,400
steps instead of 1,600 (the cosine decay stretched to match). With the recipe
before the ablation (no linear prediction, pre-emphasis or crop context) it
scored below the forward-adaptive LPC reference of
`experiments/lpc_reference.py` on the embedded corpus's dev split
(BENCHMARKS.md, "Training"); it has not been rerun with the new recipe.

Run:
  python -m subscale.main --config=configs/demo_long.py --workdir=/tmp/demo_long
"""

from configs import demo


def get_config():
    config = demo.get_config()
    config.train.num_steps = 6_400  # about 55 minutes on 2 cores
    config.train.checkpoint_every_steps = 400  # a kill loses at most 400 steps
    config.train.eval_every_steps = 1_600  # dev NLL cadence
    config.train.vocode_every_steps = 3_200  # dev clip wav + PNG cadence
    return config
