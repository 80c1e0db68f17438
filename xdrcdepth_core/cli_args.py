"""Command-line conventions shared by every console script of the package.

* Bad arguments: **one line** on stderr (``<prog>: error: <what> (see --help)``) and exit code 2, not
  argparse's usage block. :class:`ArgumentParser` does that; sub-parsers inherit it.
* A value from a file or an argument is quoted in a message by :func:`short_repr`, built bounded.
* Numbers are checked where they are parsed: :func:`finite_float` (no ``nan``/``inf``), and the range
  variants below, so ``-r nan`` is refused at once instead of hanging later.
* Ctrl-C / SIGINT in a batch command: one line and exit code 130 (:data:`EXIT_INTERRUPTED`); output
  files are atomic, so a rerun resumes (see :func:`interrupted_line`). A step that must not be cut once
  begun (a file put in place and counted as complete) holds Ctrl-C until it is done (:func:`sigint_held`).
* An ``OSError`` writing output (read-only or full disk, no permission): one line naming the path and
  the cause (:func:`os_error_line`), exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import reprlib
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report a Ctrl-C'd command


class MissingDependency(Exception):
    """A package the program needs is not installed; the message names it and how to get it. The ``xdrcdepth``
    command and the nodes say it in one line and exit with :data:`EXIT_USAGE`, as for their other start-up errors."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no progress bars (for logs and batch jobs; ``ablate`` passes it to its sub-commands)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def one_line(text: str) -> str:
    """``text`` with its lines joined by ``'; '`` (messages of nested exceptions can span lines)."""
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    return "; ".join(parts)


class _ShortRepr(reprlib.Repr):
    """:mod:`reprlib` limits, and an integer too long to show is not turned into text at all (a 5000-digit one
    takes quadratic time, and Python refuses one of more than 4300 digits with a ``ValueError``)."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, 40, 40, 40
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdict = 5

    def repr_int(self, x, level):
        if x.bit_length() > 4 * self.maxlong:   # more than ~1.2 x maxlong digits: cut anyway
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_SHORT_REPR = _ShortRepr()


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for a message quoting a value from a file or an argument.
    Built bounded (:mod:`reprlib`: a few items of each list and mapping, a few levels, the ends of long texts), not
    built whole and then cut: a config whose YAML aliases nest lists within lists has a repr far larger than any
    memory, and ``repr`` of a huge integer fails."""
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite (argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite float >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def int_at_least(text: str, low: int) -> int:
    """``text`` as an int >= ``low`` (argparse's error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1."""
    return int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    return int_at_least(text, 0)


_CAUSES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EFBIG: "file too large for this file system or process limit",
           errno.ENOTDIR: "a file is in the way (a folder is needed there)",
           errno.EEXIST: "something is in the way (it already exists)"}


def path_argument(text: str) -> Path:
    """A file or folder path (argparse ``type``): an empty one is refused, which ``Path('')`` would make the current
    folder (``--out ''`` wrote a replay's bag and recording into it)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def os_error_cause(exc: OSError) -> str:
    """A short cause for an ``OSError`` (``disk full``, ``read-only file system``, ... or its strerror)."""
    return _CAUSES.get(exc.errno, exc.strerror or type(exc).__name__)


def written_path(exc: OSError) -> str | None:
    """The file a failed write was for: an atomic write's temporary (``.config.yaml.<pid>.<random>.tmp``, what
    the ``OSError`` of a read-only folder names) as its final name, else the error's own file name."""
    from xdrcdepth_core.atomic import temporary_target

    if not exc.filename:
        return None
    target = temporary_target(exc.filename)
    return os.path.join(os.path.dirname(exc.filename), target) if target else str(exc.filename)


def os_error_line(prog: str, exc: OSError, path: str | os.PathLike | None = None) -> str:
    """``<prog>: cannot write <path>: <cause> [Errno N]``, the path taken from the exception if not given (a
    temporary of an atomic write named by its final file: :func:`written_path`)."""
    where = path if path is not None else (written_path(exc) or "output")
    code = f" [Errno {exc.errno}]" if exc.errno else ""
    return f"{prog}: cannot write {where}: {os_error_cause(exc)}{code}"


def output_file_problem(prog: str, path: Path) -> int:
    """Check before the work that the output file ``path`` can be written: 0 if so; else one line on stderr and the
    exit code: 2 for a folder at ``path`` ("give a file name"), 1 for a folder that cannot be made or written to
    (a path through a file, read-only, no permission; an empty probe file is made and removed to find out). A
    report found unwritable only at its write came after all the work."""
    if path.is_dir():
        say(f"{prog}: cannot write {path}: it is a folder, give a file name")
        return 2
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(os_error_line(prog, exc, path))
        return 1
    return _unwritable(prog, path.parent, path)


def output_folder_problem(prog: str, path: Path) -> int:
    """:func:`output_file_problem` for an output folder: 0 if ``path`` is a folder, or can be made one, that can be
    written to; else one line on stderr and the exit code: 2 for a file at ``path`` ("give a folder"), 1 for a path
    through a file or a folder that cannot be written to (found with a probe file in the nearest folder there is;
    nothing is made, so a command refused later for another reason leaves no empty folder). A command that found
    this at its first file written had done its work for nothing."""
    if path.exists() and not path.is_dir():
        say(f"{prog}: cannot write into {path}: it is a file, give a folder")
        return 2
    return _unwritable(prog, next(folder for folder in (path, *path.parents) if folder.exists()), path)


