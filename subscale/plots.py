"""Pictures of audio for people: the spectrogram PNG written beside vocoded wavs.

Kept apart from `audio.py` so that `import subscale` does not load matplotlib.
"""

import numpy as np
from matplotlib import figure
from matplotlib.backends import backend_agg

from subscale import audio
from subscale import files

DPI = 100  # pixels per inch of the saved pictures


def save_spectrogram_png(path, original, generated, cfg, title="generated"):
    """Saves an image of the log-mel of `original` (if given) above `generated`.

    Args:
      path: destination PNG, written atomically.
      original: float32 [t] reference waveform, or None for one panel.
      generated: float32 [t] waveform.
      cfg: MelConfig.
      title: the title of the `generated` panel.
    """
    fig = spectrogram_figure(original, generated, cfg, title)
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def spectrogram_pixels(original, generated, cfg):
    """The picture `save_spectrogram_png` saves, as uint8 RGB [height, width, 3]."""
    fig = spectrogram_figure(original, generated, cfg)
    fig.set_dpi(DPI)
    canvas = backend_agg.FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def spectrogram_figure(original, generated, cfg, title="generated"):
    """A matplotlib Figure of the log-mel of `original` (if given) above
    `generated` (float32 [t] waveforms; `cfg` a MelConfig), that one titled
    `title`."""
    panels = [(title, generated)]
    if original is not None:
        panels.insert(0, ("original", original))
    mels = [(title, audio.mel(np.asarray(x, np.float32), cfg)) for title, x in panels]
    vmax = max([m.max() for _, m in mels if m.size] + [audio.LOG_MEL_FLOOR + 1.0])
    frame_seconds = cfg.hop_length / cfg.sample_rate

    fig = figure.Figure(figsize=(10, 3 * len(mels)), layout="constrained")
    axes = fig.subplots(len(mels), 1, squeeze=False)[:, 0]
    for ax, (title, m) in zip(axes, mels):
        image = ax.imshow(
            m.T,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            vmin=audio.LOG_MEL_FLOOR,
            vmax=vmax,
            extent=(0.0, max(m.shape[0], 1) * frame_seconds, 0, cfg.n_mels),
        )
        ax.set_title(title)
        ax.set_ylabel("mel band")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=list(axes), label="log magnitude")
    return fig
