"""The output distribution: the dual softmax, its prior, its tail, its draw.

Notation: r rows (any leading shape), 256 classes per byte.

A 16-bit sample is a coarse byte c and a fine byte f. The network gives two
sets of logits, coarse and (given the coarse byte) fine; this module turns them
into probabilities, and every consumer (the training loss, the evaluation, the
sampler and its log-probabilities) goes through it, so that training and
sampling compute one distribution (docs/design.md, "Output distribution").

1. **Prior** (`model.lp_prior`). The linear prediction p from the mel
   (`linear_prediction.py`) centres both softmaxes: each class's logit gets the
   log of the probability mass that a logistic of centre p and scale s gives
   to the class's interval of sample values (`prior="logistic"`):

       coarse c: log P_s(lo_c <= x < hi_c),   256 intervals of 256 steps,
       fine f | c: log P_s(v - 1/2 <= x < v + 1/2),   v = 256 c + f,

   the outermost intervals reaching to infinity. A bin's mass, unlike the
   density at its centre, does not become overconfident when p falls
   off-centre in a wide coarse bin, and a logistic's log-mass falls linearly,
   not quadratically, away from p. The scale is set per sample by the cell
   (one linear unit per half) through `soft_clamp`, a floor and a ceiling with
   a gradient everywhere. `prior="gaussian"` is the density-at-centre prior
   that models before the logistic were trained with; it stays so that they
   load and score as they did.

2. **Tail** (`model.tail_mass` = eps). The joint distribution of the 16-bit
   sample is the model's mixed with a uniform over all 65,536 values,

       P(c, f) = (1 - eps) P_model(c) P_model(f | c) + eps / 65536,

   so no sample costs more than 16 + log2(1 / eps) bits (24 at eps = 2^-8)
   whatever the model predicts, at a cost of -log2(1 - eps) (0.006 bits at
   2^-8) where it predicts well. Its coarse marginal and fine conditional are
   exact (`log_prob`). The tail is a bound on the likelihood, not a sound: the
   sampler draws from the model's part (`Shaping`), so free-running output
   never contains the uniform's clicks.

3. **Shaping and draw** at sampling time: temperatures (lower in voiced
   frames with `voiced_temperature`, from the mel's pitch correlation,
   `pitch.py`) and LPCNet's probability floor (`Shaping`), then one
   inverse-CDF draw from pre-drawn uniforms (`draw_inverse_cdf`).
"""

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from subscale import errors

NUM_CLASSES = 256
PRIORS = ("logistic", "gaussian")
# The prior's starting scale (1,638 int16 steps) and the soft range of its log.
PRIOR_SCALE0 = 0.05
LOG_SCALE_RANGE = (math.log(0.25 / 32768.0), math.log(2.0))
# The legacy Gaussian prior's hard range of log sigma.
_GAUSSIAN_LOG_SIGMA_RANGE = (math.log(1.0 / 32768.0), math.log(2.0))
# Sample values in [-1, 1) units: x / 32768 for int16 x = 256 c + f - 32768.
_STEP = 1.0 / 32768.0
COARSE_CENTRES = (np.arange(NUM_CLASSES) * NUM_CLASSES + 127.5) * _STEP - 1.0
FINE_OFFSETS = np.arange(NUM_CLASSES)
# Interval edges: coarse class c covers values [256 c - 1/2, 256 c + 255 + 1/2)
# steps from -32768; the outermost edges reach far beyond full scale.
_FAR = 1.0e4
# The same in int16 steps (x = 256 c + f - 32768), exact in float32.
_FAR_STEPS = _FAR * 32768.0
_COARSE_EDGES = np.concatenate(
    [[-_FAR_STEPS], np.arange(1, 256) * 256 - 32768.5, [_FAR_STEPS]]
).astype(np.float32)
_FINE_EDGE_OFFSETS = (np.arange(NUM_CLASSES + 1) - 0.5).astype(np.float32)


def soft_clamp(x, lo, hi):
    """x squashed smoothly into (lo, hi): the identity well inside, a softplus
    bend near each end, a positive gradient everywhere (unlike `jnp.clip`)."""
    x = lo + jax.nn.softplus(x - lo)
    return hi - jax.nn.softplus(hi - x)


def _log1mexp(x):
    """log(1 - exp(-x)) for x > 0, accurate for small and large x."""
    return jnp.where(
        x < math.log(2.0),
        jnp.log(-jnp.expm1(-x)),
        jnp.log1p(-jnp.exp(-x)),
    )