def _unwritable(prog: str, folder: Path, path: Path) -> int:
    """0 if a file can be made in ``folder`` (an empty probe file, made and removed); else one line on stderr
    naming ``path`` and the cause, and exit code 1."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        say(os_error_line(prog, exc, path))
        return 1
    return 0


def output_overlap(outputs: dict[str, str | os.PathLike | None],
                   inputs: dict[str, str | os.PathLike | None]) -> str | None:
    """Why writing one of ``outputs`` (``{option: path}``) would destroy or mix into one of ``inputs`` (files or
    folders, symlinks followed), or None: the output is that input, or lies inside it (a bag folder holds only
    the bag's files). A command refuses such an output before any work: ``error: <this>``, exit code 2."""
    for out_option, output in outputs.items():
        if not output:
            continue
        target = os.path.realpath(output)
        for option, path in inputs.items():
            source = os.path.realpath(path) if path else None
            if source and os.path.isdir(source) and os.path.commonpath([target, source]) == source:
                return f"argument {out_option}: {output} is in the {option} folder {path}: write it elsewhere"
            if target == source:
                return f"argument {out_option}: {output} is the {option} {path}: writing it would destroy that input"
    return None


def interrupted_line(prog: str, done: str = "") -> str:
    """The line printed on SIGINT: what was finished, and that a rerun resumes."""
    return f"{prog}: interrupted (SIGINT){': ' + done if done else ''}; finished files are complete, rerun to resume"


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """A SIGINT that arrives inside the block is held and delivered again when the block ends, to the Python
    handler that was in place before (``KeyboardInterrupt``).

    For the end of a unit of work that must not be cut in two (a bag renamed into place, then counted as
    complete): the interrupt's one line can then name it among the finished ones. Also for a program's import,
    where a library's ``except BaseException`` could swallow the ``KeyboardInterrupt``. Python raises
    ``KeyboardInterrupt`` in the main thread only, so elsewhere the block runs as it is; where SIGINT has no
    Python handler (ignored, or its default action) it is left alone too: putting back Python's ``SIG_IGN``
    would also remove a handler set outside Python since (rclpy's, in a node started with SIGINT ignored, as a
    shell script's background job is: that node no longer stopped on SIGINT; black-box run)."""
    if threading.current_thread() is not threading.main_thread() or not callable(signal.getsignal(signal.SIGINT)):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            signal.raise_signal(signal.SIGINT)


def sigterm_as_ctrl_c(signum, frame) -> None:
    """SIGTERM handler for a node's start-up, before rclpy installs its own: the same stop as a Ctrl-C (SIGINT
    is raised in its place, so a SIGINT held over an import holds it too). Without it SIGTERM's default action
    ended a starting node by the signal (exit -15: ``docker stop``, systemd) where a moment later it exits 0.
    Where SIGINT raises nothing (ignored: a shell script's background job), ``KeyboardInterrupt`` is raised here
    instead: the raised SIGINT was ignored and the node ran on (black-box run)."""
    if not callable(signal.getsignal(signal.SIGINT)):
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def interrupts_seen() -> Iterator[list[int]]:
    """Yields a list that gets an entry for each ``KeyboardInterrupt`` the SIGINT handler in place raises inside
    the block, whatever becomes of it there: a library may turn it into another error or swallow it. torch's ONNX
    exporter runs the model's trace through C++ callbacks and tries the next capture strategy when one fails: a
    Ctrl-C inside comes out as its own ``TorchExportError``, or not at all when a fallback succeeds (seen: exit 2
    "export failed" and a ``.failed`` record that refused every later export of the checkpoint); numpy's import
    turns it into an ``ImportError``. Python's handlers run in the main thread only; elsewhere nothing is
    watched. A handler set inside the block stays when it ends."""
    seen: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum, frame):
        try:
            previous(signum, frame)
        except KeyboardInterrupt:
            seen.append(signum)
            raise

    signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        if signal.getsignal(signal.SIGINT) is handler:     # one set inside the block (SIG_IGN at exit) stays
            signal.signal(signal.SIGINT, previous)


def say(line: str) -> None:
    """Print ``line`` to stderr as one line (:func:`one_line`; flushed: the process may exit right after)."""
    print(one_line(line), file=sys.stderr, flush=True)


#: the largest model input side accepted on a command line (the depth node's largest image is 4096 x 4096)
MAX_MODEL_SIDE = 4096


def model_size(text: str) -> int:
    """A model input height or width: a multiple of the models' size divisor (32), at most :data:`MAX_MODEL_SIDE`."""
    from xdrcdepth_core.models.base import SIZE_DIVISOR

    value = positive_int(text)
    if value % SIZE_DIVISOR or value > MAX_MODEL_SIDE:
        raise argparse.ArgumentTypeError(f"must be a multiple of {SIZE_DIVISOR} up to {MAX_MODEL_SIDE}, got {text!r}")
    return value


def stdout_to_devnull() -> None:
    """After a ``BrokenPipeError`` (the reader of stdout has gone: ``| head``, a killed parent): what is still
    printed goes to /dev/null, so neither later prints nor the interpreter's last flush raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
