"""`xdrcdepth launch` as a process supervisor: prefixed output, shutdown on a marked exit, Ctrl-C
forwarding, SIGTERM escalation, exit status. Real child processes from a launch file written here."""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fs_faults import sigint_default

# Children: `talker` prints, then waits for SIGINT and reports it (with the time it got it); `stubborn` ignores
# SIGINT; `chatty` prints a line every 20 ms and on SIGINT creates `<ready file>.stopped`; each creates its ready
# file (argv[1], holding its pid) once its signal handling is set. `finisher` waits for the
# ready files it is given (argv[2:]), prints the time and exits with the code in argv[1]: the graph stops
# only after every child can take its signal, however slowly the machine starts them.
TALKER = """
import os, signal, sys, time
def stop(signum, frame):
    print('talker got', signal.Signals(signum).name, 'at', repr(time.time()), flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
open(sys.argv[1], 'w').write(str(os.getpid()))
print('talker ready', flush=True)
while True:
    time.sleep(0.05)
"""
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
open(sys.argv[1], 'w').close()
print('stubborn ready', flush=True)
while True:
    time.sleep(0.05)
"""
CHATTY = """
import os, signal, sys, time
def stop(signum, frame):
    open(sys.argv[1] + '.stopped', 'w').close()
    sys.exit(0)
def chat(signum, frame):
    print('chatty', repr(time.time()), flush=True)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGALRM, chat)
open(sys.argv[1], 'w').write(str(os.getpid()))
signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)   # a line every 20 ms
while True:
    signal.pause()
"""
FINISHER = """
import os, sys, time
deadline = time.monotonic() + 120
while not all(os.path.exists(p) for p in sys.argv[2:]):
    assert time.monotonic() < deadline, 'children not ready'
    time.sleep(0.02)
print('finisher done at', repr(time.time()), flush=True)
sys.exit(int(sys.argv[1]))
"""


# `spawner` starts a worker (in its process group, as a shell's `worker &` would) that ignores SIGINT, writes
# the worker's pid as its ready file and exits on SIGINT, leaving the worker behind.
SPAWNER = """
import signal, subprocess, sys
worker = subprocess.Popen([sys.executable, '-c', 'import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); '
                           'print("worker ready", flush=True)\\nwhile True: signal.pause()'])
open(sys.argv[1], 'w').write(str(worker.pid))
print('spawner ready', flush=True)
try:
    while True:
        signal.pause()
except KeyboardInterrupt:
    print('spawner got SIGINT', flush=True)
"""


SCRIPTS = {"talker": TALKER, "stubborn": STUBBORN, "chatty": CHATTY, "finisher": FINISHER, "spawner": SPAWNER}


def write_launch(tmp_path, children, shutdown_on="finisher", linger=None):
    """A launch file of ExecuteProcess actions running the scripts above (a child of another name runs the
    file ``tmp_path / name`` itself); ``shutdown_on`` ends the graph, ``linger`` seconds after it exits when
    given (TimerAction)."""
    actions = []
    ready = [str(tmp_path / f"{name}.ready") for name, _ in children if name in SCRIPTS and name != "finisher"]
    for name, args in children:
        if name in SCRIPTS:
            script = tmp_path / f"{name}.py"
            script.write_text(SCRIPTS[name])
            args = [*args, *ready] if name == "finisher" else [*args, str(tmp_path / f"{name}.ready")]
            cmd = [sys.executable, str(script), *args]
        else:
            cmd = [str(tmp_path / name), *args]
        actions.append(f"{name} = ExecuteProcess(name='{name}', cmd={cmd!r})")
    shutdown = "EmitEvent(event=Shutdown())"
    if linger is not None:
        shutdown = f"TimerAction(period={linger!r}, actions=[{shutdown}])"
    handler = (f"RegisterEventHandler(OnProcessExit(target_action={shutdown_on}, "
               f"on_exit=[{shutdown}])),") if shutdown_on else ""
    path = tmp_path / "test.launch.py"
    path.write_text(textwrap.dedent("""\
        from launch import LaunchDescription
        from launch.actions import EmitEvent, ExecuteProcess, RegisterEventHandler, TimerAction
        from launch.event_handlers import OnProcessExit
        from launch.events import Shutdown


        def generate_launch_description():
        """) + "".join(f"    {a}\n" for a in actions)
        + f"    return LaunchDescription([{', '.join(n for n, _ in children)}, {handler}])\n")
    return path


def launch(path, *extra):
    return subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "launch", str(path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(proc, text, timeout=120.0):
    """Lines of the launcher's stdout up to and including the first containing ``text``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} in launcher output: {''.join(lines)}")


