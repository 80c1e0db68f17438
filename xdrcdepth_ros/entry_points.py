"""Console-script entry points (``setup.py``): each imports its program's module inside a Ctrl-C guard.

Importing a node's module loads rclpy and torch, a second or more, and its ``main`` parses arguments and
starts ROS before its own signal handling is set up. A Ctrl-C in that window used to end in a
``KeyboardInterrupt`` traceback; now it is the same stop as a Ctrl-C a moment later: exit code 0 and no output
for the nodes and tools (as :mod:`xdrcdepth_ros.node.run` stops them; nothing has been written yet), one line
and exit code 130 for the batch converter ``nuscenes2bag``. Once a batch program has finished (its report printed), SIGINT is ignored: a Ctrl-C while the
interpreter exits would otherwise end it with a traceback of whatever exit code it hit (logging's atexit hook,
threading's joins) or, once Python has restored SIGINT's default action, silently with 130, its output complete
and reported. This module itself imports nothing heavy.

The program's module is imported with SIGINT held (:func:`~xdrcdepth_core.cli_args.sigint_held`) and the
``KeyboardInterrupt`` raised once the import is done: a ``KeyboardInterrupt`` raised inside a library's import
can be swallowed there (one that landed at a certain point while numpy imported was, reproducibly; the
depth node then started and ran on as if never interrupted). SIGTERM is the same stop as Ctrl-C for the nodes and
tools until rclpy handles it (``docker stop`` or systemd during start-up ended them by the signal).
"""

from __future__ import annotations

import importlib
import signal
from typing import Callable

from xdrcdepth_core.cli_args import EXIT_INTERRUPTED, interrupted_line, say, sigint_held, sigterm_as_ctrl_c


def _guarded(module: str, batch: bool = False) -> Callable[[], int]:
    def entry() -> int:
        if not batch and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, sigterm_as_ctrl_c)   # until rclpy's own (xdrcdepth_ros.node.run.init_ros)
        try:
            with sigint_held():     # a library's import may swallow KeyboardInterrupt: the program then started
                program = importlib.import_module(module)
            code = program.main()
            if batch:
                signal.signal(signal.SIGINT, signal.SIG_IGN)    # raises a SIGINT still pending first: caught here
            return code
        except KeyboardInterrupt:   # while importing, or in main before its own signal handling is set up
            if not batch:
                return 0
            say(interrupted_line(module.rpartition(".")[2]))
            return EXIT_INTERRUPTED
    entry.__doc__ = f"``{module}.main()``, imported inside a Ctrl-C guard."
    return entry


depth_node = _guarded("xdrcdepth_ros.node.depth_node")
foxglove_viewer = _guarded("xdrcdepth_ros.tools.foxglove_viewer")
bag_player = _guarded("xdrcdepth_ros.bag.player")
bag_recorder = _guarded("xdrcdepth_ros.bag.recorder")
nuscenes2bag = _guarded("xdrcdepth_ros.bag.nuscenes2bag", batch=True)
