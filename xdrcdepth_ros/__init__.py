"""xdrcdepth ROS 2 side, one sub-package per kind of code (all maths lives in :mod:`xdrcdepth_core`):

- :mod:`xdrcdepth_ros.node`: the depth node (``depth_node``): node, parameters, input QoS, synchronised
  input handling, message validation, diagnostics, ``main()``;
- :mod:`xdrcdepth_ros.standins`: equivalents of upstream ROS 2 Python libraries that do not install from
  PyPI, one module each, named after what it replaces (``message_filters``, ``tf2_ros``, ``cv_bridge``,
  ``point_cloud2`` for ``sensor_msgs_py.point_cloud2``, ``rosidl_runtime_py``); the real library is used
  whenever it is importable (:func:`xdrcdepth_ros.standins.active`);
- :mod:`xdrcdepth_ros.bag`: rosbag2 tools (``nuscenes2bag``, ``bag_player``, ``bag_recorder``,
  ``xdrcdepth replay-demo``);
- :mod:`xdrcdepth_ros.tools`: launch and viewer tools (``xdrcdepth launch``, ``foxglove_viewer``).

Importing this package loads neither rclpy nor torch.
"""
