"""Correctness of the model and the sampler: masks, dependencies, equivalences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from subscale import audio
from subscale import distribution
from subscale import folding
from subscale import models
from subscale import pitch
from subscale import sampling
from tests import oracles

HOP = 4
N_MELS = 5


def tiny_config(factor=1, horizon=0, lookback=0, hidden=16, **options):
    """A tiny ModelConfig; `options` are further ModelConfig fields."""
    return models.ModelConfig(
        **options,
        hidden_size=hidden,
        cond_channels=8,
        n_mels=N_MELS,
        hop_length=HOP,
        subscale_factor=factor,
        future_horizon=horizon,
        lookback=lookback,
        context_summary=6,
        context_channels=7,
    )


@functools.lru_cache(maxsize=None)
def setup(factor=1, horizon=0, lookback=0, length=48, seed=0, **options):
    """A model with random parameters, a random waveform and padded mel.

    `options` are further ModelConfig fields. Cached: copy the parameters
    before changing them.
    """
    cfg = tiny_config(factor, horizon, lookback, **options)
    model = models.SubscaleWaveRNN(cfg)
    rng = np.random.default_rng(seed)
    samples = jnp.asarray(rng.integers(-20000, 20000, (1, length)), jnp.int16)
    mel = jnp.asarray(rng.normal(size=(1, length // HOP, N_MELS)), jnp.float32)
    padded = sampling.pad_frames(mel, jnp.array([length // HOP]))
    params = model.init(jax.random.PRNGKey(seed), samples, padded)["params"]
    # Random, not small, parameters so that every existing path is visible.
    params = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(seed + 1), p.shape),
        params,
    )
    return cfg, model, params, samples, mel, padded


def test_parameter_shapes_and_count():
    cfg, model, params, *_ = setup(factor=4, horizon=2, lookback=3)
    h = cfg.hidden_size
    cell = params["cell"]
    assert cell["R"].shape == (h, 3 * h)
    assert cell["I_coarse"].shape == (3, h // 2)
    assert cell["O1"]["kernel"].shape == (h // 2, h // 2)
    assert cell["O2"]["kernel"].shape == (h // 2, models.NUM_CLASSES)
    assert cell["O4"]["kernel"].shape == (h // 2, models.NUM_CLASSES)
    # [prev coarse, prev fine], mel conditioning and context enter the gates.
    assert cell["I"]["kernel"].shape == (2, 3 * h)
    assert cell["I_cond"]["kernel"].shape == (8, 3 * h)
    assert cell["I_context"]["kernel"].shape == (7, 3 * h)
    ctx = params["context"]
    assert ctx["summary_kernel"].shape == (cfg.window, 2, 6)
    assert ctx["mix"].shape == (3, 6, 7)
    assert ctx["row_embed"].shape == (4, 7)
    plain = setup()[2]
    assert "context" not in plain
    assert models.param_count(plain) == sum(
        x.size for x in jax.tree_util.tree_leaves(plain)
    )


def test_wavernn_896_has_paper_size():
    cfg = models.ModelConfig(
        hidden_size=896, cond_channels=128, n_mels=80, hop_length=200
    )
    model = models.SubscaleWaveRNN(cfg)
    shapes = jax.eval_shape(
        model.init,
        jax.random.PRNGKey(0),
        jnp.zeros((1, 400), jnp.int16),
        jnp.zeros((1, 2 + 2 * models.MEL_PAD, 80)),
    )["params"]
    count = models.param_count(shapes)
    assert 3.0e6 < count < 3.6e6  # "about 3M parameters"


def test_log_probs_shape_and_normalisation():
    cfg, model, params, samples, _, padded = setup()
    lp = model.apply({"params": params}, samples, padded)
    assert lp.shape == samples.shape
    assert np.all(np.asarray(lp) <= 0)
    logits_c, logits_f = model.apply(
        {"params": params}, samples, padded, method="logits"
    )
    assert logits_c.shape == samples.shape + (256,)
    coarse, fine = audio.split(samples)
    expected = (
        jnp.take_along_axis(jax.nn.log_softmax(logits_c), coarse[..., None], -1)
        + jnp.take_along_axis(jax.nn.log_softmax(logits_f), fine[..., None], -1)
    )[..., 0]
    np.testing.assert_allclose(lp, expected, atol=1e-5)


def test_coarse_logits_do_not_see_current_coarse_but_fine_do():
    cfg, model, params, samples, _, padded = setup()
    t = 20
    base_c, base_f = model.apply({"params": params}, samples, padded, method="logits")
    coarse, fine = audio.split(samples)
    changed = samples.at[0, t].set(audio.join(coarse[0, t] ^ 0x55, fine[0, t]))
    new_c, new_f = model.apply({"params": params}, changed, padded, method="logits")
    np.testing.assert_array_equal(new_c[0, t], base_c[0, t])
    assert np.abs(new_f[0, t] - base_f[0, t]).max() > 1e-4

    # And with gradients: d coarse logits[t] / d c_t is zero through the mask.
    def coarse_logit_sum(c_scaled):
        x = model.apply(
            {"params": params}, c_scaled, method=lambda m, c: m.cell.coarse_input(c)
        )
        return x.sum()

    assert coarse_logit_sum(jnp.float32(0.3)) != 0  # I* exists and feeds fine


def _perturbed_log_probs(model, params, samples, padded):
    """Log-probs of the base waveform and of one copy per changed position."""
    length = samples.shape[1]
    coarse, fine = audio.split(samples[0])
    changed = audio.join((coarse + 97) % 256, (fine + 131) % 256)
    # Row `length` of the batch is the unchanged waveform, so that every row goes
    # through the same computation.
    eye = jnp.eye(length + 1, length, dtype=bool)
    batch = jnp.where(eye, changed[None, :], samples[0][None, :]).astype(jnp.int16)
    mel = jnp.broadcast_to(padded, (length + 1,) + padded.shape[1:])
    out = np.asarray(model.apply({"params": params}, batch, mel))
    return out[-1], out[:-1]


@pytest.mark.parametrize(
    "factor,horizon,lookback,length",
    [
        (1, 0, 0, 32),
        pytest.param(2, 1, 2, 40, marks=pytest.mark.slow),
        pytest.param(4, 2, 3, 64, marks=pytest.mark.slow),
        pytest.param(16, 1, 1, 128, marks=pytest.mark.slow),
        (16, 3, 2, 160),
    ],
)
def test_exact_dependencies(factor, horizon, lookback, length):
    cfg, model, params, samples, _, padded = setup(factor, horizon, lookback, length)
    check_dependencies(model, params, samples, padded, factor, horizon)


# XLA may round the same waveform differently by its position in the batch
# (about 2e-6 nats on an AMD EPYC with AVX2), while a real dependency of these
# random models moves a log-prob by about 0.05 (a weak one through saturated
# gates by 3e-5). So a move beyond LEAK_MARGIN is a dependency (a leak of 1e-3
# is caught: `test_dependency_check_catches_a_model_that_peeks_one_sample_ahead`)
# and one that must exist has to move beyond EXISTS_MARGIN, 5x the rounding.
LEAK_MARGIN = 1e-4
EXISTS_MARGIN = 1e-5


def check_dependencies(model, params, samples, padded, factor, horizon):
    """Changes each sample p in turn and checks which log-probs move."""
    length = samples.shape[1]
    base, out = _perturbed_log_probs(model, params, samples, padded)
    moved = np.abs(out - base[None, :])
    # changed[p, q]: q's log-prob moved with p.
    changed = moved > LEAK_MARGIN
    exists = moved > EXISTS_MARGIN
    p, q = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    allowed = oracles.may_depend(p, q, factor, horizon) | (p == q)
    step = lambda t: folding.wavefront_step(  # noqa: E731
        *folding.grid_position(t, factor), horizon
    )
    leaks = changed & ~allowed
    assert not leaks.any(), f"leaks (p, q): {np.argwhere(leaks)[:10].tolist()}"
    assert not (changed & (step(p) >= step(q)) & (p != q)).any()
    # The dependencies that must exist do.
    for qq in range(length):
        s, i = folding.grid_position(qq, factor)
        if i > 0:
            assert exists[folding.original_time(s, i - 1, factor), qq]
        if s >= 1 and horizon >= 1:
            cols = folding.num_columns(length, factor)
            ahead = [
                exists[folding.original_time(s - 1, k, factor), qq]
                for k in range(i + 1, min(cols, i + horizon + 1))
            ]
            if ahead:
                assert any(ahead), (qq, s, i)


class _PeekingModel:
    """A model that leaks: log P(q) moves by about 1e-3 nats with sample q + 1,
    which no subscale factor allows (q + 1 is a later row, or row 0 of the next
    column)."""

    def __init__(self, model):
        self.model = model

    def apply(self, variables, samples, mel):
        log_p = self.model.apply(variables, samples, mel)
        coarse, _ = audio.split(samples)
        ahead = jnp.pad(audio.scale(coarse)[:, 1:], ((0, 0), (0, 1)))
        return log_p + 1e-3 * ahead


@pytest.mark.parametrize("factor,horizon,lookback", [(1, 0, 0), (4, 2, 3)])
def test_dependency_check_catches_a_model_that_peeks_one_sample_ahead(
    factor, horizon, lookback
):
    cfg, model, params, samples, _, padded = setup(factor, horizon, lookback, 32)
    check_dependencies(model, params, samples, padded, factor, horizon)
    with pytest.raises(AssertionError, match="leaks"):
        check_dependencies(
            _PeekingModel(model), params, samples, padded, factor, horizon
        )


@pytest.mark.parametrize("factor,horizon,lookback", [(4, 2, 3), (16, 1, 2)])
def test_context_network_reads_exactly_its_window(factor, horizon, lookback):
    cfg, model, params, samples, _, padded = setup(factor, horizon, lookback, 128)
    length = samples.shape[1]

    def context(x):
        grid = folding.fold(x, factor, axis=1)
        return model.apply({"params": params}, grid, method=lambda m, g: m.context(g))

    # A ReLU can be off at one input, so take the union over a few inputs.
    reads = False
    for seed in range(4):
        x = jax.random.normal(jax.random.PRNGKey(seed), (1, length, 2))
        jac = jax.jacobian(lambda x: context(x).sum(-1))(x)  # [1, B, n, 1, L, 2]
        reads = reads | (np.abs(np.asarray(jac)[0, :, :, 0]).sum(-1) > 0)  # [B, n, L]
    p = np.arange(length)
    for s in range(factor):
        for i in range(length // factor):
            q = folding.original_time(s, i, factor)
            window = oracles.in_context_window(p, q, factor, lookback, horizon)
            np.testing.assert_array_equal(reads[s, i], window, err_msg=f"{(s, i)}")


@pytest.mark.parametrize(
    "factor,horizon,lookback", [(1, 0, 0), (2, 1, 2), (4, 2, 3), (16, 1, 2)]
)
def test_train_equals_sample(factor, horizon, lookback):
    cfg, model, params, _, mel, _ = setup(factor, horizon, lookback, 96)
    check_train_equals_sample(cfg, model, params, mel)


def check_train_equals_sample(cfg, model, params, mel, drawn=None, atol=2e-5):
    """The sampler's log-probs of what it drew equal the teacher-forced ones.

    `drawn` maps the sampler's int16 output to what the model drew (e.g. the
    pre-emphasis of a model that de-emphasises its output).
    """
    sample_fn = sampling.make_sample_fn(cfg, with_log_probs=True)
    frames = mel.shape[1]
    samples, log_p = sample_fn(params, mel[0], jax.random.PRNGKey(5))
    assert samples.shape == (frames * HOP,) and samples.dtype == jnp.int16
    if drawn is not None:
        samples = drawn(np.asarray(samples))
    padded = sampling.pad_frames(mel, jnp.array([frames]))
    expected = model.apply({"params": params}, samples[None], padded)[0]
    np.testing.assert_allclose(log_p, expected, atol=atol, rtol=1e-5)


def test_train_equals_sample_with_lengths_not_multiple_of_factor():
    cfg, model, params, _, mel, _ = setup(4, 2, 3, 96)
    mels = jnp.concatenate([mel, mel[:, ::-1]], axis=0)
    lengths = jnp.array([24, 17])  # 68 samples: not a multiple of B * hop
    sample_fn = sampling.make_sample_fn(cfg, with_log_probs=True)
    samples, log_p = sample_fn(params, mels, jax.random.PRNGKey(2), lengths)
    assert np.all(np.asarray(samples[1, 17 * HOP :]) == 0)
    padded = sampling.pad_frames(mels, lengths)
    expected = model.apply({"params": params}, samples, padded, lengths * HOP)
    np.testing.assert_allclose(log_p, expected, atol=2e-5, rtol=1e-5)


def sequential_reference(cfg, model, params, mel, uniforms, temperatures=None):
    """Slow, obviously correct wavefront generation, one sample at a time.

    For each position in wavefront order it recomputes the teacher-forced logits
    of the whole partly filled waveform (ungenerated samples are zero, which
    must not matter), draws the coarse class, writes it, recomputes, and draws
    the fine class with the same uniforms the scan uses. `temperatures` [t]
    divides each sample's logits (default 1).
    """
    factor, horizon = cfg.subscale_factor, cfg.future_horizon
    length = mel.shape[0] * HOP
    padded = sampling.pad_frames(mel[None], jnp.array([mel.shape[0]]))
    logits = jax.jit(
        lambda s: model.apply({"params": params}, s, padded, method="logits")
    )
    wave = np.zeros(length, np.int16)
    if temperatures is None:
        temperatures = np.ones(length, np.float32)
    cols = folding.num_columns(length, factor)
    for t in range(folding.num_steps(cols, factor, horizon)):
        for s in range(factor):
            i = folding.column_at_step(t, s, horizon)
            q = folding.original_time(s, i, factor)
            if i < 0 or q >= length:
                continue
            lc, _ = logits(jnp.asarray(wave)[None])
            probs = jax.nn.softmax(lc[0, q][None] / temperatures[q])
            c = distribution.draw_inverse_cdf(probs, uniforms[t, s, 0][None])
            wave[q] = np.asarray(audio.join(c, jnp.zeros_like(c)))[0]
            _, lf = logits(jnp.asarray(wave)[None])
            probs = jax.nn.softmax(lf[0, q][None] / temperatures[q])
            f = distribution.draw_inverse_cdf(probs, uniforms[t, s, 1][None])
            wave[q] = np.asarray(audio.join(c, f))[0]
    return wave


@pytest.mark.parametrize("factor,horizon,lookback", [(1, 0, 0), (4, 1, 2)])
def test_wavefront_equals_sequential_reference(factor, horizon, lookback):
    cfg, model, params, _, mel, _ = setup(factor, horizon, lookback, 32)
    key = jax.random.PRNGKey(11)
    sample_fn = sampling.make_sample_fn(cfg)
    fast = np.asarray(sample_fn(params, mel[0], key))
    lengths = jnp.array([mel.shape[1]])
    features = sampling.frame_features(model, params, mel, lengths)
    plan = sampling.make_plan(model, params, features, key[None], lengths)
    uniforms = np.asarray(sampling.step_uniforms(plan.keys, factor, 0, plan.steps))
    slow = sequential_reference(cfg, model, params, mel[0], uniforms)
    np.testing.assert_array_equal(fast, slow)


def _mel_voicing(cfg, log_mel):
    """A stand-in for `pitch.voicing` whose weights vary from frame to frame
    with each frame's own mel (random tiny mels are never voiced)."""
    return jax.nn.sigmoid(3.0 * log_mel[..., 0])


