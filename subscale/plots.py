"""Pictures of audio for people: the spectrogram PNG written beside vocoded wavs.

Kept apart from `audio.py` so that `import subscale` does not load matplotlib.
"""

import numpy as np
from matplotlib import figure

from subscale import audio
from subscale import files


def save_spectrogram_png(path, original, generated, cfg):
    """Saves an image of the log-mel of `original` (if given) above `generated`.

    Args:
      path: destination PNG, written atomically.
      original: float32 [t] reference waveform, or None for one panel.
      generated: float32 [t] waveform.
      cfg: MelConfig.
    """
    panels = [("generated", generated)]
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
    files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
