"""image_transport's topic names, for the nodes that subscribe to a transport without image_transport.

``image_transport`` (C++ only) subscribes a transport of base topic ``image`` at the base resolved with its
remapping plus ``/<transport>``: ``-r image:=/camera/image_rect`` makes the compressed subscription
``/camera/image_rect/compressed``. The depth node's compressed input and the Foxglove bridge's
``.../compressed`` topics follow this rule; this module only needs rclpy, so the bridge does not load torch.
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
    if node.resolve_topic_name(own) != node.resolve_topic_name(own, only_expand=True):
        return own
    return f"{node.resolve_topic_name(base)}/{COMPRESSED}"