def test_marked_exit_stops_the_graph_and_children_get_sigint(tmp_path):
    path = write_launch(tmp_path, [("talker", []), ("finisher", ["0"])])
    proc = launch(path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    lines = [line.split(" at ")[0] for line in out.splitlines()]
    assert "[talker] talker ready" in lines and "[finisher] finisher done" in lines
    assert "[launch] finisher exited with code 0" in lines
    assert "[launch] stopping (finisher exited)" in lines
    assert lines.index("[launch] stopping (finisher exited)") < lines.index("[talker] talker got SIGINT")
    assert "[launch] talker exited with code 0" in lines


@pytest.mark.slow
def test_timer_after_marked_exit_keeps_the_graph_running_for_the_period(tmp_path):
    path = write_launch(tmp_path, [("talker", []), ("finisher", ["0"])], linger="2.0")
    proc = launch(path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    times = {line.split(" at ")[0]: float(line.split(" at ")[1]) for line in out.splitlines() if " at " in line}
    out = [line.split(" at ")[0] for line in out.splitlines()]
    exited, stopping = "[launch] finisher exited with code 0", "[launch] stopping (finisher exited 2 s ago)"
    assert out.index(exited) < out.index("[launch] stopping in 2 s (finisher exited)") < out.index(stopping)
    assert out.index(stopping) < out.index("[talker] talker got SIGINT")
    # the children's own clocks: the talker ran on for at least the period after the finisher ended (a loaded
    # machine can only add to it; the upper bound only tells a timer that works from one that never fires)
    ran_on = times["[talker] talker got SIGINT"] - times["[finisher] finisher done"]
    assert 2.0 <= ran_on < 30.0, ran_on


def test_ctrl_c_during_the_timer_stops_at_once(tmp_path):
    proc = launch(write_launch(tmp_path, [("talker", []), ("finisher", ["0"])], linger="600"))
    read_until(proc, "[launch] stopping in 600 s (finisher exited)")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)   # long before the 600 s period would end
    assert proc.returncode == 0, out + err
    assert "[launch] stopping (SIGINT)" in out.splitlines() and "[talker] talker got SIGINT" in out
    assert "exited 600 s ago" not in out


def test_failing_marked_process_sets_the_exit_status(tmp_path):
    proc = launch(write_launch(tmp_path, [("talker", []), ("finisher", ["3"])]))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    assert "[launch] finisher exited with code 3" in out.splitlines()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_and_sigterm_are_forwarded_as_sigint(tmp_path, signum):
    """Also SIGHUP (the terminal closed): the children run in sessions of their own, so without the launcher
    passing it on they would outlive it."""
    proc = launch(write_launch(tmp_path, [("talker", [])], shutdown_on=None))
    read_until(proc, "[talker] talker ready")
    talker = ready_pid(tmp_path / "talker.ready")
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        orphaned = not process_gone(talker, timeout=5)
        if orphaned:                                      # left behind: end it, then fail
            os.kill(talker, signal.SIGKILL)
    assert proc.returncode == 0 and not orphaned, out + err
    lines = [line.split(" at ")[0] for line in out.splitlines()]
    assert f"[launch] stopping ({signum.name})" in lines
    assert "[talker] talker got SIGINT" in lines


def test_process_ignoring_sigint_gets_sigterm_after_the_timeout(tmp_path):
    proc = launch(write_launch(tmp_path, [("stubborn", []), ("finisher", ["0"])]), "--sigterm-timeout", "0.5")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert "[launch] stubborn still running: SIGTERM" in lines
    assert "[launch] stubborn exited with signal SIGTERM" in lines


def test_print_shows_commands_without_starting(tmp_path):
    path = write_launch(tmp_path, [("finisher", ["0"])])
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "launch", str(path), "--print"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"finisher: {sys.executable} {tmp_path / 'finisher.py'} 0\n"   # no children to wait for
    assert "finisher done" not in result.stdout


def ready_pid(path: Path) -> int:
    """The pid a child wrote to its ready file; it writes the file before its first line, so once that line
    has been read (:func:`read_until`) the file is there."""
    return int(path.read_text())


def process_gone(pid: int, timeout=30.0) -> bool:
    """Whether process ``pid`` has ended within ``timeout`` s: waits on its pidfd, readable once it exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_a_process_that_cannot_start_stops_the_graph_in_one_line(tmp_path):
    """An executable that exists but cannot be run (no interpreter line, bad format): one line naming it, the
    processes already started get SIGINT (not SIGKILL from a traceback's clean-up), exit status 1."""
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF not really")
    broken.chmod(0o755)
    proc = launch(write_launch(tmp_path, [("talker", []), ("broken", [])], shutdown_on=None))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert err == f"xdrcdepth launch: cannot start broken: {broken}: Exec format error [Errno 8]\n"
    assert "[launch] stopping (broken could not start)" in out.splitlines()
    assert "[launch] talker exited with" in out


def test_a_closed_output_stops_the_graph_cleanly(tmp_path):
    """The reader of the launcher's output goes away (`| head`, a parent killed with SIGKILL): the graph is
    stopped the Ctrl-C way (the child gets SIGINT and exits), exit status 1, no traceback, nothing left running."""
    path = write_launch(tmp_path, [("chatty", [])], shutdown_on=None)
    proc = launch(path)
    read_until(proc, "[chatty] chatty")
    pid = ready_pid(tmp_path / "chatty.ready")
    proc.stdout.close()                                   # the reader is gone
    try:
        assert proc.wait(timeout=120) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert (tmp_path / "chatty.ready.stopped").exists()   # stopped by SIGINT, not killed
    assert process_gone(pid)


def test_what_a_stopped_process_left_in_its_group_is_stopped_too(tmp_path):
    """A process that exits on SIGINT, leaving behind a worker it started (same process group) that ignores
    SIGINT: the group still has a member, so it gets the escalation's SIGTERM; nothing is left running."""
    proc = launch(write_launch(tmp_path, [("spawner", [])], shutdown_on=None), "--sigterm-timeout", "0.5")
    worker = None
    try:
        read_until(proc, "[spawner] spawner ready")
        worker = ready_pid(tmp_path / "spawner.ready")
        read_until(proc, "worker ready")              # its SIGINT is ignored from here on
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        orphaned = worker is not None and not process_gone(worker, timeout=5)
        if orphaned:                                      # left behind: end it, then fail
            os.kill(worker, signal.SIGKILL)
    assert not orphaned, out + err
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert "[spawner] spawner got SIGINT" in lines and "[launch] spawner exited with code 0" in lines
    assert lines.index("[launch] spawner exited with code 0") < lines.index(
        "[launch] spawner's process group still running: SIGTERM")


#: a launcher whose first start is followed by a Ctrl-C, before the next start (an exact moment, no timing); in a
#: process of its own, as a raised SIGINT must never reach the test runner
CTRL_C_WHILE_STARTING = """
import signal, sys
from xdrcdepth_ros.tools.launcher import ProcessGroup
marker = sys.argv[1]
group = ProcessGroup([("first", [sys.executable, "-c", "import signal; signal.pause()"], None),
                      ("second", [sys.executable, "-c", f"open({marker!r}, 'w').close()"], None)], sigterm_timeout=5.0)
start = group._start
def start_then_ctrl_c(name, *args):
    started = start(name, *args)
    if name == "first":
        signal.raise_signal(signal.SIGINT)   # the launcher's handler runs here, before the next start
    return started
group._start = start_then_ctrl_c
code = group.run()
print("started:", ",".join(entry.name for entry in group.running))
sys.exit(code)
"""


def test_ctrl_c_while_starting_starts_no_more_processes(tmp_path):
    """A Ctrl-C that arrives while the graph is being started (after the first process) stops what runs and
    starts nothing more: the later processes (a recorder that would create its bag) never run."""
    marker = tmp_path / "second.ran"
    proc = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_STARTING, str(marker)], capture_output=True,
                          text=True, timeout=120, preexec_fn=sigint_default)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "[launch] stopping (SIGINT)" in lines and lines[-1] == "started: first"
    assert not marker.exists()


