"""The xdrcdepth depth node with its parameter file: ``ros2 launch xdrcdepth_ros xdrcdepth.launch.py``.

Arguments (``name:=value``): params_file, checkpoint, use_sim_time, device, image_transport, image_topic,
compressed_image_topic, camera_info_topic, radar_topic, radar_topics (several radars:
``radar_topics:="[/radar_front, /radar_front_left, /radar_front_right]"``). Without ROS 2 launch installed, ``xdrcdepth launch xdrcdepth ...`` runs
this same file (xdrcdepth_ros/tools/launch_graph.py reads it) with the same arguments.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('xdrcdepth_ros')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'xdrcdepth.yaml'),
            description='depth node parameter YAML (/**: ros__parameters: ...)'),
        DeclareLaunchArgument(
            'checkpoint', default_value="''",
            description="self-describing checkpoint file; '' (YAML empty string): the shipped one, else an "
                        'untrained student (loud warning)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='follow /clock (true with bag playback)'),
        DeclareLaunchArgument(
            'device', default_value='auto', description='inference device: auto | cpu | cuda[:N]'),
        DeclareLaunchArgument(
            'image_transport', default_value='raw',
            description='raw: sensor_msgs/Image on image; compressed: CompressedImage on image/compressed'),
        DeclareLaunchArgument(
            'image_topic', default_value='image',
            description='camera sensor_msgs/Image topic (image_transport raw)'),
        DeclareLaunchArgument(
            'compressed_image_topic', default_value='image/compressed',
            description='camera CompressedImage topic (image_transport compressed)'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='camera_info', description='camera CameraInfo topic'),
        DeclareLaunchArgument(
            'radar_topic', default_value='radar/points',
            description='radar PointCloud2 topic (remap of radar/points)'),
        DeclareLaunchArgument(
            'radar_topics', default_value="['radar/points']",
            description='all radar PointCloud2 topics as a YAML list, merged into one frame, e.g. '
                        '"[/radar_front, /radar_front_left]" (names are used as given)'),
        Node(
            package='xdrcdepth_ros',
            executable='depth_node',
            name='depth_node',
            output='screen',
            parameters=[
                LaunchConfiguration('params_file'),
                {
                    'checkpoint': LaunchConfiguration('checkpoint'),
                    'use_sim_time': LaunchConfiguration('use_sim_time'),
                    'device': LaunchConfiguration('device'),
                    'image_transport': LaunchConfiguration('image_transport'),
                    'radar_topics': LaunchConfiguration('radar_topics'),
                },
            ],
            remappings=[
                ('image', LaunchConfiguration('image_topic')),
                ('image/compressed', LaunchConfiguration('compressed_image_topic')),
                ('camera_info', LaunchConfiguration('camera_info_topic')),
                ('radar/points', LaunchConfiguration('radar_topic')),
            ],
        ),
    ])
