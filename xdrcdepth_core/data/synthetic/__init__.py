"""Synthetic driving scenes in nuScenes format with exact depth (``xdrcdepth synth``).

No dataset can be downloaded here, so this is a deterministic (seeded) stand-in for nuScenes: procedural
streets (:mod:`.layout`) ray cast exactly (:mod:`.raycast`) by a camera renderer (:mod:`.camera`, textures
in :mod:`.materials`, weather/night in :mod:`.conditions`), a 32-beam LiDAR (:mod:`.lidar`) and an
ARS408-like radar (:mod:`.radar`), placed with the real nuScenes calibration (:mod:`.calibration`) and
written with nuScenes timing and tables by :mod:`.writer`; :mod:`.command` is the CLI.
"""