def _adjacent_log_masses(edges, mean, log_scale, width):
    """log P(edge_k <= x < edge_k+1) under a logistic(mean, exp(log_scale))
    for K adjacent intervals, computed stably as log sigmoid(a) + log
    sigmoid(-b) + log(1 - e^(b - a)) with a, b the edges in units of the
    scale around the mean. Each interval is `width` wide but the first and
    last, which may be open (an edge at or beyond -+_FAR_STEPS): one
    log-sigmoid per shared edge and one log(1 - e^-x) per row, not three
    transcendentals per interval (log sigmoid(-z) is log sigmoid(z) - z).
    Edges and mean are in int16 steps, where the edges are exact and equally
    spaced in float32, so the masses sum to one.

    Args:
      edges: [..., K + 1] increasing, in steps.
      mean: [..., 1] in steps.
      log_scale: [..., 1] the log scale in [-1, 1] units.
      width: the inner intervals' width in steps (static).

    Returns:
      [..., K].
    """
    inv = jnp.exp(-log_scale) * _STEP  # 1 / scale, per step
    z = (edges - mean) * inv
    log_sig = jax.nn.log_sigmoid(z)
    gap = jnp.broadcast_to(_log1mexp(width * inv), z[..., 1:].shape)
    position = np.arange(edges.shape[-1] - 1)
    open_end = ((position == 0) & (edges[..., :1] <= -_FAR_STEPS)) | (
        (position == position[-1]) & (edges[..., -1:] >= _FAR_STEPS)
    )
    gap = jnp.where(open_end, 0.0, gap)
    # log sigmoid(-z) first: z is huge at an open end, and adding it to the
    # other terms before it cancels would round them away.
    return log_sig[..., 1:] + (log_sig[..., :-1] - z[..., :-1]) + gap


def fine_values(coarse):
    """The 256 fine classes' values given coarse classes: int [...] -> [..., 256]."""
    return (coarse[..., None] * NUM_CLASSES + FINE_OFFSETS) * _STEP - 1.0


def prior_logits(kind, part, prediction, log_scale, coarse=None):
    """The prior's log-weights of the 256 classes of one byte.

    Args:
      kind: "logistic" (bin masses) or "gaussian" (the legacy density at each
        class's value, -(v - p)^2 / 2 sigma^2).
      part: 0 for the coarse byte, 1 for the fine byte.
      prediction: [..., 1] the linear prediction in [-1, 1] units.
      log_scale: [..., 1] the cell's raw log scale (clamped here).
      coarse: int [...] the coarse classes (part 1 only).

    Returns:
      float32 [..., 256].
    """
    prediction = prediction.astype(jnp.float32)
    log_scale = log_scale.astype(jnp.float32)
    if kind == "gaussian":
        log_sigma = jnp.clip(log_scale, *_GAUSSIAN_LOG_SIGMA_RANGE)
        values = COARSE_CENTRES if part == 0 else fine_values(coarse)
        z = (values - prediction) * jnp.exp(-log_sigma)
        return -0.5 * z * z
    log_scale = soft_clamp(log_scale, *LOG_SCALE_RANGE)
    mean = prediction * 32768.0  # in steps, as the edges
    if part == 0:
        return _adjacent_log_masses(_COARSE_EDGES, mean, log_scale, NUM_CLASSES)
    # The fine classes of coarse class c cover steps 256 c - 32768 - 1/2 ..
    # 256 c - 32768 + 255 + 1/2; the lowest and highest of all 65,536 are open.
    first = coarse[..., None] * NUM_CLASSES - 32768
    edges = (first + _FINE_EDGE_OFFSETS).astype(jnp.float32)
    edges = jnp.where((_FINE_EDGE_OFFSETS < 0) & (first == -32768), -_FAR_STEPS, edges)
    edges = jnp.where(
        (_FINE_EDGE_OFFSETS > NUM_CLASSES - 1) & (first == 32768 - NUM_CLASSES),
        _FAR_STEPS,
        edges,
    )
    return _adjacent_log_masses(edges, mean, log_scale, 1.0)


def log_prob(coarse_logits, fine_logits, coarse, fine, tail_mass=0.0):
    """Log-probabilities of samples, split into the coarse byte and the fine
    byte given the coarse one: log P(c) + log P(f | c) = log P(c, f).

    Args:
      coarse_logits: [..., 256] the coarse logits (prior included).
      fine_logits: [..., 256] the fine logits given the sample's coarse class.
      coarse, fine: int [...] the classes.
      tail_mass: eps of the uniform tail (static float; 0: none).

    Returns:
      (log P(c) [...], log P(f | c) [...]) float32 nats.
    """
    log_c = _log_softmax_at(coarse_logits, coarse)
    log_f = _log_softmax_at(fine_logits, fine)
    if not tail_mass:
        return log_c, log_f
    keep = math.log1p(-tail_mass)
    log_tail = math.log(tail_mass)
    joint = jnp.logaddexp(keep + log_c + log_f, log_tail - 16.0 * math.log(2.0))
    marginal = jnp.logaddexp(keep + log_c, log_tail - 8.0 * math.log(2.0))
    return marginal, joint - marginal


def _log_softmax_at(logits, classes):
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(log_p, classes[..., None], axis=-1)[..., 0]


