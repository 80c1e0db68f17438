"""xdrcdepth ROS 2 side: the depth node, message conversions, synchronisation, TF, bag and viewer tools.

All maths lives in :mod:`xdrcdepth_core`; this package only converts messages and wires topics.
"""
