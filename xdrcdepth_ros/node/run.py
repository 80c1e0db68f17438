"""The ``main()`` shape every long-running node here shares: init, build, spin, stop cleanly.

SIGINT/SIGTERM end the spin with ``KeyboardInterrupt``/``ExternalShutdownException`` — or, when the
signal shuts the context down while the executor is building its wait set, with an ``RCLError`` on a
context that is no longer ok; all three are a normal stop (exit code 0). Errors raised while building the
node that the caller names (bad parameters, a bad checkpoint, a busy port) are logged as
"cannot start: ..." and give ``startup_exit_code``; anything else is a bug and propagates.
"""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.subscription import RCLError


def run_node(make_node: Callable[[], Node], name: str,
             startup_errors: tuple[type[BaseException], ...] = (),
             startup_exit_code: int = 2, args: list[str] | None = None) -> int:
    """Run the node built by ``make_node`` until shutdown; returns the process exit code."""
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        try:
            node = make_node()
        except startup_errors as exc:
            get_logger(name).error(f"cannot start: {exc}")
            return startup_exit_code
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
