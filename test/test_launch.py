"""Launch files, the graph `xdrcdepth launch` reads from them, and the RViz config.

`ros2 launch` cannot run here (launch/launch_ros are not installable), so the launch files are checked
by compiling them and by reading them with xdrcdepth_ros.tools.launch_graph, the reader `xdrcdepth launch`
runs them with; the expected nodes, parameters and remappings below are written out by hand.
"""

import ast
import py_compile
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from xdrcdepth_ros.tools.launch_graph import LaunchFileError, declared_arguments, launch_file, load_graph, share_directory
from xdrcdepth_ros.tools.launcher import ParamsFiles, command_line

REPO = Path(__file__).resolve().parents[1]
SHARE = share_directory()
PARAMS = str(SHARE / "config" / "xdrcdepth.yaml")
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def _processes(graph, **values):
    return {p.name: p for p in load_graph(launch_file(graph), values).processes}


def test_launch_files_compile_and_use_current_launch_api():
    assert [p.name for p in LAUNCH_FILES] == ["nuscenes_replay.launch.py", "xdrcdepth.launch.py"]
    for path in LAUNCH_FILES:
        py_compile.compile(str(path), doraise=True)
        tree = ast.parse(path.read_text())
        keywords = {k.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for k in node.keywords}
        assert "node_executable" not in keywords and "node_name" not in keywords  # pre-Foxy spellings
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
        assert "get_package_share_directory" in imported


def test_share_directory_of_a_source_checkout_is_the_repo():
    import os
    import sys

    if os.environ.get("AMENT_PREFIX_PATH") or (Path(sys.prefix) / "share" / "xdrcdepth_ros").exists():
        pytest.skip("an installed share folder takes precedence over the checkout here")
    assert SHARE == REPO  # pip install -e . (this venv): no ament index entry, so the checkout


def test_depth_node_graph_defaults():
    (name, node), = _processes("xdrcdepth").items()
    assert (name, node.package, node.executable, node.node_name) == (
        "depth_node", "xdrcdepth_ros", "depth_node", "depth_node")
    # the dict's LaunchConfiguration texts read as YAML, as launch_ros's evaluate_parameter_dict does
    assert node.parameters == [PARAMS, {"checkpoint": "", "use_sim_time": False, "device": "auto",
                                        "image_transport": "raw", "radar_topics": ["radar/points"]}]
    assert node.remappings == [("image", "image"), ("image/compressed", "image/compressed"),
                               ("camera_info", "camera_info"), ("radar/points", "radar/points")]
    assert node.shutdown_after_exit is None


def test_depth_node_command_line_with_arguments():
    node = _processes("xdrcdepth", image_topic="/cam/image", use_sim_time="true", device="cpu",
                      radar_topic="/radar_front", params_file="/tmp/mine.yaml", checkpoint="/models/s.pt",
                      radar_topics="[/radar_front, /radar_front_left]")["depth_node"]
    params_files = ParamsFiles(None)
    assert command_line(node, params_files) == [
        "depth_node", "--ros-args", "-r", "__node:=depth_node", "--params-file", "/tmp/mine.yaml",
        "--params-file", "<temporary>/depth_node_params_1.yaml",
        "-r", "image:=/cam/image", "-r", "image/compressed:=image/compressed",
        "-r", "camera_info:=camera_info", "-r", "radar/points:=/radar_front"]
    # launch_ros's file of a dict (Node._create_params_file_from_dict): '/**' for a node without namespace
    assert params_files.written == [("<temporary>/depth_node_params_1.yaml", textwrap.dedent("""\
        /**:
          ros__parameters:
            checkpoint: /models/s.pt
            device: cpu
            image_transport: raw
            radar_topics:
            - /radar_front
            - /radar_front_left
            use_sim_time: true
        """))]


