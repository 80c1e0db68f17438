"""The radar channels a network can take, and how each is scaled before it (no torch: ``prepare`` checks
``--radar-channels`` with these, so a cache is never made of channels that training and the node refuse).

Our choice: the per-channel scales (not given by the papers) bring each channel to roughly [-1, 1] for nuScenes
ranges; depth is scaled by 1/100 m to match max_depth = 100 of LiRCDepth/CaFNet
(:mod:`xdrcdepth_core.preprocess` applies them).
"""

from __future__ import annotations

from xdrcdepth_core.cli_args import short_repr

#: Divisors applied to radar raster channels before the network (our choice, see the module docstring).
RADAR_CHANNEL_SCALES = {"depth": 100.0, "rcs": 50.0, "vx_comp": 20.0, "vy_comp": 20.0,
                        "vx": 20.0, "vy": 20.0}


def radar_channels_problem(channels) -> str | None:
    """What is wrong with ``channels`` as a radar raster layout, as a phrase; None if usable. Known names
    only, each once, ``depth`` first: the rasteriser and the sparse resize take channel 0 as the depth that
    marks a pixel occupied and picks the nearest return, so any other order gives a silently wrong raster."""
    if not isinstance(channels, (list, tuple)) or not channels or not all(isinstance(c, str) for c in channels):
        return f"radar channels must be a non-empty list of names, got {short_repr(channels)}"
    unknown = [c for c in channels if c not in RADAR_CHANNEL_SCALES]
    if unknown:
        return f"unknown radar channels {short_repr(unknown)}; known: {sorted(RADAR_CHANNEL_SCALES)}"
    if channels[0] != "depth" or len(set(channels)) != len(channels):
        return ("radar channels must start with 'depth' and name each channel once, "
                f"got {short_repr(list(channels))}")
    return None
