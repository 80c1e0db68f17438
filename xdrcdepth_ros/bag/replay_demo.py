"""``xdrcdepth replay-demo``: a nuScenes scene replayed through the depth node over ROS 2, then shown.

The main job of the project, as one command:

1. data: ``--dataroot`` (a nuScenes-format folder), else the real scene-0061 samples from ``../shared``
   (:func:`xdrcdepth_core.data.real_samples.assemble_real_samples`, in a temporary folder), else one small
   synthetic scene (``xdrcdepth synth``);
2. ``xdrcdepth nuscenes2bag`` writes the scene as a rosbag2 to ``<out>/bag``;
3. the user-facing launch graph runs as a subprocess, exactly as a user would type it:
   ``xdrcdepth launch nuscenes_replay bag:=<out>/bag record:=true record_dir:=<out>/record
   use_rviz:=false use_foxglove:=true rate:=... delay:=... linger:=...``: depth node, recorder, bag player
   and the Foxglove bridge (watch live at ws://127.0.0.1:8765); its output is streamed here with the
   launcher's ``[process]`` prefixes;
4. from the recorded bag, ``xdrcdepth replay-eval`` (:mod:`.replay_eval`): one PNG per depth frame,
   ``<out>/frames/<sec>.<nanosec>.png``, camera image | radar returns // colorized depth | LiDAR ground truth of
   the input bag's frame with the same stamp (written atomically); the depth scored against that LiDAR where
   the frame has it, with the radar-only baseline beside it (per-frame and overall tables, one metrics line,
   ``<out>/replay_eval.json``);
5. one summary line: camera frames played, depth frames back, frames without depth, median latency, output folder.

Exit status 1 with a message when no depth frame came back; the launcher's status when it failed; 2 with one
line for bad arguments, a bad ``--params-file`` or an unreadable default one (before any work); when interrupted
(Ctrl-C, or SIGTERM/SIGHUP sent to this command alone, passed on to the graph as SIGINT) the frames recorded so far
are still shown, then one line and 128 + the signal number (130 for Ctrl-C).

Defaults measured on the 2-core development machine (CPU, shared with other jobs): with the shipped student
and the OpenVINO backend the node is up 5.8-7.0 s after start (2026-12-04; loading the cached OpenVINO
model takes 2.4 s of that, imports and ROS start-up the rest) and needs 0.5-0.9 s per frame (image arrival
to depth published). ``ros2 bag play`` cannot wait for a node, so playback starts after a fixed ``delay``;
without ``--delay`` it is :func:`playback_delay` of the model load measured here just before the graph
starts (the same cached load the node then does, so a slower or busier machine gets a longer wait):
12 s on the development machine (5 s lost the LiDAR key frame on a fresh clone). A busy machine can start the
node later than that load predicts; when the node's ready line came after playback began and frames got no
depth, the graph runs once more with ``--delay`` 1.5 x the readiness seen (an explicit ``--delay`` only gets
the advice). ``rate`` 0.3 (the 2 Hz
key frames arrive 1.7 s apart) brings back 6 of 6 frames; ``linger`` 3 s covers the last frame's
inference. At ``rate`` 1.0 frames are dropped (the node keeps only the newest unprocessed frame).

Importing this module loads neither rclpy nor torch.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xdrcdepth_core.cli_args import EXIT_USAGE, one_line, os_error_cause, path_argument, positive_float, say
from xdrcdepth_core.device import add_device_argument
from xdrcdepth_ros.bag.play_bounds import FLAG_BOUNDS, SECONDS

DEFAULT_RATE = 0.3
DEFAULT_DELAY_S = 12.0          # the least automatic --delay
#: automatic --delay = LOAD_FACTOR x the measured model load + START_S (node ready at 5.8-7.0 s with a 2.4 s
#: load on the development machine: imports and ROS start-up scale with the machine as the load does)
LOAD_FACTOR, START_S = 3.0, 4.0
#: the launch graph hands rate and delay to bag_player, which refuses values beyond its bounds (after the bag
#: was written and the graph started: "0 depth frames received", exit 1); linger is a launch timer in seconds
PLAYBACK_BOUNDS = {"rate": FLAG_BOUNDS["rate"], "delay": FLAG_BOUNDS["delay"], "linger": SECONDS}
#: a node ready after the automatic --delay: replayed once with this factor x the readiness seen
LATE_FACTOR = 1.5
DEFAULT_LINGER_S = 3.0
DEFAULT_FOXGLOVE_PORT = 8765
CAMERA_TOPIC = "/{camera}/image_rect_compressed"
DEPTH_TOPIC = "/depth/image"
DIAGNOSTICS_TOPIC = "/diagnostics"
LATENCY_KEY = "latency mean (ms)"
EVAL_JSON = "replay_eval.json"

#: ``<sec>.<nanosec>.png``: the frame pictures this command writes (:func:`stamp_text`), the only PNGs it removes
FRAME_PNG = re.compile(r"^\d+\.\d{9}\.png$")
FOXGLOVE_LINE = re.compile(r"^\[foxglove_viewer\] foxglove_viewer: (ws://\S+)")
NODE_READY_LINE = re.compile(r"^\[depth_node\] .*\]: model \S+ on \S+;")


def port_number(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535 (argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {text!r}")
    return value


def scene_name(text: str) -> str:
    """``--scene``: a non-empty name (argparse ``type``), as ``nuscenes2bag --scene``; an empty one (an unset
    shell variable) would otherwise silently mean the first scene."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"a scene name must not be empty, got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", type=path_argument, help="nuScenes-format folder (default: real samples "
                        "from ../shared, else a synthetic scene)")
    parser.add_argument("--version", default="v1.0-mini", help="table version folder in the dataroot")
    parser.add_argument("--scene", type=scene_name, help="scene name (default: the dataroot's first scene)")
    parser.add_argument("--out", type=path_argument, default=Path("artifacts/demo"),
                        help="output folder: bag/, record/, frames/ (default %(default)s)")
    parser.add_argument("--rate", type=PLAYBACK_BOUNDS["rate"], default=DEFAULT_RATE,
                        help="playback speed; slow enough that the node keeps up (default %(default)s)")
    parser.add_argument("--delay", type=PLAYBACK_BOUNDS["delay"], default=None,
                        help="seconds before playback, while the node loads its model (default: from the "
                             f"model load measured just before, at least {DEFAULT_DELAY_S:g})")
    parser.add_argument("--linger", type=PLAYBACK_BOUNDS["linger"], default=DEFAULT_LINGER_S,
                        help="seconds the node runs on after the bag ended (default %(default)s)")
    add_device_argument(parser, help="inference device: auto | cpu | cuda[:N] (default: auto)")
    parser.add_argument("--params-file", type=path_argument,
                        help="depth node parameter YAML (default: the package's config/xdrcdepth.yaml)")
    parser.add_argument("--foxglove-port", type=port_number, default=DEFAULT_FOXGLOVE_PORT,
                        help="Foxglove WebSocket port on 127.0.0.1, 0 for any free one (default %(default)s)")
    parser.add_argument("--max-depth", type=positive_float, default=80.0,
                        help="colour scale of the depth pictures, m")


