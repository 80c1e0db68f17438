"""Console-script entry points (``setup.py``): each imports its program's module inside a Ctrl-C guard.

Importing a node's module loads rclpy and torch, a second or more. A Ctrl-C in that window used to end in a
``KeyboardInterrupt`` traceback; now it is the same stop as a Ctrl-C a moment later: exit code 0 and no output
for the nodes (as :mod:`xdrcdepth_ros.node.run` stops them), one line and exit code 130 for the batch converter
``nuscenes2bag``. This module itself imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Callable

from xdrcdepth_core.cli_args import EXIT_INTERRUPTED, interrupted_line, say


def _guarded(module: str, batch: bool = False) -> Callable[[], int]:
    def entry() -> int:
        try:
            main = importlib.import_module(module).main
        except KeyboardInterrupt:
            if not batch:
                return 0
            say(interrupted_line(module.rpartition(".")[2]))
            return EXIT_INTERRUPTED
        return main()
    entry.__doc__ = f"``{module}.main()``, imported inside a Ctrl-C guard."
    return entry


depth_node = _guarded("xdrcdepth_ros.node.depth_node")
foxglove_viewer = _guarded("xdrcdepth_ros.tools.foxglove_viewer")
bag_player = _guarded("xdrcdepth_ros.bag.player")
bag_recorder = _guarded("xdrcdepth_ros.bag.recorder")
nuscenes2bag = _guarded("xdrcdepth_ros.bag.nuscenes2bag", batch=True)
