r"""Paper-size WaveRNN-896 (one sample per step), the base every config builds on.

Run:
  python -m subscale.main --config=configs/default.py --workdir=/tmp/wavernn896

Variants import this module and override a few fields. Every field is
documented by the comment on its line; `lock_config` makes a typo in
`--config.a.b=v` an error.
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()

    config.data = data = ml_collections.ConfigDict()
    # "subscale:NAME" is NAME inside the package (`input_pipeline.resolve_corpus`).
    # An audio folder (searched recursively), a manifest.csv, or an LJSpeech
    # folder (metadata.csv + wavs/); see `input_pipeline.list_audio`.
    data.train_dir = "subscale:demo_data"
    data.eval_dir = ""  # folder to evaluate instead of the dev split ("" = dev)
    data.sample_rate = 16_000  # Hz of the model; see data.resample for other files
    data.resample = True  # resample files at another rate (False: refuse them)
    data.skip_bad_files = False  # skip (and log) bad files instead of stopping
    data.n_mels = 80  # mel bands of the conditioning features
    data.hop_length = 200  # samples per mel frame (12.5 ms at 16 kHz)
    data.win_length = 800  # STFT window in samples (50 ms at 16 kHz)
    data.n_fft = 1024  # FFT size
    data.fmin = 40.0  # lowest mel band edge in Hz
    data.fmax = 8_000.0  # highest mel band edge in Hz
    data.seq_len = 4_000  # samples per training crop (multiple of hop_length and of B)
    data.eval_seq_len = 8_000  # samples per eval crop (long: less zero-state start-up)
    data.dev_fraction = 0.05  # dev share when a file has no manifest split
    data.cache_dir = ""  # feature cache ("" = <workdir>/cache)
    data.pre_emphasis = 0.0  # model y[t] = x[t] - a x[t-1] (0 = off; LPCNet: 0.85)
    data.crop_context = False  # feed real samples around each crop as context

    config.model = model = ml_collections.ConfigDict()
    model.hidden_size = 896  # GRU state size; split into coarse and fine halves
    model.cond_channels = 128  # width of the upsampled mel conditioning
    model.subscale_factor = 1  # B: sub-sequences generated together (1 = WaveRNN)
    model.future_horizon = 0  # F: columns ahead seen in earlier sub-sequences
    model.lookback = 0  # W: columns behind seen in earlier sub-sequences
    model.context_summary = 64  # per-sample summary width of the context network
    model.context_channels = 128  # context network output fed to the cell
    model.lp_order = 0  # K: linear prediction from the mel fed to the cell (0 = off)
    model.lp_prior = False  # centre both softmaxes on the prediction (needs K > 0)
    model.prior = "logistic"  # prior shape: logistic bin masses ("gaussian": old)
    model.tail_mass = 2.0**-8  # uniform share of P(x): no sample costs over 24 bits
    # Experimental (rows of experiments/recipe_ablation.py; nothing ships with them).
    model.neighbour_rows = 0  # B > 1: rows s-1..s-k at columns i, i+1 fed directly
    model.fine_input_scale = 1.0  # weight of the fine byte in the model's inputs
    model.dtype = "float32"  # compute dtype: float32, bfloat16, float16 (CPU: float32)
    model.param_dtype = "float32"  # parameter dtype

    config.train = train = ml_collections.ConfigDict()
    train.num_steps = 500_000  # optimizer steps in total (resume continues to it)
    train.batch_size = 32  # crops per step (summed over devices)
    train.seed = 0  # seeds parameters, data order and per-step randomness
    train.learning_rate = 1e-4  # peak Adam learning rate
    train.warmup_steps = 1_000  # linear warm-up from 0 to the peak
    train.decay_steps = 0  # cosine decay length after warm-up (0 = num_steps)
    train.end_lr_factor = 0.1  # final learning rate as a fraction of the peak
    # Last steps of the run in which the rate falls linearly from the
    # schedule's value to the end value (0 = none: the schedule to the end).
    train.cooldown_steps = 0
    train.clip_norm = 1.0  # global-norm gradient clipping
    # Tail eps of the training loss alone (None: model.tail_mass). A model
    # trained without the tail (0) and shipped with one is scored and sampled
    # under model.tail_mass, but its config still reproduces its weights.
    train.tail_mass = ml_collections.config_dict.placeholder(float)
    # Decoupled (AdamW) weight decay of the weight matrices per unit of
    # learning rate: each update also takes lr * weight_decay * w (0 = off).
    train.weight_decay = 0.0
    # Decay of an exponential moving average of the weights, which evaluation,
    # export and inference use (0 = off: the weights themselves).
    train.ema_decay = 0.0
    train.checkpoint_every_steps = 5_000  # orbax save interval
    train.keep_checkpoints = 3  # newest checkpoints kept
    train.log_every_steps = 100  # metrics to log / metrics.jsonl
    train.eval_every_steps = 5_000  # dev-split NLL
    train.eval_crops = 64  # dev crops per evaluation (0 = every crop of the split)
    train.vocode_every_steps = 50_000  # vocode one dev clip (wav + PNG); 0 = never
    train.vocode_seconds = 2.0  # length of that dev clip
    train.tensorboard = True  # TensorBoard events in the workdir (summaries.py)
    train.nonfinite = "stop"  # non-finite loss or gradient: "stop" or "skip"
    # Experimental (rows of experiments/recipe_ablation.py; nothing ships with them).
    train.input_noise = (0.0, 0.0)  # (low, high) sigma of input noise, int16 steps
    train.input_noise_start = 0  # first step with input noise
    train.carry_state = False  # consecutive crops per batch slot carry the state
    # An exported model folder or packaged name ("speech16k"): a run with no
    # checkpoint yet starts from its weights and step, with fresh Adam moments
    # and the schedule warmed up again from there; "" = from scratch.
    train.init_from = ""
    # A resume bundle (`experiments/resume_bundle.py`): a run with no
    # checkpoint yet continues exactly where the bundle's run stopped (step,
    # schedule, data order, Adam moments); "" = none.
    train.resume_from = ""
    train.eval_clips = 4  # dev clips vocoded free-running at each evaluation
    train.eval_clip_seconds = 2.0  # length of each of those clips

    config.sampling = sampling = ml_collections.ConfigDict()
    sampling.temperature = 1.0  # softmax temperature when sampling
    sampling.coarse_temperature = 0.0  # of the coarse softmax (0 = temperature)
    sampling.prob_floor = 0.0  # subtracted from each probability (LPCNet: 0.002)
    # Temperature of fully voiced frames (pitch.py), 0 = `temperature` everywhere.
    sampling.voiced_temperature = 0.0
    sampling.noise = "uniform"  # inverse CDF from pre-drawn uniforms (the one kind)
    sampling.sparse = "auto"  # block-sparse matmuls: "auto", "on" or "off"

    config.sparsity = sparsity = ml_collections.ConfigDict()
    sparsity.target = 0.0  # Z: final fraction of pruned weights (0 = dense)
    sparsity.start_step = 1_000  # t0: first pruning step
    sparsity.ramp_steps = 200_000  # S: steps of the cubic ramp
    sparsity.every_steps = 500  # mask update interval
    sparsity.block_shape = (16, 1)  # block of W[out, in] (paper: 16x1 = 16 outputs)
    sparsity.prune = ("R",)  # matrices to prune: R, O1, O2, O3, O4, context

    return config
