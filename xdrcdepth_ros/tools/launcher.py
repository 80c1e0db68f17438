"""``xdrcdepth launch GRAPH [name:=value ...]``: run a launch file's processes without ROS 2 launch.

GRAPH is ``xdrcdepth`` or ``nuscenes_replay`` (``<share>/launch/GRAPH.launch.py``) or a path to a launch
file. :mod:`xdrcdepth_ros.tools.launch_graph` reads the file (the same file ``ros2 launch`` runs) and this
command starts what it describes, like ``ros2 launch`` does:

- a ``Node`` runs as ``<executable> [arguments] --ros-args -r __node:=NAME --params-file YAML ...
  -r from:=to``, one ``--params-file`` per ``parameters=`` entry in its order, a dict written to a
  temporary parameters file as launch_ros does (:class:`ParamsFiles`); our own executables come from this
  environment (console scripts beside the Python running this, or ``<prefix>/lib/xdrcdepth_ros``); another
  package's missing executable (``rviz2`` without a ROS install) is skipped with a warning;
- ``ros2 bag play ...`` runs as ``bag_player ...`` and ``ros2 bag record ...`` as ``bag_recorder ...``
  (the ``ros2 bag`` flags the launch files use; no ros2cli needed);
- each line a process prints is prefixed with ``[name]``;
- SIGINT/SIGTERM/SIGHUP (Ctrl-C, kill, a closed terminal) go to every process as SIGINT (the children run
  in sessions of their own, so nothing else reaches them); a process still alive after
  ``--sigterm-timeout`` s gets SIGTERM, then SIGKILL after as long again (ros2 launch's escalation);
- when a process marked ``OnProcessExit(... Shutdown())`` exits (the bag player in nuscenes_replay) the
  rest are stopped the same way, at once or, with ``TimerAction(period=p, actions=[... Shutdown()])``,
  ``p`` seconds later (Ctrl-C meanwhile stops at once); otherwise the launcher waits until every process
  has exited.

Exit status: the first non-zero exit status of a process that ended on its own, else 0; 1 when a process
could not start (one line naming it; the others are stopped) or stdout was closed (the graph is stopped as on
Ctrl-C). A launch file or argument it cannot use: one line, exit status 2.
Module import loads neither rclpy nor torch.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from xdrcdepth_core.cli_args import non_negative_float, os_error_cause, say, stdout_to_devnull
from xdrcdepth_ros.tools.launch_graph import (PACKAGE, Config, Graph, LaunchFileError, PathJoin, Process,
                                        declared_arguments, launch_file, load_graph, parse_assignments)

#: signals that stop the graph (SIGHUP: the terminal closed; its default would end the launcher alone)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: ``ExecuteProcess`` commands with a stand-in here: command prefix -> our executable
STAND_INS = {("ros2", "bag", "play"): "bag_player", ("ros2", "bag", "record"): "bag_recorder"}
POLL_S = 0.05
#: Each child's environment names the launcher's pid here: our nodes and tools stop themselves cleanly when that
#: parent is gone (a SIGKILLed launcher cannot stop them; ``xdrcdepth_ros.node.run.stop_when_launcher_dies``).
LAUNCHER_PID_ENV = "XDRCDEPTH_LAUNCHER_PID"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", help="launch graph name (xdrcdepth, nuscenes_replay) or a .launch.py path")
    parser.add_argument("assignments", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("--show-args", action="store_true", help="list the graph's launch arguments and exit")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the command lines and exit without starting anything")
    parser.add_argument("--sigterm-timeout", type=non_negative_float, default=5.0, metavar="SECONDS",
                        help="after SIGINT, wait this long before SIGTERM (and again before SIGKILL)")


def run(args: argparse.Namespace) -> int:
    try:
        path = launch_file(args.graph)
        if args.show_args:
            print(format_arguments(path))
            return 0
        graph = load_graph(path, parse_assignments(args.assignments))
        if args.print_only:
            params_files = ParamsFiles(None)
            for name, cmd, _ in resolve_commands(graph, params_files):
                print(f"{name}: {shlex.join(cmd)}")
            for path, text in params_files.written:
                print(f"{path}:\n" + "".join(f"    {line}\n" for line in text.splitlines()), end="")
            return 0
        with tempfile.TemporaryDirectory(prefix="xdrcdepth_launch_") as folder:
            commands = resolve_commands(graph, ParamsFiles(Path(folder)))
            if not commands:
                print("xdrcdepth launch: nothing to start", file=sys.stderr)
                return 2
            return ProcessGroup(commands, sigterm_timeout=args.sigterm_timeout).run()
    except LaunchFileError as exc:
        say(f"xdrcdepth launch: {exc}")
        return 2


def format_arguments(path: Path) -> str:
    lines = [f"Arguments of {path} (name:=value):"]
    seen = set()
    for arg in declared_arguments(path):
        if arg.name in seen:  # also declared by an included file: the first declaration is the one used
            continue
        seen.add(arg.name)
        default = "required" if arg.default is None else f"default: {_show_default(arg.default)}"
        if arg.choices:
            default += f"; one of {', '.join(arg.choices)}"
        lines.append(f"    {arg.name} ({default})\n        {arg.description}")
    return "\n".join(lines)


def _show_default(value) -> str:
    if isinstance(value, Config):
        return f"$({value.name})"
    if isinstance(value, PathJoin):
        return "/".join(_show_default(p) for p in value.parts)
    if isinstance(value, list):
        return "".join(_show_default(p) for p in value)
    return repr(value) if isinstance(value, str) and not value else str(value)


def find_executable(package: str | None, executable: str) -> str | None:
    """Where ``executable`` of ``package`` is: beside this Python (pip console scripts), in
    ``<prefix>/lib/<package>`` (colcon / setup.cfg script_dir), or on PATH."""
    candidates = [Path(sys.executable).parent / executable]
    if package:
        prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        candidates += [Path(prefix) / "lib" / package / executable for prefix in prefixes]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(executable)


class ParamsFiles:
    """The parameters files of a graph's ``parameters=`` dicts. launch_ros writes each to a
    ``NamedTemporaryFile(prefix='launch_params_', delete=False)`` (``Node._create_params_file_from_dict``)
    and never removes it; here they go to ``folder``, the launcher's own temporary folder
    (``$TMPDIR/xdrcdepth_launch_*``, removed when the launcher exits), as ``<process>_params_<n>.yaml``.
    ``folder`` None (``--print``): nothing is written, the path reads ``<temporary>/...``. ``written``: each
    file's path and text, in order."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.written: list[tuple[str, str]] = []

    def __call__(self, process: Process, values: dict) -> str:
        text = process.params_yaml(values)
        name = f"{process.name}_params_{len(self.written) + 1}.yaml"
        if self.folder is None:
            path = f"<temporary>/{name}"
        else:
            path = str(self.folder / name)
            Path(path).write_text(text, encoding="utf-8")
        self.written.append((path, text))
        return path


