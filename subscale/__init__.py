"""subscale: fast neural audio synthesis (WaveRNN, Sparse and Subscale WaveRNN)."""

from subscale.api import Vocoder
from subscale.api import create
from subscale.api import load
from subscale.api import pretrained_models
from subscale.errors import SubscaleError

__all__ = ["SubscaleError", "Vocoder", "create", "load", "pretrained_models"]
