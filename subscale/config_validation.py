"""Checks of config values, each failure naming the field and what is wrong.

`validate` is the one place that checks the fields of a config. It checks the
mel fields and `sparsity.prune` and `sparsity.block_shape` by building
`audio.MelConfig` and `sparsity.SparsityConfig`, which check them as they read
them, also where a config is read without `validate` (a saved one).
"""

from subscale import audio
from subscale import distribution
from subscale import errors
from subscale import sampling
from subscale import sparsity


def _fail(field, value, why):
    raise errors.SubscaleError(f"{field}={value!r}: {why}")


def validate(config, num_devices=None):
    """Raises SubscaleError for the first invalid value in `config`.

    Args:
      config: the ConfigDict.
      num_devices: the number of devices a run trains on, which must divide
        train.batch_size; None when not training.
    """
    d, m, t, s = config.data, config.model, config.train, config.sparsity
    audio.MelConfig.from_config(d)
    if m.subscale_factor < 1:
        _fail("model.subscale_factor", m.subscale_factor, "must be at least 1")
    if m.future_horizon < 0:
        _fail("model.future_horizon", m.future_horizon, "must be >= 0")
    if m.lookback < 0:
        _fail("model.lookback", m.lookback, "must be >= 0")
    if m.hidden_size < 2 or m.hidden_size % 2:
        _fail("model.hidden_size", m.hidden_size, "must be even and >= 2")
    for name in ("cond_channels", "context_summary", "context_channels"):
        if m[name] < 1:
            _fail(f"model.{name}", m[name], "must be positive")
    for name in ("dtype", "param_dtype"):
        if m[name] not in ("float32", "bfloat16", "float16"):
            _fail(f"model.{name}", m[name], "must be float32, bfloat16 or float16")
    if d.seq_len <= 0 or d.seq_len % d.hop_length or d.seq_len % m.subscale_factor:
        _fail(
            "data.seq_len",
            d.seq_len,
            f"must be a positive multiple of data.hop_length={d.hop_length} "
            f"and of model.subscale_factor={m.subscale_factor}",
        )
    eval_seq_len = d.get("eval_seq_len", 0)
    if eval_seq_len and (
        eval_seq_len < 0
        or eval_seq_len % d.hop_length
        or eval_seq_len % m.subscale_factor
    ):
        _fail(
            "data.eval_seq_len",
            eval_seq_len,
            "must be 0 (= data.seq_len) or a positive multiple of data.hop_length "
            "and of model.subscale_factor",
        )
    if t.num_steps < 0:
        _fail("train.num_steps", t.num_steps, "must be >= 0")
    if t.batch_size < 1:
        _fail("train.batch_size", t.batch_size, "must be at least 1")
    if num_devices is not None and t.batch_size % num_devices:
        _fail(
            "train.batch_size",
            t.batch_size,
            f"must be divisible by the {num_devices} devices",
        )
    for name in (
        "checkpoint_every_steps",
        "log_every_steps",
        "eval_every_steps",
        "keep_checkpoints",
    ):
        if t[name] < 1:
            _fail(f"train.{name}", t[name], "must be at least 1")
    if t.vocode_every_steps < 0:
        _fail("train.vocode_every_steps", t.vocode_every_steps, "must be >= 0")
    if t.learning_rate <= 0:
        _fail("train.learning_rate", t.learning_rate, "must be positive")
    if t.get("resume_from", "") and t.get("init_from", ""):
        _fail(
            "train.resume_from",
            t.resume_from,
            "and train.init_from are two ways to start a run: set one",
        )
    if not 0 <= t.get("cooldown_steps", 0) <= t.num_steps:
        _fail(
            "train.cooldown_steps",
            t.cooldown_steps,
            f"must be in [0, train.num_steps={t.num_steps}] (0 = no cool-down)",
        )
    if not 0.0 <= t.get("ema_decay", 0.0) < 1.0:
        _fail("train.ema_decay", t.ema_decay, "must be in [0, 1) (0 = off)")
    if not 0.0 <= t.get("weight_decay", 0.0) < 1.0 / max(t.learning_rate, 1e-12):
        _fail(
            "train.weight_decay",
            t.weight_decay,
            "must be >= 0 (0 = off) and below 1 / train.learning_rate, or an "
            "update would scale the weights by zero or less",
        )
    if t.nonfinite not in ("stop", "skip"):
        _fail("train.nonfinite", t.nonfinite, 'must be "stop" or "skip"')
    if config.sampling.noise not in sampling.NOISE_KINDS:
        _fail(
            "sampling.noise",
            config.sampling.noise,
            f"must be one of {sampling.NOISE_KINDS}",
        )
    sp = config.sampling
    sampling.check_shaping(
        sp.temperature,
        sp.coarse_temperature or None,  # 0: the same as the temperature
        sp.prob_floor,
        prefix="sampling.",
        voiced_temperature=sp.voiced_temperature,
    )
    if not 0.0 <= d.pre_emphasis < 1.0:
        _fail("data.pre_emphasis", d.pre_emphasis, "must be in [0, 1)")
    if m.lp_order < 0:
        _fail("model.lp_order", m.lp_order, "must be >= 0 (0 = no linear prediction)")
    if m.prior not in distribution.PRIORS:
        _fail("model.prior", m.prior, f"must be one of {distribution.PRIORS}")
    distribution.check_tail_mass(m.tail_mass)
    if t.get("tail_mass") is not None:
        distribution.check_tail_mass(t.tail_mass, name="train.tail_mass")
    if m.get("lp_prior", False) and not m.lp_order:
        _fail("model.lp_prior", True, "needs model.lp_order > 0 (the prediction)")
    if m.fine_input_scale < 0:
        _fail("model.fine_input_scale", m.fine_input_scale, "must be >= 0")
    if m.neighbour_rows:
        window = m.lookback + m.future_horizon + 1
        if not 0 < m.neighbour_rows < m.subscale_factor:
            _fail(
                "model.neighbour_rows",
                m.neighbour_rows,
                f"must be 0, or in [1, model.subscale_factor={m.subscale_factor})",
            )
        if m.neighbour_rows * (m.future_horizon + 1) > window:
            _fail(
                "model.neighbour_rows",
                m.neighbour_rows,
                "reaches rows the sampler no longer holds: neighbour_rows x "
                "(future_horizon + 1) must be at most lookback + future_horizon "
                f"+ 1 = {window}",
            )
    low, high = t.input_noise
    if not 0.0 <= low <= high or (high > 0 and low <= 0):
        _fail(
            "train.input_noise",
            tuple(t.input_noise),
            "must be (0, 0) or (low, high) with 0 < low <= high",
        )
    if t.eval_clips < 0:
        _fail("train.eval_clips", t.eval_clips, "must be >= 0")
    if config.sampling.sparse not in ("auto", "on", "off"):
        _fail("sampling.sparse", config.sampling.sparse, "must be auto, on or off")
    if not 0.0 <= s.target < 1.0:
        _fail("sparsity.target", s.target, "must be in [0, 1)")
    if s.every_steps < 1:
        _fail("sparsity.every_steps", s.every_steps, "must be at least 1")
    if s.ramp_steps < 0 or s.start_step < 0:
        _fail(
            "sparsity.ramp_steps",
            s.ramp_steps,
            "ramp_steps and start_step must be >= 0",
        )
    sparsity.SparsityConfig.from_config(config)
