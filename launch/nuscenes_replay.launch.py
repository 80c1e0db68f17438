"""Replay a nuScenes rosbag2 through the depth node, with RViz2 and/or Foxglove to watch it.

``ros2 launch xdrcdepth_ros nuscenes_replay.launch.py bag:=/path/to/bag`` (a bag from
``xdrcdepth_ros.bag.nuscenes2bag``: /cam_front/image_rect_compressed, /cam_front/camera_info, /radar_front,
/tf, /tf_static). Plays the bag with ``ros2 bag play --clock`` under sim time, runs
xdrcdepth.launch.py with the bag's topic names, opens RViz2 (use_rviz) and the Foxglove bridge
(use_foxglove, ws://127.0.0.1:foxglove_port), optionally records the depth node's outputs and
/diagnostics with ``ros2 bag record --use-sim-time`` into record_dir (record), and shuts everything down
``linger`` seconds after the bag has played (the node finishes its last frames meanwhile; the recorder
then closes its bag). Start order: node, recorder, player; the player waits ``delay`` seconds so the
node has loaded its model and the recorder has subscribed before the first frame.
Without ROS 2 launch installed: ``xdrcdepth launch nuscenes_replay bag:=...`` (bag_player replaces
``ros2 bag play``, bag_recorder ``ros2 bag record``; rviz2 is skipped where it is not installed).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, IncludeLaunchDescription
from launch.actions import RegisterEventHandler, TimerAction
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('xdrcdepth_ros')
    camera = LaunchConfiguration('camera')
    image_topic = LaunchConfiguration('compressed_image_topic')
    radar_topic = LaunchConfiguration('radar_topic')
    # the viewers read the bag's topics under the node's input names, as the node does
    viewer_remappings = [('image/compressed', image_topic),
                         ('camera_info', LaunchConfiguration('camera_info_topic')),
                         ('radar/points', radar_topic)]
    bag_play = ExecuteProcess(
        name='bag_player',
        cmd=['ros2', 'bag', 'play', LaunchConfiguration('bag'), '--clock',
             '--rate', LaunchConfiguration('rate'), '--delay', LaunchConfiguration('delay')],
        output='screen',
    )
    record_dir = LaunchConfiguration('record_dir')
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='rosbag2 folder to play (metadata.yaml + .mcap/.db3)'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback speed factor'),
        DeclareLaunchArgument('delay', default_value='0.0',
                              description='seconds to wait before playing (lets the node load its model)'),
        DeclareLaunchArgument('linger', default_value='3.0',
                              description='seconds the graph keeps running after the bag has played '
                                          '(the node finishes its last frames)'),
        DeclareLaunchArgument('record', default_value='false',
                              description="record the node's outputs and /diagnostics (ros2 bag record)"),
        DeclareLaunchArgument('record_dir', default_value='depth_record',
                              description='bag folder the recording goes to (must not exist)'),
        DeclareLaunchArgument('camera', default_value='cam_front',
                              description='camera channel in the bag, lower case'),
        DeclareLaunchArgument('compressed_image_topic',
                              default_value=['/', camera, '/image_rect_compressed'],
                              description='CompressedImage topic in the bag'),
        DeclareLaunchArgument('camera_info_topic', default_value=['/', camera, '/camera_info'],
                              description='CameraInfo topic in the bag'),
        DeclareLaunchArgument('radar_topic', default_value='/radar_front',
                              description='radar PointCloud2 topic in the bag'),
        DeclareLaunchArgument('radar_topics', default_value="['radar/points']",
                              description='several radars: all their topics in the bag as a YAML list, e.g. '
                                          '"[/radar_front, /radar_front_left, /radar_front_right]"'),
        DeclareLaunchArgument('checkpoint', default_value="''",
                              description="checkpoint file for the depth node ('': shipped or untrained)"),
        DeclareLaunchArgument('device', default_value='auto',
                              description='inference device: auto | cpu | cuda[:N]'),
        DeclareLaunchArgument('use_rviz', default_value='true', description='open RViz2'),
        DeclareLaunchArgument('use_foxglove', default_value='true',
                              description='serve the topics to Foxglove on 127.0.0.1'),
        DeclareLaunchArgument('foxglove_port', default_value='8765',
                              description='Foxglove WebSocket port (0: any free port)'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'xdrcdepth.launch.py')),
            launch_arguments={
                'use_sim_time': 'true',
                'checkpoint': LaunchConfiguration('checkpoint'),
                'device': LaunchConfiguration('device'),
                'image_transport': 'compressed',
                'compressed_image_topic': image_topic,
                'camera_info_topic': LaunchConfiguration('camera_info_topic'),
                'radar_topic': radar_topic,
                'radar_topics': LaunchConfiguration('radar_topics'),
            }.items(),
        ),
        ExecuteProcess(
            name='bag_recorder',
            cmd=['ros2', 'bag', 'record', '-o', record_dir, '--use-sim-time',
                 '/depth/image', '/depth/camera_info', '/depth/colorized', '/diagnostics'],
            output='screen',
            condition=IfCondition(LaunchConfiguration('record')),
        ),
        bag_play,
        Node(
            package='rviz2',
            executable='rviz2',
            name='rviz2',
            arguments=['-d', os.path.join(share, 'rviz', 'xdrcdepth.rviz')],
            parameters=[{'use_sim_time': True}],
            remappings=viewer_remappings,
            condition=IfCondition(LaunchConfiguration('use_rviz')),
        ),
        Node(
            package='xdrcdepth_ros',
            executable='foxglove_viewer',
            name='foxglove_viewer',
            output='screen',
            parameters=[{'use_sim_time': True, 'port': LaunchConfiguration('foxglove_port')}],
            remappings=viewer_remappings,
            condition=IfCondition(LaunchConfiguration('use_foxglove')),
        ),
        RegisterEventHandler(OnProcessExit(
            target_action=bag_play,
            on_exit=[TimerAction(period=LaunchConfiguration('linger'),
                                 actions=[EmitEvent(event=Shutdown(reason='bag played to the end'))])],
        )),
    ])
