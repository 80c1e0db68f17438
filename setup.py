"""One ament_python package (``colcon build``) that also installs with ``pip install -e .``.

``ros2 run`` finds the console scripts through setup.cfg's script_dir; ``pip`` puts them on PATH.
"""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "xdrcdepth_ros"


def share_tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files for every file under ``folder``, at its repository path under share/<PACKAGE>/ (subfolders kept:
    xdrcdepth_core.share.shipped_file finds a repository-relative default there once installed)."""
    return [(f"share/{PACKAGE}/{root}", sorted(os.path.join(root, name) for name in files))
            for root, _, files in sorted(os.walk(folder)) if files]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"xdrcdepth_core": ["checkpoints/xdrcdepth_student.pt"]},   # not the ablation teacher
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        # requirements-msggen.txt and scripts/build_tf2_msgs.sh: tf2_msgs generated where ROS comes from PyPI
        # (xdrcdepth_ros/tf_messages.py names them when it is missing)
        ("share/" + PACKAGE, ["package.xml", "requirements-msggen.txt"]),
        ("share/" + PACKAGE + "/scripts", ["scripts/build_tf2_msgs.sh"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        *share_tree("config"),
        ("share/" + PACKAGE + "/rviz", glob("rviz/*.rviz")),
    ],
    # torch is deliberately not listed: pip would replace a local CPU/CUDA build; requirements.txt pins it.
    install_requires=["numpy", "pyyaml", "pillow", "tqdm", "nuscenes-devkit", "rosbags",
                      "foxglove-sdk"],
    zip_safe=True,
    maintainer="xdrcdepth developers",
    maintainer_email="xdrcdepth@example.com",
    description="Radar-camera metric depth estimation (XD-RCDepth) as a ROS 2 node",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "xdrcdepth = xdrcdepth_core.cli:main",
            # Ctrl-C while a node's module imports rclpy and torch: a normal stop (xdrcdepth_ros/entry_points.py)
            "depth_node = xdrcdepth_ros.entry_points:depth_node",
            "foxglove_viewer = xdrcdepth_ros.entry_points:foxglove_viewer",
            "bag_player = xdrcdepth_ros.entry_points:bag_player",
            "nuscenes2bag = xdrcdepth_ros.entry_points:nuscenes2bag",
            "bag_recorder = xdrcdepth_ros.entry_points:bag_recorder",
        ],
    },
)
