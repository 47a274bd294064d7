"""Stopping a training run cleanly on SIGTERM or SIGINT.

A scheduler that preempts a job sends SIGTERM and kills it a little later; a
person presses Ctrl-C. Either way the run should keep its progress: the first
signal asks the training loop to stop after its current step (it saves a
checkpoint of that step and returns), a second one ends the process at once
(the checkpoints already complete stay intact, see `checkpointing`).
"""

import os
import signal
import threading

from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Turns SIGTERM and SIGINT into a request to stop, until `restore()`.

    The first signal sets `requested` (the signal's name), which the training
    loop checks after every step; a second one ends the process by that signal
    at once. Signal handlers belong to the main thread: elsewhere (a run
    started from a worker thread), or with `install=False`, nothing is
    installed and `requested` stays None.
    """

    def __init__(self, install=True, signums=SIGNALS):
        self.requested = None
        self._previous = {}
        if install and threading.current_thread() is threading.main_thread():
            for signum in signums:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self):
        """Puts the handlers from before back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
            logging.warning(
                "Received %s: stopping after this step with a checkpoint "
                "(send it again to stop at once).",
                name,
            )
            return
        logging.warning("Received %s again: stopping at once.", name)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
