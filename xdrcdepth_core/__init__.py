"""xdrcdepth core: radar-camera depth models, data, distillation, training and evaluation.

This package never imports rclpy; the ROS 2 side lives in :mod:`xdrcdepth_ros`.
"""

__version__ = "0.1.0"