@dataclass
class ReplayRun:
    """What the launch graph's output told us."""

    returncode: int = 0
    foxglove_url: str | None = None
    node_ready_s: float | None = None  # seconds from the launch to the node's "model ... on" line
    interrupted: bool = False
    signum: int = signal.SIGINT   # what interrupted it (Ctrl-C, or SIGTERM/SIGHUP passed on to the graph as SIGINT)

    def interrupted_line(self, received: int, frames_dir: Path) -> str:
        """The one line on stderr after an interrupted replay (the frames recorded so far are still shown)."""
        return (f"xdrcdepth replay-demo: interrupted ({signal.Signals(self.signum).name}): the graph was stopped; "
                f"{received} depth frames recorded, pictures in {frames_dir}/")


@dataclass
class RecordedFrames:
    """The recording read back: depth frames and what /diagnostics said."""

    # header stamp ns -> sensor_msgs/Image; read_recording keeps them on disk (SpilledMessages)
    depth: Mapping[int, object] = field(default_factory=dict)
    receive_ns: dict[int, int] = field(default_factory=dict)  # header stamp ns -> bag (sim) receive time
    diagnostics: list[dict[str, str]] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "<topic> at bag time <t>: why": skipped messages


def run(args: argparse.Namespace) -> int:
    from xdrcdepth_ros.tf_messages import tf_message_class

    tf_message_class()   # the node and the scoring need tf2_msgs: without it one line now, not after the replay
    for name, bounds in PLAYBACK_BOUNDS.items():    # again for callers that build the Namespace themselves
        value = getattr(args, name)
        if value is not None and (error := bounds.error(value)):
            say(f"xdrcdepth replay-demo: --{name} {error}")
            return EXIT_USAGE
    out = args.out
    bag, record, frames_dir = out / "bag", out / "record", out / "frames"
    if problem := recording_folder_problem(record):
        say(f"xdrcdepth replay-demo: {problem}")
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="xdrcdepth-replay-") as tmp:
        try:
            params = node_parameters(args.params_file)   # a bad file is named now, not after the bag is written
            check_node_parameters(args.params_file)
            dataroot, label = prepare_data(args, Path(tmp))
            scene = args.scene or first_scene(dataroot, args.version)
        except ValueError as exc:
            say(f"xdrcdepth replay-demo: {exc}")
            return EXIT_USAGE
        print(f"replay-demo: data {label}, scene {scene} -> {bag}", flush=True)
        from xdrcdepth_ros.bag.nuscenes2bag import main as nuscenes2bag

        # `--name=value`: a value starting with '-' stays a value; nuscenes2bag names any problem in its one line
        status = nuscenes2bag([f"--dataroot={dataroot}", f"--version={args.version}", f"--scene={scene}",
                               f"--out={bag}", "--overwrite", "--no-progress", "--channels",
                               *bag_channels(params)])
        if status != 0:
            return status
    remove_previous_recording(record)
    automatic_delay = args.delay is None
    load_s = prepare_backend(args, params, measure=automatic_delay)
    if automatic_delay:
        args.delay = playback_delay(load_s)
        print(f"replay-demo: playback starts {args.delay:g} s after the launch (model load "
              + (f"{load_s:.1f} s" if load_s is not None else "not measured") + "; --delay sets it)", flush=True)
    camera_stamps = read_input_stamps(bag)
    replay = run_replay_graph(args, bag, record)
    if (record / "metadata.yaml").is_file() and automatic_delay and not replay.interrupted \
            and frames_lost_to_a_late_node(len(camera_stamps), read_recording(record), replay, args.delay):
        # a busy machine starts the node slower than the load measured alone predicts (a black-box run: ready at
        # 16.1 s, playback at 12 s, the one LiDAR frame lost): the automatic delay gets a second chance
        late, args.delay = replay.node_ready_s, replay_again_delay(replay.node_ready_s)
        print(f"replay-demo: the node was ready only {late:.1f} s after the launch, after playback began, and frames "
              f"got no depth; replaying with --delay {args.delay:g}", flush=True)
        remove_previous_recording(record)
        replay = run_replay_graph(args, bag, record)
    if not (record / "metadata.yaml").is_file():
        print(f"xdrcdepth replay-demo: no recording at {record} (launch exited with status "
              f"{replay.returncode}; see its output above)", file=sys.stderr)
        return replay.returncode or 1
    frames = read_recording(record)
    remove_previous_frames(frames_dir)     # only now: a run that recorded nothing leaves the last run's pictures
    try:
        scores = score_and_show(bag, frames, out, args.max_depth)
    except ValueError as exc:
        say(f"xdrcdepth replay-demo: {exc}")
        return 1
    print(summary_line(len(camera_stamps), frames, args.rate, frames_dir, replay), flush=True)
    if replay.interrupted:
        say(replay.interrupted_line(len(frames.depth), frames_dir))
        return 128 + replay.signum
    if not frames.depth:
        print("xdrcdepth replay-demo: no depth frame came back from the depth node (its log is above; "
              "a slower --rate or a longer --delay may help)", file=sys.stderr)
        return 1
    hint = late_node_hint(len(camera_stamps), frames, replay, args.delay)
    if hint:
        print(hint, flush=True)
    if scores.no_camera:
        print(f"xdrcdepth replay-demo: {len(scores.no_camera)} depth frames had no camera image "
              f"with their stamp in {bag}", file=sys.stderr)
        return 1
    return replay.returncode


