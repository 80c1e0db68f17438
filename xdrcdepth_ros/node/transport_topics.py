"""image_transport's topic names, for the nodes that subscribe to a transport without image_transport.

``image_transport`` (C++ only) subscribes a transport of base topic ``image`` at the base resolved with its
remapping plus ``/<transport>``: ``-r image:=/camera/image_rect`` makes the compressed subscription
``/camera/image_rect/compressed``; its camera publisher and subscriber put ``camera_info`` next to the
resolved base (``getCameraInfoTopic``: ``-r image:=/camera/image_rect`` makes it ``/camera/camera_info``).
The depth node's inputs and outputs and the Foxglove bridge's ``.../compressed`` topics follow these rules;
this module only needs rclpy, so the bridge does not load torch.
"""

from __future__ import annotations

COMPRESSED = "compressed"


def compressed_topic(node, base: str = "image") -> str:
    """The name to subscribe to for the ``compressed`` transport of ``base`` on ``node``.

    The base resolved with its remapping, plus ``/compressed``. rcl applies the remap rules again to the
    name a subscription is given, so an explicit ``-r <base>/compressed:=...`` works as upstream; unlike
    upstream, that explicit remap also wins over a remapped base (both are launch arguments): then the
    relative name itself is returned, for rcl to remap."""
    own = f"{base}/{COMPRESSED}"
    if _remapped(node, own):
        return own
    return f"{node.resolve_topic_name(base)}/{COMPRESSED}"


def camera_info_topic(node, base: str, own: str) -> str:
    """The ``camera_info`` topic that goes with image topic ``base`` on ``node``: image_transport's
    ``getCameraInfoTopic`` of the base resolved with its remapping (its parent namespace plus
    ``/camera_info``), so remapping an image moves its calibration with it. ``own``, the node's relative name
    for that camera_info, remapped explicitly, wins (our choice, as for :func:`compressed_topic`; upstream's
    rcl only applies such a remap while the image is not remapped, when both names resolve alike)."""
    if _remapped(node, own):
        return own
    return f"{node.resolve_topic_name(base).rpartition('/')[0]}/camera_info"


def _remapped(node, name: str) -> bool:
    """Whether a remap rule of ``node`` changes the relative topic ``name`` (an identity remap does not)."""
    return node.resolve_topic_name(name) != node.resolve_topic_name(name, only_expand=True)
