"""File-system faults for tests: a read-only folder, a full disk, a file size limit, a blocking input file.

* :func:`readonly_dir`: ``chmod 555`` for a normal user; as root (who ignores permissions) a read-only tmpfs
  mounted on the folder, or the test is skipped where mounting is not allowed.
* :func:`full_dir`: a tiny tmpfs (root only, else skipped): writes fail with ENOSPC, a real full disk.
* :func:`file_size_limit`: ``preexec_fn`` giving a child process ``RLIMIT_FSIZE``; its writes past the limit
  fail with EFBIG (Python ignores SIGXFSZ), the same code path as a full disk, for any user.
* :func:`blocking_input`: replaces an input file by a FIFO, so a command reading it blocks there; the test
  knows the command reached it (the FIFO has a reader) without sleeping, and can then signal it.
* :func:`sigint_default`: `preexec_fn` restoring SIGINT for a child that a CI runner would start with it ignored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


@contextlib.contextmanager
def readonly_dir(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    if not _mount_tmpfs(path, "ro,size=1m"):
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def full_dir(path: Path, size: str = "64k"):
    path.mkdir(parents=True, exist_ok=True)
    if not _mount_tmpfs(path, f"size={size}"):
        pytest.skip("a real full disk needs root and mount (tmpfs); the file size limit variant runs instead")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def sigint_default() -> None:
    """``preexec_fn``: SIGINT back to its default action, as a terminal gives a command it runs. A background
    job of a shell without job control (CI runners start tests that way) inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler, so Ctrl-C tests would hang there."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def file_size_limit(nbytes: int):
    """``preexec_fn`` for subprocess: the child cannot grow any file beyond ``nbytes``."""
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


class blocking_input:
    """Swap ``path`` for a FIFO; ``wait_reader`` returns once a process opened it (and holds it blocked)."""

    def __init__(self, path: Path):
        self.path = path
        self.saved = path.read_bytes()
        path.unlink()
        os.mkfifo(path)
        self.fd = None

    def wait_reader(self, proc: subprocess.Popen, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)   # succeeds once a reader is there
                return
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
            assert proc.poll() is None, f"exited with {proc.returncode} before reading {self.path}: " \
                                        f"{proc.communicate()}"
            assert time.monotonic() < deadline, f"nothing opened {self.path} within {timeout} s"
            time.sleep(0.02)

    def interrupt(self, proc: subprocess.Popen) -> None:
        """SIGINT to the blocked reader, then end of file on the FIFO. Python runs a signal's handler in the
        main thread only; when the kernel delivers SIGINT to another thread of the process (tqdm's monitor,
        a runtime's pool), the main thread's read of the FIFO is not interrupted and would block for ever.
        An ordinary file returns from read; end of file lets the read return too, and the pending
        KeyboardInterrupt is raised at once after it."""
        proc.send_signal(signal.SIGINT)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def restore(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink()
        self.path.write_bytes(self.saved)
