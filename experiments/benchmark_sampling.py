r"""Sampling speed: samples per second of the jitted sampler, with a breakdown.

Prints one JSON line per configuration. All configurations run in one process,
round-robin over `--repeats` rounds, so ratios between them are measured side by
side; each figure is the median over the rounds.

The breakdown times three partial scans of the same number of steps, each
holding only one part of the step: `cell` (R h, the input projections and the
two gate updates), `context` (ring-buffer gather, row mix, window summary and
ring update; B > 1 only) and `output` (O1..O4 and drawing the two classes).
They add up to roughly the full step; the rest is per-step bookkeeping.

Run (from the repository root):
  python -m experiments.benchmark_sampling --hidden_size=896 --seconds=10 \
      --factors=1,2,4,8,16 --repeats=3
  python -m experiments.benchmark_sampling --seconds=4 --factors=1,16 \
      --sparsity=0.9,0.95,0.98 --sparse_models=1536:0.96 --nobreakdown
  python -m experiments.benchmark_sampling --seconds=4 --factors=1,16 \
      --sparsity=0.95 --prune=R,O1,O2,O3,O4 --nobreakdown
  python -m experiments.benchmark_sampling --hidden_size=384 --cond_channels=96 \
      --context_summary=32 --context_channels=64 --factors=16 --seconds=4 \
      --lp_orders=0,16 --compare_prior --pre_emphases=0,0.85 --nobreakdown
  python -m experiments.benchmark_sampling --models=speech16k --factors= \
      --seconds=4 --repeats=5   # a packaged model's shipped path
"""

import functools
import itertools
import json
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

import subscale
from subscale import distribution
from subscale import folding
from subscale import models
from subscale import sampling
from subscale import sparsity

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (`common`: defined only when run)."""
    flags.DEFINE_integer("hidden_size", 896, "GRU state size.")
    flags.DEFINE_float("seconds", 10.0, "Seconds of 16 kHz audio per utterance.")
    flags.DEFINE_list("factors", ["1", "2", "4", "8", "16"], "Subscale factors B.")
    flags.DEFINE_list("batches", ["1"], "Utterances N generated together.")
    flags.DEFINE_integer("future_horizon", 16, "F for B > 1.")
    flags.DEFINE_integer("lookback", 32, "W for B > 1.")
    flags.DEFINE_integer("cond_channels", 128, "Mel conditioning width.")
    flags.DEFINE_integer("context_summary", 64, "Context summary width.")
    flags.DEFINE_integer("context_channels", 128, "Context network output width.")
    flags.DEFINE_multi_enum(
        "noise",
        ["uniform"],
        sampling.NOISE_KINDS,
        "Noise kinds to time (repeat the flag to compare them in one run).",
    )
    flags.DEFINE_list(
        "lp_orders", ["0"], "Linear-prediction orders K to time (0 = none)."
    )
    flags.DEFINE_bool(
        "lp_prior", False, "Centre the softmaxes on the prediction (K > 0 only)."
    )
    flags.DEFINE_bool(
        "compare_prior",
        False,
        "Time every K > 0 case both with and without the prior, side by side.",
    )
    flags.DEFINE_list(
        "pre_emphases",
        ["0"],
        "Pre-emphasis coefficients to time (0 = none; the sampler then "
        "de-emphasises its output).",
    )
    flags.DEFINE_list(
        "models",
        [],
        "Packaged models (names) or training workdirs, each timed on its "
        "shipped path: `generate` of `subscale.load` with its trained weights, "
        "prior, de-emphasis and default sampling (`config.sampling`), one "
        "utterance, beside the other cases (--factors= for none).",
    )
    flags.DEFINE_integer("repeats", 3, "Round-robin rounds.")
    flags.DEFINE_bool("breakdown", True, "Also time the partial scans.")
    flags.DEFINE_list(
        "sparsity",
        [],
        "Sparsities (e.g. 0.9,0.95,0.98) of the --prune matrices to time with the "
        "block-sparse path at --hidden_size, next to the dense model.",
    )
    flags.DEFINE_list(
        "sparse_models",
        [],
        "Extra HIDDEN:SPARSITY models (e.g. 1536:0.96), each "
        "timed with the dense model of the same number of non-zeros in R.",
    )
    flags.DEFINE_string("block_shape", "16x1", "Pruned block (outputs x inputs).")
    flags.DEFINE_list(
        "prune",
        ["R"],
        "Matrices pruned in the sparse models (R, O1, O2, O3, O4); each goes "
        "through the block-sparse product.",
    )


SAMPLE_RATE = 16_000
HOP = 200
N_MELS = 80


def model_config(factor, hidden_size=None, lp_order=0, lp_prior=None, pre_emphasis=0.0):
    """The timed model; `lp_prior` None takes --lp_prior. The prior and the
    tail are the configs' (`configs/default.py`)."""
    if lp_prior is None:
        lp_prior = FLAGS.lp_prior
    return models.ModelConfig(
        lp_order=lp_order,
        lp_prior=bool(lp_order) and lp_prior,
        prior="logistic",
        tail_mass=2.0**-8,
        pre_emphasis=pre_emphasis,
        hidden_size=hidden_size or FLAGS.hidden_size,
        cond_channels=FLAGS.cond_channels,
        n_mels=N_MELS,
        hop_length=HOP,
        subscale_factor=factor,
        future_horizon=FLAGS.future_horizon if factor > 1 else 0,
        lookback=FLAGS.lookback if factor > 1 else 0,
        context_summary=FLAGS.context_summary,
        context_channels=FLAGS.context_channels,
    )


