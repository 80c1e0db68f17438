"""``tf2_msgs``, the message package of /tf and /tf_static: the one ROS 2 package here that no PyPI wheel provides.

A ROS 2 install has it; where ROS 2 comes from PyPI wheels, ``scripts/build_tf2_msgs.sh <venv>`` generates it with
the wheels' own rosidl generators (its build tools: ``requirements-msggen.txt``, and cmake). ``setup.py`` installs
both in the package's share folder, so an installed package can generate it too. Without it, the programs that
need it (the depth node, ``xdrcdepth replay-eval``, ``xdrcdepth replay-demo``) stop with one line saying so
(:func:`tf_message_class`); the others (bag player, recorder, Foxglove viewer) skip /tf with a warning.
"""

from __future__ import annotations

import sys

from xdrcdepth_core.cli_args import MissingDependency
from xdrcdepth_core.share import NoShareFolder, share_directory

GENERATOR, BUILD_REQUIREMENTS = "scripts/build_tf2_msgs.sh", "requirements-msggen.txt"


def tf_message_class() -> type:
    """``tf2_msgs.msg.TFMessage``; :class:`~xdrcdepth_core.cli_args.MissingDependency` saying how to get it when
    the package is not installed (any other import failure inside it propagates as it is)."""
    try:
        from tf2_msgs.msg import TFMessage
    except ModuleNotFoundError as exc:
        if exc.name not in ("tf2_msgs", "tf2_msgs.msg"):
            raise
        raise MissingDependency(missing_tf2_msgs()) from None
    return TFMessage


def missing_tf2_msgs() -> str:
    """One line: tf2_msgs is missing, and the commands that generate it into this Python environment."""
    try:
        share = share_directory()
        generator, requirements = share / GENERATOR, share / BUILD_REQUIREMENTS
    except NoShareFolder:
        generator, requirements = GENERATOR, BUILD_REQUIREMENTS
    return (f"the ROS 2 message package tf2_msgs is not installed (no PyPI wheel provides it): with a ROS 2 install "
            f"source its setup script; with ROS 2 from PyPI wheels generate it (needs cmake): {sys.executable} -m pip "
            f"install -r {requirements} && bash {generator} {sys.prefix}")
