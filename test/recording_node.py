"""The real depth node (``xdrcdepth_ros.node.depth_node.main``) with the recording model stub registered.

Usage: ``XDRCDEPTH_RECORD_DIR=DIR python test/recording_node.py --ros-args -p checkpoint:=STUB.pt ...``
(see ``recording_model.py``).
"""

import sys

import recording_model

recording_model.register()

from xdrcdepth_ros.node.depth_node import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