def bag_channels(params: dict) -> list[str]:
    """The nuScenes channels the bag gets: nuscenes2bag's default ones, and the radar of each absolute topic in
    the node's ``radar_topics`` (``/radar_front_left`` is RADAR_FRONT_LEFT, as nuscenes2bag names it): a params
    file naming two radars got a bag of one, and the node, waiting for both, published nothing (a black-box run)."""
    from xdrcdepth_ros.bag.nuscenes2bag import DEFAULT_CHANNELS

    radars = [topic[1:].upper() for topic in params.get("radar_topics", [])
              if isinstance(topic, str) and topic.startswith("/") and topic.count("/") == 1 and len(topic) > 1]
    return list(dict.fromkeys([*DEFAULT_CHANNELS, *radars]))


def package_config() -> Path:
    """The node's default parameters: the launch files' default ``params_file``, ``config/xdrcdepth.yaml`` in the
    package's share folder (found as the launch files find it: :func:`~xdrcdepth_core.share.share_directory`)."""
    from xdrcdepth_core.share import share_directory

    return share_directory() / "config" / "xdrcdepth.yaml"


def node_parameters(params_file: Path | None) -> dict:
    """The depth node's ``ros__parameters`` in ``params_file``, else in :func:`package_config`: the parameters
    the node gets. A file that cannot be read or is no ROS 2 parameter file, the default one too, is a
    ``ValueError`` naming it (the default missing would otherwise prepare another backend than the node uses)."""
    import yaml

    path, what = _params_path(params_file)
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{what}: cannot read it ({os_error_cause(exc)})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{what}: not a YAML file ({one_line(exc)})") from None
    try:
        return dict(next(iter(config.values()))["ros__parameters"])
    except (StopIteration, KeyError, TypeError, AttributeError, ValueError):
        raise ValueError(f"{what}: not a ROS 2 parameter file (wants "
                         "'<node or /**>: ros__parameters: {name: value, ...}')") from None