def pids_running_with(argument: str) -> list[int]:
    """Processes whose command line holds ``argument`` (a path only this test uses)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:   # ended meanwhile
            continue
    return pids


@pytest.mark.slow
@pytest.mark.ros
def test_a_sigkilled_launcher_leaves_no_recorder_running_and_its_bag_finalised(tmp_path, ros_domain_id):
    """SIGKILL gives the launcher no chance to stop its children (each in a session of its own). Our nodes and
    tools watch the launcher that started them and stop as it would have stopped them: the recorder finalises
    its bag (metadata.yaml) and exits. Before, it recorded on for ever (as under ``ros2 launch``)."""
    import rclpy
    from rosbags.rosbag2 import Reader
    from std_msgs.msg import String

    out = tmp_path / "rec"
    path = tmp_path / "record.launch.py"
    cmd = [sys.executable, "-m", "xdrcdepth_ros.bag.recorder", "-o", str(out), "/chatter"]
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import ExecuteProcess\n\n\n"
                    "def generate_launch_description():\n"
                    f"    return LaunchDescription([ExecuteProcess(name='recorder', cmd={cmd!r})])\n")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("chatter", context=context)
    publisher = node.create_publisher(String, "/chatter", 10)
    proc = launch(path)
    recorders = []
    try:
        read_until(proc, "[recorder] [INFO]")            # "recording /chatter (std_msgs/msg/String)": it runs
        publisher.publish(String(data="hello"))
        recorders = pids_running_with(str(out))
        assert len(recorders) == 1, recorders
        proc.kill()
        proc.wait(timeout=30)
        stopped = process_gone(recorders[0], timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for pid in pids_running_with(str(out)):           # left behind: end it, then fail
            os.kill(pid, signal.SIGKILL)
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert stopped, "the recorder still runs 60 s after its launcher was killed"
    assert (out / "metadata.yaml").is_file()
    with Reader(out) as reader:                           # a finalised bag that opens
        assert [c.topic for c in reader.connections] == ["/chatter"]


#: a node that declares whatever parameters it was given (``automatically_declare_parameters_from_overrides``)
#: and prints them as JSON, ``{name: [rclpy type, value]}``, then exits
PARAMS_PROBE = """
import json, sys
import rclpy
from rclpy.node import Node
rclpy.init(args=sys.argv)
node = Node('unnamed', automatically_declare_parameters_from_overrides=True)
print(json.dumps({name: [p.type_.name, list(p.value) if p.type_.name.endswith('_ARRAY') else p.value]
                  for name, p in node._parameters.items()}), flush=True)
