"""Evaluation: the metric protocol on caches, baselines and panels (`xdrcdepth eval`)."""