def resolve_commands(graph: Graph, params_files: ParamsFiles) -> list[tuple[str, list[str], float | None]]:
    """``(name, argv, shutdown_after_exit)`` per process to start; stand-ins substituted, executables found,
    parameter dicts written by ``params_files``."""
    commands = []
    for process in graph.processes:
        cmd = command_line(process, params_files)
        found = find_executable(process.package or (PACKAGE if cmd[0] in STAND_INS.values() else None), cmd[0])
        if found is None:
            if process.package == PACKAGE or process.shutdown_after_exit is not None:
                raise LaunchFileError(f"executable {cmd[0]!r} for {process.name} not found "
                                      f"(is the {PACKAGE} package installed in this environment?)")
            print(f"xdrcdepth launch: skipping {process.name}: {cmd[0]!r} is not installed", file=sys.stderr)
            continue
        commands.append((process.name, [found] + cmd[1:], process.shutdown_after_exit))
    return commands


def command_line(process: Process, params_files) -> list[str]:
    """The argv ``ros2 launch`` would run for ``process``, with our stand-ins (executable unresolved);
    ``params_files(process, values)``: the path of a parameters dict's file (:class:`ParamsFiles`)."""
    cmd = [process.executable] + process.arguments + process.ros_args(params_files)
    for prefix, stand_in in STAND_INS.items():
        if tuple(cmd[:len(prefix)]) == prefix:
            return [stand_in] + cmd[len(prefix):]
    return cmd


@dataclass
class _Running:
    name: str
    popen: subprocess.Popen
    shutdown_after_exit: float | None
    pump: threading.Thread
    stopped_by_us: bool = False
    reported: bool = False