def test_replay_graph_node_player_viewers():
    processes = _processes("nuscenes_replay", bag="/data/scene-0061", rate="2")
    assert list(processes) == ["depth_node", "bag_player", "rviz2", "foxglove_viewer"]
    node, player, rviz, viewer = processes.values()

    assert node.parameters == [PARAMS, {"checkpoint": "", "use_sim_time": True, "device": "auto",
                                        "image_transport": "compressed", "radar_topics": ["radar/points"]}]
    bag_topics = [("image/compressed", "/cam_front/image_rect_compressed"),
                  ("camera_info", "/cam_front/camera_info"), ("radar/points", "/radar_front")]
    assert node.remappings == [("image", "image"), *bag_topics]

    assert (player.package, player.executable) == (None, "ros2")
    assert player.arguments == ["bag", "play", "/data/scene-0061", "--clock", "--rate", "2", "--delay", "0.0"]
    assert command_line(player, ParamsFiles(None)) == [
        "bag_player", "/data/scene-0061", "--clock", "--rate", "2", "--delay", "0.0"]
    assert {p.name: p.shutdown_after_exit for p in processes.values()} == {
        "depth_node": None, "bag_player": 3.0, "rviz2": None, "foxglove_viewer": None}  # default linger

    assert (rviz.package, rviz.executable) == ("rviz2", "rviz2")
    assert rviz.arguments == ["-d", str(SHARE / "rviz" / "xdrcdepth.rviz")]
    assert Path(rviz.arguments[1]).is_file()
    assert (viewer.package, viewer.executable) == ("xdrcdepth_ros", "foxglove_viewer")
    assert viewer.parameters == [{"use_sim_time": True, "port": 8765}]
    # the viewers see the bag's topics under the same names the node reads (camera_info included: the
    # Foxglove viewer's camera_info would otherwise resolve to a topic the bag does not have)
    assert rviz.remappings == viewer.remappings == bag_topics


def test_replay_graph_records_before_playing_and_lingers():
    processes = _processes("nuscenes_replay", bag="b", record="true", record_dir="/out/rec", linger="7.5",
                           use_rviz="false", use_foxglove="false")
    assert list(processes) == ["depth_node", "bag_recorder", "bag_player"]  # started in this order
    recorder = processes["bag_recorder"]
    topics = ["/depth/image", "/depth/camera_info", "/depth/colorized", "/diagnostics"]
    assert [recorder.executable] + recorder.arguments == [
        "ros2", "bag", "record", "-o", "/out/rec", "--use-sim-time", *topics]
    assert command_line(recorder, ParamsFiles(None)) == ["bag_recorder", "-o", "/out/rec", "--use-sim-time", *topics]
    assert processes["bag_player"].shutdown_after_exit == 7.5
    assert recorder.shutdown_after_exit is None
    with pytest.raises(LaunchFileError, match="TimerAction period wants seconds, got 'soon'"):
        load_graph(launch_file("nuscenes_replay"), {"bag": "b", "linger": "soon"})
    with pytest.raises(LaunchFileError, match="finite number >= 0, got '-1'"):
        load_graph(launch_file("nuscenes_replay"), {"bag": "b", "linger": "-1"})


@pytest.mark.parametrize("on_exit, seconds", [
    ("[EmitEvent(event=Shutdown())]", 0.0),
    ("[TimerAction(period=2.5, actions=[EmitEvent(event=Shutdown(reason='r'))])]", 2.5),
    ("[TimerAction(period='4', actions=[EmitEvent(event=Shutdown())])]", 4.0),
    ("[TimerAction(period=LaunchConfiguration('wait'), actions=[EmitEvent(event=Shutdown())])]", 1.25),
])
def test_shutdown_on_exit_forms(tmp_path, on_exit, seconds):
    path = tmp_path / "t.launch.py"
    path.write_text(
        "from launch import LaunchDescription\n"
        "from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler\n"
        "from launch.actions import TimerAction\n"
        "from launch.event_handlers import OnProcessExit\n"
        "from launch.events import Shutdown\n"
        "from launch.substitutions import LaunchConfiguration\n\n\n"
        "def generate_launch_description():\n"
        "    a = ExecuteProcess(name='a', cmd=['true'])\n"
        "    return LaunchDescription([DeclareLaunchArgument('wait', default_value='1.25'), a,\n"
        "        ExecuteProcess(name='b', cmd=['sleep', '9']),\n"
        f"        RegisterEventHandler(OnProcessExit(target_action=a, on_exit={on_exit}))])\n")
    graph = load_graph(path, {})
    assert [(p.name, p.shutdown_after_exit) for p in graph.processes] == [("a", seconds), ("b", None)]


