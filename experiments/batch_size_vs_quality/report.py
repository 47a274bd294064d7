"""What the experiment reports: one record per system, tables, plots, report.html."""

import html

import numpy as np
from matplotlib import figure

from experiments import common
from experiments.batch_size_vs_quality import scoring
from subscale import files
from subscale import metrics
from subscale import models


def _mean(cells, name):
    values = [c[name] for c in cells if c.get(name) is not None]
    return float(np.mean(values)) if values else None


def summarize(runner, cells, nll, speed, options):
    """One record per system: means over the clips, NLL, speed, sizes."""
    clip_set = scoring.clip_set(runner.base, options)
    records = []
    names = sorted({k for c in sum(cells.values(), []) for k in c})
    for system in runner.systems:
        record = dict(
            system=system.name,
            kind=system.kind,
            subscale_factor=system.subscale_factor,
            future_horizon=system.future_horizon,
            num_chunks=system.num_chunks,
            clip_set=clip_set,
            clips=len(cells[system.name]),
            clip_seconds=options.clip_seconds,
        )
        if system.model is not None:
            config = runner.system(system.model).config
            vocoder = runner.vocoder(system.model)
            record.update(
                hidden_size=config.model.hidden_size,
                params=models.param_count(vocoder.params),
                train_steps=runner.source_step(system),
                train_samples_per_step=config.data.seq_len * config.train.batch_size,
                train_seq_len=config.data.seq_len,
            )
        if system.kind == "model":
            record["nll_bits"] = nll[system.name]["eval_bits"]
            record["nll_samples"] = nll[system.name]["samples"]
        for name in names:
            if name == "voiced_frames":
                record[name] = int(sum(c[name] for c in cells[system.name]))
            else:
                record[name] = _mean(cells[system.name], name)
        if system.name in speed:
            record["samples_per_second"] = speed[system.name]
            record["real_time_factor"] = speed[system.name] / runner.rate
        records.append(common.clean(record))
    return records


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown(records, options, command):
    """results.md: provenance, the main table and the seam table."""
    optional = ", ".join(
        f"{name} {'yes' if ok else 'not installed'}"
        for name, ok in metrics.available().items()
    )
    lines = [
        "# Batch size vs quality",
        "",
        *common.provenance(command),
        f"- Clips: {records[0]['clips']} x {options.clip_seconds} s from "
        f"{records[0]['clip_set']}. Metrics: `subscale/metrics.py` ({optional}).",
        "- NLL: teacher-forced on every held-out crop (`evaluation.evaluate`), bits "
        "per 16-bit sample. Speed: generating the first clip, median of "
        f"{options.repeats} round-robin rounds in this run.",
        "",
        "| system | B / N | F | params | NLL (bits) | log-mel (dB) | MCD (dB) "
        "| F0 RMSE (cents) | voicing err | PESQ wb | STOI | samples/s | x real time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        bn = r["subscale_factor"] or r["num_chunks"]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["system"],
                    _fmt(bn),
                    _fmt(r["future_horizon"]),
                    _fmt(r.get("params")),
                    _fmt(r.get("nll_bits"), 3),
                    _fmt(r.get("lmd_db")),
                    _fmt(r.get("mcd_db")),
                    _fmt(r.get("f0_rmse_cents"), 0),
                    _fmt(r.get("voicing_disagreement"), 3),
                    _fmt(r.get("pesq_wb")),
                    _fmt(r.get("stoi"), 3),
                    _fmt(r.get("samples_per_second"), 0),
                    _fmt(r.get("real_time_factor"), 3),
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"Near and away from the seams: frames within {options.seam_ms:g} ms of a "
        "seam of fold-and-crossfade at N chunks (overlap "
        f"{options.overlap_ms:g} ms), and all other frames; the same windows for "
        "every system.",
        "",
    ]
    header = ["system"]
    for n in options.fold_chunks:
        header += [
            f"log-mel near N={n}",
            f"log-mel away N={n}",
            f"MCD near N={n}",
            f"MCD away N={n}",
        ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in records:
        row = [r["system"]]
        for n in options.fold_chunks:
            row += [
                _fmt(r.get(f"lmd_db_near{n}")),
                _fmt(r.get(f"lmd_db_away{n}")),
                _fmt(r.get(f"mcd_db_near{n}")),
                _fmt(r.get(f"mcd_db_away{n}")),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path):
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def _nan(value):
    return np.nan if value is None else value


def _log2_axis(ax, ticks, label):
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(ticks) / 1.5, max(ticks) * 1.5)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(label)


# Baseline line colours, apart from the default cycle of the model markers.
_BASELINE_COLORS = ("tab:red", "tab:brown", "tab:pink", "tab:gray", "tab:olive")


