"""The Python API: `create`, `load` and the `Vocoder` they return.

vocoder = subscale.load(workdir)               # or subscale.load("speech16k")
mel = vocoder.features(audio, sample_rate)     # [frames, n_mels]
wave = vocoder.generate(mel, seed=0)           # float32 [frames * hop]
log_p = vocoder.log_prob(samples_int16, mel)   # [T] nats, time order
"""

import jax
import jax.numpy as jnp
import librosa
import numpy as np

from subscale import audio
from subscale import config_validation
from subscale import errors
from subscale import evaluation
from subscale import folding
from subscale import models
from subscale import pretrained
from subscale import sampling
from subscale import sharding
from subscale import sparsity


class Vocoder:
    """A model with its parameters, ready to vocode.

    Attributes:
      config: the ConfigDict it was built from.
      params: the parameter pytree.
      model_config: models.ModelConfig.
      sparse_layouts: {matrix name: sparsity.BlockLayout} of the pruned
        matrices the sampler multiplies block-sparsely ({} for a dense model;
        `config.sampling.sparse` decides).
      sample_fn: the jitted, pure `sample_fn(params, mel, key, lengths=None,
        temperature=..., coarse_temperature=..., prob_floor=...)` of
        `sampling.make_sample_fn`; the three sampling arguments default to
        `config.sampling`, as in `generate` (0.6 for speech16k), so
        `sample_fn(params, mel, PRNGKey(seed))` draws what `generate(mel,
        seed)` returns, in int16.
    """

    def __init__(self, config, params):
        self.config = config
        self.params = params
        self.model_config = models.ModelConfig.from_config(config)
        self.model = models.SubscaleWaveRNN(self.model_config)
        self.mel_config = audio.MelConfig.from_config(config.data)
        self.sparse_layouts = _sparse_layouts(config, params)
        self.sample_fn = sampling.make_sample_fn(
            self.model_config,
            noise=config.sampling.noise,
            sparse_layouts=self.sparse_layouts,
            **evaluation.shaping_kwargs(config.sampling),
        )
        self._log_prob = jax.jit(
            lambda p, s, m, n: self.model.apply({"params": p}, s, m, n)
        )

    @property
    def hop_length(self):
        return self.model_config.hop_length

    def features(self, waveform, sample_rate, name="audio"):
        """Log-mel frames [t // hop, n_mels] of float audio [t] (or [t, channels]).

        Args:
          waveform: float audio [t] or [t, channels] (channels are averaged).
          sample_rate: its rate in Hz (resampled to the model's when it differs).
          name: what error messages call the audio (e.g. its file).
        """
        x = np.asarray(waveform, np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        audio.check_waveform(x, name)
        rate = self.config.data.sample_rate
        if sample_rate != rate:
            if sample_rate <= 0:
                raise errors.SubscaleError(f"sample_rate={sample_rate}: must be > 0")
            x = librosa.resample(x, orig_sr=sample_rate, target_sr=rate)
        if x.shape[0] < self.hop_length:
            raise errors.SubscaleError(
                f"{name}: {x.shape[0]} samples, shorter than one frame "
                f"({self.hop_length})"
            )
        return audio.mel(x, self.mel_config)

    def _check_mel(self, mel, name="mel"):
        """`mel` as float32 [frames, n_mels], or a one-line error naming `name`."""
        try:
            mel = np.asarray(mel, np.float32)
        except (TypeError, ValueError) as e:
            raise errors.SubscaleError(f"{name}: not an array of numbers ({e})") from e
        n_mels = self.model_config.n_mels
        if mel.ndim != 2 or mel.shape[1] != n_mels or mel.shape[0] < 1:
            raise errors.SubscaleError(
                f"{name}: shape {mel.shape}, expected [frames >= 1, {n_mels}] "
                f"(data.n_mels={n_mels} of this model)"
            )
        bad = np.argwhere(~np.isfinite(mel))
        if bad.size:
            frame, band = bad[0]
            raise errors.SubscaleError(
                f"{name}: contains NaN or inf ({len(bad)} values; the first, "
                f"{mel[frame, band]}, at frame {frame}, band {band})"
            )
        low, high = audio.LOG_MEL_LIMITS
        if mel.min() < low or mel.max() > high:
            raise errors.SubscaleError(
                f"{name}: values from {mel.min():.1f} to {mel.max():.1f}, outside "
                f"[{low:.1f}, {high:.1f}]: expected natural-log mel magnitudes as "
                f"`features` makes them (silence is {audio.LOG_MEL_FLOOR:.1f}), "
                "not dB, power or another front end's scale"
            )
        return mel

    def _shaping(self, temperature, coarse_temperature, prob_floor, voiced_temperature):
        """The sampling keyword arguments: those given, else the config's."""
        kwargs = evaluation.shaping_kwargs(self.config.sampling)
        given = dict(
            temperature=temperature,
            coarse_temperature=coarse_temperature,
            prob_floor=prob_floor,
            voiced_temperature=voiced_temperature,
        )
        kwargs.update({k: v for k, v in given.items() if v is not None})
        sampling.check_shaping(
            kwargs["temperature"],
            kwargs["coarse_temperature"],
            kwargs["prob_floor"],
            voiced_temperature=kwargs["voiced_temperature"],
        )
        return kwargs

    def generate(
        self,
        mel,
        seed=0,
        temperature=None,
        coarse_temperature=None,
        prob_floor=None,
        voiced_temperature=None,
    ):
        """Samples audio for mel frames.

        Args:
          mel: [frames, n_mels], or a list of such arrays (generated together in
            one scan; utterance n uses the key fold_in(PRNGKey(seed), n)).
          seed: integer seed.
          temperature: softmax temperature of the fine bits, and of the coarse
            bits unless `coarse_temperature` is given (default:
            config.sampling.temperature).
          coarse_temperature: softmax temperature of the coarse bits (default:
            config.sampling.coarse_temperature; 0 there means `temperature`).
          prob_floor: probability subtracted from every class before drawing
            (default: config.sampling.prob_floor), see `sampling.Shaping`.
          voiced_temperature: the temperature of fully voiced frames, from the
            mel's pitch correlation (`pitch.py`; default:
            config.sampling.voiced_temperature; 0 there means `temperature`
            everywhere).

        Returns:
          float32 [frames * hop] in [-1, 1], or a list of them.
        """
        shaping = self._shaping(
            temperature, coarse_temperature, prob_floor, voiced_temperature
        )
        key = jax.random.PRNGKey(seed)
        if isinstance(mel, (list, tuple)):
            if not mel:
                raise errors.SubscaleError("mel: an empty list, nothing to generate")
            mels = [self._check_mel(m, f"mel[{n}]") for n, m in enumerate(mel)]
            lengths = np.array([m.shape[0] for m in mels], np.int32)
            batch = np.zeros((len(mels), lengths.max(), mels[0].shape[1]), np.float32)
            for n, m in enumerate(mels):
                batch[n, : m.shape[0]] = m
            batch, lengths = _spread_over_devices(batch, lengths)
            out = np.asarray(
                self.sample_fn(self.params, batch, key, lengths, **shaping)
            )
            return [
                audio.to_float(out[n, : lengths[n] * self.hop_length])
                for n in range(len(mels))
            ]
        mel = self._check_mel(mel)
        return audio.to_float(
            np.asarray(self.sample_fn(self.params, mel, key, None, **shaping))
        )

    def log_prob(self, samples, mel):
        """Teacher-forced log P of each sample in nats, [T], original time order.

        Args:
          samples: int16 [T] with T = frames * hop.
          mel: [frames, n_mels] the conditioning.
        """
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype != np.int16:
            raise errors.SubscaleError(
                f"samples: expected int16 [T], got {samples.dtype} {samples.shape}"
            )
        mel = self._check_mel(mel)
        frames = mel.shape[0]
        length = samples.shape[0]
        if length != frames * self.hop_length:
            raise errors.SubscaleError(
                f"samples: {length} samples but mel has {frames} frames "
                f"(expected {frames * self.hop_length} = frames x hop)"
            )
        unit = self.hop_length * self.model_config.subscale_factor
        padded = folding.padded_length(length, unit)
        wave = np.zeros(padded, np.int16)
        wave[:length] = audio.pre_emphasis(samples, self.model_config.pre_emphasis)
        mels = np.full(
            (padded // self.hop_length, mel.shape[1]), audio.LOG_MEL_FLOOR, np.float32
        )
        mels[:frames] = mel
        cond = sampling.pad_frames(jnp.asarray(mels)[None], jnp.array([frames]))
        log_p = self._log_prob(self.params, wave[None], cond, jnp.array([length]))
        return np.asarray(log_p[0, :length])

    def vocode(self, waveform, sample_rate, seed=0):
        """Re-synthesises audio from its own features: float32 [frames * hop]."""
        return self.generate(self.features(waveform, sample_rate), seed=seed)

    def generate_stream(
        self,
        mel,
        chunk_frames=100,
        seed=0,
        temperature=None,
        coarse_temperature=None,
        prob_floor=None,
        voiced_temperature=None,
    ):
        """Generates `generate(mel, seed, ...)` chunk by chunk.

        Args:
          mel: [frames, n_mels].
          chunk_frames: frames of audio per chunk; chunk_frames * hop must be a
            multiple of the subscale factor.
          seed: integer seed.
          temperature: as for `generate`.
          coarse_temperature: as for `generate`.
          prob_floor: as for `generate`.
          voiced_temperature: as for `generate`.

        Returns:
          An iterator of float32 [k] chunks, frames * hop samples in all. Bad
          arguments raise here, not at the first chunk.
        """
        mel = self._check_mel(mel)
        shaping = self._shaping(
            temperature, coarse_temperature, prob_floor, voiced_temperature
        )
        sampling.check_chunk_frames(
            chunk_frames, self.hop_length, self.model_config.subscale_factor
        )
        stream = sampling.generate_stream(
            self.model,
            self.params,
            jnp.asarray(mel),
            jax.random.PRNGKey(seed),
            chunk_frames,
            sampling.Shaping.make(
                shaping["temperature"],
                shaping["coarse_temperature"],
                shaping["prob_floor"],
                shaping["voiced_temperature"],
            ),
            self.config.sampling.noise,
            self.sparse_layouts,
        )
        return (audio.to_float(piece) for piece in stream)


def _spread_over_devices(*arrays):
    """Shards arrays along their first axis over all devices when it divides."""
    devices = jax.device_count()
    if devices == 1 or arrays[0].shape[0] % devices:
        return arrays
    _, _, sharded = sharding.data_mesh()
    return tuple(jax.device_put(a, sharded) for a in arrays)


# Below this share of kept blocks the block-sparse product beats the dense one
# on the CPU at B = 16 (BENCHMARKS.md, sparse sampling); at B = 1 it wins at any
# density.
_AUTO_SPARSE_DENSITY = 0.35


def _sparse_layouts(config, params):
    """Block layouts of the matrices the sampler multiplies sparsely ({}: dense).

    "auto" takes every pruned matrix sparse enough to profit, "on" every pruned
    matrix, "off" none.
    """
    mode = config.sampling.sparse
    if mode == "off":
        return {}
    cfg = sparsity.SparsityConfig.from_config(config)
    max_density = 1.0 if mode == "on" else _AUTO_SPARSE_DENSITY
    return sparsity.sampling_layouts(params, cfg, max_density)


def create(config, seed=0):
    """A vocoder with random parameters for `config`.

    The parameters are those a training run with `train.seed = seed` starts
    from (`sparsity.init_params` of the same key).
    """
    config_validation.validate(config)
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    params, _ = sparsity.init_params(
        models.ModelConfig.from_config(config),
        sparsity.SparsityConfig.from_config(config),
        init_key,
    )
    return Vocoder(config, params)


def load(workdir):
    """The vocoder of a training workdir, an exported model or a packaged model.

    Args:
      workdir: a training workdir (its latest checkpoint), a folder written by
        `pretrained.export`, or the name of a model shipped in the package
        (`pretrained_models()`, e.g. "speech16k").

    Reads the parameters alone (no optimizer state). Masked (pruned) weights
    are stored as exact zeros, so a sparse model loads as its sparse
    parameters.

    Raises:
      SubscaleError: `workdir` is none of these (the message lists the
        packaged models), or what it holds does not load.
    """
    config, params, _ = pretrained.restore(workdir)
    return Vocoder(config, params)


def pretrained_models():
    """The names of the trained models shipped in the package."""
    return pretrained.names()