def test_voiced_temperature_reaches_each_sample_from_its_own_frame(monkeypatch):
    """Pitch-aware sharpening: each sample is drawn at the temperature of the
    voicing of the frame it lies in, in the wavefront order of B = 4."""
    monkeypatch.setattr(pitch, "voicing", _mel_voicing)
    cfg, model, params, _, mel, padded = setup(4, 1, 2, 32)
    key = jax.random.PRNGKey(3)
    fast = np.asarray(
        sampling.make_sample_fn(cfg)(params, mel[0], key, voiced_temperature=0.25)
    )
    lengths = jnp.array([mel.shape[1]])
    features = sampling.frame_features(model, params, mel, lengths)
    plan = sampling.make_plan(model, params, features, key[None], lengths)
    uniforms = np.asarray(sampling.step_uniforms(plan.keys, 4, 0, plan.steps))
    voicing = np.asarray(_mel_voicing(cfg, mel[0]))  # [f]
    assert voicing.min() < 0.2 and voicing.max() > 0.8
    per_sample = np.repeat(1.0 + voicing * (0.25 - 1.0), HOP).astype(np.float32)
    slow = sequential_reference(cfg, model, params, mel[0], uniforms, per_sample)
    np.testing.assert_array_equal(fast, slow)
    plain = np.asarray(sampling.make_sample_fn(cfg)(params, mel[0], key))
    assert np.any(fast != plain)


