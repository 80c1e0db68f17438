"""`xdrcdepth replay-demo` end to end on the real scene-0061 samples: nuscenes2bag -> the user-facing launch
graph `xdrcdepth launch nuscenes_replay ... record:=true` (bag_player --clock -> depth_node under sim time,
compressed camera -> bag_recorder and foxglove_viewer) -> one four-panel picture per depth frame and the depth
scored against the bag's LiDAR (replay-eval). Every camera frame of
the bag comes back as depth (slow rate; on a loaded machine the node's latest-frame policy may drop some,
which its /diagnostics must count), with its stamp, frame and calibration, recorded in bag time; the
colorized depth also reaches a Foxglove WebSocket client; TF from the bag gives the node its ego-motion
compensated radar chain (no TF warnings). Plus the pieces of the
summary, checked by hand."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from conftest import REPO
from xdrcdepth_ros.bag.replay_demo import (RecordedFrames, ReplayRun, bag_channels, first_scene,
                                           frames_lost_to_a_late_node, late_node_hint, launch_command,
                                           live_view_port, median_latency_ms, playback_delay,
                                           recording_folder_problem, remove_previous_frames, replay_again_delay,
                                           summary_line)

RATE = 0.3  # key frames 0.5 s apart in the bag arrive 1.7 s apart: an idle 2-core machine keeps up
LINGER_S = 10  # after the bag: time for the node to finish its last frame even on a loaded machine
DELAY_S = 15  # node up ~2.5 s after start when idle, 8.2 and 9.4 s at load average 6 on 2 cores (2026-12-03)


def params_file(folder: Path, **overrides) -> Path:
    """config/xdrcdepth.yaml with a small seeded checkpoint on one CPU thread and the eager fp32 backend (no
    export at start-up), plus ``overrides``."""
    from depth_node_rig import make_checkpoint

    config = yaml.safe_load((REPO / "config" / "xdrcdepth.yaml").read_text())
    (params,) = config.values()
    params["ros__parameters"].update(checkpoint=str(make_checkpoint(folder / "student.pt")), cpu_threads=1,
                                     backend="torch", precision="fp32", **overrides)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def replay_demo(out, params, *extra):
    return subprocess.Popen([sys.executable, "-m", "xdrcdepth_core.cli", "replay-demo", "--out", str(out),
                             "--device", "cpu", "--params-file", str(params), "--foxglove-port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class OutputReader:
    """The command's output, line by line in a thread; exposes the Foxglove URL once printed."""

    def __init__(self, proc):
        self.lines = []
        self.url = None
        self.url_seen = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            match = re.match(r"replay-demo: watch live in Foxglove: Open connection -> (ws://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                self.url_seen.set()


def first_colorized_frame(url, result, timeout=60.0):
    """Foxglove WebSocket client: subscribe to /depth/colorized once advertised; keep the first payload.

    foxglove-sdk 0.30 may answer a subscribe that races its own advertise with the status "Unknown channel
    ID"; the subscribe is then sent again.
    """
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    result["ops"] = []
    subscribe = None
    try:
        with connect(url, subprotocols=["foxglove.sdk.v1"], max_size=None) as ws:
            while time.monotonic() < deadline:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(frame, bytes):
                    if frame[0] == 0x01:  # MessageData: opcode, subscription id (4), log time (8), payload
                        result["colorized"] = frame[13:]
                        return
                    continue
                msg = json.loads(frame)
                result["ops"].append(msg["op"] if msg["op"] != "status" else f"status: {msg['message']}")
                for channel in msg.get("channels", []) if msg["op"] == "advertise" else []:
                    if channel["topic"] == "/depth/colorized":
                        subscribe = json.dumps({"op": "subscribe", "subscriptions": [
                            {"id": 1, "channelId": channel["id"]}]})
                        ws.send(subscribe)
                if msg["op"] == "status" and "Unknown channel" in msg["message"] and subscribe:
                    time.sleep(0.2)
                    ws.send(subscribe)
    except Exception as exc:  # reported by the test's assertion
        result["error"] = repr(exc)


def read_bag(path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    messages = {}
    with Reader(path) as reader:
        for conn, stamp, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((stamp, typestore.deserialize_cdr(raw, conn.msgtype)))
    return messages


def stamp_ns(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def diagnostics_values(recorded):
    """The values of every recorded DiagnosticStatus, as dicts."""
    return [{kv.key: kv.value for kv in status.values} for _, array in recorded["/diagnostics"]
            for status in array.status]


@pytest.mark.slow
@pytest.mark.ros
def test_replay_demo_brings_every_frame_back_as_depth(tmp_path, nuscenes_samples, ros_domain_id):
    out = tmp_path / "demo"
    proc = replay_demo(out, params_file(tmp_path), "--rate", str(RATE), "--delay", str(DELAY_S),
                       "--linger", str(LINGER_S))
    output, ws_result, ws_thread = OutputReader(proc), {}, None
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if ws_thread is None and output.url_seen.wait(0.1):
                ws_thread = threading.Thread(target=first_colorized_frame, args=(output.url, ws_result), daemon=True)
                ws_thread.start()
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output.thread.join(timeout=5)
    log = "\n".join(output.lines)
    assert proc.returncode == 0, log
    assert re.search(r"^\[bag_player\] bag_player: played 33 messages on 6 topics", log, re.M), log
    lines = output.lines
    assert lines.index(f"[launch] stopping in {LINGER_S} s (bag_player exited)") < lines.index(
        f"[launch] stopping (bag_player exited {LINGER_S} s ago)")
    for name in ("depth_node", "bag_recorder", "foxglove_viewer"):
        assert f"[launch] {name} exited with code 0" in lines, log
    summary = lines[-1]
    match = re.fullmatch(r"replay-demo: 6 camera frames played, (\d) depth frames received, (\d) without depth, "
                         r"median latency \d+ ms \(node /diagnostics\), rate 0\.3, node ready after \d+\.\d s; "
                         r"pictures in "
                         + re.escape(f"{out / 'frames'}/"), summary)
    assert match, log
    n_back, n_dropped = map(int, match.groups())
    assert n_back + n_dropped == 6

    played, recorded = read_bag(out / "bag"), read_bag(out / "record")
    # The bag's TF gives the node its ego-motion compensated radar chain for every frame, the last one
    # included (bag_player waits for its reliable samples to be acknowledged before it exits).
    assert "radar not ego-motion compensated" not in log and "missing_tf" not in log, log
    cameras = {stamp_ns(info): info for _, info in played["/cam_front/camera_info"]}
    assert len(cameras) == 6
    depth = recorded["/depth/image"]
    back = sorted(stamp_ns(image) for _, image in depth)
    # Every frame comes back as depth (6 of 6 on an idle machine) unless the node was still busy with an
    # earlier one: then the latest-frame policy dropped it, and the node counted it in /diagnostics. Nothing
    # is lost silently, and the first and the last frame always come back (nothing replaces them).
    assert len(back) == n_back and len(set(back)) == n_back and set(back) <= set(cameras)
    assert back[0] == min(cameras) and back[-1] == max(cameras)
    node_dropped = max(int(values["dropped frames"]) for values in diagnostics_values(recorded))
    assert node_dropped == n_dropped, (node_dropped, n_dropped)
    for received, image in depth:
        assert 0 < received - stamp_ns(image) < 5 * 10**9  # recorded in bag time (sim time), after its input
        assert (image.header.frame_id, image.encoding, image.width, image.height) == ("cam_front", "32FC1",
                                                                                    1600, 900)
        values = image.data.view(np.float32)
        assert np.all(values[np.isfinite(values)] > 0)
    for _, info in recorded["/depth/camera_info"]:
        source = cameras[stamp_ns(info)]
        np.testing.assert_array_equal(info.k, source.k)
        assert (info.width, info.height) == (source.width, source.height)
    assert len(recorded["/depth/colorized"]) == n_back and recorded["/diagnostics"]

    pngs = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in pngs] == sorted(f"{s // 10**9}.{s % 10**9:09d}.png" for s in back)
    panel = np.asarray(PILImage.open(pngs[0]))  # key frame 0, the one with LiDAR (the first frame always comes back)
    assert panel.shape == (900, 1600, 3)  # camera | radar // depth | LiDAR, each scaled to 800 x 450
    camera, radar, lidar = panel[20:450, :800], panel[20:450, 800:], panel[470:, 800:]   # below the titles
    assert np.count_nonzero(np.any(radar != camera, axis=2)) > 1000       # radar returns drawn over the image
    assert np.count_nonzero(np.any(lidar != camera // 3, axis=2)) > 1000  # LiDAR points over the dimmed image

    # the metrics against the bag's LiDAR (key frame 0 only), printed just before the summary
    assert re.fullmatch(r"replay-eval: 1 of \d depth frames with LiDAR; 0-80 m: model MAE \d+\.\d{3} m, .* \| "
                        r"radar_only MAE \d+\.\d{3} m, .*", lines[-2]), log
    report = json.loads((out / "replay_eval.json").read_text())
    assert (report["depth_frames"], report["frames_with_lidar"]) == (n_back, 1)
    (scored,) = [f for f in report["frames"] if f["metrics"] is not None]
    assert scored["stamp_ns"] == back[0] and scored["gt_pixels"] > 1000

    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    assert "colorized" in ws_result, (ws_result.get("ops"), ws_result.get("error"), log)
    colorized = deserialize_message(ws_result["colorized"], Image)
    assert (colorized.height, colorized.width, colorized.encoding) == (900, 1600, "bgr8")
    assert stamp_ns(colorized) in cameras


@pytest.mark.slow
@pytest.mark.ros
def test_no_depth_back_is_an_error(tmp_path, nuscenes_samples, ros_domain_id):
    """A node that never gets synchronised input (its radar topic is not in the bag, and it waits for every
    radar: radar_timeout 0, no camera-only frames) publishes no depth. No --delay: the automatic one (the
    small seeded student loads in well under a second on an idle machine, so the least one, 12 s; on a loaded one
    the measured load took 5.1 s and the delay 20 s: the delay printed is the one for the load measured, and the
    one the launch graph gets)."""
    params = params_file(tmp_path, radar_topics=["radar/elsewhere"], radar_timeout=0.0)
    proc = replay_demo(tmp_path / "demo", params, "--rate", "5", "--linger", "0")
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 1, out
    delay = re.search(r"^replay-demo: playback starts (\d+) s after the launch \(model load (\d+\.\d) s; --delay sets "
                      r"it\)$", out, re.MULTILINE)
    assert delay, out
    load_s = float(delay.group(2))                              # printed to 0.1 s; the formula has its own test
    assert playback_delay(load_s - 0.05) <= int(delay.group(1)) <= playback_delay(load_s + 0.05)
    assert f"delay:={delay.group(1)} " in out                   # what the launch graph was given
    assert "replay-demo: 6 camera frames played, 0 depth frames received, 6 without depth, median latency n/a" in out
    assert "xdrcdepth replay-demo: no depth frame came back from the depth node" in out
    assert not list((tmp_path / "demo" / "frames").glob("*.png"))


def test_median_latency_prefers_diagnostics_then_stamps():
    frames = RecordedFrames(diagnostics=[{"latency mean (ms)": "nan"}, {"latency mean (ms)": "700.0"},
                                         {"latency mean (ms)": "900.0"}, {"latency mean (ms)": "650.0"},
                                         {"other": "1"}])
    assert median_latency_ms(frames, rate=0.5) == (700.0, "node /diagnostics")
    # stamps: (receive - stamp) in bag time, divided by the rate: 0.2 s and 0.3 s and 0.5 s of bag at 0.5
    frames = RecordedFrames(depth={10: None, 20: None, 30: None},
                            receive_ns={10: 10 + 200_000_000, 20: 20 + 300_000_000, 30: 30 + 500_000_000})
    assert median_latency_ms(frames, rate=0.5) == (600.0, "stamps")
    assert median_latency_ms(RecordedFrames(), rate=1.0) is None


def test_summary_line_counts_drops():
    frames = RecordedFrames(depth={1: None, 2: None}, diagnostics=[{"latency mean (ms)": "812.4"}])
    line = summary_line(5, frames, 0.3, Path("out/frames"), ReplayRun(node_ready_s=2.44))
    assert line == ("replay-demo: 5 camera frames played, 2 depth frames received, 3 without depth, median latency "
                    "812 ms (node /diagnostics), rate 0.3, node ready after 2.4 s; pictures in out/frames/")
    line = summary_line(5, frames, 0.3, Path("out/frames"), ReplayRun(interrupted=True))
    assert line == ("replay-demo: interrupted: 5 camera frames in the bag, 2 depth frames received, median "
                    "latency 812 ms (node /diagnostics), rate 0.3; pictures in out/frames/")


def test_playback_delay_scales_with_the_measured_model_load():
    assert playback_delay(None) == 12.0                  # not measured: the least delay
    assert playback_delay(0.3) == 12.0                   # 3 x 0.3 + 4 = 4.9 s: the least delay
    assert playback_delay(2.4) == 12.0                   # 3 x 2.4 + 4 = 11.2 s (the development machine)
    assert playback_delay(4.0) == 16.0                   # 3 x 4 + 4
    assert playback_delay(6.1) == 23.0                   # 22.3 s, rounded up to whole seconds


def test_late_node_hint_only_when_frames_are_missing():
    two = RecordedFrames(depth={1: None, 2: None})
    assert late_node_hint(5, two, ReplayRun(node_ready_s=6.1), delay=5.0) == (
        "replay-demo: the node was ready only 6.1 s after start, after playback began (5 s), and 3 of 5 frames "
        "got no depth; pass a longer --delay to get the first frames too")
    assert late_node_hint(2, two, ReplayRun(node_ready_s=6.1), delay=5.0) is None     # late, but nothing lost
    assert late_node_hint(5, two, ReplayRun(node_ready_s=4.9), delay=5.0) is None     # ready before playback
    assert late_node_hint(5, two, ReplayRun(), delay=5.0) is None                     # readiness not seen


def test_a_late_node_gets_a_second_replay_with_a_delay_from_its_readiness():
    two = RecordedFrames(depth={1: None, 2: None})
    assert frames_lost_to_a_late_node(5, two, ReplayRun(node_ready_s=16.1), delay=12.0)
    assert not frames_lost_to_a_late_node(2, two, ReplayRun(node_ready_s=16.1), delay=12.0)     # nothing lost
    assert not frames_lost_to_a_late_node(5, two, ReplayRun(node_ready_s=11.9), delay=12.0)     # ready in time
    assert not frames_lost_to_a_late_node(5, two, ReplayRun(), delay=12.0)                      # not seen
    assert replay_again_delay(16.1) == 25.0                 # 1.5 x 16.1 = 24.15 s, rounded up to whole seconds
    assert replay_again_delay(8.0) == 12.0


def test_the_bag_gets_every_radar_the_node_is_given():
    assert bag_channels({}) == ["CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"]              # nuscenes2bag's default
    assert bag_channels({"radar_topics": ["radar/points"]}) == ["CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"]  # remapped
    assert bag_channels({"radar_topics": ["/radar_front", "/radar_front_left"]}) == [
        "CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP", "RADAR_FRONT_LEFT"]


def test_launch_command_is_the_user_facing_graph(tmp_path):
    args = Namespace(foxglove_port=8765, rate=0.3, delay=5.0, linger=3.0, device="cpu", params_file=None)
    assert launch_command(args, Path("o/bag"), Path("o/record")) == [
        "launch", "nuscenes_replay", "bag:=o/bag", "record:=true", "record_dir:=o/record", "use_rviz:=false",
        "use_foxglove:=true", "foxglove_port:=8765", "rate:=0.3", "delay:=5", "linger:=3", "device:=cpu"]
    # a params file's checkpoint and radar topics reach the node: the launch file would pass its own argument
    # defaults ('' and ['radar/points']) over the file, so they go in as those arguments
    params = tmp_path / "p.yaml"
    params.write_text("depth_node:\n  ros__parameters:\n    checkpoint: s.pt\n    radar_topics: [r/a, r/b]\n")
    args.params_file = params
    assert launch_command(args, Path("o/bag"), Path("o/record"))[-3:] == [
        f"params_file:={params}", "checkpoint:=s.pt", "radar_topics:=['r/a', 'r/b']"]
    params.write_text("depth_node:\n  ros__parameters:\n    checkpoint: ''\n")
    assert launch_command(args, Path("o/bag"), Path("o/record"))[-2:] == [f"params_file:={params}", "checkpoint:=''"]


def test_first_scene_and_its_errors(tmp_path):
    (tmp_path / "v1.0-mini").mkdir()
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "v1.0-mini" / "scene.json"))):
        first_scene(tmp_path, "v1.0-mini")
    (tmp_path / "v1.0-mini" / "scene.json").write_text(json.dumps([{"name": "scene-0103"}, {"name": "x"}]))
    assert first_scene(tmp_path, "v1.0-mini") == "scene-0103"



def test_node_parameters_for_the_backend_preparation(tmp_path):
    """replay-demo resolves the node's backend before the graph starts (auto may export once); it reads the
    same parameters the node gets: the params file, else the package's config/xdrcdepth.yaml."""
    from xdrcdepth_ros.bag.replay_demo import node_parameters, package_config

    assert package_config() == REPO / "config" / "xdrcdepth.yaml"      # pip install -e .: the checkout's
    assert node_parameters(None)["backend"] == "auto"
    params = node_parameters(params_file(tmp_path))
    assert (params["backend"], params["precision"], params["cpu_threads"]) == ("torch", "fp32", 1)
    with pytest.raises(ValueError, match=re.escape(f"--params-file {tmp_path / 'missing.yaml'}: cannot read it")):
        node_parameters(tmp_path / "missing.yaml")


def test_installed_the_default_node_parameters_are_the_share_folders_the_launch_files_pass(installed_share):
    """Installed from a wheel, the launch files give the node <prefix>/share/xdrcdepth_ros/config/xdrcdepth.yaml;
    replay-demo prepared the backend from a path beside site-packages that does not exist there, read as {}."""
    from xdrcdepth_ros.bag.replay_demo import node_parameters
    from xdrcdepth_ros.tools.launch_graph import launch_file, load_graph

    (installed_share / "config").mkdir()
    (installed_share / "config" / "xdrcdepth.yaml").write_text(
        "depth_node:\n  ros__parameters:\n    backend: openvino\n    precision: int8\n")
    for launch in ("xdrcdepth.launch.py", "nuscenes_replay.launch.py"):
        (installed_share / "launch" / launch).write_bytes((REPO / "launch" / launch).read_bytes())
    (node,) = [p for p in load_graph(launch_file("xdrcdepth"), {}).processes if p.name == "depth_node"]
    assert node.parameters[0] == str(installed_share / "config" / "xdrcdepth.yaml")
    assert node_parameters(None) == {"backend": "openvino", "precision": "int8"}


def test_installed_without_the_default_node_parameters_replay_demo_stops_with_one_line(installed_share, tmp_path,
                                                                                     capsys):
    """A missing default parameters file is an error before any work, not {} (another backend than the node's)."""
    from xdrcdepth_core.cli import main

    missing = installed_share / "config" / "xdrcdepth.yaml"
    assert main(["replay-demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"xdrcdepth replay-demo: the node's default parameters {missing}: cannot read it "
                   f"(No such file or directory)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_command_stops_the_graph_it_started(tmp_path, signum):
    """SIGTERM, SIGHUP (or SIGINT) sent to replay-demo alone, not to its terminal's process group: the launcher gets
    SIGINT and stops its graph before the command goes on; nothing it started outlives it (before, SIGTERM
    and SIGHUP killed the command at once and left the launcher and the whole graph running)."""
    from test_launch_processes import process_gone, read_until, ready_pid, write_launch

    graph = write_launch(tmp_path, [("talker", [])], shutdown_on=None)
    code = ("import sys\nfrom xdrcdepth_ros.bag.replay_demo import follow_graph\n"
            "run = follow_graph([sys.executable, '-m', 'xdrcdepth_core.cli', 'launch', sys.argv[1]], 0)\n"
            "print('result', run.interrupted, int(run.signum), run.returncode, flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(graph)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    talker = None
    try:
        read_until(proc, "[talker] talker ready")
        talker = ready_pid(tmp_path / "talker.ready")
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if talker is not None and not process_gone(talker, timeout=0):
            os.kill(talker, signal.SIGKILL)
    lines = [line.split(" at ")[0] for line in out.splitlines()]
    assert "[launch] stopping (SIGINT)" in lines and "[talker] talker got SIGINT" in lines, out
    assert "[launch] talker exited with code 0" in lines, out
    assert f"result True {int(signum)} 0" in lines, out
    assert process_gone(talker)


def test_an_interrupted_replay_says_so_in_one_line():
    line = ReplayRun(interrupted=True, signum=signal.SIGTERM).interrupted_line(2, Path("out/frames"))
    assert line == ("xdrcdepth replay-demo: interrupted (SIGTERM): the graph was stopped; 2 depth frames recorded, "
                    "pictures in out/frames/")


def test_only_its_own_frame_pictures_are_removed(tmp_path):
    """A previous run's `<sec>.<nanosec>.png` go; a user's PNGs in that folder stay."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("1532402927.612460000.png", "holiday.png", "1532402927.png", "12.5.png"):
        (frames / name).write_bytes(b"png")
    remove_previous_frames(frames)
    assert sorted(p.name for p in frames.iterdir()) == ["12.5.png", "1532402927.png", "holiday.png"]


def test_a_record_folder_holding_something_else_is_refused_before_any_work(tmp_path):
    """`<out>/record` holding a user's file: the recorder refused it only after the bag was written and the graph
    had played for ~40 s, and the previous run's frame pictures were deleted by then (a black-box run). Now one
    line before any work; nothing is written or removed."""
    out = tmp_path / "o"
    (out / "record").mkdir(parents=True)
    (out / "record" / "keep.txt").write_text("mine")
    (out / "frames").mkdir()
    (out / "frames" / "1532402927.612460000.png").write_bytes(b"png")
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "replay-demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"xdrcdepth replay-demo: {out / 'record'} holds something other than a previous run's "
                             "recording; not touching it (move it, or choose another --out)\n")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "frames", "frames/1532402927.612460000.png", "record", "record/keep.txt"]


def test_a_previous_runs_recording_an_empty_folder_or_none_may_take_the_recording(tmp_path):
    from test_bag_recording_safety import small_bag

    assert recording_folder_problem(tmp_path / "absent") is None
    (tmp_path / "empty").mkdir()
    assert recording_folder_problem(tmp_path / "empty") is None
    assert recording_folder_problem(small_bag(tmp_path / "bag")) is None
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "killed.mcap").write_bytes(b"\x89MCAP0\r\n")       # the recorder's file of a killed run
    assert recording_folder_problem(killed) is None
    (tmp_path / "file").write_text("x")
    assert recording_folder_problem(tmp_path / "file").startswith(f"{tmp_path / 'file'} holds something other")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it (No such file or directory)"),
    ("a: [", "not a YAML file (while parsing a flow node"),
    ("- 1\n", "not a ROS 2 parameter file (wants '<node or /**>: ros__parameters: {name: value, ...}')"),
    ("depth_node:\n  parameters: {}\n", "not a ROS 2 parameter file"),
    # the node's own checks, on the file as rcl reads it for the launched node (before: the bag was written and
    # played for ~35 s while the node had stopped, then exit 1 with a hint about --rate and --delay)
    ("/**:\n  ros__parameters:\n    backend: bogus\n", "the depth node would not start: bad parameters: backend = "
     "'bogus' is not one of auto, torch, onnxruntime, openvino, tensorrt"),
    ("depth_node:\n  ros__parameters:\n    backend: 7\n    slop: 5.0\n", "the depth node would not start: bad "
     "parameters: backend must be a string, got 7; slop = 5.0 is outside [0.001, 1.0]"),
    ("/**:\n  ros__parameters:\n    radar_topics: [1, a]\n", "the depth node would not start: invalid ROS "
     "arguments: Couldn't parse params file"),
])
def test_a_bad_params_file_is_one_line_before_any_work(tmp_path, content, message):
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "replay-demo", "--out", str(tmp_path / "o"),
                             "--params-file", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"xdrcdepth replay-demo: --params-file {path}: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert not (tmp_path / "o").exists()                  # no bag written first


def test_a_conversion_error_is_one_line(tmp_path, nuscenes_samples):
    """nuscenes2bag names the problem in its one line; replay-demo adds no second one. A scene name starting with
    '-' is a name, not an option."""
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "replay-demo", "--out", str(tmp_path / "o"),
                             "--scene=--x"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.match(r"nuscenes2bag: \S+: no scene --x in v1\.0-mini \(scenes: scene-0061\)$", result.stderr), \
        result.stderr


def test_a_version_the_default_data_lacks_is_one_line_naming_what_was_given(tmp_path, nuscenes_samples):
    """Without --dataroot the data is assembled in a temporary folder: the line names the version and the default
    data instead (that folder is gone when the command ends)."""
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "replay-demo", "--out", str(tmp_path / "o"),
                             "--version", "v9.9"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("xdrcdepth replay-demo: --version v9.9: no such table folder in the default data (real "
                             f"nuScenes samples from {nuscenes_samples}; it has v1.0-mini); give --dataroot, a "
                             "nuScenes-format folder holding v9.9/\n")
    assert result.stdout == "" and not (tmp_path / "o").exists()


def test_a_taken_foxglove_port_becomes_any_free_one(capsys):
    """A foxglove_bridge already on the port (its default is ours, 8765) must not fail the replay: the viewer
    gets port 0 (any free one) and the user one line."""
    import socket

    with socket.socket() as bridge:
        bridge.bind(("127.0.0.1", 0))
        bridge.listen()
        taken = bridge.getsockname()[1]
        assert live_view_port(taken) == 0
        assert capsys.readouterr().err == (f"replay-demo: port {taken} on 127.0.0.1 is taken (a Foxglove bridge, "
                                           "another replay?); the live view uses a free port instead (its address "
                                           "follows)\n")
    assert live_view_port(taken) == taken and capsys.readouterr().err == ""          # free again: kept
    assert live_view_port(0) == 0


@pytest.mark.parametrize("scene", ["", "  "])
def test_an_empty_scene_is_a_usage_error_not_the_first_scene(tmp_path, monkeypatch, capsys, scene):
    """`--scene "$SCENE"` with the variable unset: one line, exit 2, as `nuscenes2bag --scene ''`; not a silent
    replay of the first scene (nothing runs: `run` is replaced by one that fails the test)."""
    import xdrcdepth_ros.bag.replay_demo as replay_demo
    from xdrcdepth_core.cli import main

    monkeypatch.setattr(replay_demo, "run", lambda args: pytest.fail(f"replay-demo ran scene {args.scene!r}"))
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-demo", "--out", str(tmp_path / "o"), "--scene", scene])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"xdrcdepth replay-demo: error: argument --scene: a scene name must not be empty, got {scene!r} "
                   "(see --help)\n")
    assert not (tmp_path / "o").exists()