@pytest.mark.parametrize("on_exit", [
    "[TimerAction(period=1.0, actions=[ExecuteProcess(cmd=['x'])])]",
    "[TimerAction(actions=[EmitEvent(event=Shutdown())])]",
    "[EmitEvent(event=Shutdown()), EmitEvent(event=Shutdown())]",
    "[TimerAction(period=2, actions=[EmitEvent(event=Shutdown())])]",  # launch rejects an int period
])
def test_on_process_exit_other_actions_are_rejected(tmp_path, on_exit):
    path = tmp_path / "t.launch.py"
    path.write_text(
        "from launch import LaunchDescription\n"
        "from launch.actions import EmitEvent, ExecuteProcess, RegisterEventHandler, TimerAction\n"
        "from launch.event_handlers import OnProcessExit\n"
        "from launch.events import Shutdown\n\n\n"
        "def generate_launch_description():\n"
        "    a = ExecuteProcess(name='a', cmd=['true'])\n"
        f"    return LaunchDescription([a, RegisterEventHandler(OnProcessExit(target_action=a, on_exit={on_exit}))])\n")
    with pytest.raises(LaunchFileError, match=f"{re.escape(str(path))}:9: (OnProcessExit supports only|"
                                              "TimerAction\\(\\) needs period|TimerAction period must be a float)"):
        load_graph(path, {})


def test_replay_arguments_switch_camera_and_viewers():
    processes = _processes("nuscenes_replay", bag="b", camera="cam_back", use_rviz="false",
                           use_foxglove="0", foxglove_port="0", device="cuda:1")
    assert list(processes) == ["depth_node", "bag_player"]
    node = processes["depth_node"]
    assert ("image/compressed", "/cam_back/image_rect_compressed") in node.remappings
    assert ("camera_info", "/cam_back/camera_info") in node.remappings
    assert node.parameters[1]["device"] == "cuda:1"
    # checkpoint and several radars reach the node through the include
    node = _processes("nuscenes_replay", bag="b", checkpoint="/m/student.pt",
                      radar_topics="[/radar_front, /radar_front_left, /radar_front_right]")["depth_node"]
    assert node.parameters[1]["checkpoint"] == "/m/student.pt"
    assert node.parameters[1]["radar_topics"] == ["/radar_front", "/radar_front_left", "/radar_front_right"]


def test_argument_errors_name_the_argument():
    with pytest.raises(LaunchFileError, match=r"missing launch argument bag:=\.\.\. \(rosbag2 folder"):
        load_graph(launch_file("nuscenes_replay"), {})
    with pytest.raises(LaunchFileError, match=r"unknown launch argument\(s\) imagetopic"):
        load_graph(launch_file("xdrcdepth"), {"imagetopic": "/x"})
    with pytest.raises(LaunchFileError, match="condition wants true/false, got 'maybe'"):
        load_graph(launch_file("nuscenes_replay"), {"bag": "b", "use_rviz": "maybe"})
    with pytest.raises(LaunchFileError, match="no launch graph 'replay'.*have: nuscenes_replay, xdrcdepth"):
        launch_file("replay")


