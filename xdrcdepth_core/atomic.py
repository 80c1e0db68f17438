"""Atomic file writes (temporary file in the target folder + fsync + ``os.replace``), and cleaning of the
temporaries a killed writer left behind.

Every cache, checkpoint, table, bag and image this project writes goes through here, so an interrupted
write never leaves a truncated file under the final name.

Temporaries are hidden and name their writer: ``.<final name>.<pid>.<random>.tmp`` (files, and the bag
folders of :mod:`xdrcdepth_ros.bag.files`). A SIGKILL (or OOM, or power loss) leaves one behind;
:func:`remove_stale_temporaries` deletes those whose process is gone, so commands that write into a
folder (``prepare``, ``nuscenes2bag``) clean up after an earlier killed run of their own and never touch
a temporary another live process is still writing, nor any file of another naming.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

# mkstemp creates 0600 files; finished files get the usual permissions (0666 less the umask), read once
# here at import, before any thread could race on the process-wide umask.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

#: ``.<name>.<pid>.<random>.tmp`` (tempfile's random part is 8 characters of [a-z0-9_])
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$")
#: the naming before the pid was added: ``.<name>.<random>.tmp``; stale only when old (no owner to ask)
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
LEGACY_STALE_AFTER_S = 3600.0


def temp_prefix(path: str | os.PathLike) -> str:
    """Prefix of the temporaries for ``path`` (pass to ``mkstemp``/``mkdtemp`` with ``suffix='.tmp'``)."""
    return f".{Path(path).name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Binary file object whose content appears at ``path`` only when the block exits cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:   # a failed write() names no file: the target
            exc.filename = str(path)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def is_stale_temporary(path: str | os.PathLike, now: float | None = None) -> bool:
    """True for a temporary of our naming whose writer is gone (pid not running; legacy names: > 1 h old)."""
    path = Path(path)
    match = _TEMP_NAME.match(path.name)
    if match:
        return not _process_alive(int(match["pid"]))
    if _LEGACY_TEMP_NAME.match(path.name):
        try:
            age = (time.time() if now is None else now) - path.lstat().st_mtime
        except FileNotFoundError:
            return False
        return age > LEGACY_STALE_AFTER_S
    return False


def temporary_target(path: str | os.PathLike) -> str | None:
    """The final name a temporary of our naming was written for, or None for any other name."""
    name = Path(path).name
    match = _TEMP_NAME.match(name) or _LEGACY_TEMP_NAME.match(name)
    return match["name"] if match else None


def remove_stale_temporaries(folder: str | os.PathLike,
                             wanted: Callable[[str], bool] = lambda target: True) -> list[Path]:
    """Delete the stale temporaries in ``folder`` whose final name passes ``wanted``; returns them.

    Files and folders (bag temporaries) alike; a missing folder or one that cannot be listed is ignored.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        target = temporary_target(entry)
        if target is None or not wanted(target) or not is_stale_temporary(entry):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        except OSError:   # read-only folder etc.: leave it, the caller reports write errors itself
            continue
        removed.append(entry)
    return removed