def _params_path(params_file: Path | None) -> tuple[Path, str]:
    """``(path, how to name it)``: ``params_file``, else :func:`package_config`."""
    if params_file is not None:
        return params_file, f"--params-file {params_file}"
    path = package_config()                      # NoShareFolder is a ValueError
    return path, f"the node's default parameters {path}"


#: the depth node's name in launch/xdrcdepth.launch.py: the params file section it reads
LAUNCHED_NODE_NAME = "depth_node"


def check_node_parameters(params_file: Path | None) -> None:
    """The depth node's own start-up checks (:func:`xdrcdepth_ros.node.params.declare`: types, ranges, choices) on
    ``params_file`` (else :func:`package_config`) read by rcl as the launched node reads it, before any work:
    ``ValueError`` naming every bad parameter. (A black-box run: ``backend: bogus`` wrote and played the bag for
    ~35 s while the node had already stopped, then ended with exit 1 and a hint about --rate and --delay.)"""
    import rclpy
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from xdrcdepth_ros.node.params import declare
    from xdrcdepth_ros.node.run import init_rcl

    path, what = _params_path(params_file)
    context = rclpy.Context()
    try:
        init_rcl(["--ros-args", "--params-file", str(path)], context=context,
                 signal_handler_options=SignalHandlerOptions.NO)
        node = Node(LAUNCHED_NODE_NAME, context=context, start_parameter_services=False, enable_rosout=False)
        try:
            declare(node)
        finally:
            node.destroy_node()
    except ValueError as exc:   # ParameterError, RosArgumentError (rcl could not parse the file)
        raise ValueError(f"{what}: the depth node would not start: {exc}") from None
    finally:
        context.try_shutdown()