def test_voiced_temperature_off_or_equal_changes_nothing():
    cfg, model, params, _, mel, _ = setup(4, 2, 3, 96)
    sample_fn = sampling.make_sample_fn(cfg)
    key = jax.random.PRNGKey(1)
    plain = np.asarray(sample_fn(params, mel[0], key, temperature=0.7))
    for voiced in (None, 0.0, 0.7):
        np.testing.assert_array_equal(
            sample_fn(params, mel[0], key, temperature=0.7, voiced_temperature=voiced),
            plain,
        )
    with pytest.raises(ValueError, match="voiced_temperature"):
        sampling.make_sample_fn(cfg, voiced_temperature=-1.0)


def test_batch_of_utterances_equals_one_at_a_time():
    cfg, model, params, _, mel, _ = setup(4, 2, 3, 96)
    mels = jnp.concatenate([mel, mel[:, ::-1] * 0.5], axis=0)
    lengths = jnp.array([24, 13])
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    sample_fn = sampling.make_sample_fn(cfg)
    batch = np.asarray(sample_fn(params, mels, keys, lengths))
    for n in range(2):
        alone = np.asarray(sample_fn(params, mels[n, : int(lengths[n])], keys[n]))
        np.testing.assert_array_equal(batch[n, : alone.shape[0]], alone)
        assert np.all(batch[n, alone.shape[0] :] == 0)