def test_declared_arguments_cover_both_files():
    names = [a.name for a in declared_arguments(launch_file("nuscenes_replay"))]
    assert names[:7] == ["bag", "rate", "delay", "linger", "record", "record_dir", "camera"]
    assert {"params_file", "use_sim_time", "image_topic", "foxglove_port", "use_rviz"} <= set(names)


def test_overrides_are_parameters_of_the_node_yaml():
    """Every parameter a launch file sets on the depth node exists in the YAML the node is started with."""
    config = yaml.safe_load(Path(PARAMS).read_text())
    (section,) = config.values()
    declared = set(section["ros__parameters"])
    for graph, values in (("xdrcdepth", {}), ("nuscenes_replay", {"bag": "b"})):
        node = _processes(graph, **values)["depth_node"]
        params_file, overrides = node.parameters
        assert params_file == PARAMS and set(overrides) <= declared, graph
        # launch_ros reads a LaunchConfiguration's text as YAML: each must give the type of the node's default
        for name, value in overrides.items():
            if name != "use_sim_time":
                assert type(value) is type(section["ros__parameters"][name]), (graph, name, value)
        # the node's own input names are the remap sources
        assert "radar/points" in section["ros__parameters"]["radar_topics"]


@pytest.mark.parametrize("source, message", [
    ("Node(package='p', node_executable='x')",
     "unsupported keyword(s) node_executable; node_executable= was removed in ROS 2 Foxy, use executable="),
    ("PythonExpression(['1'])", "unsupported call launch.substitutions.PythonExpression()"),
    ("Node(package='p', executable=unknown_name)", "unknown name 'unknown_name'"),
    # shapes launch would iterate character by character or choke on: named, not a TypeError/ValueError traceback
    ("Node(package='p', executable='x', remappings=[('a', 'b', 'c')])",
     "remappings= must be a list of (from, to) pairs, got [['a', 'b', 'c']]"),
    ("Node(package='p', executable='x', remappings=[1])", "remappings= must be a list of (from, to) pairs, got [1]"),
    ("Node(package='p', executable='x', parameters='p.yaml')", "parameters= must be a list, got 'p.yaml'"),
    ("Node(package='p', executable='x', arguments=5)", "arguments= must be a list, got 5"),
    ("Node(package='p', executable='x', parameters=[{('k',): 1}])", "dict keys must be string literals"),
    ("ExecuteProcess(cmd='true')", "cmd= must be a list, got 'true'"),
])
def test_reader_rejects_what_it_does_not_understand(tmp_path, source, message):
    """One LaunchFileError naming file:line for each action the reader cannot use."""
    path = tmp_path / "bad.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import ExecuteProcess\n"
                    "from launch_ros.actions import Node\nfrom launch.substitutions import PythonExpression\n\n\n"
                    f"def generate_launch_description():\n    return LaunchDescription([{source}])\n")
    with pytest.raises(LaunchFileError, match=re.escape(f"{path}:8: {message}")):
        load_graph(path, {})


def test_unreadable_launch_files_are_named(tmp_path):
    """Not UTF-8, NUL bytes, a folder, a description that is no list, an include cycle: one LaunchFileError each."""
    cases = {"binary": b"\xff\xfe\x00garbage", "nul": b"x = 1\x00\n",
             "notalist": b"from launch import LaunchDescription\n\n\ndef generate_launch_description():\n"
                         b"    return LaunchDescription(5)\n"}
    for name, data in cases.items():
        (tmp_path / f"{name}.launch.py").write_bytes(data)
    errors = {}
    for name in cases:
        with pytest.raises(LaunchFileError) as info:
            load_graph(launch_file(str(tmp_path / f"{name}.launch.py")), {})
        errors[name] = str(info.value)
    assert errors["binary"] == (f"{tmp_path}/binary.launch.py: not a Python launch file (not UTF-8 text: byte 0xff "
                                "at offset 0)")
    assert errors["nul"] == f"{tmp_path}/nul.launch.py: syntax error: source code string cannot contain null bytes"
    assert errors["notalist"] == f"{tmp_path}/notalist.launch.py:5: LaunchDescription wants a list of actions, got 5"
    (tmp_path / "folder.launch.py").mkdir()
    with pytest.raises(LaunchFileError, match=re.escape(f"launch file {tmp_path}/folder.launch.py is a folder")):
        launch_file(str(tmp_path / "folder.launch.py"))


