"""The ``main()`` shape every long-running node here shares: init, build, spin, stop cleanly.

SIGINT/SIGTERM end the spin with ``KeyboardInterrupt``/``ExternalShutdownException`` — or, when the
signal shuts the context down while the executor is building its wait set, with an ``RCLError`` on a
context that is no longer ok; all three are a normal stop (exit code 0).

``-h``/``--help`` before ``--ros-args`` prints the usage (the node's parameters with their defaults) and exits 0
without starting ROS; any other argument before ``--ros-args`` is an error (one line, exit code 2): ROS
arguments follow ``--ros-args``.

Start-up errors are one line and a non-zero exit code, never a traceback:

* malformed ``--ros-args`` (rcl cannot parse them, or rclpy finds arguments ROS does not know such as
  ``--ros-args --port 1``): ``<name>: cannot start: invalid ROS arguments: ...``, exit code 2
  (:func:`init_ros`; rcl's own error print is swallowed so the line stays alone);
* a parameter of the wrong type or outside its declared range, or failing its constraints
  (:class:`~xdrcdepth_ros.node.params.ParameterError`, rclpy's ``ParameterException`` family, an invalid
  topic name): ``cannot start: ...`` logged, exit code 2;
* a message package that is not installed (``tf2_msgs`` in a pip-only setup:
  :class:`~xdrcdepth_core.cli_args.MissingDependency`): ``cannot start: ...`` naming it and how to get it, exit
  code 2;
* errors the caller names (a bad checkpoint, a busy port): ``cannot start: ...``, ``startup_exit_code``.

Anything else is a bug and propagates.

The clean-up after the spin (``destroy_node``, ``rclpy.try_shutdown``) is bounded: if it has not finished
after :data:`SHUTDOWN_TIMEOUT_S`, :mod:`faulthandler` writes every thread's stack to stderr and the process
exits with code 1. A teardown that hangs (a DDS or WebSocket library waiting on a peer) then ends before a
launcher escalates to SIGTERM/SIGKILL, and says where it hung.

A node whose ``destroy_node`` stops waiting for a daemon thread still inside native code (the depth node's
forward pass on a slow CPU) sets ``left_running = True``; the process then ends with code 0 without finalising
the interpreter (:func:`exit_leaving_threads`): finalising it would abort in that thread ("terminate called
without an active exception", SIGABRT).
"""

from __future__ import annotations

import ast
import ctypes
import faulthandler
import os
import re
import signal
import sys
import tempfile
import threading
import time
from typing import Callable

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import RCLError

from xdrcdepth_core.cli_args import EXIT_USAGE, MissingDependency, one_line, say, sigterm_as_ctrl_c, stdout_to_devnull
from xdrcdepth_ros.node.params import Param, ParameterError

HELP_FLAGS = ("-h", "--help")

#: Seconds the clean-up after the spin may take (below the launcher's 5 s SIGINT-to-SIGTERM timeout).
SHUTDOWN_TIMEOUT_S = 4.0