def playback_delay(load_s: float | None) -> float:
    """The automatic ``--delay``: ``LOAD_FACTOR`` x the node's model load (as measured here) + ``START_S``,
    at least ``DEFAULT_DELAY_S``, rounded up to whole seconds; ``DEFAULT_DELAY_S`` when not measured."""
    if load_s is None:
        return DEFAULT_DELAY_S
    return max(DEFAULT_DELAY_S, float(math.ceil(LOAD_FACTOR * load_s + START_S)))


def prepare_backend(args: argparse.Namespace, params: dict, measure: bool = False) -> float | None:
    """Resolve the node's inference backend here, before the graph starts: ``auto`` (and a named runtime) may
    export the checkpoint once (a minute or more on 2 cores), which would otherwise happen in the node after
    playback began. The export, parity verdict and choice are cached, so the node then starts at once.

    With ``measure``, returns the seconds the node's own model load takes (the cached load, timed after the
    preparation; the eager ``torch`` backend needs no preparation and is timed alone); else, or when the
    load failed, None. ``params``: the node's parameters (:func:`node_parameters`)."""
    backend, precision = params.get("backend", "auto"), params.get("precision", "") or None
    if backend == "torch" and not measure:
        return None
    try:
        import torch

        from xdrcdepth_core.infer import DepthEstimator

        if params.get("cpu_threads"):
            torch.set_num_threads(int(params["cpu_threads"]))

        def load():
            return DepthEstimator.from_checkpoint(params.get("checkpoint") or None, device=args.device,
                                                  backend=backend, precision=precision, allow_export=True)

        if backend != "torch":
            print(f"replay-demo: preparing the inference backend ({backend}; exported once per checkpoint, "
                  "cached)", flush=True)
            start = time.monotonic()
            estimator = load()
            print(f"replay-demo: inference backend {estimator.backend.description} ready "
                  f"({time.monotonic() - start:.0f} s)", flush=True)
            del estimator
        if not measure:
            return None
        start = time.monotonic()
        load()
        return time.monotonic() - start
    except (OSError, ValueError, RuntimeError) as exc:   # the node will say it again and stop
        print(f"replay-demo: cannot prepare the inference backend: {exc}", file=sys.stderr, flush=True)
        return None


