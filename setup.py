"""One ament_python package (``colcon build``) that also installs with ``pip install -e .``.

``ros2 run`` finds the console scripts through setup.cfg's script_dir; ``pip`` puts them on PATH.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "xdrcdepth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"xdrcdepth_core": ["checkpoints/xdrcdepth_student.pt", "configs/*.yaml"]},   # not the ablation teacher
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
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
            "depth_node = xdrcdepth_ros.node.depth_node:main",
            "foxglove_viewer = xdrcdepth_ros.tools.foxglove_viewer:main",
            "bag_player = xdrcdepth_ros.bag.player:main",
            "nuscenes2bag = xdrcdepth_ros.bag.nuscenes2bag:main",
            "bag_recorder = xdrcdepth_ros.bag.recorder:main",
        ],
    },
)