@flax.struct.dataclass
class Shaping:
    """How the model's softmaxes are reshaped before a class is drawn.

    The fine softmax is divided by `temperature`, the coarse one by
    `coarse_temperature`; then, as in LPCNet, `floor` is subtracted from every
    probability, the negative ones are set to zero and the rest renormalised,
    so that the long tail of unlikely classes (where a free-running model's
    noise comes from) is never drawn. The floor is below 1/256 (see
    `check_shaping`), so the most likely class always survives. The uniform
    tail of `log_prob` is never drawn.

    Pitch-aware sharpening, as LPCNet's: with `voiced_temperature` > 0 (0 is
    off), a row whose frame has voicing weight v (`pitch.voicing`, 0 unvoiced,
    1 voiced) has its temperatures multiplied by 1 + v (voiced_temperature /
    temperature - 1), so a fully voiced frame's fine temperature is
    `voiced_temperature` and its coarse one scales alike, while unvoiced
    frames (fricatives, whose noise is the signal) keep `temperature`.
    """

    temperature: jax.Array
    coarse_temperature: jax.Array
    floor: jax.Array
    voiced_temperature: jax.Array

    @classmethod
    def make(
        cls,
        temperature=1.0,
        coarse_temperature=None,
        floor=0.0,
        voiced_temperature=None,
    ):
        """None for `coarse_temperature` means the same as `temperature`; None
        or 0 for `voiced_temperature`, no pitch-aware sharpening."""
        if coarse_temperature is None:
            coarse_temperature = temperature
        as_array = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(
            as_array(temperature),
            as_array(coarse_temperature),
            as_array(floor),
            as_array(0.0 if voiced_temperature is None else voiced_temperature),
        )

    def for_voicing(self, voicing):
        """The shaping of rows with voicing weights `voicing` [r] in [0, 1]:
        temperatures become [r, 1] (unchanged where sharpening is off)."""
        ratio = jnp.where(
            self.voiced_temperature > 0, self.voiced_temperature / self.temperature, 1.0
        )
        scale = (1.0 + voicing * (ratio - 1.0))[:, None]
        return self.replace(
            temperature=self.temperature * scale,
            coarse_temperature=self.coarse_temperature * scale,
        )

    def probs(self, logits, part):
        """Reshaped probabilities [r, 256] of logits [r, 256]; part 0 is coarse."""
        temperature = jnp.where(part == 0, self.coarse_temperature, self.temperature)
        probs = jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)
        return jnp.maximum(probs - self.floor, 0.0)

    def draw(self, logits, part, u):
        """One class per row: logits [r, 256], uniforms [r] -> int32 [r]."""
        return draw_inverse_cdf(self.probs(logits, part), u)


def draw_inverse_cdf(probs, u):
    """Class whose CDF first exceeds u: [r, 256] probabilities (unnormalised is
    fine), [r] uniforms in [0, 1) -> [r] int32.

    A class of probability zero is never drawn, also at u = 0 (where the first
    class of positive probability is) and when rounding puts u times the total
    at the total (the last class of positive probability).
    """
    cdf = jnp.cumsum(probs, axis=-1)
    below = jnp.sum(cdf <= u[:, None] * cdf[:, -1:], axis=-1)
    positive = probs > 0
    last = probs.shape[-1] - 1 - jnp.argmax(positive[:, ::-1], axis=-1)
    return jnp.minimum(below, last).astype(jnp.int32)


def check_shaping(
    temperature, coarse_temperature=None, floor=0.0, prefix="", voiced_temperature=None
):
    """Raises SubscaleError naming the bad shaping value (see `Shaping`).

    Args:
      temperature: the fine (and default coarse) softmax temperature.
      coarse_temperature: the coarse softmax temperature; None for
        `temperature` (the config's 0 is passed as None).
      floor: the probability floor, `prob_floor`.
      voiced_temperature: the fine temperature of fully voiced frames; None or
        0 for none.
      prefix: put before each name in the message: "" for the arguments of
        `sample_fn` and the API, "sampling." for the config fields.
    """
    if temperature <= 0:
        raise errors.SubscaleError(f"{prefix}temperature={temperature}: must be > 0")
    if coarse_temperature is not None and coarse_temperature <= 0:
        raise errors.SubscaleError(
            f"{prefix}coarse_temperature={coarse_temperature}: must be > 0"
        )
    if voiced_temperature is not None and voiced_temperature < 0:
        raise errors.SubscaleError(
            f"{prefix}voiced_temperature={voiced_temperature}: must be > 0 "
            "(or 0 for no pitch-aware sharpening)"
        )
    if not 0.0 <= floor < 1.0 / NUM_CLASSES:
        raise errors.SubscaleError(
            f"{prefix}prob_floor={floor}: must be in [0, 1/{NUM_CLASSES}) so "
            "that a uniform softmax keeps its classes"
        )


def check_tail_mass(tail_mass, name="model.tail_mass"):
    """Raises SubscaleError unless 0 <= tail_mass < 1."""
    if not 0.0 <= tail_mass < 1.0:
        raise errors.SubscaleError(f"{name}={tail_mass}: must be in [0, 1)")


def bound_bits(tail_mass):
    """The most any sample can cost under `log_prob` with this tail, in bits
    (inf without a tail)."""
    return 16.0 + math.log2(1.0 / tail_mass) if tail_mass else math.inf
