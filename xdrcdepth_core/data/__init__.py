"""Data: nuScenes geometry, radar and LiDAR reading/projection, datasets, caches, synthetic scenes."""
