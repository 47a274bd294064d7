"""One training process per workdir.

Two runs writing one workdir would interleave their checkpoints and metrics.
Training holds an exclusive lock on `<workdir>/train.lock` for as long as it
runs; the file records the holder (process id and host) so that a refusal can
name it. The lock is an advisory `flock`, which the kernel drops when the
holder dies however it dies, so a lock left by a killed run is free and the
next run takes it over, with a warning that names the run it replaces. Reading
a workdir (evaluate, vocode, `subscale.load`) takes no lock.
"""

import fcntl
import json
import os
import socket

from absl import logging

from subscale import errors

LOCK_FILE = "train.lock"


class WorkdirLock:
    """The held lock of a workdir; `release()` (or leaving `with`) frees it."""

    def __init__(self, fd, path):
        self._fd = fd
        self.path = path

    def release(self):
        if self._fd is None:
            return
        # An empty file means "released"; the file itself stays, since deleting
        # it could let a run lock the deleted file while another makes a new one.
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def _holder(fd):
    """The {pid, host} a lock file records, or None when empty or unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096).decode())
        return dict(pid=int(record["pid"]), host=str(record["host"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _alive(holder):
    """Whether the recorded process may still run (one on another host may)."""
    if holder["host"] != socket.gethostname():
        return True
    if holder["pid"] == os.getpid():
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(workdir):
    """Locks `workdir` for this process.

    Returns:
      A WorkdirLock.

    Raises:
      SubscaleError: another live process holds the lock (the message names
        the workdir and that process), or the lock file cannot be written.
    """
    path = os.path.join(workdir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise errors.SubscaleError(f"{path}: cannot open ({e.strerror or e})") from e
    previous = _holder(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = False
        previous = _holder(fd)  # the record as it is now that no one writes it
    except BlockingIOError:
        held = True
    except OSError as e:
        # A file system without locks (some network ones): judge by the record.
        logging.warning("%s: cannot lock (%s); checking its process.", path, e)
        held = previous is not None and _alive(previous)
    if held:
        os.close(fd)
        who = (
            f"process {previous['pid']} on {previous['host']}"
            if previous
            else "another process"
        )
        raise errors.SubscaleError(
            f"{workdir}: {who} is training in this workdir (lock {path}); wait "
            "for it to finish, stop it, or use another --workdir"
        )
    if previous:
        logging.warning(
            "%s: taking over the lock of process %d on %s, which has stopped.",
            workdir,
            previous["pid"],
            previous["host"],
        )
    record = json.dumps(dict(pid=os.getpid(), host=socket.gethostname()))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
    except OSError as e:
        os.close(fd)
        raise errors.SubscaleError(f"{path}: cannot write ({e.strerror or e})") from e
    return WorkdirLock(fd, path)
