"""Experiments: the synthetic benchmark data and the KD ablation."""