def timed(fn, *args):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def partial_scans(model, params, rows, steps):
    """Jitted scans holding one part of the sampling step each."""
    cfg = model.cfg
    half = cfg.hidden_size // 2
    apply = functools.partial(model.apply, {"params": params})
    shaping = sampling.Shaping.make()
    h0 = jnp.full((rows, cfg.hidden_size), 0.1, cfg.dtype)
    cond = jnp.full((rows, 3 * cfg.hidden_size), 0.01, cfg.dtype)
    ctx = (
        jnp.zeros((rows, cfg.context_channels), cfg.dtype) if cfg.has_context else None
    )
    prev = jnp.zeros((rows, 2), cfg.dtype)

    def cell_body(h, _):
        ih = apply(prev, cond, ctx, method=lambda m, *a: m.cell.input_projection(*a))
        rh = apply(h, method=lambda m, x: m.cell.recurrent_projection(x))
        h_c = models.gru_update(h[:, :half], rh[..., :half], ih[..., :half])
        h_f = models.gru_update(h[:, half:], rh[..., half:], ih[..., half:])
        return jnp.concatenate([h_c, h_f], -1), None

    def output_body(h, u):
        lc = apply(h[:, :half], method=lambda m, x: m.cell.coarse_logits(x))
        c = distribution.draw_inverse_cdf(shaping.probs(lc, 0), u)
        lf = apply(h[:, half:], method=lambda m, x: m.cell.fine_logits(x))
        f = distribution.draw_inverse_cdf(shaping.probs(lf, 1), u)
        return h + (c + f)[:, None].astype(h.dtype) * 1e-9, None

    scans = {
        "cell": jax.jit(lambda h: jax.lax.scan(cell_body, h, None, length=steps)[0]),
        "output": jax.jit(
            lambda h: jax.lax.scan(
                output_body, h, jnp.full((steps, rows), 0.5, jnp.float32)
            )[0]
        ),
    }
    if cfg.has_context:
        offsets = jnp.arange(1, cfg.subscale_factor)
        row = jnp.arange(rows) % cfg.subscale_factor
        index = jnp.arange(rows)

        def context_body(carry, t):
            window, ring = carry
            slot = jnp.remainder(t - row * (cfg.future_horizon + 1), cfg.ring_size)
            source = jnp.maximum(index[:, None] - offsets[None, :], 0)
            by_offset = ring[source, slot[:, None]]
            mixed = apply(by_offset, row, method="mix")
            x = mixed[:, :2]
            window = jnp.concatenate([window[:, 1:], x[:, None]], axis=1)
            summary = apply(window, method="summarize")
            ring = ring.at[index, slot].set(summary)
            return (window, ring), None

        carry0 = (
            jnp.zeros((rows, cfg.window, 2), cfg.dtype),
            jnp.zeros((rows, cfg.ring_size, cfg.context_summary), cfg.dtype),
        )
        scans["context"] = jax.jit(
            lambda c: jax.lax.scan(context_body, c, jnp.arange(steps))[0]
        )
        scans["context_args"] = carry0
    return scans, h0