"""


@pytest.mark.ros
def test_parameter_dicts_reach_a_real_node_typed_as_launch_ros_types_them(tmp_path, ros_domain_id):
    """`Node(parameters=[{...}, file, {...}])` as `ros2 launch` passes it: each entry a `--params-file` in the
    list's order (launch_ros writes a dict to a temporary file, `Node._create_params_file_from_dict`, under
    the node's full name when it has name and namespace, else `/**`), the values typed by launch_ros's
    `normalize_parameter_dict` / `_normalize_parameter_array_value` / `evaluate_parameter_dict`: a Python str
    stays a string (`''` included: `-p fixed_frame:=` made rcl refuse the node), lists keep their items' type
    (ints with floats become floats), nested dicts become dotted names, a LaunchConfiguration's text is read as
    YAML. Checked by what a real rclpy node declares; the temporary files are gone once the launcher has exited.
    Beyond launch_ros: '1e5' and 'y' stay strings (its yaml.dump writes them unquoted, and rcl reads a double and
    a bool)."""
    probe = tmp_path / "probe"
    probe.write_text(f"#!{sys.executable}\n{PARAMS_PROBE}")
    probe.chmod(0o755)
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    order: file\n    overridden: file\n")
    path = tmp_path / "params.launch.py"
    path.write_text(textwrap.dedent(f"""\
        from launch import LaunchDescription
        from launch.actions import DeclareLaunchArgument
        from launch.substitutions import LaunchConfiguration
        from launch_ros.actions import Node


        def generate_launch_description():
            return LaunchDescription([
                DeclareLaunchArgument('count', default_value='5'),
                DeclareLaunchArgument('topics', default_value='[a, b]'),
                DeclareLaunchArgument('empty', default_value="''"),
                Node(package='p', executable={str(probe)!r}, name='plain', parameters=[
                    {{'fixed_frame': '', 'checkpoint': '123', 'precision': 'true', 'looks_float': '1e5',
                      'y_text': 'y', 'flag': True, 'count': 5, 'ratio': 0.2,
                      'radar_topics': ['radar/a', 'radar/b'], 'ints': [1, 2], 'floats': [1, 2.5],
                      'bools': [True, False], 'nested': {{'inner': {{'deep': 'x'}}, 'n': 3}},
                      'config_int': LaunchConfiguration('count'), 'config_list': LaunchConfiguration('topics'),
                      'config_empty': LaunchConfiguration('empty'), 'order': 'dict', 'kept': 'dict'}},
                    {str(params)!r},
                    {{'overridden': 'last dict'}}]),
                Node(package='p', executable={str(probe)!r}, name='probe', namespace='r1',
                     parameters=[{{'only': 'r1'}}]),
            ])
        """))
    proc = launch(path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    printed = {line.split("] ")[0][1:]: json.loads(line.split("] ", 1)[1]) for line in out.splitlines()
               if line.startswith(("[plain] {", "[probe] {"))}
    for values in printed.values():
        for builtin in ("use_sim_time", "start_type_description_service"):
            values.pop(builtin, None)
    assert printed["plain"] == {
        "fixed_frame": ["STRING", ""], "checkpoint": ["STRING", "123"], "precision": ["STRING", "true"],
        "looks_float": ["STRING", "1e5"], "y_text": ["STRING", "y"], "flag": ["BOOL", True],
        "count": ["INTEGER", 5], "ratio": ["DOUBLE", 0.2], "radar_topics": ["STRING_ARRAY", ["radar/a", "radar/b"]],
        "ints": ["INTEGER_ARRAY", [1, 2]], "floats": ["DOUBLE_ARRAY", [1.0, 2.5]],
        "bools": ["BOOL_ARRAY", [True, False]],
        "nested.inner.deep": ["STRING", "x"], "nested.n": ["INTEGER", 3], "config_int": ["INTEGER", 5],
        "config_list": ["STRING_ARRAY", ["a", "b"]], "config_empty": ["STRING", ""],
        "order": ["STRING", "file"], "kept": ["STRING", "dict"], "overridden": ["STRING", "last dict"]}
    assert printed["probe"] == {"only": ["STRING", "r1"]}   # written under /r1/probe, which rcl matched
    files = [word for line in out.splitlines() if line.startswith("[launch] ") and "--params-file" in line
             for word in line.split() if "xdrcdepth_launch_" in word]
    assert [Path(f).name for f in files] == ["plain_params_1.yaml", "plain_params_2.yaml", "probe_params_3.yaml"]
    assert not Path(files[0]).parent.exists()