def test_subscale_factor_one_is_the_plain_sampler():
    """B = 1 draws one sample per step from its own past: a plain WaveRNN loop."""
    cfg, model, params, _, mel, _ = setup(1, 0, 0, 32)
    key = jax.random.PRNGKey(4)
    fast = np.asarray(sampling.make_sample_fn(cfg)(params, mel[0], key))
    features = sampling.frame_features(model, params, mel, jnp.array([8]))
    plan = sampling.make_plan(model, params, features, key[None], jnp.array([8]))
    u = sampling.step_uniforms(plan.keys, 1, 0, plan.steps)
    h = jnp.zeros((1, cfg.hidden_size))
    prev = jnp.zeros((1, 2))
    out = []
    for t in range(32):
        cond = models.upsample(plan.frame_cond, jnp.zeros(1, int), jnp.array([t]), HOP)
        draw = lambda logits, part, t=t: distribution.draw_inverse_cdf(  # noqa: E731
            jax.nn.softmax(logits), u[t, :, part]
        )
        h, c, f, _, _ = model.apply(
            {"params": params}, h, prev, cond, None, draw, method="step"
        )
        prev = jnp.stack([audio.scale(c), audio.scale(f)], -1)
        out.append(int(audio.join(c, f)[0]))
    np.testing.assert_array_equal(fast, np.array(out, np.int16))


