"""Files written whole or not at all."""

import os
import tempfile

from subscale import errors


def atomic_write(path, write):
    """Writes a file so that readers see the old file or the whole new one.

    Args:
      path: destination; missing parent folders are created.
      write: function of a temporary path (same folder and suffix) that writes
        the content there; the temporary file is then moved onto `path`.

    Raises:
      SubscaleError: naming `path`, on any OSError.
    """
    atomic_write_all({path: write})


def atomic_write_all(writes):
    """Writes several files; a failure leaves every one of them as it was.

    Each file is written to a temporary file beside it, and only once all are
    written are they moved into place (a rename needs no space), so a full
    disk cannot leave a mix of old and new files, such as a model's new
    parameters beside its old config.

    Args:
      writes: {destination path: function of a temporary path that writes the
        content there}; missing parent folders are created.

    Raises:
      SubscaleError: naming the path, on any OSError.
    """
    temporary = {}
    path = None
    try:
        for path, write in writes.items():
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                suffix=os.path.splitext(path)[1], prefix=".tmp-", dir=folder
            )
            os.close(fd)
            temporary[path] = tmp
            write(tmp)
            os.chmod(tmp, 0o644)
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    except OSError as e:
        raise errors.SubscaleError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        for tmp in temporary.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def text_writer(text):
    """A `write` function for `atomic_write` that writes `text`."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return write


def write_text(path, text):
    """Writes a text file atomically (readers see the old or the new file)."""
    atomic_write(path, text_writer(text))