def prepare_data(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    """``(dataroot, label)``: the given folder, else real samples, else a synthetic scene (written in ``workdir``).

    A dataroot without the ``--version`` table folder is a ``ValueError`` naming what the user gave: the folder,
    or, without ``--dataroot``, the version, the default data and the versions it has; never ``workdir``, a
    temporary folder the user did not name and that is gone once the command has ended."""
    if args.dataroot is not None:
        if not (args.dataroot / args.version).is_dir():
            raise ValueError(f"{args.dataroot}: no nuScenes table folder {args.version}/ here")
        return args.dataroot, str(args.dataroot)
    from xdrcdepth_core.demo import DATAROOT_HINT, default_dataroot

    dataroot, label = default_dataroot(workdir, DATAROOT_HINT)
    if not (dataroot / args.version).is_dir():
        versions = ", ".join(sorted(path.parent.name for path in dataroot.glob("*/scene.json")))
        raise ValueError(f"--version {args.version}: no such table folder in the default data ({label}; it has "
                         f"{versions}); give --dataroot, a nuScenes-format folder holding {args.version}/")
    return dataroot, label


def first_scene(dataroot: Path, version: str) -> str:
    """Name of the first scene in ``<dataroot>/<version>/scene.json``."""
    path = dataroot / version / "scene.json"
    try:
        scenes = json.loads(path.read_text())
        return scenes[0]["name"]
    except (OSError, json.JSONDecodeError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read a scene name ({exc})") from None


def recording_folder_problem(record: Path) -> str | None:
    """Why ``<out>/record`` cannot take this run's recording, or None: it must be absent, an empty folder, or a
    previous run's recording (a recognisable bag, or the recorder's unfinalised file of a killed run), which
    :func:`remove_previous_recording` replaces. Checked before any work: the recorder refused anything else only
    after the bag was written and the graph had run for its whole length."""
    from xdrcdepth_ros.bag.files import bag_files, unfinalised_recording

    if not record.exists() and not record.is_symlink():
        return None
    if record.is_dir() and not record.is_symlink():
        if not any(record.iterdir()) or bag_files(record) is not None or unfinalised_recording(record) is not None:
            return None
    return (f"{record} holds something other than a previous run's recording; not touching it (move it, or "
            "choose another --out)")


def remove_previous_recording(record: Path) -> None:
    """A previous run's recording (see :func:`recording_folder_problem`)."""
    from xdrcdepth_ros.bag.files import bag_files, remove_bag, unfinalised_recording

    if bag_files(record) is not None:
        remove_bag(record)
    elif unfinalised_recording(record) is not None:
        unfinalised_recording(record).unlink()
        record.rmdir()


def remove_previous_frames(frames_dir: Path) -> None:
    """A previous run's frame pictures (``<sec>.<nanosec>.png``); anything else in the folder stays."""
    for old in frames_dir.glob("*.png"):
        if FRAME_PNG.match(old.name) and old.is_file() and not old.is_symlink():
            old.unlink()


def launch_command(args: argparse.Namespace, bag: Path, record: Path) -> list[str]:
    """``xdrcdepth launch nuscenes_replay ...`` arguments, as a user would type them."""
    command = ["launch", "nuscenes_replay", f"bag:={bag}", "record:=true", f"record_dir:={record}",
               "use_rviz:=false", "use_foxglove:=true", f"foxglove_port:={args.foxglove_port}",
               f"rate:={args.rate:g}", f"delay:={args.delay:g}", f"linger:={args.linger:g}",
               f"device:={args.device}"]
    if args.params_file is not None:
        command.append(f"params_file:={args.params_file}")
        # the launch file passes its `checkpoint` and `radar_topics` arguments over the params file (as ROS
        # launch does: overrides after the file win), so the file's own values go in as those arguments
        params = node_parameters(args.params_file)
        if "checkpoint" in params:
            command.append(f"checkpoint:={params['checkpoint'] or repr('')}")
        if "radar_topics" in params:
            command.append(f"radar_topics:={[str(t) for t in params['radar_topics']]}")
    return command


def port_in_use(port: int) -> bool:
    """Whether something listens on ``127.0.0.1:port`` (binding as the viewer's server does, address reuse on,
    so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def live_view_port(port: int) -> int:
    """``port``, or 0 (any free one; the viewer prints its address) when it is taken (a foxglove_bridge on its
    default 8765, another replay): the live view is a side show, and a viewer that cannot bind would fail the
    whole replay."""
    if port and port_in_use(port):
        say(f"replay-demo: port {port} on 127.0.0.1 is taken (a Foxglove bridge, another replay?); the live view "
            "uses a free port instead (its address follows)")
        return 0
    return port


def run_replay_graph(args: argparse.Namespace, bag: Path, record: Path) -> ReplayRun:
    """Run the launch graph (:func:`follow_graph`) as printed here."""
    args.foxglove_port = live_view_port(args.foxglove_port)
    command = launch_command(args, bag, record)
    print(f"replay-demo: xdrcdepth {shlex.join(command)}", flush=True)
    if args.foxglove_port:
        print(f"replay-demo: watch live in Foxglove: Open connection -> ws://127.0.0.1:{args.foxglove_port}",
              flush=True)
    return follow_graph([sys.executable, "-m", "xdrcdepth_core.cli", *command], args.foxglove_port)


#: signals that, sent to this command alone, stop the graph as Ctrl-C does (their default would end only us)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C would be, so that it stops the graph the same way."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, _frame):
    raise _Terminated(signum)


def follow_graph(argv: list[str], foxglove_port: int) -> ReplayRun:
    """Run the launcher ``argv``, stream its output, note the Foxglove URL and when the node was ready.

    Ctrl-C reaches the launcher too (same terminal), which stops the graph and lets the recorder close its
    bag; a SIGINT, SIGTERM or SIGHUP sent to this process alone is passed on as SIGINT (the launcher and the graph
    must not outlive this command). Either way the recording is then shown.
    """
    result = ReplayRun()
    started = time.monotonic()
    previous = {s: signal.signal(s, _raise_terminated) for s in STOP_SIGNALS}
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        _stream(proc, result, started, foxglove_port)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return result


def _stream(proc: subprocess.Popen, result: ReplayRun, started: float, foxglove_port: int) -> None:
    while True:
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if result.node_ready_s is None and NODE_READY_LINE.match(line):
                    result.node_ready_s = time.monotonic() - started
                match = FOXGLOVE_LINE.match(line)
                if match and result.foxglove_url is None:
                    result.foxglove_url = match.group(1)
                    if not foxglove_port:
                        print(f"replay-demo: watch live in Foxglove: Open connection -> {result.foxglove_url}",
                              flush=True)
            break
        except KeyboardInterrupt as exc:
            if not result.interrupted:
                result.interrupted = True
                result.signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
    result.returncode = proc.wait()


def read_input_stamps(bag: Path, camera: str = "cam_front") -> list[int]:
    """Header stamps (ns) of the camera images in the input bag, in bag order."""
    from xdrcdepth_ros.bag.source_frames import bag_messages

    topic = CAMERA_TOPIC.format(camera=camera)
    return [stamp_ns(msg.header.stamp) for _, msg in bag_messages(bag, lambda c: c.topic == topic)]


def read_recording(record: Path) -> RecordedFrames:
    """Depth images (by header stamp, kept on disk: :class:`~xdrcdepth_ros.bag.spilled_messages.SpilledMessages`)
    and /diagnostics values from the recorded bag; a message that cannot be deserialized, a topic of another
    type, and a depth image whose header stamp an earlier one had are skipped and listed in ``malformed`` (a
    recording is untrusted input)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from xdrcdepth_ros.bag.player import open_bag
    from xdrcdepth_ros.bag.spilled_messages import SpilledMessages
    from xdrcdepth_ros.node.diagnostics import status_values

    frames = RecordedFrames(depth=SpilledMessages(Image, record if Path(record).is_dir() else Path(record).parent))
    types = {DEPTH_TOPIC: "sensor_msgs/msg/Image", DIAGNOSTICS_TOPIC: "diagnostic_msgs/msg/DiagnosticArray"}
    reader = open_bag(record)
    try:
        for c in reader.connections:   # another type under the name: its bytes are not these messages
            if c.topic in types and c.msgtype != types[c.topic]:
                frames.malformed.append(f"{c.topic} has type {c.msgtype}, not {types[c.topic]} ({c.msgcount} "
                                        "message(s) not read)")
        wanted = [c for c in reader.connections if c.topic in types and c.msgtype == types[c.topic]]
        for connection, receive_ns, raw in reader.messages(connections=wanted) if wanted else ():
            try:
                msg = deserialize_message(raw, Image if connection.topic == DEPTH_TOPIC else DiagnosticArray)
            except Exception as exc:  # noqa: BLE001 - garbage CDR raises RMWError, bad strings other types
                why = re.sub(r", at /\S+:\d+", "", one_line(exc))      # rmw's C source location: noise
                frames.malformed.append(f"{connection.topic} at bag time {stamp_text(receive_ns)}: cannot "
                                        f"deserialize {len(raw)} bytes ({why})")
                continue
            if connection.topic == DEPTH_TOPIC:
                stamp = stamp_ns(msg.header.stamp)
                if stamp in frames.depth:   # two answers to one camera frame (a looped bag, two nodes): not both
                    frames.malformed.append(f"{connection.topic} at bag time {stamp_text(receive_ns)}: header stamp "
                                            f"{stamp_text(stamp)} again (the first depth image with it is kept)")
                    continue
                frames.depth.add(stamp, raw)
                frames.receive_ns[stamp] = receive_ns
            else:
                frames.diagnostics += [status_values(s) for s in msg.status]
    finally:
        reader.close()
    return frames


def score_and_show(bag: Path, frames: RecordedFrames, out: Path, max_depth: float):
    """``xdrcdepth replay-eval`` on the played bag and the recorded depth: ``<out>/frames/<sec>.<nanosec>.png``
    per depth frame (image | radar overlay // prediction | LiDAR GT), ``<out>/replay_eval.json``, and the
    per-frame and overall metrics with their summary line printed when depth came back."""
    from xdrcdepth_core.atomic import atomic_write_bytes
    from xdrcdepth_ros.bag.replay_eval import DEFAULT_SLOP_S, evaluate_replay, json_report, report

    scores = evaluate_replay(bag, frames.depth, frames_dir=out / "frames", max_depth=max_depth,
                             depth_bag=out / "record", skipped=frames.malformed)
    atomic_write_bytes(out / EVAL_JSON, json.dumps(json_report(scores, bag, out / "record", DEFAULT_SLOP_S),
                                                   indent=1).encode())
    if frames.depth:
        print(report(scores), flush=True)
    return scores


def median_latency_ms(frames: RecordedFrames, rate: float) -> tuple[float, str] | None:
    """Median latency and where it comes from: the node's /diagnostics (``latency mean (ms)`` of each
    report that had published depth, i.e. image arrival -> depth published, wall clock), else the
    recording's stamps (bag receive time - header stamp, bag time scaled back to wall time by ``rate``)."""
    reported = [float(d[LATENCY_KEY]) for d in frames.diagnostics if LATENCY_KEY in d]
    reported = [v for v in reported if v == v]  # windows without output report nan
    if reported:
        return statistics.median(reported), "node /diagnostics"
    if frames.depth:
        return statistics.median((frames.receive_ns[s] - s) / 1e6 / rate for s in frames.depth), "stamps"
    return None


def summary_line(played: int, frames: RecordedFrames, rate: float, frames_dir: Path, replay: ReplayRun) -> str:
    """The last line of the command. ``played``: camera frames in the input bag (all of them are played
    unless the run was interrupted, when the count without depth would be meaningless and is left out). Frames
    without depth are the node's drops (latest-frame policy), its sync misses and frames played before it was
    ready: the node's /diagnostics tell them apart (a black-box run read "dropped" as the node's drop count)."""
    received = len(frames.depth)
    latency = median_latency_ms(frames, rate)
    if replay.interrupted:
        counts = f"interrupted: {played} camera frames in the bag, {received} depth frames received"
    else:
        counts = (f"{played} camera frames played, {received} depth frames received, "
                  f"{max(played - received, 0)} without depth")
    text = (f"replay-demo: {counts}, median latency "
            + (f"{latency[0]:.0f} ms ({latency[1]})" if latency else "n/a") + f", rate {rate:g}")
    if replay.node_ready_s is not None:
        text += f", node ready after {replay.node_ready_s:.1f} s"
    return text + f"; pictures in {frames_dir}/"


def frames_lost_to_a_late_node(played: int, frames: RecordedFrames, replay: ReplayRun, delay: float) -> bool:
    """The node came up after playback began (``delay``) and frames got no depth."""
    return replay.node_ready_s is not None and replay.node_ready_s > delay and len(frames.depth) < played


def replay_again_delay(node_ready_s: float) -> float:
    """The ``--delay`` of the second replay after a late node: ``LATE_FACTOR`` x the readiness seen, whole seconds."""
    return float(math.ceil(LATE_FACTOR * node_ready_s))


def late_node_hint(played: int, frames: RecordedFrames, replay: ReplayRun, delay: float) -> str | None:
    """Advice when the node came up after playback began and frames are missing (None when none are)."""
    if not frames_lost_to_a_late_node(played, frames, replay, delay):
        return None
    return (f"replay-demo: the node was ready only {replay.node_ready_s:.1f} s after start, after playback began "
            f"({delay:g} s), and {played - len(frames.depth)} of {played} frames got no depth; pass a longer "
            "--delay to get the first frames too")


def stamp_ns(stamp) -> int:
    """A builtin_interfaces/Time in ns."""
    return stamp.sec * 10**9 + stamp.nanosec


def stamp_text(stamp_ns_: int) -> str:
    """``<sec>.<nanosec>`` of a stamp in ns (nine digits after the point): frame picture names, messages."""
    return f"{stamp_ns_ // 10**9}.{stamp_ns_ % 10**9:09d}"
