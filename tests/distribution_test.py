"""The output distribution's numerics: prior bin masses, the soft width floor,
the uniform tail's bound, and the exactness of the coarse/fine split."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from subscale import audio
from subscale import distribution


def _all_fine_prior(prediction, log_scale):
    """The logistic prior's log-mass of all 65,536 sample values: [256, 256]."""
    coarse = jnp.arange(256)
    return distribution.prior_logits(
        "logistic",
        1,
        jnp.full((256, 1), prediction),
        jnp.full((256, 1), log_scale),
        coarse,
    )


@pytest.mark.parametrize(
    "prediction,scale", [(0.3, 0.01), (-0.999, 1e-4), (0.0, 1.5), (0.7, 3e-5)]
)
def test_logistic_prior_is_the_mass_of_each_interval(prediction, scale):
    p = jnp.array([[prediction]])
    log_s = jnp.log(jnp.array([[scale]]))
    coarse = distribution.prior_logits("logistic", 0, p, log_s)[0]
    # Coarse masses sum to one, and so do the masses of all 65,536 values.
    assert float(jax.nn.logsumexp(coarse)) == pytest.approx(0.0, abs=1e-4)
    fine = _all_fine_prior(prediction, math.log(scale))
    assert float(jax.nn.logsumexp(fine)) == pytest.approx(0.0, abs=1e-4)
    # Each coarse class holds the mass of its interval (float64 reference,
    # where the scale is not clamped).
    s = float(
        jnp.exp(distribution.soft_clamp(log_s, *distribution.LOG_SCALE_RANGE))[0, 0]
    )
    edges = (np.arange(257) * 256 - 0.5) / 32768.0 - 1.0
    cdf = special.expit((edges - prediction) / s)
    cdf[0], cdf[-1] = 0.0, 1.0
    mass = np.diff(cdf)
    big = mass > 1e-12
    np.testing.assert_allclose(np.exp(np.asarray(coarse))[big], mass[big], rtol=2e-3)
    if scale > 0.1:
        return  # wider than full scale: the open-ended outer classes win
    # The class holding the prediction is the most likely.
    value = np.int16(round(prediction * 32768))
    c, f = audio.split(value)
    assert int(jnp.argmax(coarse)) == int(c)
    assert int(jnp.argmax(fine[int(c)])) == int(f)


def test_prior_is_finite_with_a_gradient_at_any_width():
    p = jnp.array([[0.2]])
    for raw in (-1e4, -50.0, -12.0, 0.0, 5.0, 1e4):
        log_s = jnp.array([[raw]])
        for part in (0, 1):
            coarse = jnp.array([100])
            logits = distribution.prior_logits("logistic", part, p, log_s, coarse)
            assert bool(jnp.all(jnp.isfinite(logits)))
        grad = jax.grad(
            lambda x: distribution.soft_clamp(x, *distribution.LOG_SCALE_RANGE)
        )(raw / 1e3 if abs(raw) > 100 else raw)
        assert float(grad) > 0.0
    lo, hi = distribution.LOG_SCALE_RANGE
    clamped = distribution.soft_clamp(jnp.array([-1e4, 0.5 * (lo + hi), 1e4]), lo, hi)
    assert lo - 1e-5 <= float(clamped[0]) < lo + 1e-3
    assert float(clamped[1]) == pytest.approx(0.5 * (lo + hi), abs=1e-3)
    assert hi - 1e-3 < float(clamped[2]) <= hi + 1e-5


def test_gaussian_prior_of_older_models_is_unchanged():
    prediction = jnp.array([[0.3]])
    log_sigma = jnp.log(jnp.array([[0.01]]))
    coarse = distribution.prior_logits("gaussian", 0, prediction, log_sigma)
    expected = -0.5 * ((distribution.COARSE_CENTRES - 0.3) / 0.01) ** 2
    np.testing.assert_allclose(np.asarray(coarse[0]), expected, rtol=1e-4, atol=1e-3)
    # Its width is clipped: no infinities at any log sigma.
    wild = distribution.prior_logits("gaussian", 0, prediction, -1e9 + 0 * log_sigma)
    assert bool(jnp.all(jnp.isfinite(wild)))


def test_tail_bounds_every_sample_and_splits_exactly():
    eps = 2.0**-8
    rng = np.random.default_rng(0)
    # A confident, wrong model: all its mass on class 0 of both bytes.
    coarse_logits = jnp.asarray(np.where(np.arange(256) == 0, 0.0, -1e4))
    fine_logits = jnp.asarray(rng.normal(0, 30, (256, 256)))  # per coarse class
    c = jnp.repeat(jnp.arange(256), 256)
    f = jnp.tile(jnp.arange(256), 256)
    log_c, log_f = distribution.log_prob(
        jnp.broadcast_to(coarse_logits, (65536, 256)), fine_logits[c], c, f, eps
    )
    joint = np.asarray(log_c + log_f, np.float64)
    bits = -joint / math.log(2.0)
    assert bits.max() <= distribution.bound_bits(eps) + 1e-4
    assert distribution.bound_bits(eps) == pytest.approx(24.0)
    # A distribution over all 65,536 values, and the mixture it should be.
    assert special.logsumexp(joint) == pytest.approx(0.0, abs=1e-4)
    model = np.asarray(
        jax.nn.log_softmax(coarse_logits)[c]
        + jnp.take_along_axis(jax.nn.log_softmax(fine_logits[c]), f[:, None], 1)[:, 0],
        np.float64,
    )
    mixture = np.logaddexp(np.log1p(-eps) + model, np.log(eps / 65536))
    np.testing.assert_allclose(joint, mixture, atol=2e-3)
    # The coarse part is the coarse marginal.
    marginal = special.logsumexp(joint.reshape(256, 256), axis=1)
    np.testing.assert_allclose(
        np.asarray(log_c).reshape(256, 256)[:, 0], marginal, atol=2e-3
    )


def test_no_tail_is_the_plain_dual_softmax():
    rng = np.random.default_rng(1)
    lc, lf = (jnp.asarray(rng.normal(size=(5, 256))) for _ in range(2))
    c, f = jnp.arange(5), jnp.arange(5) * 7
    log_c, log_f = distribution.log_prob(lc, lf, c, f, 0.0)
    np.testing.assert_allclose(
        log_c, jax.nn.log_softmax(lc)[jnp.arange(5), c], rtol=1e-6
    )
    np.testing.assert_allclose(
        log_f, jax.nn.log_softmax(lf)[jnp.arange(5), f], rtol=1e-6
    )


def test_bad_tail_mass_is_named():
    with pytest.raises(Exception, match="model.tail_mass"):
        distribution.check_tail_mass(1.5)