def test_temperature_and_noise_options():
    cfg, model, params, _, mel, _ = setup(2, 1, 1, 32)
    cold = sampling.make_sample_fn(cfg)(
        params, mel[0], jax.random.PRNGKey(0), temperature=0.05
    )
    assert cold.shape == (32,)
    # The Gumbel draw was retired: one kind of noise is left.
    for retired in ("gumbel", "bogus"):
        with pytest.raises(ValueError, match="noise"):
            sampling.make_sample_fn(cfg, noise=retired)


# The recipe's pieces that read the mel per frame (the predictor) or carry
# state across chunks (de-emphasis) stream too.
RECIPE = dict(
    lp_order=4, lp_prior=True, prior="logistic", tail_mass=2.0**-8, pre_emphasis=0.85
)


@pytest.mark.parametrize(
    "factor,horizon,lookback,chunk,options",
    [(1, 0, 0, 3, {}), (4, 2, 3, 2, RECIPE), (16, 1, 2, 4, {})],
)
def test_streaming_equals_one_shot(
    factor, horizon, lookback, chunk, options, monkeypatch
):
    # Voicing read per frame from each chunk's window of the mel.
    monkeypatch.setattr(pitch, "voicing", _mel_voicing)
    cfg, model, params, _, mel, _ = setup(factor, horizon, lookback, 96, **options)
    key = jax.random.PRNGKey(9)
    shaping = sampling.Shaping.make(0.9, voiced_temperature=0.3)
    one_shot = np.asarray(
        sampling.make_sample_fn(cfg)(
            params, mel[0], key, temperature=0.9, voiced_temperature=0.3
        )
    )
    pieces = list(sampling.generate_stream(model, params, mel[0], key, chunk, shaping))
    assert len(pieces) > 1
    np.testing.assert_array_equal(np.concatenate(pieces), one_shot)