def test_declared_choices_are_enforced_as_launch_does(tmp_path):
    """`DeclareLaunchArgument(choices=[...])`: ros2 launch refuses any other value (given or default); so does
    the reader, and --show-args lists them."""
    path = tmp_path / "c.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import DeclareLaunchArgument, "
                    "ExecuteProcess\nfrom launch.substitutions import LaunchConfiguration\n\n\n"
                    "def generate_launch_description():\n    return LaunchDescription([\n"
                    "        DeclareLaunchArgument('mode', default_value='fast', choices=['fast', 'slow']),\n"
                    "        ExecuteProcess(name='e', cmd=['echo', LaunchConfiguration('mode')])])\n")
    assert load_graph(path, {"mode": "slow"}).processes[0].arguments == ["slow"]
    assert load_graph(path, {}).processes[0].arguments == ["fast"]
    with pytest.raises(LaunchFileError, match=re.escape(f"launch argument mode:='medium' is not one of fast, slow "
                                                        f"(declared at {path}:8)")):
        load_graph(path, {"mode": "medium"})
    assert declared_arguments(path)[0].choices == ("fast", "slow")
    path.write_text(path.read_text().replace("default_value='fast'", "default_value='turbo'"))
    with pytest.raises(LaunchFileError, match="launch argument mode:='turbo' is not one of fast, slow"):
        load_graph(path, {})

def test_an_include_cycle_is_an_error_naming_the_chain(tmp_path):
    include = ("from launch import LaunchDescription\nfrom launch.actions import IncludeLaunchDescription\n"
               "from launch.launch_description_sources import PythonLaunchDescriptionSource\n\n\n"
               "def generate_launch_description():\n"
               "    return LaunchDescription([IncludeLaunchDescription(PythonLaunchDescriptionSource('{}'))])\n")
    (tmp_path / "a.launch.py").write_text(include.format(tmp_path / "b.launch.py"))
    (tmp_path / "b.launch.py").write_text(include.format(tmp_path / "a.launch.py"))
    with pytest.raises(LaunchFileError, match=re.escape(
            f"{tmp_path}/b.launch.py:7: include cycle: {tmp_path}/a.launch.py is already being read "
            "(a.launch.py -> b.launch.py -> a.launch.py)")):
        load_graph(tmp_path / "a.launch.py", {})
    with pytest.raises(LaunchFileError, match="include cycle"):
        declared_arguments(tmp_path / "a.launch.py")      # --show-args reads the same way


def test_a_bad_launch_file_is_one_line_and_exit_2_from_the_command(tmp_path):
    """What a user sees: `xdrcdepth launch FILE` (and --show-args, --print) on a broken file: one line, exit 2."""
    import subprocess
    import sys

    (tmp_path / "binary.launch.py").write_bytes(b"\xff\xfe garbage")
    (tmp_path / "self.launch.py").write_text(
        "from launch import LaunchDescription\nfrom launch.actions import IncludeLaunchDescription\n"
        "from launch.launch_description_sources import PythonLaunchDescriptionSource\n\n\n"
        "def generate_launch_description():\n    return LaunchDescription([IncludeLaunchDescription("
        f"PythonLaunchDescriptionSource('{tmp_path / 'self.launch.py'}'))])\n")
    for name, extra in (("binary", "--print"), ("self", "--show-args"), ("self", "--print")):
        path = tmp_path / f"{name}.launch.py"
        result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "launch", str(path), extra],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and result.stdout == "", (name, extra, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"xdrcdepth launch: {path}"), \
            (name, extra, result.stderr)