def make_case(
    cfg,
    frames,
    batch=1,
    sparsity_target=0.0,
    noise="uniform",
    block_shape=(16, 1),
    prune=("R",),
    breakdown=False,
):
    """One configuration to time: random parameters, compiled sampler, inputs.

    Args:
      cfg: models.ModelConfig.
      frames: mel frames per utterance.
      batch: utterances N generated together.
      sparsity_target: share of the `prune` matrices' blocks set to zero (0:
        dense); the pruned model samples through the block-sparse product.
      noise: one of sampling.NOISE_KINDS.
      block_shape: pruned block (outputs, inputs).
      prune: the matrices pruned.
      breakdown: also build the partial scans (dense models only).

    Returns:
      A dict for `run_rounds` and `figures`.
    """
    model = models.SubscaleWaveRNN(cfg)
    params = models.init_params(cfg, jax.random.PRNGKey(0))
    layouts = {}
    if sparsity_target > 0:
        scfg = sparsity.SparsityConfig(
            target=sparsity_target, block_shape=tuple(block_shape), prune=tuple(prune)
        )
        params = sparsity.apply_masks(
            params, sparsity.compute_masks(params, sparsity_target, scfg)
        )
        layouts = sparsity.sampling_layouts(params, scfg)
    sample_fn = sampling.make_sample_fn(cfg, noise=noise, sparse_layouts=layouts)
    mel = jnp.full((batch, frames, cfg.n_mels), -4.0)
    if batch == 1:
        mel = mel[0]
    key = jax.random.PRNGKey(1)
    start = time.perf_counter()
    compiled = sample_fn.lower(params, mel, key).compile()
    compile_s = time.perf_counter() - start
    steps = _steps(cfg, frames)
    case = dict(
        noise=noise,
        sparsity=sparsity_target,
        cfg=cfg,
        batch=batch,
        frames=frames,
        fn=compiled,
        args=(params, mel, key),
        compile_s=compile_s,
        steps=steps,
        times=[],
        parts={},
    )
    if breakdown and sparsity_target == 0:
        scans, h0 = partial_scans(model, params, batch * cfg.subscale_factor, steps)
        case["scans"] = scans
        case["h0"] = h0
    return case


def make_model_case(name, frames):
    """A case timing `subscale.load(name).generate` on one utterance of
    `frames` frames (host to host: what a user of the API waits for)."""
    vocoder = subscale.load(name)
    cfg = vocoder.model_config
    mel = np.full((frames, cfg.n_mels), -4.0, np.float32)
    start = time.perf_counter()
    vocoder.generate(mel)  # compiles
    first_s = time.perf_counter() - start
    params = jax.tree_util.tree_leaves(vocoder.params)
    zeros = sum(int(np.sum(np.asarray(p) == 0)) for p in params)
    return dict(
        model=name,
        noise=vocoder.config.sampling.noise,
        sparsity=round(zeros / sum(p.size for p in params), 4),
        cfg=cfg,
        batch=1,
        frames=frames,
        fn=vocoder.generate,
        args=(mel,),
        compile_s=first_s,  # the first call: compiling and one run
        steps=_steps(cfg, frames),
        times=[],
        parts={},
    )


def _steps(cfg, frames):
    """Sampler steps (wavefront columns) for one utterance of `frames`."""
    return folding.num_steps(
        folding.num_columns(frames * cfg.hop_length, cfg.subscale_factor),
        cfg.subscale_factor,
        cfg.future_horizon,
    )