class ProcessGroup:
    """Starts processes, prefixes their output, forwards signals and stops them in order."""

    def __init__(self, commands: list[tuple[str, list[str], float | None]], sigterm_timeout: float = 5.0):
        self.commands = commands
        self.sigterm_timeout = sigterm_timeout
        self.running: list[_Running] = []
        self._print_lock = threading.Lock()
        self._stop_reason: str | None = None
        self._stop_at: tuple[float, str] | None = None  # (monotonic deadline, reason) of a pending shutdown
        self._status = 0

    def say(self, name: str, text: str) -> None:
        with self._print_lock:
            try:
                sys.stdout.write(f"[{name}] {text}\n" if not text.endswith("\n") else f"[{name}] {text}")
                sys.stdout.flush()
            except BrokenPipeError:
                self._output_closed()

    def _output_closed(self) -> None:
        """The reader of our stdout has gone (``| head``, a parent killed): stop the graph as on Ctrl-C; what
        is still printed goes to /dev/null, and the pumps keep draining the children's pipes meanwhile."""
        stdout_to_devnull()
        if self._stop_reason is None:
            self._stop_reason = "output closed"
        self._status = self._status or 1

    def _pump(self, name: str, stream) -> None:
        for line in iter(stream.readline, ""):
            self.say(name, line)
        stream.close()

    def _on_signal(self, signum, _frame) -> None:
        if self._stop_reason is None:
            self._stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{LAUNCHER_PID_ENV: str(os.getpid())})
        try:
            for name, cmd, shutdown_after_exit in self.commands:
                # a Ctrl-C while starting: start no more (the recorder would make its bag only to be stopped)
                if self._stop_reason is not None or not self._start(name, cmd, shutdown_after_exit, env):
                    break
            while self._stop_reason is None and self._alive():
                self._reap()
                if self._stop_at is not None and time.monotonic() >= self._stop_at[0]:
                    self._stop_reason = self._stop_at[1]
                time.sleep(POLL_S)
            self._reap()
            if self._remaining():
                self.say("launch", f"stopping ({self._stop_reason or 'left behind by processes that exited'})")
                self._stop_all()
            self._reap()
        finally:
            for entry in self.running:  # never leave children behind, even on an unexpected error
                if entry.popen.poll() is None or _group_has_members(entry.popen):
                    _signal_group(entry.popen, signal.SIGKILL)
                    entry.popen.wait()
            for entry in self.running:
                entry.pump.join(timeout=1.0)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self._status

    def _start(self, name: str, cmd: list[str], shutdown_after_exit: float | None, env: dict) -> bool:
        """Start one process; one that cannot start (not executable, ...) fails the graph: the ones started
        are stopped the usual way and the exit status is 1."""
        self.say("launch", f"{name}: {shlex.join(cmd)}")
        try:
            popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", env=env, start_new_session=True)
        except OSError as exc:
            say(f"xdrcdepth launch: cannot start {name}: {cmd[0]}: {os_error_cause(exc)}"
                + (f" [Errno {exc.errno}]" if exc.errno else ""))
            self._status = self._status or 1
            if self._stop_reason is None:
                self._stop_reason = f"{name} could not start"
            return False
        pump = threading.Thread(target=self._pump, args=(name, popen.stdout), daemon=True)
        pump.start()
        self.running.append(_Running(name, popen, shutdown_after_exit, pump))
        return True

    def _alive(self) -> list[_Running]:
        return [e for e in self.running if e.popen.poll() is None]

    def _remaining(self) -> list[_Running]:
        """The processes still running, and those whose process group still has members (what a process
        started and left behind when it exited: the group's signals must reach it too, or it is orphaned)."""
        return [e for e in self.running if e.popen.poll() is None or _group_has_members(e.popen)]

    def _reap(self) -> None:
        for entry in self.running:
            code = entry.popen.poll()
            if code is None or entry.reported:
                continue
            entry.reported = True
            entry.pump.join(timeout=1.0)  # its last lines before the exit notice
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
            self.say("launch", f"{entry.name} exited with {how}")
            if not entry.stopped_by_us and code != 0 and self._status == 0:
                self._status = code if code > 0 else 128 - code
            if entry.shutdown_after_exit is not None and self._stop_reason is None and self._stop_at is None:
                reason = f"{entry.name} exited"
                if entry.shutdown_after_exit > 0:
                    self.say("launch", f"stopping in {entry.shutdown_after_exit:g} s ({reason})")
                    reason += f" {entry.shutdown_after_exit:g} s ago"
                self._stop_at = (time.monotonic() + entry.shutdown_after_exit, reason)

    def _stop_all(self) -> None:
        """SIGINT to all, then SIGTERM, then SIGKILL to whoever is still alive after each timeout."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = self._remaining()
            if not alive:
                return
            if sig != signal.SIGINT:
                names = (e.name if e.popen.poll() is None else f"{e.name}'s process group" for e in alive)
                self.say("launch", f"{', '.join(names)} still running: {sig.name}")
            for entry in alive:
                entry.stopped_by_us = entry.stopped_by_us or entry.popen.poll() is None
                _signal_group(entry.popen, sig)
            deadline = time.monotonic() + self.sigterm_timeout
            while self._remaining() and time.monotonic() < deadline:
                self._reap()
                time.sleep(POLL_S)


def _group_has_members(popen: subprocess.Popen) -> bool:
    """Whether the process group ``popen`` leads still has a live process in it (asked once the leader has
    been reaped; the group's id is not reused while a member lives). Zombies do not count: an orphan that
    has died waits for init to reap it, and no signal can do more."""
    try:
        os.killpg(popen.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc/self/stat").is_file():   # no /proc: the signal test has to do
        return True
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:   # the process ended meanwhile
            continue
        fields = stat[stat.rfind(")") + 2:].split()   # after "pid (comm)": state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(popen.pid) and fields[0] != "Z":
            return True
    return False


def _signal_group(popen: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the child leads its own process group
    except ProcessLookupError:
        pass
