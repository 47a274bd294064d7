r"""Batch size vs quality: Subscale WaveRNN at B = 1 .. 16 against batching baselines.

Trains one model per subscale factor B (and a few future horizons F at B = 16)
with the same hidden size and the same training budget (steps, and samples per
step: crops get longer and batches smaller as B grows, so that every row of a
crop has at least `systems.MIN_COLUMNS` columns), then scores each on held-out
clips:

- NLL in bits per sample, teacher-forced (`evaluation.evaluate` on the held-out
  folder, the same crops for every B), and on the clips (`Vocoder.log_prob`);
- vocoding quality of generated speech against the original
  (`subscale/metrics.py`): log-mel distance, MCD, F0 RMSE and voicing
  disagreement, wideband PESQ and STOI when `pesq` / `pystoi` are installed;
- near the seams of a chunked generation and away from them: the seams of
  fold-and-crossfade at N chunks, for every system (the same windows);
- speed: samples per second of every sampler, timed side by side in this run.

Baselines on the same clips: fold-and-crossfade batching with the B = 1 model
at N = 4 and 16 chunks, Griffin-Lim from the same log-mel features, and the
original audio itself (the metrics' ideal values). See `subscale/baselines.py`.

Modules: `systems` (what is compared, and training it), `scoring` (held-out
clips and the metrics of one waveform), `measuring` (every system on every
clip, resumable), `report` (tables, plots, report.html), `experiment` (the
whole run) and `main` (the flags).

Everything goes under --workdir. Kept out of git: `runs/<system>/` (training
workdirs) and `cells/` (the resume cache: one JSON and one wav per finished
measurement). The results: `results.jsonl` (one line per system),
`results.md`, `quality_vs_B.png`, `speed_vs_B.png`, `seams.png`,
`report.html` (audio players and spectrograms side by side), and the wavs and
spectrograms of the --report_clips clips it plays under `audio/` and
`spectrograms/`. A re-run skips every finished training run and measurement; a
run with more --num_steps resumes the trainings.

Run (from the repository root; the full run trains 7 demo-size models, about
15 minutes each on 2 CPU cores):
  pip install -e '.[experiments]'   # PESQ and STOI (optional)
  python -m experiments.batch_size_vs_quality
  python -m experiments.batch_size_vs_quality --quick --workdir=workdirs/bsq_quick
  python -m experiments.batch_size_vs_quality --eval_dir=/data/other_speakers \
      --base_config.train.num_steps=20000 --workdir=workdirs/bsq_long
"""
