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
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".tmp-", dir=folder)
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as e:
        raise errors.SubscaleError(f"{path}: cannot write ({e.strerror or e})") from e


def write_text(path, text):
    """Writes a text file atomically (readers see the old or the new file)."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)
