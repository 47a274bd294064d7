r"""Speed on whatever backend JAX sees (CPU, GPU or TPU): sampling and training.

Times, in one process:
- sampling (`benchmark_sampling`): one utterance at subscale factor B = 1 and
  B = 16, for hidden 384 (the packaged speech16k) and the paper's 896, dense
  and 95 % sparse (R and O1..O4 pruned in 16x1 blocks, sampled through the
  block-sparse product). The models are configs/speech16k.py (linear
  prediction, its prior, the conditioning and context widths) at that hidden
  size and B (F = 16, W = 32 at B = 16), with random weights: speed does not
  depend on the values. The configurations run round-robin, `--repeats`
  rounds; each figure is the median over the rounds, compile time apart.
- the train step at the speech16k size (`benchmark_training`:
  configs/speech16k.py, 4 crops of 3,200 samples, hidden 384, B = 16).

Writes BACKEND.jsonl (one JSON line per figure, each naming the backend and the
device) and BACKEND.md (the tables, with the command, date, commit and
machine) under --output, BACKEND being cpu, gpu or tpu. It finishes within 8
minutes on an H100; `--quick` runs the same code on tiny models of the same
recipe in seconds on the CPU (written as BACKEND_quick.*).

Run (from the repository root):
  python -m experiments.device_benchmark
  python -m experiments.device_benchmark --quick --output=/tmp/device_benchmark
With an accelerator lent to the session, through its `device` tool: `run` with
the command
  python3 -m pip install -e . && python3 -m experiments.device_benchmark
and copy the files it writes out of $OUT, e.g. add `--output=$OUT`.
"""

import datetime
import json
import os

import jax
from absl import app
from absl import flags

from configs import speech16k
from experiments import benchmark_sampling
from experiments import benchmark_training
from experiments import common
from subscale import models

NAME = "device_benchmark"
# Pruned in the sparse models, as in BENCHMARKS.md's sparse sampling table.
PRUNE = ("R", "O1", "O2", "O3", "O4")
BLOCK_SHAPE = (16, 1)