def exit_leaving_threads(code: int) -> None:
    """End the process now with ``code``, leaving its daemon threads where they are: Python's and C's output
    buffers are flushed, nothing else runs (no atexit handler, no C++ static destructor under a running thread)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or file: nothing more can reach it
            pass
    ctypes.CDLL(None).fflush(None)      # rcutils' console output, if it goes to a buffered C stream
    os._exit(code)


class RosArgumentError(ValueError):
    """``--ros-args`` that rcl cannot parse."""


def _rcl_message(exc: BaseException) -> str:
    text = str(exc).replace("failed to initialize rcl: ", "")
    return re.sub(r", at /\S+:\d+", "", one_line(text))


def _unknown_arguments(exc: BaseException) -> list[str]:
    """The arguments of an ``UnknownROSArgsError`` (its text is the list's repr)."""
    try:
        names = ast.literal_eval(str(exc))
    except (ValueError, SyntaxError):
        return [one_line(str(exc))]
    return [str(name) for name in names] if isinstance(names, list) else [str(names)]


def stop_when_launcher_dies(poll_s: float = 0.5) -> None:
    """Started by ``xdrcdepth launch`` (its pid in :data:`~xdrcdepth_ros.tools.launcher.LAUNCHER_PID_ENV` is our
    parent's), watch that parent from a daemon thread: once it is gone (SIGKILLed, it could not stop its
    children, which run in their own sessions), send this process SIGTERM, the clean stop the launcher would
    have sent (a recorder finalises its bag), with stdout and stderr on /dev/null: their pipe to the launcher
    is closed. ``ros2 launch`` leaves such orphans running; a recorder among them fills the disk."""
    from xdrcdepth_ros.tools.launcher import LAUNCHER_PID_ENV

    launcher = os.environ.get(LAUNCHER_PID_ENV, "")
    if launcher != str(os.getppid()):   # not a child of the launcher (a grandchild inherits the variable)
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(poll_s)
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            os.dup2(devnull, stream.fileno())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher watch", daemon=True).start()


def init_ros(args: list[str] | None = None, **kwargs) -> None:
    """:func:`init_rcl`, then the process stops when the launcher that started it dies
    (:func:`stop_when_launcher_dies`)."""
    init_rcl(args, **kwargs)
    stop_when_launcher_dies()


def init_rcl(args: list[str] | None = None, **kwargs) -> None:
    """``rclpy.init``; malformed or unknown ROS arguments raise :class:`RosArgumentError` with the reason.

    rcl prints its own ``[ERROR] [rcl]: Failed to parse global arguments`` to stderr; that print is
    captured (file descriptor 2) while rclpy initialises, and passed on only when init succeeds.
    """
    if signal.getsignal(signal.SIGTERM) is sigterm_as_ctrl_c:   # the start-up's: rclpy's handler would chain to it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            rclpy.init(args=sys.argv if args is None else args, **kwargs)
        except RCLError as exc:
            raise RosArgumentError(f"invalid ROS arguments: {_rcl_message(exc)}") from None
        except _rclpy.UnknownROSArgsError as exc:   # `--ros-args --bogus`: rclpy's own check, after rcl's parse
            raise RosArgumentError(f"invalid ROS arguments: unknown {', '.join(_unknown_arguments(exc))} "
                                   "(a node's own flags go before --ros-args; parameters are -p NAME:=VALUE)") from None
        else:
            captured.seek(0)
            text = captured.read()
            if text:
                os.write(saved, text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)



def init_ros_with_stop_event(args: list[str]) -> threading.Event:
    """:func:`init_ros` without rclpy's signal handlers: SIGINT and SIGTERM set the returned event instead, for
    a tool that ends its own loop and then finishes its file (``bag_player``, ``bag_recorder``)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    init_ros(args, signal_handler_options=SignalHandlerOptions.NO)
    return stop


def create_tool_node(name: str, **kwargs) -> Node:
    """``rclpy.create_node`` for a tool whose ROS arguments may carry a parameter of the wrong type
    (``-p use_sim_time:=maybe``): that raises :class:`RosArgumentError` after shutting rclpy down, so the
    tool says one line and exits 2 before it writes or plays anything."""
    try:
        return rclpy.create_node(name, **kwargs)
    except ParameterException as exc:
        rclpy.try_shutdown()
        raise RosArgumentError(f"invalid ROS arguments: {one_line(exc)}") from None


def _format_default(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def node_help(name: str, summary: str, parameters: tuple[Param, ...] = (), docs: str = "") -> str:
    """The ``--help`` text of a node: usage, ``summary``, every parameter with type range, default and meaning."""
    lines = [f"usage: {name} [-h] [--ros-args [-p NAME:=VALUE ...] [--params-file FILE] [-r FROM:=TO ...]]",
             "", summary.strip(), "", "options:", "  -h, --help  show this help and exit (starts nothing)", ""]
    if parameters:
        lines.append("parameters (-p NAME:=VALUE or --params-file FILE; * = read-only, fixed at start-up):")
        for p in parameters:
            limits = f" [{p.range[0]}, {p.range[1]}]" if p.range else f" ({p.constraints})" if p.constraints else ""
            lines.append(f"  {p.name}{'*' if p.read_only else ''} = {_format_default(p.default)}{limits}")
            lines.append(f"      {p.description}")
        lines.append("")
    lines.append("ROS arguments: -r __node:=NAME renames the node, -r topic:=other remaps a topic; "
                 "SIGINT/SIGTERM stop it (exit code 0)." + (f" Details: {docs}" if docs else ""))
    return "\n".join(lines)


def _user_arguments(args: list[str] | None) -> list[str]:
    """The arguments before ``--ros-args`` (without the program name)."""
    argv = list(sys.argv if args is None else args)[1:]
    return argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv


#: Start-up errors that are always a bad configuration (exit code 2), a missing message package among them.
CONFIGURATION_ERRORS = (ParameterError, ParameterException, NameValidationException, MissingDependency)


def run_node(make_node: Callable[[], Node], name: str,
             startup_errors: tuple[type[BaseException], ...] = (),
             startup_exit_code: int = 2, args: list[str] | None = None, help_text: str | None = None) -> int:
    """Run the node built by ``make_node`` until shutdown; returns the process exit code.

    ``help_text`` (:func:`node_help`) is printed for ``-h``/``--help``; without it a one-line usage."""
    extra = _user_arguments(args)
    if any(a in HELP_FLAGS for a in extra):
        try:
            print(help_text or node_help(name, f"The {name} ROS 2 node."), flush=True)
        except BrokenPipeError:   # `depth_node --help | head`: the reader is gone; stop quietly, as cat does
            stdout_to_devnull()
            return 1
        return 0
    if extra:
        say(f"{name}: error: unrecognized arguments: {' '.join(extra)} (ROS arguments follow --ros-args; "
            "see --help)")
        return EXIT_USAGE
    try:
        init_ros(args)
    except RosArgumentError as exc:
        say(f"{name}: cannot start: {exc}")
        return EXIT_USAGE
    node = None
    try:
        try:
            node = make_node()
        except CONFIGURATION_ERRORS as exc:
            get_logger(name).error(f"cannot start: {one_line(exc)}")
            return EXIT_USAGE
        except startup_errors as exc:
            get_logger(name).error(f"cannot start: {one_line(exc)}")
            return startup_exit_code
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():
            raise
    finally:
        faulthandler.dump_traceback_later(SHUTDOWN_TIMEOUT_S, exit=True)
        try:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
        finally:
            faulthandler.cancel_dump_traceback_later()
    if getattr(node, "left_running", False):
        exit_leaving_threads(0)
    return 0