def plot_quality(records, path, sweep_horizon):
    """Quality vs B: one panel per metric, baselines as horizontal lines."""
    panels = [
        ("nll_bits", "NLL (bits/sample)"),
        ("lmd_db", "log-mel distance (dB)"),
        ("mcd_db", "MCD (dB)"),
        ("f0_rmse_cents", "F0 RMSE (cents)"),
        ("pesq_wb", "PESQ wb"),
        ("stoi", "STOI"),
    ]
    compared = [r for r in records if r["kind"] != "original"]
    panels = [p for p in panels if any(r.get(p[0]) is not None for r in compared)]
    fig = figure.Figure(figsize=(3.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    model_rows = [r for r in records if r["kind"] == "model"]
    sweep = sorted(
        (
            r
            for r in model_rows
            if r["subscale_factor"] == 1 or r["future_horizon"] == sweep_horizon
        ),
        key=lambda r: r["subscale_factor"],
    )
    others = [r for r in model_rows if r not in sweep]
    baseline_rows = [r for r in records if r["kind"] in ("fold", "griffin_lim")]
    factors = sorted({r["subscale_factor"] for r in model_rows})
    for ax, (name, label) in zip(axes, panels):
        ax.plot(
            [r["subscale_factor"] for r in sweep],
            [_nan(r.get(name)) for r in sweep],
            "o-",
            label=f"Subscale WaveRNN (F = {sweep_horizon})",
        )
        for r in others:
            ax.plot(r["subscale_factor"], _nan(r.get(name)), "s", label=r["system"])
        for r, color in zip(baseline_rows, _BASELINE_COLORS):
            if r.get(name) is not None:
                ax.axhline(r[name], linestyle="--", color=color, label=r["system"])
        _log2_axis(ax, factors, "subscale factor B")
        ax.set_title(label)
    handles = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(len(handles), 6),
    )
    _save_figure(fig, path)


def plot_speed(records, path, sample_rate):
    """Samples/s vs B (models) and N (fold-and-crossfade), log scales."""
    fig = figure.Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    timed = [r for r in records if r.get("samples_per_second")]
    for kind, marker, label in (
        ("model", "o", "Subscale WaveRNN, B (every F)"),
        ("fold", "^", "fold-and-crossfade with B = 1, N chunks"),
    ):
        rows = [r for r in timed if r["kind"] == kind]
        ax.plot(
            [r["subscale_factor"] or r["num_chunks"] for r in rows],
            [r["samples_per_second"] for r in rows],
            marker,
            label=label,
        )
    for r in timed:
        if r["kind"] == "griffin_lim":
            ax.axhline(
                r["samples_per_second"],
                linestyle="--",
                color="tab:gray",
                label="Griffin-Lim",
            )
    ax.axhline(sample_rate, linestyle=":", color="black", label="real time")
    ticks = sorted(
        {
            r["subscale_factor"] or r["num_chunks"]
            for r in timed
            if r["kind"] != "griffin_lim"
        }
    )
    _log2_axis(ax, ticks, "samples per step (B, or N chunks)")
    ax.set_yscale("log")
    ax.set_ylabel("samples / s")
    ax.legend(fontsize="small")
    _save_figure(fig, path)


def plot_seams(records, path, fold_chunks):
    """Log-mel distance near vs away from the seams, per system and N."""
    rows = [r for r in records if r["kind"] != "original"]
    fig = figure.Figure(
        figsize=(max(6, 1.1 * len(rows)), 3.2 * len(fold_chunks)), layout="constrained"
    )
    axes = fig.subplots(len(fold_chunks), 1, squeeze=False)[:, 0]
    x = np.arange(len(rows))
    for ax, n in zip(axes, fold_chunks):
        near = [_nan(r.get(f"lmd_db_near{n}")) for r in rows]
        away = [_nan(r.get(f"lmd_db_away{n}")) for r in rows]
        ax.bar(x - 0.2, near, 0.4, label="near the seams")
        ax.bar(x + 0.2, away, 0.4, label="away from them")
        ax.set_xticks(x, [r["system"] for r in rows], rotation=30)
        ax.set_ylabel("log-mel distance (dB)")
        ax.set_title(f"Windows around the seams of fold-and-crossfade at N = {n}")
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2
    )
    _save_figure(fig, path)


def report_html(records, clips):
    """A static page: metrics table, then players and spectrograms per clip.

    Args:
      records: from `summarize`.
      clips: the clips it plays: `audio/<system>/<clip>.wav` and
        `spectrograms/<system>/<clip>.png` of every system.
    """
    names = [r["system"] for r in records]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Batch size vs quality</title>",
        "<style>body{font-family:sans-serif} td,th{padding:4px;"
        "vertical-align:top;border:1px solid #ccc} img{width:320px}"
        " table{border-collapse:collapse}</style></head><body>",
        "<h1>Batch size vs quality</h1>",
        "<p>Tables: <a href='results.md'>results.md</a>, "
        "<a href='results.jsonl'>results.jsonl</a>.</p>",
        "<p><img src='quality_vs_B.png' style='width:100%'></p>",
        "<p><img src='speed_vs_B.png' style='width:45%'> "
        "<img src='seams.png' style='width:45%'></p>",
    ]
    summary = [
        ("NLL bits", "nll_bits", 3),
        ("log-mel dB", "lmd_db", 2),
        ("MCD dB", "mcd_db", 2),
        ("PESQ", "pesq_wb", 2),
        ("STOI", "stoi", 3),
        ("x real time", "real_time_factor", 3),
    ]
    parts.append(f"<table><tr><th></th>{head}</tr>")
    for label, name, digits in summary:
        cells = "".join(f"<td>{_fmt(r.get(name), digits)}</td>" for r in records)
        parts.append(f"<tr><th>{label}</th>{cells}</tr>")
    parts.append("</table>")
    for clip in clips:
        parts.append(f"<h2>{html.escape(clip.name)}</h2>")
        parts.append(f"<p>{html.escape(clip.path)}, from frame {clip.start_frame}</p>")
        parts.append(f"<table><tr>{head}</tr><tr>")
        for name in names:
            wav = f"audio/{name}/{clip.name}.wav"
            png = f"spectrograms/{name}/{clip.name}.png"
            parts.append(
                f"<td><audio controls preload='none' src='{html.escape(wav)}'>"
                f"</audio><br><img src='{html.escape(png)}'></td>"
            )
        parts.append("</tr></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