def define_flags(flag_values=None):
    """The command-line flags (`common`: defined only when run)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string(
        "output",
        os.path.join(common.REPO, "experiments", "results", NAME),
        "Folder for BACKEND.jsonl and BACKEND.md.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "quick",
        False,
        "Tiny models of the same recipe (hidden 32, 2 crops of 800 samples), "
        "0.05 s of audio, one round, one train step: seconds on a CPU.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "hidden_sizes", ["384", "896"], "Sampled hidden sizes.", flag_values=fv
    )
    flags.DEFINE_list("factors", ["1", "16"], "Subscale factors B.", flag_values=fv)
    flags.DEFINE_list(
        "sparsities", ["0", "0.95"], "Sparsities of R and O1..O4.", flag_values=fv
    )
    flags.DEFINE_list(
        "batches", ["1"], "Utterances N generated together.", flag_values=fv
    )
    flags.DEFINE_float(
        "seconds", 2.0, "Seconds of 16 kHz audio per utterance.", flag_values=fv
    )
    flags.DEFINE_integer("repeats", 3, "Round-robin rounds.", flag_values=fv)
    flags.DEFINE_integer(
        "train_steps",
        20,
        "Timed train steps (after two warm-up steps).",
        flag_values=fv,
    )


def shrink(config):
    """`config` at the --quick widths: the same recipe, tiny layers and batch."""
    config.model.hidden_size = 32  # O1..O4 of half of it tile in 16x1 blocks
    config.model.cond_channels = 8
    config.model.context_summary = 4
    config.model.context_channels = 4
    config.train.batch_size = 2
    config.data.seq_len = 800  # 50 columns of 16 rows
    return config


def sampling_model(base, hidden, factor):
    """models.ModelConfig of `base` at hidden size `hidden` and factor B."""
    config = base.copy_and_resolve_references()
    config.model.hidden_size = hidden
    config.model.subscale_factor = factor
    if factor == 1:
        config.model.future_horizon = 0
        config.model.lookback = 0
    return models.ModelConfig.from_config(config)


def device_fields():
    """What every JSON line says about where it ran."""
    device = jax.devices()[0]
    kind = device.device_kind
    if device.platform == "cpu":
        kind = f"{common.cpu_model()}, {os.cpu_count()} cores"
    return dict(
        backend=jax.default_backend(),
        device=kind,
        device_count=jax.device_count(),
        jax_version=jax.__version__,
        commit=common.git_commit(),
        date=datetime.date.today().isoformat(),
    )


def measure_sampling(
    base, hidden_sizes, factors, sparsities, batches, seconds, repeats
):
    """One record per sampling configuration (`benchmark_sampling` figures)."""
    rate = int(base.data.sample_rate)
    frames = int(seconds * rate) // int(base.data.hop_length)
    cases = [
        benchmark_sampling.make_case(
            sampling_model(base, hidden, factor),
            frames,
            batch,
            sparsity_target,
            block_shape=BLOCK_SHAPE,
            prune=PRUNE,
        )
        for hidden in hidden_sizes
        for factor in factors
        for sparsity_target in sparsities
        for batch in batches
    ]
    benchmark_sampling.run_rounds(cases, repeats)
    return [
        dict(
            kind="sampling",
            **benchmark_sampling.describe(case),
            pruned=list(PRUNE) if case["sparsity"] else [],
            seconds_of_audio=seconds * case["batch"],
            repeats=repeats,
            **benchmark_sampling.figures(case, rate),
        )
        for case in cases
    ]


def measure_training(config, steps):
    """The record of the train step of `config` (`benchmark_training`)."""
    figures = benchmark_training.measure(config, steps)
    del figures["device"]  # every record names it (device_fields)
    return dict(kind="train_step", steps=steps, **figures)


def table(records, header):
    """The markdown page of the records."""
    sections = [
        (
            "Sampling",
            "sampling",
            ["hidden", "B", "sparsity", "N", "samples/s", "x real time"]
            + ["step (ms)", "compile (s)"],
            lambda r: [
                r["hidden_size"],
                r["subscale_factor"],
                f"{r['sparsity']:g}",
                r["batch"],
                f"{r['samples_per_second']:,.0f}",
                f"{r['real_time_factor']:.2f}",
                f"{r['step_ms']:.4f}",
                f"{r['compile_s']:.1f}",
            ],
        ),
        (
            "Train step",
            "train_step",
            ["hidden", "B", "crops x samples", "steps/s", "trained samples/s"]
            + ["compile (s)"],
            lambda r: [
                r["hidden_size"],
                r["subscale_factor"],
                f"{r['batch_size']} x {r['seq_len']:,}",
                f"{r['steps_per_second']:.3f}",
                f"{r['samples_per_second']:,}",
                f"{r['compile_s']:.1f}",
            ],
        ),
    ]
    lines = [*header, ""]
    for title, kind, columns, cells in sections:
        rows = [cells(r) for r in records if r["kind"] == kind]
        if rows:
            lines += [f"## {title}", "", "| " + " | ".join(columns) + " |"]
            lines.append("|" + "---|" * len(columns))
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def run(
    output,
    *,
    quick=False,
    hidden_sizes=(384, 896),
    factors=(1, 16),
    sparsities=(0.0, 0.95),
    batches=(1,),
    seconds=2.0,
    repeats=3,
    train_steps=20,
    command=None,
):
    """Measures, writes BACKEND[_quick].jsonl and .md under `output`.

    `quick` replaces the hidden sizes, seconds, repeats and train steps with
    tiny ones (see the --quick flag).

    Returns:
      The records, as written.
    """
    base = speech16k.get_config()
    if quick:
        shrink(base)
        hidden_sizes = (base.model.hidden_size,)
        seconds, repeats, train_steps = 0.05, 1, 1
    fields = device_fields()
    records = measure_sampling(
        base, hidden_sizes, factors, sparsities, batches, seconds, repeats
    )
    records.append(measure_training(base, train_steps))
    records = [{**fields, **r} for r in records]
    name = fields["backend"] + ("_quick" if quick else "")
    os.makedirs(output, exist_ok=True)
    common.write_jsonl(os.path.join(output, name + ".jsonl"), records)
    header = [
        f"# Device benchmark: {fields['backend']} ({fields['device']})",
        "",
        *common.provenance(command or common.command_line(NAME)),
        f"- Sampling: one utterance of {seconds:g} s at 16 kHz per configuration "
        f"(N of them for N > 1), median of {repeats} round-robin rounds; the "
        "configs/speech16k.py recipe at each hidden size and B, random weights; "
        f"sparse: {', '.join(PRUNE)} in {BLOCK_SHAPE[0]}x{BLOCK_SHAPE[1]} blocks.",
        f"- Train step: configs/speech16k.py{' (--quick widths)' if quick else ''}, "
        f"{train_steps} timed steps after two warm-up steps, random batches.",
    ]
    common.write_text(os.path.join(output, name + ".md"), table(records, header))
    return records


def main(argv, flag_values=None):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS if flag_values is None else flag_values
    records = run(
        fv.output,
        quick=fv.quick,
        hidden_sizes=[int(h) for h in fv.hidden_sizes],
        factors=[int(b) for b in fv.factors],
        sparsities=[float(z) for z in fv.sparsities],
        batches=[int(n) for n in fv.batches],
        seconds=fv.seconds,
        repeats=fv.repeats,
        train_steps=fv.train_steps,
        command=common.command_line(NAME),
    )
    for record in records:
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