def test_streaming_rejects_bad_chunk():
    cfg, model, params, _, mel, _ = setup(16, 1, 2, 96)
    with pytest.raises(ValueError, match="chunk_frames"):
        next(sampling.generate_stream(model, params, mel[0], jax.random.PRNGKey(0), 0))


def test_the_scans_hand_written_gradient_equals_autodiff():
    """`models.gru_scan` (the training recurrence, with its own VJP) against
    `gru_update` scanned and differentiated by JAX."""
    hidden, steps, rows = 8, 5, 3
    rng = np.random.default_rng(0)
    args = (
        rng.normal(0, 0.5, (hidden, 3 * hidden)),
        rng.normal(0, 0.5, (3 * hidden,)),
        rng.normal(0, 1.0, (steps, rows, 3, hidden)),
        rng.normal(0, 0.5, (rows, hidden)),
    )
    args = tuple(jnp.asarray(a, jnp.float32) for a in args)
    weights = jnp.asarray(rng.normal(size=(steps, rows, hidden)), jnp.float32)

    def reference(R, bias, ih, h0):
        def step(h, x):
            h = models.gru_update(h, (h @ R + bias).reshape(rows, 3, hidden), x)
            return h, h

        return jax.lax.scan(step, h0, ih)[1]

    def loss(fn):
        return lambda *a: jnp.sum(jnp.sin(fn(*a)) * weights)

    np.testing.assert_array_equal(models.gru_scan(*args), reference(*args))
    for got, want in zip(
        jax.grad(loss(models.gru_scan), argnums=(0, 1, 2, 3))(*args),
        jax.grad(loss(reference), argnums=(0, 1, 2, 3))(*args),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