def run_rounds(cases, repeats):
    """Times every case once per round, round-robin, `repeats` rounds."""
    for _ in range(repeats):
        for case in cases:
            case["times"].append(timed(case["fn"], *case["args"]))
            for name, scan in case.get("scans", {}).items():
                if name == "context_args":
                    continue
                arg = case["scans"]["context_args"] if name == "context" else case["h0"]
                case["parts"].setdefault(name, []).append(timed(scan, arg))


def describe(case):
    """What a case times: the model, its sparsity, the batch and the noise."""
    cfg = case["cfg"]
    return dict(
        model=case.get("model"),
        hidden_size=cfg.hidden_size,
        sparsity=case["sparsity"],
        subscale_factor=cfg.subscale_factor,
        lp_order=cfg.lp_order,
        lp_prior=cfg.lp_prior,
        pre_emphasis=cfg.pre_emphasis,
        future_horizon=cfg.future_horizon,
        lookback=cfg.lookback,
        batch=case["batch"],
        noise=case["noise"],
    )


def _pruned(case):
    """Whether a case was pruned here (by --block_shape and --prune)."""
    return bool(case["sparsity"]) and "model" not in case


def figures(case, sample_rate=SAMPLE_RATE):
    """The timings of a case that ran: medians over its rounds."""
    cfg = case["cfg"]
    seconds = statistics.median(case["times"])
    total = case["batch"] * case["frames"] * cfg.hop_length
    parts = {
        f"{name}_ms_per_step": round(
            1e3 * statistics.median(ts[1:] or ts) / case["steps"], 4
        )
        for name, ts in case["parts"].items()
    }
    return dict(
        steps=case["steps"],
        compile_s=round(case["compile_s"], 2),
        run_s=round(seconds, 3),
        step_ms=round(1e3 * seconds / case["steps"], 4),
        samples_per_second=round(total / seconds, 1),
        real_time_factor=round(total / seconds / sample_rate, 3),
        **parts,
    )


def main(argv):
    del argv
    device = f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}"
    frames = int(FLAGS.seconds * SAMPLE_RATE) // HOP
    cases = []
    variants = [(FLAGS.hidden_size, 0.0)]
    variants += [(FLAGS.hidden_size, float(z)) for z in FLAGS.sparsity]
    for spec in FLAGS.sparse_models:
        hidden, z = spec.split(":")
        hidden, z = int(hidden), float(z)
        variants.append((hidden, z))
        # The dense model with as many non-zeros in R (3 H^2), rounded to 16.
        dense = int(round(hidden * math.sqrt(1.0 - z) / 16)) * 16
        variants.append((dense, 0.0))
    block = tuple(int(b) for b in FLAGS.block_shape.split("x"))
    priors = (False, True) if FLAGS.compare_prior else (None,)
    for factor, batch, (
        hidden,
        z,
    ), noise, lp_order, prior, emphasis in itertools.product(
        map(int, FLAGS.factors),
        map(int, FLAGS.batches),
        dict.fromkeys(variants),
        FLAGS.noise,
        map(int, FLAGS.lp_orders),
        priors,
        map(float, FLAGS.pre_emphases),
    ):
        if prior and not lp_order:
            continue  # the prior centres on the prediction: none without K
        cases.append(
            make_case(
                model_config(factor, hidden, lp_order, prior, emphasis),
                frames,
                batch,
                z,
                noise,
                block,
                FLAGS.prune,
                FLAGS.breakdown,
            )
        )
    cases += [make_model_case(name, frames) for name in FLAGS.models]
    run_rounds(cases, FLAGS.repeats)
    for case in cases:
        print(
            json.dumps(
                dict(
                    **describe(case),
                    block_shape=FLAGS.block_shape if _pruned(case) else None,
                    pruned=FLAGS.prune if _pruned(case) else [],
                    seconds_of_audio=FLAGS.seconds * case["batch"],
                    device=device,
                    **figures(case),
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