def test_rviz_config_shows_the_node_topics():
    config = yaml.safe_load((REPO / "rviz" / "xdrcdepth.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    displays = {d["Name"]: d for d in manager["Displays"]}
    topics = {name: d["Topic"]["Value"] for name, d in displays.items() if "Topic" in d}
    assert topics == {"Camera": "/image", "Camera (compressed)": "/image/compressed",
                      "Depth (metric)": "/depth/image", "Depth (colorized)": "/depth/colorized",
                      "Radar points": "/radar/points"}
    # a nuScenes replay has image/compressed only: the raw display would wait forever, so it is off
    assert displays["Camera"]["Enabled"] is False and displays["Camera"]["Value"] is False
    assert displays["Camera (compressed)"]["Enabled"] is True
    # the metric depth (32FC1 m) as an image: Normalize Range, as image_pipeline's depth configs do
    metric = displays["Depth (metric)"]
    assert metric["Class"] == "rviz_default_plugins/Image" and metric["Normalize Range"] is True
    assert metric["Enabled"] is True
    cloud = displays["Depth cloud"]
    assert cloud["Class"] == "rviz_default_plugins/DepthCloud" and cloud["Depth Map Topic"] == "/depth/image"
    assert displays["TF"]["Class"] == "rviz_default_plugins/TF"
    assert displays["Radar points"]["Class"] == "rviz_default_plugins/PointCloud2"
    # the depth node publishes and subscribes these names
    node_source = (REPO / "xdrcdepth_ros" / "node" / "depth_node.py").read_text()
    for topic in ("depth/image", "depth/colorized", "image"):
        assert f'"{topic}"' in node_source
    # the compressed input is image_transport's compressed transport of "image": /image/compressed unremapped
    # (test_depth_node_conventions.py subscribes to it over DDS)
    assert 'compressed_topic(self, "image")' in node_source



@pytest.mark.ros
@pytest.mark.parametrize("namespace, expected", [("robot1", "/robot1"), ("/robot1", "/robot1"), ("a/b", "/a/b"),
                                                 ("", "/")])
def test_a_relative_node_namespace_is_made_absolute_as_launch_ros_does(tmp_path, ros_domain_id, namespace, expected):
    """`Node(namespace='robot1')` (the usual `namespace:=` launch argument): launch_ros passes `__ns:=/robot1`
    (make_namespace_absolute); rcl refuses a relative `__ns:=robot1`, so the node would not start. The command
    line's ROS arguments are checked with rcl itself: the node comes up in the namespace."""
    import rclpy

    path = tmp_path / "ns.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import DeclareLaunchArgument\n"
                    "from launch.substitutions import LaunchConfiguration\nfrom launch_ros.actions import Node\n\n\n"
                    "def generate_launch_description():\n    return LaunchDescription([\n"
                    "        DeclareLaunchArgument('namespace', default_value=''),\n"
                    "        Node(package='demo', executable='talker', name='talker',\n"
                    "             namespace=LaunchConfiguration('namespace'))])\n")
    (process,) = load_graph(path, {"namespace": namespace}).processes
    ros_args = command_line(process, ParamsFiles(None))[1:]
    assert ros_args[:3] == ["--ros-args", "-r", "__node:=talker"]
    assert ros_args[3:] == ([] if not namespace else ["-r", f"__ns:={expected}"])
    context = rclpy.Context()
    rclpy.init(args=["talker", *ros_args], context=context)
    try:
        node = rclpy.create_node("talker", context=context)
        assert (node.get_name(), node.get_namespace()) == ("talker", expected)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_print_shows_each_parameter_dict_as_the_file_launch_ros_would_write(tmp_path):
    """The black-box launch file: `{'fixed_frame': ''}` was `-p fixed_frame:=` (rcl refused the node) and
    `['radar/a', 'radar/b']` was `-p radar_topics:=radar/aradar/b`. launch_ros writes each dict to a file of its own
    (under `/robot1/depth_node` when the Node has name and namespace), passed with `--params-file` in its place
    among the files; its Python strs stay strings ('123', 'true', '' quoted), bools, ints and floats keep their
    type, a list of str is a list. `--print` shows the command line and what each file will hold."""
    import subprocess
    import sys

    executable = tmp_path / "depth_node"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    path = tmp_path / "p.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch_ros.actions import Node\n\n\n"
                    "def generate_launch_description():\n    return LaunchDescription([\n"
                    f"        Node(package='xdrcdepth_ros', executable={str(executable)!r}, name='depth_node',\n"
                    "             namespace='robot1', parameters=[\n"
                    "            {'fixed_frame': '', 'checkpoint': '123', 'slop': 0.2, 'queue_size': 5,\n"
                    "             'publish_points': True, 'radar_topics': ['radar/a', 'radar/b'],\n"
                    "             'precision': 'true'},\n"
                    "            '/cfg/xdrcdepth.yaml', {'device': 'cpu'}])])\n")
    result = subprocess.run([sys.executable, "-m", "xdrcdepth_core.cli", "launch", str(path), "--print"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == textwrap.dedent(f"""\
        depth_node: {executable} --ros-args -r __node:=depth_node -r __ns:=/robot1 \
--params-file '<temporary>/depth_node_params_1.yaml' --params-file /cfg/xdrcdepth.yaml \
--params-file '<temporary>/depth_node_params_2.yaml'
        <temporary>/depth_node_params_1.yaml:
            /robot1/depth_node:
              ros__parameters:
                checkpoint: '123'
                fixed_frame: ''
                precision: 'true'
                publish_points: true
                queue_size: 5
                radar_topics:
                - radar/a
                - radar/b
                slop: 0.2
        <temporary>/depth_node_params_2.yaml:
            /robot1/depth_node:
              ros__parameters:
                device: cpu
        """)


@pytest.mark.parametrize("value, message", [
    # launch_ros's normalize_parameter_dict: TypeError('Unexpected type for parameter value None')
    ("None", "launch_ros takes no NoneType value"),
    # evaluate_parameter_dict: an empty list, or items not of the first item's type (check_sequence_type_is_allowed)
    ("[]", "[] is not a non-empty list of one type"),
    ("['a', 1]", "['a', 1] is not a non-empty list of one type"),
    ("[True, 1]", "[True, 1] is not a non-empty list of one type"),
    ("[{'a': 1}]", "launch_ros takes no dict item"),
    # a LaunchConfiguration's text read as YAML: null (empty text), a mapping, a mixed list are TypeErrors there
    ("LaunchConfiguration('text')", "'' reads as YAML NoneType"),
    ("[LaunchConfiguration('text'), '{a: 1}']", "'{a: 1}' reads as YAML dict"),
    ("[LaunchConfiguration('text'), '[1, a]']", "[1, 'a'] is not a non-empty list of one type"),
    ("[LaunchConfiguration('text'), '[']", "'[' is not YAML"),
])
def test_parameter_values_launch_ros_refuses_are_errors(tmp_path, value, message):
    """What launch_ros refuses in a parameters dict is one LaunchFileError naming file:line and the parameter."""
    path = tmp_path / "bad.launch.py"
    path.write_text("from launch import LaunchDescription\nfrom launch.actions import DeclareLaunchArgument\n"
                    "from launch.substitutions import LaunchConfiguration\nfrom launch_ros.actions import Node\n\n\n"
                    "def generate_launch_description():\n    return LaunchDescription([\n"
                    "        DeclareLaunchArgument('text', default_value=''),\n"
                    f"        Node(package='p', executable='x', parameters=[{{'a': {{'b': {value}}}}}])])\n")
    with pytest.raises(LaunchFileError, match=re.escape(f"{path}:10: parameter 'a.b': {message}")):
        load_graph(path, {})
